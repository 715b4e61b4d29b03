//! How a batch of recorded attempts moves each webhook's failure streak, and whether the streak
//! now disables the webhook — decided once, in Rust, and applied by every backend with the same
//! UPDATE, so SQLite and PostgreSQL can't disagree.

use crate::model::{AttemptResult, Event, NextState};
use hookline_core::ids::{DeliveryId, EventId, TenantId, WebhookId};
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
    /// A failure in the batch came before a success in it: a streak ended inside the batch even
    /// when the stored one was empty (see [`recovered`]).
    pub failed_before_success: bool,
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
                    failed_before_success: false,
                });
                out.len() - 1
            }
        };
        let d = &mut out[i];
        d.last_at = d.last_at.max(at);
        d.gone |= retry::endpoint_gone(r.attempt.status_code);
        if r.next == NextState::Delivered {
            d.failed_before_success |= d.failures > 0;
            d.reset = true;
            d.failures = 0;
            d.first_failure_at = None;
        } else {
            d.failures += 1;
            d.first_failure_at.get_or_insert(at);
        }
    }
    // Applied in webhook id order, so two nodes recording results of the same webhooks lock their
    // rows in the same order (in arrival order they deadlocked on PostgreSQL).
    out.sort_by_key(|d| d.webhook_id);
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

/// Did this batch carry the webhook's streak across half its auto-disable threshold? Then the
/// backends publish `webhook.failing` — once per streak, because only the batch that crosses the
/// line (from below half to at least half) does. `before` is the stored streak before the batch;
/// a webhook being disabled by the same batch gets `webhook.disabled` instead.
pub fn failing_crossed(
    before: u64,
    delta: &HealthDelta,
    stored: &Streak,
    policy: &DisablePolicy,
) -> bool {
    if !stored.enabled || delta.failures == 0 || policy.max_consecutive_failures == 0 {
        return false;
    }
    let half = policy.max_consecutive_failures.div_ceil(2);
    // After a success in the batch the streak restarted from zero.
    let start = if delta.reset { 0 } else { before };
    start < half && stored.consecutive_failures >= half
}

/// Did this batch end a failing streak with a success? Then the backends publish
/// `webhook.recovered` (at most once per webhook and batch): the stored streak before the batch was
/// not empty, or a failure in the batch came before its success.
pub fn recovered(before: u64, delta: &HealthDelta) -> bool {
    delta.reset && (before > 0 || delta.failed_before_success)
}

/// The streak before a batch, as the backends read it (locked) before applying the batch.
pub struct Before {
    pub consecutive_failures: u64,
    pub failing_since: Option<Timestamp>,
}

/// The event a batch that did not disable the webhook publishes about its streak, if any:
/// `webhook.failing` when it crossed half the threshold, else `webhook.recovered` when it ended a
/// failing streak. One decision for both backends.
#[allow(clippy::too_many_arguments)]
pub fn streak_event(
    before: &Before,
    delta: &HealthDelta,
    stored: &Streak,
    policy: &DisablePolicy,
    tenant_id: TenantId,
    name: &str,
    url: &str,
) -> Option<Event> {
    if failing_crossed(before.consecutive_failures, delta, stored, policy) {
        tracing::warn!(webhook_id = %delta.webhook_id, failures = stored.consecutive_failures, "webhook failing");
        Some(failing_event(
            tenant_id,
            delta.webhook_id,
            name,
            url,
            stored,
            policy,
        ))
    } else if recovered(before.consecutive_failures, delta) {
        Some(recovered_event(
            tenant_id,
            delta.webhook_id,
            name,
            url,
            before.failing_since,
        ))
    } else {
        None
    }
}

/// An operational event about a webhook (`webhook.*`), published by the store itself.
fn operational(
    tenant_id: TenantId,
    event_type: &str,
    entity_type: &str,
    entity_id: String,
    data: serde_json::Value,
    now: Timestamp,
) -> Event {
    Event {
        id: EventId::new(),
        tenant_id,
        event_type: event_type.into(),
        occurred_at: now,
        source: None,
        source_id: None,
        actor_id: None,
        entity_type: Some(entity_type.into()),
        entity_id: Some(entity_id),
        data,
        changes: None,
        batch: None,
        created_at: now,
    }
}

/// The `webhook.failing` warning (see [`failing_crossed`]).
pub fn failing_event(
    tenant_id: TenantId,
    webhook_id: WebhookId,
    name: &str,
    url: &str,
    stored: &Streak,
    policy: &DisablePolicy,
) -> Event {
    let data = hookline_core::catalog::webhook_failing_data(
        webhook_id,
        name,
        url,
        stored.consecutive_failures,
        policy.max_consecutive_failures,
        stored.failing_since.as_ref(),
    );
    let now = hookline_core::time::now();
    operational(
        tenant_id,
        "webhook.failing",
        "webhook",
        webhook_id.to_string(),
        data,
        now,
    )
}

/// The `webhook.recovered` notice (see [`recovered`]); `failing_since` is the streak's start as
/// stored before the batch (absent when the whole streak was inside the batch).
pub fn recovered_event(
    tenant_id: TenantId,
    webhook_id: WebhookId,
    name: &str,
    url: &str,
    failing_since: Option<Timestamp>,
) -> Event {
    let now = hookline_core::time::now();
    let data = hookline_core::catalog::webhook_recovered_data(
        webhook_id,
        name,
        url,
        failing_since.as_ref(),
        &now,
    );
    operational(
        tenant_id,
        "webhook.recovered",
        "webhook",
        webhook_id.to_string(),
        data,
        now,
    )
}

