//! `/v1/events`: publish (with `Idempotency-Key`), list, get.

use super::extract::{header, Auth, IdPath, ListResponse, Pagination, RawJson};
use crate::error::{Error, ErrorBody, Result};
use crate::service::{EventView, Hookline, PublishInput, PublishOutput};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hookline_core::ids::EventId;
use serde::Deserialize;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/events", get(list).post(publish))
        .route("/events/{id}", get(fetch))
}

/// Publish one event (answer `{id, delivery_ids}`) or an array (answer `{data: [...]}`), 202 once the
/// event and its deliveries are committed. The same `Idempotency-Key` with the same body answers the
/// original result (with `Idempotent-Replayed: true`); with another body, 422.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = PublishInput,
    params(("Idempotency-Key" = Option<String>, Header), ("X-Actor-Id" = Option<String>, Header, description = "user who caused the event")),
    responses((status = 202, body = PublishOutput), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn publish(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> Result<Response> {
    let input: PublishInput = crate::json::parse_json(&body).map_err(|e| match e {
        // An untagged enum loses field paths: say what shape is expected instead.
        Error::Invalid(_) => Error::invalid(
            ".",
            "invalid",
            "expected an event {event_type, data, ...} or an array of them; check that every event has event_type and data and no unknown fields",
        ),
        other => other,
    })?;
    let key = header(&headers, "idempotency-key")?;
    let actor = header(&headers, "x-actor-id")?;
    let (out, replayed) = h.publish(&who, actor, input, key).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(out)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct EventQuery {
    event_type: Option<String>,
}

/// List events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("event_type" = Option<String>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<EventView>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
    Query(q): Query<EventQuery>,
) -> Result<Json<ListResponse<EventView>>> {
    let rows = h
        .list_events(
            &who,
            q.event_type.as_deref().filter(|s| !s.is_empty()),
            page.page()?,
        )
        .await?;
    Ok(Json(page.respond(rows, |e| e.id)))
}

/// Get one event.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<EventId>,
) -> Result<Json<EventView>> {
    Ok(Json(h.get_event(&who, id).await?))
}
