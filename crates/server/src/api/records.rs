//! `/v1/contacts`, `/v1/organizations`, `/v1/deals`, `/v1/services`, `/v1/tasks`: CRM records whose
//! writes emit events. One generic set of handlers serves every kind; contacts add import and bulk
//! delete.

use super::extract::{
    header, idempotency_key, maybe_replayed, Auth, ListResponse, Pagination, RawBody, RawJson,
    RecordIdPath,
};
use super::record_schemas::Contact;
use super::responses::{
    BadRequest, Conflict, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType,
};
use crate::error::{Error, Result};
use crate::service::request::{ImportFormat, Interface};
use crate::service::{BulkDeleteView, Hookline, ImportView, RecordView, WriteContext, WriteView};
use axum::extract::{Query, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::record::RecordKind;
use hookline_store::RecordFilter;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/contacts/import", post(import))
        .route("/contacts/bulk-delete", post(bulk_delete))
        .merge(contacts::router())
        .merge(organizations::router())
        .merge(deals::router())
        .merge(services::router())
        .merge(tasks::router())
}

/// The six routes of one record kind: thin handlers over the generic ones below, each documented
/// with its own path, operation ids and schemas (the paths in the OpenAPI document are exactly the
/// served ones).
macro_rules! record_kind {
    (
        $module:ident, $kind:expr, tag = $tag:tt,
        paths = ($collection:tt, $item:tt),
        schemas = ($Record:ident, $Patch:ident, $View:ident, $Write:ident, $List:ident),
        create = ($create_id:tt, $create_summary:tt $(, $create_details:tt)?),
        list = ($list_id:tt, $list_summary:tt $(, $list_details:tt)?),
        get = ($get_id:tt, $get_summary:tt $(, $get_details:tt)?),
        replace = ($replace_id:tt, $replace_summary:tt $(, $replace_details:tt)?),
        update = ($update_id:tt, $update_summary:tt $(, $update_details:tt)?),
        delete = ($delete_id:tt, $delete_summary:tt $(, $delete_details:tt)?) $(,)?
    ) => {
        pub(super) mod $module {
            use crate::api::record_schemas;
            use crate::api::records::*;

            const KIND: RecordKind = $kind;

            pub(crate) fn router() -> Router<Hookline> {
                let base = format!("/{}", KIND.plural());
                Router::new()
                    .route(&base, axum::routing::post(create).get(list))
                    .route(
                        &format!("{base}/{{id}}"),
                        get(fetch).put(replace).patch(update).delete(remove),
                    )
            }

            #[doc = $create_summary]
            $(#[doc = ""] #[doc = $create_details])?
            #[utoipa::path(post, path = $collection, tag = $tag, operation_id = $create_id,
                request_body(content = record_schemas::$Record, description = "the record"),
                params(("X-Actor-Id" = Option<String>, Header, description = "the user who made the change"),
                       ("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result")),
                responses((status = 201, description = "created", body = record_schemas::$Write, headers(("ETag" = String, description = "the record's version"), ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))),
                          (status = 400, response = BadRequest), (status = 409, response = Conflict),
                          (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
                          (status = 422, response = Invalid)),
                security(("bearer" = [])))]
            pub(crate) async fn create(
                s: State<Hookline>, a: Auth, h: HeaderMap, b: RawJson,
            ) -> Result<Response> {
                crate::api::records::create(s, a, h, b, KIND).await
            }

            #[doc = $list_summary]
            $(#[doc = ""] #[doc = $list_details])?
            #[utoipa::path(get, path = $collection, tag = $tag, operation_id = $list_id,
                params(("tag" = Option<String>, Query, description = "a tag name"),
                       ("updated_since" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
                       ("search" = Option<String>, Query, description = "text in the name, company, email or title"),
                       ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
                       ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
                responses((status = 200, description = "a page of records", body = record_schemas::$List), (status = 400, response = BadRequest)),
                security(("bearer" = [])))]
            pub(crate) async fn list(
                s: State<Hookline>, a: Auth, p: Pagination,
                q: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
            ) -> Result<Json<ListResponse<RecordView>>> {
                crate::api::records::list(s, a, p, q, KIND).await
            }

            #[doc = $get_summary]
            $(#[doc = ""] #[doc = $get_details])?
            #[utoipa::path(get, path = $item, tag = $tag, operation_id = $get_id,
                params(("id" = String, Path, description = "the record's id")),
                responses((status = 200, description = "the record", body = record_schemas::$View, headers(("ETag" = String, description = "the record's version"))),
                          (status = 400, response = BadRequest), (status = 404, response = NotFound)),
                security(("bearer" = [])))]
            pub(crate) async fn fetch(
                s: State<Hookline>, a: Auth, id: RecordIdPath,
            ) -> Result<Response> {
                crate::api::records::fetch(s, a, id, KIND).await
            }

            #[doc = $replace_summary]
            $(#[doc = ""] #[doc = $replace_details])?
            #[utoipa::path(put, path = $item, tag = $tag, operation_id = $replace_id,
                request_body(content = record_schemas::$Record, description = "the whole new record"),
                params(("id" = String, Path, description = "the record's id"),
                       ("If-Match" = Option<String>, Header, description = "the version last seen, e.g. \"3\""),
                       ("X-Actor-Id" = Option<String>, Header, description = "the user who made the change")),
                responses((status = 200, description = "the record after the write", body = record_schemas::$Write, headers(("ETag" = String, description = "the record's version"))),
                          (status = 400, response = BadRequest), (status = 404, response = NotFound),
                          (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
                          (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
                security(("bearer" = [])))]
            pub(crate) async fn replace(
                s: State<Hookline>, a: Auth, id: RecordIdPath, h: HeaderMap, b: RawJson,
            ) -> Result<Response> {
                crate::api::records::replace(s, a, id, h, b, KIND).await
            }

            #[doc = $update_summary]
            $(#[doc = ""] #[doc = $update_details])?
            #[utoipa::path(patch, path = $item, tag = $tag, operation_id = $update_id,
                request_body(content = record_schemas::$Patch, description = "a JSON merge patch (RFC 7386): `null` removes a field"),
                params(("id" = String, Path, description = "the record's id"),
                       ("If-Match" = Option<String>, Header, description = "the version last seen, e.g. \"3\""),
                       ("X-Actor-Id" = Option<String>, Header, description = "the user who made the change")),
                responses((status = 200, description = "the record after the write", body = record_schemas::$Write, headers(("ETag" = String, description = "the record's version"))),
                          (status = 400, response = BadRequest), (status = 404, response = NotFound),
                          (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
                          (status = 415, response = UnsupportedMediaType), (status = 422, response = Invalid)),
                security(("bearer" = [])))]
            pub(crate) async fn update(
                s: State<Hookline>, a: Auth, id: RecordIdPath, h: HeaderMap, b: RawJson,
            ) -> Result<Response> {
                crate::api::records::patch(s, a, id, h, b, KIND).await
            }

            #[doc = $delete_summary]
            $(#[doc = ""] #[doc = $delete_details])?
            #[utoipa::path(delete, path = $item, tag = $tag, operation_id = $delete_id,
                params(("id" = String, Path, description = "the record's id"),
                       ("If-Match" = Option<String>, Header, description = "the version last seen, e.g. \"3\""),
                       ("X-Actor-Id" = Option<String>, Header, description = "the user who made the change")),
                responses((status = 200, description = "deleted (`data` is null)", body = record_schemas::$Write), (status = 400, response = BadRequest),
                          (status = 404, response = NotFound), (status = 409, response = Conflict)),
                security(("bearer" = [])))]
            pub(crate) async fn remove(
                s: State<Hookline>, a: Auth, id: RecordIdPath, h: HeaderMap,
            ) -> Result<Json<WriteView>> {
                crate::api::records::remove(s, a, id, h, KIND).await
            }
        }
    };
}

