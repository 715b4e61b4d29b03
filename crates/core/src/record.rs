//! CRM records as the source of events: the record kinds, their schemas, and what a write means —
//! the new document and the events it emits.
//!
//! Contacts follow the ConnectMachine contact schema exactly (the one the envelope format carries;
//! unknown fields are refused). Organizations, deals, services and tasks have a small validated
//! core and free extra fields. [`plan`] is the whole rule for one write, as a pure function of the
//! stored document: the store runs it inside the transaction that writes the result, so concurrent
//! writes to one record see each other and every `changes` record is relative to the version it
//! replaced.

use crate::diff;
use crate::webhook::FieldError;
use serde_json::{json, Map, Value};

/// A kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Contact,
    Organization,
    Deal,
    Service,
    Task,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Contact,
        RecordKind::Organization,
        RecordKind::Deal,
        RecordKind::Service,
        RecordKind::Task,
    ];

    /// The kind's name, also the subject type of its events (`contact`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Contact => "contact",
            RecordKind::Organization => "organization",
            RecordKind::Deal => "deal",
            RecordKind::Service => "service",
            RecordKind::Task => "task",
        }
    }

    /// URL segment (`contacts`).
    pub fn plural(self) -> &'static str {
        match self {
            RecordKind::Contact => "contacts",
            RecordKind::Organization => "organizations",
            RecordKind::Deal => "deals",
            RecordKind::Service => "services",
            RecordKind::Task => "tasks",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.plural() == s)
    }

    /// The field whose change is an assignment (`*.assigned`), if the kind has one.
    fn owner_field(self) -> Option<&'static str> {
        matches!(self, RecordKind::Contact | RecordKind::Deal).then_some("owner_id")
    }
}

/// Fields the server keeps: ignored in input, set on every write.
pub const SERVER_FIELDS: &[&str] = &["id", "created_at", "updated_at"];

pub const MAX_ID: usize = 128;
const MAX_TEXT: usize = 1000;
const MAX_NOTES: usize = 100_000;
const MAX_ITEMS: usize = 100;

/// The id of a CRM record (client-chosen or generated), validated: its own type, so a record id
/// can't be passed where a webhook or delivery id is expected, and an unchecked string can't be
/// passed as a record id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(String);

impl RecordId {
    /// Validates `id` (see [`validate_id`]).
    pub fn parse(id: &str) -> Result<RecordId, FieldError> {
        validate_id(id)?;
        Ok(RecordId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a client-chosen record id.
pub fn validate_id(id: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "id",
            "invalid",
            format!("id must be 1-{MAX_ID} letters, digits, '-', '_', '.' or ':'"),
        ))
    }
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, "invalid", message)
}

/// A single-line text field: a string (or null) of at most `max` characters, without control
/// characters (the shared text rule).
fn text(field: &str, v: &Value, max: usize) -> Result<(), FieldError> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if s.chars().count() <= max => crate::text::check_line(field, s),
        Value::String(_) => Err(FieldError::new(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        )),
        _ => Err(FieldError::new(
            field,
            "invalid_type",
            format!("{field} must be a string or null"),
        )),
    }
}

/// A multi-line text field (a contact's notes): line breaks and tabs allowed.
fn multiline_text(field: &str, v: &Value, max: usize) -> Result<(), FieldError> {
    match v {
        Value::String(s) if s.chars().count() <= max => crate::text::check_multiline(field, s),
        other => text(field, other, max),
    }
}

fn required_text(field: &str, v: Option<&Value>, max: usize) -> Result<(), FieldError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            text(field, &Value::String(s.clone()), max)
        }
        _ => Err(FieldError::new(
            field,
            "required",
            format!("{field} is required (a non-empty string)"),
        )),
    }
}

/// Longest local part of an email address, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_EMAIL_LOCAL: usize = 64;
/// Longest domain of an email address, in octets (RFC 5321 §4.5.3.1.2, RFC 1035).
pub const MAX_EMAIL_DOMAIN: usize = 253;
/// Longest label of an email domain, in octets (RFC 1035).
pub const MAX_EMAIL_LABEL: usize = 63;

