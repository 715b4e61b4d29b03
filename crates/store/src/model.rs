//! Row types shared by every store implementation.

use hookline_core::api_key::{KeyScope, KeyState};
use hookline_core::ids::{
    ApiKeyId, AttemptId, DeliveryId, EventId, JobId, LeaseToken, TenantId, WebhookId,
};
use hookline_core::retry::RetrySchedule;
use hookline_core::signing::WebhookSecret;
use hookline_core::time::Timestamp;
use hookline_core::webhook::{Format, Ordering};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A stored API key: only its hash and lookup prefix, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    /// Actor recorded on events when a request names none (`X-Actor-Id`).
    pub default_user_id: Option<String>,
    pub created_at: Timestamp,
    pub scope: KeyScope,
    /// When it stops authenticating (`None`: never, until revoked).
    pub expires_at: Option<Timestamp>,
    /// When it last authenticated a request, written at most once a minute per key and node.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// What its lifecycle rules (`hookline_core::api_key`) look at.
    pub fn state(&self) -> KeyState {
        KeyState {
            scope: self.scope,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A subscription: which events go to which URL, in which format, signed with which secret.
/// `Debug` shows no secret: they are [`WebhookSecret`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: String,
    pub url: String,
    /// Native event names or patterns (`contact.*`, `*`).
    pub events: Vec<String>,
    pub secret: WebhookSecret,
    /// The secret being rotated out; it keeps signing until `previous_secret_expires_at`.
    pub previous_secret: Option<WebhookSecret>,
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
    /// When the latest recorded attempt (test sends included) started; kept by the store when it
    /// records results, so callers create webhooks with `None`.
    pub last_attempt_at: Option<Timestamp>,
    /// The payload filter's source (`hookline_core::filter`), validated by the service when saved;
    /// `None` = every event it subscribes to. Fan-out parses it (`fanout::Subscriber`).
    pub filter: Option<String>,
}

/// Something that happened, stored once; every webhook it matches gets its own delivery of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    /// Native name, e.g. `contact.created`.
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub source: Option<String>,
    pub source_id: Option<String>,
    pub actor_id: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub data: serde_json::Value,
    pub changes: Option<serde_json::Value>,
    pub batch: Option<serde_json::Value>,
    pub created_at: Timestamp,
}

/// The event and delivery ids one publish produced, per event in request order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub id: EventId,
    pub delivery_ids: Vec<DeliveryId>,
}

/// Result of a publish carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Written now.
    Published(Vec<Published>),
    /// The key was seen with the same request: the original answer.
    Replayed(Vec<Published>),
    /// The key was seen with a different request.
    KeyReused,
}

/// What an `Idempotency-Key` holds when a creating request (other than a publish, which keeps its
/// key in its own transaction) claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key was free: it is now this request's, until it is completed or released.
    Claimed,
    /// The key was used by the same request, which answered this (the stored answer).
    Answered(String),
    /// The same request holds the key and hasn't answered yet (it runs now, or its node died).
    InProgress,
    /// The key was used with a different request.
    Reused,
}

