//! Publishing events: validation, idempotency, fan-out in one transaction.

use super::access::Principal;
use super::handle::Hookline;
use super::request::{self, Idempotency};
use crate::error::{Error, Result};
use hookline_core::catalog::{self, Origin};
use hookline_core::ids::EventId;
use hookline_core::{text, time};
use hookline_store::{Event, Page, PublishOutcome, Published};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most events in one publish request.
pub const MAX_BATCH: usize = 1000;

/// One event to publish.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Catalog name in any spelling (`contact.created`, `contacts.created`, `ContactCreated`).
    pub event_type: String,
    /// The object (or array of objects) the event is about; `{"ids": [...]}` for deletes.
    #[schema(value_type = Object)]
    pub data: Value,
    pub entity_type: Option<String>,
    /// Defaults to `data.id`.
    pub entity_id: Option<String>,
    /// What triggered it, e.g. `api`, `contact_import`.
    pub source: Option<String>,
    pub source_id: Option<String>,
    /// RFC 3339; defaults to now.
    pub occurred_at: Option<String>,
    /// For updates: `{field: {previous, current}}`.
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
}

/// Body of `POST /v1/events`: one event or an array of them.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PublishInput {
    One(Box<EventInput>),
    Many(Vec<EventInput>),
}

/// Answer of a publish: one entry per event, in request order.
#[derive(Debug, Clone, Serialize, ToSchema, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PublishOutput {
    One(PublishedView),
    Many { data: Vec<PublishedView> },
}

#[derive(Debug, Clone, Serialize, ToSchema, schemars::JsonSchema)]
pub struct PublishedView {
    pub id: Uuid,
    pub delivery_ids: Vec<Uuid>,
}

/// An event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub event_type: String,
    pub occurred_at: String,
    pub source: Option<String>,
    pub source_id: Option<String>,
    pub actor_id: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub batch: Option<Value>,
    pub created_at: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            id: e.id.into(),
            event_type: e.event_type,
            occurred_at: time::format(&e.occurred_at),
            source: e.source,
            source_id: e.source_id,
            actor_id: e.actor_id,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            data: e.data,
            changes: e.changes,
            batch: e.batch,
            created_at: time::format(&e.created_at),
        }
    }
}