fn email(field: &str, v: &Value) -> Result<(), FieldError> {
    text(field, v, 320)?;
    let Value::String(s) = v else {
        return Ok(());
    };
    let not_email = || bad(field, format!("{field} `{s}` is not an email address"));
    if s.chars().any(char::is_whitespace) || s.matches('@').count() != 1 {
        return Err(not_email());
    }
    let (local, domain) = s.split_once('@').ok_or_else(not_email)?;
    if local.is_empty() || !domain.contains('.') {
        return Err(not_email());
    }
    // RFC 5321's limits, in octets: a longer address is refused by mail servers, so it can only be
    // a mistake (or padding meant to break a receiver).
    if local.len() > MAX_EMAIL_LOCAL {
        return Err(bad(
            field,
            format!(
                "{field}: the part before @ must be at most {MAX_EMAIL_LOCAL} octets (RFC 5321)"
            ),
        ));
    }
    if domain.len() > MAX_EMAIL_DOMAIN {
        return Err(bad(
            field,
            format!("{field}: the domain must be at most {MAX_EMAIL_DOMAIN} octets (RFC 5321)"),
        ));
    }
    if domain.split('.').any(str::is_empty) {
        return Err(not_email());
    }
    if domain.split('.').any(|l| l.len() > MAX_EMAIL_LABEL) {
        return Err(bad(
            field,
            format!("{field}: each part of the domain must be at most {MAX_EMAIL_LABEL} octets (RFC 1035)"),
        ));
    }
    Ok(())
}

fn phone(field: &str, v: &Value) -> Result<(), FieldError> {
    text(field, v, 64)?;
    if let Value::String(s) = v {
        let digits = s.chars().filter(char::is_ascii_digit).count();
        if digits < 3
            || !s
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().x/".contains(c))
        {
            return Err(bad(field, format!("{field} `{s}` is not a phone number")));
        }
    }
    Ok(())
}

fn web_url(field: &str, v: &Value) -> Result<(), FieldError> {
    text(field, v, 2048)?;
    if let Value::String(s) = v {
        // Stored as written, so written as meant: nothing a lenient parser would repair.
        crate::url_policy::check_written(s)
            .map_err(|e| bad(field, format!("{field} {}", e.detail())))?;
        let ok = url::Url::parse(s)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(bad(field, format!("{field} `{s}` is not an http(s) URL")));
        }
    }
    Ok(())
}

fn timestamp(field: &str, v: &Value) -> Result<(), FieldError> {
    text(field, v, 64)?;
    if let Value::String(s) = v {
        if crate::time::parse(s).is_none() {
            return Err(bad(field, format!("{field} must be an RFC 3339 timestamp")));
        }
    }
    Ok(())
}

/// Checks an object's keys against a closed list.
fn closed<'a>(
    field: &str,
    v: &'a Value,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, FieldError> {
    let m = v.as_object().ok_or_else(|| {
        FieldError::new(field, "invalid_type", format!("{field} must be an object"))
    })?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("{field}.{k}"),
            "unknown_field",
            format!(
                "unknown field `{k}`; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(m)
}

/// An array of at most `MAX_ITEMS` items, each checked by `item`.
fn list(
    field: &str,
    v: &Value,
    item: impl Fn(&str, &Value) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    match v {
        Value::Null => Ok(()),
        Value::Array(items) if items.len() <= MAX_ITEMS => {
            for (i, it) in items.iter().enumerate() {
                item(&format!("{field}[{i}]"), it)?;
            }
            Ok(())
        }
        Value::Array(_) => Err(FieldError::new(
            field,
            "too_long",
            format!("{field} holds at most {MAX_ITEMS} items"),
        )),
        _ => Err(FieldError::new(
            field,
            "invalid_type",
            format!("{field} must be an array"),
        )),
    }
}

/// `{label, value}` with `value` checked by `check`.
fn labelled(
    check: fn(&str, &Value) -> Result<(), FieldError>,
) -> impl Fn(&str, &Value) -> Result<(), FieldError> {
    move |field, v| {
        let m = closed(field, v, &["label", "value"])?;
        text(
            &format!("{field}.label"),
            m.get("label").unwrap_or(&Value::Null),
            MAX_TEXT,
        )?;
        let value = m.get("value").unwrap_or(&Value::Null);
        if value.is_null() {
            return Err(FieldError::new(
                format!("{field}.value"),
                "required",
                "value is required",
            ));
        }
        check(&format!("{field}.value"), value)
    }
}

fn place(field: &str, v: &Value) -> Result<(), FieldError> {
    if v.is_null() {
        return Ok(());
    }
    let m = closed(field, v, &["formatted", "raw"])?;
    text(
        &format!("{field}.formatted"),
        m.get("formatted").unwrap_or(&Value::Null),
        MAX_TEXT,
    )?;
    match m.get("raw") {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(FieldError::new(
            format!("{field}.raw"),
            "invalid_type",
            "raw must be an object",
        )),
    }
}

