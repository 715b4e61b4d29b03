//! CRM records: create, read, list, replace, merge-patch, delete, bulk delete and
//! import, each committing the record, its events and their deliveries in one transaction.

use super::access::Principal;
use super::handle::Hookline;
use super::request::{self, Idempotency, ImportFormat, Interface};
use crate::error::{Error, Result};
use hookline_core::ids::{self, EventId};
use hookline_core::record::{self, RecordId, RecordKind, Refusal, Write};
use hookline_core::time;
use hookline_store::{Event, Published, RecordFilter, RecordPlan, RecordRow};
use serde::{Deserialize, Serialize};
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
    /// `Idempotency-Key` of a creating request (create, import, bulk delete), as given; validated
    /// with the request's fingerprint (`idempotency.rs`). Other writes ignore it.
    pub idempotency_key: Option<String>,
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
            idempotency_key: None,
        })
    }

    /// The same context carrying the request's `Idempotency-Key`.
    pub fn with_idempotency_key(self, key: Option<&str>) -> WriteContext {
        WriteContext {
            idempotency_key: key.map(str::to_string),
            ..self
        }
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WriteView {
    /// The record after the write (`null` after a delete).
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub version: Option<u64>,
    /// False when the write moved nothing: nothing was stored and no event emitted.
    pub changed: bool,
    pub events: Vec<EmittedEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmittedEvent {
    pub id: Uuid,
    pub event_type: String,
    pub delivery_ids: Vec<Uuid>,
}

/// Result of a bulk delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportRowResult {
    pub row: usize,
    /// `created` or `error`.
    pub status: String,
    pub id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportView {
    /// `source_id` of the import's events.
    pub import_id: String,
    pub created: usize,
    pub failed: usize,
    /// `contact.created` events, one per batch of at most `batch_max_size` contacts.
    pub events: Vec<EmittedEvent>,
    pub rows: Vec<ImportRowResult>,
    /// An import of more than `job_step` rows runs as a background job (answered 202 with
    /// `created`, `failed`, `events` and `rows` empty): follow it at `GET /v1/jobs/{id}`, whose
    /// `result` then holds the counts and the first 100 refused rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<super::jobs::JobView>,
}

/// Refused rows an import job keeps in its result, at most.
const JOB_ERRORS_KEPT: usize = 100;

/// One step of an import job: which job, under which lease, where the step ends, and what the
/// job found before it.
pub(super) struct ImportStep {
    pub advance: hookline_store::JobAdvance,
    pub before: Value,
}

/// An import row back from a job's stored item (`{"row", "contact"}`; only readable rows are
/// stored, the others are in the job's result from the start).
fn item_row(v: &Value) -> ImportRow {
    ImportRow {
        row: v["row"].as_u64().unwrap_or(0) as usize,
        contact: Ok(v["contact"].clone()),
    }
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
            *seen2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = current.clone();
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
            *events2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = events.clone();
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
                max_deliveries: this.config.max_deliveries_per_publish,
                job: None,
            })
        });
        let (published, written) = self
            .store
            .mutate_records(who.tenant_id, kind.as_str(), vec![id], plan)
            .await?;
        let events = events_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let changed = !events.is_empty();
        let (data, version) = match written.into_iter().next() {
            Some(row) => (Some(row.data), Some(row.version)),
            None if changed => (None, None),
            // Unchanged: answer with the record as it stands.
            None => {
                let cur = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
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
        Ok(self.create_record_once(who, kind, body, ctx).await?.0)
    }

    /// [`Hookline::create_record`] honouring the context's `Idempotency-Key` (`idempotency.rs`):
    /// the same key with the same kind and body answers the first write again (and `true`).
    pub async fn create_record_once(
        &self,
        who: &Principal,
        kind: RecordKind,
        body: Value,
        ctx: WriteContext,
    ) -> Result<(WriteView, bool)> {
        let request = json!({"kind": kind.as_str(), "body": &body});
        let key =
            Idempotency::for_request(ctx.idempotency_key.as_deref(), "create_record", &request)?;
        let (this, who2) = (self.clone(), who.clone());
        self.once(who, key, move || async move {
            this.insert_record(&who2, kind, body, ctx).await
        })
        .await
    }

    async fn insert_record(
        &self,
        who: &Principal,
        kind: RecordKind,
        body: Value,
        ctx: WriteContext,
    ) -> Result<WriteView> {
        who.require_tenant_write()?;
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
        who.require_tenant_write()?;
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
        who.require_tenant_write()?;
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
        who.require_tenant_write()?;
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
        // Filters are single-line text like everything else that reaches a query (PostgreSQL
        // refuses a NUL in a parameter), whichever interface they came through.
        for (name, value) in [("tag", &filter.tag), ("search", &filter.search)] {
            if let Some(v) = value {
                hookline_core::text::check_line(name, v)
                    .map_err(|e| Error::bad_request("invalid_query", e.message, Some(name)))?;
            }
        }
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
        Ok(self.bulk_delete_once(who, kind, ids_in, ctx).await?.0)
    }

    /// [`Hookline::bulk_delete`] honouring the context's `Idempotency-Key` (`idempotency.rs`).
    pub async fn bulk_delete_once(
        &self,
        who: &Principal,
        kind: RecordKind,
        ids_in: Vec<String>,
        ctx: WriteContext,
    ) -> Result<(BulkDeleteView, bool)> {
        let request = json!({"kind": kind.as_str(), "ids": &ids_in});
        let key =
            Idempotency::for_request(ctx.idempotency_key.as_deref(), "bulk_delete", &request)?;
        let (this, who2) = (self.clone(), who.clone());
        self.once(who, key, move || async move {
            this.delete_records(&who2, kind, ids_in, ctx).await
        })
        .await
    }

    async fn delete_records(
        &self,
        who: &Principal,
        kind: RecordKind,
        ids_in: Vec<String>,
        ctx: WriteContext,
    ) -> Result<BulkDeleteView> {
        who.require_tenant_write()?;
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
            *out2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = BulkOutcome {
                deleted: deleted.clone(),
                missing,
                events: events.clone(),
            };
            Ok(RecordPlan {
                upserts: vec![],
                deletes: deleted,
                events,
                max_deliveries: this.config.max_deliveries_per_publish,
                job: None,
            })
        });
        let (published, _) = self
            .store
            .mutate_records(who.tenant_id, kind.as_str(), unique, plan)
            .await?;
        if published.iter().any(|p| !p.delivery_ids.is_empty()) {
            self.notify_new_work();
        }
        let o = std::mem::take(
            &mut *outcome
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(BulkDeleteView {
            deleted: o.deleted,
            not_found: o.missing,
            events: emitted(&o.events, &published),
        })
    }

    /// [`Hookline::import_body`] with an `Idempotency-Key` (`idempotency.rs`): the same key with
    /// the same media type and bytes answers the first import's report again (and `true`),
    /// importing nothing twice.
    pub async fn import_body_once(
        &self,
        who: &Principal,
        format: ImportFormat,
        bytes: bytes::Bytes,
        actor: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<(ImportView, bool)> {
        let request = json!({
            "csv": format == ImportFormat::Csv,
            "body_sha256": hookline_core::signing::sha256_hex(&bytes),
        });
        let key = Idempotency::for_request(idempotency_key, "import", &request)?;
        let (this, who2, actor) = (self.clone(), who.clone(), actor.map(str::to_string));
        self.once(who, key, move || async move {
            this.import_body(&who2, format, &bytes, actor.as_deref())
                .await
        })
        .await
    }

    /// Imports an import body in one go: parses it as `format`, under a new import id.
    pub async fn import_body(
        &self,
        who: &Principal,
        format: ImportFormat,
        bytes: &[u8],
        actor: Option<&str>,
    ) -> Result<ImportView> {
        who.require_tenant_write()?;
        let rows = parse_import(format == ImportFormat::Csv, bytes)?;
        let actor = request::actor_id(actor)?;
        let import_id = ids::new_id().to_string();
        if rows.len() > self.config.job_step {
            return self.queue_import(who, rows, &import_id, actor).await;
        }
        self.import_contacts(who, rows, &import_id, 1, actor, None)
            .await
    }

    /// A large import: its rows are stored with a job, and the job runner imports them a step
    /// (`job_step` rows, one transaction) at a time.
    async fn queue_import(
        &self,
        who: &Principal,
        rows: Vec<ImportRow>,
        import_id: &str,
        actor: Option<String>,
    ) -> Result<ImportView> {
        if rows.len() > 100_000 {
            return Err(Error::invalid(
                ".",
                "too_long",
                "import at most 100000 contacts per request",
            ));
        }
        // Rows that can't be read are reported at once, in the job's result; the others are stored
        // as the job's items.
        let mut items = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for r in rows {
            match r.contact {
                Ok(c) => items.push(json!({"row": r.row, "contact": c})),
                Err(f) => refused.push(ImportRowResult {
                    row: r.row,
                    status: "error".into(),
                    id: None,
                    error: Some(json!({"code": f.code, "message": f.message, "field": f.field})),
                }),
            }
        }
        let params = json!({"import_id": import_id, "actor": actor});
        let result = job_result(&json!({}), import_id, &refused, 0);
        let job = self
            .store
            .insert_import_job(ids::JobId::new(), who.tenant_id, params, result, items)
            .await?;
        self.job_wake.notify_one();
        Ok(ImportView {
            import_id: import_id.to_string(),
            created: 0,
            failed: 0,
            events: vec![],
            rows: vec![],
            job: Some(super::jobs::JobView::from(&job)),
        })
    }

    /// One step of an import job held under `token`: the next `job_step` rows, imported in one
    /// transaction that also moves the job on. `Conflict` when the job is no longer held (nothing
    /// was written).
    pub(crate) async fn import_step(
        &self,
        job: &hookline_store::Job,
        token: hookline_core::ids::LeaseToken,
        lease: std::time::Duration,
    ) -> std::result::Result<(), hookline_store::StoreError> {
        use hookline_store::StoreError;
        let step = self.config.job_step;
        let items = self.store.job_items(job.id, job.position, step).await?;
        let rows: Vec<ImportRow> = items.iter().map(item_row).collect();
        let total = job.total.unwrap_or(0);
        let position = job.position + rows.len() as u64;
        let before = job.result.clone().unwrap_or_else(|| json!({}));
        let first_batch = before["batches"].as_u64().unwrap_or(0) as usize + 1;
        let import_id = job.params["import_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let actor = job.params["actor"].as_str().map(str::to_string);
        let who = Principal::for_job(job.tenant_id);
        let advance = hookline_store::JobAdvance {
            id: job.id,
            token,
            lease,
            position,
            done: rows.len() as u64,
            result: Value::Null,
            finished: rows.is_empty() || position >= total,
        };
        let outcome = self
            .import_contacts(
                &who,
                rows,
                &import_id,
                first_batch,
                actor,
                Some(ImportStep { advance, before }),
            )
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(Error::Unavailable(m)) => Err(StoreError::Unavailable(m)),
            Err(e @ Error::Conflict { .. }) => Err(StoreError::Conflict(e.to_string())),
            Err(e) => Err(StoreError::Internal(e.to_string())),
        }
    }

    /// Imports contacts: every good row is created, every bad row reported and skipped, and
    /// `contact.created` goes out in batches of at most `batch_max_size` contacts
    /// (`batch = {index, count, max_size}`, `source = contact_import`, `source_id` = the import id).
    /// `first_batch` lets a caller that imports in chunks (the CLI) continue the batch numbering.
    pub(super) async fn import_contacts(
        &self,
        who: &Principal,
        rows: Vec<ImportRow>,
        import_id: &str,
        first_batch: usize,
        actor: Option<String>,
        step: Option<ImportStep>,
    ) -> Result<ImportView> {
        who.require_tenant_write()?;
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
            idempotency_key: None,
        };
        let this = self.clone();
        let who2 = who.clone();
        let report: Arc<Mutex<(Vec<ImportRowResult>, Vec<Event>)>> = Arc::default();
        let report2 = report.clone();
        let ids2 = planned_ids.clone();
        let import_id_owned = import_id.to_string();
        let plan = Box::new(move |existing: Vec<Option<RecordRow>>| {
            let now = time::format(&time::now());
            let mut results = Vec::with_capacity(rows.len());
            let mut docs: Vec<(String, Value)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for ((row, id), current) in rows.into_iter().zip(&ids2).zip(existing) {
                let error = |e: Value| ImportRowResult {
                    row: row.row,
                    status: "error".into(),
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
                    Ok(record::Planned { doc: Some(doc), .. }) => {
                        results.push(ImportRowResult { row: row.row, status: "created".into(), id: Some(id.clone()), error: None });
                        docs.push((id.clone(), Value::Object(doc)));
                    }
                    // A create always plans a document and never looks a record up; answer
                    // rather than panic if that ever changes.
                    Ok(_) | Err(Refusal::NotFound) => results.push(error(json!({"code": "internal", "message": "this row could not be planned", "field": "id"}))),
                    Err(Refusal::AlreadyExists) => results.push(error(json!({"code": "already_exists", "message": format!("a contact with id `{id}` already exists"), "field": "id"}))),
                    Err(Refusal::Invalid(f)) => results.push(error(field_error(f))),
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
            // A job's step moves the job on in this same transaction, with what it found.
            let job = step.map(|s| {
                let mut advance = s.advance;
                advance.result =
                    job_result(&s.before, import_id_owned.as_str(), &results, events.len());
                advance
            });
            *report2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = (results, events.clone());
            Ok(RecordPlan {
                upserts: docs,
                deletes: vec![],
                events,
                max_deliveries: this.config.max_deliveries_per_publish,
                job,
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
        let (rows, events) = std::mem::take(
            &mut *report
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let created = rows.iter().filter(|r| r.status == "created").count();
        Ok(ImportView {
            import_id: import_id.to_string(),
            created,
            failed: rows.len() - created,
            events: emitted(&events, &published),
            rows,
            job: None,
        })
    }
}

/// An import job's result after one more step: counts so far, batches emitted (for the next
/// step's batch numbering) and the first refused rows.
fn job_result(before: &Value, import_id: &str, rows: &[ImportRowResult], batches: usize) -> Value {
    let n = |k: &str| before[k].as_u64().unwrap_or(0);
    let created = rows.iter().filter(|r| r.status == "created").count() as u64;
    let mut errors: Vec<Value> = before["errors"].as_array().cloned().unwrap_or_default();
    for r in rows.iter().filter(|r| r.status != "created") {
        if errors.len() >= JOB_ERRORS_KEPT {
            break;
        }
        errors.push(json!({"row": r.row, "error": r.error}));
    }
    json!({
        "import_id": import_id,
        "created": n("created") + created,
        "failed": n("failed") + rows.len() as u64 - created,
        "batches": n("batches") + batches as u64,
        "errors": errors,
    })
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
