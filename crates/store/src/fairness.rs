//! Which webhooks a claim serves first, and how many deliveries each may take — one rule for both
//! backends, so a node treats tenants and endpoints the same on SQLite and PostgreSQL.
//!
//! Fair to tenants first, then to a tenant's webhooks:
//! - **Caps.** A webhook may have at most `per_webhook` deliveries in flight on this node, and a
//!   tenant at most `per_tenant` across all its webhooks, so a tenant whose 200 endpoints hang can't
//!   take every slot of the node: its hanging sends time out inside its own share.
//! - **Turns alternate between tenants.** A claim stops at its global limit, so whoever comes first
//!   would otherwise take every claim while the backlog is deep. The turns go one webhook of each
//!   tenant at a time (tenant A's first, tenant B's first, A's second, ...), so a tenant with many
//!   webhooks gets no more of a scarce claim than a tenant with one.
//! - **Rotation.** Each claim starts one tenant further along, and each tenant's list one webhook
//!   further along (the dispatcher counts its claims in `round`), so every endpoint gets its turn at
//!   the front; unlike a random order it is reproducible in tests.

use crate::model::ClaimRequest;
use hookline_core::ids::{TenantId, WebhookId};
use std::collections::{BTreeMap, HashMap};

impl ClaimRequest {
    /// Tenants and webhooks already at their cap on this node: the claim's candidate query skips
    /// them, so a tenant holding all it may (200 hanging endpoints, say) costs no index probes in
    /// the other tenants' claims.
    pub(crate) fn saturated(&self) -> (Vec<TenantId>, Vec<WebhookId>) {
        let tenants = self
            .busy_tenants
            .iter()
            .filter(|(_, n)| **n >= self.per_tenant)
            .map(|(t, _)| *t)
            .collect();
        let webhooks = self
            .busy
            .iter()
            .filter(|(_, n)| **n >= self.per_webhook)
            .map(|(w, _)| *w)
            .collect();
        (tenants, webhooks)
    }

    /// The caps this claim must respect.
    pub(crate) fn caps(&self) -> Caps<'_> {
        Caps {
            per_webhook: self.per_webhook,
            per_tenant: self.per_tenant,
            busy: &self.busy,
            busy_tenants: &self.busy_tenants,
        }
    }
}

/// One webhook's turn in a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    pub webhook_id: WebhookId,
    /// How many more deliveries this node may lease for it: its per-webhook cap less what it has in
    /// flight, within what is left of its tenant's cap; never zero.
    pub quota: usize,
}

/// The caps a claim respects and what this node already has in flight.
pub(crate) struct Caps<'a> {
    pub per_webhook: usize,
    pub per_tenant: usize,
    pub busy: &'a HashMap<WebhookId, usize>,
    pub busy_tenants: &'a HashMap<TenantId, usize>,
}

