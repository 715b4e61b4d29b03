//! The PostgreSQL store, for several Hookline nodes sharing one database: any node can serve the
//! API and any node can deliver.
//!
//! Nodes claim due deliveries with `FOR UPDATE SKIP LOCKED` and a lease, so two nodes never send the
//! same delivery at once and a dead node's work is picked up when its leases expire. Every publish
//! commits `NOTIFY hookline_work`; each node LISTENs on a dedicated connection and wakes its
//! dispatcher, so new work starts on any node within milliseconds (polling remains the fallback).
//! Batches (fan-out, results) are written with `unnest` arrays: one statement per batch, not per row.
//!
//! Connections come from a `deadpool-postgres` pool with bounded waits (see [`PoolOptions`]). Every
//! kind of connection trouble — none free in time, a connect or statement timeout, a lost
//! connection — maps to [`StoreError::Unavailable`], which the API answers with 503 and the
//! dispatcher retries.
//!
//! Every connection, the LISTEN one included, is encrypted and checked as the URL's `sslmode` and
//! `sslrootcert` ask (`pg_tls.rs`).

use crate::contract::{Page, Store};
use crate::erasure::{self, Erased};
use crate::error::{Result, StoreError};
use crate::fairness;
use crate::fanout::{self, Subscriber};
use crate::health::{self, HealthDelta, Streak};
use crate::jobs::{self, JobKind, ReplayJob, JOB_COLS};
use crate::model::{
    ApiKey, Attempt, AttemptResult, Backlog, CancelOutcome, Claim, ClaimRequest, ClaimedDelivery,
    ConsoleSession, Delivery, DeliveryFilter, DeliveryStatus, Event, FoundSession, KeyClaim,
    KeyRevokeCheck, PlanFn, PortalGrant, Pruned, PublishOutcome, Published, RecordFilter,
    RecordRow, ReplayFilter, Tenant, Webhook, WebhookEdit, WebhookFilter, WebhookHour,
};
use crate::pg_tls::{MakeRustlsConnect, TlsSettings};
use crate::redacted::{self, LogRedactor};
use crate::sealed::{self, Reseal, ResealReport, SealedCols, Sealer};
use crate::shared::{
    self, ATTEMPT_COLS, DELIVERY_COLS, EVENT_COLS, GRANT_COLS, KEY_COLS, PRUNE_CHUNK, RECORD_COLS,
    SESSION_COLS, WEBHOOK_COLS,
};
use crate::stats::{self, HOUR_COLS, MERGE_HOUR};
use async_trait::async_trait;
use deadpool_postgres::{HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use deadpool_postgres::{Runtime, TimeoutType};
use hookline_core::api_key::KeyScope;
use hookline_core::erasure::{Target, Verdict};
use hookline_core::ids::{
    ApiKeyId, AttemptId, DeliveryId, EventId, JobId, LeaseToken, TenantId, WebhookId,
};
use hookline_core::retry::{DisablePolicy, RetrySchedule};
use hookline_core::sealing::Keyring;
use hookline_core::stats::BUCKETS;
use hookline_core::time::{self, Timestamp};
use hookline_core::webhook::Format;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Transaction};
use uuid::Uuid;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_console.sql"),
    include_str!("../migrations/postgres/0003_resends.sql"),
    include_str!("../migrations/postgres/0004_api_key_lifecycle.sql"),
    include_str!("../migrations/postgres/0005_jobs.sql"),
    include_str!("../migrations/postgres/0006_message_id_retention.sql"),
    include_str!("../migrations/postgres/0007_cancelled.sql"),
    include_str!("../migrations/postgres/0008_webhook_filter.sql"),
    include_str!("../migrations/postgres/0009_event_redacted.sql"),
];
/// Any fixed number: serialises migrations when several nodes start together.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c69_6e65;
const CHANNEL: &str = "hookline_work";

/// How the connection pool behaves. [`PoolOptions::new`] gives the defaults for a pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once (the LISTEN connection comes on top).
    pub size: usize,
    /// How long opening one connection may take, session setup included. A `connect_timeout` in the
    /// URL still bounds the TCP connect itself.
    pub connect_timeout: Duration,
    /// How long a caller waits for a free connection when all are busy, before it gets
    /// `Unavailable` (503) instead of piling up behind a stuck database.
    pub wait_timeout: Duration,
    /// Longest a single statement may run before PostgreSQL cancels it (then `Unavailable`);
    /// `Duration::ZERO` turns the limit off. Migrations are exempt.
    pub statement_timeout: Duration,
}

impl PoolOptions {
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

    /// `size` connections (at least one) with the default timeouts.
    pub fn new(size: usize) -> Self {
        PoolOptions {
            size: size.max(1),
            connect_timeout: Self::CONNECT_TIMEOUT,
            wait_timeout: Self::WAIT_TIMEOUT,
            statement_timeout: Self::STATEMENT_TIMEOUT,
        }
    }
}

#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
    /// Seals and opens webhook secrets (see `sealed.rs`); set by [`PostgresStore::with_keyring`].
    sealer: Sealer,
    /// The fields `log_redact` keeps out of stored events (see `redacted.rs`).
    log_redact: redacted::Paths,
}

struct Inner {
    pool: Pool,
    options: PoolOptions,
    wake: Arc<Notify>,
}

/// The whole story of a driver error (its Display alone is often just "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "PostgreSQL {}: {} ({})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let msg = describe(&e);
    if let Some(code) = e.code() {
        if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict(msg);
        }
        let class = &code.code()[..2];
        // Connection exceptions, operator intervention, insufficient resources, serialization:
        // all pass, so callers should retry.
        if matches!(class, "08" | "57" | "53" | "40") {
            return StoreError::Unavailable(msg);
        }
        return StoreError::Internal(msg);
    }
    // No SQLSTATE: the connection failed (closed, reset, timed out, cut mid-message by a restart)
    // or a value didn't convert (a bug). Only the latter is Internal: a database restart must
    // answer 503, not 500. A failed TLS handshake (a certificate that no longer verifies, say) is
    // connection trouble too.
    let mut io = false;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        io |= s.is::<std::io::Error>();
        source = s.source();
    }
    let lower = msg.to_ascii_lowercase();
    if e.is_closed()
        || io
        || [
            "connect",
            "communicating",
            "unexpected message",
            "timed out",
            "timeout",
            "closed",
            "tls handshake",
        ]
        .iter()
        .any(|w| lower.contains(w))
    {
        return StoreError::Unavailable(msg);
    }
    StoreError::Internal(msg)
}

/// A pool failure: every one of them passes (or is a connection problem), so callers retry or answer
/// 503 — except a pool built without a runtime, which is a bug.
fn pool_err(e: PoolError, options: &PoolOptions) -> StoreError {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => StoreError::Unavailable(format!(
            "no PostgreSQL connection came free within {:?} (all {} in use)",
            options.wait_timeout, options.size
        )),
        PoolError::Timeout(TimeoutType::Create) => StoreError::Unavailable(format!(
            "PostgreSQL did not accept a connection within {:?}",
            options.connect_timeout
        )),
        PoolError::Timeout(TimeoutType::Recycle) => {
            StoreError::Unavailable("checking a pooled PostgreSQL connection timed out".into())
        }
        PoolError::Backend(e) | PoolError::PostCreateHook(HookError::Backend(e)) => pg_err(e),
        PoolError::PostCreateHook(HookError::Message(m)) => StoreError::Unavailable(m.into()),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Internal("the connection pool has no runtime for its timeouts".into())
        }
    }
}

fn bad_json(e: serde_json::Error) -> StoreError {
    StoreError::Internal(format!("stored JSON is invalid: {e}"))
}

/// A pooled connection; it goes back to the pool when dropped (unless it broke).
type Conn = deadpool_postgres::Object;

/// Opens the pool's connections: the driver's connect, then the settings every pooled session runs
/// with. Done here rather than in a post-create hook so the pool's create timeout covers it all.
struct SessionConnect {
    /// `SET statement_timeout = …`.
    setup: String,
    /// TLS as the URL's `sslmode` asks (unused with `disable`).
    tls: MakeRustlsConnect,
}

/// What [`deadpool_postgres::Connect`] yields: a client and the task driving its connection.
type Connected = std::result::Result<(Client, JoinHandle<()>), tokio_postgres::Error>;

impl deadpool_postgres::Connect for SessionConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
        let config = config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(self.tls.clone()).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
            });
            if let Err(e) = client.batch_execute(&self.setup).await {
                task.abort();
                return Err(e);
            }
            Ok((client, task))
        })
    }
}

impl PostgresStore {
    /// The keys webhook secrets and header values are sealed under (see `sealed.rs`). Without one
    /// the store refuses to read or write webhooks. Every node of a deployment needs the same keys.
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.sealer = Sealer::new(keyring);
        self
    }

    /// The fields kept out of stored events (`log_redact`, see `redacted.rs`).
    pub fn with_log_redact(mut self, paths: hookline_core::redact::Redaction) -> Self {
        self.log_redact = Arc::new(paths);
        self
    }

    /// Connects with `pool_size` connections at most and the default timeouts of [`PoolOptions`].
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self> {
        Self::connect_with(url, PoolOptions::new(pool_size)).await
    }

    /// Connects (lazily, but one connection is opened now so a wrong URL, password or host fails
    /// at start) and starts the LISTEN connection.
    pub async fn connect_with(url: &str, options: PoolOptions) -> Result<Self> {
        let bad_url = |e: String| StoreError::Internal(format!("database_url: {e}"));
        let (url, tls_settings) = TlsSettings::from_url(url).map_err(bad_url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Internal(format!("database_url is not a PostgreSQL URL: {e}"))
        })?;
        let mut ssl_mode = tls_settings.mode(config.get_ssl_mode());
        // Over a Unix socket `prefer` means plaintext, as in libpq (there is no host name to
        // present, and the socket never leaves the machine).
        let all_sockets = config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
        if ssl_mode == crate::pg_tls::SslMode::Prefer && all_sockets {
            ssl_mode = crate::pg_tls::SslMode::Disable;
        }
        config.ssl_mode(ssl_mode.driver());
        let tls = tls_settings.connector(ssl_mode).map_err(bad_url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let connect = SessionConnect {
            setup: format!(
                "SET statement_timeout = {}",
                options.statement_timeout.as_millis()
            ),
            tls: tls.clone(),
        };
        // Fast recycling only checks that the connection isn't closed: no round trip on every
        // checkout, which the claim and result paths make many times a second. A connection that
        // died without the driver noticing fails its next statement as `Unavailable`, which
        // callers retry, and is then closed and replaced. (Verified would spend a round trip on
        // every checkout to catch that rare case one statement earlier.)
        let manager = Manager::from_connect(
            config.clone(),
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Internal(format!("can't build the connection pool: {e}")))?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                options,
                wake: Arc::new(Notify::new()),
            }),
            sealer: Sealer::default(),
            log_redact: Default::default(),
        };
        // The first connection says whether the URL works; a TLS failure names the settings.
        let context =
            |m: String| format!("{m} (database_url: {})", tls_settings.describe(ssl_mode));
        let first = store.conn().await.map_err(|e| match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(context(m)),
            StoreError::Internal(m) => StoreError::Internal(context(m)),
            other => other,
        })?;
        drop(first);
        tokio::spawn(listen(config, tls, store.inner.wake.clone()));
        Ok(store)
    }

    async fn conn(&self) -> Result<Conn> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| pool_err(e, &self.inner.options))
    }
}

/// Starts a transaction on a pooled connection, as the driver's own type so the shared statements
/// below take it like any other client.
async fn begin(c: &mut Conn) -> Result<Transaction<'_>> {
    let client: &mut Client = c;
    client.transaction().await.map_err(pg_err)
}

/// Keeps a LISTEN connection open (reconnecting with backoff) and turns notifications into wake-ups.
async fn listen(config: tokio_postgres::Config, tls: MakeRustlsConnect, wake: Arc<Notify>) {
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                backoff = std::time::Duration::from_millis(200);
                let pump = async {
                    loop {
                        match futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                                wake.notify_one()
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return e.to_string(),
                            None => return "closed".to_string(),
                        }
                    }
                };
                let listen_sql = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&listen_sql);
                // The connection must be polled for LISTEN itself to complete.
                tokio::pin!(pump);
                let reason = tokio::select! {
                    r = subscribe => match r {
                        Ok(()) => { wake.notify_one(); pump.await }
                        Err(e) => e.to_string(),
                    },
                    r = &mut pump => r,
                };
                tracing::warn!(%reason, "PostgreSQL LISTEN connection lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "PostgreSQL LISTEN connection failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}

