//! The operator's view of a node: readiness and the metrics text.

use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::time;
use std::time::Duration;

/// How long the delivered/failed counts on `/metrics` may be old.
const TERMINAL_COUNTS_TTL: Duration = Duration::from_secs(60);

impl Hookline {
    /// The database answers: the node can serve.
    pub async fn ready(&self) -> Result<()> {
        self.store
            .ping()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The Prometheus/OpenMetrics text for `/metrics`: this node's counters and histograms and the
    /// store's backlog.
    pub async fn metrics_text(&self) -> Result<String> {
        // Terminal counts need a scan of the delivery table: take them at most once a minute.
        let terminal = self.metrics.terminal_counts_stale(TERMINAL_COUNTS_TTL);
        let backlog = self.store.backlog(time::now(), terminal).await?;
        Ok(self.metrics.render(&backlog, terminal))
    }
}
