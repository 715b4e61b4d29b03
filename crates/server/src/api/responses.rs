//! The error responses and list shapes the OpenAPI document names: documentation only (the
//! handlers answer `Error` and `ListResponse<T>`), shared by the handlers' annotations.
#![allow(dead_code)] // documentation only: never constructed

use crate::error::ErrorBody;
use crate::service::{ApiKeyView, DeliveryView, ErasureView, EventView, JobView, WebhookView};
use utoipa::{ToResponse, ToSchema};

/// The request is malformed: unparseable JSON, or a malformed id, query parameter or header
/// (`field` names it). A query parameter the operation doesn't take, or one given twice, is
/// `invalid_query`.
#[derive(ToResponse)]
pub struct BadRequest(ErrorBody);

/// No API key, or not a valid one.
#[derive(ToResponse)]
pub struct Unauthorized(ErrorBody);

/// This caller may not do this: a `read` API key asked for a change, a send or a secret, or a
/// portal session went beyond its grant.
#[derive(ToResponse)]
pub struct Forbidden(ErrorBody);

/// No such resource for this key's tenant (another tenant's id answers the same).
#[derive(ToResponse)]
pub struct NotFound(ErrorBody);

/// The request conflicts with the current state: `already_exists`, `version_conflict` when
/// `If-Match` names a version that is no longer current, or `idempotency_key_in_use` while a request
/// with the same `Idempotency-Key` is still being processed.
#[derive(ToResponse)]
pub struct Conflict(ErrorBody);

/// The body is larger than the deployment's `max_request_body`.
#[derive(ToResponse)]
pub struct PayloadTooLarge(ErrorBody);

/// The body is not JSON (`Content-Type: application/json`), or, for imports, neither JSON nor CSV.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(ErrorBody);

/// Well-formed but invalid: `code` says why and `field` names the offending input.
#[derive(ToResponse)]
pub struct Invalid(ErrorBody);

/// More than 64 request header fields, or more than 16 KiB of header names and values together
/// (`headers_too_large`).
#[derive(ToResponse)]
pub struct HeadersTooLarge(ErrorBody);

/// The database is temporarily unavailable; retry shortly.
#[derive(ToResponse)]
pub struct Unavailable(ErrorBody);

/// A bug: the detail is logged, not shown.
#[derive(ToResponse)]
pub struct Internal(ErrorBody);

/// A page of webhooks, newest first.
#[derive(ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of API keys, newest first.
#[derive(ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of background jobs, newest first.
#[derive(ToSchema)]
pub struct JobList {
    pub data: Vec<JobView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of erasures, newest first.
#[derive(ToSchema)]
pub struct ErasureList {
    pub data: Vec<ErasureView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of events, newest first.
#[derive(ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of the delivery log, newest first.
#[derive(ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
