//! Durable background jobs: work too big for one request (a replay of 100,000 deliveries) is stored
//! as a job and done in short steps by whichever node holds the job's lease.
//!
//! Why steps, each one transaction: a step copies the next chunk *and* advances the job's cursor and
//! count together, so a crash between steps repeats nothing and loses nothing — the next holder of
//! the lease goes on from the cursor. Each step is short, so other writers (publishes, results) get
//! the SQLite writer between steps instead of waiting a minute behind one huge transaction. A
//! cancelled job (or one whose lease another node has taken over) refuses the step, so cancelling is
//! immediate and two nodes never work on one job.

use crate::model::{DeliveryStatus, ReplayFilter};
use hookline_core::ids::{DeliveryId, JobId, TenantId, WebhookId};
use hookline_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A background job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub kind: JobKind,
    pub status: JobStatus,
    /// What the job does (for a replay: [`ReplayJob`]).
    pub params: serde_json::Value,
    /// Items the job expects to process, when known at creation.
    pub total: Option<u64>,
    /// Items processed so far.
    pub done: u64,
    pub error: Option<String>,
    /// What the job found so far (an import: counts and the first errors).
    pub result: Option<serde_json::Value>,
    /// An import: the next item to process.
    pub position: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Copies matching deliveries of a webhook as new pending deliveries.
    Replay,
    /// Creates contacts from stored import rows, a step of them per transaction.
    Import,
    /// Erases one record from every stored event, delivery log and answer (`crate::erasure`).
    Erasure,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Replay => "replay",
            JobKind::Import => "import",
            JobKind::Erasure => "erasure",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "replay" => Some(JobKind::Replay),
            "import" => Some(JobKind::Import),
            "erasure" => Some(JobKind::Erasure),
            _ => None,
        }
    }
}

/// `queued` until a node takes it, `running` while steps are done, then one of the terminal three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A replay job's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub webhook_id: WebhookId,
    pub since: Timestamp,
    pub until: Option<Timestamp>,
    pub statuses: Vec<DeliveryStatus>,
    /// Only originals older than this id (made when the job was): the copies the job makes match
    /// its filter too, and must never be replayed again by the same job.
    pub before: DeliveryId,
}

impl ReplayJob {
    pub fn new(webhook_id: WebhookId, filter: ReplayFilter) -> ReplayJob {
        ReplayJob {
            webhook_id,
            since: filter.since,
            until: filter.until,
            statuses: filter.statuses,
            before: DeliveryId::new(),
        }
    }

    pub(crate) fn statuses_json(&self) -> String {
        serde_json::to_string(&self.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into())
    }
}

/// Stored `kind` and `status` columns.
pub(crate) fn parse_kind_status(kind: &str, status: &str) -> Result<(JobKind, JobStatus), String> {
    Ok((
        JobKind::parse(kind).ok_or_else(|| format!("bad job kind {kind}"))?,
        JobStatus::parse(status).ok_or_else(|| format!("bad job status {status}"))?,
    ))
}

/// The columns a [`Job`] is read from, in order.
pub(crate) const JOB_COLS: &str =
    "id, tenant_id, kind, status, params, total, done, error, result, \
     position, created_at, updated_at, finished_at";

/// The statement that applies a [`crate::model::JobAdvance`] (placeholders 1–8 in this order: id, token,
/// lease_until, position, done, result, finished, now); changes no row when the job isn't held.
pub(crate) fn advance_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "UPDATE jobs SET lease_until = {lease}, position = {pos}, done = done + {done}, result = {result},
         updated_at = {now}, status = CASE WHEN {fin} THEN 'succeeded' ELSE status END,
         finished_at = CASE WHEN {fin} THEN {now} ELSE finished_at END,
         lease_owner = CASE WHEN {fin} THEN NULL ELSE lease_owner END
         WHERE id = {id} AND lease_owner = {token} AND status = 'running'",
        id = p(1),
        token = p(2),
        lease = p(3),
        pos = p(4),
        done = p(5),
        result = p(6),
        fin = p(7),
        now = p(8),
    )
}

/// The error of a step whose job is no longer held (cancelled, or taken over): nothing was written.
pub fn job_lost(id: JobId) -> crate::error::StoreError {
    crate::error::StoreError::Conflict(format!("job {id} is no longer held by this step"))
}