record_kind!(contacts, RecordKind::Contact, tag = "contacts",
    paths = ("/v1/contacts", "/v1/contacts/{id}"),
    schemas = (Contact, Contact, ContactView, ContactWrite, ContactList),
    create = ("createContact", "Create a contact.",
              "`contact.created` is committed with it. A given `id` is kept."),
    list = ("listContacts", "List contacts, newest id first.",
            "Filters: `tag`, `updated_since`, `search`."),
    get = ("getContact", "Get one contact.", "The `ETag` header is its version."),
    replace = ("replaceContact", "Replace a contact.",
               "Emits `contact.updated` with `changes` (and `contact.assigned` when `owner_id` moves); a replace that moves nothing answers `changed: false` and emits nothing."),
    update = ("updateContact", "Change a contact with a JSON merge patch.",
              "RFC 7386: `null` removes a field. Emits `contact.updated` with `changes` (and `contact.assigned` when `owner_id` moves)."),
    delete = ("deleteContact", "Delete a contact.", "`contact.deleted` carries its id only."),
);
record_kind!(organizations, RecordKind::Organization, tag = "organizations",
    paths = ("/v1/organizations", "/v1/organizations/{id}"),
    schemas = (
        Organization,
        OrganizationPatch,
        OrganizationView,
        OrganizationWrite,
        OrganizationList
    ),
    create = ("createOrganization", "Create an organization.",
              "`organization.created` is committed with it. A given `id` is kept."),
    list = ("listOrganizations", "List organizations, newest id first.",
            "Filters: `tag`, `updated_since`, `search`."),
    get = ("getOrganization", "Get one organization.", "The `ETag` header is its version."),
    replace = ("replaceOrganization", "Replace an organization.",
               "Emits `organization.updated` with `changes`; a replace that moves nothing answers `changed: false` and emits nothing."),
    update = ("updateOrganization", "Change an organization with a JSON merge patch.",
              "RFC 7386: `null` removes a field. Emits `organization.updated` with `changes`."),
    delete = ("deleteOrganization", "Delete an organization.", "`organization.deleted` carries its id only."),
);
record_kind!(deals, RecordKind::Deal, tag = "deals",
    paths = ("/v1/deals", "/v1/deals/{id}"),
    schemas = (Deal, DealPatch, DealView, DealWrite, DealList),
    create = ("createDeal", "Create a deal.",
              "`deal.created` is committed with it. A given `id` is kept."),
    list = ("listDeals", "List deals, newest id first.",
            "Filters: `tag`, `updated_since`, `search`."),
    get = ("getDeal", "Get one deal.", "The `ETag` header is its version."),
    replace = ("replaceDeal", "Replace a deal.",
               "Emits `deal.updated` with `changes` (plus `deal.assigned` / `deal.stage.changed` when those fields move); a replace that moves nothing answers `changed: false` and emits nothing."),
    update = ("updateDeal", "Change a deal with a JSON merge patch.",
              "RFC 7386: `null` removes a field. Emits `deal.updated` with `changes` (plus `deal.assigned` / `deal.stage.changed` when those fields move)."),
    delete = ("deleteDeal", "Delete a deal.", "`deal.deleted` carries its id only."),
);
record_kind!(services, RecordKind::Service, tag = "services",
    paths = ("/v1/services", "/v1/services/{id}"),
    schemas = (Service, ServicePatch, ServiceView, ServiceWrite, ServiceList),
    create = ("createService", "Create a service.",
              "`service.created` is committed with it. A given `id` is kept."),
    list = ("listServices", "List services, newest id first.",
            "Filters: `tag`, `updated_since`, `search`."),
    get = ("getService", "Get one service.", "The `ETag` header is its version."),
    replace = ("replaceService", "Replace a service.",
               "Emits `service.updated` with `changes`; a replace that moves nothing answers `changed: false` and emits nothing."),
    update = ("updateService", "Change a service with a JSON merge patch.",
              "RFC 7386: `null` removes a field. Emits `service.updated` with `changes`."),
    delete = ("deleteService", "Delete a service.", "`service.deleted` carries its id only."),
);
record_kind!(tasks, RecordKind::Task, tag = "tasks",
    paths = ("/v1/tasks", "/v1/tasks/{id}"),
    schemas = (Task, TaskPatch, TaskView, TaskWrite, TaskList),
    create = ("createTask", "Create a task.",
              "`task.created` is committed with it. A given `id` is kept."),
    list = ("listTasks", "List tasks, newest id first.",
            "Filters: `tag`, `updated_since`, `search`."),
    get = ("getTask", "Get one task.", "The `ETag` header is its version."),
    replace = ("replaceTask", "Replace a task.",
               "Emits `task.updated` with `changes`; a replace that moves nothing answers `changed: false` and emits nothing."),
    update = ("updateTask", "Change a task with a JSON merge patch.",
              "RFC 7386: `null` removes a field. Emits `task.updated` with `changes`."),
    delete = ("deleteTask", "Delete a task.", "`task.deleted` carries its id only."),
);

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
async fn create(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let ctx = context(&headers)?.with_idempotency_key(idempotency_key(&headers)?);
    let (w, replayed) = h.create_record_once(&who, kind, body(raw)?, ctx).await?;
    let v = w.version;
    let mut resp = with_etag(StatusCode::CREATED, w, v);
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    tag: Option<String>,
    updated_since: Option<String>,
    search: Option<String>,
}

