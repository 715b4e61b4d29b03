//! `/v1/erasures`: the right to erasure. A request names one record and answers at once (202) with
//! its erasure, which a background job carries out; reading it shows progress and, when done, what
//! was removed (counts only). What is removed, and how, is the service layer's
//! (`service/erasures.rs`) and the store's (`Store::erasure_step`).

use super::extract::{ApiJson, Auth, IdPath, ListResponse, Pagination};
use super::responses::{BadRequest, ErasureList, Forbidden, Invalid, NotFound};
use crate::error::Result;
use crate::service::{ErasureInput, ErasureView, Hookline};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use hookline_core::ids::JobId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/erasures", get(list).post(create))
        .route("/erasures/{id}", get(fetch))
}

/// Erase a record everywhere.
///
/// Removes the record, every stored event about it with its deliveries and their attempts,
/// rewrites batch events that carried it among other objects (or drops them when it was the
/// only one), removes the receivers' stored answers to deliveries of those batches, and the stored
/// answers of idempotent requests that showed it. A background job does it in steps; the answer
/// is the erasure, `queued`. Repeating a request is harmless: nothing is left to find. Needs a
/// `full` key. Events that only *refer* to the record (a deal's `contact_id`) are kept.
#[utoipa::path(post, path = "/v1/erasures", tag = "erasures", operation_id = "requestErasure",
    request_body = ErasureInput,
    responses((status = 202, description = "the erasure, queued", body = ErasureView), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<ErasureInput>,
) -> Result<(StatusCode, Json<ErasureView>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(h.request_erasure(&who, input).await?),
    ))
}

/// List erasures, newest first: the tenant's erasure audit (what was erased, as counts).
#[utoipa::path(get, path = "/v1/erasures", tag = "erasures", operation_id = "listErasures",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of erasures", body = ErasureList), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
) -> Result<Json<ListResponse<ErasureView>>> {
    let rows = h.list_erasures(&who, page.page()?).await?;
    Ok(Json(page.respond(rows, |e| e.id)))
}

/// Get an erasure: its status, events examined, and what it removed.
#[utoipa::path(get, path = "/v1/erasures/{id}", tag = "erasures", operation_id = "getErasure",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the erasure", body = ErasureView), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<ErasureView>> {
    Ok(Json(h.get_erasure(&who, id).await?))
}
