//! Wire formats: how one event becomes the headers and body of one delivery.
//!
//! Each format is a pure function of the event, the delivery id and (for one-object formats) which
//! object of a batch the delivery carries. Formats that carry one object per request (`flat`,
//! `entity`) get one delivery per object of a batch event; see [`deliveries_needed`].
//! Bodies are compact JSON with keys in each format's own order, written by
//! [`jsjson::to_js_json`]: byte for byte what JavaScript's `JSON.stringify(JSON.parse(body))`
//! gives back, so a receiver that re-serializes the parsed body before hashing still verifies.

use crate::catalog;
use crate::ids::{DeliveryId, EventId};
use crate::jsjson;
use crate::signing;
use crate::time::{self, Timestamp};
use crate::webhook::Format;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Everything a format may put on the wire about one event.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub id: EventId,
    /// Native name, e.g. `contact.created`.
    pub event_type: &'a str,
    pub occurred_at: Timestamp,
    pub source: Option<&'a str>,
    pub source_id: Option<&'a str>,
    /// Who caused it (`userId` in the record-centred format).
    pub actor_id: Option<&'a str>,
    /// The tenant's name (`companyId`, `organization_id`).
    pub tenant: &'a str,
    /// The id of the object the event is about, its subject (`entityId` in the record-centred
    /// format; the key of per-subject ordering).
    pub entity_id: Option<&'a str>,
    /// One object, an array of objects (a batch), or `{"ids": [...]}` for deletes.
    pub data: &'a Value,
    pub changes: Option<&'a Value>,
    pub batch: Option<&'a Value>,
}

impl EventFields<'_> {
    /// The event's subject type (`contact`): the catalog's, or the event name's first segment.
    pub fn subject_type(&self) -> &str {
        catalog::lookup(self.event_type)
            .map(|e| e.subject)
            .unwrap_or_else(|| self.event_type.split('.').next().unwrap_or(self.event_type))
    }

    fn is_delete(&self) -> bool {
        self.event_type.ends_with(".deleted")
    }

    /// Objects a record write or batch carries (empty for deletes).
    fn objects(&self) -> Vec<&Value> {
        if self.is_delete() {
            return Vec::new();
        }
        match self.data {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        }
    }

    /// How many objects [`Self::objects`] holds, without collecting them.
    fn object_count(&self) -> usize {
        match self.data {
            _ if self.is_delete() => 0,
            Value::Array(items) => items.len(),
            _ => 1,
        }
    }

    /// The `item`-th object: O(1), where one-object formats used to collect every object of the
    /// batch for each delivery (a 50,000-object event then drained at ~70 deliveries/s).
    fn object(&self, item: usize) -> Option<&Value> {
        match self.data {
            _ if self.is_delete() => None,
            Value::Array(items) => items.get(item),
            other if item == 0 => Some(other),
            _ => None,
        }
    }

    /// The `item`-th id a delete carries (see [`Self::ids`]), without copying the others.
    fn id_at(&self, item: usize) -> Option<Value> {
        if let Some(ids) = self.data.get("ids").and_then(Value::as_array) {
            return ids.get(item).cloned();
        }
        if item != 0 {
            return None;
        }
        if let Some(id) = self.data.get("id") {
            return Some(id.clone());
        }
        self.entity_id.map(|i| json!(i))
    }

    /// How many ids a delete carries.
    fn id_count(&self) -> usize {
        if let Some(ids) = self.data.get("ids").and_then(Value::as_array) {
            return ids.len();
        }
        usize::from(self.data.get("id").is_some() || self.entity_id.is_some())
    }

    /// Ids a delete carries: `data.ids`, else `data.id`, else the event's subject id.
    fn ids(&self) -> Vec<Value> {
        if let Some(ids) = self.data.get("ids").and_then(Value::as_array) {
            return ids.clone();
        }
        if let Some(id) = self.data.get("id") {
            return vec![id.clone()];
        }
        self.entity_id.map(|i| vec![json!(i)]).unwrap_or_default()
    }

    /// Id of the `item`-th object (or the event's subject id).
    fn object_id(&self, obj: &Value) -> Option<Value> {
        obj.get("id")
            .cloned()
            .or_else(|| self.entity_id.map(|i| json!(i)))
    }
}

