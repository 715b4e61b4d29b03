//! Validation of a webhook's settings: every rule about what a webhook may contain, as pure
//! functions returning field-level errors the API shows as they are.

use crate::catalog::{self, PatternError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// Defined beside the text rule every validator shares; re-exported here where callers know it.
pub use crate::text::FieldError;

/// How an event is rendered for one webhook: one of the four wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The ConnectMachine-style envelope `{event_id, occurred_at, source?, source_id?, batch?,
    /// data}`.
    #[default]
    Envelope,
    /// The flat `{event, timestamp, data}` format.
    Flat,
    /// The record-centred format `{event, data: {userId, companyId, entityId, payload},
    /// timestamp}` (`"entity"` on the wire).
    #[serde(rename = "entity")]
    RecordCentred,
    /// The contacts-list format `{event: "ContactCreated", contacts: [...]}`.
    ContactsList,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Envelope,
        Format::Flat,
        Format::RecordCentred,
        Format::ContactsList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Envelope => "envelope",
            Format::Flat => "flat",
            Format::RecordCentred => "entity",
            Format::ContactsList => "contacts-list",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The event name as this format spells it on the wire.
    pub fn event_name(self, native: &str) -> String {
        match self {
            Format::Envelope => catalog::envelope_name(native),
            Format::Flat => catalog::flat_name(native),
            Format::RecordCentred => native.to_string(),
            Format::ContactsList => catalog::pascal_name(native),
        }
    }

    /// Event types this format can render, or `None` for all of them.
    pub fn renderable(self) -> Option<&'static [&'static str]> {
        match self {
            Format::ContactsList => {
                Some(&["contact.created", "contact.updated", "contact.deleted"])
            }
            _ => None,
        }
    }

    /// Whether this format can carry `event_type` at all.
    pub fn carries(self, event_type: &str) -> bool {
        self.renderable().is_none_or(|r| r.contains(&event_type))
    }
}

/// Per-webhook delivery order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// No ordering promise: fastest, events about one subject may overtake each other.
    #[default]
    None,
    /// Per-record order (`"entity"` on the wire): events about one subject (one `entity_id`, e.g.
    /// one contact) reach the webhook in order; other subjects are not held back.
    #[serde(rename = "entity")]
    PerRecord,
}

impl Ordering {
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::PerRecord => "entity",
        }
    }

    pub fn parse(s: &str) -> Option<Ordering> {
        match s {
            "none" => Some(Ordering::None),
            "entity" => Some(Ordering::PerRecord),
            _ => None,
        }
    }
}

pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_EVENTS: usize = 100;
pub const MAX_SECRET: usize = 512;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_NAME: usize = 128;
pub const MAX_HEADER_VALUE: usize = 4096;
pub const MAX_RATE_LIMIT: u32 = 100_000;

fn check_len(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        ));
    }
    crate::text::check_line(field, value)
}

/// A webhook's display name: trimmed, non-empty, single line.
pub fn validate_name(name: &str) -> Result<String, FieldError> {
    // Checked before trimming: a trailing line break is refused, not silently cut off.
    crate::text::check_line("name", name)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new(
            "name",
            "required",
            "name must not be empty",
        ));
    }
    check_len("name", name, MAX_NAME)?;
    Ok(name.to_string())
}

/// A webhook's description: one line (the console shows it in a single-line field), trimmed.
pub fn validate_description(d: &str) -> Result<String, FieldError> {
    crate::text::check_line("description", d)?;
    check_len("description", d, MAX_DESCRIPTION)?;
    Ok(d.trim().to_string())
}

/// A user-given secret is kept exactly as given (receivers already hold it); it only has to be
/// something HMAC can key with and a header-safe person can paste.
pub fn validate_secret(s: &str) -> Result<String, FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(
            "secret",
            "required",
            "secret must not be empty; omit it to have one generated",
        ));
    }
    if s.len() > MAX_SECRET {
        return Err(FieldError::new(
            "secret",
            "too_long",
            format!("secret must be at most {MAX_SECRET} bytes"),
        ));
    }
    crate::text::check_line("secret", s)?;
    // A `whsec_` secret is Standard Webhooks' form: receivers base64-decode the rest to get the key,
    // so it must decode, or their signatures would never match ours.
    if let Some(rest) = s.strip_prefix("whsec_") {
        use base64::Engine;
        if rest.is_empty()
            || base64::engine::general_purpose::STANDARD
                .decode(rest)
                .is_err()
        {
            return Err(FieldError::new(
                "secret",
                "invalid",
                "a secret starting with whsec_ must continue with standard base64 (with padding); use another prefix for a free-form secret",
            ));
        }
    }
    Ok(s.to_string())
}

