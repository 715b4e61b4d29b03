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
use crate::metrics::{AttemptClass, Stage};
use crate::sender::Sender;
use crate::service::Hookline;
use hookline_core::ids::{DeliveryId, EventId, LeaseToken, TenantId, WebhookId};
use hookline_core::retry::Verdict;

use hookline_store::{AttemptResult, ClaimRequest, ClaimedDelivery, Event, StoreError, Webhook};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Most deliveries claimed in one round.
const CLAIM_BATCH: usize = 512;
/// How many deliveries per concurrency slot a node holds for one webhook: the claim takes up to
/// `max_concurrency_per_webhook × QUEUE_AHEAD`, and at most `max_concurrency_per_webhook` of
/// them are being sent at once (`Inner::slots`). A slot that frees starts the next held delivery
/// at once instead of waiting for a claim round trip through the database, which is what held one
/// endpoint to ~1,800/s. The held ones are leased (and renewed) like any claimed delivery.
const QUEUE_AHEAD: usize = 16;
/// Events kept from recent claims (see `Inner::recent_events`).
const RECENT_EVENTS: usize = 8;
/// Most results taken from the channel at once.
const RESULT_BATCH: usize = 1024;
/// Most results committed in one transaction.
const RESULT_COMMIT: usize = 256;
/// How long to let sends finish after the first one frees a slot, so claims come in batches.
const CLAIM_GATHER: Duration = Duration::from_millis(1);
/// Longest sleep when nothing is due (a safety net; new work wakes the loop at once).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How long a check that a webhook may send (a claim, or the re-check before a send) is trusted.
/// See `Dispatcher::webhook_live`.
const LIVE_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    hookline: Hookline,
    sender: Sender,
    /// Deliveries in flight (claimed and not yet finished sending), per webhook and per tenant.
    busy: Mutex<Busy>,
    total: AtomicUsize,
    /// A send finished: capacity freed.
    freed: Notify,
    /// Leases this node holds: claimed deliveries not yet recorded or released. The renewal task
    /// keeps them from running out while a delivery waits (rate limit, slow send, busy writer).
    held: Mutex<HashMap<DeliveryId, LeaseToken>>,
    /// The events of the latest claims, newest first: a claim doesn't read an event again that
    /// this node holds (one 50,000-object event would otherwise be read and parsed again for every
    /// claim of ten of its deliveries).
    /// Each with the stored revision it was read at: the claim reads an event again when it was
    /// rewritten since (an erasure, or retention dropping its redacted values), on any node.
    recent_events: Mutex<RecentEvents>,
    /// Rate limiters of webhooks with a `rate_limit`.
    limiters: Mutex<HashMap<WebhookId, Arc<RateLimiter>>>,
    /// Send slots per webhook: `max_concurrency_per_webhook` permits, taken for the request only
    /// (the claim holds up to `QUEUE_AHEAD` times as many deliveries, waiting for a slot).
    slots: Mutex<HashMap<WebhookId, Arc<tokio::sync::Semaphore>>>,
    /// Webhooks whose receiver just answered 410 Gone, until that result (which disables the
    /// webhook) is committed: a held delivery of one waits for the commit, then re-checks, so
    /// nothing goes to a gone endpoint after its 410 was seen (see `Dispatcher::gone`).
    gone: Mutex<HashMap<WebhookId, CancellationToken>>,
    /// The latest check per webhook (a claim that found it enabled, or a re-check): when, and
    /// whether it could send.
    live: Mutex<HashMap<WebhookId, (Instant, bool)>>,
    round: AtomicU64,
}

/// See `Inner::recent_events`.
#[derive(Default)]
struct RecentEvents {
    /// Newest first, each with the stored revision it was read at.
    events: std::collections::VecDeque<(Arc<Event>, i64)>,
}

/// What this node has in flight, per webhook and per tenant (the claim's caps subtract it).
#[derive(Clone, Default)]
struct Busy {
    webhooks: HashMap<WebhookId, usize>,
    tenants: HashMap<TenantId, usize>,
}

impl Busy {
    fn add(&mut self, webhook: WebhookId, tenant: TenantId) {
        *self.webhooks.entry(webhook).or_default() += 1;
        *self.tenants.entry(tenant).or_default() += 1;
    }