/// Whether a format carries a whole batch in one request.
pub fn carries_batches(format: Format) -> bool {
    matches!(format, Format::Envelope | Format::ContactsList)
}

/// How many deliveries one event needs for a webhook of this format: 1, or one per object/id for
/// one-object formats.
pub fn deliveries_needed(format: Format, ev: &EventFields) -> usize {
    if carries_batches(format) {
        return 1;
    }
    let n = if ev.is_delete() {
        ev.id_count()
    } else {
        ev.object_count()
    };
    n.max(1)
}

/// Renders the body of one delivery. `item` selects the object for one-object formats;
/// `message_id` is what the envelope calls `event_id` (see [`AttemptMeta::message_id`]).
pub fn render_body(
    format: Format,
    ev: &EventFields,
    message_id: DeliveryId,
    item: Option<usize>,
) -> Vec<u8> {
    let value = match format {
        Format::Envelope => envelope(ev, message_id),
        Format::Flat => flat(ev, item.unwrap_or(0)),
        Format::RecordCentred => record_centred(ev, item.unwrap_or(0)),
        Format::ContactsList => contacts_list(ev),
    };
    jsjson::to_js_json(&value)
}

fn envelope(ev: &EventFields, message_id: DeliveryId) -> Value {
    let mut top = Map::new();
    top.insert("event_id".into(), json!(message_id));
    top.insert("occurred_at".into(), json!(time::format(&ev.occurred_at)));
    if let Some(s) = ev.source {
        top.insert("source".into(), json!(s));
    }
    if let Some(s) = ev.source_id {
        top.insert("source_id".into(), json!(s));
    }
    if let Some(b) = ev.batch {
        top.insert("batch".into(), b.clone());
    }
    let subject_type = ev.subject_type();
    let mut data = Map::new();
    data.insert(
        "event_type".into(),
        json!(Format::Envelope.event_name(ev.event_type)),
    );
    if ev.is_delete() {
        data.insert(format!("{subject_type}_ids"), Value::Array(ev.ids()));
    } else {
        data.insert(
            catalog::plural(subject_type),
            Value::Array(ev.objects().into_iter().cloned().collect()),
        );
    }
    if let Some(c) = ev.changes {
        data.insert("changes".into(), c.clone());
    }
    top.insert("data".into(), Value::Object(data));
    Value::Object(top)
}

fn flat(ev: &EventFields, item: usize) -> Value {
    let mut data = if ev.is_delete() {
        let mut m = Map::new();
        m.insert("id".into(), ev.id_at(item).unwrap_or(Value::Null));
        m
    } else {
        match ev.object(item) {
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                let mut m = Map::new();
                m.insert("value".into(), other.clone());
                m
            }
            None => Map::new(),
        }
    };
    if !data.contains_key("organization_id") {
        data.insert("organization_id".into(), json!(ev.tenant));
    }
    let mut top = Map::new();
    top.insert(
        "event".into(),
        json!(Format::Flat.event_name(ev.event_type)),
    );
    top.insert("timestamp".into(), json!(time::format(&ev.occurred_at)));
    top.insert("data".into(), Value::Object(data));
    if let Some(c) = ev.changes {
        top.insert("changes".into(), c.clone());
    }
    Value::Object(top)
}

