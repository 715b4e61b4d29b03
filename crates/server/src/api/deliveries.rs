//! `/v1/deliveries`: the delivery log, with attempts, resend and cancel.

use super::extract::{idempotency_key, maybe_replayed, Auth, IdPath, ListResponse, Pagination};
use super::responses::{BadRequest, Conflict, DeliveryList, Invalid, NotFound};
use crate::error::{Error, Result};
use crate::service::{DeliveryDetail, DeliveryQuery, DeliveryView, Hookline};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::ids::DeliveryId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{id}", get(fetch))
        .route("/deliveries/{id}/resend", post(resend))
        .route("/deliveries/{id}/cancel", post(cancel))
}

/// List deliveries (the delivery log), newest first.
///
/// `search` matches the webhook URL and the event name.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", operation_id = "listDeliveries",
    params(("webhook_id" = Option<uuid::Uuid>, Query, description = "only this webhook's deliveries"),
           ("status" = Option<String>, Query, description = "pending, delivering, retrying, delivered, failed or cancelled"),
           ("event_type" = Option<String>, Query, description = "an event name in any format's spelling"),
           ("since" = Option<String>, Query, format = DateTime, description = "created at or after (RFC 3339)"),
           ("until" = Option<String>, Query, format = DateTime, description = "created before (RFC 3339)"),
           ("search" = Option<String>, Query, description = "text in the webhook URL or the event name"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of the delivery log", body = DeliveryList), (status = 400, response = BadRequest)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
    q: std::result::Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse<DeliveryView>>> {
    let Query(q) = q.map_err(|e| Error::bad_request("invalid_query", e.body_text(), None))?;
    let rows = h.list_deliveries(&who, q, page.page()?).await?;
    Ok(Json(page.respond(rows, |d| d.id)))
}

/// Get one delivery with its attempts.
///
/// Every finished attempt: its status or error, timings, and the (capped) response body.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", operation_id = "getDelivery", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the delivery with its attempts", body = DeliveryDetail), (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<DeliveryId>,
) -> Result<Json<DeliveryDetail>> {
    Ok(Json(h.get_delivery(&who, id).await?))
}

/// Resend a delivery.
///
/// The same event goes to the same webhook again as a new delivery; the original is unchanged. The
/// same `Idempotency-Key` for the same delivery answers the delivery it made, as it is now (with
/// `Idempotent-Replayed: true`), and makes no other.
#[utoipa::path(post, path = "/v1/deliveries/{id}/resend", tag = "deliveries", operation_id = "resendDelivery",
    params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key answers the first result")),
    responses((status = 202, description = "the new delivery", body = DeliveryView, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn resend(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<DeliveryId>,
    headers: HeaderMap,
) -> Result<Response> {
    let (view, replayed) = h.resend_once(&who, id, idempotency_key(&headers)?).await?;
    Ok(maybe_replayed(StatusCode::ACCEPTED, view, replayed))
}

/// Cancel a queued delivery.
///
/// A pending or retrying delivery ends `cancelled` with `cancel_reason: "manual"` and is never
/// sent again (resend or replay it to send it after all). A delivery being delivered right now, or
/// already delivered, failed or cancelled, is a 409 `not_cancellable`. Takes no query parameters
/// and no body.
#[utoipa::path(post, path = "/v1/deliveries/{id}/cancel", tag = "deliveries", operation_id = "cancelDelivery",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the delivery, now cancelled", body = DeliveryView), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("bearer" = [])))]
async fn cancel(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<DeliveryId>,
) -> Result<Json<DeliveryView>> {
    Ok(Json(h.cancel_delivery(&who, id).await?))
}
