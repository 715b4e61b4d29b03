//! The embedded SQLite store: one file, WAL, a single writer thread with group commit, and a small
//! pool of reader connections.
//!
//! Why a writer thread: SQLite allows one writer at a time, and on ordinary disks each durable
//! commit costs an fsync (a few hundred per second at best). The writer drains every write job that
//! is queued, runs each inside its own SAVEPOINT (so one failing job can't spoil its neighbours), and
//! commits them together: callers still get their answer only after their data is on disk, but many
//! callers share one fsync. Readers never wait for the writer thanks to WAL.

use crate::contract::{Page, Store};
use crate::erasure::{self, Erased};
use crate::error::{Result, StoreError};
use crate::fairness;
use crate::fanout;
use crate::health::{self, HealthDelta, Streak};
use crate::jobs::{self, ReplayJob, JOB_COLS};
use crate::model::{
    ApiKey, Attempt, AttemptResult, Backlog, CancelOutcome, Claim, ClaimRequest, ClaimedDelivery,
    ConsoleSession, Delivery, DeliveryFilter, DeliveryStatus, Event, FoundSession, KeyClaim,
    KeyRevokeCheck, PlanFn, PortalGrant, Pruned, PublishOutcome, Published, RecordFilter,
    RecordRow, ReplayFilter, Tenant, Webhook, WebhookEdit, WebhookFilter, WebhookHour,
};
use crate::redacted::{self, LogRedactor};
use crate::sealed::{self, RawWebhook, Reseal, ResealReport, SealedCols, Sealer};
use crate::shared::{
    self, ATTEMPT_COLS, DELIVERY_COLS, EVENT_COLS, GRANT_COLS, KEY_COLS, PRUNE_CHUNK, RECORD_COLS,
    SESSION_COLS, WEBHOOK_COLS,
};
use crate::stats::{self, HOUR_COLS, MERGE_HOUR};
use async_trait::async_trait;
use hookline_core::api_key::KeyScope;
use hookline_core::erasure::{Target, Verdict};
use hookline_core::ids::{ApiKeyId, DeliveryId, EventId, JobId, LeaseToken, TenantId, WebhookId};
use hookline_core::retry::{DisablePolicy, RetrySchedule};
use hookline_core::sealing::Keyring;
use hookline_core::signing::WebhookSecret;
use hookline_core::stats::BUCKETS;
use hookline_core::time::{self, Timestamp};
use hookline_core::webhook::Format;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_console.sql"),
    include_str!("../migrations/sqlite/0003_resends.sql"),
    include_str!("../migrations/sqlite/0004_api_key_lifecycle.sql"),
    include_str!("../migrations/sqlite/0005_jobs.sql"),
    include_str!("../migrations/sqlite/0006_message_id_retention.sql"),
    include_str!("../migrations/sqlite/0007_cancelled.sql"),
    include_str!("../migrations/sqlite/0008_webhook_filter.sql"),
    include_str!("../migrations/sqlite/0009_event_redacted.sql"),
];

/// Most write jobs folded into one transaction.
const MAX_GROUP: usize = 512;

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
type WriteJob = Box<dyn Job>;

/// A unit of work for the writer thread.
trait Job: Send {
    /// Runs inside the job's savepoint: whether it succeeded, and how to answer once the group
    /// commit's fate is known.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Finish);
    /// The job never ran (no transaction could be opened).
    fn fail(self: Box<Self>, err: StoreError);
    /// Whether its commit must survive a power loss (see [`SqliteStore::write_relaxed`]).
    fn durable(&self) -> bool;
}

struct FnJob<T, F> {
    f: F,
    reply: oneshot::Sender<Result<T>>,
    durable: bool,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Finish) {
        let FnJob { f, reply, .. } = *self;
        // A panic in one job (a bug) fails that job only: its savepoint is rolled back and the
        // writer goes on, instead of every later write failing because the thread died.
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(panic = %what, "a write panicked; it was rolled back");
                Err(StoreError::Internal(format!("the write panicked: {what}")))
            });
        let ok = res.is_ok();
        (
            ok,
            Box::new(move |commit| drop(reply.send(commit.and(res)))),
        )
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Seals and opens webhook secrets (see `sealed.rs`); set by [`SqliteStore::with_keyring`].
    sealer: Sealer,
    /// The fields `log_redact` keeps out of stored events (see `redacted.rs`).
    log_redact: redacted::Paths,
}

struct Inner {
    /// Set when the store is dropped: ends the checkpoint thread.
    stop_checkpoints: Arc<std::sync::atomic::AtomicBool>,
    path: PathBuf,
    writer: mpsc::UnboundedSender<WriteJob>,
    /// Cleared when the writer thread ends for any reason: the store can't write any more.
    writer_alive: Arc<std::sync::atomic::AtomicBool>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_checkpoints
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Durability of commits: `Full` fsyncs the WAL on every (group) commit; `Normal` may lose the last
/// commits on power loss (never on a process crash) in exchange for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Migrations are applied by [`Store::migrate`].
    pub fn open(path: impl AsRef<Path>, readers: usize, sync: Synchronous) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer_conn = open_conn(&path, sync)?;
        let reader_conns = (0..readers.max(1))
            .map(|_| open_conn(&path, sync))
            .collect::<Result<Vec<_>>>()?;
        // Checkpoints (copying the WAL into the database file, with an fsync) run on their own
        // thread and connection, so commits never wait for them; the writer only checkpoints itself
        // as a backstop if the WAL grows very large.
        writer_conn.execute_batch("PRAGMA wal_autocheckpoint = 20000")?;
        let checkpointer = open_conn(&path, sync)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_cp = stop.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !stop_cp.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::debug!(error = %e, "passive checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Internal(format!("can't start the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let alive = WriterAlive(writer_alive.clone());
        // Named in 15 bytes or fewer, Linux's limit, so `top -H` and `hookline bench` (which
        // reports this thread's CPU per delivery) can tell it from the checkpointer.
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let _alive = alive;
                writer_loop(writer_conn, sync, rx)
            })
            .map_err(|e| StoreError::Internal(format!("can't start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                stop_checkpoints: stop,
                path,
                writer: tx,
                writer_alive,
                reader_permits: Semaphore::new(reader_conns.len()),
                readers: Mutex::new(reader_conns),
            }),
            sealer: Sealer::default(),
            log_redact: Default::default(),
        })
    }

    /// The fields kept out of stored events (`log_redact`, see `redacted.rs`).
    pub fn with_log_redact(mut self, paths: hookline_core::redact::Redaction) -> Self {
        self.log_redact = Arc::new(paths);
        self
    }

    /// The keys webhook secrets and header values are sealed under (see `sealed.rs`). Without one
    /// the store refuses to read or write webhooks.
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.sealer = Sealer::new(keyring);
        self
    }

    /// Parses `sqlite://file.db`, `sqlite:file.db`, `sqlite:///abs/file.db` or a bare path.
    pub fn path_from_url(url: &str) -> Option<PathBuf> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let rest = rest.split('?').next().unwrap_or(rest);
        (!rest.is_empty() && !rest.contains("://")).then(|| PathBuf::from(rest))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer thread inside its own savepoint; resolves after the group commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, true).await
    }

    /// Like [`Self::write`] for writes whose loss in a power failure is harmless — leases: a lost
    /// claim only means the delivery is claimed (and sent) again, which at-least-once allows. A
    /// group made only of such writes commits without waiting for the disk.
    async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, false).await
    }

    async fn submit<T, F>(&self, f: F, durable: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(FnJob {
            f,
            reply: tx,
            durable,
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }

    /// Runs `f` on a pooled reader connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .inner
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("reader pool closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .lock()
                .map_err(|_| StoreError::Internal("reader pool poisoned".into()))?
                .pop()
                .ok_or_else(|| StoreError::Internal("reader pool empty under permit".into()))?;
            let res = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            res
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?
    }
}

/// Prepared statements kept per connection (see `open_conn`).
const STATEMENT_CACHE: usize = 256;

fn open_conn(path: &Path, sync: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!(
            "can't open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // rusqlite keeps 16 prepared statements by default; the writer alone uses more than that per
    // round (publish, claim, results, renewals), and an evicted one is parsed and planned again:
    // that was ~7 % of the writer thread's time under load.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // `secure_delete`: whatever a write removes or replaces is zeroed in the file at once, not
    // left in free space. An erasure (or a re-encrypted secret) must leave no old copy behind, and
    // an old copy can be left by any earlier update of the same row (a record's previous version),
    // not only by the erasure's own deletes. Costs some CPU, little I/O: the pages are written anyway.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000; PRAGMA secure_delete = ON;"
    ))?;
    Ok(conn)
}

/// Clears the writer's liveness flag when the writer thread ends, however it ends (even by a panic
/// outside a job).
struct WriterAlive(Arc<std::sync::atomic::AtomicBool>);

impl Drop for WriterAlive {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

fn writer_loop(conn: Connection, sync: Synchronous, mut rx: mpsc::UnboundedReceiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP);
    let durable_pragma = match sync {
        Synchronous::Full => "PRAGMA synchronous = FULL",
        Synchronous::Normal => "PRAGMA synchronous = NORMAL",
    };
    let mut relaxed = false;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Lease-only writes (claims, releases, renewals) commit in a group of their own, first:
        // a claim that waited behind a publish's or a result batch's fsync would leave the
        // dispatcher's send slots idle for that long. Jobs in one batch were all waiting at once,
        // so running the relaxed ones first reorders nothing anyone could observe.
        let (quick, durable): (Vec<WriteJob>, Vec<WriteJob>) =
            batch.drain(..).partition(|j| !j.durable());
        for (group, want_relaxed) in [(quick, true), (durable, false)] {
            if group.is_empty() {
                continue;
            }
            // In WAL mode, synchronous=NORMAL commits survive a crash of the process, just not of
            // the machine: enough for lease-only groups, and it spares their fsync.
            if want_relaxed != relaxed {
                let pragma = if want_relaxed {
                    "PRAGMA synchronous = NORMAL"
                } else {
                    durable_pragma
                };
                if conn.execute_batch(pragma).is_ok() {
                    relaxed = want_relaxed;
                }
            }
            commit_group(&conn, group);
        }
    }
}

/// Runs each job of `group` in its own savepoint inside one transaction, commits, and answers
/// every job with the commit's outcome (a job whose own work failed was rolled back alone).
fn commit_group(conn: &Connection, group: Vec<WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = StoreError::from(e);
        for job in group {
            job.fail(clone_err(&err));
        }
        return;
    }
    let mut finishers = Vec::with_capacity(group.len());
    for job in group {
        // Cached, like every statement the writer runs per job: parsing it each time is
        // measurable on the one thread every write goes through.
        if let Err(e) = conn
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
        {
            job.fail(StoreError::from(e));
            continue;
        }
        let (ok, finish) = job.run(conn);
        let end = if ok {
            conn.prepare_cached("RELEASE job")
                .and_then(|mut s| s.execute([]))
                .map(drop)
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "savepoint end failed");
        }
        finishers.push(finish);
    }
    let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishers {
        finish(match &commit {
            Ok(()) => Ok(()),
            Err(e) => Err(clone_err(e)),
        });
    }
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
        &StoreError::TooManyDeliveries { limit, needed } => {
            StoreError::TooManyDeliveries { limit, needed }
        }
        // Only commit errors are cloned, and those are never rejections.
        StoreError::Rejected(r) => StoreError::Internal(r.to_string()),
    }
}

// ---- row mapping -------------------------------------------------------------------------------

fn ts(s: String) -> rusqlite::Result<Timestamp> {
    time::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad timestamp {s}").into(),
        )
    })
}

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<Timestamp>> {
    s.map(ts).transpose()
}

fn json<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<T> {
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, msg.into())
}

