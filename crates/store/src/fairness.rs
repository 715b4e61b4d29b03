//! Which webhooks a claim serves first, and how many deliveries each may take — one rule for both
//! backends, so a node treats endpoints the same on SQLite and PostgreSQL.
//!
//! Why rotate: a claim stops at its global limit, so whichever webhooks come first would otherwise
//! take every claim while the backlog is deep. Starting each claim one webhook further along (the
//! dispatcher counts its claims in `round`) gives every endpoint its turn at the front, and unlike a
//! random order it is reproducible in tests.

use hookline_core::ids::WebhookId;
use std::collections::HashMap;

/// One webhook's turn in a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    pub webhook_id: WebhookId,
    /// How many more deliveries this node may lease for it (its per-webhook cap less what it has in
    /// flight); never zero.
    pub quota: usize,
}

/// The turns of a claim: `candidates` (enabled webhooks with due work, in any order) sorted by id and
/// rotated left by `round`, each with its quota; webhooks already at their cap are left out after
/// the rotation, so they don't shift who goes first.
pub(crate) fn turns(
    mut candidates: Vec<WebhookId>,
    round: u64,
    per_webhook: usize,
    busy: &HashMap<WebhookId, usize>,
) -> Vec<Turn> {
    candidates.sort_unstable();
    candidates.dedup();
    if !candidates.is_empty() {
        let start = (round % candidates.len() as u64) as usize;
        candidates.rotate_left(start);
    }
    candidates
        .into_iter()
        .map(|webhook_id| Turn {
            webhook_id,
            quota: per_webhook.saturating_sub(busy.get(&webhook_id).copied().unwrap_or(0)),
        })
        .filter(|t| t.quota > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ids(n: u128) -> Vec<WebhookId> {
        (1..=n).map(|i| WebhookId(Uuid::from_u128(i))).collect()
    }

    fn order(turns: &[Turn]) -> Vec<u128> {
        turns.iter().map(|t| t.webhook_id.0.as_u128()).collect()
    }

    #[test]
    fn each_round_starts_one_webhook_further() {
        let none = HashMap::new();
        let mut shuffled = ids(3);
        shuffled.reverse();
        assert_eq!(order(&turns(shuffled.clone(), 0, 5, &none)), [1, 2, 3]);
        assert_eq!(order(&turns(shuffled.clone(), 1, 5, &none)), [2, 3, 1]);
        assert_eq!(order(&turns(shuffled.clone(), 2, 5, &none)), [3, 1, 2]);
        assert_eq!(order(&turns(shuffled, 3, 5, &none)), [1, 2, 3]);
        assert_eq!(order(&turns(ids(3), u64::MAX, 5, &none)), [1, 2, 3]);
        assert!(turns(Vec::new(), 7, 5, &none).is_empty());
    }

    #[test]
    fn quotas_subtract_what_is_in_flight() {
        let busy = HashMap::from([
            (WebhookId(Uuid::from_u128(1)), 2),
            (WebhookId(Uuid::from_u128(2)), 9),
        ]);
        let t = turns(ids(3), 1, 5, &busy);
        // Webhook 2 is at its cap: left out, but the rotation still counted it.
        assert_eq!(order(&t), [3, 1]);
        assert_eq!(t[0].quota, 5);
        assert_eq!(t[1].quota, 3);
    }
}
