//! CRM records: create, read, list, replace, merge-patch, delete, bulk delete and
//! import, each committing the record, its events and their deliveries in one transaction.

use super::access::Principal;
use super::handle::Hookline;
use super::request::{self, ImportFormat, Interface};
use crate::error::{Error, Result};
use hookline_core::ids::{self, EventId};
use hookline_core::record::{self, RecordId, RecordKind, Refusal, Write};
use hookline_core::time;
use hookline_store::{Event, Published, RecordFilter, RecordPlan, RecordRow};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who and what caused a write: every event carries its actor and source.
#[derive(Debug, Clone, Default)]
pub struct WriteContext {
    /// `X-Actor-Id`, else the key's default user.
    pub actor: Option<String>,
    /// `api`, `contact_import`, `mcp`, `ui`, `test`…
    pub source: Option<String>,
    pub source_id: Option<String>,
    /// `If-Match`: the version the caller last saw.
    pub if_match: Option<u64>,
}

impl WriteContext {
    /// The context of a write made through `interface`: the actor and `If-Match` as the caller
    /// gave them, validated by the rules every interface shares.
    pub fn from_request(
        interface: Interface,
        actor: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<WriteContext> {
        Ok(WriteContext {
            actor: request::actor_id(actor)?,
            source: Some(interface.source().to_string()),
            source_id: None,
            if_match: request::if_match(if_match)?,
        })
    }
}

/// A record with its version.
// Published in the OpenAPI document under its earlier name, so generated clients keep their types.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
#[schema(as = EntityView)]
pub struct RecordView {
    #[schema(value_type = Object)]
    pub data: Value,
    /// Send it back as `If-Match` to refuse a write over someone else's change.
    pub version: u64,
}

/// The answer of a write.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteView {
    /// The record after the write (`null` after a delete).
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub version: Option<u64>,
    /// False when the write moved nothing: nothing was stored and no event emitted.
    pub changed: bool,
    pub events: Vec<EmittedEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmittedEvent {
    pub id: Uuid,
    pub event_type: String,
    pub delivery_ids: Vec<Uuid>,
}

/// Result of a bulk delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteView {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub events: Vec<EmittedEvent>,
}

/// One row of an import: its 1-based number and the contact it holds (or why it can't be read).
pub struct ImportRow {
    pub row: usize,
    pub contact: std::result::Result<Value, hookline_core::webhook::FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowResult {
    pub row: usize,
    /// `created` or `error`.
    pub status: &'static str,
    pub id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    /// `source_id` of the import's events.
    pub import_id: String,
    pub created: usize,
    pub failed: usize,
    /// `contact.created` events, one per batch of at most `batch_max_size` contacts.
    pub events: Vec<EmittedEvent>,
    pub rows: Vec<ImportRowResult>,
}

/// What a bulk delete's plan decided, read back after the commit.
#[derive(Default)]
struct BulkOutcome {
    deleted: Vec<String>,
    missing: Vec<String>,
    events: Vec<Event>,
}

fn reject(e: Error) -> hookline_store::Rejection {
    Box::new(e)
}

fn refusal(kind: RecordKind, r: Refusal) -> Error {
    match r {
        Refusal::NotFound => Error::not_found(kind.as_str()),
        Refusal::AlreadyExists => Error::Conflict {
            code: "already_exists",
            message: format!("a {} with this id already exists", kind.as_str()),
        },
        Refusal::Invalid(f) => Error::Invalid(f),
    }
}

fn emitted(events: &[Event], published: &[Published]) -> Vec<EmittedEvent> {
    events
        .iter()
        .zip(published)
        .map(|(e, p)| EmittedEvent {
            id: p.id.into(),
            event_type: e.event_type.clone(),
            delivery_ids: p.delivery_ids.iter().map(|&d| d.into()).collect(),
        })
        .collect()
}

impl Hookline {
    fn event_for(
        &self,
        who: &Principal,
        ctx: &WriteContext,
        kind: RecordKind,
        spec: record::EventSpec,
        entity_id: Option<&str>,
    ) -> Event {
        let now = time::now();
        Event {
            id: EventId::new(),
            tenant_id: who.tenant_id,
            event_type: spec.event_type,
            occurred_at: now,
            source: ctx.source.clone(),
            source_id: ctx.source_id.clone(),
            actor_id: ctx.actor.clone().or_else(|| who.default_user_id.clone()),
            entity_type: Some(kind.as_str().to_string()),
            entity_id: entity_id.map(str::to_string),
            data: spec.data,
            changes: spec.changes,
            batch: None,
            created_at: now,
        }
    }