fn job_row(r: &Row) -> rusqlite::Result<jobs::Job> {
    let (kind, status) = jobs::parse_kind_status(&r.get::<_, String>(2)?, &r.get::<_, String>(3)?)
        .map_err(conversion)?;
    Ok(jobs::Job {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        kind,
        status,
        params: json(r.get(4)?)?,
        total: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
        done: r.get::<_, i64>(6)? as u64,
        error: r.get(7)?,
        result: r.get::<_, Option<String>>(8)?.map(json).transpose()?,
        position: r.get::<_, i64>(9)? as u64,
        created_at: ts(r.get(10)?)?,
        updated_at: ts(r.get(11)?)?,
        finished_at: opt_ts(r.get(12)?)?,
    })
}

fn job_by_id(c: &Connection, id: JobId) -> Result<jobs::Job> {
    Ok(
        c.prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"))?
            .query_row([id], job_row)?,
    )
}

fn delivery_exists(c: &Connection, id: DeliveryId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM deliveries WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// One erasure step inside the writer's transaction (see [`Store::erasure_step`]).
fn erasure_step(
    c: &Connection,
    sealer: &Sealer,
    id: JobId,
    token: LeaseToken,
    lease: Duration,
    limit: usize,
) -> Result<jobs::Job> {
    let held: Option<(TenantId, String, Option<String>, Option<String>)> = c
        .query_row(
            "SELECT tenant_id, params, cursor, result FROM jobs
             WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
            params![id, token],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((tenant_id, params, cursor, result)) = held else {
        return job_by_id(c, id);
    };
    let target: Target = serde_json::from_str(&params)?;
    let mut total = Erased::from_result(
        result
            .map(|r| serde_json::from_str::<serde_json::Value>(&r))
            .transpose()?
            .as_ref(),
    );
    let mut step = Erased::default();
    // id, event_type, entity_id, data, redacted
    type Candidate = (EventId, String, Option<String>, String, Option<String>);
    let candidates: Vec<Candidate> = c
        .prepare_cached(
            "SELECT id, event_type, entity_id, data, redacted FROM events
              WHERE tenant_id = ?1 AND (?2 IS NULL OR id > ?2)
                AND (entity_id = ?3 OR instr(data, ?4) > 0)
              ORDER BY id LIMIT ?5",
        )?
        .query_map(
            params![
                tenant_id,
                cursor,
                target.entity_id,
                erasure::needle(&target),
                limit as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let delete_deliveries = |c: &Connection, ids: &[DeliveryId], step: &mut Erased| -> Result<()> {
        for d in ids {
            step.attempts_removed += c
                .prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")?
                .execute([d])? as u64;
            step.deliveries_removed += c
                .prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                .execute([d])? as u64;
        }
        Ok(())
    };
    for (event_id, event_type, entity_id, data, sealed) in &candidates {
        let data: serde_json::Value = serde_json::from_str(data)?;
        match target.judge(event_type, entity_id.as_deref(), &data) {
            Verdict::Keep => {}
            Verdict::Drop => {
                let deliveries: Vec<DeliveryId> = c
                    .prepare_cached("SELECT id FROM deliveries WHERE event_id = ?1")?
                    .query_map([event_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                delete_deliveries(c, &deliveries, &mut step)?;
                c.execute("DELETE FROM events WHERE id = ?1", [event_id])?;
                step.events_dropped += 1;
            }
            Verdict::Rewrite { data, removed } => {
                // The sealed `log_redact` copy follows the objects left. A node holding the old
                // version reads the new one at its next claim (`revision`).
                let sealed =
                    redacted::without_items(sealer, *event_id, sealed.as_deref(), &removed)?;
                c.execute(
                    "UPDATE events SET data = ?2, redacted = ?3, revision = revision + 1 WHERE id = ?1",
                    params![event_id, serde_json::to_string(&data)?, sealed],
                )?;
                let items: Vec<(DeliveryId, i64)> = c
                    .prepare_cached(
                        "SELECT id, item_index FROM deliveries
                          WHERE event_id = ?1 AND item_index IS NOT NULL",
                    )?
                    .query_map([event_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut gone = Vec::new();
                for (d, index) in items {
                    match hookline_core::erasure::renumber(index as usize, &removed) {
                        None => gone.push(d),
                        Some(to) if to as i64 != index => {
                            c.execute(
                                "UPDATE deliveries SET item_index = ?2 WHERE id = ?1",
                                params![d, to as i64],
                            )?;
                        }
                        Some(_) => {}
                    }
                }
                delete_deliveries(c, &gone, &mut step)?;
                step.attempts_redacted += c
                    .prepare_cached(&erasure::redact_attempts_sql("?1"))?
                    .execute([event_id])? as u64;
                step.events_rewritten += 1;
            }
        }
    }
    let finished = candidates.len() < limit;
    if finished {
        step.records_removed += c.execute(
            "DELETE FROM entities WHERE tenant_id = ?1 AND entity_type = ?2 AND id = ?3",
            params![tenant_id, target.entity_type, target.entity_id],
        )? as u64;
        let answers: Vec<(String, String)> = c
            .prepare(
                "SELECT key, response FROM idempotency_keys
                  WHERE tenant_id = ?1 AND instr(response, ?2) > 0",
            )?
            .query_map(params![tenant_id, erasure::needle(&target)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (key, response) in answers {
            let shown = serde_json::from_str(&response)
                .map(|v| hookline_core::erasure::shows(&target, &v))
                .unwrap_or(true);
            if shown {
                step.stored_answers_removed += c.execute(
                    "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2",
                    params![tenant_id, key],
                )? as u64;
            }
        }
        step.import_rows_removed += c.execute(
            "DELETE FROM job_items WHERE job_id IN
               (SELECT id FROM jobs WHERE tenant_id = ?1 AND status IN ('succeeded', 'failed', 'cancelled'))",
            [tenant_id],
        )? as u64;
    }
    total.add(&step);
    let now = time::steady_now();
    let lease_until = time::format(&(now + time::span(lease)));
    let now = time::format(&now);
    c.execute(
        "UPDATE jobs SET done = done + ?2, cursor = COALESCE(?3, cursor), lease_until = ?4,
         updated_at = ?5, result = ?6, status = CASE WHEN ?7 THEN 'succeeded' ELSE status END,
         finished_at = CASE WHEN ?7 THEN ?5 ELSE finished_at END,
         lease_owner = CASE WHEN ?7 THEN NULL ELSE lease_owner END
         WHERE id = ?1",
        params![
            id,
            (step.events_dropped + step.events_rewritten) as i64,
            candidates.last().map(|e| e.0),
            lease_until,
            now,
            serde_json::to_string(&total.to_value())?,
            finished
        ],
    )?;
    job_by_id(c, id)
}

fn tenant_row(r: &Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: ts(r.get(2)?)?,
    })
}

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    key_row_at(r, 0)
}

/// A key whose [`KEY_COLS`] start at column `at`.
fn key_row_at(r: &Row, at: usize) -> rusqlite::Result<ApiKey> {
    let scope: String = r.get(at + 7)?;
    Ok(ApiKey {
        id: r.get(at)?,
        tenant_id: r.get(at + 1)?,
        name: r.get(at + 2)?,
        prefix: r.get(at + 3)?,
        key_hash: r.get(at + 4)?,
        default_user_id: r.get(at + 5)?,
        created_at: ts(r.get(at + 6)?)?,
        scope: KeyScope::parse(&scope).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 7,
                rusqlite::types::Type::Text,
                format!("unknown key scope `{scope}`").into(),
            )
        })?,
        expires_at: opt_ts(r.get(at + 8)?)?,
        last_used_at: opt_ts(r.get(at + 9)?)?,
        revoked_at: opt_ts(r.get(at + 10)?)?,
    })
}

/// The parameters of an `INSERT INTO api_keys ({KEY_COLS})`.
fn key_params(k: &ApiKey) -> [Value; 11] {
    let text = |t: &Option<Timestamp>| match t {
        Some(t) => Value::Text(time::format(t)),
        None => Value::Null,
    };
    [
        Value::Text(k.id.to_string()),
        Value::Text(k.tenant_id.to_string()),
        Value::Text(k.name.clone()),
        Value::Text(k.prefix.clone()),
        Value::Text(k.key_hash.clone()),
        k.default_user_id.clone().map_or(Value::Null, Value::Text),
        Value::Text(time::format(&k.created_at)),
        Value::Text(k.scope.as_str().to_string()),
        text(&k.expires_at),
        text(&k.last_used_at),
        text(&k.revoked_at),
    ]
}

/// One chunk of [`Store::reseal`]: the next webhooks after `after` that match `cond`, each
/// rewritten when [`Sealer::reseal`] says so. Answers how many were read, the last id read and how
/// many were rewritten.
fn reseal_chunk(
    c: &Connection,
    sealer: &Sealer,
    cond: &str,
    after: Option<WebhookId>,
    scope: Reseal,
) -> Result<(usize, Option<WebhookId>, u64)> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT id, secret, previous_secret, headers FROM webhooks
             WHERE (?1 IS NULL OR id > ?1) AND {cond} ORDER BY id LIMIT {}",
            sealed::RESEAL_CHUNK
        ))?
        .query_map(params![after], |r| {
            Ok((
                r.get::<_, WebhookId>(0)?,
                SealedCols {
                    secret: r.get(1)?,
                    previous_secret: r.get(2)?,
                    headers: r.get(3)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut changed = 0;
    for (id, cols) in &rows {
        if let Some(s) = sealer.reseal(*id, cols, scope)? {
            c.prepare_cached(
                "UPDATE webhooks SET secret = ?2, previous_secret = ?3, headers = ?4 WHERE id = ?1",
            )?
            .execute(params![id, s.secret, s.previous_secret, s.headers])?;
            changed += 1;
        }
    }
    Ok((rows.len(), rows.last().map(|r| r.0), changed))
}

/// Writes every settings column of an existing webhook; returns the rows changed (0 or 1).
fn write_webhook(c: &Connection, w: &Webhook, sealer: &Sealer) -> Result<usize> {
    let p = webhook_params(w, sealer)?;
    Ok(c.prepare_cached(&shared::update_webhook_sql('?'))?
        .execute(rusqlite::params_from_iter(
            p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql),
        ))?)
}

/// A webhook row with its sealed columns still sealed: [`Sealer::unseal`] opens them.
fn webhook_row(r: &Row) -> rusqlite::Result<RawWebhook> {
    let format: String = r.get(11)?;
    let ordering: String = r.get(15)?;
    let schedule: Option<String> = r.get(13)?;
    let sealed = SealedCols {
        secret: r.get(6)?,
        previous_secret: r.get(7)?,
        headers: r.get(12)?,
    };
    let webhook = Webhook {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        url: r.get(4)?,
        events: json(r.get(5)?)?,
        secret: WebhookSecret::new(String::new()),
        previous_secret: None,
        previous_secret_expires_at: opt_ts(r.get(8)?)?,
        enabled: r.get(9)?,
        disabled_reason: r.get(10)?,
        format: shared::parse_format(&format).map_err(conversion)?,
        headers: Default::default(),
        retry_schedule: schedule
            .map(|s| {
                let v: serde_json::Value = json(s)?;
                RetrySchedule::from_json(&v).map_err(conversion)
            })
            .transpose()?,
        rate_limit: r.get(14)?,
        ordering: shared::parse_ordering(&ordering).map_err(conversion)?,
        consecutive_failures: r.get(16)?,
        failing_since: opt_ts(r.get(17)?)?,
        created_at: ts(r.get(18)?)?,
        updated_at: ts(r.get(19)?)?,
        last_attempt_at: opt_ts(r.get(20)?)?,
        filter: r.get(21)?,
    };
    Ok(RawWebhook { webhook, sealed })
}

/// Values bound for an insert or full update, in `WEBHOOK_COLS` order; the secrets sealed.
fn webhook_params(w: &Webhook, sealer: &Sealer) -> Result<Vec<Box<dyn rusqlite::ToSql + Send>>> {
    let sealed = sealer.seal_webhook(w)?;
    Ok(vec![
        Box::new(w.id),
        Box::new(w.tenant_id),
        Box::new(w.name.clone()),
        Box::new(w.description.clone()),
        Box::new(w.url.clone()),
        Box::new(serde_json::to_string(&w.events)?),
        Box::new(sealed.secret),
        Box::new(sealed.previous_secret),
        Box::new(w.previous_secret_expires_at.as_ref().map(time::format)),
        Box::new(w.enabled),
        Box::new(w.disabled_reason.clone()),
        Box::new(w.format.as_str()),
        Box::new(sealed.headers),
        Box::new(w.retry_schedule.as_ref().map(|s| s.to_json().to_string())),
        Box::new(w.rate_limit),
        Box::new(w.ordering.as_str()),
        Box::new(w.consecutive_failures as i64),
        Box::new(w.failing_since.as_ref().map(time::format)),
        Box::new(time::format(&w.created_at)),
        Box::new(time::format(&w.updated_at)),
        Box::new(w.last_attempt_at.as_ref().map(time::format)),
        Box::new(w.filter.clone()),
    ])
}

fn event_row(r: &Row) -> rusqlite::Result<Event> {
    let opt_json = |s: Option<String>| s.map(json::<serde_json::Value>).transpose();
    Ok(Event {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        event_type: r.get(2)?,
        occurred_at: ts(r.get(3)?)?,
        source: r.get(4)?,
        source_id: r.get(5)?,
        actor_id: r.get(6)?,
        entity_type: r.get(7)?,
        entity_id: r.get(8)?,
        data: json(r.get(9)?)?,
        changes: opt_json(r.get(10)?)?,
        batch: opt_json(r.get(11)?)?,
        created_at: ts(r.get(12)?)?,
    })
}

/// Writes `e`, with the deployment's `log_redact` fields taken out when `redact` is given (see
/// `redacted.rs`); operational events, which carry no CRM data, pass `None`.
/// An event's row, ready to insert: the work it takes (`log_redact`, the JSON text) is done by
/// whoever builds it, so the publish path builds it before its job reaches the writer thread,
/// which every write of the node goes through.
struct EventRow(Vec<Value>);

impl EventRow {
    fn new(e: &Event, redact: Option<&LogRedactor>) -> Result<EventRow> {
        let (e, sealed) = match redact {
            Some(r) => r.for_storage(e)?,
            None => (std::borrow::Cow::Borrowed(e), None),
        };
        let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
        Ok(EventRow(vec![
            Value::Text(e.id.to_string()),
            Value::Text(e.tenant_id.to_string()),
            Value::Text(e.event_type.clone()),
            Value::Text(time::format(&e.occurred_at)),
            text(&e.source),
            text(&e.source_id),
            text(&e.actor_id),
            text(&e.entity_type),
            text(&e.entity_id),
            Value::Text(e.data.to_string()),
            text(&e.changes.as_ref().map(|v| v.to_string())),
            text(&e.batch.as_ref().map(|v| v.to_string())),
            Value::Text(time::format(&e.created_at)),
            text(&sealed),
        ]))
    }
}

fn insert_event(c: &Connection, row: &EventRow) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO events ({EVENT_COLS}, redacted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?
    .execute(rusqlite::params_from_iter(row.0.iter()))?;
    Ok(())
}

/// Writes events and their deliveries ([`fanout::plan`]). Runs inside the caller's transaction,
/// so events never exist without their deliveries.
fn fan_out(
    c: &Connection,
    tenant_id: TenantId,
    events: &[Event],
    max_deliveries: usize,
    redact: Option<&LogRedactor>,
) -> Result<Vec<Published>> {
    let rows = events
        .iter()
        .map(|e| EventRow::new(e, redact))
        .collect::<Result<Vec<_>>>()?;
    fan_out_rows(c, tenant_id, events, &rows, max_deliveries)
}

/// [`fan_out`] with the events' rows built already (`rows[i]` is `events[i]`'s).
fn fan_out_rows(
    c: &Connection,
    tenant_id: TenantId,
    events: &[Event],
    rows: &[EventRow],
    max_deliveries: usize,
) -> Result<Vec<Published>> {
    let subscribers = c
        .prepare_cached("SELECT id, events, format, ordering, filter FROM webhooks WHERE tenant_id = ?1 AND enabled = 1")?
        .query_map([tenant_id], |r| {
            let (events, format, ordering): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
            let filter: Option<String> = r.get(4)?;
            fanout::Subscriber::from_columns(r.get(0)?, &events, &format, &ordering, filter.as_deref())
                .map_err(conversion)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (published, deliveries) = fanout::plan(events, &subscribers, max_deliveries)?;
    for row in rows {
        insert_event(c, row)?;
    }
    let now = time::format(&time::steady_now());
    let mut insert = c.prepare_cached(
        "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempt_count,
           next_attempt_at, item_index, format, ordering_key, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?9, ?8, ?6, ?6)",
    )?;
    for d in deliveries {
        insert.execute(params![
            d.id,
            tenant_id,
            d.webhook_id,
            d.event_id,
            d.event_type,
            now,
            d.item_index,
            d.ordering_key,
            d.format.as_str()
        ])?;
    }
    Ok(published)
}

fn delivery_row(r: &Row) -> rusqlite::Result<Delivery> {
    let status: String = r.get(5)?;
    Ok(Delivery {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        webhook_id: r.get(2)?,
        event_id: r.get(3)?,
        event_type: r.get(4)?,
        status: shared::parse_status(&status).map_err(conversion)?,
        attempt_count: r.get(6)?,
        next_attempt_at: opt_ts(r.get(7)?)?,
        item_index: r.get(8)?,
        resent_from: r.get(9)?,
        last_status_code: r.get(10)?,
        last_error: r.get(11)?,
        created_at: ts(r.get(12)?)?,
        updated_at: ts(r.get(13)?)?,
        url: r.get(14)?,
        format: shared::parse_format(&r.get::<_, String>(15)?).map_err(conversion)?,
        message_id: r.get(16)?,
        cancel_reason: shared::parse_cancel_reason(r.get(17)?).map_err(conversion)?,
    })
}

/// A list of ids as the JSON text `json_each` reads (`None` stays NULL: no filter).
fn ids_json(ids: Option<&[WebhookId]>) -> Option<String> {
    ids.map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
}

fn attempt_row(r: &Row) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: r.get(0)?,
        delivery_id: r.get(1)?,
        attempt_number: r.get(2)?,
        started_at: ts(r.get(3)?)?,
        url: r.get(4)?,
        status_code: r.get(5)?,
        error_kind: r.get(6)?,
        error_message: r.get(7)?,
        dns_ms: r.get(8)?,
        connect_ms: r.get(9)?,
        tls_ms: r.get(10)?,
        ttfb_ms: r.get(11)?,
        total_ms: r.get(12)?,
        request_headers: json(r.get(13)?)?,
        response_headers: r
            .get::<_, Option<String>>(14)?
            .map(json)
            .transpose()?
            .unwrap_or_default(),
        response_body: r.get(15)?,
        response_truncated: r.get(16)?,
    })
}

/// An attempt's row, ready to insert (see [`EventRow`]: the result writer builds these before its
/// batch reaches the writer thread).
struct AttemptRow(Vec<Value>);

impl AttemptRow {
    fn new(a: &Attempt) -> Result<AttemptRow> {
        let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
        let real = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
        Ok(AttemptRow(vec![
            Value::Text(a.id.to_string()),
            Value::Text(a.delivery_id.to_string()),
            Value::Integer(a.attempt_number.into()),
            Value::Text(time::format(&a.started_at)),
            Value::Text(a.url.clone()),
            a.status_code
                .map_or(Value::Null, |s| Value::Integer(s.into())),
            text(&a.error_kind),
            text(&a.error_message),
            real(a.dns_ms),
            real(a.connect_ms),
            real(a.tls_ms),
            real(a.ttfb_ms),
            Value::Real(a.total_ms),
            Value::Text(serde_json::to_string(&a.request_headers)?),
            Value::Text(serde_json::to_string(&a.response_headers)?),
            text(&a.response_body),
            Value::Integer(a.response_truncated.into()),
        ]))
    }
}

fn insert_attempt(c: &Connection, a: &Attempt) -> Result<()> {
    insert_attempt_row(c, &AttemptRow::new(a)?)
}

fn insert_attempt_row(c: &Connection, row: &AttemptRow) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO attempts (tenant_id, {ATTEMPT_COLS})
         SELECT tenant_id, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17
         FROM deliveries WHERE id = ?2"
    ))?
    .execute(rusqlite::params_from_iter(row.0.iter()))?;
    Ok(())
}