/// Normalises the subscription list to native names/patterns and checks the format can render it.
pub fn validate_events(events: &[String], format: Format) -> Result<Vec<String>, FieldError> {
    if events.is_empty() {
        return Err(FieldError::new(
            "events",
            "required",
            "events must name at least one event type or pattern (e.g. \"contact.*\" or \"*\")",
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(FieldError::new(
            "events",
            "too_long",
            format!("at most {MAX_EVENTS} event entries are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, raw) in events.iter().enumerate() {
        let field = format!("events[{i}]");
        let native = catalog::normalize_pattern(raw).map_err(|e| match e {
            PatternError::Empty => FieldError::new(&field, "required", e.to_string()),
            PatternError::Unknown(_) => {
                FieldError::new(&field, "unknown_event_type", e.to_string())
            }
        })?;
        if out.contains(&native) {
            return Err(FieldError::new(
                field,
                "duplicate",
                format!("`{raw}` duplicates an earlier entry ({native})"),
            ));
        }
        if let Some(allowed) = format.renderable() {
            if !allowed.contains(&native.as_str()) {
                return Err(FieldError::new(
                    field,
                    "unsupported_by_format",
                    format!(
                        "the {} format can only carry {}; `{raw}` is not one of them",
                        format.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        out.push(native);
    }
    Ok(out)
}

/// Header names Hookline sets itself or that only make sense hop by hop.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "expect",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Custom headers sent with every delivery. Names must be HTTP tokens and may not shadow the headers
/// Hookline sets (including `X-Webhook-*` and `X-{brand}-*`); values may not break the header block.
pub fn validate_headers(
    headers: &BTreeMap<String, String>,
    brand: &str,
) -> Result<BTreeMap<String, String>, FieldError> {
    if headers.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "headers",
            "too_long",
            format!("at most {MAX_HEADERS} custom headers are allowed"),
        ));
    }
    let brand_prefix = format!("x-{}-", brand.to_ascii_lowercase());
    let mut seen = std::collections::HashSet::new();
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.chars().all(is_tchar) {
            return Err(FieldError::new(
                field,
                "invalid_header",
                format!("`{name}` is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, at most {MAX_HEADER_NAME})"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(FieldError::new(
                field,
                "duplicate",
                format!("header `{name}` is given twice (header names are case-insensitive)"),
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with("x-webhook-")
            || lower.starts_with(&brand_prefix)
        {
            return Err(FieldError::new(
                field,
                "reserved_header",
                format!("`{name}` is set by Hookline or is hop-by-hop and can't be overridden"),
            ));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("header values must be at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
        check_header_value(&field, value)?;
    }
    Ok(headers.clone())
}

/// A custom header value: visible ASCII (`!`–`~`) with single spaces between words allowed, no
/// leading or trailing space. Control characters (tab included) are refused by the shared text
/// rule first; anything outside ASCII is refused because HTTP gives it no agreed meaning (a
/// receiver might read it as Latin-1, UTF-8 or not at all), and surrounding spaces because HTTP
/// strips them, so the receiver would never see the value as stored.
fn check_header_value(field: &str, value: &str) -> Result<(), FieldError> {
    crate::text::check_line(field, value)?;
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(FieldError::new(
            field,
            "invalid_header",
            format!("header values must be visible ASCII characters (and spaces); `{c}` is not"),
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(FieldError::new(
            field,
            "invalid_header",
            "header values must not start or end with a space (HTTP would strip it)",
        ));
    }
    Ok(())
}

pub fn validate_rate_limit(limit: Option<u32>) -> Result<Option<u32>, FieldError> {
    match limit {
        Some(0) => Err(FieldError::new(
            "rate_limit",
            "invalid",
            "rate_limit is deliveries per second and must be at least 1 (null for no limit)",
        )),
        Some(n) if n > MAX_RATE_LIMIT => Err(FieldError::new(
            "rate_limit",
            "invalid",
            format!("rate_limit must be at most {MAX_RATE_LIMIT} per second"),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn events_are_normalised_and_checked() {
        assert_eq!(
            validate_events(
                &strings(&["contacts.created", "DealStageChanged", "task.*"]),
                Format::Envelope
            ),
            Ok(strings(&[
                "contact.created",
                "deal.stage.changed",
                "task.*"
            ]))
        );
        let e = validate_events(&[], Format::Envelope).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("events", "required"));
        let e = validate_events(
            &strings(&["contact.created", "ContactCreated"]),
            Format::Envelope,
        )
        .unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("events[1]", "duplicate"));
        let e = validate_events(&strings(&["contact.nope"]), Format::Envelope).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("events[0]", "unknown_event_type")
        );
        let e = validate_events(&strings(&["deal.created"]), Format::ContactsList).unwrap_err();
        assert_eq!(e.code, "unsupported_by_format");
        assert!(validate_events(&strings(&["*"]), Format::ContactsList).is_err());
        assert!(validate_events(&strings(&["ContactDeleted"]), Format::ContactsList).is_ok());
    }

    #[test]
    fn headers_refuse_injection_and_reserved_names() {
        let ok: BTreeMap<_, _> = [
            ("Authorization".to_string(), "Bearer abc".to_string()),
            (
                "X-Visible".to_string(),
                "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~".to_string(),
            ),
            ("X-Empty".to_string(), String::new()),
        ]
        .into();
        assert!(validate_headers(&ok, "Hookline").is_ok());
        for (name, value, code) in [
            ("X-Evil", "a\r\nHost: x", "control_character"),
            ("X-Evil", "a\nb", "control_character"),
            ("X-Evil", "a\0b", "control_character"),
            ("X-Evil", "a\tb", "control_character"),
            ("X-Evil", "a\u{7f}b", "control_character"),
            ("X-Evil", "a\u{85}b", "control_character"),
            ("X-Evil", "caf\u{e9}", "invalid_header"),
            ("X-Evil", "\u{a0}", "invalid_header"),
            ("X-Evil", " padded", "invalid_header"),
            ("X-Evil", "padded ", "invalid_header"),
            ("Bad Name", "v", "invalid_header"),
            ("Bad:Name", "v", "invalid_header"),
            ("", "v", "invalid_header"),
            ("Connection", "close", "reserved_header"),
            ("transfer-encoding", "chunked", "reserved_header"),
            ("Host", "evil", "reserved_header"),
            ("Content-Type", "text/plain", "reserved_header"),
            ("X-Webhook-Signature", "x", "reserved_header"),
            ("webhook-id", "x", "reserved_header"),
            ("X-Hookline-Event", "x", "reserved_header"),
            ("x-hookline-delivery-id", "x", "reserved_header"),
        ] {
            let h: BTreeMap<_, _> = [(name.to_string(), value.to_string())].into();
            let err = validate_headers(&h, "Hookline").unwrap_err();
            assert_eq!(err.code, code, "{name}: {value:?}");
        }
        let h: BTreeMap<_, _> = [("X-ConnectMachine-Event".to_string(), "x".to_string())].into();
        assert!(validate_headers(&h, "Hookline").is_ok());
        assert!(validate_headers(&h, "ConnectMachine").is_err());
        let many: BTreeMap<_, _> = (0..21)
            .map(|i| (format!("X-H{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            validate_headers(&many, "Hookline").unwrap_err().code,
            "too_long"
        );
    }

    #[test]
    fn names_secrets_and_limits() {
        assert_eq!(validate_name("  CRM sync "), Ok("CRM sync".to_string()));
        assert_eq!(validate_name(" ").unwrap_err().code, "required");
        assert_eq!(
            validate_name(&"x".repeat(201)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(validate_name("a\nb").unwrap_err().code, "control_character");
        assert_eq!(
            validate_name("name\n").unwrap_err().code,
            "control_character"
        );
        assert_eq!(
            validate_description("two\nlines").unwrap_err().code,
            "control_character"
        );
        assert_eq!(validate_description(" d "), Ok("d".to_string()));
        assert_eq!(
            validate_secret("your-hmac-secret"),
            Ok("your-hmac-secret".to_string())
        );
        assert!(validate_secret("").is_err());
        assert!(validate_secret("a\u{7}b").is_err());
        assert!(validate_secret("whsec_hello").is_err());
        assert!(validate_secret("whsec_").is_err());
        assert!(validate_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(validate_secret(&"s".repeat(513)).is_err());
        assert_eq!(
            validate_rate_limit(Some(0)).unwrap_err().field,
            "rate_limit"
        );
        assert_eq!(validate_rate_limit(Some(10)), Ok(Some(10)));
        assert_eq!(validate_rate_limit(None), Ok(None));
        assert!(validate_description(&"d".repeat(2001)).is_err());
    }

    #[test]
    fn formats_spell_event_names() {
        assert_eq!(
            Format::Envelope.event_name("contact.created"),
            "contacts.created"
        );
        assert_eq!(
            Format::Flat.event_name("contact.created"),
            "contact.created"
        );
        assert_eq!(
            Format::Flat.event_name("meeting.recording.completed"),
            "zoom.recording.completed"
        );
        assert_eq!(
            Format::RecordCentred.event_name("deal.stage.changed"),
            "deal.stage.changed"
        );
        assert_eq!(
            Format::ContactsList.event_name("contact.deleted"),
            "ContactDeleted"
        );
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("xml"), None);
    }
}