/// A short single-line field: no control characters (the shared text rule), 1 to `max` bytes.
fn short(field: &str, v: &Option<String>, max: usize) -> Result<()> {
    let Some(s) = v else {
        return Ok(());
    };
    text::check_line(field, s)?;
    if s.is_empty() || s.len() > max {
        return Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be 1-{max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Validates one input and builds the event row. `prefix` locates errors in an array (`[3].`).
fn build(who: &Principal, actor: Option<&str>, input: EventInput, prefix: &str) -> Result<Event> {
    let f = |name: &str| format!("{prefix}{name}");
    let event_type = catalog::event_name(&input.event_type).ok_or_else(|| {
        Error::invalid(
            f("event_type"),
            "unknown_event_type",
            format!(
                "`{}` is not an event type; GET /v1/event-types lists them",
                input.event_type
            ),
        )
    })?;
    let entry = catalog::lookup(&event_type).ok_or_else(|| {
        Error::Internal(format!("`{event_type}` is a catalog name but has no entry"))
    })?;
    if entry.origin == Origin::Operational {
        return Err(Error::invalid(
            f("event_type"),
            "reserved_event_type",
            format!("{event_type} is emitted by Hookline itself and can't be published"),
        ));
    }
    if let Some(t) = &input.entity_type {
        if t != entry.subject {
            return Err(Error::invalid(
                f("entity_type"),
                "invalid",
                format!("{event_type} is about a {}, not a {t}", entry.subject),
            ));
        }
    }
    let deleting = event_type.ends_with(".deleted");
    match &input.data {
        Value::Object(m) if deleting => {
            let ok = match m.get("ids") {
                Some(Value::Array(ids)) => {
                    !ids.is_empty() && ids.iter().all(|i| i.is_string() || i.is_number())
                }
                Some(_) => false,
                None => m.get("id").is_some_and(|i| i.is_string() || i.is_number()),
            };
            if !ok {
                return Err(Error::invalid(
                    f("data"),
                    "invalid",
                    "a delete carries ids only: {\"ids\": [\"id1\", ...]} or {\"id\": \"id1\"}",
                ));
            }
        }
        Value::Object(_) => {}
        Value::Array(items) if !deleting && entry.origin == Origin::RecordWrite => {
            if items.is_empty() || !items.iter().all(Value::is_object) {
                return Err(Error::invalid(
                    f("data"),
                    "invalid",
                    "a batch must be a non-empty array of objects",
                ));
            }
        }
        _ => {
            return Err(Error::invalid(
                f("data"),
                "invalid",
                "data must be a JSON object (or, for entity events, an array of objects)",
            ))
        }
    }
    // Stored whole: escaped control characters are kept, NUL is refused (PostgreSQL can't hold it
    // in the text it becomes, e.g. an entity id taken from `data.id`).
    text::check_json(&f("data"), &input.data)?;
    if let Some(c) = &input.changes {
        text::check_json(&f("changes"), c)?;
    }
    if let Some(c) = &input.changes {
        let ok = c.as_object().is_some_and(|m| {
            m.values().all(|v| {
                v.as_object()
                    .is_some_and(|o| o.contains_key("previous") && o.contains_key("current"))
            })
        });
        if !ok {
            return Err(Error::invalid(
                f("changes"),
                "invalid",
                "changes must be {field: {previous, current}}",
            ));
        }
    }
    short(&f("source"), &input.source, 64)?;
    short(&f("source_id"), &input.source_id, 256)?;
    short(&f("entity_id"), &input.entity_id, 256)?;
    let occurred_at = match &input.occurred_at {
        Some(s) => time::parse(s).ok_or_else(|| {
            Error::invalid(
                f("occurred_at"),
                "invalid",
                "occurred_at must be an RFC 3339 timestamp",
            )
        })?,
        None => time::now(),
    };
    let derived = input.entity_id.is_none();
    let entity_id = input.entity_id.or_else(|| match input.data.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    // An entity id taken from `data.id` is single-line text like a given one.
    if let (true, Some(id)) = (derived, &entity_id) {
        text::check_line(&f("data.id"), id)?;
    }
    Ok(Event {
        id: EventId::new(),
        tenant_id: who.tenant_id,
        event_type,
        occurred_at,
        source: input.source,
        source_id: input.source_id,
        actor_id: actor
            .map(str::to_string)
            .or_else(|| who.default_user_id.clone()),
        entity_type: Some(entry.subject.to_string()),
        entity_id,
        data: input.data,
        changes: input.changes,
        batch: None,
        created_at: time::now(),
    })
}

fn view(p: &Published) -> PublishedView {
    PublishedView {
        id: p.id.into(),
        delivery_ids: p.delivery_ids.iter().map(|&d| d.into()).collect(),
    }
}

impl Hookline {
    /// Publishes one or many events. With an `idempotency_key`, the same key and the same request
    /// answer the first result again; the same key with another request is refused.
    /// Returns the answer and whether it is a replay of an earlier request.
    pub async fn publish(
        &self,
        who: &Principal,
        actor: Option<&str>,
        input: PublishInput,
        idempotency_key: Option<&str>,
    ) -> Result<(PublishOutput, bool)> {
        use tracing::Instrument;
        let span = crate::telemetry::publish_span(who.tenant_id);
        let result = self
            .publish_events(who, actor, input, idempotency_key)
            .instrument(span.clone())
            .await;
        match &result {
            Ok((out, replayed)) => {
                let views = match out {
                    PublishOutput::One(v) => std::slice::from_ref(v),
                    PublishOutput::Many { data } => data.as_slice(),
                };
                let events = views.iter().map(|v| (v.id, v.delivery_ids.as_slice()));
                crate::telemetry::publish_finished(&span, events, *replayed);
            }
            Err(e) => crate::telemetry::publish_failed(&span, e),
        }
        result
    }

    async fn publish_events(
        &self,
        who: &Principal,
        actor: Option<&str>,
        input: PublishInput,
        idempotency_key: Option<&str>,
    ) -> Result<(PublishOutput, bool)> {
        who.require_tenant_write()?;
        let idempotency =
            Idempotency::optional(idempotency_key, &input)?.map(|i| (i.key, i.fingerprint));
        let actor = request::actor_id(actor)?;
        let actor = actor.as_deref();
        let (events, many) = match input {
            PublishInput::One(e) => (vec![build(who, actor, *e, "")?], false),
            PublishInput::Many(list) => {
                if list.is_empty() || list.len() > MAX_BATCH {
                    return Err(Error::invalid(
                        ".",
                        "invalid",
                        format!("send 1 to {MAX_BATCH} events per request"),
                    ));
                }
                let events = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| build(who, actor, e, &format!("[{i}].")))
                    .collect::<Result<Vec<_>>>()?;
                (events, true)
            }
        };
        let committing = std::time::Instant::now();
        let outcome = self
            .store
            .publish(
                who.tenant_id,
                events,
                idempotency,
                self.config.max_deliveries_per_publish,
            )
            .await?;
        self.metrics
            .stage(crate::metrics::Stage::Commit, committing.elapsed());
        let (published, replayed) = match outcome {
            PublishOutcome::Published(p) => (p, false),
            PublishOutcome::Replayed(p) => (p, true),
            PublishOutcome::KeyReused => return Err(super::idempotency::key_reused()),
        };
        if !replayed && published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let out = if many {
            PublishOutput::Many {
                data: published.iter().map(view).collect(),
            }
        } else {
            PublishOutput::One(view(&published[0]))
        };
        Ok((out, replayed))
    }

    pub async fn get_event(&self, who: &Principal, id: EventId) -> Result<EventView> {
        who.require_tenant_wide()?;
        self.store
            .get_event(who.tenant_id, id)
            .await?
            .map(EventView::from)
            .ok_or_else(|| Error::not_found("event"))
    }

    pub async fn list_events(
        &self,
        who: &Principal,
        event_type: Option<&str>,
        page: Page,
    ) -> Result<Vec<EventView>> {
        who.require_tenant_wide()?;
        let event_type = match event_type {
            Some(t) => Some(catalog::event_name(t).ok_or_else(|| {
                Error::bad_request(
                    "invalid_query",
                    format!("unknown event type `{t}`"),
                    Some("event_type"),
                )
            })?),
            None => None,
        };
        let rows = self
            .store
            .list_events(who.tenant_id, event_type, page)
            .await?;
        Ok(rows.into_iter().map(EventView::from).collect())
    }
}
