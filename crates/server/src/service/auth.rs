//! Tenants and API keys: bootstrap on first start, the operator's minting of keys, and
//! authenticating requests. Keys managed through the API (list, create, revoke) are `keys.rs`'s.
//!
//! Authentication reads the key's row on every request and caches nothing, so a key revoked or
//! expired on one node is refused by every node from its next request on.

use super::access::Principal;
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::api_key::KeyScope;
use hookline_core::ids::ApiKeyId;
use hookline_core::signing;
use hookline_core::time;

pub const DEFAULT_TENANT: &str = "default";

fn validate_tenant_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "tenant",
            "invalid",
            format!("tenant name `{name}` must be 1-64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

impl Hookline {
    /// On an empty database, creates tenant `default` and returns its first key's plaintext (to be
    /// shown once). `None` when any tenant already exists.
    pub async fn bootstrap(&self) -> Result<Option<String>> {
        if self.store.count_tenants().await? > 0 {
            return Ok(None);
        }
        let tenant = self.store.create_tenant(DEFAULT_TENANT).await?;
        let (_, key) = self
            .mint_key(tenant.id, "bootstrap", KeyScope::Full, None, time::now())
            .await?;
        Ok(Some(key))
    }

    /// Mints a full key for `tenant_name`, creating the tenant when it doesn't exist yet: the
    /// operator's way in (`hookline keys create --local`), which needs no key of its own.
    pub async fn create_key(&self, tenant_name: &str, key_name: &str) -> Result<String> {
        validate_tenant_name(tenant_name)?;
        let key_name = hookline_core::webhook::validate_name(key_name)?;
        let tenant = match self.store.tenant_by_name(tenant_name).await? {
            Some(t) => t,
            None => self.store.create_tenant(tenant_name).await?,
        };
        let (_, key) = self
            .mint_key(tenant.id, &key_name, KeyScope::Full, None, time::now())
            .await?;
        Ok(key)
    }

    /// Acts as a tenant without a key: for the operator's CLI, which already holds the database.
    pub async fn principal_for_tenant(&self, tenant_name: &str) -> Result<Principal> {
        let tenant = self
            .store
            .tenant_by_name(tenant_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant `{tenant_name}` not found")))?;
        Ok(Principal {
            tenant_id: tenant.id,
            key_id: ApiKeyId::default(),
            default_user_id: None,
            key_scope: KeyScope::Full,
            scope: None,
        })
    }

    /// Resolves a presented bearer key. Unknown, malformed and revoked keys get the same answer; an
    /// expired one is told so (its holder has the key, so this reveals nothing).
    pub async fn authenticate(&self, presented: &str) -> Result<Principal> {
        let unauthorized = || Error::Unauthorized("invalid API key".into());
        let prefix = signing::api_key_prefix(presented).ok_or_else(unauthorized)?;
        let candidates = self.store.api_keys_by_prefix(prefix).await?;
        // Compare against every candidate so timing doesn't reveal which one matched.
        let mut found = None;
        for key in candidates {
            if signing::api_key_matches(presented, &key.key_hash) {
                found = Some(key);
            }
        }
        let key = found.ok_or_else(unauthorized)?;
        let now = time::now();
        if !key.state().is_live(now) {
            return Err(Error::Unauthorized("this API key has expired".into()));
        }
        self.note_key_use(key.id, now).await;
        Ok(Principal {
            tenant_id: key.tenant_id,
            key_id: key.id,
            default_user_id: key.default_user_id,
            key_scope: key.scope,
            scope: None,
        })
    }
}
