//! Which deliveries an event gets: one per matching enabled webhook, or one per object for formats
//! that carry one object per request. Computed here once; each backend only inserts the rows.

use crate::error::StoreError;
use crate::model::{Event, Published};
use crate::shared;
use hookline_core::catalog;
use hookline_core::formats::{self, EventFields};
use hookline_core::ids::{DeliveryId, EventId, WebhookId};
use hookline_core::webhook::{Format, Ordering};

/// What fan-out needs to know about an enabled webhook.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: WebhookId,
    pub events: Vec<String>,
    pub format: Format,
    /// Per-record ordering (`ordering: entity`): deliveries carry the event's `entity_id` as their
    /// ordering key.
    pub ordered: bool,
}

impl Subscriber {
    /// From an enabled webhook's stored columns (`events` as JSON text, `format`, `ordering`), read
    /// the same way by both backends.
    pub fn from_columns(
        id: WebhookId,
        events: &str,
        format: &str,
        ordering: &str,
    ) -> Result<Subscriber, String> {
        Ok(Subscriber {
            id,
            events: serde_json::from_str(events)
                .map_err(|e| format!("stored JSON is invalid: {e}"))?,
            format: shared::parse_format(format)?,
            ordered: shared::parse_ordering(ordering)? == Ordering::PerRecord,
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
    let mut needed = 0usize;
    for e in events {
        let fields = fields(e);
        for s in subscribers.iter().filter(|s| receives(s, e)) {
            needed = needed.saturating_add(formats::deliveries_needed(s.format, &fields));
            if needed > max {
                return Err(StoreError::TooManyDeliveries { limit: max, needed });
            }
        }
    }
    let mut published = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(needed);
    for e in events {
        let fields = fields(e);
        let mut delivery_ids = Vec::new();
        for s in subscribers.iter().filter(|s| receives(s, e)) {
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
