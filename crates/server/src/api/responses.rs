//! The error responses and list shapes the OpenAPI document names: documentation only (the
//! handlers answer `Error` and `ListResponse<T>`), shared by the handlers' annotations.
#![allow(dead_code)] // documentation only: never constructed

use crate::error::ErrorBody;
use crate::service::{DeliveryView, EventView, WebhookView};
use utoipa::{ToResponse, ToSchema};

/// The request is malformed: unparseable JSON, or a malformed id, query parameter or header
/// (`field` names it).
#[derive(ToResponse)]
pub struct BadRequest(ErrorBody);

/// No API key, or not a valid one.
#[derive(ToResponse)]
pub struct Unauthorized(ErrorBody);

/// No such resource for this key's tenant (another tenant's id answers the same).
#[derive(ToResponse)]
pub struct NotFound(ErrorBody);

/// The request conflicts with the current state: `already_exists`, or `version_conflict` when
/// `If-Match` names a version that is no longer current.
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
