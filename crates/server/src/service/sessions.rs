//! Browser sessions: the console's (made from an API key) and the embedded portal's (made from a
//! grant's one-time code), and the portal grants a CRM mints for its customers.
//!
//! A session token is 32 random bytes in an `HttpOnly` cookie; the database keeps only its
//! SHA-256, so a leaked database can't be replayed as a session. Sessions end after
//! `console_session_idle` without a request or `console_session_max` after sign-in, whichever is
//! first, and at once when their grant is revoked. Each carries a CSRF token that every
//! state-changing request must echo.

use super::access::Principal;
use super::access::{Capability, PortalScope};
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::api_key::KeyScope;
use hookline_core::ids::{ApiKeyId, WebhookId};
use hookline_core::signing;
use hookline_core::time::{self, Timestamp};
use hookline_store::{ConsoleSession, PortalGrant};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Prefix of a console session's token.
pub const CONSOLE_TOKEN_PREFIX: &str = "hlc_";
/// Prefix of a portal session's token (pages then get the portal's framing policy without a
/// database read; a forged prefix only changes the headers of its own responses).
pub const PORTAL_TOKEN_PREFIX: &str = "hlx_";
/// Prefix of a portal link's one-time code.
pub const PORTAL_CODE_PREFIX: &str = "hlp_";

/// Longest portal grant.
pub const MAX_PORTAL_LIFETIME: Duration = Duration::from_secs(30 * 86400);
/// A portal grant's lifetime when the request names none.
pub const DEFAULT_PORTAL_LIFETIME: Duration = Duration::from_secs(3600);
/// Activity is written back at most this often (each request would otherwise be a write).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    /// Echoed by every state-changing request.
    pub csrf: String,
    /// When the session ends at the latest.
    pub expires_at: Timestamp,
}

impl SignedIn {
    pub fn is_portal(&self) -> bool {
        self.principal.is_portal()
    }

    /// Constant-time check of a presented CSRF token.
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| signing::secrets_equal(p, &self.csrf))
    }
}

/// Body of `POST /v1/portal-sessions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalInput {
    /// The webhooks the portal may see and manage; all of the tenant's when absent.
    pub webhook_ids: Option<Vec<Uuid>>,
    /// Any of `view`, `manage`, `reveal_secret`, `resend`; default all but `reveal_secret`.
    pub capabilities: Option<Vec<String>>,
    /// How long the link and its session last, e.g. "1h" (default), at most "30d".
    pub expires_in: Option<String>,
}

/// A minted portal grant. `code` goes into the portal URL once and is never shown again.
#[derive(Debug)]
pub struct MintedPortal {
    pub id: Uuid,
    pub code: String,
    pub expires_at: Timestamp,
}

/// Answer of `POST /v1/portal-sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalView {
    /// Revoke with `DELETE /v1/portal-sessions/{id}`.
    pub id: Uuid,
    /// Open once (e.g. in an iframe): it signs the browser in and then stops working.
    pub url: String,
    pub expires_at: String,
}

