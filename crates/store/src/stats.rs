//! The per-hour statistics of each webhook (`webhook_hours`), kept by both backends the same way:
//! a batch of recorded attempts is folded in Rust into one [`HourStats`] per (webhook, hour), and
//! each group is added to its stored row by an upsert whose `SET` clause is written here once, so
//! SQLite and PostgreSQL count identically. The latency buckets are columns `latency_0` …
//! `latency_15` (one per [`hookline_core::stats::BUCKETS`]), so an upsert adds element-wise in SQL
//! without reading the row first.

use crate::model::{Attempt, AttemptResult, NextState, WebhookHour};
use hookline_core::ids::WebhookId;
use hookline_core::stats::{hour_of, HourStats, BUCKETS};
use hookline_core::time::Timestamp;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Whether an attempt counts as delivered: its delivery was delivered by it, or it was answered 2xx.
pub(crate) fn ok(delivered: bool, a: &Attempt) -> bool {
    delivered || matches!(a.status_code, Some(200..=299))
}

/// The attempts of a batch grouped per (webhook, hour of `started_at`), ordered by webhook then
/// hour (which is also the order the rows are written in, so concurrent writers lock them alike).
pub(crate) fn hours<'a>(
    attempts: impl IntoIterator<Item = (WebhookId, &'a Attempt, bool)>,
) -> Vec<WebhookHour> {
    let mut groups: BTreeMap<(WebhookId, Timestamp), HourStats> = BTreeMap::new();
    for (webhook_id, a, delivered) in attempts {
        let hour = hour_of(a.started_at);
        groups
            .entry((webhook_id, hour))
            .or_insert_with(|| HourStats::new(hour))
            .add(ok(delivered, a), a.total_ms);
    }
    groups
        .into_iter()
        .map(|((webhook_id, _), stats)| WebhookHour { webhook_id, stats })
        .collect()
}

/// [`hours`] of applied attempt results: `NextState::Delivered` or a 2xx answer counts as delivered.
pub(crate) fn hours_of_results<'a>(
    results: impl IntoIterator<Item = &'a AttemptResult>,
) -> Vec<WebhookHour> {
    hours(
        results
            .into_iter()
            .map(|r| (r.webhook_id, &r.attempt, r.next == NextState::Delivered)),
    )
}

/// The latency bucket columns, in bucket order.
pub(crate) fn latency_cols() -> impl Iterator<Item = String> {
    (0..BUCKETS).map(|i| format!("latency_{i}"))
}

/// Every `webhook_hours` column, in the order rows are written and read.
pub(crate) static HOUR_COLS: LazyLock<String> = LazyLock::new(|| {
    let mut cols = vec![
        "webhook_id".to_string(),
        "hour".into(),
        "delivered".into(),
        "failed".into(),
    ];
    cols.extend(latency_cols());
    cols.join(", ")
});

/// The `ON CONFLICT` clause that adds an upserted group to its stored row (the same text in both
/// dialects).
pub(crate) static MERGE_HOUR: LazyLock<String> = LazyLock::new(|| {
    let sets = ["delivered".to_string(), "failed".into()]
        .into_iter()
        .chain(latency_cols())
        .map(|c| format!("{c} = webhook_hours.{c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ON CONFLICT (webhook_id, hour) DO UPDATE SET {sets}")
});

/// A stored row back as a [`WebhookHour`]; `latency` holds the bucket columns in order.
pub(crate) fn row(
    webhook_id: WebhookId,
    hour: Timestamp,
    delivered: i64,
    failed: i64,
    latency: impl IntoIterator<Item = i64>,
) -> WebhookHour {
    WebhookHour {
        webhook_id,
        stats: HourStats {
            hour,
            delivered: delivered.max(0) as u64,
            failed: failed.max(0) as u64,
            latency: latency.into_iter().map(|n| n.max(0) as u64).collect(),
        },
    }
}

/// Retention: hours that started before this are deleted with the attempts before `attempts_before`
/// (the hour the cutoff falls in is kept whole).
pub(crate) fn retention_cutoff(attempts_before: Timestamp) -> Timestamp {
    hour_of(attempts_before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::ids::{DeliveryId, LeaseToken};
    use uuid::Uuid;

    fn at(s: &str) -> Timestamp {
        hookline_core::time::parse(s).unwrap()
    }

    fn result(
        webhook: u128,
        started: &str,
        next: NextState,
        code: Option<u16>,
        ms: f64,
    ) -> AttemptResult {
        let mut attempt = Attempt::blank(at(started));
        attempt.status_code = code;
        attempt.total_ms = ms;
        AttemptResult {
            delivery_id: DeliveryId::default(),
            webhook_id: WebhookId(Uuid::from_u128(webhook)),
            lease_token: LeaseToken::default(),
            attempt,
            next,
        }
    }

    #[test]
    fn batches_fold_into_one_group_per_webhook_and_hour() {
        let retry = NextState::RetryAfter(std::time::Duration::from_secs(60));
        let rs = [
            result(
                2,
                "2026-01-01T10:59:59Z",
                NextState::Delivered,
                Some(200),
                3.0,
            ),
            result(1, "2026-01-01T10:10:00Z", retry, Some(503), 40.0),
            result(2, "2026-01-01T10:00:00Z", NextState::Failed, None, 1e9),
            result(2, "2026-01-01T11:00:00Z", retry, Some(204), 7.0),
            result(1, "2026-01-01T10:50:00Z", NextState::Delivered, None, 5.0),
        ];
        let h = hours_of_results(&rs);
        let keys: Vec<(u128, String)> = h
            .iter()
            .map(|g| {
                (
                    g.webhook_id.0.as_u128(),
                    hookline_core::time::format(&g.stats.hour),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (1, "2026-01-01T10:00:00.000Z".to_string()),
                (2, "2026-01-01T10:00:00.000Z".to_string()),
                (2, "2026-01-01T11:00:00.000Z".to_string()),
            ]
        );
        // Webhook 1: a 503 that will be retried fails; a delivered result counts even without a code.
        assert_eq!((h[0].stats.delivered, h[0].stats.failed), (1, 1));
        assert_eq!(h[0].stats.latency[0], 1);
        assert_eq!(h[0].stats.latency[3], 1);
        assert_eq!((h[1].stats.delivered, h[1].stats.failed), (1, 1));
        assert_eq!(h[1].stats.latency[BUCKETS - 1], 1);
        // A 2xx counts as delivered even if the dispatcher decided otherwise.
        assert_eq!((h[2].stats.delivered, h[2].stats.failed), (1, 0));
        assert_eq!(h[2].stats.latency[1], 1);
    }

    #[test]
    fn statements_name_every_bucket() {
        assert!(HOUR_COLS.starts_with("webhook_id, hour, delivered, failed, latency_0,"));
        assert!(HOUR_COLS.ends_with(&format!("latency_{}", BUCKETS - 1)));
        assert!(MERGE_HOUR.contains("latency_15 = webhook_hours.latency_15 + excluded.latency_15"));
        // The migrations declare exactly these columns.
        for sql in [
            include_str!("../migrations/sqlite/0002_console.sql"),
            include_str!("../migrations/postgres/0002_console.sql"),
        ] {
            for c in latency_cols() {
                assert!(sql.contains(&format!("{c} ")), "{c}");
            }
            assert!(!sql.contains(&format!("latency_{BUCKETS}")));
        }
    }

    #[test]
    fn retention_keeps_the_cutoff_hour() {
        assert_eq!(
            retention_cutoff(at("2026-01-01T10:30:00Z")),
            at("2026-01-01T10:00:00Z")
        );
    }
}