fn social(field: &str, v: &Value) -> Result<(), FieldError> {
    let m = v.as_object().ok_or_else(|| {
        FieldError::new(
            field,
            "invalid_type",
            "each social is an object like {\"linkedin_url\": \"https://…\"}",
        )
    })?;
    let mut keys = m.keys();
    match (keys.next(), keys.next()) {
        (Some(k), None) if k.ends_with("_url") && k.len() > 4 && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') => {
            web_url(&format!("{field}.{k}"), &m[k])
        }
        _ => Err(bad(field, "each social has exactly one key `<platform>_url`, e.g. {\"github_url\": \"https://github.com/x\"}")),
    }
}

fn tag(field: &str, v: &Value) -> Result<(), FieldError> {
    let m = closed(field, v, &["name", "type"])?;
    required_text(&format!("{field}.name"), m.get("name"), 200)?;
    text(
        &format!("{field}.type"),
        m.get("type").unwrap_or(&Value::Null),
        200,
    )
}

fn session(field: &str, v: &Value) -> Result<(), FieldError> {
    let m = closed(
        field,
        v,
        &[
            "session_id",
            "title",
            "summary_url",
            "audio_url",
            "created_at",
            "updated_at",
        ],
    )?;
    required_text(&format!("{field}.session_id"), m.get("session_id"), 256)?;
    text(
        &format!("{field}.title"),
        m.get("title").unwrap_or(&Value::Null),
        MAX_TEXT,
    )?;
    for k in ["summary_url", "audio_url"] {
        web_url(&format!("{field}.{k}"), m.get(k).unwrap_or(&Value::Null))?;
    }
    for k in ["created_at", "updated_at"] {
        timestamp(&format!("{field}.{k}"), m.get(k).unwrap_or(&Value::Null))?;
    }
    Ok(())
}

/// The contact fields that hold one string (and `id`): what a CSV column can fill directly.
pub const CONTACT_SCALARS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "label",
    "notes",
    "primary_email",
    "primary_phone",
    "owner_id",
];

/// The ConnectMachine contact fields, plus `owner_id` (assignment) and the server's fields.
pub const CONTACT_FIELDS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "label",
    "notes",
    "primary_email",
    "primary_phone",
    "emails",
    "phones",
    "websites",
    "socials",
    "custom",
    "address",
    "where_we_met",
    "tags",
    "notetaker_sessions",
    "owner_id",
    "created_at",
    "updated_at",
];

fn validate_contact(doc: &Map<String, Value>) -> Result<(), FieldError> {
    if let Some(k) = doc.keys().find(|k| !CONTACT_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            k.as_str(),
            "unknown_field",
            format!("unknown contact field `{k}`"),
        ));
    }
    let get = |k: &str| doc.get(k).unwrap_or(&Value::Null);
    for k in [
        "first_name",
        "last_name",
        "company",
        "job_title",
        "label",
        "owner_id",
    ] {
        text(k, get(k), MAX_TEXT)?;
    }
    multiline_text("notes", get("notes"), MAX_NOTES)?;
    email("primary_email", get("primary_email"))?;
    phone("primary_phone", get("primary_phone"))?;
    list("emails", get("emails"), labelled(email))?;
    list("phones", get("phones"), labelled(phone))?;
    list("websites", get("websites"), labelled(web_url))?;
    list(
        "custom",
        get("custom"),
        labelled(|f, v| text(f, v, MAX_TEXT)),
    )?;
    list("socials", get("socials"), social)?;
    place("address", get("address"))?;
    place("where_we_met", get("where_we_met"))?;
    list("tags", get("tags"), tag)?;
    list("notetaker_sessions", get("notetaker_sessions"), session)?;
    let named = [
        "first_name",
        "last_name",
        "company",
        "primary_email",
        "primary_phone",
    ]
    .iter()
    .any(|k| get(k).as_str().is_some_and(|s| !s.trim().is_empty()));
    if !named {
        return Err(FieldError::new(
            "first_name",
            "required",
            "a contact needs at least one of first_name, last_name, company, primary_email, primary_phone",
        ));
    }
    Ok(())
}