/// Moves a webhook's `last_attempt_at` forward to `at` (never back).
fn touch_last_attempt(c: &Connection, webhook_id: WebhookId, at: Timestamp) -> Result<()> {
    c.prepare_cached(
        "UPDATE webhooks SET last_attempt_at = ?2
         WHERE id = ?1 AND (last_attempt_at IS NULL OR last_attempt_at < ?2)",
    )?
    .execute(params![webhook_id, time::format(&at)])?;
    Ok(())
}

/// Adds each group to its webhook's hour ([`stats::hours`]): one upsert per (webhook, hour).
fn add_hours(c: &Connection, hours: &[WebhookHour]) -> Result<()> {
    if hours.is_empty() {
        return Ok(());
    }
    let values = (1..=4 + BUCKETS)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut upsert = c.prepare_cached(&format!(
        "INSERT INTO webhook_hours ({}) VALUES ({values}) {}",
        *HOUR_COLS, *MERGE_HOUR
    ))?;
    for h in hours {
        let mut p = vec![
            Value::Text(h.webhook_id.to_string()),
            Value::Text(time::format(&h.stats.hour)),
            Value::Integer(h.stats.delivered as i64),
            Value::Integer(h.stats.failed as i64),
        ];
        p.extend(h.stats.latency.iter().map(|n| Value::Integer(*n as i64)));
        upsert.execute(rusqlite::params_from_iter(p))?;
    }
    Ok(())
}

fn hour_row(r: &Row) -> rusqlite::Result<WebhookHour> {
    let latency = (0..BUCKETS)
        .map(|i| r.get::<_, i64>(4 + i))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(stats::row(
        r.get(0)?,
        ts(r.get(1)?)?,
        r.get(2)?,
        r.get(3)?,
        latency,
    ))
}

fn uuid_text(s: String) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A session ([`SESSION_COLS`]).
fn session_row(r: &Row) -> rusqlite::Result<ConsoleSession> {
    Ok(ConsoleSession {
        id_hash: r.get(0)?,
        tenant_id: r.get(1)?,
        key_id: r.get(2)?,
        grant_id: r.get::<_, Option<String>>(3)?.map(uuid_text).transpose()?,
        csrf: r.get(4)?,
        created_at: ts(r.get(5)?)?,
        last_seen_at: ts(r.get(6)?)?,
        expires_at: ts(r.get(7)?)?,
    })
}

/// A grant whose [`GRANT_COLS`] start at column `at`.
fn grant_row_at(r: &Row, at: usize) -> rusqlite::Result<PortalGrant> {
    Ok(PortalGrant {
        id: uuid_text(r.get(at)?)?,
        tenant_id: r.get(at + 1)?,
        webhook_ids: r.get::<_, Option<String>>(at + 2)?.map(json).transpose()?,
        capabilities: json(r.get(at + 3)?)?,
        code_hash: r.get(at + 4)?,
        created_at: ts(r.get(at + 5)?)?,
        expires_at: ts(r.get(at + 6)?)?,
        revoked_at: opt_ts(r.get(at + 7)?)?,
    })
}