    /// One write to one record: read, decide and write atomically.
    async fn write_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        id: String,
        write: Write,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        let this = self.clone();
        let who2 = who.clone();
        let id2 = id.clone();
        let seen: Arc<Mutex<Option<RecordRow>>> = Arc::default();
        let seen2 = seen.clone();
        let events_out: Arc<Mutex<Vec<Event>>> = Arc::default();
        let events2 = events_out.clone();
        let plan = Box::new(move |rows: Vec<Option<RecordRow>>| {
            let current = rows.into_iter().next().flatten();
            *seen2.lock().expect("plan slot") = current.clone();
            if let (Some(expected), Some(cur)) = (ctx.if_match, &current) {
                if cur.version != expected {
                    return Err(reject(Error::Conflict {
                        code: "version_conflict",
                        message: format!(
                            "the {} is at version {}, not {expected}; read it again",
                            kind.as_str(),
                            cur.version
                        ),
                    }));
                }
            }
            let doc = current.as_ref().and_then(|r| r.data.as_object());
            let now = time::format(&time::now());
            let planned =
                record::plan(kind, &id2, write, doc, &now).map_err(|r| reject(refusal(kind, r)))?;
            let events: Vec<Event> = planned
                .events
                .into_iter()
                .map(|spec| this.event_for(&who2, &ctx, kind, spec, Some(&id2)))
                .collect();
            *events2.lock().expect("plan slot") = events.clone();
            Ok(RecordPlan {
                upserts: planned
                    .doc
                    .map(|d| (id2.clone(), Value::Object(d)))
                    .into_iter()
                    .collect(),
                deletes: if planned.changed
                    && current.is_some()
                    && events.iter().any(|e| e.event_type.ends_with(".deleted"))
                {
                    vec![id2.clone()]
                } else {
                    vec![]
                },
                events,
            })
        });
        let (published, written) = self
            .store
            .mutate_records(who.tenant_id, kind.as_str(), vec![id], plan)
            .await?;
        let events = events_out.lock().expect("plan slot").clone();
        if published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let changed = !events.is_empty();
        let (data, version) = match written.into_iter().next() {
            Some(row) => (Some(row.data), Some(row.version)),
            None if changed => (None, None),
            // Unchanged: answer with the record as it stands.
            None => {
                let cur = seen.lock().expect("plan slot").clone();
                (cur.as_ref().map(|r| r.data.clone()), cur.map(|r| r.version))
            }
        };
        Ok(WriteView {
            data,
            version,
            changed,
            events: emitted(&events, &published),
        })
    }

