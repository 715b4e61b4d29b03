//! Which deliveries an event gets: one per matching enabled webhook, or one per object for formats
//! that carry one object per request. Computed here once; each backend only inserts the rows.
//!
//! A webhook with a payload filter (`hookline_core::filter`) gets an event only when the filter
//! matches it. The filter reads the event as receivers know it ([`filter_input`]), built once per
//! event whatever the number of subscribers; operational events (`webhook.*`, `delivery.*`) are
//! filtered like any other. A filter is parsed once per publish, when the subscribers are read.

use crate::error::StoreError;
use crate::model::{Event, Published};
use crate::shared;
use hookline_core::catalog;
use hookline_core::filter::Filter;
use hookline_core::formats::{self, EventFields};
use hookline_core::ids::{DeliveryId, EventId, WebhookId};
use hookline_core::time;
use hookline_core::webhook::{Format, Ordering};
use serde_json::{json, Value};

/// What fan-out needs to know about an enabled webhook.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: WebhookId,
    pub events: Vec<String>,
    pub format: Format,
    /// Per-record ordering (`ordering: entity`): deliveries carry the event's `entity_id` as their
    /// ordering key.
    pub ordered: bool,
    /// Which of the events it subscribes to it gets.
    pub gate: Gate,
}

/// A subscriber's payload filter, parsed.
#[derive(Debug, Clone)]
pub enum Gate {
    /// No filter: every event it subscribes to.
    All,
    /// Only events the filter matches.
    Filter(Box<Filter>),
    /// A stored filter that no longer parses (saved under an older, looser language, or edited in
    /// the database): nothing, with a warning per publish. Sending everything would be the
    /// surprise a filter exists to prevent, and failing the publish would punish every other
    /// webhook of the tenant.
    Nothing,
}

impl Gate {
    /// From the stored `filter` column of webhook `id`; a source that doesn't parse is logged.
    pub fn from_column(id: WebhookId, filter: Option<&str>) -> Gate {
        match filter.map(Filter::parse) {
            None => Gate::All,
            Some(Ok(f)) => Gate::Filter(Box::new(f)),
            Some(Err(e)) => {
                tracing::warn!(
                    webhook_id = %id,
                    error = %e,
                    "stored webhook filter does not parse; the webhook gets no events until it is fixed"
                );
                Gate::Nothing
            }
        }
    }

    fn admits(&self, input: &Value) -> bool {
        match self {
            Gate::All => true,
            Gate::Filter(f) => f.matches(input),
            Gate::Nothing => false,
        }
    }
}

impl Subscriber {
    /// From an enabled webhook's stored columns (`events` as JSON text, `format`, `ordering`,
    /// `filter`), read the same way by both backends.
    pub fn from_columns(
        id: WebhookId,
        events: &str,
        format: &str,
        ordering: &str,
        filter: Option<&str>,
    ) -> Result<Subscriber, String> {
        Ok(Subscriber {
            id,
            events: serde_json::from_str(events)
                .map_err(|e| format!("stored JSON is invalid: {e}"))?,
            format: shared::parse_format(format)?,
            ordered: shared::parse_ordering(ordering)? == Ordering::PerRecord,
            gate: Gate::from_column(id, filter),
        })
    }
}

/// One delivery row to insert.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    pub item_index: Option<i64>,
    /// Rendering is fixed here: how many deliveries an event got depends on it.
    pub format: Format,
    pub ordering_key: Option<String>,
}

/// The deliveries of `events` for `subscribers`, and the answer per event; `TooManyDeliveries` as
/// soon as there would be more than `max` (counted before any row is built, so an oversized
/// publish costs no memory).
pub fn plan(
    events: &[Event],
    subscribers: &[Subscriber],
    max: usize,
) -> Result<(Vec<Published>, Vec<NewDelivery>), StoreError> {
    // Who receives each event, decided once: a filter runs once per event and subscriber.
    let mut receivers: Vec<Vec<&Subscriber>> = Vec::with_capacity(events.len());
    let mut needed = 0usize;
    for e in events {
        let fields = fields(e);
        // Built when the first filtered subscriber of this event needs it, then shared.
        let mut input = None;
        let mut chosen = Vec::new();
        for s in subscribers.iter().filter(|s| receives(s, e)) {
            let admitted = match &s.gate {
                Gate::All => true,
                gate => gate.admits(input.get_or_insert_with(|| filter_input(e))),
            };
            if admitted {
                chosen.push(s);
            }
        }
        for s in &chosen {
            needed = needed.saturating_add(formats::deliveries_needed(s.format, &fields));
            if needed > max {
                return Err(StoreError::TooManyDeliveries { limit: max, needed });
            }
        }
        receivers.push(chosen);
    }
    let mut published = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(needed);
    for (e, chosen) in events.iter().zip(receivers) {
        let fields = fields(e);
        let mut delivery_ids = Vec::new();
        for s in chosen {
            let split = !formats::carries_batches(s.format);
            for item in 0..formats::deliveries_needed(s.format, &fields) {
                let id = DeliveryId::new();
                rows.push(NewDelivery {
                    id,
                    webhook_id: s.id,
                    event_id: e.id,
                    event_type: e.event_type.clone(),
                    item_index: split.then_some(item as i64),
                    format: s.format,
                    ordering_key: if s.ordered { e.entity_id.clone() } else { None },
                });
                delivery_ids.push(id);
            }
        }
        published.push(Published {
            id: e.id,
            delivery_ids,
        });
    }
    Ok((published, rows))
}

