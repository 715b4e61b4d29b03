//! Liveness and readiness probes (no authentication: load balancers call them).

use crate::error::{Error, Result};
use crate::service::Hookline;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Prometheus text format: deliveries by status and this node's attempt counters.
async fn metrics(
    State(h): State<Hookline>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String)> {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let counts = h.store.delivery_counts().await?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP hookline_deliveries Deliveries in the store by status.\n# TYPE hookline_deliveries gauge");
    for status in hookline_store::DeliveryStatus::ALL {
        let n = counts.get(status.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "hookline_deliveries{{status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    let c = &h.counters;
    for (name, help, v) in [
        (
            "hookline_attempts_total",
            "HTTP attempts made by this node.",
            c.attempts.load(Relaxed),
        ),
        (
            "hookline_delivered_total",
            "Attempts answered 2xx.",
            c.delivered.load(Relaxed),
        ),
        (
            "hookline_failed_attempts_total",
            "Attempts that failed (error or non-2xx).",
            c.failed_attempts.load(Relaxed),
        ),
        (
            "hookline_stale_results_total",
            "Results discarded because the lease had moved on.",
            c.stale_results.load(Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    ))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// The process can serve: its database answers.
async fn readyz(State(h): State<Hookline>) -> Result<Json<Value>> {
    h.store
        .ping()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(Json(json!({"status": "ready"})))
}