/// The record-centred format (`Format::RecordCentred`, `"entity"` on the wire).
fn record_centred(ev: &EventFields, item: usize) -> Value {
    let subject_type = ev.subject_type();
    let (subject_id, payload) = if ev.is_delete() {
        let id = ev.id_at(item).unwrap_or(Value::Null);
        let mut p = Map::new();
        p.insert(format!("{subject_type}Id"), id.clone());
        (id, p)
    } else {
        let obj = ev.object(item).cloned().unwrap_or(Value::Null);
        let mut p = Map::new();
        let id = ev.object_id(&obj).unwrap_or(Value::Null);
        // The record-centred format spells record fields in camelCase (`firstName`,
        // `organizationIds`).
        p.insert(subject_type.to_string(), camel_keys(&obj));
        if let Some(c) = ev.changes {
            p.insert("changes".into(), camel_keys(c));
        }
        (id, p)
    };
    let mut data = Map::new();
    data.insert(
        "userId".into(),
        ev.actor_id.map(|a| json!(a)).unwrap_or(Value::Null),
    );
    data.insert("companyId".into(), json!(ev.tenant));
    data.insert("entityId".into(), subject_id);
    data.insert("payload".into(), Value::Object(payload));
    let mut top = Map::new();
    top.insert(
        "event".into(),
        json!(Format::RecordCentred.event_name(ev.event_type)),
    );
    top.insert("data".into(), Value::Object(data));
    top.insert("timestamp".into(), json!(time::format(&ev.occurred_at)));
    Value::Object(top)
}

/// `first_name` → `firstName`; names without underscores are kept as they are.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for (i, c) in name.chars().enumerate() {
        if c == '_' && i > 0 {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An object with its top-level keys in camelCase (nested values untouched); other values as they are.
fn camel_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (camel_case(k), v.clone())).collect())
        }
        other => other.clone(),
    }
}

fn contacts_list(ev: &EventFields) -> Value {
    let mut top = Map::new();
    top.insert(
        "event".into(),
        json!(Format::ContactsList.event_name(ev.event_type)),
    );
    if ev.is_delete() {
        top.insert("ids".into(), Value::Array(ev.ids()));
    } else {
        top.insert(
            "contacts".into(),
            Value::Array(ev.objects().into_iter().map(camel_contact).collect()),
        );
    }
    Value::Object(top)
}

