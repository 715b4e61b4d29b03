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
