//! The operator's view of a node: readiness and the metrics text.
//!
//! The probes are unauthenticated (load balancers call them), so they say only whether the node is
//! up and ready; the reason it is not goes to the log. `/metrics` requires the configured
//! `metrics_token` when there is one.

use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::signing;
use std::time::Duration;

/// How long the delivered/failed counts on `/metrics` may be old.
const TERMINAL_COUNTS_TTL: Duration = Duration::from_secs(60);

impl Hookline {
    /// The database answers: the node can serve. Why it doesn't is logged, never returned: the
    /// caller is anonymous, and a driver's error text names hosts, users and versions.
    pub async fn ready(&self) -> bool {
        match self.store.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the database does not answer");
                false
            }
        }
    }

    /// Re-encrypts every webhook secret, previous secret and custom header value that isn't sealed
    /// under the current encryption key (`hookline keys rotate-encryption`). Values under the old
    /// keys stay readable meanwhile, so running nodes that hold both keys never stop delivering.
    pub async fn rotate_encryption(&self) -> Result<hookline_store::ResealReport> {
        Ok(self.store.reseal(hookline_store::Reseal::All).await?)
    }

    /// The Prometheus/OpenMetrics text for `/metrics`: this node's counters and histograms and the
    /// store's backlog. `authorization` is the request's `Authorization` header as sent; with a
    /// `metrics_token` configured it must be `Bearer <token>` (401 otherwise).
    pub async fn metrics_text(&self, authorization: Option<&str>) -> Result<String> {
        self.authorize_metrics(authorization)?;
        // Terminal counts need a scan of the delivery table: take them at most once a minute.
        let terminal = self.metrics.terminal_counts_stale(TERMINAL_COUNTS_TTL);
        let backlog = self.store.backlog(terminal).await?;
        Ok(self.metrics.render(&backlog, terminal))
    }

    /// Without a configured token anyone may scrape; with one, only a request presenting it. The
    /// comparison is constant-time, so timing reveals nothing of the token.
    fn authorize_metrics(&self, authorization: Option<&str>) -> Result<()> {
        let Some(token) = &self.config.metrics_token else {
            return Ok(());
        };
        let presented = authorization
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match presented {
            Some(t) if signing::secrets_equal(t, token.expose()) => Ok(()),
            Some(_) => Err(Error::Unauthorized("wrong metrics token".into())),
            None => Err(Error::Unauthorized(
                "missing Authorization: Bearer <metrics_token> header".into(),
            )),
        }
    }
}
