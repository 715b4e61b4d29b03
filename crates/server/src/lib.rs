//! Hookline's server: configuration, the service layer, the REST API, and (as the engine grows) the
//! dispatcher and sender. The `hookline` binary in `crates/cli` is a thin shell around [`App`].
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod error;
pub mod service;

use config::Config;
use hookline_store::{SqliteStore, Store};
use service::Hookline;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Opens the store named by `database_url` (without migrating).
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "PostgreSQL is not supported by this build yet; use sqlite://FILE (the default)"
        );
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

/// A running (or ready to run) Hookline: its service handle and its HTTP router.
pub struct App {
    pub hookline: Hookline,
}

impl App {
    /// Opens and migrates the store.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = open_store(&config)?;
        store.migrate().await?;
        Ok(App {
            hookline: Hookline::new(store, Arc::new(config)),
        })
    }

    /// Serves HTTP on `listener` until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let router = api::router(self.hookline.clone());
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await?;
        Ok(())
    }
}
