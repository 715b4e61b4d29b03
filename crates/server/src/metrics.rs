//! What `/metrics` shows: this node's attempt counters and histograms, and the store's backlog.
//!
//! Built on `prometheus-client` with one registry per [`Metrics`] (not a process-global recorder),
//! so several Hookline instances in one process — the test suite, `hookline bench` — never mix
//! their numbers. The dispatcher records into it; the `/metrics` handler asks the store for the
//! backlog (index-only queries, no scan of the whole delivery table) and renders the text format.
//! See ARCHITECTURE.md, "Observability".

use hookline_store::{Backlog, DeliveryStatus, Pruned};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Labels = [(&'static str, &'static str); 1];

/// The node's metrics. Cheap to share behind an `Arc`; every method is lock-free or nearly so.
pub struct Metrics {
    registry: Registry,
    attempts: Counter,
    delivered: Counter,
    failed_attempts: Counter,
    stale_results: Counter,
    /// Claim transactions that leased at least one delivery, and the deliveries they leased:
    /// their ratio is the claim's batch size, which decides what each claim's fixed cost adds
    /// per delivery on the single writer.
    claims: Counter,
    claimed: Counter,
    unstorable_results: Counter,
    attempt_seconds: Family<Labels, Histogram>,
    first_attempt_seconds: Histogram,
    deliveries: Family<Labels, Gauge>,
    oldest_due_seconds: Gauge<f64, AtomicU64>,
    in_flight: Gauge,
    /// Rows retention deleted on this node, by `table` (attempts, deliveries, events).
    pruned: Family<Labels, Counter>,
    /// Where a delivery's time goes, by `stage` (see [`Stage`]).
    stage_seconds: Family<Labels, Histogram>,
    /// Every stage time, kept only while [`Metrics::sample_stages`] is on (`hookline bench`
    /// reports exact percentiles from them; a histogram's buckets are too coarse for that).
    stage_samples: Mutex<Option<[Vec<f32>; Stage::ALL.len()]>>,
    /// When the terminal statuses' counts were last taken (they cost a scan).
    terminal_counted_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("attempts", &self.attempts.get())
            .field("in_flight", &self.in_flight.get())
            .finish_non_exhaustive()
    }
}

/// How an attempt ended, as the `outcome` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    /// 2xx.
    Delivered,
    /// An HTTP status that is not 2xx.
    Rejected,
    /// No HTTP status: DNS, connect, TLS, timeout, protocol, refused destination.
    Error,
}

impl AttemptClass {
    fn label(self) -> &'static str {
        match self {
            AttemptClass::Delivered => "delivered",
            AttemptClass::Rejected => "rejected",
            AttemptClass::Error => "error",
        }
    }
}