/// A delivery that just ended `failed`, as the store read it back inside the transaction.
#[derive(Debug, Clone)]
pub struct FailedDelivery {
    pub tenant_id: TenantId,
    pub delivery_id: DeliveryId,
    pub message_id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    pub attempts: u64,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_error_kind: Option<String>,
}

/// Why a delivery ended `failed`: a last answer that is never retried (a 4xx other than 408, 425
/// and 429) is `not_retryable`; anything else (a retryable status, a network error, an abandoned
/// attempt) means the schedule ran out.
pub fn exhausted_reason(last_status_code: Option<u16>) -> &'static str {
    match last_status_code.map(retry::classify_status) {
        Some(retry::Verdict::Failed) => hookline_core::catalog::EXHAUSTED_NOT_RETRYABLE,
        _ => hookline_core::catalog::EXHAUSTED_RETRIES,
    }
}

/// The `delivery.exhausted` event for a delivery that ended `failed`, or `None` when that delivery
/// itself carried an operational event: an operational event's failure never produces another
/// one, so two failing webhooks subscribed to each other's `delivery.exhausted` can't feed each
/// other without end.
pub fn exhausted_event(f: &FailedDelivery) -> Option<Event> {
    if hookline_core::catalog::lookup(&f.event_type)
        .is_some_and(|e| e.origin == hookline_core::catalog::Origin::Operational)
    {
        return None;
    }
    let now = hookline_core::time::now();
    let data = serde_json::json!({
        "delivery_id": f.delivery_id,
        "message_id": f.message_id,
        "webhook_id": f.webhook_id,
        "event_id": f.event_id,
        "event_type": f.event_type,
        "attempts": f.attempts,
        "reason": exhausted_reason(f.last_status_code),
        "last_status_code": f.last_status_code,
        "last_error_kind": f.last_error_kind,
        "last_error": f.last_error,
        "failed_at": hookline_core::time::format(&now),
    });
    Some(operational(
        f.tenant_id,
        "delivery.exhausted",
        "delivery",
        f.delivery_id.to_string(),
        data,
        now,
    ))
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
    use hookline_core::ids::LeaseToken;
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
            failed_before_success: false,
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
    fn failing_is_said_once_when_the_streak_reaches_half_the_threshold() {
        let policy = DisablePolicy {
            max_consecutive_failures: 5,
            max_failing_for: Duration::from_secs(3600),
        };
        // Half of 5, rounded up, is 3: 2 → 3 crosses, 3 → 4 does not say it again.
        assert!(failing_crossed(
            2,
            &delta(1, 1),
            &streak(true, 3, Some(0)),
            &policy
        ));
        assert!(!failing_crossed(
            3,
            &delta(1, 1),
            &streak(true, 4, Some(0)),
            &policy
        ));
        assert!(!failing_crossed(
            1,
            &delta(1, 1),
            &streak(true, 2, Some(0)),
            &policy
        ));
        // A batch that jumps over the line says it once too.
        assert!(failing_crossed(
            0,
            &delta(4, 1),
            &streak(true, 4, Some(0)),
            &policy
        ));
        // After a success in the batch the streak restarted from zero.
        let mut reset = delta(3, 1);
        reset.reset = true;
        assert!(failing_crossed(
            9,
            &reset,
            &streak(true, 3, Some(0)),
            &policy
        ));
        // Not for a disabled webhook, nor for a batch without failures.
        assert!(!failing_crossed(
            2,
            &delta(1, 1),
            &streak(false, 3, Some(0)),
            &policy
        ));
        assert!(!failing_crossed(
            2,
            &delta(0, 1),
            &streak(true, 3, Some(0)),
            &policy
        ));
    }

    #[test]
    fn recovered_only_after_failures() {
        let w = WebhookId(Uuid::from_u128(9));
        let ok = deltas(&[result(w, true, 1)]);
        assert!(recovered(3, &ok[0]));
        assert!(!recovered(0, &ok[0]));
        // The whole streak inside the batch: a failure, then the success.
        let inside = deltas(&[result(w, false, 1), result(w, true, 2)]);
        assert!(inside[0].failed_before_success);
        assert!(recovered(0, &inside[0]));
        // Failures after the batch's last success: not recovered.
        let after = deltas(&[result(w, true, 1), result(w, false, 2)]);
        assert!(!after[0].failed_before_success);
        assert!(!recovered(0, &after[0]));
    }

    #[test]
    fn exhausted_reasons_and_no_notice_about_a_notice() {
        assert_eq!(exhausted_reason(Some(400)), "not_retryable");
        assert_eq!(exhausted_reason(Some(410)), "not_retryable");
        assert_eq!(exhausted_reason(Some(503)), "retries_exhausted");
        assert_eq!(exhausted_reason(Some(429)), "retries_exhausted");
        assert_eq!(exhausted_reason(None), "retries_exhausted");
        let mut f = FailedDelivery {
            tenant_id: TenantId::default(),
            delivery_id: DeliveryId::default(),
            message_id: DeliveryId::default(),
            webhook_id: WebhookId::default(),
            event_id: EventId::default(),
            event_type: "contact.created".into(),
            attempts: 4,
            last_status_code: Some(500),
            last_error: None,
            last_error_kind: None,
        };
        let e = exhausted_event(&f).unwrap();
        assert_eq!(e.event_type, "delivery.exhausted");
        assert_eq!(e.data["reason"], "retries_exhausted");
        for operational in ["delivery.exhausted", "webhook.failing", "webhook.disabled"] {
            f.event_type = operational.into();
            assert!(exhausted_event(&f).is_none(), "{operational}");
        }
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