/// List records, newest id first. Filters: `tag` (a tag name), `updated_since`, `search` (name,
/// company, email or title).
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
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: RecordIdPath,
    kind: RecordKind,
) -> Result<Response> {
    let v = h.get_record(&who, kind, &id.0).await?;
    let version = v.version;
    Ok(with_etag(StatusCode::OK, v, Some(version)))
}

/// Replace a record. Emits `*.updated` with `changes` (plus `*.assigned` / `deal.stage.changed`
/// when those fields move); a replace that moves nothing answers `changed: false` and emits nothing.
async fn replace(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: RecordIdPath,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let w = h
        .replace_record(&who, kind, &id.0, body(raw)?, context(&headers)?)
        .await?;
    let v = w.version;
    Ok(with_etag(StatusCode::OK, w, v))
}

/// Change a record with a JSON merge patch (RFC 7386: `null` removes a field).
async fn patch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: RecordIdPath,
    headers: HeaderMap,
    raw: RawJson,
    kind: RecordKind,
) -> Result<Response> {
    let w = h
        .patch_record(&who, kind, &id.0, body(raw)?, context(&headers)?)
        .await?;
    let v = w.version;
    Ok(with_etag(StatusCode::OK, w, v))
}

/// Delete a record; `*.deleted` carries its id only.
async fn remove(
    State(h): State<Hookline>,
    Auth(who): Auth,
    id: RecordIdPath,
    headers: HeaderMap,
    kind: RecordKind,
) -> Result<Json<WriteView>> {
    Ok(Json(
        h.delete_record(&who, kind, &id.0, context(&headers)?)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteInput {
    pub ids: Vec<String>,
}

/// Delete many contacts.
///
/// One `contact.deleted` event carries every deleted id. The same `Idempotency-Key` with the same
/// body answers the first result again (with `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/contacts/bulk-delete", tag = "contacts", operation_id = "bulkDeleteContacts",
    request_body = BulkDeleteInput,
    params(("X-Actor-Id" = Option<String>, Header, description = "the user who made the change"),
           ("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result")),
    responses((status = 200, description = "what was deleted and what was not found", body = BulkDeleteView, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))), (status = 400, response = BadRequest), (status = 409, response = Conflict),
              (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
              (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn bulk_delete(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    raw: RawJson,
) -> Result<Response> {
    let input: BulkDeleteInput = crate::json::parse_json(&raw.0)?;
    let ctx = context(&headers)?.with_idempotency_key(idempotency_key(&headers)?);
    let (view, replayed) = h
        .bulk_delete_once(&who, RecordKind::Contact, input.ids, ctx)
        .await?;
    Ok(maybe_replayed(StatusCode::OK, view, replayed))
}

/// Import contacts from JSON or CSV.
///
/// A JSON array or CSV (`Content-Type: text/csv`). Good rows are created, bad rows are reported and
/// skipped; `contact.created` goes out in batches of at most
/// `batch_max_size` with `batch {index, count, max_size}`, `source = contact_import`. The same
/// `Idempotency-Key` with the same body answers the first report again (with
/// `Idempotent-Replayed: true`) and imports nothing twice. An import of more than `job_step`
/// (1,000) rows runs as a background job: 202 with its `job` (follow it at `GET /v1/jobs/{id}`,
/// whose `result` holds the counts and the first refused rows); it commits a step of rows at a
/// time, so it never holds up other writes, and goes on after a restart.
#[utoipa::path(post, path = "/v1/contacts/import", tag = "contacts", operation_id = "importContacts",
    request_body(description = "the contacts: a JSON array, or CSV with a header row",
        content((Vec<Contact> = "application/json"), (String = "text/csv"))),
    params(("X-Actor-Id" = Option<String>, Header, description = "the user who made the change"),
           ("Idempotency-Key" = Option<String>, Header, description = "1-255 ASCII characters; a retry with the same key and body answers the first result")),
    responses((status = 200, description = "the result of each row", body = ImportView, headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key"))),
              (status = 202, description = "a large import, queued as a background job (`job`)", body = ImportView),
              (status = 400, response = BadRequest), (status = 409, response = Conflict),
              (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
              (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn import(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Response> {
    let format = ImportFormat::from_media_type(header(&headers, "content-type")?)?;
    let (view, replayed) = h
        .import_body_once(
            &who,
            format,
            bytes,
            header(&headers, "x-actor-id")?,
            idempotency_key(&headers)?,
        )
        .await?;
    let status = if view.job.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(maybe_replayed(status, view, replayed))
}
