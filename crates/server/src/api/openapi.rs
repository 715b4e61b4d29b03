//! The OpenAPI document, generated from the handlers' annotations: `GET /v1/openapi.json`, served
//! without a key (it describes the API and holds no tenant data), and rendered as the reference
//! page at `/docs`.
//!
//! Every operation has a unique `operationId`, every record kind its own paths and schemas, and
//! every error an operation can answer is documented with the shared [`ErrorBody`] shape (the
//! responses in `responses.rs`): in its annotation, and those that follow from its shape (a key,
//! a body, an id in the path) by [`CommonErrors`]. `scripts/openapi-check` validates the document with
//! an OpenAPI validator and creates a webhook through a client generated from it.

use super::responses::{
    BadRequest, Conflict, Forbidden, HeadersTooLarge, Internal, Invalid, NotFound, PayloadTooLarge,
    Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::error::ErrorBody;
use crate::service::{Hookline, RecordView, WriteView};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookline API",
        description = "Webhooks for a CRM: subscriptions, events, deliveries and the CRM records whose writes emit events.\n\n\
Every operation needs `Authorization: Bearer <API key>`; a key sees only its own tenant's data. Errors always look like \
`{\"error\": {\"code\", \"message\", \"field\"?}}`. Lists answer `{\"data\": [...], \"next_cursor\"}` and take `limit` and `cursor`."
    ),
    paths(
        super::webhooks::create, super::webhooks::list, super::webhooks::fetch, super::webhooks::update,
        super::webhooks::remove, super::webhooks::secret, super::webhooks::rotate,
        super::webhooks::test, super::webhooks::test_url, super::webhooks::replay,
        super::webhooks::verify_receiver, super::webhooks::filter_test,
        super::events::publish, super::events::list, super::events::fetch,
        super::deliveries::list, super::deliveries::fetch, super::deliveries::resend,
        super::deliveries::cancel,
        super::event_types::list,
        super::records::contacts::create, super::records::contacts::list, super::records::contacts::fetch,
        super::records::contacts::replace, super::records::contacts::update, super::records::contacts::remove,
        super::records::bulk_delete, super::records::import,
        super::records::organizations::create, super::records::organizations::list,
        super::records::organizations::fetch, super::records::organizations::replace,
        super::records::organizations::update, super::records::organizations::remove,
        super::records::deals::create, super::records::deals::list, super::records::deals::fetch,
        super::records::deals::replace, super::records::deals::update, super::records::deals::remove,
        super::records::services::create, super::records::services::list, super::records::services::fetch,
        super::records::services::replace, super::records::services::update, super::records::services::remove,
        super::records::tasks::create, super::records::tasks::list, super::records::tasks::fetch,
        super::records::tasks::replace, super::records::tasks::update, super::records::tasks::remove,
        super::portal::create_portal_session, super::portal::revoke_portal_session,
        super::portal::revoke_all_portal_sessions,
        super::keys::list, super::keys::create, super::keys::revoke,
        super::jobs::list, super::jobs::fetch, super::jobs::cancel,
        super::erasures::create, super::erasures::list, super::erasures::fetch,
        super::listen::listen, super::listen::report,
    ),
    components(
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
                  UnsupportedMediaType, Invalid, HeadersTooLarge, Unavailable, Internal),
        // Earlier names of the record shapes, kept so that clients generated before keep their types.
        schemas(ErrorBody, RecordView, WriteView),
    ),
    tags(
        (name = "webhooks", description = "Subscriptions: a URL, the events it wants, a format and a signing secret."),
        (name = "events", description = "Publish events; each matching webhook gets a delivery. The event catalog."),
        (name = "deliveries", description = "The delivery log with every attempt, resend and cancel."),
        (name = "contacts", description = "CRM contacts kept by Hookline: each write commits the contact, its events and their deliveries together."),
        (name = "organizations", description = "CRM organizations kept by Hookline."),
        (name = "deals", description = "CRM deals kept by Hookline."),
        (name = "services", description = "CRM services kept by Hookline."),
        (name = "tasks", description = "CRM tasks kept by Hookline."),
        (name = "jobs", description = "Background jobs (replays): progress, listing, cancel. A job survives restarts."),
        (name = "erasures", description = "Right to erasure: remove one record from every stored event, delivery log and stored answer, as a background job whose result is the audit entry (counts, never the data)."),
        (name = "listen", description = "`hookline listen`: deliveries to a machine without a public URL, through a server-sent event stream and a temporary webhook."),
        (name = "api-keys", description = "The tenant's API keys: list, create (the key is shown once), revoke. A `read` key may only make GET requests."),
    ),
    modifiers(&BearerAuth, &CommonErrors),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hk_…")
                    .description(Some("An API key: `Authorization: Bearer hk_…`"))
                    .build(),
            ),
        );
    }
}

/// Adds the errors that follow from an operation's shape, wherever its annotation doesn't list
/// them: any operation that needs a key can answer 400 (a query parameter it doesn't take, or one
/// given twice), 401, 431 (too many or too large headers), 500 and 503, and any but a GET 403 (a
/// `read` key may only read); one with a body 400 (malformed), 413 (too large), 415 (not JSON) and
/// 422 (invalid); one with an `{id}` in its path 400 (malformed id) and 404.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_id = path.contains("{id}");
            let operations = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (op, changes) in operations.into_iter() {
                let Some(op) = op else { continue };
                if op.security.as_ref().is_none_or(|s| s.is_empty()) {
                    continue;
                }
                let mut errors = vec![
                    ("400", "BadRequest"),
                    ("401", "Unauthorized"),
                    ("431", "HeadersTooLarge"),
                    ("500", "Internal"),
                    ("503", "Unavailable"),
                ];
                if changes {
                    errors.push(("403", "Forbidden"));
                }
                if op.request_body.is_some() {
                    errors.extend([
                        ("400", "BadRequest"),
                        ("413", "PayloadTooLarge"),
                        ("415", "UnsupportedMediaType"),
                        ("422", "Invalid"),
                    ]);
                }
                if has_id {
                    errors.extend([("400", "BadRequest"), ("404", "NotFound")]);
                }
                for (status, name) in errors {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The document as served (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the document serializes")
    })
}

pub fn router() -> Router<Hookline> {
    Router::new().route(
        "/openapi.json",
        get(|| async { ([(CONTENT_TYPE, "application/json")], document_json()) }),
    )
}
