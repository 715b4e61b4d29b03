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

use crate::config::Config;
use crate::sender::{ErrorKind, OutboundRequest, SendResult, Sender, SenderConfig};
use crate::service::Hookline;
use hookline_core::formats::{self, EventView, SigningKeys};
use hookline_core::retry::{self, Next, Verdict};
use hookline_core::time::{self, Timestamp};
use hookline_core::{ids, webhook::Format};
use hookline_store::{
    Attempt, AttemptResult, ClaimRequest, ClaimedDelivery, Event, NextState, StoreError, Webhook,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most deliveries claimed in one round.
const CLAIM_BATCH: usize = 512;
/// Most results committed in one transaction.
const RESULT_BATCH: usize = 1024;
/// How long to let sends finish after the first one frees a slot, so claims come in batches.
const CLAIM_GATHER: Duration = Duration::from_millis(1);
/// Longest sleep when nothing is due (a safety net; new work wakes the loop at once).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Outcome of one attempt, before it is recorded.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    pub verdict: Verdict,
    pub retry_after: Option<Duration>,
}

/// Counters exposed on `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub stale_results: AtomicU64,
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

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    hookline: Hookline,
    sender: Sender,
    /// Deliveries in flight per webhook (claimed and not yet finished sending).
    busy: Mutex<HashMap<Uuid, usize>>,
    total: AtomicUsize,
    /// A send finished: capacity freed.
    freed: Notify,
    /// Rate limiters of webhooks with a `rate_limit`.
    limiters: Mutex<HashMap<Uuid, Arc<RateLimiter>>>,
    round: AtomicU64,
}

/// Builds the sender the configuration describes.
pub fn sender_for(config: &Config) -> anyhow::Result<Sender> {
    let extra_ca_pem =
        match &config.extra_ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("extra_ca_cert: can't read {}: {e}", path.display())
            })?),
            None => None,
        };
    Sender::new(SenderConfig {
        policy: config.url_policy.clone(),
        timeout: config.timeout,
        body_cap: config.response_body_cap,
        extra_ca_pem,
        user_agent: format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
        // Many webhooks may share one host: keep enough idle connections for all of them.
        max_idle_per_host: config.max_inflight.max(8),
    })
    .map_err(|e| anyhow::anyhow!("sender: {e}"))
}

/// One attempt to make: which delivery of which event to which webhook.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub webhook: &'a Webhook,
    pub event: &'a Event,
    pub tenant_name: &'a str,
    pub delivery_id: Uuid,
    pub item_index: Option<u32>,
    /// How to render: the delivery's own format (fixed when it was made), not the webhook's now.
    pub format: Format,
    pub attempt_number: u32,
}

/// Renders, signs and sends one attempt; shared by the dispatcher and synchronous test sends so
/// both follow exactly the same rules.
pub async fn attempt(sender: &Sender, config: &Config, target: Target<'_>) -> AttemptOutcome {
    attempt_signed_with(sender, config, target, None).await
}

/// [`attempt`], signed with `keys` instead of the webhook's own secrets when given: the
/// verification handshake's deliberately mis-signed request. Rendering, headers and sending are
/// the same code path as every real delivery.
pub async fn attempt_signed_with(
    sender: &Sender,
    config: &Config,
    target: Target<'_>,
    keys: Option<SigningKeys<'_>>,
) -> AttemptOutcome {
    let Target {
        webhook,
        event,
        tenant_name,
        delivery_id,
        item_index,
        format,
        attempt_number,
    } = target;
    let view = EventView {
        id: event.id,
        event_type: &event.event_type,
        occurred_at: event.occurred_at,
        source: event.source.as_deref(),
        source_id: event.source_id.as_deref(),
        actor_id: event.actor_id.as_deref(),
        tenant: tenant_name,
        entity_id: event.entity_id.as_deref(),
        data: &event.data,
        changes: event.changes.as_ref(),
        batch: event.batch.as_ref(),
    };
    let body = formats::render_body(format, &view, delivery_id, item_index.map(|i| i as usize));
    let started_at = time::now();
    let previous = match (&webhook.previous_secret, webhook.previous_secret_expires_at) {
        (Some(p), Some(until)) if until > started_at => Some(p.as_str()),
        _ => None,
    };
    let keys = keys.unwrap_or(SigningKeys {
        current: &webhook.secret,
        previous,
    });
    let meta = formats::AttemptMeta {
        brand: &config.brand,
        format,
        event_type: &event.event_type,
        delivery_id,
        attempt_time: started_at,
    };
    let mut headers = formats::delivery_headers(meta, keys, &body, &webhook.headers);
    headers.push((
        "User-Agent".into(),
        format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
    ));
    let logged_headers = formats::loggable_headers(&headers);
    let result = sender
        .send(OutboundRequest {
            url: webhook.url.clone(),
            headers,
            body: body.into(),
        })
        .await;
    outcome(
        delivery_id,
        attempt_number,
        started_at,
        &webhook.url,
        logged_headers,
        result,
    )
}

