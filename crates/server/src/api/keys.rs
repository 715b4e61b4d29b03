//! `/v1/api-keys`: list a tenant's API keys, create one (the key itself is in that answer only) and
//! revoke one. Who may do which, and the rules of scopes, expiry and the last full key, are the
//! service layer's (`service/keys.rs`, `hookline_core::api_key`).

use super::extract::{ApiJson, Auth, IdPath, ListResponse, Pagination};
use super::responses::{ApiKeyList, BadRequest, Conflict, Forbidden, NotFound};
use crate::error::Result;
use crate::service::{ApiKeyInput, ApiKeyView, CreatedApiKey, Hookline};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use hookline_core::ids::ApiKeyId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
}

/// List the tenant's API keys, newest first.
///
/// Revoked and expired keys are listed too (see `status`); the keys themselves never are, only
/// their first characters (`prefix`). Any key may list, a `read` key too.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", operation_id = "listApiKeys",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of API keys", body = ApiKeyList), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
) -> Result<Json<ListResponse<ApiKeyView>>> {
    let rows = h.list_api_keys(&who, page.page()?).await?;
    Ok(Json(page.respond(rows, |k| k.id)))
}

/// Create an API key.
///
/// The answer holds the key itself (`key`) — the only time it is shown: only its hash is stored.
/// `scope` is `full` (default) or `read` (GET requests only); `expires_at` or `expires_in` make it
/// stop working then. Needs a `full` key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", operation_id = "createApiKey",
    request_body = ApiKeyInput,
    responses((status = 201, description = "the new key, with the key itself shown this once", body = CreatedApiKey),
              (status = 403, response = Forbidden)),
    security(("bearer" = [])))]
// No `Idempotency-Key` here, deliberately: answering a retry with the first answer would mean
// keeping the key itself in the database, which stores only its hash. A retried create makes a
// second key; the first can be revoked.
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(h.create_api_key(&who, input).await?),
    ))
}

/// Revoke an API key.
///
/// From the next request on it gets 401 on every node, and console sessions signed in with it
/// end. The tenant's last active `full` key can't be revoked (409 `last_full_key`): create another
/// first. Revoking a revoked key answers it unchanged. Needs a `full` key (it may revoke itself).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", operation_id = "revokeApiKey",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the revoked key", body = ApiKeyView), (status = 403, response = Forbidden),
              (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("bearer" = [])))]
async fn revoke(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<ApiKeyId>,
) -> Result<Json<ApiKeyView>> {
    Ok(Json(h.revoke_api_key(&who, id).await?))
}
