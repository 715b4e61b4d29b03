//! The contract between Hookline and its databases: the [`Store`] trait and the paging type its
//! listings take. It lives apart from the crate root so each backend can import it without
//! importing the module that re-exports the backends themselves.

use crate::error::Result;
use crate::model::{
    ApiKey, Attempt, AttemptResult, Backlog, Claim, ClaimRequest, Delivery, DeliveryFilter,
    DeliveryStatus, Event, PlanFn, PublishOutcome, Published, RecordFilter, RecordRow,
    ReplayFilter, Tenant, Webhook, WebhookEdit,
};
use async_trait::async_trait;
use hookline_core::ids::{DeliveryId, EventId, LeaseToken, TenantId, WebhookId};
use hookline_core::retry::DisablePolicy;
use hookline_core::time::Timestamp;
use hookline_core::webhook::Format;
use uuid::Uuid;

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
    /// Wake-ups for new work committed by other processes (PostgreSQL `LISTEN`); `None` when the
    /// store has no other writers to hear from.
    fn wakeups(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn count_tenants(&self) -> Result<u64>;
    async fn tenant_name(&self, id: TenantId) -> Result<Option<String>>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// Live (not revoked) keys whose stored prefix equals `prefix`.
    async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>>;

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()>;
    async fn get_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<Option<Webhook>>;
    /// Webhooks newest first; `search` matches name, URL and description (case-insensitively,
    /// taken literally).
    async fn list_webhooks(
        &self,
        tenant_id: TenantId,
        search: Option<String>,
        page: Page,
    ) -> Result<Vec<Webhook>>;
    /// Reads a webhook, lets `edit` change it, and writes it back in one transaction, so a
    /// concurrent change (an auto-disable, a rotation, another edit) is never overwritten with stale
    /// values. `None` when it doesn't exist; an `edit` error comes back as `Rejected`.
    async fn modify_webhook(
        &self,
        tenant_id: TenantId,
        id: WebhookId,
        edit: WebhookEdit,
    ) -> Result<Option<Webhook>>;
    /// Deletes a webhook with its deliveries and attempts; false when it doesn't exist.
    async fn delete_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<bool>;

    /// Writes events and, in the same transaction, one delivery per matching enabled webhook (one
    /// per object for one-object formats). With `idempotency = (key, request_hash)`, a key seen
    /// before answers the original result (same hash) or `KeyReused` (different hash).
    async fn publish(
        &self,
        tenant_id: TenantId,
        events: Vec<Event>,
        idempotency: Option<(String, String)>,
    ) -> Result<PublishOutcome>;
    async fn get_event(&self, tenant_id: TenantId, id: EventId) -> Result<Option<Event>>;
    async fn list_events(
        &self,
        tenant_id: TenantId,
        event_type: Option<String>,
        page: Page,
    ) -> Result<Vec<Event>>;
    /// Records a delivery that was already made (test sends, which are sent synchronously before
    /// anything is stored): the event, the delivery in its final status, and its one attempt. No
    /// worker can ever pick such a delivery up.
    async fn insert_finished_delivery(
        &self,
        event: Event,
        webhook_id: WebhookId,
        format: Format,
        attempt: Attempt,
        status: DeliveryStatus,
    ) -> Result<()>;

    /// Leases due deliveries: pending or retrying ones whose time has come, and leased ones whose
    /// lease expired (their node died). Each enabled webhook gets at most `per_webhook` minus its
    /// entry in `busy` (deliveries this node already has in flight for it), so a slow endpoint can't
    /// fill the node; at most `limit` in all. Per-record ordering is honoured: only the oldest
    /// unfinished delivery of a record is claimable. `round` rotates which webhooks go first.
    async fn claim_due(&self, request: ClaimRequest) -> Result<Claim>;
    /// Writes attempt results. A result whose lease is no longer held changes nothing (`false`).
    /// Failure streaks are kept per webhook; one that crosses `disable` is disabled and a
    /// `webhook.disabled` event goes to the tenant's subscribers of it.
    async fn record_attempts(
        &self,
        results: Vec<AttemptResult>,
        disable: DisablePolicy,
    ) -> Result<Vec<bool>>;
    /// Gives leased deliveries back unsent, due now: pending again, or retrying when they were
    /// attempted before. A pair whose token no longer holds the lease changes nothing. Meant for a
    /// node shutting down, so its in-flight work needn't wait for the leases to expire.
    async fn release(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<()>;
    /// When the earliest waiting delivery is due, if any.
    async fn next_due_at(&self) -> Result<Option<Timestamp>>;

    async fn list_deliveries(
        &self,
        tenant_id: TenantId,
        filter: DeliveryFilter,
        page: Page,
    ) -> Result<Vec<Delivery>>;
    async fn get_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>>;
    /// A new delivery of the same event to the same webhook; `None` when the original isn't found.
    async fn resend(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Option<DeliveryId>>;
    /// New deliveries for a webhook's matching past deliveries; with `dry_run` only counts them.
    async fn replay(
        &self,
        tenant_id: TenantId,
        webhook_id: WebhookId,
        filter: ReplayFilter,
        dry_run: bool,
    ) -> Result<u64>;
    /// Deletes attempts of delivered deliveries started before `attempts_before`, and idempotency
    /// records older than `keys_before`. Returns the number of attempts removed.
    async fn prune(&self, attempts_before: Timestamp, keys_before: Timestamp) -> Result<u64>;
    /// Deliveries per status across tenants, and the age at `now` of the oldest due delivery
    /// (pending or retrying and due, or leased by a node whose lease expired). Queued statuses (pending,
    /// retrying, delivering) are counted through their partial indexes, so the cost follows the
    /// backlog, not the table; the terminal ones (delivered, failed) need a scan and are counted
    /// only when `terminal` is set (callers cache them).
    async fn backlog(&self, now: Timestamp, terminal: bool) -> Result<Backlog>;

    /// Reads the records `ids` of `kind`, lets `plan` decide the write, and applies it — records,
    /// events and deliveries — in one transaction, so no concurrent write can slip between the read
    /// and the write. Returns the fan-out of the plan's events and the rows as written.
    async fn mutate_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        ids: Vec<String>,
        plan: PlanFn,
    ) -> Result<(Vec<Published>, Vec<RecordRow>)>;
    async fn get_record(
        &self,
        tenant_id: TenantId,
        kind: &str,
        id: &str,
    ) -> Result<Option<RecordRow>>;
    /// Records newest id first; `before` is the previous page's last id.
    async fn list_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        filter: RecordFilter,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<RecordRow>>;
}
