//! Liveness and readiness probes (no authentication: load balancers call them).

use crate::error::Result;
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

/// The OpenMetrics text format: this node's attempt counters and histograms, the store's backlog.
async fn metrics(
    State(h): State<Hookline>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String)> {
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics_text().await?,
    ))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// The process can serve: its database answers.
async fn readyz(State(h): State<Hookline>) -> Result<Json<Value>> {
    h.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
