//! The extractors and list shapes every REST handler shares: the authenticated caller, id paths,
//! JSON bodies that fail in the API's error shape, pagination and the list envelope.

use crate::error::Error;
use crate::json::parse_json;
use crate::service::{Hookline, Principal};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;
use utoipa::ToSchema;

/// The caller, authenticated by `Authorization: Bearer hk_…`.
pub struct Auth(pub Principal);

impl FromRequestParts<Hookline> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Hookline) -> Result<Self, Error> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            Error::Unauthorized("missing Authorization: Bearer <API key> header".into())
        })?;
        let value = header
            .to_str()
            .map_err(|_| Error::Unauthorized("invalid API key".into()))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| {
            Error::Unauthorized("Authorization must be `Bearer <API key>`".into())
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized(
                "Authorization must be `Bearer <API key>`".into(),
            ));
        }
        Ok(Auth(state.authenticate(token.trim()).await?))
    }
}

/// An id path parameter of the type the route names (`IdPath<WebhookId>`, `IdPath<DeliveryId>`…);
/// anything that doesn't parse as one is a 400 naming the parameter.
pub struct IdPath<T>(pub T);

impl<S: Send + Sync, T: FromStr> FromRequestParts<S> for IdPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request("invalid_path", e.body_text(), Some("id")))?;
        raw.parse().map(IdPath).map_err(|_| {
            Error::bad_request(
                "invalid_id",
                format!("`{raw}` is not a valid id (a UUID)"),
                Some("id"),
            )
        })
    }
}

/// A CRM record's id in the path, validated (`hookline_core::record::validate_id`); a path that
/// doesn't decode, or isn't a record id, is a 400 naming `id` in the API's error shape.
pub struct RecordIdPath(pub hookline_core::record::RecordId);

impl<S: Send + Sync> FromRequestParts<S> for RecordIdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request("invalid_path", e.body_text(), Some("id")))?;
        hookline_core::record::RecordId::parse(&raw)
            .map(RecordIdPath)
            .map_err(|e| Error::bad_request("invalid_id", e.message, Some("id")))
    }
}

/// A JSON body deserialized with field paths in its errors.
pub struct ApiJson<T>(pub T);

/// The raw bytes of a JSON body (for handlers that also need to fingerprint it).
pub struct RawJson(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if is_json(&req) != Some(true) {
            return Err(json_415());
        }
        body_bytes(req, state).await.map(RawJson)
    }
}

/// The raw bytes of a body of any media type (the handler decides what it accepts).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// A header's value as text; a non-ASCII value is a 400 naming the header.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                Error::bad_request(
                    "invalid_header",
                    format!("{name} must be ASCII"),
                    Some(name),
                )
            })
        })
        .transpose()
}

/// The `Idempotency-Key` of a creating request, as given (the service validates it with the
/// request's fingerprint).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    header(headers, "idempotency-key")
}

/// `status` and `body`, marked `Idempotent-Replayed: true` when they answer an earlier request with
/// the same `Idempotency-Key`.
pub fn maybe_replayed(status: StatusCode, body: impl Serialize, replayed: bool) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// A JSON body that may be absent altogether (then `T::default()`).
pub struct OptionalJson<T>(pub T);

fn is_json(req: &Request) -> Option<bool> {
    let ct = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")),
    )
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(
                "request body is larger than the configured max_request_body".into(),
            )
        } else {
            Error::bad_request("invalid_body", rej.body_text(), None)
        }
    })
}

fn json_415() -> Error {
    Error::UnsupportedMediaType("send the body as JSON with Content-Type: application/json".into())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if is_json(&req) != Some(true) {
            return Err(json_415());
        }
        parse_json(&body_bytes(req, state).await?).map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let declared = is_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if declared != Some(true) {
            return Err(json_415());
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// `?limit=&cursor=` of list endpoints. The cursor is opaque to clients: the last id of a page.
pub struct Pagination {
    pub limit: usize,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

fn bad_cursor() -> Error {
    Error::bad_request(
        "invalid_query",
        "cursor is not one this API returned",
        Some("cursor"),
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request("invalid_query", e.body_text(), None))?;
        let limit = match q.get("limit") {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Error::bad_request(
                        "invalid_query",
                        format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                        Some("limit"),
                    ))
                }
            },
        };
        let cursor = q.get("cursor").filter(|c| !c.is_empty()).cloned();
        if cursor
            .as_ref()
            .is_some_and(|c| hookline_core::record::validate_id(c).is_err())
        {
            return Err(bad_cursor());
        }
        Ok(Pagination { limit, cursor })
    }
}

impl Pagination {
    /// A store page over UUID-keyed rows; one extra row tells whether there is a next page.
    pub fn page(&self) -> Result<hookline_store::Page, Error> {
        let before = match &self.cursor {
            Some(c) => Some(hookline_core::ids::parse_id(c).ok_or_else(bad_cursor)?),
            None => None,
        };
        Ok(hookline_store::Page {
            before,
            limit: self.limit + 1,
        })
    }

    /// Trims the extra row and builds the response.
    pub fn respond<T, K: ToString, F: Fn(&T) -> K>(
        &self,
        mut rows: Vec<T>,
        id: F,
    ) -> ListResponse<T> {
        let next_cursor = if rows.len() > self.limit {
            rows.truncate(self.limit);
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        ListResponse {
            data: rows,
            next_cursor,
        }
    }
}

/// Every list endpoint answers `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
