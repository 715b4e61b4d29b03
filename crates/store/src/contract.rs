//! The contract between Hookline and its databases: the [`Store`] trait and the paging type its
//! listings take. It lives apart from the crate root so each backend can import it without
//! importing the module that re-exports the backends themselves.

use crate::error::Result;
use crate::jobs::{Job, JobKind, ReplayJob};
use crate::model::{
    ApiKey, Attempt, AttemptResult, Backlog, CancelOutcome, Claim, ClaimRequest, ConsoleSession,
    Delivery, DeliveryFilter, DeliveryStatus, Event, FoundSession, KeyClaim, KeyRevokeCheck,
    PlanFn, PortalGrant, Pruned, PublishOutcome, Published, RecordFilter, RecordRow, ReplayFilter,
    Tenant, Webhook, WebhookEdit, WebhookFilter, WebhookHour,
};
use crate::sealed::{Reseal, ResealReport};
use async_trait::async_trait;
use hookline_core::ids::{ApiKeyId, DeliveryId, EventId, JobId, LeaseToken, TenantId, WebhookId};
use hookline_core::retry::DisablePolicy;
use hookline_core::time::Timestamp;
use hookline_core::webhook::Format;
use serde_json::Value;
use std::time::Duration;
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
    /// Applies pending migrations, then seals webhook secrets still in clear ([`Reseal::Clear`]);
    /// safe to call on every start. Fails, naming the key, when any secret is sealed under a key
    /// the store wasn't given.
    async fn migrate(&self) -> Result<()>;
    /// Re-encrypts webhook secrets, previous secrets and custom header values under the current key:
    /// those still in clear ([`Reseal::Clear`]), or every one sealed under another key
    /// ([`Reseal::All`], a key rotation). Works in chunks, each read and rewritten in its own
    /// transaction. First refuses, naming the key, when any value is sealed under a key the store
    /// doesn't hold (it could neither open nor re-seal it).
    async fn reseal(&self, scope: Reseal) -> Result<ResealReport>;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// Wake-ups for new work committed by other processes (PostgreSQL `LISTEN`); `None` when the
    /// store has no other writers to hear from.
    fn wakeups(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// Why this store can never work again in this process (the SQLite writer thread is gone), so
    /// a supervisor should restart it; `None` while it is sound.
    fn broken(&self) -> Option<String> {
        None
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn count_tenants(&self) -> Result<u64>;
    async fn tenant_name(&self, id: TenantId) -> Result<Option<String>>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// Unrevoked keys whose stored prefix equals `prefix` (expired ones too: expiry is the
    /// caller's to judge, at its own `now`).
    async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>>;
    /// A tenant's keys, revoked and expired ones included, newest first.
    async fn list_api_keys(&self, tenant_id: TenantId, page: Page) -> Result<Vec<ApiKey>>;
    /// Revokes a key of the tenant at `now` and deletes the browser sessions signed in with it, in
    /// one transaction that first reads the key and every unrevoked key of the tenant and lets
    /// `check` refuse (as
    /// `Rejected`); concurrent revocations of one tenant's keys are serialised, so two of them can't
    /// both pass a check that each would fail after the other. An already revoked key comes back
    /// unchanged without asking `check`; `None` when the tenant has no such key.
    async fn revoke_api_key(
        &self,
        tenant_id: TenantId,
        id: ApiKeyId,
        now: Timestamp,
        check: KeyRevokeCheck,
    ) -> Result<Option<ApiKey>>;
    /// Records that a key authenticated a request at `at`; `last_used_at` never moves back, and an
    /// unknown key is a no-op.
    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()>;

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()>;
    async fn get_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<Option<Webhook>>;
    /// Webhooks newest first, filtered (see [`WebhookFilter`]).
    async fn list_webhooks(
        &self,
        tenant_id: TenantId,
        filter: WebhookFilter,
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
    /// Soft-deletes a webhook: it is disabled and marked deleted, so every webhook read of the
    /// tenant (get, list, modify) and every claim and fan-out leaves it out, while its deliveries
    /// and attempts stay readable until retention. Its queued (pending, retrying) deliveries are
    /// cancelled with reason `webhook_deleted` in the same transaction. A webhook that is disabled
    /// by [`Store::modify_webhook`] or by its failure streak has its queued deliveries cancelled
    /// the same way (`webhook_disabled`, or `endpoint_gone` after a 410). False when it doesn't
    /// exist (or was deleted already).
    async fn delete_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<bool>;
    /// Marks webhooks as alive now (`updated_at`): the heartbeat of `hookline listen` sessions'
    /// temporary webhooks, held by the node that calls it.
    async fn touch_webhooks(&self, ids: Vec<WebhookId>) -> Result<()>;
    /// Listen sessions' webhooks (URL `listen:…`, not deleted) whose heartbeat is older than
    /// `stale`: their node is gone. Not tenant-scoped (a node's housekeeping).
    async fn stale_listen_webhooks(&self, stale: Duration) -> Result<Vec<(TenantId, WebhookId)>>;
    /// Whether a webhook may send now (enabled and not deleted); false for an unknown one. The
    /// dispatcher's re-check just before a send; not tenant-scoped (workers serve every tenant).
    async fn webhook_live(&self, id: WebhookId) -> Result<bool>;
    /// Cancels deliveries still leased to their token whose webhook was disabled or deleted after
    /// the claim (with the reason the webhook's state gives); a lease that moved on, or a webhook
    /// that may send again, changes nothing. Returns how many were cancelled.
    async fn cancel_claimed(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<u64>;
    /// Cancels one queued (pending or retrying) delivery of the tenant, reason `manual`.
    async fn cancel_delivery(&self, tenant_id: TenantId, id: DeliveryId) -> Result<CancelOutcome>;

    /// Writes events and, in the same transaction, one delivery per matching enabled webhook (one
    /// per object for one-object formats). With `idempotency = (key, request_hash)`, a key seen
    /// before answers the original result (same hash) or `KeyReused` (different hash). Nothing is
    /// written when the events would create more than `max_deliveries` deliveries
    /// (`TooManyDeliveries`).
    async fn publish(
        &self,
        tenant_id: TenantId,
        events: Vec<Event>,
        idempotency: Option<(String, String)>,
        max_deliveries: usize,
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
    /// worker can ever pick such a delivery up. The attempt counts in the webhook's hourly stats
    /// (delivered when `status` is delivered or the answer was 2xx) and its `last_attempt_at`.
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
    /// Taking over an expired lease logs an `abandoned` attempt for the lost try and advances the
    /// attempt count; a delivery whose abandoned try was the last its schedule allows (its
    /// webhook's, else `default_max_attempts`) ends `failed` (publishing `delivery.exhausted`)
    /// instead of being claimed.
    async fn claim_due(&self, request: ClaimRequest) -> Result<Claim>;
    /// Writes attempt results. A result whose lease is no longer held changes nothing (`false`)
    /// but is logged as a `stale` attempt. A delivery that ends `failed` publishes
    /// `delivery.exhausted`. Failure streaks are kept per webhook; one that crosses `disable` is
    /// disabled and a `webhook.disabled` event goes to the tenant's subscribers of it (one that
    /// reaches half of it, `webhook.failing`; one that ends in a success, `webhook.recovered`). In
    /// the same transaction,
    /// each applied attempt is counted in its webhook's hourly stats (see [`Store::webhook_hours`];
    /// delivered when its result is `NextState::Delivered` or it was answered 2xx, in the hour its
    /// `started_at` falls in) and moves the webhook's `last_attempt_at` forward.
    async fn record_attempts(
        &self,
        results: Vec<AttemptResult>,
        disable: DisablePolicy,
    ) -> Result<Vec<bool>>;
    /// Gives leased deliveries back unsent, due now: pending again, or retrying when they were
    /// attempted before. A pair whose token no longer holds the lease changes nothing. Meant for a
    /// node shutting down, so its in-flight work needn't wait for the leases to expire.
    async fn release(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<()>;
    /// Extends leases still held (same token, still `delivering`) to `lease` from now on the
    /// store's clock: a delivery waiting legitimately (for its rate limit, a slow send, its
    /// result's commit) keeps its lease, so no other node sends it again unless this node died.
    /// Returns how many were extended.
    async fn renew_leases(
        &self,
        leases: Vec<(DeliveryId, LeaseToken)>,
        lease: Duration,
    ) -> Result<u64>;
    /// How long until the earliest waiting delivery is due (zero when one is overdue), by the
    /// store's clock; `None` when nothing waits.
    async fn next_due_in(&self) -> Result<Option<Duration>>;
    /// Moves every schedule (due times and leases of deliveries and jobs) `by` into the past, as
    /// if that much time had passed on the store's clock. For tests and simulations: how a suite
    /// reaches a lease's expiry or a retry's due time without waiting for it.
    async fn travel(&self, by: Duration) -> Result<()>;

    async fn list_deliveries(
        &self,
        tenant_id: TenantId,
        filter: DeliveryFilter,
        page: Page,
    ) -> Result<Vec<Delivery>>;
    /// The resends and replays of a delivery, newest first (at most 100).
    async fn resends_of(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Vec<Delivery>>;
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
    /// Retention, oldest first and in chunks of at most `PRUNE_CHUNK` rows per statement so no
    /// writer waits long: attempts of terminal (delivered or failed) deliveries started before
    /// `before`, then terminal deliveries last changed before `before`, then events created before
    /// `before` that have no delivery left (so an event with a delivery still pending, retrying or
    /// delivering — or any delivery too recent to prune — stays), hourly stats of hours that ended
    /// by `before` (the hour it falls in is kept), and idempotency records older than
    /// `keys_before`. Returns the rows removed per table.
    async fn prune(&self, before: Timestamp, keys_before: Timestamp) -> Result<Pruned>;
    /// Deliveries per status across tenants, and how overdue (on the store's clock) the oldest due delivery is
    /// (pending or retrying and due, or leased by a node whose lease expired). Queued statuses (pending,
    /// retrying, delivering) are counted through their partial indexes, so the cost follows the
    /// backlog, not the table; the terminal ones (delivered, failed) need a scan and are counted
    /// only when `terminal` is set (callers cache them).
    async fn backlog(&self, terminal: bool) -> Result<Backlog>;

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

    // ---- console sessions (browser sign-ins) ----------------------------------------------------

    /// Stores a new session. The token is never stored, only `id_hash`.
    async fn insert_console_session(&self, session: &ConsoleSession) -> Result<()>;
    /// The session with, for a portal session, its grant and, for a console session, its API key.
    /// `None` when unknown. Does not check expiry (the service does, of the session and the key
    /// alike), but a session whose grant was revoked is never returned.
    async fn console_session(&self, id_hash: &str) -> Result<Option<FoundSession>>;
    /// Records activity (idle expiry); a no-op for an unknown session. `last_seen_at` never moves
    /// back.
    async fn touch_console_session(&self, id_hash: &str, at: Timestamp) -> Result<()>;
    async fn delete_console_session(&self, id_hash: &str) -> Result<()>;
    /// Deletes sessions past their absolute expiry (`expires_at <= now`) or idle since before
    /// `idle_before`; returns how many.
    async fn prune_console_sessions(&self, now: Timestamp, idle_before: Timestamp) -> Result<u64>;

    // ---- portal grants ---------------------------------------------------------------------------

    async fn insert_portal_grant(&self, grant: &PortalGrant) -> Result<()>;
    /// Atomically redeems a one-time code: the grant whose code_hash matches, not revoked and not
    /// expired at `now`, with its code_hash cleared so the code can't be used again. `None` otherwise.
    async fn redeem_portal_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<PortalGrant>>;
    /// Revokes one grant of the tenant (`Some(id)`) or all its unrevoked grants (`None`), and deletes
    /// their browser sessions at once. Returns how many grants were revoked (0 = not found / none;
    /// an already revoked grant counts as none).
    async fn revoke_portal_grants(
        &self,
        tenant_id: TenantId,
        id: Option<Uuid>,
        now: Timestamp,
    ) -> Result<u64>;
    /// Adds a webhook to a grant's list (a webhook created through a portal belongs to it); a no-op
    /// for a grant without a list (it sees every webhook of the tenant anyway), for a webhook
    /// already listed, for a revoked grant, and for a grant or webhook that isn't the tenant's.
    async fn add_webhook_to_grant(
        &self,
        tenant_id: TenantId,
        grant_id: Uuid,
        webhook_id: WebhookId,
    ) -> Result<()>;

    // ---- pre-aggregated statistics ---------------------------------------------------------------

    /// The hourly stats of the given webhooks of a tenant from `since` (inclusive, hour-aligned; an
    /// unaligned `since` includes the hour it falls in) on, ordered by webhook then hour; hours
    /// without attempts are absent, and so are webhooks that aren't the tenant's.
    async fn webhook_hours(
        &self,
        tenant_id: TenantId,
        webhook_ids: Vec<WebhookId>,
        since: Timestamp,
    ) -> Result<Vec<WebhookHour>>;

    // ---- background jobs (see `jobs.rs`) ---------------------------------------------------------

    /// Queues a replay job of `tenant_id` expecting `total` copies.
    async fn insert_replay_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: ReplayJob,
        total: u64,
    ) -> Result<Job>;
    /// Queues an import job of `tenant_id`: its parameters, what it found before its first step
    /// (`result`), and its items (stored one row each, read back a step at a time with
    /// [`Store::job_items`]).
    async fn insert_import_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: Value,
        result: Value,
        items: Vec<Value>,
    ) -> Result<Job>;
    /// Items of a job from `position` on, at most `limit`, in order.
    async fn job_items(&self, id: JobId, position: u64, limit: usize) -> Result<Vec<Value>>;
    async fn get_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<Job>>;
    /// Jobs newest first; only those of `kind` when given.
    async fn list_jobs(
        &self,
        tenant_id: TenantId,
        kind: Option<JobKind>,
        page: Page,
    ) -> Result<Vec<Job>>;
    /// Cancels a job that is still queued or running (a terminal job is left as it is); `None` when
    /// there is no such job. The job as it is now.
    async fn cancel_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<Job>>;
    /// Takes the oldest open job nobody holds (queued, or running under a lease that has run out on
    /// the store's clock) and leases it to `token` for `lease`.
    async fn claim_job(&self, token: LeaseToken, lease: Duration) -> Result<Option<Job>>;
    /// One step of a replay job held by `token`: copies the next (at most) `limit` matching
    /// deliveries after its cursor, advances cursor and count, renews the lease for `lease`,
    /// and marks the job succeeded when nothing is left, all in one transaction. A job no longer
    /// held by `token` (cancelled, or taken over after its lease ran out) is returned unchanged and
    /// nothing is copied.
    async fn replay_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<Job>;
    /// Queues an erasure of one record of `tenant_id` (see `crate::erasure`).
    async fn insert_erasure_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        target: hookline_core::erasure::Target,
    ) -> Result<Job>;
    /// One step of an erasure held by `token`: up to `limit` candidate events judged and applied,
    /// the job's cursor and counts advanced and its lease renewed, in one transaction; the last
    /// step (fewer candidates than `limit`) also removes the record, the stored answers showing it
    /// and finished imports' input rows, and marks the job succeeded. A job no longer held is
    /// returned unchanged.
    async fn erasure_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<Job>;
    /// Marks a job held by `token` failed with `error`.
    async fn fail_job(&self, id: JobId, token: LeaseToken, error: &str) -> Result<()>;

    // ---- idempotency keys of creating requests ---------------------------------------------------

    /// Claims a tenant's `Idempotency-Key` for a request fingerprinted `request_hash` (atomically:
    /// of two requests racing for a key, one claims it and the other sees it in progress), or says
    /// what the key already holds. Keys share the table with publish's and are pruned with them.
    async fn claim_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        request_hash: &str,
    ) -> Result<KeyClaim>;
    /// Stores the answer of the request that claimed `key`; later requests with the key get it.
    async fn complete_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        response: &str,
    ) -> Result<()>;
    /// Gives back a claimed key that has no answer (its request failed), so it may be used again.
    /// A completed key is left as it is.
    async fn release_idempotency_key(&self, tenant_id: TenantId, key: &str) -> Result<()>;
}