    pub async fn create_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        body: Value,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        who.require_tenant_wide()?;
        let id = match body.get("id") {
            None | Some(Value::Null) => ids::new_id().to_string(),
            Some(Value::String(s)) => {
                record::validate_id(s)?;
                s.clone()
            }
            Some(_) => return Err(Error::invalid("id", "invalid_type", "id must be a string")),
        };
        self.write_record(who, kind, id, Write::Create(body), ctx)
            .await
    }

    pub async fn replace_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        id: &RecordId,
        body: Value,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        who.require_tenant_wide()?;
        self.write_record(
            who,
            kind,
            id.as_str().to_string(),
            Write::Replace(body),
            ctx,
        )
        .await
    }

    pub async fn patch_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        id: &RecordId,
        patch: Value,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        who.require_tenant_wide()?;
        self.write_record(who, kind, id.as_str().to_string(), Write::Patch(patch), ctx)
            .await
    }

    pub async fn delete_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        id: &RecordId,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        who.require_tenant_wide()?;
        self.write_record(who, kind, id.as_str().to_string(), Write::Delete, ctx)
            .await
    }

    pub async fn get_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        id: &RecordId,
    ) -> Result<RecordView> {
        who.require_tenant_wide()?;
        let row = self
            .store
            .get_record(who.tenant_id, kind.as_str(), id.as_str())
            .await?
            .ok_or_else(|| Error::not_found(kind.as_str()))?;
        Ok(RecordView {
            data: row.data,
            version: row.version,
        })
    }

    pub async fn list_records(
        &self,
        who: &Principal,
        kind: RecordKind,
        filter: RecordFilter,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<RecordView>> {
        who.require_tenant_wide()?;
        let rows = self
            .store
            .list_records(who.tenant_id, kind.as_str(), filter, before, limit)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RecordView {
                data: r.data,
                version: r.version,
            })
            .collect())
    }

    /// Deletes many records at once and emits one `*.deleted` event carrying every deleted id.
    pub async fn bulk_delete(
        &self,
        who: &Principal,
        kind: RecordKind,
        ids_in: Vec<String>,
        ctx: WriteContext,
    ) -> Result<BulkDeleteView> {
        who.require_tenant_wide()?;
        if ids_in.is_empty() || ids_in.len() > 10_000 {
            return Err(Error::invalid("ids", "invalid", "send 1 to 10000 ids"));
        }
        let mut unique = Vec::with_capacity(ids_in.len());
        for id in ids_in {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let this = self.clone();
        let who2 = who.clone();
        let outcome: Arc<Mutex<BulkOutcome>> = Arc::default();
        let out2 = outcome.clone();
        let ids2 = unique.clone();
        let plan = Box::new(move |rows: Vec<Option<RecordRow>>| {
            let (mut deleted, mut missing) = (Vec::new(), Vec::new());
            for (id, row) in ids2.iter().zip(rows) {
                if row.is_some() {
                    deleted.push(id.clone())
                } else {
                    missing.push(id.clone())
                }
            }
            let events = if deleted.is_empty() {
                vec![]
            } else {
                let spec = record::EventSpec {
                    event_type: format!("{}.deleted", kind.as_str()),
                    data: json!({"ids": deleted}),
                    changes: None,
                };
                vec![this.event_for(&who2, &ctx, kind, spec, None)]
            };
            *out2.lock().expect("plan slot") = BulkOutcome {
                deleted: deleted.clone(),
                missing,
                events: events.clone(),
            };
            Ok(RecordPlan {
                upserts: vec![],
                deletes: deleted,
                events,
            })
        });
        let (published, _) = self
            .store
            .mutate_records(who.tenant_id, kind.as_str(), unique, plan)
            .await?;
        if published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let o = std::mem::take(&mut *outcome.lock().expect("plan slot"));
        Ok(BulkDeleteView {
            deleted: o.deleted,
            not_found: o.missing,
            events: emitted(&o.events, &published),
        })
    }

    /// Imports an import body in one go: parses it as `format`, under a new import id.
    pub async fn import_body(
        &self,
        who: &Principal,
        format: ImportFormat,
        bytes: &[u8],
        actor: Option<&str>,
    ) -> Result<ImportView> {
        who.require_tenant_wide()?;
        let rows = parse_import(format == ImportFormat::Csv, bytes)?;
        let actor = request::actor_id(actor)?;
        let import_id = ids::new_id().to_string();
        self.import_contacts(who, rows, &import_id, 1, actor).await
    }

    /// Imports contacts: every good row is created, every bad row reported and skipped, and
    /// `contact.created` goes out in batches of at most `batch_max_size` contacts
    /// (`batch = {index, count, max_size}`, `source = contact_import`, `source_id` = the import id).
    /// `first_batch` lets a caller that imports in chunks (the CLI) continue the batch numbering.
    pub async fn import_contacts(
        &self,
        who: &Principal,
        rows: Vec<ImportRow>,
        import_id: &str,
        first_batch: usize,
        actor: Option<String>,
    ) -> Result<ImportView> {
        who.require_tenant_wide()?;
        if rows.len() > 100_000 {
            return Err(Error::invalid(
                ".",
                "too_long",
                "import at most 100000 contacts per request",
            ));
        }
        let max_size = self.config.batch_max_size;
        // Ids first, so the store can read any that already exist.
        let mut planned_ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = match &r.contact {
                Ok(c) => match c.get("id") {
                    Some(Value::String(s)) => s.clone(),
                    _ => ids::new_id().to_string(),
                },
                Err(_) => String::new(),
            };
            planned_ids.push(id);
        }
        let ctx = WriteContext {
            actor,
            source: Some("contact_import".into()),
            source_id: Some(import_id.to_string()),
            if_match: None,
        };
        let this = self.clone();
        let who2 = who.clone();
        let report: Arc<Mutex<(Vec<ImportRowResult>, Vec<Event>)>> = Arc::default();
        let report2 = report.clone();
        let ids2 = planned_ids.clone();
        let plan = Box::new(move |existing: Vec<Option<RecordRow>>| {
            let now = time::format(&time::now());
            let mut results = Vec::with_capacity(rows.len());
            let mut docs: Vec<(String, Value)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for ((row, id), current) in rows.into_iter().zip(&ids2).zip(existing) {
                let error = |e: Value| ImportRowResult {
                    row: row.row,
                    status: "error",
                    id: None,
                    error: Some(e),
                };
                let field_error = |f: hookline_core::webhook::FieldError| json!({"code": f.code, "message": f.message, "field": f.field});
                let contact = match row.contact {
                    Ok(c) => c,
                    Err(f) => {
                        results.push(error(field_error(f)));
                        continue;
                    }
                };
                if !seen.insert(id.clone()) {
                    results.push(error(json!({"code": "duplicate", "message": format!("id `{id}` appears earlier in this import"), "field": "id"})));
                    continue;
                }
                match record::plan(RecordKind::Contact, id, Write::Create(contact), current.as_ref().and_then(|r| r.data.as_object()), &now) {
                    Ok(p) => {
                        let doc = Value::Object(p.doc.expect("creates have a document"));
                        results.push(ImportRowResult { row: row.row, status: "created", id: Some(id.clone()), error: None });
                        docs.push((id.clone(), doc));
                    }
                    Err(Refusal::AlreadyExists) => results.push(error(json!({"code": "already_exists", "message": format!("a contact with id `{id}` already exists"), "field": "id"}))),
                    Err(Refusal::Invalid(f)) => results.push(error(field_error(f))),
                    Err(Refusal::NotFound) => unreachable!("creates never look for a record"),
                }
            }
            let events: Vec<Event> = docs
                .chunks(max_size)
                .enumerate()
                .map(|(i, chunk)| {
                    let spec = record::EventSpec {
                        event_type: "contact.created".into(),
                        data: Value::Array(chunk.iter().map(|(_, d)| d.clone()).collect()),
                        changes: None,
                    };
                    let mut e = this.event_for(&who2, &ctx, RecordKind::Contact, spec, None);
                    e.batch = Some(json!({"index": first_batch + i, "count": chunk.len(), "max_size": max_size}));
                    e
                })
                .collect();
            *report2.lock().expect("plan slot") = (results, events.clone());
            Ok(RecordPlan {
                upserts: docs,
                deletes: vec![],
                events,
            })
        });
        let (published, _) = self
            .store
            .mutate_records(
                who.tenant_id,
                RecordKind::Contact.as_str(),
                planned_ids,
                plan,
            )
            .await?;
        if published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let (rows, events) = std::mem::take(&mut *report.lock().expect("plan slot"));
        let created = rows.iter().filter(|r| r.status == "created").count();
        Ok(ImportView {
            import_id: import_id.to_string(),
            created,
            failed: rows.len() - created,
            events: emitted(&events, &published),
            rows,
        })
    }
}