/// How the contacts-list format (CloudCX's) fills each field of its contact from our contact
/// schema (the ConnectMachine one, see [`crate::record`]), in the contacts-list format's field
/// order. Every field is present in every contact, `null` when we have nothing to put there, as
/// that format does.
enum Camel {
    /// Copied from this field of our contact.
    Field(&'static str),
    /// Copied from the first field present; the last entry may be a `[{label, value}]` list
    /// whose first `value` is taken (`emails`, `phones`).
    FirstOf(&'static [&'static str]),
    /// Our RFC 3339 timestamp as a string of epoch milliseconds (`"1730877830000"`).
    Millis(&'static str),
    /// Our contact schema has no such field: taken from a field of this (snake_case) name when the
    /// contact carries one (a contact published raw may carry any fields; Hookline's own contact
    /// records have only the schema's), else `null`.
    Extra(&'static str),
}

const CAMEL_CONTACT: &[(&str, Camel)] = &[
    ("id", Camel::Field("id")),
    ("firstName", Camel::Field("first_name")),
    ("lastName", Camel::Field("last_name")),
    ("avatarUrl", Camel::Extra("avatar_url")),
    ("email", Camel::FirstOf(&["primary_email", "emails"])),
    ("phoneNumber", Camel::FirstOf(&["primary_phone", "phones"])),
    ("contactId", Camel::Extra("contact_id")),
    ("owner", Camel::Field("owner_id")),
    ("ownerName", Camel::Extra("owner_name")),
    ("leadStage", Camel::Extra("lead_stage")),
    ("tags", Camel::Field("tags")),
    ("notes", Camel::Field("notes")),
    ("companyName", Camel::Field("company")),
    ("jobTitle", Camel::Field("job_title")),
    ("priority", Camel::Extra("priority")),
    ("ip", Camel::Extra("ip")),
    ("countryRegion", Camel::Extra("country_region")),
    ("province", Camel::Extra("province")),
    ("city", Camel::Extra("city")),
    ("street", Camel::Extra("street")),
    ("zipCode", Camel::Extra("zip_code")),
    ("language", Camel::Extra("language")),
    ("facebookUsername", Camel::Extra("facebook_username")),
    ("telegramUsername", Camel::Extra("telegram_username")),
    ("instagramUsername", Camel::Extra("instagram_username")),
    ("whatsappNumber", Camel::Extra("whatsapp_number")),
    ("subscribeEmail", Camel::Extra("subscribe_email")),
    ("subscribeSMS", Camel::Extra("subscribe_sms")),
    ("subscribeWhatsapp", Camel::Extra("subscribe_whatsapp")),
    ("lastChannel", Camel::Extra("last_channel")),
    ("createdTime", Camel::Millis("created_at")),
    ("lastUpdatedTime", Camel::Millis("updated_at")),
    ("lastSeenTime", Camel::Extra("last_seen_time")),
    ("lastConnectedTime", Camel::Extra("last_connected_time")),
    ("lastHeardFromTime", Camel::Extra("last_heard_from_time")),
    ("customFields", Camel::Field("custom")),
];

/// The contacts-list format's contact shape (camelCase; times as strings of epoch milliseconds),
/// from our contact schema. The `CAMEL_CONTACT` table says where each field comes from.
/// `customFields` is `[]` when absent, as that format sends it; a timestamp that is not RFC 3339 is
/// passed through unchanged.
pub fn camel_contact(c: &Value) -> Value {
    let get = |k: &str| c.get(k).filter(|v| !v.is_null());
    let mut m = Map::new();
    for (name, source) in CAMEL_CONTACT {
        let value = match source {
            Camel::Field(k) | Camel::Extra(k) => get(k).cloned(),
            Camel::FirstOf(keys) => keys.iter().find_map(|k| match get(k)? {
                Value::Array(list) => list.first().and_then(|e| e.get("value")).cloned(),
                Value::String(s) if s.is_empty() => None,
                other => Some(other.clone()),
            }),
            Camel::Millis(k) => get(k).map(|v| match v.as_str().and_then(time::parse) {
                Some(t) => json!(t.timestamp_millis().to_string()),
                None => v.clone(),
            }),
        };
        let value = match (*name, value) {
            ("customFields", None) => json!([]),
            (_, v) => v.unwrap_or(Value::Null),
        };
        m.insert((*name).into(), value);
    }
    Value::Object(m)
}

/// The secrets a delivery is signed with: the current one, and the rotated-out one during its grace.
#[derive(Debug, Clone, Copy)]
pub struct SigningKeys<'a> {
    pub current: &'a str,
    pub previous: Option<&'a str>,
}

/// What identifies one attempt on the wire.
#[derive(Debug, Clone, Copy)]
pub struct AttemptMeta<'a> {
    pub brand: &'a str,
    pub format: Format,
    pub event_type: &'a str,
    /// The id the receiver deduplicates on (`X-{Brand}-Delivery-ID`, `webhook-id`, signed): the
    /// same for every redelivery of one event to one webhook, so it names the message, not the
    /// log record of one resend.
    pub message_id: DeliveryId,
    pub attempt_time: Timestamp,
}

