//! The dispatcher: turns due deliveries into HTTP attempts and attempts into recorded results.
//!
//! Loop: claim due deliveries in batches with a lease (each webhook at most its concurrency cap
//! minus what is already in flight, so a slow or hanging endpoint only ever ties up its own slots),
//! send each on its own task, and hand results to a writer task that commits them in batches (one
//! commit per delivery would cap SQLite at a few hundred per second). It wakes at once when new work
//! is published and otherwise sleeps until the next retry is due. It never holds more than
//! `max_inflight` deliveries in memory, whatever the backlog.
//!
//! Tests drive it deterministically with [`Dispatcher::run_once`] / [`Dispatcher::drain`] instead
//! of the background loop.

use crate::attempt::{self, Target};
use crate::config::Config;
use crate::metrics::AttemptClass;
use crate::sender::Sender;
use crate::service::Hookline;
use hookline_core::ids::{DeliveryId, LeaseToken, WebhookId};
use hookline_core::retry::Verdict;
use hookline_core::time::{self, Timestamp};
use hookline_store::{AttemptResult, ClaimRequest, ClaimedDelivery, Event, StoreError, Webhook};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Most deliveries claimed in one round.
const CLAIM_BATCH: usize = 512;
/// Most results committed in one transaction.
const RESULT_BATCH: usize = 1024;
/// How long to let sends finish after the first one frees a slot, so claims come in batches.
const CLAIM_GATHER: Duration = Duration::from_millis(1);
/// Longest sleep when nothing is due (a safety net; new work wakes the loop at once).
const IDLE_POLL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    hookline: Hookline,
    sender: Sender,
    /// Deliveries in flight per webhook (claimed and not yet finished sending).
    busy: Mutex<HashMap<WebhookId, usize>>,
    total: AtomicUsize,
    /// A send finished: capacity freed.
    freed: Notify,
    /// Rate limiters of webhooks with a `rate_limit`.
    limiters: Mutex<HashMap<WebhookId, Arc<RateLimiter>>>,
    round: AtomicU64,
}

/// A token bucket: `rate` deliveries per second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        RateLimiter {
            rate: rate as f64,
            state: Mutex::new((rate as f64, Instant::now())),
        }
    }

    /// Takes a token, returning how long to wait before using it.
    fn reserve(&self) -> Duration {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.rate);
        s.1 = now;
        s.0 -= 1.0;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate)
        }
    }
}

