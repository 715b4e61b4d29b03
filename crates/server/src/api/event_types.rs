//! `GET /v1/event-types`: the event catalog with every format's spelling of each name.

use super::extract::Auth;
use crate::error::Result;
use crate::service::catalog::{event_types, EventTypeList};
use crate::service::Hookline;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<Hookline> {
    Router::new().route("/event-types", get(list))
}

/// The event catalog.
#[utoipa::path(get, path = "/v1/event-types", tag = "events", operation_id = "listEventTypes",
    responses((status = 200, description = "the catalog", body = EventTypeList)),
    security(("bearer" = [])))]
async fn list(Auth(_): Auth) -> Result<Json<EventTypeList>> {
    Ok(Json(event_types()))
}
