//! `GET /v1/event-types`: the catalog (DESIGN §3) with every format's spelling.

use super::Auth;
use crate::error::{ErrorBody, Result};
use crate::service::Hookline;
use axum::routing::get;
use axum::{Json, Router};
use hookline_core::catalog::{self, Origin};
use hookline_core::webhook::Format;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub fn router() -> Router<Hookline> {
    Router::new().route("/event-types", get(list))
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeView {
    /// Native name, as stored and as subscriptions are normalised to.
    name: &'static str,
    entity: &'static str,
    /// `entity` (from entity writes, publishable raw too), `raw` (published) or `operational`.
    #[schema(value_type = String)]
    origin: Origin,
    description: &'static str,
    aliases: Vec<&'static str>,
    /// The name as each format spells it on the wire; absent where a format can't carry the event.
    spellings: BTreeMap<&'static str, String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeList {
    data: Vec<EventTypeView>,
}

/// The event catalog.
#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    responses((status = 200, body = EventTypeList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(Auth(_): Auth) -> Result<Json<EventTypeList>> {
    let data = catalog::CATALOG
        .iter()
        .map(|e| EventTypeView {
            name: e.name,
            entity: e.entity,
            origin: e.origin,
            description: e.description,
            aliases: e.aliases.to_vec(),
            spellings: Format::ALL
                .into_iter()
                .filter(|f| f.renderable().is_none_or(|r| r.contains(&e.name)))
                .map(|f| (f.as_str(), f.event_name(e.name)))
                .collect(),
        })
        .collect();
    Ok(Json(EventTypeList { data }))
}