/// Does this subscriber get this event? It subscribes to it, and the event is not an operational
/// one about this very webhook ([`catalog::excluded_webhook`]).
fn receives(s: &Subscriber, e: &Event) -> bool {
    catalog::subscribed(&s.events, &e.event_type)
        && catalog::excluded_webhook(&e.event_type, &e.data)
            .is_none_or(|w| w != s.id.to_string().as_str())
}

/// What a payload filter reads: the event as receivers know it, one JSON object with
/// `id`, `type` (the native name, e.g. `deal.updated`), `occurred_at` (RFC 3339, UTC), `source`,
/// `source_id`, `actor` (the actor id), `entity_type`, `entity_id`, `data` and `changes`. A field
/// the event doesn't carry is `null` (as any key missing from it would be). The same object is
/// what `POST /v1/webhooks/filter-test` takes as its `event`.
pub fn filter_input(e: &Event) -> Value {
    json!({
        "id": e.id.to_string(),
        "type": e.event_type,
        "occurred_at": time::format(&e.occurred_at),
        "source": e.source,
        "source_id": e.source_id,
        "actor": e.actor_id,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "data": e.data,
        "changes": e.changes,
    })
}

/// What the catalog and formats read of an event.
fn fields(e: &Event) -> EventFields<'_> {
    EventFields {
        id: e.id,
        event_type: &e.event_type,
        occurred_at: e.occurred_at,
        source: e.source.as_deref(),
        source_id: e.source_id.as_deref(),
        actor_id: e.actor_id.as_deref(),
        tenant: "",
        entity_id: e.entity_id.as_deref(),
        data: &e.data,
        changes: e.changes.as_ref(),
        batch: e.batch.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::ids::TenantId;

    fn event(event_type: &str, data: Value) -> Event {
        let now = time::now();
        Event {
            id: EventId::new(),
            tenant_id: TenantId::new(),
            event_type: event_type.into(),
            occurred_at: now,
            source: Some("api".into()),
            source_id: None,
            actor_id: Some("u_1".into()),
            entity_type: None,
            entity_id: None,
            data,
            changes: None,
            batch: None,
            created_at: now,
        }
    }

    fn subscriber(filter: Option<&str>) -> Subscriber {
        let id = WebhookId::new();
        Subscriber::from_columns(
            id,
            r#"["*", "webhook.disabled"]"#,
            "envelope",
            "none",
            filter,
        )
        .unwrap()
    }

    #[test]
    fn a_filter_reads_the_event_as_receivers_know_it() {
        let e = event("deal.updated", json!({"amount": 5}));
        let input = filter_input(&e);
        assert_eq!(input["type"], "deal.updated");
        assert_eq!(input["actor"], "u_1");
        assert_eq!(input["source"], "api");
        assert_eq!(input["data"], json!({"amount": 5}));
        assert_eq!(input["changes"], Value::Null);
        assert_eq!(input["id"], e.id.to_string());
        assert_eq!(input["occurred_at"], time::format(&e.occurred_at));
    }

    #[test]
    fn only_subscribers_whose_filter_matches_get_deliveries() {
        let all = subscriber(None);
        let big = subscriber(Some("data.amount >= 1000"));
        let broken = subscriber(Some("data.amount >="));
        assert!(matches!(broken.gate, Gate::Nothing));
        let subs = [all.clone(), big.clone(), broken];
        let events = [
            event("deal.updated", json!({"amount": 1000})),
            event("deal.updated", json!({"amount": 999})),
        ];
        let (published, rows) = plan(&events, &subs, 10).unwrap();
        assert_eq!(published[0].delivery_ids.len(), 2);
        assert_eq!(published[1].delivery_ids.len(), 1);
        assert_eq!(rows.len(), 3);
        assert!(rows[2].webhook_id == all.id);
        // The limit counts only what filters let through.
        assert!(plan(&events, &subs, 3).is_ok());
        assert!(plan(&events, &subs, 2).is_err());
    }

    #[test]
    fn operational_events_are_filtered_the_same_way() {
        let by_reason = subscriber(Some(
            r#"type == "webhook.disabled" && data.reason == "endpoint_gone""#,
        ));
        let gone = event(
            "webhook.disabled",
            json!({"id": "x", "reason": "endpoint_gone"}),
        );
        let failing = event("webhook.disabled", json!({"id": "x", "reason": "failing"}));
        let (published, _) = plan(&[gone, failing], &[by_reason], 10).unwrap();
        assert_eq!(published[0].delivery_ids.len(), 1);
        assert_eq!(published[1].delivery_ids.len(), 0);
    }
}
