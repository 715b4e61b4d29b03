//! `/v1/events`: publish (with `Idempotency-Key`), list, get.

use super::extract::{
    header, idempotency_key, maybe_replayed, Auth, IdPath, ListResponse, Pagination, RawJson,
};
use super::responses::{
    BadRequest, EventList, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType,
};
use crate::error::{Error, Result};
use crate::service::{EventView, Hookline, PublishInput, PublishOutput};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use hookline_core::ids::EventId;
use serde::Deserialize;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/events", get(list).post(publish))
        .route("/events/{id}", get(fetch))
}

/// Publish one event or many.
///
/// One event (answer `{id, delivery_ids}`) or an array of up to 1000 (answer `{data: [...]}`),
/// 202 once the events and their deliveries are committed. The same `Idempotency-Key` with the same
/// body answers the original result (with `Idempotent-Replayed: true`); with another body, 422.
#[utoipa::path(post, path = "/v1/events", tag = "events", operation_id = "publishEvents", request_body = PublishInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result"), ("X-Actor-Id" = Option<String>, Header, description = "user who caused the event")),
    responses((status = 202, description = "published: the events and their deliveries are committed", body = PublishOutput, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
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
    let key = idempotency_key(&headers)?;
    let actor = header(&headers, "x-actor-id")?;
    let (out, replayed) = h.publish(&who, actor, input, key).await?;
    Ok(maybe_replayed(StatusCode::ACCEPTED, out, replayed))
}

#[derive(Deserialize)]
struct EventQuery {
    event_type: Option<String>,
}

/// List events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "listEvents",
    params(("event_type" = Option<String>, Query, description = "an event name in any format's spelling"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of events", body = EventList), (status = 400, response = BadRequest)),
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
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", operation_id = "getEvent", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the event", body = EventView), (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<EventId>,
) -> Result<Json<EventView>> {
    Ok(Json(h.get_event(&who, id).await?))
}