// ---- row mapping -------------------------------------------------------------------------------

fn json_col<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(bad_json)
}

fn job_row(r: &Row) -> Result<jobs::Job> {
    let (kind, status) =
        jobs::parse_kind_status(r.get(2), r.get(3)).map_err(StoreError::Internal)?;
    Ok(jobs::Job {
        id: r.get(0),
        tenant_id: r.get(1),
        kind,
        status,
        params: r.get(4),
        total: r.get::<_, Option<i64>>(5).map(|n| n as u64),
        done: r.get::<_, i64>(6) as u64,
        error: r.get(7),
        result: r.get(8),
        position: r.get::<_, i64>(9) as u64,
        created_at: r.get(10),
        updated_at: r.get(11),
        finished_at: r.get(12),
    })
}

fn tenant_row(r: &Row) -> Tenant {
    Tenant {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
    }
}

fn key_row(r: &Row) -> Result<ApiKey> {
    key_row_at(r, 0)
}

/// A key whose [`KEY_COLS`] start at column `at`.
fn key_row_at(r: &Row, at: usize) -> Result<ApiKey> {
    let scope: String = r.get(at + 7);
    Ok(ApiKey {
        id: r.get(at),
        tenant_id: r.get(at + 1),
        name: r.get(at + 2),
        prefix: r.get(at + 3),
        key_hash: r.get(at + 4),
        default_user_id: r.get(at + 5),
        created_at: r.get(at + 6),
        scope: KeyScope::parse(&scope)
            .ok_or_else(|| StoreError::Internal(format!("unknown key scope `{scope}`")))?,
        expires_at: r.get(at + 8),
        last_used_at: r.get(at + 9),
        revoked_at: r.get(at + 10),
    })
}

/// A webhook row, its secrets opened by `sealer`.
fn webhook_row(r: &Row, sealer: &Sealer) -> Result<Webhook> {
    let format: String = r.get(11);
    let ordering: String = r.get(15);
    let schedule: Option<String> = r.get(13);
    let rate: Option<i32> = r.get(14);
    let failures: i64 = r.get(16);
    let id: WebhookId = r.get(0);
    let opened = sealer.open(
        id,
        &SealedCols {
            secret: r.get(6),
            previous_secret: r.get(7),
            headers: r.get(12),
        },
    )?;
    Ok(Webhook {
        id,
        tenant_id: r.get(1),
        name: r.get(2),
        description: r.get(3),
        url: r.get(4),
        events: json_col(r.get(5))?,
        secret: opened.secret,
        previous_secret: opened.previous_secret,
        previous_secret_expires_at: r.get(8),
        enabled: r.get(9),
        disabled_reason: r.get(10),
        format: shared::parse_format(&format).map_err(StoreError::Internal)?,
        headers: opened.headers,
        retry_schedule: schedule
            .map(|s| RetrySchedule::from_json(&json_col(&s)?).map_err(StoreError::Internal))
            .transpose()?,
        rate_limit: rate.map(|r| r as u32),
        ordering: shared::parse_ordering(&ordering).map_err(StoreError::Internal)?,
        consecutive_failures: failures as u64,
        failing_since: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
        last_attempt_at: r.get(20),
        filter: r.get(21),
    })
}

fn event_row(r: &Row) -> Result<Event> {
    let opt = |i: usize| -> Result<Option<serde_json::Value>> {
        r.get::<_, Option<String>>(i)
            .map(|s| json_col(&s))
            .transpose()
    };
    Ok(Event {
        id: r.get(0),
        tenant_id: r.get(1),
        event_type: r.get(2),
        occurred_at: r.get(3),
        source: r.get(4),
        source_id: r.get(5),
        actor_id: r.get(6),
        entity_type: r.get(7),
        entity_id: r.get(8),
        data: json_col(r.get(9))?,
        changes: opt(10)?,
        batch: opt(11)?,
        created_at: r.get(12),
    })
}

fn delivery_row(r: &Row) -> Result<Delivery> {
    let status: String = r.get(5);
    let attempts: i32 = r.get(6);
    let item: Option<i64> = r.get(8);
    let code: Option<i32> = r.get(10);
    Ok(Delivery {
        id: r.get(0),
        tenant_id: r.get(1),
        webhook_id: r.get(2),
        event_id: r.get(3),
        event_type: r.get(4),
        status: shared::parse_status(&status).map_err(StoreError::Internal)?,
        attempt_count: attempts as u32,
        next_attempt_at: r.get(7),
        item_index: item.map(|i| i as u32),
        resent_from: r.get(9),
        last_status_code: code.map(|c| c as u16),
        last_error: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
        url: r.get(14),
        format: shared::parse_format(&r.get::<_, String>(15)).map_err(StoreError::Internal)?,
        message_id: r.get(16),
        cancel_reason: shared::parse_cancel_reason(r.get(17)).map_err(StoreError::Internal)?,
    })
}

fn attempt_row(r: &Row) -> Result<Attempt> {
    let n: i32 = r.get(2);
    let code: Option<i32> = r.get(5);
    let response_headers: Option<String> = r.get(14);
    Ok(Attempt {
        id: r.get(0),
        delivery_id: r.get(1),
        attempt_number: n as u32,
        started_at: r.get(3),
        url: r.get(4),
        status_code: code.map(|c| c as u16),
        error_kind: r.get(6),
        error_message: r.get(7),
        dns_ms: r.get(8),
        connect_ms: r.get(9),
        tls_ms: r.get(10),
        ttfb_ms: r.get(11),
        total_ms: r.get(12),
        request_headers: json_col(r.get(13))?,
        response_headers: response_headers
            .map(|s| json_col(&s))
            .transpose()?
            .unwrap_or_default(),
        response_body: r.get(15),
        response_truncated: r.get(16),
    })
}

fn record_row(r: &Row) -> Result<RecordRow> {
    let version: i64 = r.get(3);
    Ok(RecordRow {
        tenant_id: r.get(0),
        kind: r.get(1),
        id: r.get(2),
        version: version as u64,
        data: json_col(r.get(4))?,
    })
}

// ---- shared statements ---------------------------------------------------------------------------

/// Writes events and their deliveries in the caller's transaction, and notifies every node.
async fn fan_out<C: GenericClient>(
    c: &C,
    tenant_id: TenantId,
    events: &[Event],
    max_deliveries: usize,
    redact: Option<&LogRedactor<'_>>,
) -> Result<Vec<Published>> {
    let rows = c
        .query(
            "SELECT id, events, format, ordering, filter FROM webhooks WHERE tenant_id = $1 AND enabled",
            &[&tenant_id],
        )
        .await
        .map_err(pg_err)?;
    let subscribers = rows
        .iter()
        .map(|r| {
            Subscriber::from_columns(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
                .map_err(StoreError::Internal)
        })
        .collect::<Result<Vec<_>>>()?;
    let (published, deliveries) = fanout::plan(events, &subscribers, max_deliveries)?;
    insert_events(c, events, redact).await?;
    if !deliveries.is_empty() {
        let now = time::now();
        let ids: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
        let webhooks: Vec<WebhookId> = deliveries.iter().map(|d| d.webhook_id).collect();
        let event_ids: Vec<EventId> = deliveries.iter().map(|d| d.event_id).collect();
        let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
        let items: Vec<Option<i64>> = deliveries.iter().map(|d| d.item_index).collect();
        let formats: Vec<&str> = deliveries.iter().map(|d| d.format.as_str()).collect();
        let keys: Vec<Option<&str>> = deliveries
            .iter()
            .map(|d| d.ordering_key.as_deref())
            .collect();
        c.execute(
            "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempt_count,
               next_attempt_at, item_index, format, ordering_key, created_at, updated_at)
             SELECT u.id, $1, u.webhook_id, u.event_id, u.event_type, 'pending', 0, now(), u.item, u.format, u.okey, $2, $2
             FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::bigint[], $8::text[], $9::text[])
               AS u(id, webhook_id, event_id, event_type, item, okey, format)",
            &[&tenant_id, &now, &ids, &webhooks, &event_ids, &types, &items, &keys, &formats],
        )
        .await
        .map_err(pg_err)?;
        c.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
            .await
            .map_err(pg_err)?;
    }
    Ok(published)
}

