//! `/v1/deliveries`: the delivery log, with attempts, and resend.

use super::extract::{Auth, IdPath, ListResponse, Pagination};
use crate::error::{Error, ErrorBody, Result};
use crate::service::{DeliveryDetail, DeliveryQuery, DeliveryView, Hookline};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::ids::DeliveryId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{id}", get(fetch))
        .route("/deliveries/{id}/resend", post(resend))
}

/// The delivery log, newest first. `search` matches the webhook URL and the event name.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries",
    params(("webhook_id" = Option<uuid::Uuid>, Query), ("status" = Option<String>, Query),
           ("event_type" = Option<String>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query),
           ("search" = Option<String>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<DeliveryView>), (status = 400, body = ErrorBody)),
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

/// One delivery with its finished attempts (status or error, timings, capped response body).
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<DeliveryId>,
) -> Result<Json<DeliveryDetail>> {
    Ok(Json(h.get_delivery(&who, id).await?))
}

/// Send the same event to the same webhook again as a new delivery; the original is unchanged.
#[utoipa::path(post, path = "/v1/deliveries/{id}/resend", tag = "deliveries", params(("id" = uuid::Uuid, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn resend(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<DeliveryId>,
) -> Result<(StatusCode, Json<DeliveryView>)> {
    Ok((StatusCode::ACCEPTED, Json(h.resend(&who, id).await?)))
}
