//! Errors of the service layer and how each reaches an HTTP client.
//!
//! Policy:
//! - The service layer returns [`Error`]; it never builds HTTP responses and never panics on input.
//! - Every variant maps to exactly one status and a stable machine-readable `code`; the body is
//!   always `{"error": {"code", "message", "field"?}}`, on every route, including axum's own
//!   rejections (bad JSON, wrong media type, body too large, unknown route, wrong method).
//! - Invalid input names the offending `field` (dotted path, `events[2]`, `headers.X-Foo`).
//! - Storage trouble that passes (busy, locked, I/O) is 503 so clients retry; anything that smells of
//!   a bug is 500 with a generic message, and the detail goes to the log, never to the client.
//! - Another tenant's id is indistinguishable from a missing one: 404.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookline_core::webhook::FieldError;
use hookline_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 400: unparseable JSON, malformed path or query.
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 401: missing or unknown API key.
    Unauthorized(String),
    /// 403: authenticated, but this caller may not do this (a portal session's limits).
    Forbidden(String),
    /// 404: no such resource for this tenant (or no such route).
    NotFound(String),
    /// 405: route exists, method doesn't.
    MethodNotAllowed,
    /// 409: the request conflicts with the current state.
    Conflict { code: &'static str, message: String },
    /// 413: request body over the configured limit.
    PayloadTooLarge(String),
    /// 415: not `application/json`.
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    Invalid(FieldError),
    /// 431: too many request headers, or too many bytes of them (`api/header_limits.rs`).
    HeadersTooLarge(String),
    /// 503: storage temporarily unavailable; retry.
    Unavailable(String),
    /// 500: a bug. The message is logged, not shown.
    Internal(String),
}

impl Error {
    pub fn not_found(what: &str) -> Self {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid(FieldError::new(field, code, message))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON error body (also used by the CLI to print service errors).
    pub fn body(&self) -> ErrorBody {
        let (code, message, field) = match self {
            Error::BadRequest {
                code,
                message,
                field,
            } => (*code, message.clone(), field.clone()),
            Error::Unauthorized(m) => ("unauthorized", m.clone(), None),
            Error::Forbidden(m) => ("forbidden", m.clone(), None),
            Error::NotFound(m) => ("not_found", m.clone(), None),
            Error::MethodNotAllowed => (
                "method_not_allowed",
                "method not allowed on this route".into(),
                None,
            ),
            Error::Conflict { code, message } => (*code, message.clone(), None),
            Error::PayloadTooLarge(m) => ("payload_too_large", m.clone(), None),
            Error::UnsupportedMediaType(m) => ("unsupported_media_type", m.clone(), None),
            Error::Invalid(f) => (f.code, f.message.clone(), Some(f.field.clone())),
            Error::HeadersTooLarge(m) => ("headers_too_large", m.clone(), None),
            Error::Unavailable(_) => (
                "unavailable",
                "the database is temporarily unavailable; retry shortly".into(),
                None,
            ),
            Error::Internal(_) => (
                "internal",
                "internal error; it has been logged".into(),
                None,
            ),
        };
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                field,
            },
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unavailable(m) | Error::Internal(m) => write!(f, "{m}"),
            other => {
                let b = other.body().error;
                match b.field {
                    Some(field) => write!(f, "{field}: {}", b.message),
                    None => write!(f, "{}", b.message),
                }
            }
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable reason, e.g. `invalid_url`, `not_found`.
    pub code: String,
    pub message: String,
    /// The offending input field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(m) => tracing::error!(error = %m, "internal error"),
            Error::Unavailable(m) => tracing::warn!(error = %m, "store unavailable"),
            _ => {}
        }
        (self.status(), axum::Json(self.body())).into_response()
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Invalid(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Internal(m) => Error::Internal(m),
            StoreError::TooManyDeliveries { limit, needed } => Error::invalid(
                ".",
                "too_many_deliveries",
                format!(
                    "this request would create {needed} or more deliveries; at most {limit} are \
                     allowed per request (max_deliveries_per_publish): send fewer events or objects \
                     per request"
                ),
            ),
            StoreError::Rejected(r) => match r.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Internal(other.to_string()),
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
