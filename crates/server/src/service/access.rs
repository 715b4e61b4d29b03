//! Who may do what. An API key (and a console session made from one) acts for its whole tenant: a
//! `full` key may do everything, a `read` key only look (lists, details, the catalog — never a
//! change, a send or a secret). A portal session acts for a CRM's customer, limited to a list of
//! webhooks and to the capabilities its grant names. Every service method checks here, so the REST
//! API, the console, the portal and MCP can't disagree about what a caller may see or change.

use crate::error::{Error, Result};
use hookline_core::api_key::KeyScope;
use hookline_core::ids::{ApiKeyId, TenantId, WebhookId};
use std::collections::HashSet;

/// Who is calling: resolved from a bearer key, scopes every request to one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    /// The key that authenticated the call; the default (nil) id for the operator's CLI.
    pub key_id: ApiKeyId,
    pub default_user_id: Option<String>,
    /// The key's scope (`Full` for a portal session, whose limits are `scope`'s, and for the
    /// operator's CLI).
    pub key_scope: KeyScope,
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
    /// Who a background job acts as: its tenant, with a full key's rights (the request that
    /// queued the job was checked when it was made).
    pub(crate) fn for_job(tenant_id: TenantId) -> Principal {
        Principal {
            tenant_id,
            key_id: ApiKeyId::default(),
            default_user_id: None,
            key_scope: KeyScope::Full,
            scope: None,
        }
    }

    /// A portal session rather than a key.
    pub fn is_portal(&self) -> bool {
        self.scope.is_some()
    }

    /// Whether this caller may only read (a `read` key, or a console session made from one).
    pub fn is_read_only(&self) -> bool {
        self.key_scope == KeyScope::Read
    }

    /// Refuses a read-only key anything but [`Capability::View`], and a portal session that lacks
    /// `capability` (403). Full keys may do everything.
    pub fn require(&self, capability: Capability) -> Result<()> {
        if capability != Capability::View {
            self.require_write()?;
        }
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
    /// grants) belong to the CRM, not to its customers. For reading them; changes take
    /// [`Principal::require_tenant_write`].
    pub fn require_tenant_wide(&self) -> Result<()> {
        if self.is_portal() {
            return Err(Error::Forbidden(
                "a portal session can only reach its webhooks".into(),
            ));
        }
        Ok(())
    }

    /// [`Principal::require_tenant_wide`] for a change (publishing, writing records, minting or
    /// revoking keys and portal links): a read-only key is refused too.
    pub fn require_tenant_write(&self) -> Result<()> {
        self.require_tenant_wide()?;
        self.require_write()
    }

    fn require_write(&self) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::Forbidden(
                "this API key is read-only (scope `read`): it can list and read, not change, send or reveal secrets"
                    .into(),
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
            key_scope: KeyScope::Full,
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
            key_scope: KeyScope::Full,
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
    fn a_read_key_may_only_view() {
        let read = Principal {
            tenant_id: TenantId::new(),
            key_id: ApiKeyId::new(),
            default_user_id: None,
            key_scope: KeyScope::Read,
            scope: None,
        };
        assert!(read.is_read_only());
        assert!(read.require(Capability::View).is_ok());
        for c in [
            Capability::Manage,
            Capability::RevealSecret,
            Capability::Resend,
        ] {
            assert!(matches!(read.require(c), Err(Error::Forbidden(_))), "{c:?}");
        }
        assert!(read.require_tenant_wide().is_ok());
        assert!(matches!(
            read.require_tenant_write(),
            Err(Error::Forbidden(_))
        ));
        let portal = portal(None, &Capability::ALL);
        assert!(portal.require_tenant_write().is_err());
        assert!(portal.require(Capability::Manage).is_ok());
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