/// Writes `events`, with the deployment's `log_redact` fields taken out when `redact` is given
/// (see `redacted.rs`); operational events, which carry no CRM data, pass `None`.
async fn insert_events<C: GenericClient>(
    c: &C,
    events: &[Event],
    redact: Option<&LogRedactor<'_>>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut sealed: Vec<Option<String>> = Vec::with_capacity(events.len());
    let mut stored: Vec<std::borrow::Cow<'_, Event>> = Vec::with_capacity(events.len());
    for e in events {
        let (e, s) = match redact {
            Some(r) => r.for_storage(e)?,
            None => (std::borrow::Cow::Borrowed(e), None),
        };
        stored.push(e);
        sealed.push(s);
    }
    let events: Vec<&Event> = stored.iter().map(|e| e.as_ref()).collect();
    let col = |f: fn(&Event) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let tenants: Vec<TenantId> = events.iter().map(|e| e.tenant_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let occurred: Vec<Timestamp> = events.iter().map(|e| e.occurred_at).collect();
    let created: Vec<Timestamp> = events.iter().map(|e| e.created_at).collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let (source, source_id, actor) = (
        col(|e| e.source.clone()),
        col(|e| e.source_id.clone()),
        col(|e| e.actor_id.clone()),
    );
    let (etype, eid) = (col(|e| e.entity_type.clone()), col(|e| e.entity_id.clone()));
    let changes = col(|e| e.changes.as_ref().map(|v| v.to_string()));
    let batch = col(|e| e.batch.as_ref().map(|v| v.to_string()));
    c.execute(
        &format!(
            "INSERT INTO events ({EVENT_COLS}, redacted)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
               $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[],
               $14::text[])"
        ),
        &[&ids, &tenants, &types, &occurred, &source, &source_id, &actor, &etype, &eid, &data, &changes, &batch, &created, &sealed],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Moves a webhook's `last_attempt_at` forward to `at` (never back).
async fn touch_last_attempt<C: GenericClient>(
    c: &C,
    webhook_id: WebhookId,
    at: Timestamp,
) -> Result<()> {
    c.execute(
        "UPDATE webhooks SET last_attempt_at = GREATEST(last_attempt_at, $2) WHERE id = $1",
        &[&webhook_id, &at],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Adds each group to its webhook's hour ([`stats::hours`]) in one statement: the groups go in as
/// arrays, the bucket counts as one flat array of `BUCKETS` per group, inserted in their order
/// (webhook, hour) so concurrent batches lock shared rows in the same order.
async fn add_hours<C: GenericClient>(c: &C, hours: &[WebhookHour]) -> Result<()> {
    if hours.is_empty() {
        return Ok(());
    }
    let ids: Vec<WebhookId> = hours.iter().map(|h| h.webhook_id).collect();
    let starts: Vec<Timestamp> = hours.iter().map(|h| h.stats.hour).collect();
    let delivered: Vec<i64> = hours.iter().map(|h| h.stats.delivered as i64).collect();
    let failed: Vec<i64> = hours.iter().map(|h| h.stats.failed as i64).collect();
    let latency: Vec<i64> = hours
        .iter()
        .flat_map(|h| h.stats.latency.iter().map(|n| *n as i64))
        .collect();
    let buckets = (1..=BUCKETS)
        .map(|i| format!("($5::bigint[])[((u.n - 1) * {BUCKETS} + {i})::int]"))
        .collect::<Vec<_>>()
        .join(", ");
    c.execute(
        &format!(
            "INSERT INTO webhook_hours ({})
             SELECT u.webhook_id, u.hour, u.delivered, u.failed, {buckets}
             FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::bigint[]) WITH ORDINALITY
               AS u(webhook_id, hour, delivered, failed, n)
             ORDER BY u.n
             {}",
            *HOUR_COLS, *MERGE_HOUR
        ),
        &[&ids, &starts, &delivered, &failed, &latency],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

fn hour_row(r: &Row) -> WebhookHour {
    stats::row(
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        (0..BUCKETS).map(|i| r.get::<_, i64>(4 + i)),
    )
}

/// A session ([`SESSION_COLS`]).
fn session_row(r: &Row) -> ConsoleSession {
    ConsoleSession {
        id_hash: r.get(0),
        tenant_id: r.get(1),
        key_id: r.get(2),
        grant_id: r.get(3),
        csrf: r.get(4),
        created_at: r.get(5),
        last_seen_at: r.get(6),
        expires_at: r.get(7),
    }
}

/// A grant whose [`GRANT_COLS`] start at column `at`.
fn grant_row_at(r: &Row, at: usize) -> Result<PortalGrant> {
    let webhook_ids: Option<String> = r.get(at + 2);
    Ok(PortalGrant {
        id: r.get(at),
        tenant_id: r.get(at + 1),
        webhook_ids: webhook_ids.map(|s| json_col(&s)).transpose()?,
        capabilities: json_col(r.get(at + 3))?,
        code_hash: r.get(at + 4),
        created_at: r.get(at + 5),
        expires_at: r.get(at + 6),
        revoked_at: r.get(at + 7),
    })
}

/// Applies one webhook's streak delta; disables it (announcing it) when the policy says so.
/// Publishes `delivery.exhausted` for a delivery that just ended `failed` (in the transaction that
/// failed it), unless it carried an operational event itself ([`health::exhausted_event`]).
async fn exhausted_of<C: GenericClient>(
    c: &C,
    id: DeliveryId,
    last_error_kind: Option<String>,
) -> Result<()> {
    let row = c
        .query_opt(
            "SELECT tenant_id, webhook_id, event_id, event_type, attempt_count, last_status_code,
               last_error, COALESCE(message_id, id) FROM deliveries WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err)?;
    let Some(r) = row else { return Ok(()) };
    let f = health::FailedDelivery {
        tenant_id: r.get(0),
        delivery_id: id,
        webhook_id: r.get(1),
        event_id: r.get(2),
        event_type: r.get(3),
        attempts: r.get::<_, i32>(4) as u64,
        last_status_code: r.get::<_, Option<i32>>(5).map(|c| c as u16),
        last_error: r.get(6),
        message_id: r.get(7),
        last_error_kind,
    };
    if let Some(e) = health::exhausted_event(&f) {
        // An operational event to the tenant's own webhooks: never refused for its size.
        fan_out(c, e.tenant_id, &[e], usize::MAX, None).await?;
    }
    Ok(())
}

/// What a claim returns of each delivery it leased (`RETURNING`, read by [`claimed_row`]): the
/// rows come back from the claiming statements themselves, not from a second read by lease owner
/// (that read was ~9 % of PostgreSQL's time per delivery).
const CLAIMED_COLS: &str = "d.id, d.tenant_id, d.webhook_id, d.event_id, d.item_index, \
    d.attempt_count, d.format, COALESCE(d.message_id, d.id)";

/// A leased delivery from [`CLAIMED_COLS`] starting at column `at` of `r`.
fn claimed_row(r: &Row, at: usize, token: LeaseToken) -> Result<ClaimedDelivery> {
    let item: Option<i64> = r.get(at + 4);
    let n: i32 = r.get(at + 5);
    let format: String = r.get(at + 6);
    Ok(ClaimedDelivery {
        id: r.get(at),
        message_id: r.get(at + 7),
        tenant_id: r.get(at + 1),
        webhook_id: r.get(at + 2),
        event_id: r.get(at + 3),
        item_index: item.map(|i| i as u32),
        format: shared::parse_format(&format).map_err(StoreError::Internal)?,
        attempt_number: n as u32 + 1,
        lease_token: token,
    })
}

/// Cancels the queued deliveries of a webhook that may no longer send (see
/// [`shared::cancel_queued_sql`]); a no-op for an enabled webhook.
async fn cancel_queued<C: GenericClient>(c: &C, webhook_id: WebhookId) -> Result<u64> {
    c.execute(
        &shared::cancel_queued_sql("$1", "$2"),
        &[&webhook_id, &time::now()],
    )
    .await
    .map_err(pg_err)
}

async fn apply_health<C: GenericClient>(
    c: &C,
    d: &HealthDelta,
    policy: DisablePolicy,
) -> Result<()> {
    // The streak before the batch (locked: the UPDATE below takes the row anyway): whether it
    // crosses half the threshold or ends in a recovery. `FOR NO KEY UPDATE`, the lock that
    // UPDATE takes, not `FOR UPDATE`: every publish's delivery rows hold `FOR KEY SHARE` on their
    // webhook (the foreign key) until it commits, which `FOR UPDATE` waits for, and the next
    // publish then queues behind this wait. Results and publishes took turns, each waiting for the
    // other's commit: PostgreSQL delivered ~1,100-3,700/s with both cores mostly idle.
    let before = c
        .query_opt(
            "SELECT consecutive_failures, failing_since FROM webhooks WHERE id = $1 FOR NO KEY UPDATE",
            &[&d.webhook_id],
        )
        .await
        .map_err(pg_err)?;
    let (before, before_since): (u64, Option<Timestamp>) = match before {
        Some(r) => (r.get::<_, i64>(0) as u64, r.get(1)),
        None => (0, None),
    };
    let row = c
        .query_opt(
            "UPDATE webhooks SET
               consecutive_failures = CASE WHEN $2 THEN $3 ELSE consecutive_failures + $3 END,
               failing_since = CASE WHEN $3 = 0 THEN NULL WHEN $2 THEN $4 ELSE COALESCE(failing_since, $4) END,
               last_attempt_at = GREATEST(last_attempt_at, $5)
             WHERE id = $1
             RETURNING tenant_id, name, url, consecutive_failures, failing_since, enabled",
            &[&d.webhook_id, &d.reset, &(d.failures as i64), &d.first_failure_at, &d.last_at],
        )
        .await
        .map_err(pg_err)?;
    let Some(r) = row else { return Ok(()) };
    if !r.get::<_, bool>(5) {
        // Disabled or deleted while this attempt was in flight: a retry it queued ends here.
        cancel_queued(c, d.webhook_id).await?;
    }
    let stored = Streak {
        enabled: r.get(5),
        consecutive_failures: r.get::<_, i64>(3) as u64,
        failing_since: r.get(4),
    };
    let Some(reason) = health::disable_reason(d, &stored, &policy) else {
        let tenant_id: TenantId = r.get(0);
        let (name, url): (String, String) = (r.get(1), r.get(2));
        let before = health::Before {
            consecutive_failures: before,
            failing_since: before_since,
        };
        if let Some(e) = health::streak_event(&before, d, &stored, &policy, tenant_id, &name, &url)
        {
            fan_out(c, tenant_id, &[e], usize::MAX, None).await?;
        }
        return Ok(());
    };
    c.execute(
        "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1",
        &[&d.webhook_id, &reason, &time::now()],
    )
    .await
    .map_err(pg_err)?;
    cancel_queued(c, d.webhook_id).await?;
    tracing::warn!(webhook_id = %d.webhook_id, %reason, "webhook disabled");
    let tenant_id: TenantId = r.get(0);
    let (name, url): (String, String) = (r.get(1), r.get(2));
    fan_out(
        c,
        tenant_id,
        &[health::disabled_event(
            tenant_id,
            d.webhook_id,
            &name,
            &url,
            &reason,
        )],
        // An operational event to the tenant's own webhooks: never refused for its size.
        usize::MAX,
        None,
    )
    .await?;
    Ok(())
}

/// Writes every settings column of an existing webhook; returns the rows changed (0 or 1).
async fn write_webhook<C: GenericClient>(c: &C, w: &Webhook, sealer: &Sealer) -> Result<u64> {
    let p = webhook_params(w, sealer)?;
    c.execute(&shared::update_webhook_sql('$'), &params_of(&p))
        .await
        .map_err(pg_err)
}

/// When the earliest waiting delivery is due: pending or retrying ones at their time, leased ones
/// when their lease runs out.
/// How long until then on the database's clock (negative: overdue by that much), so a node whose
/// own clock is off waits right.
async fn next_due<C: GenericClient>(c: &C) -> Result<Option<chrono::Duration>> {
    let r = c
        .query_one(
            "SELECT (EXTRACT(EPOCH FROM LEAST(
               (SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying')),
               (SELECT MIN(lease_until) FROM deliveries WHERE status = 'delivering')) - now()) * 1000)::float8",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let ms: Option<f64> = r.get(0);
    Ok(ms.map(|ms| chrono::Duration::milliseconds(ms.clamp(-1e15, 1e15) as i64)))
}

/// `now()` on the database's clock plus the milliseconds in parameter `p`: every due time and lease
/// is written by this one clock, whatever the writing node's own clock says.
fn db_after(p: &str) -> String {
    format!("(now() + {p}::bigint * interval '1 millisecond')")
}

/// Inserts the copies a resend or replay makes in one statement, each only if its original belongs
/// to `tenant_id`, and wakes every node when any was made. Returns how many were made.
async fn copy_deliveries<C: GenericClient>(
    c: &C,
    tenant_id: TenantId,
    copies: &[shared::DeliveryCopy],
) -> Result<u64> {
    if copies.is_empty() {
        return Ok(0);
    }
    let (fresh, originals): (Vec<DeliveryId>, Vec<DeliveryId>) =
        copies.iter().map(|c| (c.id, c.resent_from)).unzip();
    let made = c
        .execute(
            &shared::copy_delivery_sql(
                "u.new_id",
                "now()",
                "$3",
                "FROM unnest($1::uuid[], $2::uuid[]) AS u(new_id, old_id)
                 JOIN deliveries d ON d.id = u.old_id WHERE d.tenant_id = $4",
            ),
            &[&fresh, &originals, &time::now(), &tenant_id],
        )
        .await
        .map_err(pg_err)?;
    if made > 0 {
        c.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
            .await
            .map_err(pg_err)?;
    }
    Ok(made)
}

fn params_of(v: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    v.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Values bound for an insert or full update, in `WEBHOOK_COLS` order; the secrets sealed.
fn webhook_params(w: &Webhook, sealer: &Sealer) -> Result<Vec<Box<dyn ToSql + Sync + Send>>> {
    let sealed = sealer.seal_webhook(w)?;
    Ok(vec![
        Box::new(w.id),
        Box::new(w.tenant_id),
        Box::new(w.name.clone()),
        Box::new(w.description.clone()),
        Box::new(w.url.clone()),
        Box::new(serde_json::to_string(&w.events).map_err(bad_json)?),
        Box::new(sealed.secret),
        Box::new(sealed.previous_secret),
        Box::new(w.previous_secret_expires_at),
        Box::new(w.enabled),
        Box::new(w.disabled_reason.clone()),
        Box::new(w.format.as_str().to_string()),
        Box::new(sealed.headers),
        Box::new(w.retry_schedule.as_ref().map(|s| s.to_json().to_string())),
        Box::new(w.rate_limit.map(|r| r as i32)),
        Box::new(w.ordering.as_str().to_string()),
        Box::new(w.consecutive_failures as i64),
        Box::new(w.failing_since),
        Box::new(w.created_at),
        Box::new(w.updated_at),
        Box::new(w.last_attempt_at),
        Box::new(w.filter.clone()),
    ])
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        // Waiting for another node's migration, and the migration itself, may take longer than
        // any ordinary statement: lift the pool's statement timeout for this transaction only.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS hookline_schema (version INTEGER NOT NULL)")
            .await
            .map_err(pg_err)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::bigint FROM hookline_schema",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        shared::check_schema_version(current, MIGRATIONS.len())?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO hookline_schema (version) VALUES ($1)",
                &[&((i + 1) as i32)],
            )
            .await
            .map_err(pg_err)?;
            tracing::info!(version = i + 1, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(pg_err)?;
        // The migration SQL can't encrypt (it has no key): rows from before encryption are sealed
        // here, and a node given the wrong key stops here, naming the key it lacks. Nodes starting
        // together each run it; the row locks of each chunk make the second one find nothing to do.
        self.reseal(Reseal::Clear).await.map(|_| ())
    }

    async fn reseal(&self, scope: Reseal) -> Result<ResealReport> {
        // Maintenance, like a migration: its scans may outlast the pool's statement timeout
        // (lifted per transaction only).
        const NO_TIMEOUT: &str = "SET LOCAL statement_timeout = 0";
        let found: Vec<String> = {
            let mut c = self.conn().await?;
            let tx = begin(&mut c).await?;
            tx.batch_execute(NO_TIMEOUT).await.map_err(pg_err)?;
            let rows = tx
                .query(&sealed::key_ids_sql(), &[])
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            rows.iter().map(|r| r.get(0)).collect()
        };
        self.sealer.check_key_ids(&found)?;
        let cond = sealed::needs_reseal_sql(scope, &self.sealer.current_id().unwrap_or_default());
        let select = format!(
            "SELECT id, secret, previous_secret, headers FROM webhooks
             WHERE ($1::uuid IS NULL OR id > $1) AND {cond} ORDER BY id LIMIT {} FOR UPDATE",
            sealed::RESEAL_CHUNK
        );
        let mut report = ResealReport {
            webhooks: 0,
            key_id: self.sealer.current_id().unwrap_or_default(),
        };
        let mut after: Option<WebhookId> = None;
        loop {
            // One chunk per transaction: its rows stay locked only while they are rewritten, and a
            // concurrent edit either waits for it or is seen by it.
            let mut c = self.conn().await?;
            let tx = begin(&mut c).await?;
            tx.batch_execute(NO_TIMEOUT).await.map_err(pg_err)?;
            let rows = tx.query(&select, &[&after]).await.map_err(pg_err)?;
            for r in &rows {
                let id: WebhookId = r.get(0);
                let cols = SealedCols {
                    secret: r.get(1),
                    previous_secret: r.get(2),
                    headers: r.get(3),
                };
                if let Some(s) = self.sealer.reseal(id, &cols, scope)? {
                    tx.execute(
                        "UPDATE webhooks SET secret = $2, previous_secret = $3, headers = $4
                         WHERE id = $1",
                        &[&id, &s.secret, &s.previous_secret, &s.headers],
                    )
                    .await
                    .map_err(pg_err)?;
                    report.webhooks += 1;
                }
            }
            tx.commit().await.map_err(pg_err)?;
            if (rows.len() as i64) < sealed::RESEAL_CHUNK {
                return Ok(report);
            }
            after = rows.last().map(|r| r.get(0));
        }
    }

    async fn ping(&self) -> Result<()> {
        self.conn()
            .await?
            .execute("SELECT 1", &[])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.inner.wake.clone())
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let t = Tenant {
            id: TenantId::new(),
            name: name.to_string(),
            created_at: time::now(),
        };
        self.conn()
            .await?
            .execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&t.id, &t.name, &t.created_at],
            )
            .await
            .map_err(pg_err)?;
        Ok(t)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT id, name, created_at FROM tenants WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.as_ref().map(tenant_row))
    }

    async fn count_tenants(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .await?
            .query_one("SELECT COUNT(*) FROM tenants", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(n as u64)
    }

    async fn tenant_name(&self, id: TenantId) -> Result<Option<String>> {
        let row = self
            .conn()
            .await?
            .query_opt("SELECT name FROM tenants WHERE id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        self.conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ),
                &[
                    &k.id,
                    &k.tenant_id,
                    &k.name,
                    &k.prefix,
                    &k.key_hash,
                    &k.default_user_id,
                    &k.created_at,
                    &k.scope.as_str(),
                    &k.expires_at,
                    &k.last_used_at,
                    &k.revoked_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn list_api_keys(&self, tenant_id: TenantId, page: Page) -> Result<Vec<ApiKey>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&tenant_id, &page.before, &(page.limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_api_key(
        &self,
        tenant_id: TenantId,
        id: ApiKeyId,
        now: Timestamp,
        check: KeyRevokeCheck,
    ) -> Result<Option<ApiKey>> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        // Locking every key of the tenant serialises its revocations: a second one waits here and
        // then reads the first one's result, so two can't each leave the other as the last key.
        let rows = tx
            .query(
                &format!(
                    "SELECT {KEY_COLS} FROM api_keys
                     WHERE tenant_id = $1 AND (revoked_at IS NULL OR id = $2) FOR UPDATE"
                ),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?;
        let all = rows.iter().map(key_row).collect::<Result<Vec<_>>>()?;
        let Some(mut key) = all.iter().find(|k| k.id == id).cloned() else {
            return Ok(None);
        };
        if key.revoked_at.is_some() {
            return Ok(Some(key));
        }
        check(&key, &all).map_err(StoreError::Rejected)?;
        tx.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await
        .map_err(pg_err)?;
        // Browser sessions signed in with it end now rather than at their next request.
        tx.execute("DELETE FROM console_sessions WHERE key_id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        key.revoked_at = Some(now);
        Ok(Some(key))
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE api_keys SET last_used_at = $2
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                &[&id, &at],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {KEY_COLS} FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"
                ),
                &[&prefix],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(key_row).collect()
    }

    async fn insert_webhook(&self, w: &Webhook) -> Result<()> {
        let p = webhook_params(w, &self.sealer)?;
        self.conn()
            .await?
            .execute(&shared::insert_webhook_sql('$'), &params_of(&p))
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn get_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<Option<Webhook>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2 AND {}",
                    shared::NOT_DELETED
                ),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| webhook_row(&r, &self.sealer)).transpose()
    }

    async fn list_webhooks(
        &self,
        tenant_id: TenantId,
        filter: WebhookFilter,
        page: Page,
    ) -> Result<Vec<Webhook>> {
        let pattern = shared::contains(filter.search.as_deref());
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                       AND deleted_at IS NULL
                       AND ($4::text IS NULL OR name ILIKE $4 ESCAPE '\\' OR url ILIKE $4 ESCAPE '\\'
                            OR description ILIKE $4 ESCAPE '\\')
                       AND ($5::uuid[] IS NULL OR id = ANY($5))
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&tenant_id, &page.before, &(page.limit as i64), &pattern, &filter.ids],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(|r| webhook_row(r, &self.sealer)).collect()
    }

    async fn modify_webhook(
        &self,
        tenant_id: TenantId,
        id: WebhookId,
        edit: WebhookEdit,
    ) -> Result<Option<Webhook>> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2 AND {}
                     FOR UPDATE",
                    shared::NOT_DELETED
                ),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?
        else {
            return Ok(None);
        };
        let mut w = webhook_row(&row, &self.sealer)?;
        edit(&mut w).map_err(StoreError::Rejected)?;
        write_webhook(&tx, &w, &self.sealer).await?;
        if !w.enabled {
            // Disabling ends its queue (re-enabling doesn't bring it back: replay does).
            cancel_queued(&tx, id).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(Some(w))
    }

    async fn delete_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let n = tx
            .execute(
                &format!(
                    "UPDATE webhooks SET deleted_at = $3, enabled = FALSE, updated_at = $3
                     WHERE tenant_id = $1 AND id = $2 AND {}",
                    shared::NOT_DELETED
                ),
                &[&tenant_id, &id, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        if n == 1 {
            cancel_queued(&tx, id).await?;
            // Its statistics go with it (they describe a webhook nobody can see any more); its
            // log stays.
            tx.execute("DELETE FROM webhook_hours WHERE webhook_id = $1", &[&id])
                .await
                .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n == 1)
    }

    async fn touch_webhooks(&self, ids: Vec<WebhookId>) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE webhooks SET updated_at = now() WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn stale_listen_webhooks(&self, stale: Duration) -> Result<Vec<(TenantId, WebhookId)>> {
        Ok(self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT tenant_id, id FROM webhooks
                      WHERE url LIKE 'listen:%'
                        AND updated_at < now() - $1::bigint * interval '1 millisecond' AND {}",
                    shared::NOT_DELETED
                ),
                &[&shared::millis(stale)],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn webhook_live(&self, id: WebhookId) -> Result<bool> {
        let row = self
            .conn()
            .await?
            .query_opt(&shared::webhook_live_sql("$1"), &[&id])
            .await
            .map_err(pg_err)?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn cancel_claimed(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let now = time::now();
        let stmt = tx
            .prepare(&shared::cancel_claimed_sql("$1", "$2", "$3"))
            .await
            .map_err(pg_err)?;
        let mut n = 0;
        for (id, token) in &leases {
            n += tx
                .execute(&stmt, &[id, token, &now])
                .await
                .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n)
    }

    async fn cancel_delivery(&self, tenant_id: TenantId, id: DeliveryId) -> Result<CancelOutcome> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let n = tx
            .execute(
                &shared::cancel_one_sql("$1", "$2", "$3"),
                &[&tenant_id, &id, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        let found = tx
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.tenant_id = $1 AND d.id = $2"
                ),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(match found {
            None => CancelOutcome::NotFound,
            Some(r) => {
                let d = delivery_row(&r)?;
                if n == 1 {
                    CancelOutcome::Cancelled(Box::new(d))
                } else {
                    CancelOutcome::NotQueued(d.status)
                }
            }
        })
    }

    async fn publish(
        &self,
        tenant_id: TenantId,
        events: Vec<Event>,
        idempotency: Option<(String, String)>,
        max_deliveries: usize,
    ) -> Result<PublishOutcome> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        if let Some((key, hash)) = &idempotency {
            // Claim the key first: a concurrent request with the same key waits here for ours.
            let inserted = tx
                .execute(
                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    &[&tenant_id, key, hash, &time::now()],
                )
                .await
                .map_err(pg_err)?;
            if inserted == 0 {
                let r = tx
                    .query_one("SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", &[&tenant_id, key])
                    .await
                    .map_err(pg_err)?;
                let (seen, response): (String, Option<String>) = (r.get(0), r.get(1));
                return match (seen == *hash, response) {
                    (true, Some(resp)) => Ok(PublishOutcome::Replayed(json_col(&resp)?)),
                    (true, None) => Err(StoreError::Unavailable(
                        "the same request is still being processed".into(),
                    )),
                    (false, _) => Ok(PublishOutcome::KeyReused),
                };
            }
        }
        let redact = LogRedactor {
            paths: &self.log_redact,
            sealer: &self.sealer,
        };
        let published = fan_out(&tx, tenant_id, &events, max_deliveries, Some(&redact)).await?;
        if let Some((key, _)) = &idempotency {
            let response = serde_json::to_string(&published).map_err(bad_json)?;
            tx.execute(
                "UPDATE idempotency_keys SET response = $3 WHERE tenant_id = $1 AND key = $2",
                &[&tenant_id, key, &response],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(PublishOutcome::Published(published))
    }

    async fn get_event(&self, tenant_id: TenantId, id: EventId) -> Result<Option<Event>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {EVENT_COLS} FROM events WHERE tenant_id = $1 AND id = $2"),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref().map(event_row).transpose()
    }

    async fn list_events(
        &self,
        tenant_id: TenantId,
        event_type: Option<String>,
        page: Page,
    ) -> Result<Vec<Event>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {EVENT_COLS} FROM events WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                     AND ($3::text IS NULL OR event_type = $3) ORDER BY id DESC LIMIT $4"
                ),
                &[&tenant_id, &page.before, &event_type, &(page.limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(event_row).collect()
    }

    async fn insert_finished_delivery(
        &self,
        event: Event,
        webhook_id: WebhookId,
        format: Format,
        mut attempt: Attempt,
        status: DeliveryStatus,
    ) -> Result<()> {
        shared::storable_attempt(&mut attempt);
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let redact = LogRedactor {
            paths: &self.log_redact,
            sealer: &self.sealer,
        };
        insert_events(&tx, std::slice::from_ref(&event), Some(&redact)).await?;
        let now = time::now();
        let a = &attempt;
        tx.execute(
            "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempt_count,
               last_status_code, last_error, created_at, updated_at, format)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $9, $10)",
            &[
                &a.delivery_id,
                &event.tenant_id,
                &webhook_id,
                &event.id,
                &event.event_type,
                &status.as_str(),
                &a.status_code.map(i32::from),
                &a.error_kind,
                &now,
                &format.as_str(),
            ],
        )
        .await
        .map_err(pg_err)?;
        let req = serde_json::to_string(&a.request_headers).map_err(bad_json)?;
        let resp = serde_json::to_string(&a.response_headers).map_err(bad_json)?;
        tx.execute(
            &format!(
                "INSERT INTO attempts (tenant_id, {ATTEMPT_COLS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
            &[
                &event.tenant_id,
                &a.id,
                &a.delivery_id,
                &(a.attempt_number as i32),
                &a.started_at,
                &a.url,
                &a.status_code.map(i32::from),
                &a.error_kind,
                &a.error_message,
                &a.dns_ms,
                &a.connect_ms,
                &a.tls_ms,
                &a.ttfb_ms,
                &a.total_ms,
                &req,
                &resp,
                &a.response_body,
                &a.response_truncated,
            ],
        )
        .await
        .map_err(pg_err)?;
        let delivered = status == DeliveryStatus::Delivered;
        add_hours(&tx, &stats::hours([(webhook_id, a, delivered)])).await?;
        touch_last_attempt(&tx, webhook_id, a.started_at).await?;
        tx.commit().await.map_err(pg_err)
    }

    async fn claim_due(&self, req: ClaimRequest) -> Result<Claim> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let token = LeaseToken::new();
        // The webhooks with work, in this round's order with their quotas: the same rule as SQLite.
        let (full_tenants, full_webhooks) = req.saturated();
        let candidates: Vec<(WebhookId, TenantId)> = tx
            .query(
                // "Has a due delivery" as the webhook's earliest due time, not `EXISTS`: under
                // the `OR` the planner turned an `EXISTS` into a hashed subplan that collects
                // every due delivery of every webhook (20,000 rows and their dead versions behind
                // a one-endpoint backlog: 11.7 ms per claim, most of PostgreSQL's CPU). This form
                // is one probe of `deliveries_due_webhook` per webhook (0.3 ms).
                "SELECT w.id, w.tenant_id FROM webhooks w WHERE w.enabled
                   AND NOT (w.tenant_id = ANY($1)) AND NOT (w.id = ANY($2)) AND (
                   (SELECT d.next_attempt_at FROM deliveries d WHERE d.webhook_id = w.id
                      AND d.status IN ('pending', 'retrying') ORDER BY d.next_attempt_at LIMIT 1) <= now()
                   OR EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id
                           AND d.status = 'delivering' AND d.lease_until < now()))",
                &[&full_tenants, &full_webhooks],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut turns = fairness::turns(candidates, req.round, req.caps());
        if turns.is_empty() {
            tx.commit().await.map_err(pg_err)?;
            return Ok(Claim::default());
        }
        let order = |turns: &[fairness::Turn]| -> (Vec<WebhookId>, Vec<i64>) {
            turns.iter().map(|t| (t.webhook_id, t.quota as i64)).unzip()
        };
        // Expired leases first (a dead node's work), each webhook at most its quota, in turn order.
        // The outer WHERE repeats the expiry test so that a node that waited on a row another node
        // just reclaimed sees the new lease and leaves it.
        // A reclaimed lease's try counts as an attempt: the count advances and an `abandoned`
        // attempt is logged for it (`o` is the row as it was before this UPDATE: when that try's
        // lease was taken, `updated_at`, is when it started).
        let (ids_in_turn, quotas) = order(&turns);
        let abandoned_error = format!("{}: {}", shared::ABANDONED, shared::ABANDONED_MESSAGE);
        let now = time::now();
        let lease_ms = shared::millis(req.lease);
        let reclaimed = tx
            .query(
                &format!("UPDATE deliveries d SET lease_owner = $1, lease_until = {lease}, updated_at = $3,
                   attempt_count = d.attempt_count + 1, last_status_code = NULL, last_error = $7
                 FROM deliveries o JOIN webhooks ow ON ow.id = o.webhook_id
                 WHERE o.id = d.id AND d.status = 'delivering' AND d.lease_until < now() AND d.id IN (
                   SELECT c.id FROM (
                     SELECT x.id, x.lease_until, t.pos, t.quota,
                            ROW_NUMBER() OVER (PARTITION BY x.webhook_id ORDER BY x.lease_until) AS rn
                     FROM unnest($5::uuid[], $6::bigint[]) WITH ORDINALITY AS t(id, quota, pos)
                     JOIN webhooks w ON w.id = t.id AND w.enabled
                     JOIN deliveries x ON x.webhook_id = t.id
                     WHERE x.status = 'delivering' AND x.lease_until < now()) c
                   WHERE c.rn <= c.quota ORDER BY c.pos, c.lease_until LIMIT $4)
                 RETURNING d.webhook_id, d.id, d.tenant_id, d.attempt_count, o.updated_at, ow.url,
                   ow.retry_schedule, {CLAIMED_COLS}", lease = db_after("$2")),
                &[
                    &token,
                    &lease_ms,
                    &now,
                    &(req.limit as i64),
                    &ids_in_turn,
                    &quotas,
                    &abandoned_error,
                ],
            )
            .await
            .map_err(pg_err)?;
        let mut claimed: Vec<ClaimedDelivery> = Vec::with_capacity(req.limit);
        for r in &reclaimed {
            let (id, tenant_id, count): (DeliveryId, TenantId, i32) =
                (r.get(1), r.get(2), r.get(3));
            let a = shared::abandoned_attempt(id, count as u32, r.get(4), r.get(5));
            tx.execute(
                "INSERT INTO attempts (tenant_id, id, delivery_id, attempt_number, started_at, url,
                   error_kind, error_message, total_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &tenant_id,
                    &a.id,
                    &a.delivery_id,
                    &(a.attempt_number as i32),
                    &a.started_at,
                    &a.url,
                    &a.error_kind,
                    &a.error_message,
                    &a.total_ms,
                ],
            )
            .await
            .map_err(pg_err)?;
            let schedule: Option<String> = r.get(6);
            let max = match schedule {
                Some(s) => {
                    let v: serde_json::Value = serde_json::from_str(&s).map_err(bad_json)?;
                    RetrySchedule::from_json(&v)
                        .map_err(StoreError::Internal)?
                        .max_attempts()
                }
                None => req.default_max_attempts,
            };
            // Its next try would be past the schedule: it ends `failed` instead of being sent
            // (a delivery that crashes its node every time), announced like any other failure.
            if count as usize >= max {
                tx.execute(
                    "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL,
                       lease_until = NULL, updated_at = $2 WHERE id = $1",
                    &[&id, &now],
                )
                .await
                .map_err(pg_err)?;
                tracing::warn!(delivery_id = %id, "delivery failed: its last attempt was abandoned");
                exhausted_of(&tx, id, Some(shared::ABANDONED.into())).await?;
            } else {
                claimed.push(claimed_row(r, 7, token)?);
            }
        }
        // What was just reclaimed counts against each webhook's quota for the due claim.
        for r in &reclaimed {
            let webhook: WebhookId = r.get(0);
            if let Some(t) = turns.iter_mut().find(|t| t.webhook_id == webhook) {
                t.quota = t.quota.saturating_sub(1);
            }
        }
        turns.retain(|t| t.quota > 0);
        let remaining = req.limit.saturating_sub(reclaimed.len()) as i64;
        if remaining > 0 && !turns.is_empty() {
            // Each webhook takes at most its quota, through its own index range, so a backlog
            // behind one endpoint costs the others nothing. `q` is materialized in turn order and
            // the lateral join walks it in that order (a nested loop keeps its outer order), so the
            // LIMIT stops at the first webhooks in turn. An ORDER BY on `picked` would instead run
            // (and lock rows for) every webhook's subquery before sorting.
            let (ids_in_turn, quotas) = order(&turns);
            let due = tx.query(
                &format!("WITH q AS MATERIALIZED (
                   SELECT t.id AS webhook_id, t.quota, t.pos
                   FROM unnest($4::uuid[], $5::bigint[]) WITH ORDINALITY AS t(id, quota, pos)
                   JOIN webhooks w ON w.id = t.id AND w.enabled
                   ORDER BY t.pos
                 ), picked AS (
                   SELECT p.id FROM q CROSS JOIN LATERAL (
                     SELECT d.id FROM deliveries d
                     WHERE d.webhook_id = q.webhook_id AND d.status IN ('pending', 'retrying')
                       AND d.next_attempt_at <= now()
                       AND (d.ordering_key IS NULL OR NOT EXISTS (
                            SELECT 1 FROM deliveries e WHERE e.webhook_id = d.webhook_id
                              AND e.ordering_key = d.ordering_key AND e.id < d.id
                              AND e.status IN ('pending', 'retrying', 'delivering')))
                     ORDER BY d.next_attempt_at LIMIT q.quota
                     FOR UPDATE SKIP LOCKED) p
                   LIMIT $6
                 )
                 UPDATE deliveries d SET status = 'delivering', lease_owner = $1, lease_until = {lease}, updated_at = $3
                 FROM picked WHERE d.id = picked.id
                 RETURNING {CLAIMED_COLS}", lease = db_after("$2")),
                &[&token, &lease_ms, &now, &ids_in_turn, &quotas, &remaining],
            )
            .await
            .map_err(pg_err)?;
            for r in &due {
                claimed.push(claimed_row(r, 0, token)?);
            }
        }
        let mut claim = Claim::default();
        if claimed.is_empty() {
            tx.commit().await.map_err(pg_err)?;
            return Ok(claim);
        }
        claim.deliveries = claimed;
        fn uniq<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort();
            v.dedup();
            v
        }
        let ds = &claim.deliveries;
        let (wids, mut eids, tids) = (
            uniq(ds.iter().map(|d| d.webhook_id).collect()),
            uniq(
                ds.iter()
                    .map(|d| d.event_id)
                    .filter(|e| !req.known_events.contains_key(e))
                    .collect(),
            ),
            uniq(ds.iter().map(|d| d.tenant_id).collect()),
        );
        // An event the node holds is read again only if it was rewritten since.
        let held: Vec<EventId> = uniq(
            ds.iter()
                .map(|d| d.event_id)
                .filter(|e| req.known_events.contains_key(e))
                .collect(),
        );
        if !held.is_empty() {
            for r in tx
                .query(
                    "SELECT id, revision FROM events WHERE id = ANY($1)",
                    &[&held],
                )
                .await
                .map_err(pg_err)?
            {
                let (id, revision): (EventId, i64) = (r.get(0), r.get(1));
                if req.known_events.get(&id) != Some(&revision) {
                    eids.push(id);
                }
            }
        }
        for r in tx
            .query(
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ANY($1)"),
                &[&wids],
            )
            .await
            .map_err(pg_err)?
        {
            // Opened once per webhook of the claim, however many deliveries it has.
            match webhook_row(&r, &self.sealer) {
                Ok(w) => {
                    claim.webhooks.insert(w.id, Arc::new(w));
                }
                Err(e) => sealed::unopenable_in_claim(r.get(0), &e),
            }
        }
        for r in tx
            .query(
                &format!("SELECT {EVENT_COLS}, redacted, revision FROM events WHERE id = ANY($1)"),
                &[&eids],
            )
            .await
            .map_err(pg_err)?
        {
            let mut e = event_row(&r)?;
            claim.revisions.insert(e.id, r.get(14));
            // For sending: the receiver gets the fields the log doesn't keep.
            LogRedactor {
                paths: &self.log_redact,
                sealer: &self.sealer,
            }
            .restore(&mut e, r.get::<_, Option<&str>>(13));
            claim.events.insert(e.id, Arc::new(e));
        }
        for r in tx
            .query("SELECT id, name FROM tenants WHERE id = ANY($1)", &[&tids])
            .await
            .map_err(pg_err)?
        {
            claim.tenants.insert(r.get(0), r.get(1));
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(claim)
    }

    async fn record_attempts(
        &self,
        mut results: Vec<AttemptResult>,
        disable: DisablePolicy,
    ) -> Result<Vec<bool>> {
        for r in &mut results {
            shared::storable_attempt(&mut r.attempt);
        }
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let ids: Vec<DeliveryId> = results.iter().map(|r| r.delivery_id).collect();
        let tokens: Vec<LeaseToken> = results.iter().map(|r| r.lease_token).collect();
        let (statuses, waits): (Vec<&str>, Vec<Option<i64>>) = results
            .iter()
            .map(|r| {
                let (status, wait) = shared::outcome(r.next);
                (status.as_str(), wait.map(shared::millis))
            })
            .unzip();
        let codes: Vec<Option<i32>> = results
            .iter()
            .map(|r| r.attempt.status_code.map(i32::from))
            .collect();
        let errors: Vec<Option<String>> = results
            .iter()
            .map(|r| shared::last_error(&r.attempt))
            .collect();
        let applied_rows = tx
            .query(
                "UPDATE deliveries d SET status = u.status, attempt_count = d.attempt_count + 1,
                   next_attempt_at = now() + u.wait * interval '1 millisecond', lease_owner = NULL,
                   lease_until = NULL, last_status_code = u.code, last_error = u.err, updated_at = $7
                 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::int[], $6::text[])
                   AS u(id, token, status, wait, code, err)
                 WHERE d.id = u.id AND d.lease_owner = u.token AND d.status = 'delivering'
                 RETURNING d.id, u.token",
                &[&ids, &tokens, &statuses, &waits, &codes, &errors, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        // Keyed by (delivery, lease token): a stale result for the same delivery must not count.
        let applied_ids: std::collections::HashSet<(DeliveryId, LeaseToken)> =
            applied_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let applied: Vec<bool> = results
            .iter()
            .map(|r| applied_ids.contains(&(r.delivery_id, r.lease_token)))
            .collect();
        let kept: Vec<&AttemptResult> = results
            .iter()
            .zip(&applied)
            .filter(|(_, ok)| **ok)
            .map(|(r, _)| r)
            .collect();
        // Every result is logged; one whose lease was taken over meanwhile as stale, counted
        // nowhere else.
        let logged: Vec<Attempt> = results
            .iter()
            .zip(&applied)
            .map(|(r, ok)| {
                let mut a = r.attempt.clone();
                if !ok {
                    shared::mark_stale(&mut a);
                }
                a
            })
            .collect();
        {
            let a = |f: fn(&Attempt) -> Option<f64>| logged.iter().map(f).collect::<Vec<_>>();
            let s = |f: fn(&Attempt) -> Option<String>| logged.iter().map(f).collect::<Vec<_>>();
            let aid: Vec<AttemptId> = logged.iter().map(|a| a.id).collect();
            let did: Vec<DeliveryId> = logged.iter().map(|a| a.delivery_id).collect();
            let num: Vec<i32> = logged.iter().map(|a| a.attempt_number as i32).collect();
            let started: Vec<Timestamp> = logged.iter().map(|a| a.started_at).collect();
            let url: Vec<&str> = logged.iter().map(|a| a.url.as_str()).collect();
            let code: Vec<Option<i32>> = logged
                .iter()
                .map(|a| a.status_code.map(i32::from))
                .collect();
            let total: Vec<f64> = logged.iter().map(|a| a.total_ms).collect();
            let req_h = logged
                .iter()
                .map(|a| serde_json::to_string(&a.request_headers).map_err(bad_json))
                .collect::<Result<Vec<_>>>()?;
            let resp_h = logged
                .iter()
                .map(|a| serde_json::to_string(&a.response_headers).map_err(bad_json))
                .collect::<Result<Vec<_>>>()?;
            let truncated: Vec<bool> = logged.iter().map(|a| a.response_truncated).collect();
            tx.execute(
                &format!(
                    "INSERT INTO attempts (tenant_id, {ATTEMPT_COLS})
                     SELECT d.tenant_id, u.* FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[],
                       $5::text[], $6::int[], $7::text[], $8::text[], $9::float8[], $10::float8[], $11::float8[],
                       $12::float8[], $13::float8[], $14::text[], $15::text[], $16::text[], $17::bool[])
                       AS u(id, delivery_id, n, started_at, url, code, kind, msg, dns, conn, tls, ttfb, total,
                            req_h, resp_h, body, trunc)
                     JOIN deliveries d ON d.id = u.delivery_id"
                ),
                &[
                    &aid,
                    &did,
                    &num,
                    &started,
                    &url,
                    &code,
                    &s(|a| a.error_kind.clone()),
                    &s(|a| a.error_message.clone()),
                    &a(|a| a.dns_ms),
                    &a(|a| a.connect_ms),
                    &a(|a| a.tls_ms),
                    &a(|a| a.ttfb_ms),
                    &total,
                    &req_h,
                    &resp_h,
                    &s(|a| a.response_body.clone()),
                    &truncated,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        for r in &kept {
            if r.next == crate::model::NextState::Failed {
                exhausted_of(&tx, r.delivery_id, r.attempt.error_kind.clone()).await?;
            }
        }
        if !kept.is_empty() {
            for d in health::deltas(kept.iter().copied()) {
                apply_health(&tx, &d, disable).await?;
            }
            add_hours(&tx, &stats::hours_of_results(kept.iter().copied())).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(applied)
    }

    async fn release(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<()> {
        let (ids, tokens): (Vec<DeliveryId>, Vec<LeaseToken>) = leases.into_iter().unzip();
        self.conn()
            .await?
            .execute(
                "UPDATE deliveries d SET status = CASE WHEN d.attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
                   next_attempt_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = $3
                 FROM unnest($1::uuid[], $2::uuid[]) AS u(id, token)
                 WHERE d.id = u.id AND d.lease_owner = u.token AND d.status = 'delivering'",
                &[&ids, &tokens, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn renew_leases(
        &self,
        leases: Vec<(DeliveryId, LeaseToken)>,
        lease: Duration,
    ) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (ids, tokens): (Vec<DeliveryId>, Vec<LeaseToken>) = leases.into_iter().unzip();
        self.conn()
            .await?
            .execute(
                &format!(
                    "UPDATE deliveries d SET lease_until = {}
                     FROM unnest($1::uuid[], $2::uuid[]) AS u(id, token)
                     WHERE d.id = u.id AND d.lease_owner = u.token AND d.status = 'delivering'",
                    db_after("$3")
                ),
                &[&ids, &tokens, &shared::millis(lease)],
            )
            .await
            .map_err(pg_err)
    }

    async fn next_due_in(&self) -> Result<Option<Duration>> {
        let due_in = next_due(&**self.conn().await?).await?;
        Ok(due_in.map(|d| d.to_std().unwrap_or_default()))
    }

    async fn travel(&self, by: Duration) -> Result<()> {
        let c = self.conn().await?;
        for sql in [
            "UPDATE deliveries SET next_attempt_at = next_attempt_at - $1::bigint * interval '1 millisecond'
             WHERE next_attempt_at IS NOT NULL",
            "UPDATE deliveries SET lease_until = lease_until - $1::bigint * interval '1 millisecond'
             WHERE lease_until IS NOT NULL",
            "UPDATE jobs SET lease_until = lease_until - $1::bigint * interval '1 millisecond'
             WHERE lease_until IS NOT NULL",
        ] {
            c.execute(sql, &[&shared::millis(by)]).await.map_err(pg_err)?;
        }
        Ok(())
    }

    async fn list_deliveries(
        &self,
        tenant_id: TenantId,
        filter: DeliveryFilter,
        page: Page,
    ) -> Result<Vec<Delivery>> {
        let search = shared::contains(filter.search.as_deref());
        // A search term that names an event in any spelling also matches that event exactly.
        let search_type = filter
            .search
            .as_deref()
            .and_then(hookline_core::catalog::event_name);
        let status = filter.status.map(|s| s.as_str().to_string());
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.tenant_id = $1 AND ($2::uuid IS NULL OR d.id < $2)
                       AND ($3::uuid IS NULL OR d.webhook_id = $3)
                       AND ($4::text IS NULL OR d.status = $4)
                       AND ($5::text IS NULL OR d.event_type = $5)
                       AND ($6::timestamptz IS NULL OR d.created_at >= $6)
                       AND ($7::timestamptz IS NULL OR d.created_at < $7)
                       AND ($8::text IS NULL OR w.url ILIKE $8 ESCAPE '\\' OR d.event_type ILIKE $8 ESCAPE '\\'
                            OR d.event_type = $9)
                       AND ($11::uuid[] IS NULL OR d.webhook_id = ANY($11))
                     ORDER BY d.id DESC LIMIT $10"
                ),
                &[
                    &tenant_id,
                    &page.before,
                    &filter.webhook_id,
                    &status,
                    &filter.event_type,
                    &filter.since,
                    &filter.until,
                    &search,
                    &search_type,
                    &(page.limit as i64),
                    &filter.webhook_ids,
                ],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn resends_of(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Vec<Delivery>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.resent_from = $1 AND d.tenant_id = $2 ORDER BY d.id DESC LIMIT 100"
                ),
                &[&id, &tenant_id],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn get_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>> {
        let c = self.conn().await?;
        let Some(row) = c
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.tenant_id = $1 AND d.id = $2"
                ),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?
        else {
            return Ok(None);
        };
        let attempts = c
            .query(&format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE delivery_id = $1 ORDER BY attempt_number"), &[&id])
            .await
            .map_err(pg_err)?;
        Ok(Some((
            delivery_row(&row)?,
            attempts.iter().map(attempt_row).collect::<Result<_>>()?,
        )))
    }

    async fn resend(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Option<DeliveryId>> {
        let copy = shared::copies([id]);
        let made = copy_deliveries(&**self.conn().await?, tenant_id, &copy).await?;
        Ok((made == 1).then_some(copy[0].id))
    }

    async fn replay(
        &self,
        tenant_id: TenantId,
        webhook_id: WebhookId,
        filter: ReplayFilter,
        dry_run: bool,
    ) -> Result<u64> {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        let scope = "FROM deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND created_at >= $3
             AND ($4::timestamptz IS NULL OR created_at < $4) AND status = ANY($5)";
        let args: [&(dyn ToSql + Sync); 5] = [
            &tenant_id,
            &webhook_id,
            &filter.since,
            &filter.until,
            &statuses,
        ];
        let c = self.conn().await?;
        if dry_run {
            let n: i64 = c
                .query_one(&format!("SELECT COUNT(*) {scope}"), &args)
                .await
                .map_err(pg_err)?
                .get(0);
            return Ok(n as u64);
        }
        let originals = c
            .query(&format!("SELECT id {scope} ORDER BY id"), &args)
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect::<Vec<DeliveryId>>();
        copy_deliveries(&**c, tenant_id, &shared::copies(originals)).await
    }

    async fn prune(&self, before: Timestamp, keys_before: Timestamp) -> Result<Pruned> {
        let c = self.conn().await?;
        let mut pruned = Pruned::default();
        // Children before parents, each in bounded chunks (one short transaction per statement)
        // so few rows are locked at once.
        for (sql, count) in [
            (shared::PRUNE_ATTEMPTS, &mut pruned.attempts),
            (shared::PRUNE_DELIVERIES, &mut pruned.deliveries),
            (shared::PRUNE_EVENTS, &mut pruned.events),
        ] {
            let sql = shared::prune_sql(sql, "$1", "$2");
            loop {
                let n = c
                    .execute(&sql, &[&before, &(PRUNE_CHUNK as i64)])
                    .await
                    .map_err(pg_err)?;
                *count += n;
                if n < PRUNE_CHUNK {
                    break;
                }
            }
        }
        c.execute(
            "DELETE FROM webhook_hours WHERE hour < $1",
            &[&stats::retention_cutoff(before)],
        )
        .await
        .map_err(pg_err)?;
        c.execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &[&keys_before],
        )
        .await
        .map_err(pg_err)?;
        c.execute(redacted::DROP_SPENT_SQL, &[])
            .await
            .map_err(pg_err)?;
        Ok(pruned)
    }

    async fn backlog(&self, terminal: bool) -> Result<Backlog> {
        let c = self.conn().await?;
        let mut counts = Vec::new();
        for sql in shared::backlog_queries(terminal) {
            let rows = c.query(*sql, &[]).await.map_err(pg_err)?;
            counts.extend(
                rows.iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)),
            );
        }
        shared::backlog(counts, next_due(&**c).await?)
    }

    async fn mutate_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        ids_in: Vec<String>,
        plan: PlanFn,
    ) -> Result<(Vec<Published>, Vec<RecordRow>)> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let found = tx
            .query(
                &format!("SELECT {RECORD_COLS} FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND id = ANY($3) FOR UPDATE"),
                &[&tenant_id, &kind, &ids_in],
            )
            .await
            .map_err(pg_err)?;
        let mut by_id: HashMap<String, RecordRow> = HashMap::new();
        for r in &found {
            let row = record_row(r)?;
            by_id.insert(row.id.clone(), row);
        }
        let rows: Vec<Option<RecordRow>> = ids_in.iter().map(|id| by_id.get(id).cloned()).collect();
        let plan = plan(rows).map_err(StoreError::Rejected)?;
        let now = time::now();
        let mut written = Vec::with_capacity(plan.upserts.len());
        if !plan.upserts.is_empty() {
            let ids: Vec<&str> = plan.upserts.iter().map(|(id, _)| id.as_str()).collect();
            let docs: Vec<String> = plan.upserts.iter().map(|(_, d)| d.to_string()).collect();
            let existed: Vec<bool> = ids.iter().map(|id| by_id.contains_key(*id)).collect();
            // Records that didn't exist when read are inserted without overwriting: FOR UPDATE
            // can't lock a row that isn't there, so a concurrent create of the same id must fail
            // (409) rather than silently turn into an update.
            let created = ids.iter().filter(|id| !by_id.contains_key(**id)).count();
            let versions = tx
                .query(
                    "WITH u AS (SELECT * FROM unnest($4::text[], $5::text[], $6::bool[]) WITH ORDINALITY AS u(id, data, existed, n)),
                     ins AS (
                       INSERT INTO entities (tenant_id, entity_type, id, version, data, created_at, updated_at)
                       SELECT $1, $2, u.id, 1, u.data, $3, $3 FROM u WHERE NOT u.existed ORDER BY u.n
                       ON CONFLICT (tenant_id, entity_type, id) DO NOTHING
                       RETURNING id, version),
                     upd AS (
                       UPDATE entities e SET version = e.version + 1, data = u.data, updated_at = $3
                       FROM u WHERE u.existed AND e.tenant_id = $1 AND e.entity_type = $2 AND e.id = u.id
                       RETURNING e.id, e.version)
                     SELECT id, version, TRUE FROM ins UNION ALL SELECT id, version, FALSE FROM upd",
                    &[&tenant_id, &kind, &now, &ids, &docs, &existed],
                )
                .await
                .map_err(pg_err)?;
            let inserted = versions.iter().filter(|r| r.get::<_, bool>(2)).count();
            if inserted < created {
                return Err(StoreError::Conflict(format!(
                    "a {kind} with one of these ids was created concurrently"
                )));
            }
            let version_of: HashMap<String, i64> =
                versions.iter().map(|r| (r.get(0), r.get(1))).collect();
            for (id, doc) in plan.upserts {
                let version = version_of.get(&id).copied().unwrap_or(1) as u64;
                written.push(RecordRow {
                    tenant_id,
                    kind: kind.to_string(),
                    id,
                    version,
                    data: doc,
                });
            }
        }
        if !plan.deletes.is_empty() {
            tx.execute(
                "DELETE FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND id = ANY($3)",
                &[&tenant_id, &kind, &plan.deletes],
            )
            .await
            .map_err(pg_err)?;
        }
        let redact = LogRedactor {
            paths: &self.log_redact,
            sealer: &self.sealer,
        };
        let published = fan_out(
            &tx,
            tenant_id,
            &plan.events,
            plan.max_deliveries,
            Some(&redact),
        )
        .await?;
        if let Some(step) = &plan.job {
            let moved = tx
                .execute(
                    &jobs::advance_sql(|i| match i {
                        3 => db_after("$3"),
                        _ => format!("${i}"),
                    }),
                    &[
                        &step.id,
                        &step.token,
                        &shared::millis(step.lease),
                        &(step.position as i64),
                        &(step.done as i64),
                        &step.result,
                        &step.finished,
                        &time::now(),
                    ],
                )
                .await
                .map_err(pg_err)?;
            if moved == 0 {
                return Err(jobs::job_lost(step.id));
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok((published, written))
    }

    async fn get_record(
        &self,
        tenant_id: TenantId,
        kind: &str,
        id: &str,
    ) -> Result<Option<RecordRow>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {RECORD_COLS} FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND id = $3"),
                &[&tenant_id, &kind, &id],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref().map(record_row).transpose()
    }

    async fn list_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        filter: RecordFilter,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<RecordRow>> {
        let search = shared::contains(filter.search.as_deref());
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {RECORD_COLS} FROM entities
                     WHERE tenant_id = $1 AND entity_type = $2 AND ($3::text IS NULL OR id < $3)
                       AND ($4::text IS NULL OR EXISTS (
                            SELECT 1 FROM json_array_elements(CASE WHEN json_typeof(data::json -> 'tags') = 'array'
                                                              THEN data::json -> 'tags' ELSE '[]'::json END) t
                            WHERE t ->> 'name' = $4))
                       AND ($5::timestamptz IS NULL OR updated_at >= $5)
                       AND ($6::text IS NULL
                            OR (coalesce(data::json ->> 'first_name', '') || ' ' || coalesce(data::json ->> 'last_name', '')) ILIKE $6 ESCAPE '\\'
                            OR data::json ->> 'company' ILIKE $6 ESCAPE '\\'
                            OR data::json ->> 'primary_email' ILIKE $6 ESCAPE '\\'
                            OR data::json ->> 'name' ILIKE $6 ESCAPE '\\'
                            OR data::json ->> 'title' ILIKE $6 ESCAPE '\\')
                     ORDER BY id DESC LIMIT $7"
                ),
                &[&tenant_id, &kind, &before, &filter.tag, &filter.updated_since, &search, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(record_row).collect()
    }

    async fn insert_console_session(&self, s: &ConsoleSession) -> Result<()> {
        self.conn()
            .await?
            .execute(
                &format!("INSERT INTO console_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                &[
                    &s.id_hash,
                    &s.tenant_id,
                    &s.key_id,
                    &s.grant_id,
                    &s.csrf,
                    &s.created_at,
                    &s.last_seen_at,
                    &s.expires_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn console_session(&self, id_hash: &str) -> Result<Option<FoundSession>> {
        let row = self
            .conn()
            .await?
            .query_opt(&shared::console_session_sql("$1"), &[&id_hash])
            .await
            .map_err(pg_err)?;
        let Some(r) = row else { return Ok(None) };
        let session = session_row(&r);
        let grant = match session.grant_id {
            Some(_) => Some(grant_row_at(&r, 8)?),
            None => None,
        };
        let key = match r.get::<_, Option<Uuid>>(shared::SESSION_KEY_AT) {
            Some(_) => Some(key_row_at(&r, shared::SESSION_KEY_AT)?),
            None => None,
        };
        Ok(Some(FoundSession {
            session,
            grant,
            key,
        }))
    }

    async fn touch_console_session(&self, id_hash: &str, at: Timestamp) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
                &[&id_hash, &at],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM console_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn prune_console_sessions(&self, now: Timestamp, idle_before: Timestamp) -> Result<u64> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
                &[&now, &idle_before],
            )
            .await
            .map_err(pg_err)
    }

    async fn insert_portal_grant(&self, g: &PortalGrant) -> Result<()> {
        let webhook_ids = g
            .webhook_ids
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(bad_json)?;
        let capabilities = serde_json::to_string(&g.capabilities).map_err(bad_json)?;
        self.conn()
            .await?
            .execute(
                &format!("INSERT INTO portal_grants ({GRANT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                &[
                    &g.id,
                    &g.tenant_id,
                    &webhook_ids,
                    &capabilities,
                    &g.code_hash,
                    &g.created_at,
                    &g.expires_at,
                    &g.revoked_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn redeem_portal_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<PortalGrant>> {
        // A concurrent redeem of the same code waits for this row and then finds its code gone.
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!(
                    "UPDATE portal_grants SET code_hash = NULL
                     WHERE code_hash = $1 AND revoked_at IS NULL AND expires_at > $2
                     RETURNING {GRANT_COLS}"
                ),
                &[&code_hash, &now],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| grant_row_at(&r, 0)).transpose()
    }

    async fn revoke_portal_grants(
        &self,
        tenant_id: TenantId,
        id: Option<Uuid>,
        now: Timestamp,
    ) -> Result<u64> {
        // One statement: the grants and their sessions go together. A session inserted for a grant
        // while it is being revoked survives the DELETE, but `console_session` never returns it.
        let n: i64 = self
            .conn()
            .await?
            .query_one(
                "WITH revoked AS (
                   UPDATE portal_grants SET revoked_at = $2
                   WHERE tenant_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id = $3)
                   RETURNING id),
                 ended AS (DELETE FROM console_sessions WHERE grant_id IN (SELECT id FROM revoked))
                 SELECT COUNT(*) FROM revoked",
                &[&tenant_id, &now, &id],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(n as u64)
    }

    async fn add_webhook_to_grant(
        &self,
        tenant_id: TenantId,
        grant_id: Uuid,
        webhook_id: WebhookId,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        // The row lock keeps two concurrent additions from overwriting each other's list.
        let Some(row) = tx
            .query_opt(
                "SELECT g.webhook_ids FROM portal_grants g
                 WHERE g.tenant_id = $1 AND g.id = $2 AND g.revoked_at IS NULL
                   AND EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = $1 AND w.id = $3
                               AND w.deleted_at IS NULL)
                 FOR UPDATE OF g",
                &[&tenant_id, &grant_id, &webhook_id],
            )
            .await
            .map_err(pg_err)?
        else {
            return Ok(());
        };
        let list: Option<String> = row.get(0);
        let list: Option<Vec<WebhookId>> = list.map(|s| json_col(&s)).transpose()?;
        if let Some(new) = shared::grant_with_webhook(list, webhook_id) {
            let new = serde_json::to_string(&new).map_err(bad_json)?;
            tx.execute(
                "UPDATE portal_grants SET webhook_ids = $2 WHERE id = $1",
                &[&grant_id, &new],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn webhook_hours(
        &self,
        tenant_id: TenantId,
        webhook_ids: Vec<WebhookId>,
        since: Timestamp,
    ) -> Result<Vec<WebhookHour>> {
        if webhook_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {} FROM webhook_hours h JOIN webhooks w ON w.id = h.webhook_id
                     WHERE w.tenant_id = $1 AND h.webhook_id = ANY($2) AND h.hour >= $3
                     ORDER BY h.webhook_id, h.hour",
                    shared::prefixed("h", &HOUR_COLS)
                ),
                &[
                    &tenant_id,
                    &webhook_ids,
                    &hookline_core::stats::hour_of(since),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(hour_row).collect())
    }

    async fn insert_replay_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: ReplayJob,
        total: u64,
    ) -> Result<jobs::Job> {
        let params = serde_json::to_value(&params).map_err(bad_json)?;
        let row = self
            .conn()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO jobs (id, tenant_id, kind, status, params, total, done, created_at, updated_at)
                     VALUES ($1, $2, 'replay', 'queued', $3, $4, 0, $5, $5) RETURNING {JOB_COLS}"
                ),
                &[&id, &tenant_id, &params, &(total as i64), &time::now()],
            )
            .await
            .map_err(pg_err)?;
        job_row(&row)
    }

    async fn insert_import_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: serde_json::Value,
        result: serde_json::Value,
        items: Vec<serde_json::Value>,
    ) -> Result<jobs::Job> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO jobs (id, tenant_id, kind, status, params, result, total, done, created_at, updated_at)
                     VALUES ($1, $2, 'import', 'queued', $3, $4, $5, 0, $6, $6) RETURNING {JOB_COLS}"
                ),
                &[&id, &tenant_id, &params, &result, &(items.len() as i64), &time::now()],
            )
            .await
            .map_err(pg_err)?;
        let positions: Vec<i64> = (0..items.len() as i64).collect();
        tx.execute(
            "INSERT INTO job_items (job_id, position, item)
             SELECT $1, p, i FROM unnest($2::bigint[], $3::jsonb[]) AS u(p, i)",
            &[&id, &positions, &items],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        job_row(&row)
    }

    async fn job_items(
        &self,
        id: JobId,
        position: u64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>> {
        Ok(self
            .conn()
            .await?
            .query(
                "SELECT item FROM job_items WHERE job_id = $1 AND position >= $2
                 ORDER BY position LIMIT $3",
                &[&id, &(position as i64), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn get_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<jobs::Job>> {
        self.conn()
            .await?
            .query_opt(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND id = $2"),
                &[&tenant_id, &id],
            )
            .await
            .map_err(pg_err)?
            .as_ref()
            .map(job_row)
            .transpose()
    }

    async fn list_jobs(
        &self,
        tenant_id: TenantId,
        kind: Option<JobKind>,
        page: Page,
    ) -> Result<Vec<jobs::Job>> {
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                       AND ($4::text IS NULL OR kind = $4)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&tenant_id, &page.before, &(page.limit as i64), &kind.map(JobKind::as_str)],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(job_row)
            .collect()
    }

    async fn cancel_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<jobs::Job>> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE jobs SET status = 'cancelled', lease_owner = NULL, lease_until = NULL,
             updated_at = $3, finished_at = $3
             WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running')",
            &[&tenant_id, &id, &time::now()],
        )
        .await
        .map_err(pg_err)?;
        c.query_opt(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND id = $2"),
            &[&tenant_id, &id],
        )
        .await
        .map_err(pg_err)?
        .as_ref()
        .map(job_row)
        .transpose()
    }

    async fn claim_job(&self, token: LeaseToken, lease: Duration) -> Result<Option<jobs::Job>> {
        self.conn()
            .await?
            .query_opt(
                &format!(
                    "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = {lease}, updated_at = $3
                     WHERE id = (SELECT id FROM jobs WHERE status = 'queued'
                                    OR (status = 'running' AND lease_until < now())
                                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {JOB_COLS}",
                    lease = db_after("$2")
                ),
                &[&token, &shared::millis(lease), &time::now()],
            )
            .await
            .map_err(pg_err)?
            .as_ref()
            .map(job_row)
            .transpose()
    }

    async fn replay_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<jobs::Job> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let held = tx
            .query_opt(
                "SELECT tenant_id, params, cursor FROM jobs
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 FOR UPDATE",
                &[&id, &token],
            )
            .await
            .map_err(pg_err)?;
        let Some(held) = held else {
            let row = tx
                .query_one(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            return job_row(&row);
        };
        let tenant_id: TenantId = held.get(0);
        let job: ReplayJob = serde_json::from_value(held.get(1)).map_err(bad_json)?;
        let cursor: Option<DeliveryId> = held.get(2);
        let statuses: Vec<&str> = job.statuses.iter().map(|s| s.as_str()).collect();
        let originals: Vec<DeliveryId> = tx
            .query(
                "SELECT id FROM deliveries WHERE webhook_id = $1 AND tenant_id = $2
                   AND id < $3 AND ($4::uuid IS NULL OR id > $4)
                   AND created_at >= $5 AND ($6::timestamptz IS NULL OR created_at < $6)
                   AND status = ANY($7)
                 ORDER BY id LIMIT $8",
                &[
                    &job.webhook_id,
                    &tenant_id,
                    &job.before,
                    &cursor,
                    &job.since,
                    &job.until,
                    &statuses,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let copied =
            copy_deliveries(&tx, tenant_id, &shared::copies(originals.iter().copied())).await?;
        let finished = originals.len() < limit;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE jobs SET done = done + $2, cursor = COALESCE($3, cursor), lease_until = {lease},
                     updated_at = $5, status = CASE WHEN $6 THEN 'succeeded' ELSE status END,
                     finished_at = CASE WHEN $6 THEN $5 ELSE finished_at END,
                     lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END
                     WHERE id = $1 RETURNING {JOB_COLS}",
                    lease = db_after("$4")
                ),
                &[
                    &id,
                    &(copied as i64),
                    &originals.last(),
                    &shared::millis(lease),
                    &time::now(),
                    &finished,
                ],
            )
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        job_row(&row)
    }

    async fn insert_erasure_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        target: Target,
    ) -> Result<jobs::Job> {
        let params = serde_json::to_value(&target).map_err(bad_json)?;
        let row = self
            .conn()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO jobs (id, tenant_id, kind, status, params, result, done, created_at, updated_at)
                     VALUES ($1, $2, 'erasure', 'queued', $3, $4, 0, $5, $5) RETURNING {JOB_COLS}"
                ),
                &[&id, &tenant_id, &params, &Erased::default().to_value(), &time::now()],
            )
            .await
            .map_err(pg_err)?;
        job_row(&row)
    }

    async fn erasure_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<jobs::Job> {
        let mut c = self.conn().await?;
        let tx = begin(&mut c).await?;
        let held = tx
            .query_opt(
                "SELECT tenant_id, params, cursor, result FROM jobs
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 FOR UPDATE",
                &[&id, &token],
            )
            .await
            .map_err(pg_err)?;
        let Some(held) = held else {
            let row = tx
                .query_one(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            return job_row(&row);
        };
        let tenant_id: TenantId = held.get(0);
        let target: Target = serde_json::from_value(held.get(1)).map_err(bad_json)?;
        let cursor: Option<EventId> = held.get(2);
        let mut total = Erased::from_result(held.get::<_, Option<serde_json::Value>>(3).as_ref());
        let mut step = Erased::default();
        let needle = erasure::needle(&target);
        let candidates = tx
            .query(
                "SELECT id, event_type, entity_id, data, redacted FROM events
                  WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2)
                    AND (entity_id = $3 OR strpos(data, $4) > 0)
                  ORDER BY id LIMIT $5",
                &[
                    &tenant_id,
                    &cursor,
                    &target.entity_id,
                    &needle,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        for row in &candidates {
            let event_id: EventId = row.get(0);
            let data: serde_json::Value = json_col(row.get::<_, &str>(3))?;
            let (gone, dropped): (Vec<DeliveryId>, bool) =
                match target.judge(row.get(1), row.get(2), &data) {
                    Verdict::Keep => continue,
                    Verdict::Drop => {
                        let ids = tx
                            .query(
                                "SELECT id FROM deliveries WHERE event_id = $1",
                                &[&event_id],
                            )
                            .await
                            .map_err(pg_err)?
                            .iter()
                            .map(|r| r.get(0))
                            .collect();
                        (ids, true)
                    }
                    Verdict::Rewrite { data, removed } => {
                        // The sealed `log_redact` copy follows the objects left. A node holding
                        // the old version reads the new one at its next claim (`revision`).
                        let sealed = redacted::without_items(
                            &self.sealer,
                            event_id,
                            row.get::<_, Option<&str>>(4),
                            &removed,
                        )?;
                        tx.execute(
                            "UPDATE events SET data = $2, redacted = $3, revision = revision + 1
                              WHERE id = $1",
                            &[
                                &event_id,
                                &serde_json::to_string(&data).map_err(bad_json)?,
                                &sealed,
                            ],
                        )
                        .await
                        .map_err(pg_err)?;
                        let items = tx
                            .query(
                                "SELECT id, item_index FROM deliveries
                                  WHERE event_id = $1 AND item_index IS NOT NULL",
                                &[&event_id],
                            )
                            .await
                            .map_err(pg_err)?;
                        let mut gone = Vec::new();
                        for r in &items {
                            let (d, index): (DeliveryId, i64) = (r.get(0), r.get(1));
                            match hookline_core::erasure::renumber(index as usize, &removed) {
                                None => gone.push(d),
                                Some(to) if to as i64 != index => {
                                    tx.execute(
                                        "UPDATE deliveries SET item_index = $2 WHERE id = $1",
                                        &[&d, &(to as i64)],
                                    )
                                    .await
                                    .map_err(pg_err)?;
                                }
                                Some(_) => {}
                            }
                        }
                        (gone, false)
                    }
                };
            step.attempts_removed += tx
                .execute("DELETE FROM attempts WHERE delivery_id = ANY($1)", &[&gone])
                .await
                .map_err(pg_err)?;
            step.deliveries_removed += tx
                .execute("DELETE FROM deliveries WHERE id = ANY($1)", &[&gone])
                .await
                .map_err(pg_err)?;
            if dropped {
                tx.execute("DELETE FROM events WHERE id = $1", &[&event_id])
                    .await
                    .map_err(pg_err)?;
                step.events_dropped += 1;
            } else {
                // The answers its remaining deliveries got may have echoed the record.
                step.attempts_redacted += tx
                    .execute(&erasure::redact_attempts_sql("$1"), &[&event_id])
                    .await
                    .map_err(pg_err)?;
                step.events_rewritten += 1;
            }
        }
        let finished = candidates.len() < limit;
        if finished {
            step.records_removed += tx
                .execute(
                    "DELETE FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND id = $3",
                    &[&tenant_id, &target.entity_type, &target.entity_id],
                )
                .await
                .map_err(pg_err)?;
            let answers = tx
                .query(
                    "SELECT key, response FROM idempotency_keys
                      WHERE tenant_id = $1 AND strpos(response, $2) > 0",
                    &[&tenant_id, &needle],
                )
                .await
                .map_err(pg_err)?;
            for r in &answers {
                let shown = serde_json::from_str(r.get::<_, &str>(1))
                    .map(|v| hookline_core::erasure::shows(&target, &v))
                    .unwrap_or(true);
                if shown {
                    step.stored_answers_removed += tx
                        .execute(
                            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
                            &[&tenant_id, &r.get::<_, &str>(0)],
                        )
                        .await
                        .map_err(pg_err)?;
                }
            }
            step.import_rows_removed += tx
                .execute(
                    "DELETE FROM job_items WHERE job_id IN
                       (SELECT id FROM jobs WHERE tenant_id = $1 AND status IN ('succeeded', 'failed', 'cancelled'))",
                    &[&tenant_id],
                )
                .await
                .map_err(pg_err)?;
        }
        total.add(&step);
        let last: Option<EventId> = candidates.last().map(|r| r.get(0));
        let row = tx
            .query_one(
                &format!(
                    "UPDATE jobs SET done = done + $2, cursor = COALESCE($3, cursor), lease_until = {lease},
                     updated_at = $5, result = $6, status = CASE WHEN $7 THEN 'succeeded' ELSE status END,
                     finished_at = CASE WHEN $7 THEN $5 ELSE finished_at END,
                     lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END
                     WHERE id = $1 RETURNING {JOB_COLS}",
                    lease = db_after("$4")
                ),
                &[
                    &id,
                    &((step.events_dropped + step.events_rewritten) as i64),
                    &last,
                    &shared::millis(lease),
                    &time::now(),
                    &total.to_value(),
                    &finished,
                ],
            )
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        job_row(&row)
    }

    async fn fail_job(&self, id: JobId, token: LeaseToken, error: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE jobs SET status = 'failed', error = $3, lease_owner = NULL, lease_until = NULL,
                 updated_at = $4, finished_at = $4
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                &[&id, &token, &error, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn claim_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        request_hash: &str,
    ) -> Result<KeyClaim> {
        let c = self.conn().await?;
        // An unanswered claim has a NULL response, as publish's key has until its commit.
        let inserted = c
            .execute(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&tenant_id, &key, &request_hash, &time::now()],
            )
            .await
            .map_err(pg_err)?;
        if inserted == 1 {
            return Ok(KeyClaim::Claimed);
        }
        let r = c
            .query_opt(
                "SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
                &[&tenant_id, &key],
            )
            .await
            .map_err(pg_err)?;
        // Gone between the two statements (released, or pruned): the next try claims it.
        let Some(r) = r else {
            return Ok(KeyClaim::InProgress);
        };
        let (seen, response): (String, Option<String>) = (r.get(0), r.get(1));
        Ok(match (seen == request_hash, response) {
            (false, _) => KeyClaim::Reused,
            (true, None) => KeyClaim::InProgress,
            (true, Some(answer)) => KeyClaim::Answered(answer),
        })
    }

    async fn complete_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        response: &str,
    ) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE idempotency_keys SET response = $3 WHERE tenant_id = $1 AND key = $2",
                &[&tenant_id, &key, &response],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn release_idempotency_key(&self, tenant_id: TenantId, key: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND response IS NULL",
                &[&tenant_id, &key],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    fn quick(size: usize) -> PoolOptions {
        PoolOptions {
            wait_timeout: Duration::from_millis(200),
            statement_timeout: Duration::from_millis(300),
            ..PoolOptions::new(size)
        }
    }

    #[tokio::test]
    async fn an_exhausted_pool_answers_unavailable_in_time() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = PostgresStore::connect_with(&db.url, quick(1))
            .await
            .unwrap();
        let held = store.conn().await.unwrap();
        let started = std::time::Instant::now();
        let err = store.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(held);
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn long_statements_are_cancelled_but_migrations_are_not() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let options = PoolOptions {
            statement_timeout: Duration::from_millis(1),
            ..quick(2)
        };
        let store = PostgresStore::connect_with(&db.url, options).await.unwrap();
        store.migrate().await.unwrap();
        let err = pg_err(
            store
                .conn()
                .await
                .unwrap()
                .batch_execute("SELECT pg_sleep(0.5)")
                .await
                .unwrap_err(),
        );
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Nothing listens on port 1; the connect fails (or times out) rather than hanging.
        let options = PoolOptions {
            connect_timeout: Duration::from_millis(500),
            ..quick(1)
        };
        let err = PostgresStore::connect_with("postgres://nobody@127.0.0.1:1/none", options)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
