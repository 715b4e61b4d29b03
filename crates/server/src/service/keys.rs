//! API keys of a tenant through the API: list them, create one (its secret shown once), revoke one.
//! The rules — scopes, expiry, which key may be revoked — are `hookline_core::api_key`'s;
//! authenticating a presented key is `auth.rs`'s. Also here: recording when a key was last used, at
//! most once a minute per key and node (see `last_used.rs`), so that authenticating a request never
//! costs a write of its own.

use super::access::Principal;
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::api_key::{self, KeyScope};
use hookline_core::ids::ApiKeyId;
use hookline_core::time::{self, Timestamp};
use hookline_store::{ApiKey, Page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /v1/api-keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// What the key is for, e.g. "CI deploys" (1-200 characters, one line).
    pub name: Option<String>,
    /// `full` (default): everything, managing keys included; `read`: GET only — lists and details,
    /// never a change, a send or a secret.
    pub scope: Option<String>,
    /// When the key stops working (RFC 3339, in the future, at most 10 years away). Without this
    /// and `expires_in`, it works until revoked.
    pub expires_at: Option<String>,
    /// Or how long it works from now, e.g. "90d", "12h" (at most 3650d).
    pub expires_in: Option<String>,
}

/// An API key as listed: never the key itself, only its first characters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters (`hk_` and 8 more), to tell keys apart.
    pub prefix: String,
    /// `full` or `read`.
    pub scope: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    pub created_at: String,
    /// When it last authenticated a request (recorded at most once a minute), or `null` if never.
    pub last_used_at: Option<String>,
    /// When it stops working; `null`: never (until revoked).
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Whether this is the key that made the request.
    pub current: bool,
}

impl ApiKeyView {
    fn from(k: &ApiKey, who: &Principal, now: Timestamp) -> ApiKeyView {
        let state = k.state();
        let status = if state.revoked_at.is_some() {
            "revoked"
        } else if !state.is_live(now) {
            "expired"
        } else {
            "active"
        };
        ApiKeyView {
            id: k.id.0,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scope: k.scope.as_str().to_string(),
            status: status.to_string(),
            created_at: time::format(&k.created_at),
            last_used_at: k.last_used_at.as_ref().map(time::format),
            expires_at: k.expires_at.as_ref().map(time::format),
            revoked_at: k.revoked_at.as_ref().map(time::format),
            current: k.id == who.key_id,
        }
    }
}

/// Answer of `POST /v1/api-keys`: the new key, with the key itself — shown this once only.
// `Debug` (below) leaves the key out, so no log line can carry it.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key (`hk_…`). Only its hash is stored: it can't be shown again.
    pub key: String,
    #[serde(flatten)]
    pub view: ApiKeyView,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &"<redacted>")
            .field("view", &self.view)
            .finish()
    }
}

impl Hookline {
    /// Stores a new key of `tenant_id`, made at `now` (the instant its expiry was computed from),
    /// and returns the row and the key itself (to be shown once).
    pub(super) async fn mint_key(
        &self,
        tenant_id: hookline_core::ids::TenantId,
        name: &str,
        scope: KeyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(ApiKey, String)> {
        let minted = hookline_core::signing::generate_api_key();
        let key = ApiKey {
            id: ApiKeyId::new(),
            tenant_id,
            name: name.to_string(),
            prefix: minted.prefix.clone(),
            key_hash: minted.hash.clone(),
            default_user_id: None,
            created_at: now,
            scope,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_api_key(&key).await?;
        Ok((key, minted.plaintext))
    }

    /// Records that `key` authenticated a request, unless this node did so less than
    /// [`super::last_used::RECORDED_EVERY`] ago. A failed write only leaves `last_used_at` behind: it never fails
    /// the request it was made for.
    pub(super) async fn note_key_use(&self, key: ApiKeyId, now: Timestamp) {
        if self.key_uses.due(key) {
            if let Err(e) = self.store.touch_api_key(key, now).await {
                tracing::warn!(error = %e, "could not record an API key's last use");
            }
        }
    }

    /// The tenant's keys, newest first, revoked and expired ones included.
    pub async fn list_api_keys(&self, who: &Principal, page: Page) -> Result<Vec<ApiKeyView>> {
        who.require_tenant_wide()?;
        let now = time::now();
        Ok(self
            .store
            .list_api_keys(who.tenant_id, page)
            .await?
            .iter()
            .map(|k| ApiKeyView::from(k, who, now))
            .collect())
    }

    /// Creates a key of the caller's tenant; the answer holds the key itself, this once.
    pub async fn create_api_key(
        &self,
        who: &Principal,
        input: ApiKeyInput,
    ) -> Result<CreatedApiKey> {
        who.require_tenant_write()?;
        let name = match input.name.as_deref() {
            Some(n) => hookline_core::webhook::validate_name(n)?,
            None => return Err(Error::invalid("name", "required", "name is required")),
        };
        let scope = KeyScope::from_input(input.scope.as_deref())?;
        let now = time::now();
        let expires_at = api_key::expiry(
            input.expires_at.as_deref(),
            input.expires_in.as_deref(),
            now,
        )?;
        let (key, plaintext) = self
            .mint_key(who.tenant_id, &name, scope, expires_at, now)
            .await?;
        Ok(CreatedApiKey {
            key: plaintext,
            view: ApiKeyView::from(&key, who, now),
        })
    }

    /// Revokes a key of the caller's tenant: from the next request on, on every node, it gets 401,
    /// and the console sessions signed in with it end. The tenant's last active full key can't be
    /// revoked (409 `last_full_key`), whichever key asks; revoking a revoked key changes nothing.
    pub async fn revoke_api_key(&self, who: &Principal, id: ApiKeyId) -> Result<ApiKeyView> {
        who.require_tenant_write()?;
        let now = time::now();
        let check: hookline_store::KeyRevokeCheck = Box::new(move |target, all| {
            let states: Vec<_> = all.iter().map(|k| (k.id.0, k.state())).collect();
            let others = states.iter().map(|(id, s)| (*id, s));
            if api_key::may_revoke(target.id.0, &target.state(), others, now) {
                return Ok(());
            }
            let refusal = Error::Conflict {
                code: "last_full_key",
                message: "this is the tenant's last active full key: create another full key \
                          before revoking this one"
                    .into(),
            };
            Err(Box::new(refusal) as hookline_store::Rejection)
        });
        let key = self
            .store
            .revoke_api_key(who.tenant_id, id, now, check)
            .await?
            .ok_or_else(|| Error::not_found("API key"))?;
        Ok(ApiKeyView::from(&key, who, now))
    }
}
