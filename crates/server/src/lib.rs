//! Hookline's server: configuration, the service layer, the REST API, the dispatcher and the
//! sender. The `hookline` binary in `crates/cli` is a thin shell around [`App`].
#![forbid(unsafe_code)]

pub mod api;
pub mod attempt;
pub mod config;
pub mod console;
pub mod dispatcher;
pub mod encryption;
pub mod error;
pub mod http_server;
pub mod jobs;
pub mod json;
pub mod mcp;
pub mod metrics;
pub mod receiver;
pub mod sender;
pub mod service;
pub mod telemetry;

use config::Config;
use dispatcher::Dispatcher;
use hookline_store::{SqliteStore, Store};
use service::Hookline;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Opens the store named by `database_url` (without migrating).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url.expose();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Refused before connecting: without the deployment's key nothing could be read.
        let keyring = Arc::new(encryption::keyring(config, None)?);
        let store = hookline_store::PostgresStore::connect(url, config.pg_pool_size).await?;
        return Ok(Arc::new(
            store
                .with_keyring(keyring)
                .with_log_redact(config.log_redact.clone()),
        ));
    }
    let path = SqliteStore::path_from_url(url).ok_or_else(|| {
        anyhow::anyhow!("database_url `{url}` is neither sqlite://FILE nor postgres://…")
    })?;
    let sync = if config.sqlite_synchronous_full {
        hookline_store::Synchronous::Full
    } else {
        hookline_store::Synchronous::Normal
    };
    let keyring = Arc::new(encryption::keyring(config, Some(&path))?);
    Ok(Arc::new(
        SqliteStore::open(path, config.sqlite_readers, sync)?
            .with_keyring(keyring)
            .with_log_redact(config.log_redact.clone()),
    ))
}

/// What a node does: serve the API, run the delivery worker, or both (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub worker: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            api: true,
            worker: true,
        }
    }
}

/// A running (or ready to run) Hookline: its service handle and its dispatcher.
pub struct App {
    pub hookline: Hookline,
    pub dispatcher: Dispatcher,
}

impl App {
    /// Opens and migrates the store and builds the sender.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = open_store(&config).await?;
        store.migrate().await?;
        let sender = attempt::sender_for(&config)?;
        let hookline = Hookline::new(store, Arc::new(config), sender.clone());
        let dispatcher = Dispatcher::new(hookline.clone(), sender);
        Ok(App {
            hookline,
            dispatcher,
        })
    }

    /// Serves HTTP on `listener` (the whole API, or only the health probes for a worker-only node)
    /// and, with the worker role, runs the dispatcher, the job runner and retention, until `shutdown` is cancelled;
    /// then stops taking requests and new work, finishes in-flight sends and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
        roles: Roles,
    ) -> anyhow::Result<()> {
        let router = if roles.api {
            api::router(self.hookline.clone())
                .merge(mcp::router(self.hookline.clone(), shutdown.clone()))
                .merge(console::router(self.hookline.clone()))
        } else {
            api::health_router(self.hookline.clone())
        };
        // Every route, API, MCP and console alike: 431 past the header limits.
        let router = api::with_header_limits(router);
        let (worker, pruner, runner) = if roles.worker {
            (
                Some(tokio::spawn(self.dispatcher.clone().run(shutdown.clone()))),
                Some(tokio::spawn(retention(
                    self.hookline.clone(),
                    shutdown.clone(),
                ))),
                Some(tokio::spawn(
                    jobs::JobRunner::new(self.hookline.clone()).run(shutdown.clone()),
                )),
            )
        } else {
            (None, None, None)
        };
        // `hookline listen` sessions: this node's heartbeat, and the webhooks of sessions whose
        // node is gone deleted (on API nodes, where sessions are held).
        let keeper = roles.api.then(|| {
            let (h, shutdown) = (self.hookline.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = h.sweep_listen_sessions(service::LISTEN_STALE).await {
                        tracing::warn!(error = %e, "listen session housekeeping failed");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(service::LISTEN_HEARTBEAT) => {}
                    }
                }
            })
        });
        // A store that can never work again (the SQLite writer thread is gone) stops the process
        // with an error, so a supervisor restarts it instead of it answering 503 forever.
        let broken = tokio::spawn({
            let (store, shutdown) = (self.hookline.store.clone(), shutdown.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if let Some(why) = store.broken() {
                        tracing::error!(%why, "the store can't work any more; stopping");
                        shutdown.cancel();
                        return Some(why);
                    }
                }
            }
        });
        let config = self.hookline.config.clone();
        let http = http_server::serve(
            listener,
            router,
            config.http,
            config.max_request_body,
            shutdown.clone(),
            config.shutdown_grace,
        )
        .await;
        shutdown.cancel();
        for task in [worker, pruner, runner, keeper].into_iter().flatten() {
            let _ = task.await;
        }
        http?;
        if let Ok(Some(why)) = broken.await {
            anyhow::bail!("stopped because {why}");
        }
        Ok(())
    }
}

/// Once an hour, prunes what finished more than `retention_days` ago — attempts, then delivered
/// or failed deliveries, then events with no delivery left (see `Store::prune`) — and expired
/// idempotency keys; counts go to `/metrics` (`hookline_pruned_total{table}`) and the log.
async fn retention(h: Hookline, shutdown: CancellationToken) {
    loop {
        let days = chrono::Duration::days(h.config.retention_days as i64);
        let now = hookline_core::time::now();
        match h
            .store
            .prune(now - days, now - chrono::Duration::hours(24))
            .await
        {
            Ok(p) => {
                h.metrics.pruned(p);
                if p.total() > 0 {
                    tracing::info!(
                        attempts = p.attempts,
                        deliveries = p.deliveries,
                        events = p.events,
                        "pruned finished rows past retention"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