/// Rows of an import body: a JSON array of contacts, or CSV with a header row.
pub fn parse_import(csv: bool, bytes: &[u8]) -> Result<Vec<ImportRow>> {
    if csv {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::bad_request("invalid_body", "CSV must be UTF-8", None))?;
        let mut records = hookline_core::csv::records(text).into_iter();
        let header = match records.next() {
            Some(Ok(h)) => h,
            _ => {
                return Err(Error::invalid(
                    ".",
                    "required",
                    "the CSV needs a header row naming its columns",
                ))
            }
        };
        let columns = hookline_core::csv::ContactColumns::new(&header)?;
        Ok(records
            .enumerate()
            .map(|(i, rec)| ImportRow {
                row: i + 1,
                contact: rec
                    .map_err(|e| hookline_core::webhook::FieldError::new(".", "invalid", e))
                    .and_then(|r| columns.contact(&r)),
            })
            .collect())
    } else {
        let items: Vec<Value> = crate::json::parse_json(bytes)?;
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, c)| ImportRow {
                row: i + 1,
                contact: if c.is_object() {
                    Ok(c)
                } else {
                    Err(hookline_core::webhook::FieldError::new(
                        ".",
                        "invalid_type",
                        "each row must be a contact object",
                    ))
                },
            })
            .collect())
    }
}
