//! Right to erasure as callers see it: a request names one record (`contact` `c_17`) and answers at
//! once with a job; the job (`crate::jobs`, `Store::erasure_step`) then removes the record, every
//! stored event about it (batches rewritten without it), their deliveries and attempts, and the
//! receivers' answers that may have echoed it. The finished job is the audit entry: who asked is
//! the tenant, what was erased is counts, never the data.

use super::access::Principal;
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::erasure::Target;
use hookline_core::ids::JobId;
use hookline_core::time;
use hookline_store::{Erased, Job, JobKind, Page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What to erase.
#[derive(Debug, Clone, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureInput {
    /// The record's subject type: `contact`, `organization`, `deal`, `service`, `task`,
    /// `conversation`, `message`, `broadcast` or `meeting`.
    pub entity_type: String,
    /// The record's id, as its events carry it.
    pub entity_id: String,
}

/// What an erasure removed so far (counts only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct ErasedCounts {
    /// Events about the record, or batches that carried only it, removed with their deliveries.
    pub events_dropped: u64,
    /// Batches (or deletes of several ids) rewritten without the record.
    pub events_rewritten: u64,
    pub deliveries_removed: u64,
    pub attempts_removed: u64,
    /// Attempts of rewritten events whose stored answer (headers and body) was removed.
    pub attempts_redacted: u64,
    /// The record itself (0 or 1).
    pub records_removed: u64,
    /// Stored answers of idempotent requests that showed the record.
    pub stored_answers_removed: u64,
    /// Input rows of finished imports.
    pub import_rows_removed: u64,
}

impl From<Erased> for ErasedCounts {
    fn from(e: Erased) -> Self {
        ErasedCounts {
            events_dropped: e.events_dropped,
            events_rewritten: e.events_rewritten,
            deliveries_removed: e.deliveries_removed,
            attempts_removed: e.attempts_removed,
            attempts_redacted: e.attempts_redacted,
            records_removed: e.records_removed,
            stored_answers_removed: e.stored_answers_removed,
            import_rows_removed: e.import_rows_removed,
        }
    }
}

/// An erasure: its job's progress and what it removed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct ErasureView {
    /// The job's id (also readable at `/v1/jobs/{id}`).
    pub id: Uuid,
    pub entity_type: String,
    pub entity_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Events examined and changed so far.
    pub done: u64,
    pub erased: ErasedCounts,
    /// Why a failed erasure failed.
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl ErasureView {
    fn of(job: &Job) -> Result<ErasureView> {
        let target: Target = serde_json::from_value(job.params.clone())
            .map_err(|e| Error::Internal(format!("erasure job {}: bad params: {e}", job.id)))?;
        Ok(ErasureView {
            id: job.id.into(),
            entity_type: target.entity_type,
            entity_id: target.entity_id,
            status: job.status.as_str().into(),
            done: job.done,
            erased: Erased::from_result(job.result.as_ref()).into(),
            error: job.error.clone(),
            created_at: time::format(&job.created_at),
            finished_at: job.finished_at.as_ref().map(time::format),
        })
    }
}

impl Hookline {
    /// Queues the erasure of one record. A full key of the tenant only (not a read key, not a
    /// portal session).
    pub async fn request_erasure(
        &self,
        who: &Principal,
        input: ErasureInput,
    ) -> Result<ErasureView> {
        who.require_tenant_write()?;
        let target = Target::parse(&input.entity_type, &input.entity_id)?;
        let job = self
            .store
            .insert_erasure_job(JobId::new(), who.tenant_id, target)
            .await?;
        tracing::info!(job_id = %job.id, tenant_id = %who.tenant_id, "erasure queued");
        self.job_wake.notify_one();
        ErasureView::of(&job)
    }

    /// One erasure of the caller's tenant.
    pub async fn get_erasure(&self, who: &Principal, id: JobId) -> Result<ErasureView> {
        who.require_tenant_wide()?;
        match self.store.get_job(who.tenant_id, id).await? {
            Some(job) if job.kind == JobKind::Erasure => ErasureView::of(&job),
            _ => Err(Error::not_found("erasure")),
        }
    }

    /// The tenant's erasures, newest first: its erasure audit.
    pub async fn list_erasures(&self, who: &Principal, page: Page) -> Result<Vec<ErasureView>> {
        who.require_tenant_wide()?;
        self.store
            .list_jobs(who.tenant_id, Some(JobKind::Erasure), page)
            .await?
            .iter()
            .map(ErasureView::of)
            .collect()
    }
}
