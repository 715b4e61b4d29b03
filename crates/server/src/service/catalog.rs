//! The event catalog as every interface shows it: each event type with its description, aliases
//! and the name each wire format gives it.

use super::access::Principal;
use super::handle::Hookline;
use crate::error::{Error, Result};
use hookline_core::catalog::{self, Origin};
use hookline_core::ids::DeliveryId;
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

impl Hookline {
    /// A sample body of `event_type` in `format`, exactly as a delivery would carry it (the
    /// console's live example and the catalog page). An event the format can't carry is a 422.
    pub async fn example_body(
        &self,
        who: &Principal,
        format: Format,
        event_type: &str,
    ) -> Result<String> {
        let event = self.test_event(who, &[], format, Some(event_type))?;
        let tenant = self.tenant_name(who).await;
        let body = crate::attempt::render_body(&event, &tenant, format, DeliveryId::new(), None);
        String::from_utf8(body).map_err(|e| Error::Internal(e.to_string()))
    }
}