/// What every record may hold, whatever its kind: field names without control characters, and no
/// NUL in any string or key at any depth (the shared text rule for stored JSON documents). Typed
/// fields are then checked by their kind's rules.
fn validate_characters(doc: &Map<String, Value>) -> Result<(), FieldError> {
    for (k, v) in doc {
        if let Some((at, c)) = crate::text::find_control(k, false) {
            return Err(FieldError::new(
                ".",
                crate::text::CONTROL_CHARACTER,
                format!(
                    "field names must not contain control characters; {k:?} has {} at character {}",
                    crate::text::describe(c),
                    at + 1
                ),
            ));
        }
        crate::text::check_json(k, v)?;
    }
    Ok(())
}

fn validate_document(kind: RecordKind, doc: &Map<String, Value>) -> Result<(), FieldError> {
    validate_characters(doc)?;
    let get = |k: &str| doc.get(k);
    match kind {
        RecordKind::Contact => return validate_contact(doc),
        RecordKind::Organization | RecordKind::Service => {
            required_text("name", get("name"), MAX_TEXT)?
        }
        RecordKind::Task => required_text("title", get("title"), MAX_TEXT)?,
        RecordKind::Deal => {
            required_text("name", get("name"), MAX_TEXT)?;
            required_text("stage", get("stage"), 200)?;
            text("owner_id", get("owner_id").unwrap_or(&Value::Null), 256)?;
            text(
                "organization_id",
                get("organization_id").unwrap_or(&Value::Null),
                256,
            )?;
            match get("amount") {
                None | Some(Value::Null) | Some(Value::Number(_)) => {}
                Some(_) => {
                    return Err(FieldError::new(
                        "amount",
                        "invalid_type",
                        "amount must be a number or null",
                    ))
                }
            }
            list(
                "contact_ids",
                get("contact_ids").unwrap_or(&Value::Null),
                |f, v| match v {
                    Value::String(s) if !s.is_empty() && s.len() <= 256 => {
                        crate::text::check_line(f, s)
                    }
                    _ => Err(bad(f, "contact ids are non-empty strings")),
                },
            )?;
        }
    }
    if let Some(o) = get("owner_id") {
        text("owner_id", o, 256)?;
    }
    Ok(())
}

/// One write to a record.
#[derive(Debug, Clone)]
pub enum Write {
    Create(Value),
    /// PUT: the body becomes the whole record.
    Replace(Value),
    /// PATCH: a JSON merge patch.
    Patch(Value),
    Delete,
}

/// An event a write emits (the caller adds ids, tenant, actor and source).
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    pub event_type: String,
    pub data: Value,
    pub changes: Option<Value>,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The record to store, or `None` when it is deleted (or unchanged: see `changed`).
    pub doc: Option<Map<String, Value>>,
    pub events: Vec<EventSpec>,
    /// False for an update that moved nothing: nothing is written and no event is emitted.
    pub changed: bool,
}

/// Why a write can't happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound,
    AlreadyExists,
    Invalid(FieldError),
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Self {
        Refusal::Invalid(e)
    }
}

/// The body of a create or replace: an object; server fields are dropped (an `id` must match).
fn body_object(body: Value, id: &str) -> Result<Map<String, Value>, FieldError> {
    let Value::Object(mut m) = body else {
        return Err(FieldError::new(
            ".",
            "invalid_type",
            "the body must be a JSON object",
        ));
    };
    if let Some(given) = m.get("id") {
        if given.as_str() != Some(id) {
            return Err(bad(
                "id",
                "id can't be changed (it must match the record's id when given)",
            ));
        }
    }
    for f in SERVER_FIELDS {
        m.remove(*f);
    }
    Ok(m)
}

/// Assembles the stored document: id first, then fields, then the server's timestamps.
fn finish(
    id: &str,
    fields: Map<String, Value>,
    created_at: &Value,
    now: &str,
) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("id".into(), json!(id));
    for (k, v) in fields {
        if !v.is_null() {
            doc.insert(k, v);
        }
    }
    doc.insert("created_at".into(), created_at.clone());
    doc.insert("updated_at".into(), json!(now));
    doc
}