/// Headers of one attempt, in a stable order. Custom headers come last.
pub fn delivery_headers(
    meta: AttemptMeta<'_>,
    keys: SigningKeys<'_>,
    body: &[u8],
    custom: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let AttemptMeta {
        brand,
        format,
        event_type,
        message_id,
        attempt_time,
    } = meta;
    let name = format.event_name(event_type);
    let id = message_id.to_string();
    let unix = attempt_time.timestamp();
    let mut standard = signing::standard_signature(keys.current, &id, unix, body);
    if let Some(prev) = keys.previous {
        standard.push(' ');
        standard.push_str(&signing::standard_signature(prev, &id, unix, body));
    }
    let mut h = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        (format!("X-{brand}-Event"), name.clone()),
        (format!("X-{brand}-Delivery-ID"), id.clone()),
        ("X-Webhook-Event".to_string(), name),
        (
            "X-Webhook-Timestamp".to_string(),
            time::format(&attempt_time),
        ),
        (
            "X-Webhook-Signature".to_string(),
            signing::hex_signature(keys.current, body),
        ),
    ];
    if let Some(prev) = keys.previous {
        h.push((
            "X-Webhook-Signature-Previous".to_string(),
            signing::hex_signature(prev, body),
        ));
    }
    h.push(("webhook-id".to_string(), id));
    h.push(("webhook-timestamp".to_string(), unix.to_string()));
    h.push(("webhook-signature".to_string(), standard));
    h.extend(custom.iter().map(|(k, v)| (k.clone(), v.clone())));
    h
}

/// Header names whose values are credentials: the delivery log shows them redacted.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || ["token", "secret", "key", "password", "auth"]
            .iter()
            .any(|w| n.contains(w))
}

