//! How a batch of recorded attempts moves each webhook's failure streak — computed once, in Rust,
//! and applied by every backend with the same UPDATE, so SQLite and PostgreSQL can't disagree.

use crate::{AttemptResult, NextState};
use hookline_core::time::Timestamp;
use uuid::Uuid;

/// The net effect of a batch on one webhook's streak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthDelta {
    pub webhook_id: Uuid,
    /// A delivery succeeded in the batch: the streak restarts from the failures after it.
    pub reset: bool,
    /// Failed attempts after the last success (all of them when there was none).
    pub failures: u64,
    /// When the first of those failures started.
    pub first_failure_at: Option<Timestamp>,
    /// When the last attempt of the batch started (the time the disable rule is judged at).
    pub last_at: Timestamp,
}

/// Deltas per webhook, in first-seen order, from the results that were applied.
pub fn deltas<'a>(results: impl IntoIterator<Item = &'a AttemptResult>) -> Vec<HealthDelta> {
    let mut out: Vec<HealthDelta> = Vec::new();
    for r in results {
        let at = r.attempt.started_at;
        let i = match out.iter().position(|d| d.webhook_id == r.webhook_id) {
            Some(i) => i,
            None => {
                out.push(HealthDelta {
                    webhook_id: r.webhook_id,
                    reset: false,
                    failures: 0,
                    first_failure_at: None,
                    last_at: at,
                });
                out.len() - 1
            }
        };
        let d = &mut out[i];
        d.last_at = d.last_at.max(at);
        if r.next == NextState::Delivered {
            d.reset = true;
            d.failures = 0;
            d.first_failure_at = None;
        } else {
            d.failures += 1;
            d.first_failure_at.get_or_insert(at);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attempt;

    fn result(webhook: Uuid, ok: bool, secs: i64) -> AttemptResult {
        let at = hookline_core::time::parse("2026-01-01T00:00:00Z").unwrap()
            + chrono::Duration::seconds(secs);
        AttemptResult {
            delivery_id: Uuid::nil(),
            webhook_id: webhook,
            lease_token: Uuid::nil(),
            attempt: Attempt {
                id: Uuid::nil(),
                delivery_id: Uuid::nil(),
                attempt_number: 1,
                started_at: at,
                url: String::new(),
                status_code: None,
                error_kind: None,
                error_message: None,
                dns_ms: None,
                connect_ms: None,
                tls_ms: None,
                ttfb_ms: None,
                total_ms: 0.0,
                request_headers: vec![],
                response_headers: vec![],
                response_body: None,
                response_truncated: false,
            },
            next: if ok {
                NextState::Delivered
            } else {
                NextState::Failed
            },
        }
    }

    #[test]
    fn streaks_restart_after_a_success() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let rs = [
            result(a, false, 1),
            result(b, false, 2),
            result(a, true, 3),
            result(a, false, 4),
            result(a, false, 5),
            result(b, false, 6),
        ];
        let d = deltas(&rs);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].reset, d[0].failures), (true, 2));
        assert_eq!(d[0].first_failure_at, Some(rs[3].attempt.started_at));
        assert_eq!((d[1].reset, d[1].failures), (false, 2));
        assert_eq!(d[1].first_failure_at, Some(rs[1].attempt.started_at));
        assert_eq!(d[1].last_at, rs[5].attempt.started_at);
    }
}