impl Dispatcher {
    pub fn new(hookline: Hookline, sender: Sender) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                hookline,
                sender,
                busy: Mutex::new(HashMap::new()),
                total: AtomicUsize::new(0),
                freed: Notify::new(),
                limiters: Mutex::new(HashMap::new()),
                round: AtomicU64::new(0),
            }),
        }
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.hookline.metrics
    }

    pub fn in_flight(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    fn config(&self) -> &Config {
        &self.inner.hookline.config
    }

    /// Claims one batch of due work and sends all of it, recording every result before returning.
    /// Returns how many deliveries were attempted. For tests and tools: deterministic, no background.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        self.run_once_at(time::now()).await
    }

    /// [`Self::run_once`] as if the clock read `now` (lets tests reach a retry without waiting).
    pub async fn run_once_at(&self, now: Timestamp) -> Result<usize, StoreError> {
        let jobs = self.claim(now).await?;
        let n = jobs.len();
        let mut results = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for job in jobs {
            let this = self.clone();
            handles.push(tokio::spawn(async move {
                this.process(job, &CancellationToken::new()).await
            }));
        }
        for h in handles {
            if let Ok(Processed::Sent(r)) = h.await {
                results.push(r);
            }
        }
        self.record(results).await?;
        Ok(n)
    }

    /// Runs [`Self::run_once`] until nothing is due.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Claims due deliveries and registers them as in flight.
    async fn claim(&self, now: Timestamp) -> Result<Vec<Job>, StoreError> {
        let config = self.config();
        let room = config.max_inflight.saturating_sub(self.in_flight());
        if room == 0 {
            return Ok(Vec::new());
        }
        let busy = self.inner.busy.lock().expect("busy lock").clone();
        let claim = self
            .inner
            .hookline
            .store
            .claim_due(ClaimRequest {
                now,
                lease_until: now + chrono::Duration::from_std(config.lease).unwrap_or_default(),
                limit: room.min(CLAIM_BATCH),
                per_webhook: config.max_concurrency_per_webhook,
                busy,
                round: self.inner.round.fetch_add(1, Ordering::Relaxed),
            })
            .await?;
        let mut jobs = Vec::with_capacity(claim.deliveries.len());
        {
            let mut busy = self.inner.busy.lock().expect("busy lock");
            for d in claim.deliveries {
                let (Some(webhook), Some(event), Some(tenant)) = (
                    claim.webhooks.get(&d.webhook_id),
                    claim.events.get(&d.event_id),
                    claim.tenants.get(&d.tenant_id),
                ) else {
                    continue;
                };
                *busy.entry(d.webhook_id).or_default() += 1;
                let n = self.inner.total.fetch_add(1, Ordering::Relaxed) + 1;
                self.inner.hookline.metrics.set_in_flight(n);
                jobs.push(Job {
                    webhook: webhook.clone(),
                    event: event.clone(),
                    tenant: tenant.clone(),
                    delivery: d,
                });
            }
        }
        Ok(jobs)
    }

    fn limiter(&self, w: &Webhook) -> Option<Arc<RateLimiter>> {
        let mut map = self.inner.limiters.lock().expect("limiter lock");
        match w.rate_limit {
            None => {
                map.remove(&w.id);
                None
            }
            Some(rate) => {
                let l = map
                    .entry(w.id)
                    .or_insert_with(|| Arc::new(RateLimiter::new(rate)));
                if l.rate != rate as f64 {
                    *l = Arc::new(RateLimiter::new(rate));
                }
                Some(l.clone())
            }
        }
    }

    /// Sends one claimed delivery and frees its slot; returns the result to record. A delivery
    /// still waiting for its rate limit when `shutdown` fires is given back unsent instead.
    async fn process(&self, job: Job, shutdown: &CancellationToken) -> Processed {
        let unsent = |d: &ClaimedDelivery| {
            self.finish(d);
            Processed::Unsent(d.id, d.lease_token)
        };
        if shutdown.is_cancelled() {
            return unsent(&job.delivery);
        }
        if let Some(limiter) = self.limiter(&job.webhook) {
            let wait = limiter.reserve();
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return unsent(&job.delivery),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let config = self.config();
        let d = &job.delivery;
        let target = Target {
            webhook: &job.webhook,
            event: &job.event,
            tenant_name: &job.tenant,
            delivery_id: d.id,
            item_index: d.item_index,
            format: d.format,
            attempt_number: d.attempt_number,
        };
        let o = attempt::attempt(&self.inner.sender, config, target).await;
        let class = match (o.verdict, o.attempt.status_code) {
            (Verdict::Delivered, _) => AttemptClass::Delivered,
            (_, Some(_)) => AttemptClass::Rejected,
            (_, None) => AttemptClass::Error,
        };
        // The first attempt's start, measured from the event's commit: the publish-to-send latency.
        let since_commit = (d.attempt_number == 1)
            .then(|| (o.attempt.started_at - job.event.created_at).to_std().ok())
            .flatten();
        self.inner.hookline.metrics.attempt_finished(
            class,
            Duration::from_secs_f64(o.attempt.total_ms.max(0.0) / 1000.0),
            since_commit,
        );
        let next = attempt::next_state(config, &job.webhook, &o);
        if matches!(next, hookline_store::NextState::Failed) {
            tracing::info!(
                delivery_id = %d.id,
                webhook_id = %d.webhook_id,
                attempts = d.attempt_number,
                status = o.attempt.status_code,
                error_kind = o.attempt.error_kind.as_deref(),
                "delivery failed for good"
            );
        }
        self.finish(d);
        Processed::Sent(AttemptResult {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            lease_token: d.lease_token,
            attempt: o.attempt,
            next,
        })
    }

    fn finish(&self, d: &ClaimedDelivery) {
        {
            let mut busy = self.inner.busy.lock().expect("busy lock");
            if let Some(n) = busy.get_mut(&d.webhook_id) {
                *n -= 1;
                if *n == 0 {
                    busy.remove(&d.webhook_id);
                }
            }
        }
        let n = self.inner.total.fetch_sub(1, Ordering::Relaxed) - 1;
        self.inner.hookline.metrics.set_in_flight(n);
        self.inner.freed.notify_one();
    }

    async fn record(&self, results: Vec<AttemptResult>) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let ids: Vec<(DeliveryId, WebhookId)> = results
            .iter()
            .map(|r| (r.delivery_id, r.webhook_id))
            .collect();
        let applied = self
            .inner
            .hookline
            .store
            .record_attempts(results, self.config().disable)
            .await?;
        let mut stale = 0;
        for (&(delivery_id, webhook_id), _) in ids.iter().zip(&applied).filter(|(_, ok)| !**ok) {
            stale += 1;
            tracing::warn!(
                %delivery_id,
                %webhook_id,
                "discarded an attempt's result: the delivery's lease had moved on"
            );
        }
        if stale > 0 {
            self.inner.hookline.metrics.stale_results(stale);
        }
        Ok(())
    }

    /// Runs until `shutdown`: claims, sends, records. On shutdown it stops claiming, lets in-flight
    /// sends finish (each is bounded by the timeout), and records their results before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        let (tx, rx) = mpsc::unbounded_channel::<Processed>();
        let writer = tokio::spawn(self.clone().result_writer(rx));
        let wake = self.inner.hookline.wake.clone();
        // Other nodes' new work (PostgreSQL NOTIFY); never fires for a store without other writers.
        let remote = self.inner.hookline.store.wakeups().unwrap_or_default();
        let mut tasks = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let jobs = match self.claim(time::now()).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let claimed = jobs.len();
            for job in jobs {
                let this = self.clone();
                let tx = tx.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let _ = tx.send(this.process(job, &shutdown).await);
                });
            }
            if claimed > 0 && self.in_flight() < self.config().max_inflight {
                // More may be due right away: claim again without sleeping.
                tokio::task::yield_now().await;
                continue;
            }
            if claimed == 0 && self.in_flight() > 0 {
                // Sends are in flight and nothing more could be taken (caps, or nothing due):
                // wait for a send to finish, then let a few more finish so the next claim is a
                // batch rather than one transaction per freed slot.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = remote.notified() => {}
                    _ = self.inner.freed.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                tokio::time::sleep(CLAIM_GATHER).await;
                continue;
            }
            let sleep = match self.inner.hookline.store.next_due_at().await {
                Ok(Some(due)) => (due - time::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE_POLL),
                _ => IDLE_POLL,
            };
            // Due in the past yet nothing claimed: another node holds it, or its webhook is
            // disabled. Don't spin on it.
            let sleep = if sleep.is_zero() { IDLE_POLL } else { sleep };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = remote.notified() => {}
                _ = self.inner.freed.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::info!(
            in_flight = self.in_flight(),
            "dispatcher stopping: finishing in-flight sends"
        );
        while tasks.join_next().await.is_some() {}
        drop(tx);
        let _ = writer.await;
        tracing::info!("dispatcher stopped");
    }

    /// Commits results in batches; a failed commit is retried, never dropped (the lease would expire
    /// and the delivery be sent again, which is safe but wasteful). Deliveries given back unsent
    /// (shutdown) are released at once, so another node takes them now instead of after the lease.
    async fn result_writer(self, mut rx: mpsc::UnboundedReceiver<Processed>) {
        let mut received = Vec::with_capacity(RESULT_BATCH);
        let mut unsent = Vec::new();
        while rx.recv_many(&mut received, RESULT_BATCH).await > 0 {
            let mut batch = Vec::with_capacity(received.len());
            for p in received.drain(..) {
                match p {
                    Processed::Sent(r) => batch.push(r),
                    Processed::Unsent(id, token) => unsent.push((id, token)),
                }
            }
            let mut backoff = Duration::from_millis(50);
            while !batch.is_empty() {
                match self.record(batch.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, n = batch.len(), "recording results failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        if !unsent.is_empty() {
            let n = unsent.len();
            match self.inner.hookline.store.release(unsent).await {
                Ok(()) => tracing::info!(n, "released claimed deliveries that were not sent"),
                // Their leases run out and another node (or this one, restarted) takes them.
                Err(e) => tracing::warn!(error = %e, n, "releasing unsent deliveries failed"),
            }
        }
    }
}

/// What became of one claimed delivery.
// Moved once through a channel; boxing the common variant would cost an allocation per attempt.
#[allow(clippy::large_enum_variant)]
enum Processed {
    /// Sent: the attempt to record.
    Sent(AttemptResult),
    /// Given back unsent at shutdown: (delivery id, lease token) to release.
    Unsent(DeliveryId, LeaseToken),
}

struct Job {
    webhook: Arc<Webhook>,
    event: Arc<Event>,
    tenant: String,
    delivery: ClaimedDelivery,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_spaces_sends_after_a_burst() {
        let l = RateLimiter::new(10);
        let waits: Vec<Duration> = (0..12).map(|_| l.reserve()).collect();
        assert!(waits[..10].iter().all(|w| w.is_zero()), "{waits:?}");
        // The 11th and 12th wait about 0.1s and 0.2s for their tokens.
        assert!(
            waits[10] > Duration::from_millis(50) && waits[10] <= Duration::from_millis(100),
            "{waits:?}"
        );
        assert!(waits[11] > waits[10], "{waits:?}");
    }
}
