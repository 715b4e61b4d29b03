//! Per-hour delivery statistics of a webhook, kept pre-aggregated so the console's charts and
//! success rates cost a handful of rows whatever the size of the delivery log.
//!
//! An attempt falls into its webhook's hour (UTC, truncated) and counts as delivered or failed;
//! its total time falls into one of [`LATENCY_BUCKETS_MS`]. Percentiles are read back from the
//! buckets, so they are exact to a bucket's width — plenty for a chart.

use crate::time::Timestamp;
use chrono::{DurationRound, TimeDelta};

/// Upper bounds (inclusive, milliseconds) of the latency buckets; the last bucket is open.
pub const LATENCY_BUCKETS_MS: [f64; 15] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 15_000.0,
    30_000.0, 60_000.0, 120_000.0,
];
/// Number of buckets: one per bound plus the open one above the last.
pub const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// The bucket an attempt of `total_ms` falls into.
pub fn bucket(total_ms: f64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&b| total_ms <= b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: Timestamp) -> Timestamp {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// One webhook's attempts in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourStats {
    pub hour: Timestamp,
    /// Attempts answered 2xx.
    pub delivered: u64,
    /// Attempts that failed (error or non-2xx).
    pub failed: u64,
    /// Attempts per latency bucket ([`BUCKETS`] entries).
    pub latency: Vec<u64>,
}

impl HourStats {
    pub fn new(hour: Timestamp) -> Self {
        HourStats {
            hour,
            delivered: 0,
            failed: 0,
            latency: vec![0; BUCKETS],
        }
    }

    /// Counts one attempt.
    pub fn add(&mut self, ok: bool, total_ms: f64) {
        if ok {
            self.delivered += 1;
        } else {
            self.failed += 1;
        }
        self.latency[bucket(total_ms)] += 1;
    }

    /// Adds another hour's (or webhook's) counts into this one.
    pub fn merge(&mut self, other: &HourStats) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
    }

    pub fn attempts(&self) -> u64 {
        self.delivered + self.failed
    }

    /// Share of attempts that delivered, `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        let n = self.attempts();
        (n > 0).then(|| self.delivered as f64 / n as f64)
    }

    /// The `q` quantile (0..=1) of attempt latency in milliseconds: the upper bound of the bucket
    /// it falls in (the last finite bound for the open bucket). `None` without attempts.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let last = LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1];
                return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(last));
            }
        }
        None
    }
}

/// Sums hours into one total.
pub fn total(hours: &[HourStats]) -> Option<HourStats> {
    let first = hours.first()?;
    let mut t = HourStats::new(first.hour);
    for h in hours {
        t.merge(h);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fall_into_their_bucket() {
        assert_eq!(bucket(0.3), 0);
        assert_eq!(bucket(5.0), 0);
        assert_eq!(bucket(5.1), 1);
        assert_eq!(bucket(999.0), 7);
        assert_eq!(bucket(1e9), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut h = HourStats::new(crate::time::now());
        assert_eq!(h.latency_quantile(0.5), None);
        assert_eq!(h.success_rate(), None);
        for _ in 0..90 {
            h.add(true, 3.0);
        }
        for _ in 0..10 {
            h.add(false, 400.0);
        }
        assert_eq!(h.latency_quantile(0.5), Some(5.0));
        assert_eq!(h.latency_quantile(0.9), Some(5.0));
        assert_eq!(h.latency_quantile(0.95), Some(500.0));
        assert_eq!(h.success_rate(), Some(0.9));
        let mut slow = HourStats::new(h.hour);
        slow.add(false, 1e9);
        assert_eq!(slow.latency_quantile(0.5), Some(120_000.0));
        let t = total(&[h.clone(), slow]).unwrap();
        assert_eq!(t.attempts(), 101);
    }

    #[test]
    fn hours_truncate() {
        let at = crate::time::parse("2026-03-04T05:06:07.891Z").unwrap();
        assert_eq!(
            crate::time::format(&hour_of(at)),
            "2026-03-04T05:00:00.000Z"
        );
    }
}
