//! Who may do what. An API key (and a console session made from one) acts for its whole tenant; a
//! portal session acts for a CRM's customer, limited to a list of webhooks and to the
//! capabilities its grant names. Every service method checks here, so the REST API, the console,
//! the portal and MCP can't disagree about what a caller may see or change.

use crate::error::{Error, Result};
use hookline_core::ids::{ApiKeyId, TenantId, WebhookId};
use std::collections::HashSet;

/// Who is calling: resolved from a bearer key, scopes every request to one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    /// The key that authenticated the call; the default (nil) id for the operator's CLI.
    pub key_id: ApiKeyId,
    pub default_user_id: Option<String>,
    /// Set for a portal session: the webhooks and capabilities it is limited to.
    pub scope: Option<std::sync::Arc<PortalScope>>,
}

/// What a portal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// See webhooks, the delivery log and the catalog.
    View,
    /// Create, edit, enable, disable and delete webhooks; rotate secrets.
    Manage,
    /// Show a webhook's signing secret.
    RevealSecret,
    /// Send tests, resend and replay deliveries.
    Resend,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::View,
        Capability::Manage,
        Capability::RevealSecret,
        Capability::Resend,
    ];
    /// A grant that names none gets everything but seeing secrets.
    pub const DEFAULT: [Capability; 3] = [Capability::View, Capability::Manage, Capability::Resend];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::View => "view",
            Capability::Manage => "manage",
            Capability::RevealSecret => "reveal_secret",
            Capability::Resend => "resend",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The limits of a portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalScope {
    /// The grant the session was made from (revoking it ends the session).
    pub grant_id: uuid::Uuid,
    /// The webhooks it may see; `None` = every webhook of the tenant.
    pub webhook_ids: Option<HashSet<WebhookId>>,
    pub capabilities: HashSet<Capability>,
}

impl Principal {
    /// A portal session rather than a key.
    pub fn is_portal(&self) -> bool {
        self.scope.is_some()
    }

    /// Refuses a portal session that lacks `capability` (403). Keys may do everything.
    pub fn require(&self, capability: Capability) -> Result<()> {
        match &self.scope {
            Some(s) if !s.capabilities.contains(&capability) => Err(Error::Forbidden(format!(
                "this portal session may not {}",
                match capability {
                    Capability::View => "view webhooks",
                    Capability::Manage => "change webhooks",
                    Capability::RevealSecret => "reveal secrets",
                    Capability::Resend => "send tests, resends or replays",
                }
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a portal session outright: tenant-wide operations (events, records, keys, portal
    /// grants) belong to the CRM, not to its customers.
    pub fn require_tenant_wide(&self) -> Result<()> {
        if self.is_portal() {
            return Err(Error::Forbidden(
                "a portal session can only reach its webhooks".into(),
            ));
        }
        Ok(())
    }

    /// Whether this caller may see webhook `id` (of its tenant; the store checks the tenant).
    pub fn sees_webhook(&self, id: WebhookId) -> bool {
        match self.scope.as_deref() {
            Some(PortalScope {
                webhook_ids: Some(ids),
                ..
            }) => ids.contains(&id),
            _ => true,
        }
    }

    /// The webhooks a listing must be limited to, `None` when it may see them all.
    pub fn webhook_limit(&self) -> Option<Vec<WebhookId>> {
        self.scope
            .as_ref()
            .and_then(|s| s.webhook_ids.as_ref())
            .map(|ids| {
                let mut v: Vec<WebhookId> = ids.iter().copied().collect();
                v.sort();
                v
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn portal(ids: Option<Vec<WebhookId>>, caps: &[Capability]) -> Principal {
        Principal {
            tenant_id: TenantId::new(),
            key_id: ApiKeyId::default(),
            default_user_id: None,
            scope: Some(Arc::new(PortalScope {
                grant_id: uuid::Uuid::nil(),
                webhook_ids: ids.map(|v| v.into_iter().collect()),
                capabilities: caps.iter().copied().collect(),
            })),
        }
    }

    #[test]
    fn keys_may_do_everything_portals_what_they_were_granted() {
        let key = Principal {
            tenant_id: TenantId::new(),
            key_id: ApiKeyId::new(),
            default_user_id: None,
            scope: None,
        };
        for c in Capability::ALL {
            assert!(key.require(c).is_ok());
        }
        assert!(key.require_tenant_wide().is_ok());
        let view_only = portal(None, &[Capability::View]);
        assert!(view_only.require(Capability::View).is_ok());
        assert!(matches!(
            view_only.require(Capability::Resend),
            Err(Error::Forbidden(_))
        ));
        assert!(view_only.require_tenant_wide().is_err());
    }

    #[test]
    fn a_listed_portal_sees_only_its_webhooks() {
        let (a, b) = (WebhookId::new(), WebhookId::new());
        let p = portal(Some(vec![a]), &Capability::DEFAULT);
        assert!(p.sees_webhook(a));
        assert!(!p.sees_webhook(b));
        assert_eq!(p.webhook_limit(), Some(vec![a]));
        let all = portal(None, &Capability::DEFAULT);
        assert!(all.sees_webhook(b));
        assert_eq!(all.webhook_limit(), None);
        assert_eq!(
            Capability::parse("reveal_secret"),
            Some(Capability::RevealSecret)
        );
        assert_eq!(Capability::parse("fly"), None);
    }
}
