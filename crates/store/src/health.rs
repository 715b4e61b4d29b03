//! How a batch of recorded attempts moves each webhook's failure streak, and whether the streak
//! now disables the webhook — decided once, in Rust, and applied by every backend with the same
//! UPDATE, so SQLite and PostgreSQL can't disagree.

use crate::model::{AttemptResult, Event, NextState};
use hookline_core::ids::{EventId, TenantId, WebhookId};
use hookline_core::retry::{self, DisablePolicy};
use hookline_core::time::Timestamp;

/// The net effect of a batch on one webhook's streak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthDelta {
    pub webhook_id: WebhookId,
    /// A delivery succeeded in the batch: the streak restarts from the failures after it.
    pub reset: bool,
    /// Failed attempts after the last success (all of them when there was none).
    pub failures: u64,
    /// When the first of those failures started.
    pub first_failure_at: Option<Timestamp>,
    /// When the last attempt of the batch started (the time the disable rule is judged at).
    pub last_at: Timestamp,
    /// A receiver answered 410 Gone in the batch: the webhook goes off at once, whatever the
    /// streak (a later success in the same batch does not undo what the receiver said).
    pub gone: bool,
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
                    gone: false,
                });
                out.len() - 1
            }
        };
        let d = &mut out[i];
        d.last_at = d.last_at.max(at);
        d.gone |= retry::endpoint_gone(r.attempt.status_code);
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

/// A webhook's streak as stored once a batch's delta was applied (what the UPDATE returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streak {
    pub enabled: bool,
    pub consecutive_failures: u64,
    pub failing_since: Option<Timestamp>,
}

/// Why the webhook must be disabled now, or `None`.
///
/// Only an enabled webhook is disabled (an already disabled one keeps its first reason). A 410 Gone
/// in the batch disables it at once with reason `endpoint_gone`. Otherwise only a batch that added
/// failures can disable (a batch ending in a success never does). How long it has been failing is
/// measured up to the batch's last attempt rather than the clock, so the verdict depends on the
/// attempts alone, not on when the batch happened to be written.
pub fn disable_reason(
    delta: &HealthDelta,
    stored: &Streak,
    policy: &DisablePolicy,
) -> Option<String> {
    if !stored.enabled {
        return None;
    }
    if delta.gone {
        return Some(retry::ENDPOINT_GONE.to_string());
    }
    if delta.failures == 0 {
        return None;
    }
    let failing_for = stored
        .failing_since
        .map(|since| (delta.last_at - since).to_std().unwrap_or_default())
        .unwrap_or_default();
    policy.verdict(stored.consecutive_failures, failing_for)
}

/// The operational `webhook.disabled` event for a webhook Hookline just switched off; the backends
/// publish it in the transaction that disables the webhook, so the two can't be seen apart.
pub fn disabled_event(
    tenant_id: TenantId,
    webhook_id: WebhookId,
    name: &str,
    url: &str,
    reason: &str,
) -> Event {
    let now = hookline_core::time::now();
    Event {
        id: EventId::new(),
        tenant_id,
        event_type: "webhook.disabled".into(),
        occurred_at: now,
        source: None,
        source_id: None,
        actor_id: None,
        entity_type: Some("webhook".into()),
        entity_id: Some(webhook_id.to_string()),
        data: hookline_core::catalog::webhook_disabled_data(webhook_id, name, url, reason, &now),
        changes: None,
        batch: None,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attempt;
    use hookline_core::ids::{DeliveryId, LeaseToken};
    use std::time::Duration;
    use uuid::Uuid;

    fn result(webhook: WebhookId, ok: bool, secs: i64) -> AttemptResult {
        let at = hookline_core::time::parse("2026-01-01T00:00:00Z").unwrap()
            + chrono::Duration::seconds(secs);
        AttemptResult {
            delivery_id: DeliveryId::default(),
            webhook_id: webhook,
            lease_token: LeaseToken::default(),
            attempt: Attempt::blank(at),
            next: if ok {
                NextState::Delivered
            } else {
                NextState::Failed
            },
        }
    }

    #[test]
    fn streaks_restart_after_a_success() {
        let (a, b) = (WebhookId(Uuid::from_u128(1)), WebhookId(Uuid::from_u128(2)));
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

    fn at(secs: i64) -> Timestamp {
        hookline_core::time::parse("2026-01-01T00:00:00Z").unwrap()
            + chrono::Duration::seconds(secs)
    }

    fn delta(failures: u64, last_at: i64) -> HealthDelta {
        HealthDelta {
            webhook_id: WebhookId::default(),
            reset: false,
            failures,
            first_failure_at: (failures > 0).then(|| at(0)),
            last_at: at(last_at),
            gone: false,
        }
    }

    fn streak(enabled: bool, failures: u64, since: Option<i64>) -> Streak {
        Streak {
            enabled,
            consecutive_failures: failures,
            failing_since: since.map(at),
        }
    }

    #[test]
    fn a_long_enough_streak_disables() {
        let policy = DisablePolicy {
            max_consecutive_failures: 3,
            max_failing_for: Duration::from_secs(3600),
        };
        let reason = disable_reason(&delta(1, 10), &streak(true, 3, Some(0)), &policy);
        assert!(reason.unwrap().contains("3 consecutive"));
        assert_eq!(
            disable_reason(&delta(1, 10), &streak(true, 2, Some(0)), &policy),
            None
        );
    }

    #[test]
    fn an_old_streak_disables_judged_at_the_last_attempt() {
        let policy = DisablePolicy {
            max_consecutive_failures: 1000,
            max_failing_for: Duration::from_secs(3600),
        };
        // Failing since 0, last attempt at 3600: an hour of failures.
        assert!(disable_reason(&delta(1, 3600), &streak(true, 5, Some(0)), &policy).is_some());
        assert_eq!(
            disable_reason(&delta(1, 3599), &streak(true, 5, Some(0)), &policy),
            None
        );
        // A streak start after the last attempt (clock skew between nodes) counts as no time.
        assert_eq!(
            disable_reason(&delta(1, 10), &streak(true, 5, Some(7200)), &policy),
            None
        );
    }

    #[test]
    fn a_410_disables_at_once_as_endpoint_gone() {
        let w = WebhookId(Uuid::from_u128(7));
        let mut gone = result(w, false, 1);
        gone.attempt.status_code = Some(410);
        let mut other = result(w, false, 2);
        other.attempt.status_code = Some(404);
        let d = deltas(&[gone, other.clone(), result(w, true, 3)]);
        assert!(d[0].gone);
        assert!(!deltas(&[other])[0].gone);
        let policy = DisablePolicy::default();
        assert_eq!(
            disable_reason(&d[0], &streak(true, 0, None), &policy).as_deref(),
            Some("endpoint_gone")
        );
        // An already disabled webhook keeps the reason it was disabled for.
        assert_eq!(
            disable_reason(&d[0], &streak(false, 0, None), &policy),
            None
        );
    }

    #[test]
    fn successes_and_disabled_webhooks_never_disable() {
        let policy = DisablePolicy {
            max_consecutive_failures: 1,
            max_failing_for: Duration::ZERO,
        };
        // The batch added no failures (it ended in a success).
        assert_eq!(
            disable_reason(&delta(0, 10), &streak(true, 0, None), &policy),
            None
        );
        // Already disabled: it keeps the reason it was disabled for.
        assert_eq!(
            disable_reason(&delta(2, 10), &streak(false, 9, Some(0)), &policy),
            None
        );
        assert!(disable_reason(&delta(2, 10), &streak(true, 9, Some(0)), &policy).is_some());
    }
}