fn outcome(
    delivery_id: Uuid,
    attempt_number: u32,
    started_at: Timestamp,
    url: &str,
    request_headers: Vec<(String, String)>,
    r: SendResult,
) -> AttemptOutcome {
    let verdict = match (&r.error, r.status_code) {
        // The URL policy refused the destination: no retry will change that.
        (Some((ErrorKind::BlockedDestination | ErrorKind::InvalidUrl, _)), _) => Verdict::Failed,
        (Some(_), _) => Verdict::Retry,
        (None, Some(code)) => retry::classify_status(code),
        (None, None) => Verdict::Retry,
    };
    // Retry-After matters only where the receiver asks us to slow down.
    let retry_after = r
        .retry_after
        .filter(|_| matches!(r.status_code, Some(429) | Some(503)));
    AttemptOutcome {
        attempt: Attempt {
            id: ids::new_id(),
            delivery_id,
            attempt_number,
            started_at,
            url: url.to_string(),
            status_code: r.status_code,
            error_kind: r.error.as_ref().map(|(k, _)| k.as_str().to_string()),
            error_message: r.error.map(|(_, m)| m),
            dns_ms: r.timings.dns_ms,
            connect_ms: r.timings.connect_ms,
            tls_ms: r.timings.tls_ms,
            ttfb_ms: r.timings.ttfb_ms,
            total_ms: r.timings.total_ms,
            request_headers,
            response_headers: r.response_headers,
            response_body: (r.status_code.is_some()).then_some(r.response_body),
            response_truncated: r.response_truncated,
        },
        verdict,
        retry_after,
    }
}

/// What state a delivery moves to after an attempt, by the webhook's (or the default) schedule.
pub fn next_state(config: &Config, webhook: &Webhook, o: &AttemptOutcome) -> NextState {
    let schedule = webhook
        .retry_schedule
        .as_ref()
        .unwrap_or(&config.retry_schedule);
    match retry::next_step(
        o.verdict,
        o.attempt.attempt_number as usize,
        schedule,
        o.retry_after,
        config.retry_after_cap,
    ) {
        Next::Delivered => NextState::Delivered,
        Next::Failed => NextState::Failed,
        Next::RetryIn(d) => {
            NextState::RetryAt(time::now() + chrono::Duration::from_std(d).unwrap_or_default())
        }
    }
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

    pub fn counters(&self) -> &Counters {
        &self.inner.hookline.counters
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
            handles.push(tokio::spawn(async move { this.process(job).await }));
        }
        for h in handles {
            if let Ok(Some(r)) = h.await {
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
                self.inner.total.fetch_add(1, Ordering::Relaxed);
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

    /// Sends one claimed delivery; returns its result to record, then frees its slot.
    async fn process(&self, job: Job) -> Option<AttemptResult> {
        if let Some(limiter) = self.limiter(&job.webhook) {
            let wait = limiter.reserve();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
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
        let o = attempt(&self.inner.sender, config, target).await;
        let c = &self.inner.hookline.counters;
        c.attempts.fetch_add(1, Ordering::Relaxed);
        match o.verdict {
            Verdict::Delivered => c.delivered.fetch_add(1, Ordering::Relaxed),
            _ => c.failed_attempts.fetch_add(1, Ordering::Relaxed),
        };
        let next = next_state(config, &job.webhook, &o);
        self.finish(d);
        Some(AttemptResult {
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
        self.inner.total.fetch_sub(1, Ordering::Relaxed);
        self.inner.freed.notify_one();
    }

    async fn record(&self, results: Vec<AttemptResult>) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let applied = self
            .inner
            .hookline
            .store
            .record_attempts(results, self.config().disable)
            .await?;
        let stale = applied.iter().filter(|ok| !**ok).count() as u64;
        if stale > 0 {
            self.inner
                .hookline
                .counters
                .stale_results
                .fetch_add(stale, Ordering::Relaxed);
            tracing::warn!(
                stale,
                "results for deliveries whose lease had moved on were discarded"
            );
        }
        Ok(())
    }

    /// Runs until `shutdown`: claims, sends, records. On shutdown it stops claiming, lets in-flight
    /// sends finish (each is bounded by the timeout), and records their results before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        let (tx, rx) = mpsc::unbounded_channel::<AttemptResult>();
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
                tasks.spawn(async move {
                    if let Some(r) = this.process(job).await {
                        let _ = tx.send(r);
                    }
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
    /// and the delivery be sent again, which is safe but wasteful).
    async fn result_writer(self, mut rx: mpsc::UnboundedReceiver<AttemptResult>) {
        let mut batch = Vec::with_capacity(RESULT_BATCH);
        while rx.recv_many(&mut batch, RESULT_BATCH).await > 0 {
            let mut backoff = Duration::from_millis(50);
            loop {
                match self.record(batch.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, n = batch.len(), "recording results failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            batch.clear();
        }
    }
}

struct Job {
    webhook: Arc<Webhook>,
    event: Arc<Event>,
    tenant: String,
    delivery: ClaimedDelivery,
}

/// Whether a format could carry this event at all (used to refuse test sends early).
pub fn renderable(format: Format, event_type: &str) -> bool {
    format.renderable().is_none_or(|r| r.contains(&event_type))
}