/// Headers Hookline itself sets whose values are safe to show (signatures, not secrets).
const SIGNATURE_HEADERS: &[&str] = &[
    "x-webhook-signature",
    "x-webhook-signature-previous",
    "x-webhook-timestamp",
    "x-webhook-event",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Request headers as the delivery log keeps them: signatures shown, credentials redacted, and the
/// webhook's own headers (`custom`) masked like everywhere else they are shown
/// ([`mask_header_value`]), so the log reveals no more of them than the webhook does.
pub fn loggable_headers(
    headers: &[(String, String)],
    custom: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let shown = if SIGNATURE_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                v.clone()
            } else if is_sensitive_header(k) {
                "<redacted>".into()
            } else if custom.keys().any(|c| c.eq_ignore_ascii_case(k)) {
                mask_header_value(v)
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Shorter values are masked whole: 6 characters of them would be too much of a credential.
const MASK_SHOWS_FROM: usize = 16;

/// How a custom header value is shown once stored (API, console, MCP, CLI, delivery log): its first
/// 4 and last 2 characters around `…` (`Bearer receiver-token` → `Bear…en`), or only `••••••••`
/// when it is shorter than 16 characters. A mask is never a valid header value (those are ASCII),
/// so a mask sent back in an update can't be mistaken for a new value.
pub fn mask_header_value(value: &str) -> String {
    let n = value.chars().count();
    if n < MASK_SHOWS_FROM {
        return "••••••••".into();
    }
    let head: String = value.chars().take(4).collect();
    let tail: String = value.chars().skip(n - 2).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(event_type: &'a str, data: &'a Value) -> EventFields<'a> {
        EventFields {
            id: EventId::default(),
            event_type,
            occurred_at: time::parse("2026-05-15T10:30:00Z").unwrap(),
            source: None,
            source_id: None,
            actor_id: Some("u_1"),
            tenant: "acme",
            entity_id: None,
            data,
            changes: None,
            batch: None,
        }
    }

    fn body(format: Format, ev: &EventFields, item: Option<usize>) -> Value {
        serde_json::from_slice(&render_body(format, ev, DeliveryId::default(), item)).unwrap()
    }

    #[test]
    fn envelope_wraps_objects_and_ids_in_plural_keys() {
        let data = json!({"id": "c1", "first_name": "John"});
        let mut ev = view("contact.created", &data);
        ev.source = Some("contact_import");
        ev.source_id = Some("imp_1");
        let b = json!({"index": 1, "count": 1, "max_size": 100});
        ev.batch = Some(&b);
        let out = render_body(Format::Envelope, &ev, DeliveryId::default(), None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"event_id":"00000000-0000-0000-0000-000000000000","occurred_at":"2026-05-15T10:30:00.000Z","source":"contact_import","source_id":"imp_1","batch":{"index":1,"count":1,"max_size":100},"data":{"event_type":"contacts.created","contacts":[{"id":"c1","first_name":"John"}]}}"#
        );
        let del = json!({"ids": ["c1", "c2"]});
        let out = body(Format::Envelope, &view("contact.deleted", &del), None);
        assert_eq!(
            out["data"],
            json!({"event_type": "contacts.deleted", "contact_ids": ["c1", "c2"]})
        );
    }

    #[test]
    fn one_object_formats_split_batches() {
        let data = json!([{"id": "a"}, {"id": "b"}, {"id": "c"}]);
        let ev = view("contact.created", &data);
        assert_eq!(deliveries_needed(Format::Envelope, &ev), 1);
        assert_eq!(deliveries_needed(Format::ContactsList, &ev), 1);
        assert_eq!(deliveries_needed(Format::Flat, &ev), 3);
        assert_eq!(
            body(Format::Flat, &ev, Some(1))["data"],
            json!({"id": "b", "organization_id": "acme"})
        );
        let out = body(Format::RecordCentred, &ev, Some(2));
        assert_eq!(out["data"]["entityId"], "c");
        assert_eq!(out["data"]["payload"], json!({"contact": {"id": "c"}}));
        let del = json!({"ids": ["x", "y"]});
        let dev = view("deal.deleted", &del);
        assert_eq!(deliveries_needed(Format::RecordCentred, &dev), 2);
        assert_eq!(
            body(Format::RecordCentred, &dev, Some(1))["data"]["payload"],
            json!({"dealId": "y"})
        );
    }

    #[test]
    fn picking_one_object_or_id_agrees_with_the_whole_lists() {
        for (event_type, data) in [
            ("contact.created", json!([{"id": "a"}, {"id": "b"}, 7])),
            ("contact.updated", json!({"id": "solo"})),
            ("deal.deleted", json!({"ids": ["x", "y", "z"]})),
            ("deal.deleted", json!({"id": "one"})),
            ("deal.deleted", json!({})),
        ] {
            let ev = view(event_type, &data);
            let (objects, ids) = (ev.objects(), ev.ids());
            assert_eq!(ev.object_count(), objects.len(), "{data}");
            assert_eq!(ev.id_count(), ids.len(), "{data}");
            for i in 0..4 {
                assert_eq!(ev.object(i), objects.get(i).copied(), "{data} {i}");
                assert_eq!(ev.id_at(i), ids.get(i).cloned(), "{data} {i}");
            }
        }
    }

    #[test]
    fn the_log_shows_signatures_and_redacts_credentials() {
        let h: Vec<(String, String)> = [
            ("X-Webhook-Signature", "abc"),
            ("webhook-signature", "v1,x"),
            ("webhook-token", "s3cr3t"),
            ("Authorization", "Bearer t"),
            ("X-Api-Key", "k"),
            ("X-Tenant", "42"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let logged: std::collections::HashMap<_, _> =
            loggable_headers(&h, &BTreeMap::new()).into_iter().collect();
        assert_eq!(logged["X-Webhook-Signature"], "abc");
        assert_eq!(logged["webhook-signature"], "v1,x");
        assert_eq!(logged["webhook-token"], "<redacted>");
        assert_eq!(logged["Authorization"], "<redacted>");
        assert_eq!(logged["X-Api-Key"], "<redacted>");
        assert_eq!(logged["X-Tenant"], "42");
        // The webhook's own headers are masked even under harmless names.
        let custom = BTreeMap::from([("x-tenant".to_string(), "42".to_string())]);
        let logged: std::collections::HashMap<_, _> =
            loggable_headers(&h, &custom).into_iter().collect();
        assert_eq!(logged["X-Tenant"], "••••••••");
        assert_eq!(logged["Authorization"], "<redacted>");
    }

    #[test]
    fn header_values_are_masked_to_a_hint_or_wholly() {
        assert_eq!(mask_header_value("Bearer receiver-token"), "Bear…en");
        assert_eq!(mask_header_value("0123456789abcdef"), "0123…ef");
        for short in ["", "42", "Bearer abc12345"] {
            assert_eq!(mask_header_value(short), "••••••••", "{short}");
        }
        // Characters, not bytes: a mask never splits one.
        assert_eq!(mask_header_value("ééééé-0123456789-ü"), "éééé…-ü");
    }

    #[test]
    fn camel_case_converts_snake_case_names() {
        for (a, b) in [
            ("first_name", "firstName"),
            ("notetaker_sessions", "notetakerSessions"),
            ("id", "id"),
            ("dealIds", "dealIds"),
            ("_private", "_private"),
            ("a__b", "aB"),
        ] {
            assert_eq!(camel_case(a), b, "{a}");
        }
    }

    #[test]
    fn record_centred_format_matches_its_documented_shape() {
        let data = json!({"id": "ct_xyz", "firstName": "Max"});
        let changes = json!({"organizationIds": {"previous": [], "current": ["org_1"]}});
        let mut ev = view("contact.updated", &data);
        ev.changes = Some(&changes);
        let out = render_body(Format::RecordCentred, &ev, DeliveryId::default(), Some(0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"event":"contact.updated","data":{"userId":"u_1","companyId":"acme","entityId":"ct_xyz","payload":{"contact":{"id":"ct_xyz","firstName":"Max"},"changes":{"organizationIds":{"previous":[],"current":["org_1"]}}}},"timestamp":"2026-05-15T10:30:00.000Z"}"#
        );
    }

    #[test]
    fn contacts_list_uses_camel_case_and_epoch_millis() {
        let data = json!({"id": "c1", "first_name": "Allen", "primary_email": "a@x.com", "created_at": "2024-11-06T07:23:50Z"});
        let out = body(Format::ContactsList, &view("contact.created", &data), None);
        assert_eq!(out["event"], "ContactCreated");
        assert_eq!(out["contacts"][0]["firstName"], "Allen");
        assert_eq!(out["contacts"][0]["email"], "a@x.com");
        assert_eq!(out["contacts"][0]["createdTime"], "1730877830000");
        let del = json!({"ids": ["c1"]});
        assert_eq!(
            body(Format::ContactsList, &view("contact.deleted", &del), None),
            json!({"event": "ContactDeleted", "ids": ["c1"]})
        );
    }

    #[test]
    fn headers_carry_brand_names_and_both_signatures() {
        let body = br#"{"a":1}"#;
        let t = time::parse("2026-05-15T10:30:00Z").unwrap();
        let custom = [("X-Extra".to_string(), "1".to_string())].into();
        let keys = SigningKeys {
            current: "new",
            previous: Some("old"),
        };
        let meta = AttemptMeta {
            brand: "ConnectMachine",
            format: Format::Envelope,
            event_type: "contact.created",
            message_id: DeliveryId::default(),
            attempt_time: t,
        };
        let h = delivery_headers(meta, keys, body, &custom);
        let get = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("X-ConnectMachine-Event"), "contacts.created");
        assert_eq!(get("X-Webhook-Event"), "contacts.created");
        assert_eq!(
            get("X-ConnectMachine-Delivery-ID"),
            uuid::Uuid::nil().to_string()
        );
        assert_eq!(get("X-Webhook-Timestamp"), "2026-05-15T10:30:00.000Z");
        assert_eq!(
            get("X-Webhook-Signature"),
            signing::hex_signature("new", body)
        );
        assert_eq!(
            get("X-Webhook-Signature-Previous"),
            signing::hex_signature("old", body)
        );
        assert_eq!(get("webhook-timestamp"), t.timestamp().to_string());
        assert_eq!(get("webhook-signature").split(' ').count(), 2);
        assert_eq!(h.last().unwrap().0, "X-Extra");
    }
}