/// Where a delivery stands: `pending` until first claimed, `delivering` while leased to a node,
/// `retrying` between failed attempts, and finally `delivered`, `failed` or `cancelled` (with a
/// [`CancelReason`]: its webhook was deleted or disabled, or someone cancelled it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Retrying,
    Delivered,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    /// A delivery in this status will never be attempted again by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }

    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Retrying,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Why a delivery was cancelled (stored in `cancel_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Its webhook was deleted.
    WebhookDeleted,
    /// Its webhook was disabled, by hand or by the failure streak.
    WebhookDisabled,
    /// Its webhook was disabled because the receiver answered 410 Gone.
    EndpointGone,
    /// Someone cancelled this delivery (`POST /v1/deliveries/{id}/cancel`).
    Manual,
}

impl CancelReason {
    pub const ALL: [CancelReason; 4] = [
        CancelReason::WebhookDeleted,
        CancelReason::WebhookDisabled,
        CancelReason::EndpointGone,
        CancelReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::WebhookDeleted => "webhook_deleted",
            CancelReason::WebhookDisabled => "webhook_disabled",
            CancelReason::EndpointGone => "endpoint_gone",
            CancelReason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What [`crate::Store::cancel_delivery`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was pending or retrying and is now cancelled (reason `manual`).
    Cancelled(Box<Delivery>),
    /// It is being delivered or already finished (this status); nothing changed.
    NotQueued(DeliveryStatus),
    /// No such delivery of the tenant.
    NotFound,
}

/// One event (or one object of a batch event) to one webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub item_index: Option<u32>,
    /// How it is rendered (fixed when it was made).
    pub format: Format,
    pub resent_from: Option<DeliveryId>,
    /// The id the receiver sees and deduplicates on (`X-{Brand}-Delivery-ID`, `webhook-id`, the
    /// envelope's `event_id`): the first delivery of its chain of resends and replays, so its own
    /// `id` on a fresh delivery. `id` names the log record; this names the message.
    pub message_id: DeliveryId,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// Why it was cancelled; `None` unless its status is `cancelled`.
    pub cancel_reason: Option<CancelReason>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The webhook's URL now (for the log's display and search).
    pub url: String,
}

/// One HTTP POST of a delivery, recorded once it finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub attempt_number: u32,
    pub started_at: Timestamp,
    pub url: String,
    pub status_code: Option<u16>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub total_ms: f64,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
}

impl Attempt {
    /// An attempt with nothing recorded but when it started, for the store's own attempts (an
    /// abandoned try) and unit tests to fill in.
    pub(crate) fn blank(started_at: Timestamp) -> Attempt {
        Attempt {
            id: AttemptId::default(),
            delivery_id: DeliveryId::default(),
            attempt_number: 1,
            started_at,
            url: String::new(),
            status_code: None,
            error_kind: None,
            error_message: None,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            ttfb_ms: None,
            total_ms: 0.0,
            request_headers: vec![],
            response_headers: vec![],
            response_body: None,
            response_truncated: false,
        }
    }
}

/// Work handed to a dispatcher: due deliveries with what's needed to render and send them.
/// Webhooks, events and tenant names are shared between the deliveries that use them.
#[derive(Debug, Default)]
pub struct Claim {
    pub deliveries: Vec<ClaimedDelivery>,
    pub webhooks: std::collections::HashMap<WebhookId, std::sync::Arc<Webhook>>,
    pub events: std::collections::HashMap<EventId, std::sync::Arc<Event>>,
    /// The stored revision of each of `events` (bumped when an erasure rewrites one).
    pub revisions: std::collections::HashMap<EventId, i64>,
    pub tenants: std::collections::HashMap<TenantId, String>,
}

#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    /// What the receiver sees as the delivery's id (see [`Delivery::message_id`]).
    pub message_id: DeliveryId,
    pub tenant_id: TenantId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub item_index: Option<u32>,
    /// The format fixed when the delivery was made (a later format change can't re-split it).
    pub format: Format,
    /// 1-based number of the attempt about to be made.
    pub attempt_number: u32,
    /// Proves this claim still owns the delivery when the result is written.
    pub lease_token: LeaseToken,
}

/// What the dispatcher decided after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    Delivered,
    /// Due again after this wait, counted on the store's clock (the database's on PostgreSQL), so
    /// no node's own clock decides when another node may send it.
    RetryAfter(std::time::Duration),
    Failed,
}

/// An attempt's result to write.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    pub lease_token: LeaseToken,
    pub attempt: Attempt,
    pub next: NextState,
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<WebhookId>,
    /// Only deliveries of these webhooks (a portal's list).
    pub webhook_ids: Option<Vec<WebhookId>>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Substring of the webhook URL or the event name.
    pub search: Option<String>,
}

/// Filters of a webhook listing.
#[derive(Debug, Clone, Default)]
pub struct WebhookFilter {
    /// Substring of the name, URL or description (case-insensitive, taken literally).
    pub search: Option<String>,
    /// Only these webhooks (a portal's list).
    pub ids: Option<Vec<WebhookId>>,
}

/// Which deliveries of a webhook a replay sends again.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub since: Timestamp,
    pub until: Option<Timestamp>,
    pub statuses: Vec<DeliveryStatus>,
}

/// The store's side of `/metrics`: deliveries per status across tenants, and how long the oldest
/// due delivery has been waiting for a node to take it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Statuses with no delivery may be missing.
    pub counts: Vec<(DeliveryStatus, u64)>,
    /// `None` when nothing is due.
    pub oldest_due_age: Option<std::time::Duration>,
}

impl Backlog {
    /// Deliveries in `status` (0 when none).
    pub fn count(&self, status: DeliveryStatus) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Parameters of [`crate::Store::claim_due`].
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// How long the claimed deliveries stay leased, from the store's clock (the database's `now()`
    /// on PostgreSQL): due times and lease expiry are never judged by a node's own clock, so a
    /// node whose clock runs ahead can't take over another node's live leases.
    pub lease: std::time::Duration,
    pub limit: usize,
    pub per_webhook: usize,
    /// Most deliveries of one tenant in flight on the claiming node.
    pub per_tenant: usize,
    /// What the claiming node has in flight, per webhook and per tenant.
    pub busy: std::collections::HashMap<WebhookId, usize>,
    pub busy_tenants: std::collections::HashMap<TenantId, usize>,
    pub round: u64,
    /// Events the claiming node already holds, with the revision it holds: not read again unless
    /// the stored one was rewritten since (a 50,000-object batch event would otherwise be read and
    /// parsed again for every claim of its deliveries).
    pub known_events: std::collections::HashMap<EventId, i64>,
    /// How many attempts a delivery gets when its webhook has no schedule of its own (the
    /// configured default's `max_attempts`): a reclaimed lease counts as an attempt, and a
    /// delivery whose last allowed attempt was abandoned ends `failed` instead of being claimed.
    pub default_max_attempts: usize,
}

/// A stored CRM record (a contact, a company, ...), kept so a write can be compared with the last
/// version to compute what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub tenant_id: TenantId,
    pub kind: String,
    pub id: String,
    /// Incremented on every write; `If-Match` compares against it.
    pub version: u64,
    /// The record as receivers see it (including `id`, `created_at`, `updated_at`).
    pub data: serde_json::Value,
}

/// What one write to records does, decided against the rows as stored inside the transaction.
#[derive(Debug, Default)]
pub struct RecordPlan {
    /// Records to insert or replace (id, document).
    pub upserts: Vec<(String, serde_json::Value)>,
    pub deletes: Vec<String>,
    /// Events to publish in the same transaction.
    pub events: Vec<Event>,
    /// Most deliveries the events may create (`StoreError::TooManyDeliveries` past it).
    pub max_deliveries: usize,
    /// A background job's step this write is (an import): applied in the same transaction, and
    /// the write is refused (`Conflict`) if the job is no longer held.
    pub job: Option<JobAdvance>,
}

/// Why the caller's plan refused a write; carried through the store untouched.
pub type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// An edit of one webhook, run inside the transaction that stores it.
pub type WebhookEdit = Box<dyn FnOnce(&mut Webhook) -> std::result::Result<(), Rejection> + Send>;

/// The caller's check before a key is revoked: gets the key and every unrevoked key of its tenant
/// (itself included), read in the transaction that revokes it.
pub type KeyRevokeCheck =
    Box<dyn FnOnce(&ApiKey, &[ApiKey]) -> std::result::Result<(), Rejection> + Send>;

/// The caller's decision function: gets the stored rows for the requested ids (in order).
pub type PlanFn =
    Box<dyn FnOnce(Vec<Option<RecordRow>>) -> std::result::Result<RecordPlan, Rejection> + Send>;

/// Filters of a record listing.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Records carrying a tag with this name.
    pub tag: Option<String>,
    pub updated_since: Option<Timestamp>,
    /// Substring of the name (first/last/full), company, email, or title.
    pub search: Option<String>,
}

/// A signed-in browser: the console (made from an API key) or an embedded portal (made from a
/// portal grant's one-time code). The token itself never reaches the database, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the session token in the cookie.
    pub id_hash: String,
    pub tenant_id: TenantId,
    /// The API key a console session was made from (`None` for portal sessions).
    pub key_id: Option<ApiKeyId>,
    /// The grant a portal session was made from (`None` for console sessions).
    pub grant_id: Option<uuid::Uuid>,
    /// The token every state-changing request must echo (form field or header).
    pub csrf: String,
    pub created_at: Timestamp,
    /// Last request seen (for the idle expiry).
    pub last_seen_at: Timestamp,
    /// The absolute expiry.
    pub expires_at: Timestamp,
}

/// A session as [`crate::Store::console_session`] finds it, with what it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSession {
    pub session: ConsoleSession,
    /// A portal session's grant.
    pub grant: Option<PortalGrant>,
    /// A console session's API key, as stored (revoked or expired too: the service decides, with
    /// the same rule as for a bearer key).
    pub key: Option<ApiKey>,
}

/// What a CRM grants one of its customers through an embedded portal.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalGrant {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    /// The webhooks the portal may see; `None` = all of the tenant's.
    pub webhook_ids: Option<Vec<WebhookId>>,
    /// `view`, `manage`, `reveal_secret`, `resend`.
    pub capabilities: Vec<String>,
    /// SHA-256 (hex) of the one-time code in the portal URL; `None` once redeemed.
    pub code_hash: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Pre-aggregated attempts of one webhook in one hour (see `hookline_core::stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHour {
    pub webhook_id: WebhookId,
    pub stats: hookline_core::stats::HourStats,
}

/// One step of a job that writes records (an import), applied by `Store::mutate_records` in the
/// transaction of the write itself: the job moves on exactly when the rows are written.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAdvance {
    pub id: JobId,
    /// The lease the step runs under; a job no longer held refuses the step (and the write).
    pub token: LeaseToken,
    /// The lease is renewed for this long (from the store's clock).
    pub lease: std::time::Duration,
    /// The next item to process after this step.
    pub position: u64,
    /// Items this step processed.
    pub done: u64,
    /// What the job found so far, this step included.
    pub result: serde_json::Value,
    /// This was the last step: the job succeeds.
    pub finished: bool,
}

/// What one retention pass deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Attempts of delivered or failed deliveries started before the cutoff.
    pub attempts: u64,
    /// Delivered or failed deliveries last changed before the cutoff.
    pub deliveries: u64,
    /// Events created before the cutoff with no delivery left.
    pub events: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.attempts + self.deliveries + self.events
    }
}
