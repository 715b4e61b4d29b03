//! `/v1/contacts`, `/v1/organizations`, `/v1/deals`, `/v1/services`, `/v1/tasks`: CRM records whose
//! writes emit events. One generic set of handlers serves every kind; contacts add import and bulk
//! delete.

use super::extract::{header, Auth, ListResponse, Pagination, RawBody, RawJson};
use crate::error::{Error, ErrorBody, Result};
use crate::service::request::{ImportFormat, Interface};
use crate::service::{BulkDeleteView, Hookline, ImportView, RecordView, WriteContext, WriteView};
use axum::extract::{Path, Query, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::record::{self, RecordKind};
use hookline_store::RecordFilter;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<Hookline> {
    let mut r = Router::new()
        .route("/contacts/import", post(import))
        .route("/contacts/bulk-delete", post(bulk_delete));
    for kind in RecordKind::ALL {
        let base = format!("/{}", kind.plural());
        r = r
            .route(
                &base,
                post(move |s, a, h, b| create(s, a, h, b, kind))
                    .get(move |s, a, p, q| list(s, a, p, q, kind)),
            )
            .route(
                &format!("{base}/{{id}}"),
                get(move |s, a, id| fetch(s, a, id, kind))
                    .put(move |s, a, id, h, b| replace(s, a, id, h, b, kind))
                    .patch(move |s, a, id, h, b| patch(s, a, id, h, b, kind))
                    .delete(move |s, a, id, h| remove(s, a, id, h, kind)),
            );
    }
    r
}

/// The record id in the path.
fn record_id(Path(id): Path<String>) -> Result<String> {
    record::validate_id(&id)
        .map_err(|e| Error::bad_request("invalid_id", e.message, Some("id")))?;
    Ok(id)
}

/// Actor and `If-Match` of a write request, as the service validates them.
fn context(headers: &HeaderMap) -> Result<WriteContext> {
    WriteContext::from_request(
        Interface::Api,
        header(headers, "x-actor-id")?,
        header(headers, "if-match")?,
    )
}

fn with_etag(status: StatusCode, view: impl serde::Serialize, version: Option<u64>) -> Response {
    let mut resp = (status, Json(view)).into_response();
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

fn body(RawJson(bytes): RawJson) -> Result<Value> {
    crate::json::parse_json::<Value>(&bytes)
}

/// Create a record; its `*.created` event is committed with it. A given `id` is kept.
#[utoipa::path(post, path = "/v1/{kind}", tag = "records", request_body(content = Object, description = "the record"),
    params(("kind" = String, Path, description = "contacts, organizations, deals, services or tasks"),
           ("X-Actor-Id" = Option<String>, Header)),
    responses((status = 201, body = WriteView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let w = h
        .create_record(&who, kind, body(raw)?, context(&headers)?)
        .await?;
    let v = w.version;
    Ok(with_etag(StatusCode::CREATED, w, v))
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
    updated_since: Option<String>,
    search: Option<String>,
}

/// List records, newest id first. Filters: `tag` (a tag name), `updated_since`, `search` (name,
/// company, email or title).
#[utoipa::path(get, path = "/v1/{kind}", tag = "records",
    params(("kind" = String, Path), ("tag" = Option<String>, Query), ("updated_since" = Option<String>, Query),
           ("search" = Option<String>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<RecordView>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
    q: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    kind: RecordKind,
) -> Result<Json<ListResponse<RecordView>>> {
    let Query(q) = q.map_err(|e| Error::bad_request("invalid_query", e.body_text(), None))?;
    let updated_since = q
        .updated_since
        .filter(|s| !s.is_empty())
        .map(|s| {
            hookline_core::time::parse(&s).ok_or_else(|| {
                Error::bad_request(
                    "invalid_query",
                    "updated_since must be an RFC 3339 timestamp",
                    Some("updated_since"),
                )
            })
        })
        .transpose()?;
    let filter = RecordFilter {
        tag: q.tag.filter(|s| !s.is_empty()),
        updated_since,
        search: q
            .search
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    };
    let rows = h
        .list_records(&who, kind, filter, page.cursor.clone(), page.limit + 1)
        .await?;
    Ok(Json(page.respond(rows, |r| {
        r.data["id"].as_str().unwrap_or_default().to_string()
    })))
}

/// Get one record (`ETag` is its version).
#[utoipa::path(get, path = "/v1/{kind}/{id}", tag = "records", params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RecordView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: Path<String>,
    kind: RecordKind,
) -> Result<Response> {
    let v = h.get_record(&who, kind, &record_id(id)?).await?;
    let version = v.version;
    Ok(with_etag(StatusCode::OK, v, Some(version)))
}

/// Replace a record. Emits `*.updated` with `changes` (plus `*.assigned` / `deal.stage.changed`
/// when those fields move); a replace that moves nothing answers `changed: false` and emits nothing.
#[utoipa::path(put, path = "/v1/{kind}/{id}", tag = "records", request_body(content = Object),
    params(("kind" = String, Path), ("id" = String, Path), ("If-Match" = Option<String>, Header), ("X-Actor-Id" = Option<String>, Header)),
    responses((status = 200, body = WriteView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replace(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: Path<String>,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let w = h
        .replace_record(&who, kind, &record_id(id)?, body(raw)?, context(&headers)?)
        .await?;
    let v = w.version;
    Ok(with_etag(StatusCode::OK, w, v))
}

/// Change a record with a JSON merge patch (RFC 7386: `null` removes a field).
#[utoipa::path(patch, path = "/v1/{kind}/{id}", tag = "records", request_body(content = Object),
    params(("kind" = String, Path), ("id" = String, Path), ("If-Match" = Option<String>, Header), ("X-Actor-Id" = Option<String>, Header)),
    responses((status = 200, body = WriteView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn patch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: Path<String>,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let w = h
        .patch_record(&who, kind, &record_id(id)?, body(raw)?, context(&headers)?)
        .await?;
    let v = w.version;
    Ok(with_etag(StatusCode::OK, w, v))
}

/// Delete a record; `*.deleted` carries its id only.
#[utoipa::path(delete, path = "/v1/{kind}/{id}", tag = "records",
    params(("kind" = String, Path), ("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = WriteView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: Path<String>,
    headers: HeaderMap,
    kind: RecordKind,
) -> Result<Json<WriteView>> {
    Ok(Json(
        h.delete_record(&who, kind, &record_id(id)?, context(&headers)?)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteInput {
    pub ids: Vec<String>,
}

/// Delete many contacts; one `contact.deleted` event carries every deleted id.
#[utoipa::path(post, path = "/v1/contacts/bulk-delete", tag = "records", request_body = BulkDeleteInput,
    responses((status = 200, body = BulkDeleteView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn bulk_delete(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    raw: RawJson,
) -> Result<Json<BulkDeleteView>> {
    let input: BulkDeleteInput = crate::json::parse_json(&raw.0)?;
    Ok(Json(
        h.bulk_delete(&who, RecordKind::Contact, input.ids, context(&headers)?)
            .await?,
    ))
}

/// Import contacts from a JSON array or CSV (`Content-Type: text/csv`). Good rows are created, bad
/// rows are reported and skipped; `contact.created` goes out in batches of at most
/// `batch_max_size` with `batch {index, count, max_size}`, `source = contact_import`.
#[utoipa::path(post, path = "/v1/contacts/import", tag = "records",
    request_body(content = String, description = "JSON array of contacts, or text/csv"),
    responses((status = 200, body = ImportView), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn import(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Json<ImportView>> {
    let format = ImportFormat::from_media_type(header(&headers, "content-type")?)?;
    Ok(Json(
        h.import_body(&who, format, &bytes, header(&headers, "x-actor-id")?)
            .await?,
    ))
}
