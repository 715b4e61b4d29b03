//! `/v1/webhooks`: CRUD and secret management.

use super::extract::{ApiJson, Auth, IdPath, ListResponse, OptionalJson, Pagination};
use crate::error::{ErrorBody, Result};
use crate::service::{
    HandshakeInput, HandshakeView, Hookline, ReplayInput, ReplayView, RotateInput, SecretView,
    TestInput, TestView, WebhookInput, WebhookView,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::ids::WebhookId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route("/webhooks/{id}", get(fetch).patch(update).delete(remove))
        .route("/webhooks/{id}/secret", get(secret))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/test", post(test))
        .route("/webhooks/{id}/replay", post(replay))
        .route("/webhooks/{id}/verify-receiver", post(verify_receiver))
        .route("/webhooks/test", post(test_url))
}

/// Send a sample event (`source = test`) now and answer with the attempt. Recorded in the log,
/// never retried.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", request_body(content = TestInput, description = "optional: {event_type}"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = TestView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn test(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<TestInput>,
) -> Result<Json<TestView>> {
    Ok(Json(h.test_webhook(&who, id, input).await?))
}

/// Send a sample event to a URL that isn't saved (same URL policy); nothing is stored.
#[utoipa::path(post, path = "/v1/webhooks/test", tag = "webhooks", request_body = TestInput,
    responses((status = 200, body = TestView), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn test_url(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<TestInput>,
) -> Result<Json<TestView>> {
    Ok(Json(h.test_url(&who, input).await?))
}

/// The verification handshake: send the endpoint one mis-signed and one correctly signed test
/// request (same body, same delivery id) and report whether it refused the first and accepted the
/// second, i.e. whether it really checks signatures. Nothing is stored or retried.
#[utoipa::path(post, path = "/v1/webhooks/{id}/verify-receiver", tag = "webhooks",
    request_body(content = HandshakeInput, description = "optional: {event_type}"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = HandshakeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn verify_receiver(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<HandshakeInput>,
) -> Result<Json<HandshakeView>> {
    Ok(Json(h.verify_receiver(&who, id, input).await?))
}

/// Send a webhook's past deliveries again (default: the failed ones) as new deliveries.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", request_body = ReplayInput,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 202, body = ReplayView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replay(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    ApiJson(input): ApiJson<ReplayInput>,
) -> Result<(StatusCode, Json<ReplayView>)> {
    Ok((StatusCode::ACCEPTED, Json(h.replay(&who, id, input).await?)))
}

/// Create a webhook. The answer carries the signing secret; only `/secret` shows it again.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<(StatusCode, Json<WebhookView>)> {
    Ok((
        StatusCode::CREATED,
        Json(h.create_webhook(&who, input).await?),
    ))
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    search: Option<String>,
}

/// List webhooks, newest first. `search` matches name, URL and description.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(("search" = Option<String>, Query, description = "text in the name, URL or description"),
           ("limit" = Option<usize>, Query, description = "1-100, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = ListResponse<WebhookView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
    Query(q): Query<SearchQuery>,
) -> Result<Json<ListResponse<WebhookView>>> {
    let rows = h
        .list_webhooks(&who, q.search.as_deref(), page.page()?)
        .await?;
    Ok(Json(page.respond(rows, |w| w.id)))
}

/// Get one webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<Json<WebhookView>> {
    Ok(Json(h.get_webhook(&who, id).await?))
}

/// Change some settings; absent fields keep their value, `null` resets nullable ones.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<Json<WebhookView>> {
    Ok(Json(h.update_webhook(&who, id, input).await?))
}

/// Delete a webhook with its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<StatusCode> {
    h.delete_webhook(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current signing secret.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn secret(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<Json<SecretView>> {
    Ok(Json(h.webhook_secret(&who, id).await?))
}

/// Replace the secret; the old one keeps signing beside it for the grace period (default 24h).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", request_body(content = RotateInput, description = "optional"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rotate(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<RotateInput>,
) -> Result<Json<SecretView>> {
    Ok(Json(h.rotate_secret(&who, id, input).await?))
}