fn hash(token: &str) -> String {
    signing::sha256_hex(token.as_bytes())
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Hookline {
    /// Signs a browser in with an API key: a new console session and the token for its cookie.
    pub async fn sign_in(&self, key: &str) -> Result<(String, SignedIn)> {
        let principal = self
            .authenticate(key.trim())
            .await
            .map_err(|_| Error::Unauthorized("that API key is not valid".into()))?;
        let now = time::now();
        let token = signing::generate_token(CONSOLE_TOKEN_PREFIX);
        let session = ConsoleSession {
            id_hash: hash(&token),
            tenant_id: principal.tenant_id,
            key_id: Some(principal.key_id),
            grant_id: None,
            csrf: signing::generate_token(""),
            created_at: now,
            last_seen_at: now,
            expires_at: after(now, self.config.console_session_max),
        };
        self.store.insert_console_session(&session).await?;
        Ok((
            token,
            SignedIn {
                principal,
                csrf: session.csrf,
                expires_at: session.expires_at,
            },
        ))
    }

    /// The session of a cookie's token, or `None` when it is unknown, expired, idle too long, its
    /// grant was revoked, or the API key it was signed in with was revoked or has expired (such a
    /// session is deleted on the way). A console session acts with its key's scope.
    pub async fn session(&self, token: &str) -> Result<Option<SignedIn>> {
        if token.len() > 128 || !token.is_ascii() {
            return Ok(None);
        }
        let id_hash = hash(token);
        let Some(found) = self.store.console_session(&id_hash).await? else {
            return Ok(None);
        };
        let (s, grant) = (found.session, found.grant);
        let now = time::now();
        let idle_until = after(s.last_seen_at, self.config.console_session_idle);
        let grant_over = grant
            .as_ref()
            .is_some_and(|g| g.revoked_at.is_some() || g.expires_at <= now);
        // A console session lives only as long as its key: the same rule as a bearer key's.
        let key = found.key.filter(|k| k.state().is_live(now));
        let key_over = grant.is_none() && key.is_none();
        if s.expires_at <= now || idle_until <= now || grant_over || key_over {
            self.store.delete_console_session(&id_hash).await?;
            return Ok(None);
        }
        if (now - s.last_seen_at).to_std().unwrap_or_default() >= TOUCH_EVERY {
            self.store.touch_console_session(&id_hash, now).await?;
        }
        let principal = match (grant, key) {
            (None, Some(k)) => {
                self.note_key_use(k.id, now).await;
                Principal {
                    tenant_id: s.tenant_id,
                    key_id: k.id,
                    default_user_id: None,
                    key_scope: k.scope,
                    scope: None,
                }
            }
            (None, None) => return Ok(None),
            (Some(g), _) => Principal {
                tenant_id: s.tenant_id,
                key_id: ApiKeyId::default(),
                default_user_id: None,
                key_scope: KeyScope::Full,
                scope: Some(Arc::new(PortalScope {
                    grant_id: g.id,
                    webhook_ids: g.webhook_ids.map(|ids| ids.into_iter().collect()),
                    capabilities: g
                        .capabilities
                        .iter()
                        .filter_map(|c| Capability::parse(c))
                        .collect(),
                })),
            },
        };
        Ok(Some(SignedIn {
            principal,
            csrf: s.csrf,
            expires_at: s.expires_at,
        }))
    }

    /// The caller behind a bearer credential of the MCP endpoint: an API key, or a portal
    /// session's token (then limited to that session's webhooks and capabilities).
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal> {
        if token.starts_with(PORTAL_TOKEN_PREFIX) {
            return self
                .session(token)
                .await?
                .map(|s| s.principal)
                .ok_or_else(|| Error::Unauthorized("this portal session has ended".into()));
        }
        self.authenticate(token).await
    }

    /// Ends a browser session.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        self.store.delete_console_session(&hash(token)).await?;
        Ok(())
    }

    /// Mints a portal grant for one of the tenant's customers. Every listed webhook must be the
    /// tenant's.
    pub async fn create_portal(&self, who: &Principal, input: PortalInput) -> Result<MintedPortal> {
        who.require_tenant_write()?;
        let lifetime = match &input.expires_in {
            Some(s) => hookline_core::retry::parse_delay(s)
                .map_err(|e| Error::invalid("expires_in", "invalid", e))?,
            None => DEFAULT_PORTAL_LIFETIME,
        };
        if lifetime.is_zero() || lifetime > MAX_PORTAL_LIFETIME {
            return Err(Error::invalid(
                "expires_in",
                "invalid",
                "expires_in must be between 1s and 30d",
            ));
        }
        let capabilities: Vec<String> = match &input.capabilities {
            None => Capability::DEFAULT
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            Some(list) => {
                let mut seen = HashSet::new();
                for (i, c) in list.iter().enumerate() {
                    let cap = Capability::parse(c).ok_or_else(|| {
                        Error::invalid(
                            format!("capabilities[{i}]"),
                            "invalid",
                            format!("`{c}` is not one of view, manage, reveal_secret, resend"),
                        )
                    })?;
                    seen.insert(cap);
                }
                // Every portal can at least look at what it was given.
                seen.insert(Capability::View);
                Capability::ALL
                    .iter()
                    .filter(|c| seen.contains(c))
                    .map(|c| c.as_str().to_string())
                    .collect()
            }
        };
        let webhook_ids = match input.webhook_ids {
            None => None,
            Some(ids) => {
                if ids.len() > 1000 {
                    return Err(Error::invalid(
                        "webhook_ids",
                        "too_long",
                        "list at most 1000 webhooks",
                    ));
                }
                let mut out = Vec::with_capacity(ids.len());
                for (i, id) in ids.into_iter().enumerate() {
                    let id = WebhookId(id);
                    if self.store.get_webhook(who.tenant_id, id).await?.is_none() {
                        return Err(Error::invalid(
                            format!("webhook_ids[{i}]"),
                            "not_found",
                            format!("webhook {id} not found"),
                        ));
                    }
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Some(out)
            }
        };
        let now = time::now();
        let code = signing::generate_token(PORTAL_CODE_PREFIX);
        let grant = PortalGrant {
            id: hookline_core::ids::new_id(),
            tenant_id: who.tenant_id,
            webhook_ids,
            capabilities,
            code_hash: Some(hash(&code)),
            created_at: now,
            expires_at: after(now, lifetime),
            revoked_at: None,
        };
        self.store.insert_portal_grant(&grant).await?;
        Ok(MintedPortal {
            id: grant.id,
            code,
            expires_at: grant.expires_at,
        })
    }

    /// Revokes one portal grant (`Some(id)`) or all of the tenant's, ending their sessions at once.
    pub async fn revoke_portals(&self, who: &Principal, id: Option<Uuid>) -> Result<u64> {
        who.require_tenant_write()?;
        let n = self
            .store
            .revoke_portal_grants(who.tenant_id, id, time::now())
            .await?;
        if id.is_some() && n == 0 {
            return Err(Error::not_found("portal session"));
        }
        Ok(n)
    }

    /// Exchanges a portal URL's one-time code for a browser session limited to the grant.
    pub async fn redeem_portal(&self, code: &str) -> Result<(String, SignedIn)> {
        let invalid = || Error::Unauthorized("this portal link is not valid (any more)".into());
        if code.len() > 128 || !code.is_ascii() {
            return Err(invalid());
        }
        let now = time::now();
        let grant = self
            .store
            .redeem_portal_code(&hash(code), now)
            .await?
            .ok_or_else(invalid)?;
        let token = signing::generate_token(PORTAL_TOKEN_PREFIX);
        let session = ConsoleSession {
            id_hash: hash(&token),
            tenant_id: grant.tenant_id,
            key_id: None,
            grant_id: Some(grant.id),
            csrf: signing::generate_token(""),
            created_at: now,
            last_seen_at: now,
            expires_at: grant
                .expires_at
                .min(after(now, self.config.console_session_max)),
        };
        self.store.insert_console_session(&session).await?;
        let signed = self
            .session(&token)
            .await?
            .ok_or_else(|| Error::Internal("a new portal session vanished".into()))?;
        Ok((token, signed))
    }
}