    fn remove(&mut self, webhook: WebhookId, tenant: TenantId) {
        fn dec<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K) {
            if let Some(n) = map.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&k);
                }
            }
        }
        dec(&mut self.webhooks, webhook);
        dec(&mut self.tenants, tenant);
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
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
                busy: Mutex::new(Busy::default()),
                held: Mutex::new(HashMap::new()),
                recent_events: Mutex::default(),
                total: AtomicUsize::new(0),
                freed: Notify::new(),
                limiters: Mutex::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
                gone: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
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
    /// (A test reaches a retry or an expired lease without waiting through `Store::travel`.)
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        self.run_once_between(std::future::ready(())).await
    }

    /// [`Self::run_once`] that awaits `between` after the claim and before any send: lets a test
    /// change a claimed delivery's webhook (disable, delete) in the gap the re-check covers.
    pub async fn run_once_between(
        &self,
        between: impl std::future::Future<Output = ()>,
    ) -> Result<usize, StoreError> {
        let jobs = self.claim().await?;
        between.await;
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
            if let Ok(Processed::Sent(r, _, _)) = h.await {
                results.push(r);
            }
        }
        let ids: Vec<DeliveryId> = results.iter().map(|r| r.delivery_id).collect();
        let recorded = self.record(results).await;
        self.forget(ids);
        recorded?;
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
    async fn claim(&self) -> Result<Vec<Job>, StoreError> {
        let config = self.config();
        let room = config.max_inflight.saturating_sub(self.in_flight());
        if room == 0 {
            return Ok(Vec::new());
        }
        let busy = self
            .inner
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let known_events = {
            let recent = self
                .inner
                .recent_events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            recent.events.iter().map(|(e, rev)| (e.id, *rev)).collect()
        };
        // A check counts from when it started: a claim that read the webhook before a 410 was
        // committed must not overwrite the "gone" that came after its read (see `note_live`).
        let claim_started = Instant::now();
        let claim = self
            .inner
            .hookline
            .store
            .claim_due(ClaimRequest {
                lease: config.lease,
                limit: room.min(CLAIM_BATCH),
                per_webhook: config
                    .max_concurrency_per_webhook
                    .saturating_mul(QUEUE_AHEAD),
                per_tenant: config.max_in_flight_per_tenant,
                busy: busy.webhooks,
                busy_tenants: busy.tenants,
                round: self.inner.round.fetch_add(1, Ordering::Relaxed),
                known_events,
                default_max_attempts: config.retry_schedule.max_attempts(),
            })
            .await?;
        let recent = {
            let mut recent = self
                .inner
                .recent_events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in claim.events.values() {
                let revision = claim.revisions.get(&e.id).copied().unwrap_or_default();
                recent.events.retain(|(r, _)| r.id != e.id);
                recent.events.push_front((e.clone(), revision));
            }
            recent.events.truncate(RECENT_EVENTS);
            recent.events.clone()
        };
        let event_of = |id: &EventId| {
            claim
                .events
                .get(id)
                .or_else(|| recent.iter().map(|(e, _)| e).find(|e| e.id == *id))
        };
        if !claim.deliveries.is_empty() {
            self.inner.hookline.metrics.claim(claim.deliveries.len());
        }
        let mut jobs = Vec::with_capacity(claim.deliveries.len());
        {
            // The claim read these webhooks: that is a check as fresh as a re-check (on SQLite
            // the read follows the lease, so a webhook disabled in between shows here).
            for (id, w) in &claim.webhooks {
                self.note_live(*id, claim_started, w.enabled);
            }
        }
        let (claimed_at, wall_now) = (Instant::now(), hookline_core::time::now());
        {
            let mut busy = self
                .inner
                .busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for d in claim.deliveries {
                let (Some(webhook), Some(event), Some(tenant)) = (
                    claim.webhooks.get(&d.webhook_id),
                    event_of(&d.event_id),
                    claim.tenants.get(&d.tenant_id),
                ) else {
                    continue;
                };
                busy.add(d.webhook_id, d.tenant_id);
                self.inner
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(d.id, d.lease_token);
                let n = self.inner.total.fetch_add(1, Ordering::Relaxed) + 1;
                self.inner.hookline.metrics.set_in_flight(n);
                if d.attempt_number == 1 {
                    if let Ok(waited) = (wall_now - event.created_at).to_std() {
                        self.inner.hookline.metrics.stage(Stage::Claim, waited);
                    }
                }
                jobs.push(Job {
                    webhook: webhook.clone(),
                    event: event.clone(),
                    tenant: tenant.clone(),
                    delivery: d,
                    claimed_at,
                });
            }
        }
        Ok(jobs)
    }

    /// The send slots of webhook `id` (created on first use; dropped once idle, see `finish`).
    fn slots(&self, id: WebhookId) -> Arc<tokio::sync::Semaphore> {
        let cap = self.config().max_concurrency_per_webhook;
        self.inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(cap)))
            .clone()
    }

    fn limiter(&self, w: &Webhook) -> Option<Arc<RateLimiter>> {
        let mut map = self
            .inner
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        // Wait for one of the webhook's send slots (FIFO: held deliveries go out in claim order).
        let slots = self.slots(job.webhook.id);
        let _slot = tokio::select! {
            _ = shutdown.cancelled() => return unsent(&job.delivery),
            permit = slots.acquire_owned() => match permit {
                Ok(p) => p,
                // Never closed; if it were, sending without a slot beats losing the delivery.
                Err(_) => return unsent(&job.delivery),
            },
        };
        if let Some(limiter) = self.limiter(&job.webhook) {
            let wait = limiter.reserve();
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return unsent(&job.delivery),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let d = &job.delivery;
        let pending_gone = self
            .inner
            .gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job.webhook.id)
            .cloned();
        if let Some(committed) = pending_gone {
            // Its receiver said 410 a moment ago: wait for that result (and the disable) to be
            // committed; the check below then finds it gone.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return unsent(&job.delivery),
                _ = committed.cancelled() => {}
            }
        }
        if shutdown.is_cancelled() {
            return unsent(&job.delivery);
        }
        if !self.webhook_live(&job).await {
            // Deleted or disabled since the claim: no request. Cancelled with the webhook's reason
            // unless it can send again by now (or the lease moved on): then it goes out as usual.
            match self
                .inner
                .hookline
                .store
                .cancel_claimed(vec![(d.id, d.lease_token)])
                .await
            {
                Ok(1) => {
                    tracing::info!(
                        delivery_id = %d.id,
                        webhook_id = %d.webhook_id,
                        "delivery cancelled before sending: its webhook was disabled or deleted"
                    );
                    self.finish(d);
                    self.forget(vec![d.id]);
                    return Processed::Cancelled;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    delivery_id = %d.id,
                    "cancelling a delivery of a disabled webhook failed; sending it"
                ),
            }
        }
        let config = self.config();
        let target = Target {
            webhook: &job.webhook,
            event: &job.event,
            tenant_name: &job.tenant,
            delivery_id: d.id,
            message_id: d.message_id,
            item_index: d.item_index,
            format: d.format,
            attempt_number: d.attempt_number,
        };
        let started = Instant::now();
        let metrics = &self.inner.hookline.metrics;
        metrics.stage(Stage::Queue, started.duration_since(job.claimed_at));
        let o = attempt::attempt(&self.inner.sender, config, target).await;
        let answered = Instant::now();
        metrics.stage(Stage::Send, answered.duration_since(started));
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
        let gone = hookline_core::retry::endpoint_gone(o.attempt.status_code);
        if gone {
            self.inner
                .gone
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(job.webhook.id)
                .or_default();
        }
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
        let result = AttemptResult {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            lease_token: d.lease_token,
            attempt: o.attempt,
            next,
        };
        if gone {
            // Recorded here, before the slot is given up, so the webhook is disabled (and its
            // queue cancelled) before any held delivery of it can start.
            if let Err(e) = self.commit_transient(vec![result.clone()]).await {
                tracing::warn!(error = %e, "recording a 410 Gone failed; recording it alone");
                self.commit_alone(result).await;
            }
            self.forget(vec![d.id]);
            // The claim's "may send" no longer holds: known gone as of now (a check that started
            // earlier can't overwrite it), so the next send of it is cancelled, not sent.
            self.note_live(job.webhook.id, Instant::now(), false);
            if let Some(committed) = self
                .inner
                .gone
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&job.webhook.id)
            {
                committed.cancel();
            }
            self.finish(d);
            return Processed::Recorded;
        }
        self.finish(d);
        Processed::Sent(result, d.tenant_id, answered)
    }

    /// Caches a check of webhook `id` that started at `at`, unless a later one is cached already:
    /// a slow read (or claim) that began before a 410 was committed can't undo what came after.
    fn note_live(&self, id: WebhookId, at: Instant, live: bool) {
        let mut map = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&id) {
            Some((newer, _)) if *newer > at => {}
            _ => {
                map.insert(id, (at, live));
            }
        }
    }

    /// Whether the job's webhook may still send (enabled, not deleted): the re-check just before a
    /// send, so a webhook disabled or deleted after the claim gets no request. A check (the claim
    /// that found the webhook enabled, or a read of the database here) is trusted for
    /// [`LIVE_TTL`], so a send right after its claim costs nothing and keeps its order, and a
    /// delivery that waited (for its rate limit, say) reads again: one read per webhook per
    /// second at most, seen on every node. A read that fails counts as "may send" (at least once:
    /// the claim found the webhook enabled).
    async fn webhook_live(&self, job: &Job) -> bool {
        let id = job.webhook.id;
        let cached = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .copied();
        if let Some((at, live)) = cached {
            if at.elapsed() < LIVE_TTL {
                return live;
            }
        }
        let at = Instant::now();
        match self.inner.hookline.store.webhook_live(id).await {
            Ok(live) => {
                let mut map = self
                    .inner
                    .live
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if map.len() > 4096 {
                    map.retain(|_, (t, _)| t.elapsed() < LIVE_TTL);
                }
                drop(map);
                self.note_live(id, at, live);
                live
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook_id = %id, "re-checking a webhook before sending failed");
                true
            }
        }
    }

    fn finish(&self, d: &ClaimedDelivery) {
        {
            let mut busy = self
                .inner
                .busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            busy.remove(d.webhook_id, d.tenant_id);
            if !busy.webhooks.contains_key(&d.webhook_id) {
                // Nothing of this webhook is held here any more (its last send is over): its
                // slots go, so a node that served many webhooks keeps no state for the idle ones.
                // Under the `busy` lock (then `slots`; `slots()` takes only `slots`), so a claim
                // can't register new work for it in between and find the old semaphore.
                self.inner
                    .slots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&d.webhook_id);
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
        let stop_renewing = CancellationToken::new();
        let renewer = tokio::spawn(self.clone().renew_leases(stop_renewing.clone()));
        let wake = self.inner.hookline.wake.clone();
        // Other nodes' new work (PostgreSQL NOTIFY); never fires for a store without other writers.
        let remote = self.inner.hookline.store.wakeups().unwrap_or_default();
        let mut tasks = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let jobs = match self.claim().await {
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
            // The store says how long, by its clock (the database's on PostgreSQL); the wait
            // itself is monotonic (tokio's), so a wall clock stepped meanwhile changes nothing.
            let sleep = match self.inner.hookline.store.next_due_in().await {
                Ok(Some(wait)) => wait.min(IDLE_POLL),
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
        // Bounded whatever receivers or the database do: a send is bounded by its timeout, but a
        // database that is down would hold the result writer forever. Whatever is cut off here is
        // still leased; it is sent again when the lease runs out (at least once, never lost).
        let writer_abort = writer.abort_handle();
        let finish = async move {
            while tasks.join_next().await.is_some() {}
            drop(tx);
            let _ = writer.await;
        };
        let grace = self.config().shutdown_grace;
        if tokio::time::timeout(grace, finish).await.is_err() {
            writer_abort.abort();
            tracing::warn!(
                ?grace,
                "dispatcher gave up on sends or results still pending after the shutdown grace \
                 period; their deliveries are sent again when their leases run out"
            );
        }
        stop_renewing.cancel();
        let _ = renewer.await;
        tracing::info!("dispatcher stopped");
    }

    /// Commits results in batches. A batch the database can't take right now (`Unavailable`) is
    /// retried with backoff, never dropped (the lease would expire and the delivery be sent again).
    /// A batch it refuses for any other reason is split, so one bad row can't hold back the others:
    /// see [`Self::commit_alone`]. Deliveries given back unsent (shutdown) are released at once, so
    /// another node takes them now instead of after the lease.
    async fn result_writer(self, mut rx: mpsc::UnboundedReceiver<Processed>) {
        let mut received = Vec::with_capacity(RESULT_BATCH);
        let mut unsent = Vec::new();
        while rx.recv_many(&mut received, RESULT_BATCH).await > 0 {
            let mut batch = Vec::with_capacity(received.len());
            for p in received.drain(..) {
                match p {
                    Processed::Sent(r, tenant, answered) => batch.push((tenant, r, answered)),
                    Processed::Unsent(id, token) => unsent.push((id, token)),
                    Processed::Cancelled | Processed::Recorded => {}
                }
            }
            // Fair to tenants here too: a tenant with few results commits first, and no commit
            // is larger than RESULT_COMMIT, so a burst of one tenant's results (200 endpoints
            // timing out together) doesn't hold back another tenant's few behind it.
            let mut per_tenant: HashMap<TenantId, usize> = HashMap::new();
            for (tenant, _, _) in &batch {
                *per_tenant.entry(*tenant).or_default() += 1;
            }
            batch.sort_by_key(|(tenant, _, _)| per_tenant[tenant]);
            let (batch, answered): (Vec<AttemptResult>, Vec<Instant>) =
                batch.into_iter().map(|(_, r, at)| (r, at)).unzip();
            for (chunk, answered) in batch
                .chunks(RESULT_COMMIT)
                .zip(answered.chunks(RESULT_COMMIT))
            {
                let ids: Vec<DeliveryId> = chunk.iter().map(|r| r.delivery_id).collect();
                if let Err(e) = self.commit_transient(chunk.to_vec()).await {
                    tracing::warn!(error = %e, n = chunk.len(), "a batch of results was refused; recording them one by one");
                    for r in chunk {
                        self.commit_alone(r.clone()).await;
                    }
                }
                for at in answered {
                    self.inner
                        .hookline
                        .metrics
                        .stage(Stage::Record, at.elapsed());
                }
                self.forget(ids);
                // A committed result can make more claimable (the next delivery of the same
                // record, under `ordering: entity`): let the claim loop look again.
                self.inner.freed.notify_one();
            }
        }
        if !unsent.is_empty() {
            let n = unsent.len();
            self.forget(unsent.iter().map(|(id, _)| *id).collect());
            match self.inner.hookline.store.release(unsent).await {
                Ok(()) => tracing::info!(n, "released claimed deliveries that were not sent"),
                // Their leases run out and another node (or this one, restarted) takes them.
                Err(e) => tracing::warn!(error = %e, n, "releasing unsent deliveries failed"),
            }
        }
    }

    /// Stops renewing these leases: their results are recorded (or given up on).
    fn forget(&self, ids: Vec<DeliveryId>) {
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            held.remove(&id);
        }
    }

    /// Extends every lease this node holds, every third of the lease, until `stop`. A node that
    /// dies stops renewing, so its leases run out and other nodes take its work as before.
    async fn renew_leases(self, stop: CancellationToken) {
        let lease = self.config().lease;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(lease / 3) => {}
            }
            let held: Vec<(DeliveryId, LeaseToken)> = self
                .inner
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(id, token)| (*id, *token))
                .collect();
            if held.is_empty() {
                continue;
            }
            let n = held.len();
            if let Err(e) = self.inner.hookline.store.renew_leases(held, lease).await {
                tracing::warn!(error = %e, n, "renewing leases failed; retrying at the next round");
            }
        }
    }

    /// Records `results`, retrying for as long as the database is unavailable; returns any other
    /// error (the database refused the rows themselves, so retrying the same rows can't help).
    async fn commit_transient(&self, results: Vec<AttemptResult>) -> Result<(), StoreError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.record(results.clone()).await {
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, n = results.len(), "recording results failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Records one result the database refused in a batch. If it refuses it alone too, the attempt
    /// is recorded without what the receiver sent (headers and body) and with an `internal` note
    /// saying why, so the delivery still moves on; if even that fails, the result is dropped with an
    /// error in the log, and the delivery is sent again once its lease runs out.
    async fn commit_alone(&self, r: AttemptResult) {
        let e = match self.commit_transient(vec![r.clone()]).await {
            Ok(()) => return,
            Err(e) => e,
        };
        self.inner.hookline.metrics.unstorable_result();
        let mut bare = r;
        let a = &mut bare.attempt;
        a.response_headers.clear();
        a.response_body = None;
        a.response_truncated = false;
        a.error_message = Some(format!(
            "the database refused this attempt's response ({e}); recorded without its headers and body"
        ));
        a.error_kind.get_or_insert_with(|| "internal".to_string());
        let (delivery_id, webhook_id) = (bare.delivery_id, bare.webhook_id);
        match self.commit_transient(vec![bare]).await {
            Ok(()) => tracing::warn!(
                %delivery_id, %webhook_id, error = %e,
                "recorded an attempt without its response: the database refused it"
            ),
            Err(e2) => tracing::error!(
                %delivery_id, %webhook_id, error = %e2, first_error = %e,
                "could not record an attempt at all; the delivery will be sent again after its lease"
            ),
        }
    }
}

/// What became of one claimed delivery.
// Moved once through a channel; boxing the common variant would cost an allocation per attempt.
#[allow(clippy::large_enum_variant)]
enum Processed {
    /// Sent: the attempt to record, its tenant, and when the answer came (the record stage starts).
    Sent(AttemptResult, TenantId, Instant),
    /// Given back unsent at shutdown: (delivery id, lease token) to release.
    Unsent(DeliveryId, LeaseToken),
    /// Not sent: its webhook was disabled or deleted after the claim, and it is cancelled already.
    Cancelled,
    /// Sent, and its result recorded already (a 410 Gone: see `Inner::gone`).
    Recorded,
}

struct Job {
    webhook: Arc<Webhook>,
    event: Arc<Event>,
    tenant: String,
    delivery: ClaimedDelivery,
    /// When this node leased it (the queue stage starts here).
    claimed_at: Instant,
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
