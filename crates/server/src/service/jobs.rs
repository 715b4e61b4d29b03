//! Background jobs as callers see them: a replay answers at once with its job, and the job's
//! progress, result or error is read (or the job cancelled) through these methods. The work itself
//! is done in steps by the worker's job runner (`crate::jobs`), durably (`hookline_store::jobs`).

use super::access::{Capability, Principal};
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::ids::{JobId, WebhookId};
use hookline_core::time;
use hookline_store::{Job, JobKind, Page, ReplayFilter, ReplayJob};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A background job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `replay`, `import` or `erasure`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// For a replay: the webhook it replays to.
    pub webhook_id: Option<Uuid>,
    /// Items the job expects to process (deliveries to copy), when known.
    pub total: Option<u64>,
    /// Items processed so far.
    pub done: u64,
    /// Why a failed job failed.
    pub error: Option<String>,
    /// What the job found so far: for an import, `created`, `failed`, `batches` and the first 100
    /// refused rows (`errors`: `{row, error}`).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        JobView {
            id: j.id.into(),
            kind: j.kind.as_str().into(),
            status: j.status.as_str().into(),
            webhook_id: webhook_of(j).map(Uuid::from),
            total: j.total,
            done: j.done,
            error: j.error.clone(),
            result: j.result.clone(),
            created_at: time::format(&j.created_at),
            updated_at: time::format(&j.updated_at),
            finished_at: j.finished_at.as_ref().map(time::format),
        }
    }
}

fn webhook_of(j: &Job) -> Option<WebhookId> {
    match j.kind {
        JobKind::Replay => serde_json::from_value::<ReplayJob>(j.params.clone())
            .ok()
            .map(|r| r.webhook_id),
        // Tenant-wide: a portal session never sees an import or an erasure.
        JobKind::Import | JobKind::Erasure => None,
    }
}

impl Hookline {
    /// Queues a replay of `webhook_id`'s deliveries matching `filter`, expecting `total` copies.
    pub(super) async fn queue_replay(
        &self,
        who: &Principal,
        webhook_id: WebhookId,
        filter: ReplayFilter,
        total: u64,
    ) -> Result<JobView> {
        let job = self
            .store
            .insert_replay_job(
                JobId::new(),
                who.tenant_id,
                ReplayJob::new(webhook_id, filter),
                total,
            )
            .await?;
        self.job_wake.notify_one();
        Ok(JobView::from(&job))
    }

    /// A job the caller may see: a portal session sees only jobs of its webhooks.
    async fn load_job(&self, who: &Principal, id: JobId) -> Result<Job> {
        who.require(Capability::View)?;
        let job = self
            .store
            .get_job(who.tenant_id, id)
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        match webhook_of(&job) {
            Some(w) if who.sees_webhook(w) => Ok(job),
            None if !who.is_portal() => Ok(job),
            _ => Err(Error::not_found("job")),
        }
    }

    pub async fn get_job(&self, who: &Principal, id: JobId) -> Result<JobView> {
        Ok(JobView::from(&self.load_job(who, id).await?))
    }

    /// Jobs newest first; a portal session sees only those of its webhooks.
    pub async fn list_jobs(&self, who: &Principal, page: Page) -> Result<Vec<JobView>> {
        who.require(Capability::View)?;
        Ok(self
            .store
            .list_jobs(who.tenant_id, None, page)
            .await?
            .iter()
            .filter(|j| match webhook_of(j) {
                Some(w) => who.sees_webhook(w),
                None => !who.is_portal(),
            })
            .map(JobView::from)
            .collect())
    }

    /// Cancels a queued or running job: no step runs after this returns. What it already did
    /// stays done (replayed deliveries are sent). Cancelling a finished job changes nothing.
    pub async fn cancel_job(&self, who: &Principal, id: JobId) -> Result<JobView> {
        who.require(Capability::Resend)?;
        self.load_job(who, id).await?;
        let job = self
            .store
            .cancel_job(who.tenant_id, id)
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        Ok(JobView::from(&job))
    }
}