/// Decides one write against the stored document (`current`). `now` is the RFC 3339 write time.
pub fn plan(
    kind: RecordKind,
    id: &str,
    write: Write,
    current: Option<&Map<String, Value>>,
    now: &str,
) -> Result<Planned, Refusal> {
    let kind_name = kind.as_str();
    match (write, current) {
        (Write::Create(_), Some(_)) => Err(Refusal::AlreadyExists),
        (Write::Create(body), None) => {
            validate_id(id)?;
            let doc = finish(id, body_object(body, id)?, &json!(now), now);
            validate_document(kind, &doc)?;
            Ok(Planned {
                events: vec![EventSpec {
                    event_type: format!("{kind_name}.created"),
                    data: Value::Object(doc.clone()),
                    changes: None,
                }],
                doc: Some(doc),
                changed: true,
            })
        }
        (Write::Delete, Some(_)) => Ok(Planned {
            doc: None,
            events: vec![EventSpec {
                event_type: format!("{kind_name}.deleted"),
                data: json!({"ids": [id]}),
                changes: None,
            }],
            changed: true,
        }),
        (_, None) => Err(Refusal::NotFound),
        (Write::Replace(body), Some(cur)) | (Write::Patch(body), Some(cur))
            if !body.is_object() =>
        {
            let _ = (body, cur);
            Err(Refusal::Invalid(FieldError::new(
                ".",
                "invalid_type",
                "the body must be a JSON object",
            )))
        }
        (write @ (Write::Replace(_) | Write::Patch(_)), Some(cur)) => {
            let created_at = cur.get("created_at").cloned().unwrap_or(Value::Null);
            let fields = match write {
                Write::Replace(body) => body_object(body, id)?,
                Write::Patch(patch) => {
                    let mut merged = Value::Object(cur.clone());
                    if let Some(given) = patch.get("id") {
                        if given.as_str() != Some(id) {
                            return Err(bad("id", "id can't be changed").into());
                        }
                    }
                    let mut patch = patch;
                    if let Some(p) = patch.as_object_mut() {
                        for f in SERVER_FIELDS {
                            p.remove(*f);
                        }
                    }
                    diff::merge_patch(&mut merged, &patch);
                    body_object(merged, id)?
                }
                // Only replaces and patches reach this arm; refuse rather than panic.
                _ => return Err(bad(".", "this write can't be applied to a record").into()),
            };
            let doc = finish(id, fields, &created_at, now);
            validate_document(kind, &doc)?;
            let moved = diff::changes(cur, &doc);
            if moved.is_empty() {
                return Ok(Planned {
                    doc: None,
                    events: Vec::new(),
                    changed: false,
                });
            }
            let data = Value::Object(doc.clone());
            let mut events = vec![EventSpec {
                event_type: format!("{kind_name}.updated"),
                data: data.clone(),
                changes: Some(Value::Object(moved.clone())),
            }];
            let derived = |field: &str, event_type: String| {
                moved.get(field).map(|c| EventSpec {
                    event_type,
                    data: data.clone(),
                    changes: Some(json!({ field: c })),
                })
            };
            if let Some(owner) = kind.owner_field() {
                events.extend(derived(owner, format!("{kind_name}.assigned")));
            }
            if kind == RecordKind::Deal {
                events.extend(derived("stage", "deal.stage.changed".into()));
            }
            Ok(Planned {
                doc: Some(doc),
                events,
                changed: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-05-15T10:30:00.000Z";
    const LATER: &str = "2026-05-15T11:00:00.000Z";

    fn created(kind: RecordKind, body: Value) -> Map<String, Value> {
        plan(kind, "x1", Write::Create(body), None, NOW)
            .unwrap()
            .doc
            .unwrap()
    }

    fn full_contact() -> Value {
        json!({
            "first_name": "John", "last_name": "Doe", "company": "Example Corp", "job_title": "PM",
            "label": "Work", "notes": "Met at event", "primary_email": "john.doe@example.com",
            "primary_phone": "+15550101010",
            "emails": [{"label": "Work", "value": "john.doe@example.com"}],
            "phones": [{"label": "Mobile", "value": "+15550101010"}],
            "websites": [{"label": "Company", "value": "https://example.com"}],
            "socials": [{"linkedin_url": "https://linkedin.com/in/john-doe"}, {"github_url": "https://github.com/john-doe"}],
            "custom": [{"label": "CRM Owner", "value": "Sales"}],
            "address": {"formatted": "123 Market Street", "raw": {}},
            "where_we_met": {"formatted": "Moscone Center", "raw": {}},
            "tags": [{"name": "Conference", "type": "event"}],
            "notetaker_sessions": [{"session_id": "s1", "title": "Meeting note", "summary_url": "https://x.com/s",
                "audio_url": "https://x.com/a", "created_at": "2026-05-15T10:00:00Z", "updated_at": "2026-05-15T10:05:00Z"}],
            "owner_id": "u_1"
        })
    }

    #[test]
    fn create_keeps_the_contact_schema_and_server_fields() {
        let p = plan(
            RecordKind::Contact,
            "c1",
            Write::Create(full_contact()),
            None,
            NOW,
        )
        .unwrap();
        let doc = p.doc.unwrap();
        assert_eq!(doc.keys().next().unwrap(), "id");
        assert_eq!(doc["created_at"], NOW);
        assert_eq!(doc["updated_at"], NOW);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].event_type, "contact.created");
        assert_eq!(
            p.events[0].data["socials"][1]["github_url"],
            "https://github.com/john-doe"
        );
    }

    #[test]
    fn contacts_refuse_bad_fields_with_their_path() {
        for (patch, field, code) in [
            (json!({"nickname": "J"}), "nickname", "unknown_field"),
            (
                json!({"primary_email": "not-an-email"}),
                "primary_email",
                "invalid",
            ),
            (
                json!({"primary_phone": "call me"}),
                "primary_phone",
                "invalid",
            ),
            (
                json!({"emails": [{"label": "W", "value": "x@"}]}),
                "emails[0].value",
                "invalid",
            ),
            (
                json!({"emails": [{"label": "W"}]}),
                "emails[0].value",
                "required",
            ),
            (
                json!({"emails": [{"label": "W", "value": "a@b.co", "extra": 1}]}),
                "emails[0].extra",
                "unknown_field",
            ),
            (
                json!({"websites": [{"label": "W", "value": "ftp://x"}]}),
                "websites[0].value",
                "invalid",
            ),
            (
                json!({"socials": [{"linkedin_url": "https://l.in/x", "github_url": "https://g.com"}]}),
                "socials[0]",
                "invalid",
            ),
            (
                json!({"socials": [{"linkedin": "https://l.in/x"}]}),
                "socials[0]",
                "invalid",
            ),
            (json!({"address": "123 Street"}), "address", "invalid_type"),
            (
                json!({"address": {"formatted": "x", "raw": []}}),
                "address.raw",
                "invalid_type",
            ),
            (
                json!({"tags": [{"type": "event"}]}),
                "tags[0].name",
                "required",
            ),
            (json!({"tags": "vip"}), "tags", "invalid_type"),
            (
                json!({"notetaker_sessions": [{"title": "x"}]}),
                "notetaker_sessions[0].session_id",
                "required",
            ),
            (
                json!({"notetaker_sessions": [{"session_id": "s", "created_at": "today"}]}),
                "notetaker_sessions[0].created_at",
                "invalid",
            ),
            (json!({"first_name": 5}), "first_name", "invalid_type"),
            (
                json!({"first_name": "x".repeat(1001)}),
                "first_name",
                "too_long",
            ),
            (
                json!({"tags": vec![json!({"name": "t"}); 101]}),
                "tags",
                "too_long",
            ),
        ] {
            let mut body = full_contact();
            diff::merge_patch(&mut body, &patch);
            match plan(RecordKind::Contact, "c1", Write::Create(body), None, NOW) {
                Err(Refusal::Invalid(e)) => {
                    assert_eq!((e.field.as_str(), e.code), (field, code), "{patch}")
                }
                other => panic!("{patch}: {other:?}"),
            }
        }
        let err = plan(
            RecordKind::Contact,
            "c1",
            Write::Create(json!({"notes": "only notes"})),
            None,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::Invalid(e) if e.code == "required"));
        assert!(
            matches!(plan(RecordKind::Contact, "bad id!", Write::Create(full_contact()), None, NOW), Err(Refusal::Invalid(e)) if e.field == "id")
        );
    }

    #[test]
    fn other_kinds_have_a_small_core_and_free_fields() {
        let d = created(
            RecordKind::Deal,
            json!({"name": "Big", "stage": "lead", "amount": 10.5, "contact_ids": ["c1"], "priority": "high"}),
        );
        assert_eq!(d["priority"], "high");
        for (kind, body, field) in [
            (RecordKind::Deal, json!({"name": "x"}), "stage"),
            (
                RecordKind::Deal,
                json!({"name": "x", "stage": "s", "amount": "lots"}),
                "amount",
            ),
            (
                RecordKind::Deal,
                json!({"name": "x", "stage": "s", "contact_ids": [1]}),
                "contact_ids[0]",
            ),
            (RecordKind::Organization, json!({"title": "x"}), "name"),
            (RecordKind::Service, json!({"name": ""}), "name"),
            (RecordKind::Task, json!({"name": "x"}), "title"),
        ] {
            match plan(kind, "x1", Write::Create(body.clone()), None, NOW) {
                Err(Refusal::Invalid(e)) => assert_eq!(e.field, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn updates_carry_changes_and_derived_events() {
        let cur = created(
            RecordKind::Deal,
            json!({"name": "Big", "stage": "lead", "owner_id": "u1", "contact_ids": ["a", "b"]}),
        );
        let p = plan(
            RecordKind::Deal,
            "x1",
            Write::Patch(json!({"stage": "won", "owner_id": "u2", "contact_ids": ["b", "a"]})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        let types: Vec<_> = p.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            ["deal.updated", "deal.assigned", "deal.stage.changed"]
        );
        assert_eq!(
            p.events[0].changes,
            Some(
                json!({"stage": {"previous": "lead", "current": "won"}, "owner_id": {"previous": "u1", "current": "u2"}})
            )
        );
        assert_eq!(
            p.events[2].changes,
            Some(json!({"stage": {"previous": "lead", "current": "won"}}))
        );
        let doc = p.doc.unwrap();
        assert_eq!(doc["created_at"], NOW);
        assert_eq!(doc["updated_at"], LATER);
    }

    #[test]
    fn a_write_that_moves_nothing_is_suppressed() {
        let cur = created(RecordKind::Contact, full_contact());
        let same = plan(
            RecordKind::Contact,
            "x1",
            Write::Replace(full_contact()),
            Some(&cur),
            LATER,
        )
        .unwrap();
        assert_eq!(
            same,
            Planned {
                doc: None,
                events: vec![],
                changed: false
            }
        );
        let reordered = plan(
            RecordKind::Contact,
            "x1",
            Write::Patch(json!({"notes": "Met at event", "created_at": "1999-01-01T00:00:00Z"})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        assert!(!reordered.changed);
    }

    #[test]
    fn tagging_and_linking_a_session_are_updates() {
        let cur = created(RecordKind::Contact, json!({"first_name": "Ann"}));
        let p = plan(
            RecordKind::Contact,
            "x1",
            Write::Patch(json!({"tags": [{"name": "VIP", "type": "status"}]})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        assert_eq!(p.events[0].event_type, "contact.updated");
        assert_eq!(
            p.events[0].changes.as_ref().unwrap()["tags"]["previous"],
            Value::Null
        );
        let p = plan(
            RecordKind::Contact,
            "x1",
            Write::Patch(json!({"notetaker_sessions": [{"session_id": "s9"}]})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        assert!(p.events[0]
            .changes
            .as_ref()
            .unwrap()
            .get("notetaker_sessions")
            .is_some());
    }

    #[test]
    fn patch_null_removes_and_replace_drops_missing_fields() {
        let cur = created(
            RecordKind::Contact,
            json!({"first_name": "Ann", "company": "X"}),
        );
        let p = plan(
            RecordKind::Contact,
            "x1",
            Write::Patch(json!({"company": null})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        assert!(p.doc.as_ref().unwrap().get("company").is_none());
        let p = plan(
            RecordKind::Contact,
            "x1",
            Write::Replace(json!({"last_name": "B"})),
            Some(&cur),
            LATER,
        )
        .unwrap();
        let doc = p.doc.unwrap();
        assert!(doc.get("first_name").is_none());
        assert_eq!(doc["last_name"], "B");
        assert!(
            matches!(plan(RecordKind::Contact, "x1", Write::Patch(json!({"id": "other"})), Some(&cur), LATER), Err(Refusal::Invalid(e)) if e.field == "id")
        );
    }

    #[test]
    fn deletes_carry_ids_and_missing_records_are_refused() {
        let cur = created(RecordKind::Task, json!({"title": "t"}));
        let p = plan(RecordKind::Task, "x1", Write::Delete, Some(&cur), LATER).unwrap();
        assert_eq!(p.events[0].data, json!({"ids": ["x1"]}));
        assert_eq!(p.doc, None);
        assert_eq!(
            plan(RecordKind::Task, "x1", Write::Delete, None, LATER),
            Err(Refusal::NotFound)
        );
        assert_eq!(
            plan(
                RecordKind::Task,
                "x1",
                Write::Create(json!({"title": "t"})),
                Some(&cur),
                LATER
            ),
            Err(Refusal::AlreadyExists)
        );
    }

    fn refusal_of(kind: RecordKind, body: Value) -> Option<(String, &'static str)> {
        match plan(kind, "x1", Write::Create(body), None, NOW) {
            Err(Refusal::Invalid(e)) => Some((e.field, e.code)),
            _ => None,
        }
    }

    #[test]
    fn control_characters_are_refused_in_every_text_field_naming_it() {
        let controls = (0u32..=0x1f)
            .chain([0x7f])
            .chain(0x80..=0x9f)
            .map(|u| char::from_u32(u).unwrap());
        for c in controls {
            let t = format!("a{c}b");
            for (kind, body, field) in [
                (RecordKind::Contact, json!({"first_name": t}), "first_name"),
                (
                    RecordKind::Contact,
                    json!({"first_name": "J", "owner_id": t}),
                    "owner_id",
                ),
                (
                    RecordKind::Contact,
                    json!({"first_name": "J", "tags": [{"name": t}]}),
                    "tags[0].name",
                ),
                (
                    RecordKind::Contact,
                    json!({"first_name": "J", "custom": [{"label": "L", "value": t}]}),
                    "custom[0].value",
                ),
                (
                    RecordKind::Contact,
                    json!({"first_name": "J", "address": {"formatted": t}}),
                    "address.formatted",
                ),
                (RecordKind::Organization, json!({"name": t}), "name"),
                (RecordKind::Task, json!({"title": t}), "title"),
                (RecordKind::Deal, json!({"name": "D", "stage": t}), "stage"),
                (
                    RecordKind::Deal,
                    json!({"name": "D", "stage": "s", "contact_ids": [t]}),
                    "contact_ids[0]",
                ),
            ] {
                assert_eq!(
                    refusal_of(kind, body.clone()),
                    Some((field.to_string(), crate::text::CONTROL_CHARACTER)),
                    "{body}"
                );
            }
            // Notes are multi-line: line breaks and tabs are text there.
            let notes = refusal_of(RecordKind::Contact, json!({"first_name": "J", "notes": t}));
            if matches!(c, '\n' | '\r' | '\t') {
                assert_eq!(notes, None);
            } else {
                assert_eq!(
                    notes,
                    Some(("notes".into(), crate::text::CONTROL_CHARACTER))
                );
            }
            // Free fields are JSON: escapes carry control characters, except NUL.
            let free = refusal_of(
                RecordKind::Deal,
                json!({"name": "D", "stage": "s", "memo": {"x": t}}),
            );
            if c == '\0' {
                assert_eq!(
                    free,
                    Some(("memo.x".into(), crate::text::CONTROL_CHARACTER))
                );
            } else {
                assert_eq!(free, None);
            }
            // Field names are single-line.
            let key = refusal_of(RecordKind::Task, json!({"title": "T", t.clone(): 1}));
            assert_eq!(key, Some((".".into(), crate::text::CONTROL_CHARACTER)));
        }
    }

    #[test]
    fn emails_are_within_rfc_5321_limits() {
        let local64 = "l".repeat(64);
        let label63 = "d".repeat(63);
        let domain253 = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "e".repeat(61)
        );
        assert_eq!(domain253.len(), 253);
        for (address, ok) in [
            (format!("{local64}@example.com"), true),
            (format!("{local64}x@example.com"), false),
            (format!("a@{label63}.com"), true),
            (format!("a@{label63}x.com"), false),
            (format!("a@{domain253}"), true),
            (format!("a@{domain253}x"), false),
            ("a@b..com".to_string(), false),
            ("a@.b.com".to_string(), false),
            ("a@b.com.".to_string(), false),
            ("a@@b.com".to_string(), false),
            ("a b@c.com".to_string(), false),
            ("jos\u{e9}@exampl\u{e9}.fr".to_string(), true),
        ] {
            for body in [
                json!({"primary_email": address}),
                json!({"first_name": "J", "emails": [{"label": "W", "value": address}]}),
            ] {
                let got = refusal_of(RecordKind::Contact, body.clone());
                assert_eq!(got.is_none(), ok, "{body}: {got:?}");
            }
        }
    }

    #[test]
    fn record_urls_are_refused_when_a_lenient_parser_would_repair_them() {
        for (url, ok) in [
            ("https://example.com/in/jd", true),
            ("http://example.com", true),
            ("https:/example.com", false),
            ("https:example.com", false),
            ("https:\\\\example.com", false),
            (" https://example.com", false),
            ("https://example.com/a b", false),
            ("https://2130706433/", false),
            ("https://example.com/../x", false),
            ("ftp://example.com/", false),
        ] {
            let got = refusal_of(
                RecordKind::Contact,
                json!({"first_name": "J", "websites": [{"label": "W", "value": url}]}),
            );
            assert_eq!(got.is_none(), ok, "{url}: {got:?}");
            if !ok {
                assert_eq!(got.unwrap().0, "websites[0].value", "{url}");
            }
        }
    }
}
