//! The OpenAPI document, generated from the handlers' annotations (`GET /v1/openapi.json`).

use super::extract::Auth;
use crate::service::Hookline;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookline API", description = "Webhooks for a CRM: subscriptions, events, deliveries."),
    paths(
        super::webhooks::create, super::webhooks::list, super::webhooks::fetch, super::webhooks::update,
        super::webhooks::remove, super::webhooks::secret, super::webhooks::rotate,
        super::webhooks::test, super::webhooks::test_url, super::webhooks::replay,
        super::webhooks::verify_receiver,
        super::events::publish, super::events::list, super::events::fetch,
        super::deliveries::list, super::deliveries::fetch, super::deliveries::resend,
        super::event_types::list,
        super::records::create, super::records::list, super::records::fetch, super::records::replace,
        super::records::patch, super::records::remove, super::records::bulk_delete, super::records::import,
    ),
    modifiers(&BearerAuth),
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
                    .build(),
            ),
        );
    }
}

pub fn router() -> Router<Hookline> {
    Router::new().route("/openapi.json", get(document))
}

async fn document(Auth(_): Auth) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