/// The stages of a delivery, in order: each is the time from the end of the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A publish's transaction: the events and their deliveries written and committed (fsync
    /// included), one sample per publish request.
    Commit,
    /// From the event's creation (just before its publish commits, so [`Stage::Commit`] is
    /// inside it) to the claim that leased the delivery to a node (first attempts).
    Claim,
    /// From the claim to the start of the request: waiting for a send slot, the rate limit.
    Queue,
    /// The request: connect (or a kept-alive connection), send, the receiver's answer.
    Send,
    /// From the answer to the commit of the attempt's result.
    Record,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Commit,
        Stage::Claim,
        Stage::Queue,
        Stage::Send,
        Stage::Record,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Commit => "commit",
            Stage::Claim => "claim",
            Stage::Queue => "queue",
            Stage::Send => "send",
            Stage::Record => "record",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn histogram() -> Histogram {
    // 1 ms … about 65 s in doublings: covers loopback sends and the 10 s timeout alike.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookline");
        let attempts = Counter::default();
        let delivered = Counter::default();
        let failed_attempts = Counter::default();
        let stale_results = Counter::default();
        let (claims, claimed) = (Counter::default(), Counter::default());
        let unstorable_results = Counter::default();
        let attempt_seconds = Family::<Labels, Histogram>::new_with_constructor(histogram as _);
        let first_attempt_seconds = histogram();
        let deliveries = Family::<Labels, Gauge>::default();
        let oldest_due_seconds = Gauge::<f64, AtomicU64>::default();
        let in_flight = Gauge::default();
        let pruned = Family::<Labels, Counter>::default();
        let stage_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            // 50 µs … about 100 s in doublings: the stages of a loopback delivery are sub-ms.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
        });
        registry.register(
            "delivery_stage_seconds",
            "Where a delivery's time goes, by stage: commit (a publish's transaction), claim \
             (event created to lease, first attempts; the commit included), queue (lease to \
             request), send (the request), record (answer to committed result).",
            stage_seconds.clone(),
        );
        registry.register(
            "pruned",
            "Rows deleted by retention on this node, by table.",
            pruned.clone(),
        );
        registry.register(
            "attempts",
            "HTTP attempts made by this node.",
            attempts.clone(),
        );
        registry.register("delivered", "Attempts answered 2xx.", delivered.clone());
        registry.register(
            "failed_attempts",
            "Attempts that failed (error or non-2xx).",
            failed_attempts.clone(),
        );
        registry.register(
            "stale_results",
            "Results discarded because the lease had moved on.",
            stale_results.clone(),
        );
        registry.register(
            "claims",
            "Claim transactions of this node that leased at least one delivery.",
            claims.clone(),
        );
        registry.register(
            "claimed",
            "Deliveries leased by this node's claims.",
            claimed.clone(),
        );
        registry.register(
            "unstorable_results",
            "Attempt results the database refused (recorded without their response, or dropped).",
            unstorable_results.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Time from the start of an attempt to its outcome, by outcome.",
            attempt_seconds.clone(),
        );
        registry.register(
            "first_attempt_latency_seconds",
            "Time from an event's commit to the start of its delivery's first attempt.",
            first_attempt_seconds.clone(),
        );
        registry.register(
            "deliveries",
            "Deliveries in the store by status.",
            deliveries.clone(),
        );
        registry.register(
            "backlog_oldest_due_age_seconds",
            "How long the oldest due delivery has been waiting (0 when none is due).",
            oldest_due_seconds.clone(),
        );
        registry.register(
            "in_flight",
            "Deliveries this node has claimed and not yet finished sending.",
            in_flight.clone(),
        );
        Metrics {
            registry,
            attempts,
            delivered,
            failed_attempts,
            stale_results,
            claims,
            claimed,
            unstorable_results,
            attempt_seconds,
            first_attempt_seconds,
            deliveries,
            oldest_due_seconds,
            in_flight,
            pruned,
            stage_seconds,
            stage_samples: Mutex::new(None),
            terminal_counted_at: Mutex::new(None),
        }
    }

    /// One delivery spent `took` in `stage`.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stage_seconds
            .get_or_create(&[("stage", stage.label())])
            .observe(took.as_secs_f64());
        let mut samples = self
            .stage_samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(all) = samples.as_mut() {
            let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
            // Bounded: a long benchmark keeps the first million of each.
            if all[i].len() < 1_000_000 {
                all[i].push(took.as_secs_f32());
            }
        }
    }

    /// Starts keeping every stage time (clearing what was kept), or stops and returns them: per
    /// stage, the times in seconds, sorted.
    pub fn sample_stages(&self, on: bool) -> Vec<(Stage, Vec<f32>)> {
        let mut samples = self
            .stage_samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = samples.take();
        if on {
            *samples = Some(Default::default());
        }
        taken
            .map(|all| {
                Stage::ALL
                    .iter()
                    .zip(all)
                    .map(|(s, mut v)| {
                        v.sort_by(|a, b| a.total_cmp(b));
                        (*s, v)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One attempt finished after `took`; `since_commit` is set for a delivery's first attempt.
    pub fn attempt_finished(
        &self,
        class: AttemptClass,
        took: Duration,
        since_commit: Option<Duration>,
    ) {
        self.attempts.inc();
        match class {
            AttemptClass::Delivered => self.delivered.inc(),
            _ => self.failed_attempts.inc(),
        };
        self.attempt_seconds
            .get_or_create(&[("outcome", class.label())])
            .observe(took.as_secs_f64());
        if let Some(d) = since_commit {
            self.first_attempt_seconds.observe(d.as_secs_f64());
        }
    }

    pub fn stale_results(&self, n: u64) {
        self.stale_results.inc_by(n);
    }

    /// A claim leased `n` deliveries (`n` > 0).
    pub fn claim(&self, n: usize) {
        self.claims.inc();
        self.claimed.inc_by(n as u64);
    }

    /// (claims, deliveries claimed) so far on this node (for `hookline bench`).
    pub fn claim_counts(&self) -> (u64, u64) {
        (self.claims.get(), self.claimed.get())
    }

    pub fn unstorable_result(&self) {
        self.unstorable_results.inc();
    }

    /// What one retention pass deleted.
    pub fn pruned(&self, p: Pruned) {
        for (table, n) in [
            ("attempts", p.attempts),
            ("deliveries", p.deliveries),
            ("events", p.events),
        ] {
            self.pruned.get_or_create(&[("table", table)]).inc_by(n);
        }
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.set(n as i64);
    }

    /// Attempts this node has made (for tools and tests).
    pub fn attempts(&self) -> u64 {
        self.attempts.get()
    }

    /// Whether the terminal statuses' counts are older than `ttl` (or were never taken); when so,
    /// marks them as taken now, so concurrent scrapes don't all pay for the scan.
    pub fn terminal_counts_stale(&self, ttl: Duration) -> bool {
        let mut at = self
            .terminal_counted_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let stale = at.is_none_or(|t| t.elapsed() >= ttl);
        if stale {
            *at = Some(Instant::now());
        }
        stale
    }

    /// Renders the OpenMetrics text format, with the store's `backlog` as of now. Unless
    /// `with_terminal`, the terminal statuses keep the counts of their last refresh.
    pub fn render(&self, backlog: &Backlog, with_terminal: bool) -> String {
        for status in DeliveryStatus::ALL {
            if status.is_terminal() && !with_terminal {
                continue;
            }
            let n = backlog.count(status);
            self.deliveries
                .get_or_create(&[("status", status.as_str())])
                .set(n as i64);
        }
        self.oldest_due_seconds
            .set(backlog.oldest_due_age.map_or(0.0, |d| d.as_secs_f64()));
        let mut out = String::new();
        // Writing into a String can't fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_backlog() {
        let m = Metrics::new();
        m.attempt_finished(
            AttemptClass::Delivered,
            Duration::from_millis(3),
            Some(Duration::from_millis(5)),
        );
        m.attempt_finished(AttemptClass::Error, Duration::from_secs(10), None);
        let backlog = Backlog {
            counts: vec![(DeliveryStatus::Pending, 7)],
            oldest_due_age: Some(Duration::from_secs(2)),
        };
        let text = m.render(&backlog, true);
        assert!(text.contains("hookline_attempts_total 2"), "{text}");
        assert!(text.contains("hookline_delivered_total 1"), "{text}");
        assert!(
            text.contains("hookline_deliveries{status=\"pending\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("hookline_attempt_duration_seconds_count{outcome=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hookline_first_attempt_latency_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("hookline_backlog_oldest_due_age_seconds 2.0"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn retention_passes_add_up_per_table() {
        let m = Metrics::new();
        for events in [1, 2] {
            m.pruned(Pruned {
                attempts: 10,
                deliveries: 4,
                events,
            });
        }
        let text = m.render(&Backlog::default(), true);
        for line in [
            "hookline_pruned_total{table=\"attempts\"} 20",
            "hookline_pruned_total{table=\"deliveries\"} 8",
            "hookline_pruned_total{table=\"events\"} 3",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
