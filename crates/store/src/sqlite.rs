//! The embedded SQLite store: one file, WAL, a single writer thread with group commit, and a small
//! pool of reader connections.
//!
//! Why a writer thread: SQLite allows one writer at a time, and on ordinary disks each durable
//! commit costs an fsync (a few hundred per second at best). The writer drains every write job that
//! is queued, runs each inside its own SAVEPOINT (so one failing job can't spoil its neighbours), and
//! commits them together: callers still get their answer only after their data is on disk, but many
//! callers share one fsync. Readers never wait for the writer thanks to WAL.

use crate::{ApiKey, Page, Result, Store, StoreError, Tenant, Webhook};
use async_trait::async_trait;
use hookline_core::retry::RetrySchedule;
use hookline_core::time::{self, Timestamp};
use hookline_core::webhook::{Format, Ordering};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

const MIGRATIONS: &[&str] = &[include_str!("../migrations/sqlite/0001_init.sql")];

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
}

struct FnJob<T, F> {
    f: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Finish) {
        let FnJob { f, reply } = *self;
        let res = f(conn);
        let ok = res.is_ok();
        (
            ok,
            Box::new(move |commit| drop(reply.send(commit.and(res)))),
        )
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::UnboundedSender<WriteJob>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
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
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("hookline-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(|e| StoreError::Internal(format!("can't start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                reader_permits: Semaphore::new(reader_conns.len()),
                readers: Mutex::new(reader_conns),
            }),
        })
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
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(FnJob { f, reply: tx });
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

fn open_conn(path: &Path, sync: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!(
            "can't open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;"
    ))?;
    Ok(conn)
}

fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut finishers = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            for job in batch.drain(..) {
                job.fail(clone_err(&err));
            }
            continue;
        }
        for job in batch.drain(..) {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                job.fail(StoreError::from(e));
                continue;
            }
            let (ok, finish) = job.run(&conn);
            let end = if ok {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(e) = conn.execute_batch(end) {
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
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
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

fn uuid(s: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn json<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<T> {
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, msg.into())
}

fn tenant_row(r: &Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: uuid(r.get(0)?)?,
        name: r.get(1)?,
        created_at: ts(r.get(2)?)?,
    })
}

const KEY_COLS: &str = "id, tenant_id, name, prefix, key_hash, default_user_id, created_at";

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: uuid(r.get(0)?)?,
        tenant_id: uuid(r.get(1)?)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        key_hash: r.get(4)?,
        default_user_id: r.get(5)?,
        created_at: ts(r.get(6)?)?,
    })
}

const WEBHOOK_COLS: &str = "id, tenant_id, name, description, url, events, secret, previous_secret, \
    previous_secret_expires_at, enabled, disabled_reason, format, headers, retry_schedule, rate_limit, \
    ordering, consecutive_failures, failing_since, created_at, updated_at";

fn webhook_row(r: &Row) -> rusqlite::Result<Webhook> {
    let format: String = r.get(11)?;
    let ordering: String = r.get(15)?;
    let schedule: Option<String> = r.get(13)?;
    Ok(Webhook {
        id: uuid(r.get(0)?)?,
        tenant_id: uuid(r.get(1)?)?,
        name: r.get(2)?,
        description: r.get(3)?,
        url: r.get(4)?,
        events: json(r.get(5)?)?,
        secret: r.get(6)?,
        previous_secret: r.get(7)?,
        previous_secret_expires_at: opt_ts(r.get(8)?)?,
        enabled: r.get(9)?,
        disabled_reason: r.get(10)?,
        format: Format::parse(&format).ok_or_else(|| conversion(format!("bad format {format}")))?,
        headers: json(r.get(12)?)?,
        retry_schedule: schedule
            .map(|s| {
                let v: serde_json::Value = json(s)?;
                RetrySchedule::from_json(&v).map_err(conversion)
            })
            .transpose()?,
        rate_limit: r.get(14)?,
        ordering: Ordering::parse(&ordering)
            .ok_or_else(|| conversion(format!("bad ordering {ordering}")))?,
        consecutive_failures: r.get(16)?,
        failing_since: opt_ts(r.get(17)?)?,
        created_at: ts(r.get(18)?)?,
        updated_at: ts(r.get(19)?)?,
    })
}

/// Values bound for an insert or full update, in `WEBHOOK_COLS` order.
fn webhook_params(w: &Webhook) -> Result<Vec<Box<dyn rusqlite::ToSql + Send>>> {
    Ok(vec![
        Box::new(w.id.to_string()),
        Box::new(w.tenant_id.to_string()),
        Box::new(w.name.clone()),
        Box::new(w.description.clone()),
        Box::new(w.url.clone()),
        Box::new(serde_json::to_string(&w.events)?),
        Box::new(w.secret.clone()),
        Box::new(w.previous_secret.clone()),
        Box::new(w.previous_secret_expires_at.as_ref().map(time::format)),
        Box::new(w.enabled),
        Box::new(w.disabled_reason.clone()),
        Box::new(w.format.as_str()),
        Box::new(serde_json::to_string(&w.headers)?),
        Box::new(w.retry_schedule.as_ref().map(|s| s.to_json().to_string())),
        Box::new(w.rate_limit),
        Box::new(w.ordering.as_str()),
        Box::new(w.consecutive_failures as i64),
        Box::new(w.failing_since.as_ref().map(time::format)),
        Box::new(time::format(&w.created_at)),
        Box::new(time::format(&w.updated_at)),
    ])
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        self.write(|conn| {
            let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let known = MIGRATIONS.len() as i64;
            if current > known {
                return Err(StoreError::Internal(format!(
                    "database schema version {current} is newer than this binary knows ({known}); upgrade Hookline"
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                conn.execute_batch(sql)?;
                conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
                tracing::info!(version = i + 1, "applied SQLite migration");
            }
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| {
            Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
        .await
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: hookline_core::ids::new_id(),
            name: name.to_string(),
            created_at: time::now(),
        };
        let t = tenant.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![t.id.to_string(), t.name, time::format(&t.created_at)],
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

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let k = key.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    k.id.to_string(),
                    k.tenant_id.to_string(),
                    k.name,
                    k.prefix,
                    k.key_hash,
                    k.default_user_id,
                    time::format(&k.created_at)
                ],
            )?;
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
        let p = webhook_params(webhook)?;
        self.write(move |c| {
            let placeholders = (1..=p.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            c.execute(
                &format!("INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES ({placeholders})"),
                rusqlite::params_from_iter(p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql)),
            )?;
            Ok(())
        })
        .await
    }

    async fn get_webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Webhook>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND id = ?2"),
                params![tenant_id.to_string(), id.to_string()],
                webhook_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_webhooks(&self, tenant_id: Uuid, page: Page) -> Result<Vec<Webhook>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id.to_string(),
                        page.before.map(|u| u.to_string()),
                        page.limit as i64
                    ],
                    webhook_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool> {
        let p = webhook_params(webhook)?;
        self.write(move |c| {
            // Columns 3.. are the mutable ones; id and tenant_id (1, 2) select the row.
            let sets = WEBHOOK_COLS
                .split(',')
                .map(str::trim)
                .enumerate()
                .skip(2)
                .map(|(i, col)| format!("{col} = ?{}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let n = c.execute(
                &format!("UPDATE webhooks SET {sets} WHERE id = ?1 AND tenant_id = ?2"),
                rusqlite::params_from_iter(p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql)),
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM webhooks WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id.to_string(), id.to_string()],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
