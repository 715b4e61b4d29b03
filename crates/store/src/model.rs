//! Row types shared by every store implementation.

use hookline_core::retry::RetrySchedule;
use hookline_core::time::Timestamp;
use hookline_core::webhook::{Format, Ordering};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
}

/// A stored API key: only its hash and lookup prefix, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    /// Actor recorded on events when a request names none (`X-Actor-Id`).
    pub default_user_id: Option<String>,
    pub created_at: Timestamp,
}

/// A subscription (DESIGN §1).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub url: String,
    /// Native event names or patterns (`contact.*`, `*`).
    pub events: Vec<String>,
    pub secret: String,
    /// The secret being rotated out; it keeps signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub format: Format,
    pub headers: BTreeMap<String, String>,
    /// `None` = the deployment's default schedule.
    pub retry_schedule: Option<RetrySchedule>,
    pub rate_limit: Option<u32>,
    pub ordering: Ordering,
    pub consecutive_failures: u64,
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

// Secrets must never reach logs, so Debug is written by hand.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}
