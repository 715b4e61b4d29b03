//! The job runner: does queued background jobs (replays, imports, erasures) step by step on worker
//! nodes.
//!
//! A node takes one open job at a time under a lease, runs its steps (each one short transaction
//! that also renews the lease, see `hookline_store::jobs`), and wakes the dispatcher after each
//! step so replayed deliveries start going out while the job goes on. If the node dies, the lease
//! runs out and another node (or this one, restarted) takes the job over from its cursor. A step
//! the database refuses for a reason that won't pass fails the job with that error; an unavailable
//! database is waited out.

use crate::service::Hookline;
use hookline_core::ids::LeaseToken;
use hookline_store::{Job, JobKind, JobStatus, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest sleep when no job is open (queuing a job wakes the runner at once).
const IDLE_POLL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct JobRunner {
    hookline: Hookline,
}

impl JobRunner {
    pub fn new(hookline: Hookline) -> Self {
        JobRunner { hookline }
    }

    /// Runs open jobs until none is left; returns how many it ran. For tests and tools: no
    /// background task.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        while let Some((job, token)) = self.claim().await? {
            self.work(job, token, &CancellationToken::new()).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Runs jobs until `shutdown`. A job cut off by shutdown keeps its lease until it runs out,
    /// then any worker node goes on with it.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.hookline.job_wake.clone();
        while !shutdown.is_cancelled() {
            let pause = match self.claim().await {
                Ok(Some((job, token))) => match self.work(job, token, &shutdown).await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "a job step failed; retrying shortly");
                        Duration::from_secs(1)
                    }
                },
                Ok(None) => IDLE_POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "taking a job failed; retrying shortly");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn claim(&self) -> Result<Option<(Job, LeaseToken)>, StoreError> {
        let token = LeaseToken::new();
        Ok(self
            .hookline
            .store
            .claim_job(token, self.hookline.config.lease)
            .await?
            .map(|job| (job, token)))
    }

    /// Runs `job`'s steps until it ends, is cancelled, is taken over, or `shutdown`.
    async fn work(
        &self,
        job: Job,
        token: LeaseToken,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        let store = &self.hookline.store;
        tracing::info!(job_id = %job.id, kind = job.kind.as_str(), done = job.done, "running a job");
        let mut done = job.done;
        let mut current = job.clone();
        while !shutdown.is_cancelled() {
            let lease = self.hookline.config.lease;
            let step = match job.kind {
                JobKind::Replay => {
                    store
                        .replay_step(job.id, token, lease, self.hookline.config.job_step)
                        .await
                }
                JobKind::Erasure => {
                    store
                        .erasure_step(job.id, token, lease, hookline_store::ERASURE_STEP)
                        .await
                }
                JobKind::Import => match self.hookline.import_step(&current, token, lease).await {
                    Ok(()) => store
                        .get_job(job.tenant_id, job.id)
                        .await
                        .and_then(|j| j.ok_or_else(|| hookline_store::job_lost(job.id))),
                    Err(e) => Err(e),
                },
            };
            let now = match step {
                Ok(now) => now,
                Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                // Cancelled, or another node took it over: stop without touching it.
                Err(StoreError::Conflict(e)) => {
                    tracing::info!(job_id = %job.id, reason = %e, "no longer running this job");
                    return Ok(());
                }
                Err(e) => {
                    // The job itself is at fault (its parameters, a row the database refuses):
                    // retrying the same step can't help.
                    tracing::error!(job_id = %job.id, error = %e, "job failed");
                    store.fail_job(job.id, token, &e.to_string()).await?;
                    return Ok(());
                }
            };
            if now.done > done {
                self.hookline.notify_new_work();
                done = now.done;
            }
            current = now.clone();
            if now.status != JobStatus::Running {
                tracing::info!(job_id = %job.id, status = now.status.as_str(), done, "job ended");
                return Ok(());
            }
            // Let other writers in between steps.
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}