/// The turns of a claim: `candidates` (enabled webhooks with due work and their tenants, in any
/// order) grouped by tenant, tenants and each tenant's webhooks sorted by id and rotated left by
/// `round`, then interleaved one per tenant, each with its quota. Webhooks already at their cap are
/// left out after the rotation, so they don't shift who goes first; a tenant's allowance goes to its
/// webhooks in its rotated order, so those left without any this time come first in a later round.
pub(crate) fn turns(candidates: Vec<(WebhookId, TenantId)>, round: u64, caps: Caps) -> Vec<Turn> {
    let mut by_tenant: BTreeMap<TenantId, Vec<WebhookId>> = BTreeMap::new();
    for (webhook, tenant) in candidates {
        by_tenant.entry(tenant).or_default().push(webhook);
    }
    let mut tenants: Vec<Vec<Turn>> = by_tenant
        .into_iter()
        .map(|(tenant, mut webhooks)| {
            webhooks.sort_unstable();
            webhooks.dedup();
            let start = (round % webhooks.len() as u64) as usize;
            webhooks.rotate_left(start);
            let mut allowance = caps
                .per_tenant
                .saturating_sub(caps.busy_tenants.get(&tenant).copied().unwrap_or(0));
            // Water-filling: each webhook in turn gets at most an even share of what is left of
            // the tenant's allowance among those still to come (and at most its own room), so a
            // generous per-webhook cap (a node holds deliveries ahead of its send slots) can't
            // hand the whole allowance to the first two webhooks of a thousand-webhook fan-out.
            let mut left = webhooks.len();
            webhooks
                .into_iter()
                .map(|webhook_id| {
                    let room = caps
                        .per_webhook
                        .saturating_sub(caps.busy.get(&webhook_id).copied().unwrap_or(0));
                    let share = allowance.div_ceil(left.max(1));
                    left -= 1;
                    let quota = room.min(share);
                    allowance -= quota;
                    Turn { webhook_id, quota }
                })
                .filter(|t| t.quota > 0)
                .collect()
        })
        .collect();
    if !tenants.is_empty() {
        let start = (round % tenants.len() as u64) as usize;
        tenants.rotate_left(start);
    }
    let longest = tenants.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(tenants.iter().map(Vec::len).sum());
    for i in 0..longest {
        out.extend(tenants.iter().filter_map(|t| t.get(i).copied()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ids(n: u128) -> Vec<(WebhookId, TenantId)> {
        (1..=n)
            .map(|i| (WebhookId(Uuid::from_u128(i)), TenantId(Uuid::from_u128(1))))
            .collect()
    }

    fn caps<'a>(
        per_webhook: usize,
        per_tenant: usize,
        busy: &'a HashMap<WebhookId, usize>,
        busy_tenants: &'a HashMap<TenantId, usize>,
    ) -> Caps<'a> {
        Caps {
            per_webhook,
            per_tenant,
            busy,
            busy_tenants,
        }
    }

    fn order(turns: &[Turn]) -> Vec<u128> {
        turns.iter().map(|t| t.webhook_id.0.as_u128()).collect()
    }

    #[test]
    fn each_round_starts_one_webhook_further() {
        let (none, no_tenants) = (HashMap::new(), HashMap::new());
        let c = || caps(5, 100, &none, &no_tenants);
        let mut shuffled = ids(3);
        shuffled.reverse();
        assert_eq!(order(&turns(shuffled.clone(), 0, c())), [1, 2, 3]);
        assert_eq!(order(&turns(shuffled.clone(), 1, c())), [2, 3, 1]);
        assert_eq!(order(&turns(shuffled.clone(), 2, c())), [3, 1, 2]);
        assert_eq!(order(&turns(shuffled, 3, c())), [1, 2, 3]);
        assert_eq!(order(&turns(ids(3), u64::MAX, c())), [1, 2, 3]);
        assert!(turns(Vec::new(), 7, c()).is_empty());
    }

    #[test]
    fn quotas_subtract_what_is_in_flight() {
        let busy = HashMap::from([
            (WebhookId(Uuid::from_u128(1)), 2),
            (WebhookId(Uuid::from_u128(2)), 9),
        ]);
        let no_tenants = HashMap::new();
        let t = turns(ids(3), 1, caps(5, 100, &busy, &no_tenants));
        // Webhook 2 is at its cap: left out, but the rotation still counted it.
        assert_eq!(order(&t), [3, 1]);
        assert_eq!(t[0].quota, 5);
        assert_eq!(t[1].quota, 3);
    }

    fn two_tenants() -> Vec<(WebhookId, TenantId)> {
        // Tenant 1 has webhooks 1..=4, tenant 2 has webhook 9.
        let mut c: Vec<_> = (1..=4)
            .map(|i| (WebhookId(Uuid::from_u128(i)), TenantId(Uuid::from_u128(1))))
            .collect();
        c.push((WebhookId(Uuid::from_u128(9)), TenantId(Uuid::from_u128(2))));
        c
    }

    #[test]
    fn turns_alternate_between_tenants() {
        let (none, no_tenants) = (HashMap::new(), HashMap::new());
        let t = turns(two_tenants(), 0, caps(5, 100, &none, &no_tenants));
        // One webhook of each tenant at a time: tenant 2's only webhook is second, not last.
        assert_eq!(order(&t), [1, 9, 2, 3, 4]);
        let t = turns(two_tenants(), 1, caps(5, 100, &none, &no_tenants));
        assert_eq!(order(&t), [9, 2, 3, 4, 1]);
    }

    #[test]
    fn a_tenant_at_its_cap_takes_nothing_and_leaves_the_others_theirs() {
        let busy = HashMap::new();
        let busy_tenants = HashMap::from([(TenantId(Uuid::from_u128(1)), 12)]);
        // Tenant 1 may have 12 in flight and has 12: none of its webhooks gets a turn.
        let t = turns(two_tenants(), 0, caps(5, 12, &busy, &busy_tenants));
        assert_eq!(order(&t), [9]);
        assert_eq!(t[0].quota, 5);
    }

    #[test]
    fn a_tenants_allowance_is_shared_in_its_rotated_order() {
        let busy = HashMap::new();
        let busy_tenants = HashMap::from([(TenantId(Uuid::from_u128(1)), 4)]);
        // 11 - 4 = 7 left for tenant 1, shared evenly among its four webhooks in turn (2, 2, 2,
        // then the 1 left), however generous the per-webhook cap (5).
        let t = turns(two_tenants(), 1, caps(5, 11, &busy, &busy_tenants));
        assert_eq!(order(&t), [9, 2, 3, 4, 1]);
        assert_eq!(
            t.iter().map(|t| t.quota).collect::<Vec<_>>(),
            [5, 2, 2, 2, 1]
        );
        // The next round starts tenant 1 one webhook further along (the short share moves on).
        let t = turns(two_tenants(), 2, caps(5, 11, &busy, &busy_tenants));
        assert_eq!(order(&t), [3, 9, 4, 1, 2]);
        assert_eq!(
            t.iter().map(|t| t.quota).collect::<Vec<_>>(),
            [2, 5, 2, 2, 1]
        );
        // A thousand webhooks of one tenant with an allowance of 256: one each for the first 256,
        // not the whole allowance to the first two (a fan-out would then claim two at a time).
        let many: Vec<(WebhookId, TenantId)> = (1..=1000u128)
            .map(|i| (WebhookId(Uuid::from_u128(i)), TenantId(Uuid::from_u128(1))))
            .collect();
        let (none, no_tenants) = (HashMap::new(), HashMap::new());
        let t = turns(many, 0, caps(160, 256, &none, &no_tenants));
        assert_eq!(t.len(), 256);
        assert!(t.iter().all(|t| t.quota == 1));
    }
}
