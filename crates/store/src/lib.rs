//! Storage for Hookline: the [`Store`] trait every interface reaches the database through, its row
//! types, and the embedded SQLite implementation ([`SqliteStore`]).
//!
//! The trait speaks in domain rows, not SQL, so the PostgreSQL implementation can slot in behind the
//! same behavioural test suite. Every method is scoped by tenant where rows belong to one: a caller
//! can't read or change another tenant's rows by guessing an id.
#![forbid(unsafe_code)]

mod error;
mod model;
mod sqlite;

pub use error::StoreError;
pub use model::*;
pub use sqlite::{SqliteStore, Synchronous};

use async_trait::async_trait;
use uuid::Uuid;

pub type Result<T> = std::result::Result<T, StoreError>;

/// One page of a cursor-paginated listing, newest first.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Return rows strictly older than this id (the previous page's last id).
    pub before: Option<Uuid>,
    pub limit: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> Result<()>;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn count_tenants(&self) -> Result<u64>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// Live (not revoked) keys whose stored prefix equals `prefix`.
    async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>>;

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()>;
    async fn get_webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Webhook>>;
    async fn list_webhooks(&self, tenant_id: Uuid, page: Page) -> Result<Vec<Webhook>>;
    /// Replaces the stored settings of an existing webhook; false when it doesn't exist.
    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool>;
    /// Deletes a webhook with its deliveries and attempts; false when it doesn't exist.
    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<bool>;
}
