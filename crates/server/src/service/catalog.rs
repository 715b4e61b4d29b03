//! The event catalog as every interface shows it: each event type with its description, aliases
//! and the name each wire format gives it.

use hookline_core::catalog::{self, Origin};
use hookline_core::webhook::Format;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct EventTypeView {
    /// Native name, as stored and as subscriptions are normalised to.
    pub name: &'static str,
    // What events of this type are about (`contact`, `deal`, `webhook`…); `entity` on the wire.
    #[serde(rename = "entity")]
    pub subject: &'static str,
    /// `entity` (from entity writes, publishable raw too), `raw` (published) or `operational`.
    #[schema(value_type = String)]
    #[schemars(with = "String")]
    pub origin: Origin,
    pub description: &'static str,
    pub aliases: Vec<&'static str>,
    /// The name as each format spells it on the wire; absent where a format can't carry the event.
    pub spellings: BTreeMap<&'static str, String>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

/// Every event type of the catalog, in catalog order.
pub fn event_types() -> EventTypeList {
    let data = catalog::CATALOG
        .iter()
        .map(|e| EventTypeView {
            name: e.name,
            subject: e.subject,
            origin: e.origin,
            description: e.description,
            aliases: e.aliases.to_vec(),
            spellings: Format::ALL
                .into_iter()
                .filter(|f| f.carries(e.name))
                .map(|f| (f.as_str(), f.event_name(e.name)))
                .collect(),
        })
        .collect();
    EventTypeList { data }
}