/// Applies one webhook's streak delta and disables it when the policy says so, announcing it with
/// a `webhook.disabled` event in the same transaction.
/// Logs an `abandoned` attempt for each expired lease of `webhook_id` that the claim is about to
/// take over (the same rows, in the same order, as the claim's `expired` statement): the try a
/// node started and never recorded. It started when that lease was taken (`updated_at`). Returns
/// how many were logged.
fn abandon(c: &Connection, webhook_id: WebhookId, now: &str, limit: usize) -> Result<usize> {
    let rows: Vec<(DeliveryId, u32, String, String)> = c
        .prepare_cached(
            "SELECT d.id, d.attempt_count, d.updated_at, w.url FROM deliveries d
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.webhook_id = ?1 AND d.status = 'delivering' AND d.lease_until < ?2
             ORDER BY d.lease_until, d.id LIMIT ?3",
        )?
        .query_map(params![webhook_id, now, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, count, started, url) in &rows {
        insert_attempt(
            c,
            &shared::abandoned_attempt(*id, count + 1, ts(started.clone())?, url),
        )?;
    }
    Ok(rows.len())
}

/// The most attempts a delivery of `webhook_id` gets: its own schedule's, or the default.
fn max_attempts(c: &Connection, webhook_id: WebhookId, default: usize) -> Result<usize> {
    let schedule: Option<String> = c
        .prepare_cached("SELECT retry_schedule FROM webhooks WHERE id = ?1")?
        .query_row([webhook_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(match schedule {
        Some(s) => RetrySchedule::from_json(&json(s)?)
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .max_attempts(),
        None => default,
    })
}

/// Ends a reclaimed delivery whose abandoned try was its last allowed one: `failed`, announced
/// with `delivery.exhausted`, never sent again (a delivery that crashes its node every time).
fn fail_abandoned(c: &Connection, id: DeliveryId, now: &str) -> Result<()> {
    c.prepare_cached(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL,
           lease_until = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    tracing::warn!(delivery_id = %id, "delivery failed: its last attempt was abandoned");
    exhausted_of(c, id, Some(shared::ABANDONED.into()))
}

/// Publishes `delivery.exhausted` for a delivery that just ended `failed` (in the transaction that
/// failed it), unless it carried an operational event itself ([`health::exhausted_event`]).
fn exhausted_of(c: &Connection, id: DeliveryId, last_error_kind: Option<String>) -> Result<()> {
    let f = c
        .prepare_cached(
            "SELECT tenant_id, webhook_id, event_id, event_type, attempt_count, last_status_code,
               last_error, COALESCE(message_id, id) FROM deliveries WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(health::FailedDelivery {
                tenant_id: r.get(0)?,
                delivery_id: id,
                webhook_id: r.get(1)?,
                event_id: r.get(2)?,
                event_type: r.get(3)?,
                attempts: r.get(4)?,
                last_status_code: r.get(5)?,
                last_error: r.get(6)?,
                message_id: r.get(7)?,
                last_error_kind,
            })
        })
        .optional()?;
    if let Some(e) = f.as_ref().and_then(health::exhausted_event) {
        // An operational event to the tenant's own webhooks: never refused for its size.
        fan_out(c, e.tenant_id, &[e], usize::MAX, None)?;
    }
    Ok(())
}

fn apply_health(c: &Connection, d: &HealthDelta, policy: DisablePolicy) -> Result<()> {
    // The streak before the batch: whether it crosses half the threshold or ends in a recovery.
    let before: Option<(u64, Option<String>)> = c
        .prepare_cached("SELECT consecutive_failures, failing_since FROM webhooks WHERE id = ?1")?
        .query_row([d.webhook_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (before, before_since) = match before {
        Some((n, since)) => (n, opt_ts(since)?),
        None => (0, None),
    };
    let row: Option<(TenantId, String, String, u64, Option<String>, bool)> = c
        .prepare_cached(
            "UPDATE webhooks SET
               consecutive_failures = CASE WHEN ?2 THEN ?3 ELSE consecutive_failures + ?3 END,
               failing_since = CASE WHEN ?3 = 0 THEN NULL WHEN ?2 THEN ?4 ELSE COALESCE(failing_since, ?4) END,
               last_attempt_at = CASE WHEN last_attempt_at IS NULL OR last_attempt_at < ?5 THEN ?5
                                      ELSE last_attempt_at END
             WHERE id = ?1
             RETURNING tenant_id, name, url, consecutive_failures, failing_since, enabled",
        )?
        .query_row(
            params![
                d.webhook_id,
                d.reset,
                d.failures as i64,
                d.first_failure_at.as_ref().map(time::format),
                time::format(&d.last_at)
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((tenant_id, name, url, streak, since, enabled)) = row else {
        return Ok(());
    };
    if !enabled {
        // Disabled or deleted while this attempt was in flight: a retry it queued ends here.
        cancel_queued(c, d.webhook_id)?;
    }
    let stored = Streak {
        enabled,
        consecutive_failures: streak,
        failing_since: opt_ts(since)?,
    };
    let Some(reason) = health::disable_reason(d, &stored, &policy) else {
        let before = health::Before {
            consecutive_failures: before,
            failing_since: before_since,
        };
        if let Some(e) = health::streak_event(&before, d, &stored, &policy, tenant_id, &name, &url)
        {
            fan_out(c, tenant_id, &[e], usize::MAX, None)?;
        }
        return Ok(());
    };
    let now = time::steady_now();
    c.prepare_cached(
        "UPDATE webhooks SET enabled = 0, disabled_reason = ?2, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![d.webhook_id, reason, time::format(&now)])?;
    cancel_queued(c, d.webhook_id)?;
    tracing::warn!(webhook_id = %d.webhook_id, %reason, "webhook disabled");
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
    )?;
    Ok(())
}

/// Cancels the queued deliveries of a webhook that may no longer send (see
/// [`shared::cancel_queued_sql`]); a no-op for an enabled webhook.
fn cancel_queued(c: &Connection, webhook_id: WebhookId) -> Result<usize> {
    Ok(c.prepare_cached(&shared::cancel_queued_sql("?1", "?2"))?
        .execute(params![webhook_id, time::format(&time::steady_now())])?)
}

fn record_row(r: &Row) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        tenant_id: r.get(0)?,
        kind: r.get(1)?,
        id: r.get(2)?,
        version: r.get(3)?,
        data: json(r.get(4)?)?,
    })
}

/// When the earliest waiting delivery is due: pending or retrying ones at their time, leased ones
/// when their lease runs out.
/// How long until then on the process's steady clock (negative: overdue by that much).
fn next_due(c: &Connection) -> Result<Option<chrono::Duration>> {
    let due: Option<String> = c.query_row(
        "SELECT MIN(t) FROM (
           SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status IN ('pending', 'retrying')
           UNION ALL SELECT MIN(lease_until) FROM deliveries WHERE status = 'delivering')",
        [],
        |r| r.get(0),
    )?;
    Ok(opt_ts(due)?.map(|at| at - time::steady_now()))
}

/// Inserts the copies a resend or replay makes, each only if its original belongs to `tenant_id`;
/// returns how many were made. One statement per copy: SQLite has no arrays to batch with, and
/// on the writer thread inside one transaction each costs microseconds.
fn copy_deliveries(
    c: &Connection,
    tenant_id: TenantId,
    copies: &[shared::DeliveryCopy],
) -> Result<u64> {
    let now = time::format(&time::steady_now());
    let mut insert = c.prepare_cached(&shared::copy_delivery_sql(
        "?1",
        "?2",
        "?2",
        "FROM deliveries d WHERE d.tenant_id = ?3 AND d.id = ?4",
    ))?;
    let mut made = 0;
    for copy in copies {
        made += insert.execute(params![copy.id, now, tenant_id, copy.resent_from])? as u64;
    }
    Ok(made)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        self.write(|conn| {
            let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            shared::check_schema_version(current, MIGRATIONS.len())?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                conn.execute_batch(sql)?;
                conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
                tracing::info!(version = i + 1, "applied SQLite migration");
            }
            Ok(())
        })
        .await?;
        // The migration SQL can't encrypt (it has no key): rows from before encryption are sealed
        // here, and a store given the wrong key stops here, naming the key it lacks.
        self.reseal(Reseal::Clear).await.map(|_| ())
    }

    async fn reseal(&self, scope: Reseal) -> Result<ResealReport> {
        let found: Vec<String> = self
            .read(|c| {
                Ok(c.prepare(&sealed::key_ids_sql())?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .await?;
        self.sealer.check_key_ids(&found)?;
        let cond = sealed::needs_reseal_sql(scope, &self.sealer.current_id().unwrap_or_default());
        let mut report = ResealReport {
            webhooks: 0,
            key_id: self.sealer.current_id().unwrap_or_default(),
        };
        let mut after: Option<WebhookId> = None;
        loop {
            let (sealer, cond) = (self.sealer.clone(), cond.clone());
            // One chunk per write job: read and rewrite in one transaction, so a concurrent edit
            // is never overwritten, and the writer is never held for long.
            let (n, last, changed) = self
                // The old values are zeroed as they are replaced (`secure_delete`, see `open_conn`).
                .write(move |c| reseal_chunk(c, &sealer, &cond, after, scope))
                .await?;
            report.webhooks += changed;
            if (n as i64) < sealed::RESEAL_CHUNK {
                break;
            }
            after = last;
        }
        if report.webhooks > 0 {
            // The WAL still holds the pages as they were before: copy the new ones into the file
            // and empty it. Best effort: a busy reader only delays it to a later checkpoint.
            let checkpoint = self
                .read(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
                .await;
            if let Err(e) = checkpoint {
                tracing::warn!(error = %e, "checkpoint after re-encrypting secrets failed");
            }
        }
        Ok(report)
    }

    fn broken(&self) -> Option<String> {
        (!self
            .inner
            .writer_alive
            .load(std::sync::atomic::Ordering::Relaxed))
        .then(|| "the SQLite writer thread has stopped".to_string())
    }

    async fn ping(&self) -> Result<()> {
        if let Some(why) = self.broken() {
            return Err(StoreError::Unavailable(why));
        }
        self.read(|c| {
            Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
        .await
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: TenantId::new(),
            name: name.to_string(),
            created_at: time::steady_now(),
        };
        let t = tenant.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![t.id, t.name, time::format(&t.created_at)],
            )?;
            Ok(())
        })
        .await?;
        Ok(tenant)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, name, created_at FROM tenants WHERE name = ?1",
                [name],
                tenant_row,
            )
            .optional()?)
        })
        .await
    }

    async fn count_tenants(&self) -> Result<u64> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM tenants", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    async fn tenant_name(&self, id: TenantId) -> Result<Option<String>> {
        self.read(move |c| {
            Ok(
                c.query_row("SELECT name FROM tenants WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let p = key_params(key);
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                rusqlite::params_from_iter(p.iter()),
            )?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(&self, tenant_id: TenantId, page: Page) -> Result<Vec<ApiKey>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        page.before.map(|u| u.to_string()),
                        page.limit as i64
                    ],
                    key_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        tenant_id: TenantId,
        id: ApiKeyId,
        now: Timestamp,
        check: KeyRevokeCheck,
    ) -> Result<Option<ApiKey>> {
        // The writer thread runs this alone, so no other revocation can slip between the check
        // and the update.
        self.write(move |c| {
            let all = c
                .prepare_cached(&format!(
                    "SELECT {KEY_COLS} FROM api_keys
                     WHERE tenant_id = ?1 AND (revoked_at IS NULL OR id = ?2)"
                ))?
                .query_map(params![tenant_id, id], key_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let Some(mut key) = all.iter().find(|k| k.id == id).cloned() else {
                return Ok(None);
            };
            if key.revoked_at.is_some() {
                return Ok(Some(key));
            }
            check(&key, &all).map_err(StoreError::Rejected)?;
            c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                params![id, time::format(&now)],
            )?;
            // Browser sessions signed in with it end now rather than at their next request.
            c.execute("DELETE FROM console_sessions WHERE key_id = ?1", [id])?;
            key.revoked_at = Some(now);
            Ok(Some(key))
        })
        .await
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()> {
        // Losing a touch to a power cut only makes a key look unused a little longer.
        self.write_relaxed(move |c| {
            c.prepare_cached(
                "UPDATE api_keys SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )?
            .execute(params![id, time::format(&at)])?;
            Ok(())
        })
        .await
    }

    async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>> {
        let prefix = prefix.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLS} FROM api_keys WHERE prefix = ?1 AND revoked_at IS NULL"
            ))?;
            let rows = stmt
                .query_map([prefix], key_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()> {
        let p = webhook_params(webhook, &self.sealer)?;
        self.write(move |c| {
            c.execute(
                &shared::insert_webhook_sql('?'),
                rusqlite::params_from_iter(p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql)),
            )?;
            Ok(())
        })
        .await
    }

    async fn get_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<Option<Webhook>> {
        let sealer = self.sealer.clone();
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND id = ?2 AND {}",
                    shared::NOT_DELETED
                ),
                params![tenant_id, id],
                webhook_row,
            )
            .optional()?
            .map(|raw| sealer.unseal(raw))
            .transpose()
        })
        .await
    }

    async fn list_webhooks(
        &self,
        tenant_id: TenantId,
        filter: WebhookFilter,
        page: Page,
    ) -> Result<Vec<Webhook>> {
        let sealer = self.sealer.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                   AND deleted_at IS NULL
                   AND (?4 IS NULL OR name LIKE ?4 ESCAPE '\\' OR url LIKE ?4 ESCAPE '\\'
                        OR description LIKE ?4 ESCAPE '\\')
                   AND (?5 IS NULL OR id IN (SELECT value FROM json_each(?5)))
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        page.before.map(|u| u.to_string()),
                        page.limit as i64,
                        shared::contains(filter.search.as_deref()),
                        ids_json(filter.ids.as_deref()),
                    ],
                    webhook_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|raw| sealer.unseal(raw)).collect()
        })
        .await
    }

    async fn modify_webhook(
        &self,
        tenant_id: TenantId,
        id: WebhookId,
        edit: WebhookEdit,
    ) -> Result<Option<Webhook>> {
        // The writer thread serialises this with every other write, health updates included.
        let sealer = self.sealer.clone();
        self.write(move |c| {
            let Some(raw) = c
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND id = ?2 AND {}",
                    shared::NOT_DELETED
                ))?
                .query_row(params![tenant_id, id], webhook_row)
                .optional()?
            else {
                return Ok(None);
            };
            let mut w = sealer.unseal(raw)?;
            edit(&mut w).map_err(StoreError::Rejected)?;
            write_webhook(c, &w, &sealer)?;
            if !w.enabled {
                // Disabling ends its queue (re-enabling doesn't bring it back: replay does).
                cancel_queued(c, id)?;
            }
            Ok(Some(w))
        })
        .await
    }

    async fn delete_webhook(&self, tenant_id: TenantId, id: WebhookId) -> Result<bool> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            let n = c.execute(
                &format!(
                    "UPDATE webhooks SET deleted_at = ?3, enabled = 0, updated_at = ?3
                     WHERE tenant_id = ?1 AND id = ?2 AND {}",
                    shared::NOT_DELETED
                ),
                params![tenant_id, id, now],
            )?;
            if n == 1 {
                cancel_queued(c, id)?;
                // Its statistics go with it (they describe a webhook nobody can see any more);
                // its log stays.
                c.execute(
                    "DELETE FROM webhook_hours WHERE webhook_id = ?1",
                    params![id],
                )?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn touch_webhooks(&self, ids: Vec<WebhookId>) -> Result<()> {
        self.write_relaxed(move |c| {
            let now = time::format(&time::steady_now());
            let mut touch =
                c.prepare_cached("UPDATE webhooks SET updated_at = ?2 WHERE id = ?1")?;
            for id in &ids {
                touch.execute(params![id, now])?;
            }
            Ok(())
        })
        .await
    }

    async fn stale_listen_webhooks(&self, stale: Duration) -> Result<Vec<(TenantId, WebhookId)>> {
        let cutoff = time::format(&(time::steady_now() - time::span(stale)));
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT tenant_id, id FROM webhooks
                      WHERE url LIKE 'listen:%' AND updated_at < ?1 AND {}",
                shared::NOT_DELETED
            ))?
            .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn webhook_live(&self, id: WebhookId) -> Result<bool> {
        self.read(move |c| {
            Ok(c.prepare_cached(&shared::webhook_live_sql("?1"))?
                .query_row(params![id], |r| r.get::<_, bool>(0))
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    async fn cancel_claimed(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            let mut stmt = c.prepare_cached(&shared::cancel_claimed_sql("?1", "?2", "?3"))?;
            let mut n = 0;
            for (id, token) in &leases {
                n += stmt.execute(params![id, token, now])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn cancel_delivery(&self, tenant_id: TenantId, id: DeliveryId) -> Result<CancelOutcome> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            let n = c
                .prepare_cached(&shared::cancel_one_sql("?1", "?2", "?3"))?
                .execute(params![tenant_id, id, now])?;
            let found = c
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.tenant_id = ?1 AND d.id = ?2"
                ))?
                .query_row(params![tenant_id, id], delivery_row)
                .optional()?;
            Ok(match found {
                None => CancelOutcome::NotFound,
                Some(d) if n == 1 => CancelOutcome::Cancelled(Box::new(d)),
                Some(d) => CancelOutcome::NotQueued(d.status),
            })
        })
        .await
    }

    async fn publish(
        &self,
        tenant_id: TenantId,
        events: Vec<Event>,
        idempotency: Option<(String, String)>,
        max_deliveries: usize,
    ) -> Result<PublishOutcome> {
        // Built here, not on the writer thread (see `EventRow`).
        let rows = {
            let redact = LogRedactor {
                paths: &self.log_redact,
                sealer: &self.sealer,
            };
            events
                .iter()
                .map(|e| EventRow::new(e, Some(&redact)))
                .collect::<Result<Vec<_>>>()?
        };
        self.write(move |c| {
            if let Some((key, hash)) = &idempotency {
                let seen: Option<(String, String)> = c
                    .query_row(
                        "SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2",
                        params![tenant_id, key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((seen_hash, response)) = seen {
                    return Ok(if &seen_hash == hash {
                        PublishOutcome::Replayed(serde_json::from_str(&response)?)
                    } else {
                        PublishOutcome::KeyReused
                    });
                }
            }
            let published = fan_out_rows(c, tenant_id, &events, &rows, max_deliveries)?;
            if let Some((key, hash)) = &idempotency {
                c.execute(
                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, response, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        tenant_id,
                        key,
                        hash,
                        serde_json::to_string(&published)?,
                        time::format(&time::steady_now())
                    ],
                )?;
            }
            Ok(PublishOutcome::Published(published))
        })
        .await
    }

    async fn get_event(&self, tenant_id: TenantId, id: EventId) -> Result<Option<Event>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {EVENT_COLS} FROM events WHERE tenant_id = ?1 AND id = ?2"),
                params![tenant_id, id],
                event_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_events(
        &self,
        tenant_id: TenantId,
        event_type: Option<String>,
        page: Page,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLS} FROM events WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                 AND (?3 IS NULL OR event_type = ?3) ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        page.before.map(|u| u.to_string()),
                        event_type,
                        page.limit as i64
                    ],
                    event_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
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
        let (paths, sealer) = (self.log_redact.clone(), self.sealer.clone());
        self.write(move |c| {
            let redact = LogRedactor {
                paths: &paths,
                sealer: &sealer,
            };
            insert_event(c, &EventRow::new(&event, Some(&redact))?)?;
            let now = time::format(&time::steady_now());
            c.execute(
                "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempt_count,
                 last_status_code, last_error, created_at, updated_at, format)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?9, ?10)",
                params![
                    attempt.delivery_id,
                    event.tenant_id,
                    webhook_id,
                    event.id,
                    event.event_type,
                    status.as_str(),
                    attempt.status_code,
                    attempt.error_kind,
                    now,
                    format.as_str()
                ],
            )?;
            insert_attempt(c, &attempt)?;
            let delivered = status == DeliveryStatus::Delivered;
            add_hours(c, &stats::hours([(webhook_id, &attempt, delivered)]))?;
            touch_last_attempt(c, webhook_id, attempt.started_at)
        })
        .await
    }

    async fn claim_due(&self, mut req: ClaimRequest) -> Result<Claim> {
        let (sealer, log_redact) = (self.sealer.clone(), self.log_redact.clone());
        let known_events = std::mem::take(&mut req.known_events);
        // The leases are taken on the writer thread; what the claimed deliveries need to be sent
        // (webhooks opened, events read and parsed, tenant names) is read afterwards on a reader
        // connection, so the one thread every write goes through doesn't spend its time on it.
        let rows = self.write_relaxed(move |c| {
            let token = LeaseToken::new();
            let now = time::steady_now();
            let now_s = time::format(&now);
            let until_s = time::format(&(now + time::span(req.lease)));
            let mut remaining = req.limit;
            let (full_tenants, full_webhooks) = req.saturated();
            let candidates: Vec<(WebhookId, TenantId)> = c
                .prepare_cached(
                    "SELECT w.id, w.tenant_id FROM webhooks w WHERE w.enabled = 1
                     AND w.tenant_id NOT IN (SELECT value FROM json_each(?2))
                     AND w.id NOT IN (SELECT value FROM json_each(?3)) AND (
                       EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id
                               AND d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?1)
                       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id
                               AND d.status = 'delivering' AND d.lease_until < ?1))",
                )?
                .query_map(
                    params![
                        &now_s,
                        serde_json::to_string(&full_tenants)?,
                        serde_json::to_string(&full_webhooks)?
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let turns = fairness::turns(candidates, req.round, req.caps());
            // Expired leases (a crashed node's work) go first, then due deliveries, each webhook
            // through its own index range so a huge backlog behind one endpoint costs the others nothing.
            // A reclaimed lease's try counts as an attempt (`abandoned`, see `abandon`), so the
            // attempt count advances here.
            let mut expired = c.prepare_cached(
                "UPDATE deliveries SET status = 'delivering', lease_owner = ?1, lease_until = ?2, updated_at = ?3,
                   attempt_count = attempt_count + 1, last_status_code = NULL, last_error = ?6
                 WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ?4 AND status = 'delivering'
                              AND lease_until < ?3 ORDER BY lease_until, id LIMIT ?5)
                 RETURNING id, tenant_id, webhook_id, event_id, item_index, attempt_count, format,
                   COALESCE(message_id, id)",
            )?;
            let mut due = c.prepare_cached(
                "UPDATE deliveries SET status = 'delivering', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                 WHERE id IN (SELECT d.id FROM deliveries d WHERE d.webhook_id = ?4
                   AND d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?3
                   AND (d.ordering_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM deliveries e WHERE e.webhook_id = d.webhook_id
                          AND e.ordering_key = d.ordering_key AND e.id < d.id
                          AND e.status IN ('pending', 'retrying', 'delivering')))
                   ORDER BY d.next_attempt_at LIMIT ?5)
                 RETURNING id, tenant_id, webhook_id, event_id, item_index, attempt_count, format,
                   COALESCE(message_id, id)",
            )?;
            let claimed_row = |r: &Row| {
                Ok(ClaimedDelivery {
                    id: r.get(0)?,
                    message_id: r.get(7)?,
                    tenant_id: r.get(1)?,
                    webhook_id: r.get(2)?,
                    event_id: r.get(3)?,
                    item_index: r.get(4)?,
                    format: shared::parse_format(&r.get::<_, String>(6)?).map_err(conversion)?,
                    attempt_number: r.get::<_, u32>(5)? + 1,
                    lease_token: token,
                })
            };
            let mut rows: Vec<ClaimedDelivery> = Vec::new();
            for turn in &turns {
                if remaining == 0 {
                    break;
                }
                let w = turn.webhook_id;
                let mut q = turn.quota.min(remaining);
                if q > 0 {
                    // The abandoned tries are logged before their leases are taken over.
                    let abandoned = abandon(c, w, &now_s, q)?;
                    if abandoned > 0 {
                        let max = max_attempts(c, w, req.default_max_attempts)?;
                        let last_error = format!("{}: {}", shared::ABANDONED, shared::ABANDONED_MESSAGE);
                        let reclaimed = expired
                            .query_map(params![token, until_s, now_s, w, q as i64, last_error], claimed_row)?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        // Every claim takes at least one slot, sent or failed, so the quota
                        // bounds this claim's work either way.
                        q -= reclaimed.len();
                        remaining -= reclaimed.len();
                        for d in reclaimed {
                            if (d.attempt_number as usize) > max {
                                fail_abandoned(c, d.id, &now_s)?;
                            } else {
                                rows.push(d);
                            }
                        }
                    }
                }
                if q > 0 {
                    let before = rows.len();
                    for row in due.query_map(params![token, until_s, now_s, w, q as i64], claimed_row)? {
                        rows.push(row?);
                    }
                    remaining -= rows.len() - before;
                }
            }
            Ok(rows)
        })
        .await?;
        if rows.is_empty() {
            return Ok(Claim::default());
        }
        let leases: Vec<(DeliveryId, LeaseToken)> =
            rows.iter().map(|d| (d.id, d.lease_token)).collect();
        let read = self
            .read(move |c| {
                // One snapshot for all of it, with the leased rows read again in it: an erasure
                // that ran between the lease and this read may have renumbered a delivery's object
                // (`item_index`) or deleted the delivery with its event. What is sent must match
                // the event as this snapshot holds it, as when both steps were one transaction;
                // a delivery no longer leased here is left out.
                let tx = c.unchecked_transaction()?;
                let c: &Connection = &tx;
                let mut leased = Vec::with_capacity(rows.len());
                {
                    let mut again = c.prepare_cached(
                        "SELECT item_index FROM deliveries
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'delivering'",
                    )?;
                    for mut d in rows {
                        let now: Option<Option<u32>> = again
                            .query_row(params![d.id, d.lease_token], |r| r.get(0))
                            .optional()?;
                        if let Some(item_index) = now {
                            d.item_index = item_index;
                            leased.push(d);
                        }
                    }
                }
                let rows = leased;
                let mut claim = Claim::default();
                use std::collections::hash_map::Entry;
                let mut unopenable = std::collections::HashSet::new();
                let (mut checked, mut stale) = (
                    std::collections::HashSet::new(),
                    std::collections::HashSet::new(),
                );
                for d in &rows {
                    if unopenable.contains(&d.webhook_id) {
                        continue;
                    }
                    if let Entry::Vacant(slot) = claim.webhooks.entry(d.webhook_id) {
                        // Opened once per webhook of the claim, however many deliveries it has.
                        // (Webhooks are only ever soft-deleted, so the row is there; one that
                        // were missing would be treated like one that can't be opened.)
                        let Some(raw) = c
                            .prepare_cached(&format!(
                                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ?1"
                            ))?
                            .query_row([d.webhook_id], webhook_row)
                            .optional()?
                        else {
                            unopenable.insert(d.webhook_id);
                            continue;
                        };
                        match sealer.unseal(raw) {
                            Ok(w) => {
                                slot.insert(Arc::new(w));
                            }
                            Err(e) => {
                                sealed::unopenable_in_claim(d.webhook_id, &e);
                                unopenable.insert(d.webhook_id);
                                continue;
                            }
                        }
                    }
                    // An event the node holds is read again only if it was rewritten since.
                    let held = match known_events.get(&d.event_id) {
                        Some(rev) if checked.insert(d.event_id) => {
                            let now: Option<i64> = c
                                .prepare_cached("SELECT revision FROM events WHERE id = ?1")?
                                .query_row([d.event_id], |r| r.get(0))
                                .optional()?;
                            if now != Some(*rev) {
                                stale.insert(d.event_id);
                            }
                            now == Some(*rev)
                        }
                        Some(_) => !stale.contains(&d.event_id),
                        None => false,
                    };
                    if held {
                        // The node has it already.
                    } else if let Entry::Vacant(slot) = claim.events.entry(d.event_id) {
                        // Its deliveries would have gone with it (see above); defensive.
                        let Some((mut e, sealed, revision)) = c
                            .prepare_cached(&format!(
                                "SELECT {EVENT_COLS}, redacted, revision FROM events WHERE id = ?1"
                            ))?
                            .query_row([d.event_id], |r| {
                                Ok((
                                    event_row(r)?,
                                    r.get::<_, Option<String>>(13)?,
                                    r.get::<_, i64>(14)?,
                                ))
                            })
                            .optional()?
                        else {
                            continue;
                        };
                        // For sending: the receiver gets the fields the log doesn't keep.
                        LogRedactor {
                            paths: &log_redact,
                            sealer: &sealer,
                        }
                        .restore(&mut e, sealed.as_deref());
                        claim.revisions.insert(d.event_id, revision);
                        slot.insert(Arc::new(e));
                    }
                    if let Entry::Vacant(slot) = claim.tenants.entry(d.tenant_id) {
                        let name: String = c
                            .prepare_cached("SELECT name FROM tenants WHERE id = ?1")?
                            .query_row([d.tenant_id], |r| r.get(0))?;
                        slot.insert(name);
                    }
                }
                claim.deliveries = rows;
                Ok(claim)
            })
            .await;
        if read.is_err() {
            // Nothing of this claim will be sent: give the leases back now rather than at expiry
            // (which would log an abandoned try for each).
            let _ = self.release(leases).await;
        }
        read
    }

    async fn record_attempts(
        &self,
        mut results: Vec<AttemptResult>,
        disable: DisablePolicy,
    ) -> Result<Vec<bool>> {
        for r in &mut results {
            shared::storable_attempt(&mut r.attempt);
        }
        // Built here, not on the writer thread (see `EventRow`).
        let rows = results
            .iter()
            .map(|r| AttemptRow::new(&r.attempt))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |c| {
            let mut applied = Vec::with_capacity(results.len());
            for (r, row) in results.iter().zip(&rows) {
                let (status, next_at) = shared::outcome(r.next);
                let a = &r.attempt;
                let n = c
                    .prepare_cached(
                        "UPDATE deliveries SET status = ?1, attempt_count = attempt_count + 1, next_attempt_at = ?2,
                         lease_owner = NULL, lease_until = NULL, last_status_code = ?3, last_error = ?4, updated_at = ?5
                         WHERE id = ?6 AND lease_owner = ?7 AND status = 'delivering'",
                    )?
                    .execute(params![
                        status.as_str(),
                        next_at.map(|wait| time::format(&(time::steady_now() + time::span(wait)))),
                        a.status_code,
                        shared::last_error(a),
                        time::format(&time::steady_now()),
                        r.delivery_id,
                        r.lease_token
                    ])?;
                if n == 0 {
                    if !delivery_exists(c, r.delivery_id)? {
                        // Erased meanwhile: nothing of it may be stored again.
                        applied.push(false);
                        continue;
                    }
                    // Taken over meanwhile: logged as stale, counted nowhere else.
                    let mut stale = a.clone();
                    shared::mark_stale(&mut stale);
                    insert_attempt(c, &stale)?;
                    applied.push(false);
                    continue;
                }
                insert_attempt_row(c, row)?;
                applied.push(true);
                if r.next == crate::model::NextState::Failed {
                    exhausted_of(c, r.delivery_id, a.error_kind.clone())?;
                }
            }
            let kept: Vec<&AttemptResult> =
                results.iter().zip(&applied).filter(|(_, ok)| **ok).map(|(r, _)| r).collect();
            for d in health::deltas(kept.iter().copied()) {
                apply_health(c, &d, disable)?;
            }
            add_hours(c, &stats::hours_of_results(kept))?;
            Ok(applied)
        })
        .await
    }

    async fn release(&self, leases: Vec<(DeliveryId, LeaseToken)>) -> Result<()> {
        self.write_relaxed(move |c| {
            let now = time::format(&time::steady_now());
            let mut stmt = c.prepare_cached(
                "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
                 next_attempt_at = ?1, lease_owner = NULL, lease_until = NULL, updated_at = ?1
                 WHERE id = ?2 AND lease_owner = ?3 AND status = 'delivering'",
            )?;
            for (id, token) in &leases {
                stmt.execute(params![now, id, token])?;
            }
            Ok(())
        })
        .await
    }

    async fn renew_leases(
        &self,
        leases: Vec<(DeliveryId, LeaseToken)>,
        lease: Duration,
    ) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        self.write_relaxed(move |c| {
            let until = time::format(&(time::steady_now() + time::span(lease)));
            let mut stmt = c.prepare_cached(
                "UPDATE deliveries SET lease_until = ?1
                 WHERE id = ?2 AND lease_owner = ?3 AND status = 'delivering'",
            )?;
            let mut n = 0;
            for (id, token) in &leases {
                n += stmt.execute(params![until, id, token])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn next_due_in(&self) -> Result<Option<Duration>> {
        let due_in = self.read(next_due).await?;
        Ok(due_in.map(|d| d.to_std().unwrap_or_default()))
    }

    async fn travel(&self, by: Duration) -> Result<()> {
        let by = shared::millis(by);
        self.write(move |c| {
            // Text timestamps: shifted through julianday and printed back in the stored form.
            for sql in [
                "UPDATE deliveries SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', next_attempt_at, ?1)
                 WHERE next_attempt_at IS NOT NULL",
                "UPDATE deliveries SET lease_until = strftime('%Y-%m-%dT%H:%M:%fZ', lease_until, ?1)
                 WHERE lease_until IS NOT NULL",
                "UPDATE jobs SET lease_until = strftime('%Y-%m-%dT%H:%M:%fZ', lease_until, ?1)
                 WHERE lease_until IS NOT NULL",
            ] {
                c.execute(sql, [format!("-{:.3} seconds", by as f64 / 1000.0)])?;
            }
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: TenantId,
        filter: DeliveryFilter,
        page: Page,
    ) -> Result<Vec<Delivery>> {
        self.read(move |c| {
            let search = shared::contains(filter.search.as_deref());
            // A search term that names an event in any spelling also matches that event exactly.
            let search_type = filter.search.as_deref().and_then(hookline_core::catalog::event_name);
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.tenant_id = ?1 AND (?2 IS NULL OR d.id < ?2)
                   AND (?3 IS NULL OR d.webhook_id = ?3)
                   AND (?4 IS NULL OR d.status = ?4)
                   AND (?5 IS NULL OR d.event_type = ?5)
                   AND (?6 IS NULL OR d.created_at >= ?6)
                   AND (?7 IS NULL OR d.created_at < ?7)
                   AND (?8 IS NULL OR w.url LIKE ?8 ESCAPE '\\' OR d.event_type LIKE ?8 ESCAPE '\\' OR d.event_type = ?9)
                   AND (?11 IS NULL OR d.webhook_id IN (SELECT value FROM json_each(?11)))
                 ORDER BY d.id DESC LIMIT ?10"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        page.before.map(|u| u.to_string()),
                        filter.webhook_id.map(|u| u.to_string()),
                        filter.status.map(DeliveryStatus::as_str),
                        filter.event_type,
                        filter.since.as_ref().map(time::format),
                        filter.until.as_ref().map(time::format),
                        search,
                        search_type,
                        page.limit as i64,
                        ids_json(filter.webhook_ids.as_deref()),
                    ],
                    delivery_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn resends_of(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Vec<Delivery>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    // Without statistics the planner would rather walk the tenant's index in id
                    // order (no sort) past every delivery: name the partial index.
                    "SELECT {DELIVERY_COLS} FROM deliveries d INDEXED BY deliveries_resent_from
                     JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.resent_from = ?1 AND d.tenant_id = ?2 ORDER BY d.id DESC LIMIT 100"
                ))?
                .query_map(params![id, tenant_id], delivery_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn get_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>> {
        self.read(move |c| {
            let Some(d) = c
                .query_row(
                    &format!(
                        "SELECT {DELIVERY_COLS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                         WHERE d.tenant_id = ?1 AND d.id = ?2"
                    ),
                    params![tenant_id, id],
                    delivery_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLS} FROM attempts WHERE delivery_id = ?1 ORDER BY attempt_number"
            ))?;
            let attempts = stmt
                .query_map([id], attempt_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((d, attempts)))
        })
        .await
    }

    async fn resend(&self, tenant_id: TenantId, id: DeliveryId) -> Result<Option<DeliveryId>> {
        self.write(move |c| {
            let copy = shared::copies([id]);
            let made = copy_deliveries(c, tenant_id, &copy)?;
            Ok((made == 1).then_some(copy[0].id))
        })
        .await
    }

    async fn replay(
        &self,
        tenant_id: TenantId,
        webhook_id: WebhookId,
        filter: ReplayFilter,
        dry_run: bool,
    ) -> Result<u64> {
        self.write(move |c| {
            let statuses = serde_json::to_string(
                &filter.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            )?;
            let scope = "FROM deliveries WHERE tenant_id = ?1 AND webhook_id = ?2 AND created_at >= ?3
                 AND (?4 IS NULL OR created_at < ?4) AND status IN (SELECT value FROM json_each(?5))";
            let args = params![
                tenant_id,
                webhook_id,
                time::format(&filter.since),
                filter.until.as_ref().map(time::format),
                statuses
            ];
            if dry_run {
                let n: i64 = c.query_row(&format!("SELECT COUNT(*) {scope}"), args, |r| r.get(0))?;
                return Ok(n as u64);
            }
            let originals: Vec<DeliveryId> = c
                .prepare(&format!("SELECT id {scope} ORDER BY id"))?
                .query_map(args, |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            copy_deliveries(c, tenant_id, &shared::copies(originals))
        })
        .await
    }

    async fn prune(&self, before: Timestamp, keys_before: Timestamp) -> Result<Pruned> {
        let cutoff = time::format(&before);
        let mut pruned = Pruned::default();
        // Children before parents, each in bounded chunks (one write job per chunk) so the writer
        // stays responsive between them.
        for (sql, count) in [
            (shared::PRUNE_ATTEMPTS, &mut pruned.attempts),
            (shared::PRUNE_DELIVERIES, &mut pruned.deliveries),
            (shared::PRUNE_EVENTS, &mut pruned.events),
        ] {
            let sql = shared::prune_sql(sql, "?1", "?2");
            loop {
                let (sql, cutoff) = (sql.clone(), cutoff.clone());
                let n = self
                    .write(move |c| {
                        let n = c.execute(&sql, params![cutoff, PRUNE_CHUNK as i64])?;
                        Ok(n as u64)
                    })
                    .await?;
                *count += n;
                if n < PRUNE_CHUNK {
                    break;
                }
            }
        }
        self.write(move |c| {
            c.execute(
                "DELETE FROM webhook_hours WHERE hour < ?1",
                [time::format(&stats::retention_cutoff(before))],
            )?;
            c.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?1",
                [time::format(&keys_before)],
            )?;
            c.execute(redacted::DROP_SPENT_SQL, [])?;
            Ok(())
        })
        .await?;
        Ok(pruned)
    }

    async fn backlog(&self, terminal: bool) -> Result<Backlog> {
        self.read(move |c| {
            let mut counts = Vec::new();
            for sql in shared::backlog_queries(terminal) {
                let rows = c
                    .prepare_cached(sql)?
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                counts.extend(rows);
            }
            shared::backlog(counts, next_due(c)?)
        })
        .await
    }

    async fn mutate_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        ids: Vec<String>,
        plan: PlanFn,
    ) -> Result<(Vec<Published>, Vec<RecordRow>)> {
        let kind = kind.to_string();
        let (paths, sealer) = (self.log_redact.clone(), self.sealer.clone());
        self.write(move |c| {
            let mut rows = Vec::with_capacity(ids.len());
            {
                let mut get = c.prepare_cached(&format!(
                    "SELECT {RECORD_COLS} FROM entities WHERE tenant_id = ?1 AND entity_type = ?2 AND id = ?3"
                ))?;
                for id in &ids {
                    rows.push(get.query_row(params![tenant_id, kind, id], record_row).optional()?);
                }
            }
            let plan = plan(rows).map_err(StoreError::Rejected)?;
            let now = time::format(&time::steady_now());
            let mut written = Vec::with_capacity(plan.upserts.len());
            {
                let mut upsert = c.prepare_cached(
                    "INSERT INTO entities (tenant_id, entity_type, id, version, data, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?5)
                     ON CONFLICT (tenant_id, entity_type, id) DO UPDATE
                       SET version = version + 1, data = excluded.data, updated_at = excluded.updated_at
                     RETURNING version",
                )?;
                for (id, doc) in plan.upserts {
                    let version: u64 = upsert.query_row(params![tenant_id, kind, id, doc.to_string(), now], |r| r.get(0))?;
                    written.push(RecordRow { tenant_id, kind: kind.clone(), id, version, data: doc });
                }
                let mut delete = c.prepare_cached("DELETE FROM entities WHERE tenant_id = ?1 AND entity_type = ?2 AND id = ?3")?;
                for id in &plan.deletes {
                    delete.execute(params![tenant_id, kind, id])?;
                }
            }
            let redact = LogRedactor {
                paths: &paths,
                sealer: &sealer,
            };
            let published = fan_out(
                c,
                tenant_id,
                &plan.events,
                plan.max_deliveries,
                Some(&redact),
            )?;
            if let Some(step) = &plan.job {
                let moved = c
                    .prepare_cached(&jobs::advance_sql(|i| format!("?{i}")))?
                    .execute(params![
                        step.id,
                        step.token,
                        time::format(&(time::steady_now() + time::span(step.lease))),
                        step.position as i64,
                        step.done as i64,
                        serde_json::to_string(&step.result)?,
                        step.finished,
                        time::format(&time::steady_now()),
                    ])?;
                if moved == 0 {
                    return Err(jobs::job_lost(step.id));
                }
            }
            Ok((published, written))
        })
        .await
    }

    async fn get_record(
        &self,
        tenant_id: TenantId,
        kind: &str,
        id: &str,
    ) -> Result<Option<RecordRow>> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {RECORD_COLS} FROM entities WHERE tenant_id = ?1 AND entity_type = ?2 AND id = ?3"
            ))?
            .query_row(params![tenant_id, kind, id], record_row)
            .optional()?)
        })
        .await
    }

    async fn list_records(
        &self,
        tenant_id: TenantId,
        kind: &str,
        filter: RecordFilter,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<RecordRow>> {
        let kind = kind.to_string();
        self.read(move |c| {
            let search = shared::contains(filter.search.as_deref());
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RECORD_COLS} FROM entities
                 WHERE tenant_id = ?1 AND entity_type = ?2 AND (?3 IS NULL OR id < ?3)
                   AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(data, '$.tags') t
                                              WHERE json_extract(t.value, '$.name') = ?4))
                   AND (?5 IS NULL OR updated_at >= ?5)
                   AND (?6 IS NULL
                        OR (coalesce(json_extract(data, '$.first_name'), '') || ' ' ||
                            coalesce(json_extract(data, '$.last_name'), '')) LIKE ?6 ESCAPE '\\'
                        OR json_extract(data, '$.company') LIKE ?6 ESCAPE '\\'
                        OR json_extract(data, '$.primary_email') LIKE ?6 ESCAPE '\\'
                        OR json_extract(data, '$.name') LIKE ?6 ESCAPE '\\'
                        OR json_extract(data, '$.title') LIKE ?6 ESCAPE '\\')
                 ORDER BY id DESC LIMIT ?7"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        kind,
                        before,
                        filter.tag,
                        filter.updated_since.as_ref().map(time::format),
                        search,
                        limit as i64
                    ],
                    record_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_console_session(&self, session: &ConsoleSession) -> Result<()> {
        let s = session.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO console_sessions ({SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    s.id_hash,
                    s.tenant_id,
                    s.key_id,
                    s.grant_id.map(|g| g.to_string()),
                    s.csrf,
                    time::format(&s.created_at),
                    time::format(&s.last_seen_at),
                    time::format(&s.expires_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn console_session(&self, id_hash: &str) -> Result<Option<FoundSession>> {
        let id_hash = id_hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&shared::console_session_sql("?1"))?
                .query_row([id_hash], |r| {
                    let session = session_row(r)?;
                    let grant = match session.grant_id {
                        Some(_) => Some(grant_row_at(r, 8)?),
                        None => None,
                    };
                    let key = match r.get::<_, Option<String>>(shared::SESSION_KEY_AT)? {
                        Some(_) => Some(key_row_at(r, shared::SESSION_KEY_AT)?),
                        None => None,
                    };
                    Ok(FoundSession {
                        session,
                        grant,
                        key,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn touch_console_session(&self, id_hash: &str, at: Timestamp) -> Result<()> {
        let id_hash = id_hash.to_string();
        // Losing a touch to a power cut only makes a session look idle a little sooner.
        self.write_relaxed(move |c| {
            c.prepare_cached(
                "UPDATE console_sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2",
            )?
            .execute(params![id_hash, time::format(&at)])?;
            Ok(())
        })
        .await
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM console_sessions WHERE id_hash = ?1", [id_hash])?;
            Ok(())
        })
        .await
    }

    async fn prune_console_sessions(&self, now: Timestamp, idle_before: Timestamp) -> Result<u64> {
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1 OR last_seen_at < ?2",
                params![time::format(&now), time::format(&idle_before)],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn insert_portal_grant(&self, grant: &PortalGrant) -> Result<()> {
        let g = grant.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO portal_grants ({GRANT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    g.id.to_string(),
                    g.tenant_id,
                    g.webhook_ids.as_ref().map(serde_json::to_string).transpose()?,
                    serde_json::to_string(&g.capabilities)?,
                    g.code_hash,
                    time::format(&g.created_at),
                    time::format(&g.expires_at),
                    g.revoked_at.as_ref().map(time::format)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn redeem_portal_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<PortalGrant>> {
        let code_hash = code_hash.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(&format!(
                "UPDATE portal_grants SET code_hash = NULL
                 WHERE code_hash = ?1 AND revoked_at IS NULL AND expires_at > ?2
                 RETURNING {GRANT_COLS}"
            ))?
            .query_row(params![code_hash, time::format(&now)], |r| {
                grant_row_at(r, 0)
            })
            .optional()?)
        })
        .await
    }

    async fn revoke_portal_grants(
        &self,
        tenant_id: TenantId,
        id: Option<uuid::Uuid>,
        now: Timestamp,
    ) -> Result<u64> {
        self.write(move |c| {
            let revoked: Vec<String> = c
                .prepare_cached(
                    "UPDATE portal_grants SET revoked_at = ?2
                     WHERE tenant_id = ?1 AND revoked_at IS NULL AND (?3 IS NULL OR id = ?3)
                     RETURNING id",
                )?
                .query_map(
                    params![tenant_id, time::format(&now), id.map(|u| u.to_string())],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut end = c.prepare_cached("DELETE FROM console_sessions WHERE grant_id = ?1")?;
            for grant in &revoked {
                end.execute([grant])?;
            }
            Ok(revoked.len() as u64)
        })
        .await
    }

    async fn add_webhook_to_grant(
        &self,
        tenant_id: TenantId,
        grant_id: uuid::Uuid,
        webhook_id: WebhookId,
    ) -> Result<()> {
        // On the writer thread the read and the write below can't interleave with another write.
        self.write(move |c| {
            let grant = grant_id.to_string();
            let Some(list) = c
                .query_row(
                    "SELECT webhook_ids FROM portal_grants
                     WHERE tenant_id = ?1 AND id = ?2 AND revoked_at IS NULL",
                    params![tenant_id, grant],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()?
            else {
                return Ok(());
            };
            let owned: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = ?1 AND id = ?2
                                AND deleted_at IS NULL)",
                params![tenant_id, webhook_id],
                |r| r.get(0),
            )?;
            if !owned {
                return Ok(());
            }
            let list: Option<Vec<WebhookId>> =
                list.map(|s| serde_json::from_str(&s)).transpose()?;
            if let Some(new) = shared::grant_with_webhook(list, webhook_id) {
                c.execute(
                    "UPDATE portal_grants SET webhook_ids = ?2 WHERE id = ?1",
                    params![grant, serde_json::to_string(&new)?],
                )?;
            }
            Ok(())
        })
        .await
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
        self.read(move |c| {
            let ids = serde_json::to_string(&webhook_ids)?;
            let since = time::format(&hookline_core::stats::hour_of(since));
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {} FROM webhook_hours h JOIN webhooks w ON w.id = h.webhook_id
                     WHERE w.tenant_id = ?1 AND h.webhook_id IN (SELECT value FROM json_each(?2))
                       AND h.hour >= ?3
                     ORDER BY h.webhook_id, h.hour",
                    shared::prefixed("h", &HOUR_COLS)
                ))?
                .query_map(params![tenant_id, ids, since], hour_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_replay_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: ReplayJob,
        total: u64,
    ) -> Result<jobs::Job> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            c.execute(
                "INSERT INTO jobs (id, tenant_id, kind, status, params, total, done, created_at, updated_at)
                 VALUES (?1, ?2, 'replay', 'queued', ?3, ?4, 0, ?5, ?5)",
                params![id, tenant_id, serde_json::to_string(&params)?, total as i64, now],
            )?;
            job_by_id(c, id)
        })
        .await
    }

    async fn insert_import_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        params: serde_json::Value,
        result: serde_json::Value,
        items: Vec<serde_json::Value>,
    ) -> Result<jobs::Job> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            c.execute(
                "INSERT INTO jobs (id, tenant_id, kind, status, params, result, total, done, created_at, updated_at)
                 VALUES (?1, ?2, 'import', 'queued', ?3, ?4, ?5, 0, ?6, ?6)",
                params![
                    id,
                    tenant_id,
                    serde_json::to_string(&params)?,
                    serde_json::to_string(&result)?,
                    items.len() as i64,
                    now
                ],
            )?;
            let mut insert = c.prepare_cached(
                "INSERT INTO job_items (job_id, position, item) VALUES (?1, ?2, ?3)",
            )?;
            for (i, item) in items.iter().enumerate() {
                insert.execute(params![id, i as i64, serde_json::to_string(item)?])?;
            }
            job_by_id(c, id)
        })
        .await
    }

    async fn job_items(
        &self,
        id: JobId,
        position: u64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT item FROM job_items WHERE job_id = ?1 AND position >= ?2
                     ORDER BY position LIMIT ?3",
                )?
                .query_map(params![id, position as i64, limit as i64], |r| {
                    json(r.get(0)?)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn get_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<jobs::Job>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = ?1 AND id = ?2"
            ))?
            .query_row(params![tenant_id, id], job_row)
            .optional()?)
        })
        .await
    }

    async fn list_jobs(
        &self,
        tenant_id: TenantId,
        kind: Option<jobs::JobKind>,
        page: Page,
    ) -> Result<Vec<jobs::Job>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                       AND (?4 IS NULL OR kind = ?4)
                     ORDER BY id DESC LIMIT ?3"
                ))?
                .query_map(
                    params![
                        tenant_id,
                        page.before.map(|u| u.to_string()),
                        page.limit as i64,
                        kind.map(jobs::JobKind::as_str)
                    ],
                    job_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn cancel_job(&self, tenant_id: TenantId, id: JobId) -> Result<Option<jobs::Job>> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            c.execute(
                "UPDATE jobs SET status = 'cancelled', lease_owner = NULL, lease_until = NULL,
                 updated_at = ?3, finished_at = ?3
                 WHERE tenant_id = ?1 AND id = ?2 AND status IN ('queued', 'running')",
                params![tenant_id, id, now],
            )?;
            Ok(c.prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = ?1 AND id = ?2"
            ))?
            .query_row(params![tenant_id, id], job_row)
            .optional()?)
        })
        .await
    }

    async fn claim_job(&self, token: LeaseToken, lease: Duration) -> Result<Option<jobs::Job>> {
        self.write(move |c| {
            let now = time::steady_now();
            let now_s = time::format(&now);
            let lease_until = now + time::span(lease);
            let id: Option<JobId> = c
                .query_row(
                    "UPDATE jobs SET status = 'running', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                     WHERE id = (SELECT id FROM jobs WHERE status = 'queued'
                                    OR (status = 'running' AND lease_until < ?3)
                                 ORDER BY id LIMIT 1)
                     RETURNING id",
                    params![token, time::format(&lease_until), now_s],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(|id| job_by_id(c, id)).transpose()
        })
        .await
    }

    async fn replay_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<jobs::Job> {
        self.write(move |c| {
            let (tenant_id, params, cursor): (TenantId, String, Option<String>) = match c
                .query_row(
                    "SELECT tenant_id, params, cursor FROM jobs
                     WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
                    params![id, token],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?
            {
                Some(held) => held,
                None => return job_by_id(c, id),
            };
            let job: ReplayJob = serde_json::from_str(&params)?;
            let originals: Vec<DeliveryId> = c
                .prepare_cached(
                    "SELECT id FROM deliveries WHERE webhook_id = ?1 AND tenant_id = ?2
                       AND id < ?3 AND (?4 IS NULL OR id > ?4)
                       AND created_at >= ?5 AND (?6 IS NULL OR created_at < ?6)
                       AND status IN (SELECT value FROM json_each(?7))
                     ORDER BY id LIMIT ?8",
                )?
                .query_map(
                    params![
                        job.webhook_id,
                        tenant_id,
                        job.before,
                        cursor,
                        time::format(&job.since),
                        job.until.as_ref().map(time::format),
                        job.statuses_json(),
                        limit as i64
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let copied = copy_deliveries(c, tenant_id, &shared::copies(originals.iter().copied()))?;
            let finished = originals.len() < limit;
            let now = time::steady_now();
            let lease_until = now + time::span(lease);
            let now = time::format(&now);
            c.execute(
                "UPDATE jobs SET done = done + ?2, cursor = COALESCE(?3, cursor), lease_until = ?4,
                 updated_at = ?5, status = CASE WHEN ?6 THEN 'succeeded' ELSE status END,
                 finished_at = CASE WHEN ?6 THEN ?5 ELSE finished_at END,
                 lease_owner = CASE WHEN ?6 THEN NULL ELSE lease_owner END
                 WHERE id = ?1",
                params![
                    id,
                    copied as i64,
                    originals.last(),
                    time::format(&lease_until),
                    now,
                    finished
                ],
            )?;
            job_by_id(c, id)
        })
        .await
    }

    async fn insert_erasure_job(
        &self,
        id: JobId,
        tenant_id: TenantId,
        target: Target,
    ) -> Result<jobs::Job> {
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            c.execute(
                "INSERT INTO jobs (id, tenant_id, kind, status, params, result, done, created_at, updated_at)
                 VALUES (?1, ?2, 'erasure', 'queued', ?3, ?4, 0, ?5, ?5)",
                params![
                    id,
                    tenant_id,
                    serde_json::to_string(&target)?,
                    serde_json::to_string(&Erased::default().to_value())?,
                    now
                ],
            )?;
            job_by_id(c, id)
        })
        .await
    }

    async fn erasure_step(
        &self,
        id: JobId,
        token: LeaseToken,
        lease: Duration,
        limit: usize,
    ) -> Result<jobs::Job> {
        let sealer = self.sealer.clone();
        let job = self
            // What the step deletes or rewrites is zeroed as it goes (`secure_delete`, see `open_conn`).
            .write(move |c| erasure_step(c, &sealer, id, token, lease, limit))
            .await?;
        if job.status == jobs::JobStatus::Succeeded {
            // The WAL still holds the pages as they were: copy the new ones into the file and
            // empty it (a busy reader only delays this to a later checkpoint).
            let checkpoint = self
                .read(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
                .await;
            if let Err(e) = checkpoint {
                tracing::warn!(error = %e, "checkpoint after an erasure failed");
            }
        }
        Ok(job)
    }

    async fn fail_job(&self, id: JobId, token: LeaseToken, error: &str) -> Result<()> {
        let error = error.to_string();
        self.write(move |c| {
            let now = time::format(&time::steady_now());
            c.execute(
                "UPDATE jobs SET status = 'failed', error = ?3, lease_owner = NULL, lease_until = NULL,
                 updated_at = ?4, finished_at = ?4
                 WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
                params![id, token, error, now],
            )?;
            Ok(())
        })
        .await
    }

    // An unanswered claim is stored with an empty response: the column is NOT NULL here (publish
    // writes its answer in the same transaction as the key), and no answer is ever empty.
    async fn claim_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        request_hash: &str,
    ) -> Result<KeyClaim> {
        let (key, hash) = (key.to_string(), request_hash.to_string());
        self.write(move |c| {
            let inserted = c.execute(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, response, created_at)
                 VALUES (?1, ?2, ?3, '', ?4) ON CONFLICT DO NOTHING",
                params![tenant_id, key, hash, time::format(&time::steady_now())],
            )?;
            if inserted == 1 {
                return Ok(KeyClaim::Claimed);
            }
            let (seen, response): (String, String) = c.query_row(
                "SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2",
                params![tenant_id, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(match (seen == hash, response.is_empty()) {
                (false, _) => KeyClaim::Reused,
                (true, true) => KeyClaim::InProgress,
                (true, false) => KeyClaim::Answered(response),
            })
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        tenant_id: TenantId,
        key: &str,
        response: &str,
    ) -> Result<()> {
        let (key, response) = (key.to_string(), response.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE idempotency_keys SET response = ?3 WHERE tenant_id = ?1 AND key = ?2",
                params![tenant_id, key, response],
            )?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency_key(&self, tenant_id: TenantId, key: &str) -> Result<()> {
        let key = key.to_string();
        self.write(move |c| {
            c.execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2 AND response = ''",
                params![tenant_id, key],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), 1, Synchronous::Normal).unwrap();
        store.migrate().await.unwrap();
        let err = store
            .write(|c| -> Result<()> {
                c.execute_batch("CREATE TABLE half (x INTEGER)")?;
                panic!("a bug in a write");
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Internal(m) if m.contains("a bug in a write")),
            "{err:?}"
        );
        // Its changes were rolled back, and later writes go through.
        let t = store.create_tenant("after").await.unwrap();
        assert_eq!(
            store.tenant_name(t.id).await.unwrap().as_deref(),
            Some("after")
        );
        let half: i64 = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(half, 0);
        assert!(store.broken().is_none());
        store.ping().await.unwrap();
    }
}
