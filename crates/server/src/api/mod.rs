//! The REST API under `/v1`: one router per resource file; the shared extractors live in
//! [`extract`]. See ARCHITECTURE.md for how a request reaches the service layer.
//!
//! Handlers are thin: extract, call the service layer, wrap the answer. Every extractor rejects with
//! [`Error`] so axum's own failures (bad JSON, wrong media type, oversize body, malformed path or
//! query) come back in the same JSON error shape as everything else. Two layers apply to every
//! request before a handler runs: [`query`] refuses query parameters a route doesn't document (or
//! repeats), and [`header_limits`] answers 431 past the header limits.

mod deliveries;
mod docs;
mod erasures;
mod event_types;
mod events;
mod extract;
pub mod header_limits;
mod health;
mod jobs;
mod keys;
mod listen;
pub mod openapi;
mod portal;
mod query;
mod record_schemas;
mod records;
mod responses;
mod webhooks;

pub use extract::{ListResponse, DEFAULT_LIMIT, MAX_LIMIT};

use crate::error::Error;
use crate::service::Hookline;
use axum::extract::DefaultBodyLimit;
use axum::Router;

/// The whole HTTP surface.
pub fn router(hookline: Hookline) -> Router {
    let limit = hookline.config.max_request_body;
    let v1 = Router::new()
        .merge(webhooks::router())
        .merge(events::router())
        .merge(deliveries::router())
        .merge(records::router())
        .merge(event_types::router())
        .merge(portal::router())
        .merge(keys::router())
        .merge(jobs::router())
        .merge(erasures::router())
        .merge(listen::router())
        .merge(openapi::router())
        // Last, so it covers every route above: each takes exactly the query parameters it documents.
        .route_layer(axum::middleware::from_fn(query::strict_query));
    Router::new()
        .merge(health::router())
        .merge(docs::router())
        .nest("/v1", v1)
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(hookline)
}

/// `router` answering 431 to a request over the header limits, before any route sees it.
pub fn with_header_limits(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(header_limits::limit_headers))
}

/// Only the health probes (worker-only nodes).
pub fn health_router(hookline: Hookline) -> Router {
    health::router()
        .fallback(|| async { Error::NotFound("this node runs the worker role only".into()) })
        .with_state(hookline)
}
