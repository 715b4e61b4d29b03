//! Hookline's server: configuration, the service layer, the REST API, the dispatcher and the
//! sender. The `hookline` binary in `crates/cli` is a thin shell around [`App`].
#![forbid(unsafe_code)]

pub mod api;
pub mod attempt;
pub mod config;
pub mod console;
pub mod dispatcher;
pub mod error;
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
        let store = hookline_store::PostgresStore::connect(url, config.pg_pool_size).await?;
        return Ok(Arc::new(store));
    }
    let path = SqliteStore::path_from_url(url).ok_or_else(|| {
        anyhow::anyhow!("database_url `{url}` is neither sqlite://FILE nor postgres://…")
    })?;
    let sync = if config.sqlite_synchronous_full {
        hookline_store::Synchronous::Full
    } else {
        hookline_store::Synchronous::Normal
    };
    Ok(Arc::new(SqliteStore::open(
        path,
        config.sqlite_readers,
        sync,
    )?))
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
    /// and, with the worker role, runs the dispatcher and retention, until `shutdown` is cancelled;
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
        let (worker, pruner) = if roles.worker {
            (
                Some(tokio::spawn(self.dispatcher.clone().run(shutdown.clone()))),
                Some(tokio::spawn(retention(
                    self.hookline.clone(),
                    shutdown.clone(),
                ))),
            )
        } else {
            (None, None)
        };
        let http = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown({
            let s = shutdown.clone();
            async move { s.cancelled().await }
        })
        .await;
        shutdown.cancel();
        for task in [worker, pruner].into_iter().flatten() {
            let _ = task.await;
        }
        http?;
        Ok(())
    }
}

/// Prunes old attempts of delivered deliveries (and expired idempotency keys) once an hour.
async fn retention(h: Hookline, shutdown: CancellationToken) {
    loop {
        let days = chrono::Duration::days(h.config.retention_days as i64);
        let now = hookline_core::time::now();
        match h
            .store
            .prune(now - days, now - chrono::Duration::hours(24))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(attempts = n, "pruned delivered attempts past retention"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
