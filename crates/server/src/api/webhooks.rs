//! `/v1/webhooks`: CRUD, secret management, test sends and trying out payload filters.

use super::extract::{
    idempotency_key, maybe_replayed, ApiJson, Auth, IdPath, ListResponse, OptionalJson, Pagination,
};
use super::responses::{
    BadRequest, Conflict, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType, WebhookList,
};
use crate::error::Result;
use crate::service::{
    FilterTestInput, FilterTestView, HandshakeInput, HandshakeView, Hookline, ReplayInput,
    ReplayView, RotateInput, SecretView, TestInput, TestView, WebhookInput, WebhookView,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
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
        // A fixed segment: axum matches it before the `{id}` routes above, whatever the order.
        .route("/webhooks/filter-test", post(filter_test))
}

/// Try a payload filter on an event.
///
/// Evaluates `filter` on `event` exactly as fan-out would (the `event` is the object a filter
/// reads: `type`, `data`, `changes`, `source`, `source_id`, `actor`, `entity_type`, `entity_id`,
/// `occurred_at`, `id`) and answers whether it matches, its final value, the steps it took and
/// whether it ran out of them. A filter that doesn't parse is a 422 naming the position. Nothing is
/// stored.
#[utoipa::path(post, path = "/v1/webhooks/filter-test", tag = "webhooks", operation_id = "testWebhookFilter", request_body = FilterTestInput,
    responses((status = 200, description = "how the filter evaluated", body = FilterTestView), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn filter_test(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<FilterTestInput>,
) -> Result<Json<FilterTestView>> {
    Ok(Json(h.test_filter(&who, input)?))
}

/// Send a test event to a webhook now.
///
/// A sample event (`source = test`) is sent at once and the answer is the attempt: status or
/// error kind, timings, the response. Recorded in the log, never retried.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "testWebhook", request_body(content = TestInput, description = "optional: {event_type}"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the attempt", body = TestView), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn test(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<TestInput>,
) -> Result<Json<TestView>> {
    Ok(Json(h.test_webhook(&who, id, input).await?))
}

/// Send a test event to a URL.
///
/// Like `testWebhook`, for a URL that isn't saved (the same URL policy applies); nothing is stored.
#[utoipa::path(post, path = "/v1/webhooks/test", tag = "webhooks", operation_id = "testWebhookUrl", request_body = TestInput,
    responses((status = 200, description = "the attempt", body = TestView), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn test_url(
    State(h): State<Hookline>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<TestInput>,
) -> Result<Json<TestView>> {
    Ok(Json(h.test_url(&who, input).await?))
}

/// Check that a webhook's receiver verifies signatures.
///
/// The verification handshake: send the endpoint one mis-signed and one correctly signed test
/// request (same body, same delivery id) and report whether it refused the first and accepted the
/// second, i.e. whether it really checks signatures. Nothing is stored or retried.
#[utoipa::path(post, path = "/v1/webhooks/{id}/verify-receiver", tag = "webhooks", operation_id = "verifyWebhookReceiver",
    request_body(content = HandshakeInput, description = "optional: {event_type}"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the verdict", body = HandshakeView), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn verify_receiver(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<HandshakeInput>,
) -> Result<Json<HandshakeView>> {
    Ok(Json(h.verify_receiver(&who, id, input).await?))
}

/// Send a webhook's past deliveries again.
///
/// The deliveries of a time range (default: the failed ones) that exist now are sent again as new
/// deliveries; `dry_run` only counts them. The copies are made by a background job, in steps that
/// never hold up other writes: the answer carries the `count` and the `job` to follow at
/// `GET /v1/jobs/{id}` (or cancel). The same `Idempotency-Key` with the same webhook and body
/// answers the first result again (with `Idempotent-Replayed: true`) and replays nothing twice.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", operation_id = "replayWebhookDeliveries", request_body = ReplayInput,
    params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result")),
    responses((status = 202, description = "how many deliveries the replay makes (or, with `dry_run`, would make), and its job", body = ReplayView, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn replay(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ReplayInput>,
) -> Result<Response> {
    let (view, replayed) = h
        .replay_once(&who, id, input, idempotency_key(&headers)?)
        .await?;
    Ok(maybe_replayed(StatusCode::ACCEPTED, view, replayed))
}

/// Create a webhook.
///
/// `url` and `events` are required. The answer carries the signing secret; only `/secret` shows it
/// again. The same `Idempotency-Key` with the same body answers the webhook it created, as it is
/// now (with `Idempotent-Replayed: true`); with another body, 422.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", operation_id = "createWebhook", request_body = WebhookInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result")),
    responses((status = 201, description = "the webhook, with its signing secret", body = WebhookView, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))), (status = 400, response = BadRequest), (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<Response> {
    let (view, replayed) = h
        .create_webhook_once(&who, input, idempotency_key(&headers)?)
        .await?;
    Ok(maybe_replayed(StatusCode::CREATED, view, replayed))
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    search: Option<String>,
}

/// List webhooks, newest first.
///
/// `search` matches name, URL and description.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    params(("search" = Option<String>, Query, description = "text in the name, URL or description"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of webhooks", body = WebhookList), (status = 400, response = BadRequest)),
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
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "getWebhook",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the webhook", body = WebhookView), (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<Json<WebhookView>> {
    Ok(Json(h.get_webhook(&who, id).await?))
}

/// Change a webhook's settings.
///
/// Absent fields keep their value; `null` resets nullable ones.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "updateWebhook", request_body = WebhookInput,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the webhook as changed", body = WebhookView), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn update(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<Json<WebhookView>> {
    Ok(Json(h.update_webhook(&who, id, input).await?))
}

/// Delete a webhook.
///
/// It is gone from every webhook read (404) and gets nothing more; its queued deliveries end
/// `cancelled` (reason `webhook_deleted`), and its delivery log stays readable through
/// `/v1/deliveries` until retention prunes it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "deleteWebhook",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "deleted", description = "deleted"), (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn remove(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<StatusCode> {
    h.delete_webhook(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a webhook's current signing secret.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks", operation_id = "getWebhookSecret",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the secret", body = SecretView), (status = 400, response = BadRequest), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn secret(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
) -> Result<Json<SecretView>> {
    Ok(Json(h.webhook_secret(&who, id).await?))
}

/// Rotate a webhook's signing secret.
///
/// The old secret keeps signing beside the new one for the grace period (default 24h).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotateWebhookSecret", request_body(content = RotateInput, description = "optional"),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the new secret", body = SecretView), (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn rotate(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<WebhookId>,
    OptionalJson(input): OptionalJson<RotateInput>,
) -> Result<Json<SecretView>> {
    Ok(Json(h.rotate_secret(&who, id, input).await?))
}
