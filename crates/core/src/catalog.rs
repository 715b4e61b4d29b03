//! The event catalog as data, and every spelling of an event name.
//!
//! Hookline stores event types in their native `subject.action` form (`contact.created`). Each wire
//! format spells them its own way (`contacts.created` for the envelope format, `ContactCreated` for
//! the contacts-list format), and subscriptions accept any of those spellings so that a user can
//! paste the names from whichever of those formats they already receive. This module is the only
//! place that translates between them.

use serde::Serialize;

/// Where events of a type come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Emitted by writes to Hookline's own CRM records (and publishable raw as well); `"entity"`
    /// when serialized.
    #[serde(rename = "entity")]
    RecordWrite,
    /// Published raw through `POST /v1/events`.
    Raw,
    /// Emitted by Hookline itself about its webhooks.
    Operational,
}

/// One catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    /// What the event is about, its subject type: the name's first segment (`contact`, `deal`,
    /// `conversation`, `webhook`).
    pub subject: &'static str,
    pub origin: Origin,
    pub description: &'static str,
    /// Other native names accepted for this type (e.g. `zoom.recording.completed`, the flat
    /// format's name for `meeting.recording.completed`).
    pub aliases: &'static [&'static str],
}

macro_rules! ev {
    ($name:literal, $subject:literal, $origin:ident, $desc:literal) => {
        ev!($name, $subject, $origin, $desc, [])
    };
    ($name:literal, $subject:literal, $origin:ident, $desc:literal, [$($alias:literal),*]) => {
        EventType { name: $name, subject: $subject, origin: Origin::$origin, description: $desc, aliases: &[$($alias),*] }
    };
}

/// Every event type Hookline knows, in catalog order.
pub const CATALOG: &[EventType] = &[
    ev!(
        "contact.created",
        "contact",
        RecordWrite,
        "A contact is created (manually, via the API, MCP or an import)."
    ),
    ev!(
        "contact.updated",
        "contact",
        RecordWrite,
        "A contact field changes (including tags and linked notetaker sessions)."
    ),
    ev!(
        "contact.deleted",
        "contact",
        RecordWrite,
        "One or more contacts are deleted; carries ids only."
    ),
    ev!(
        "contact.assigned",
        "contact",
        RecordWrite,
        "A contact's owner changes (sent in addition to contact.updated)."
    ),
    ev!(
        "organization.created",
        "organization",
        RecordWrite,
        "An organization is created."
    ),
    ev!(
        "organization.updated",
        "organization",
        RecordWrite,
        "An organization field changes."
    ),
    ev!(
        "organization.deleted",
        "organization",
        RecordWrite,
        "An organization is deleted; carries ids only."
    ),
    ev!("deal.created", "deal", RecordWrite, "A deal is created."),
    ev!("deal.updated", "deal", RecordWrite, "A deal field changes."),
    ev!(
        "deal.deleted",
        "deal",
        RecordWrite,
        "A deal is deleted; carries ids only."
    ),
    ev!(
        "deal.stage.changed",
        "deal",
        RecordWrite,
        "A deal moves to another pipeline stage (sent in addition to deal.updated)."
    ),
    ev!(
        "deal.assigned",
        "deal",
        RecordWrite,
        "A deal's owner changes (sent in addition to deal.updated)."
    ),
    ev!(
        "service.created",
        "service",
        RecordWrite,
        "A service is created."
    ),
    ev!(
        "service.updated",
        "service",
        RecordWrite,
        "A service field changes."
    ),
    ev!(
        "service.deleted",
        "service",
        RecordWrite,
        "A service is deleted; carries ids only."
    ),
    ev!("task.created", "task", RecordWrite, "A task is created."),
    ev!("task.updated", "task", RecordWrite, "A task field changes."),
    ev!(
        "task.deleted",
        "task",
        RecordWrite,
        "A task is deleted; carries ids only."
    ),
    ev!(
        "conversation.created",
        "conversation",
        Raw,
        "A new conversation is created."
    ),
    ev!(
        "conversation.assigned",
        "conversation",
        Raw,
        "A conversation is assigned."
    ),
    ev!(
        "conversation.status.changed",
        "conversation",
        Raw,
        "A conversation's status changes (OPEN/CLOSED)."
    ),
    ev!(
        "message.received",
        "message",
        Raw,
        "A new message is received."
    ),
    ev!("message.sent", "message", Raw, "A message is sent."),
    ev!(
        "message.delivered",
        "message",
        Raw,
        "A sent message is delivered to the recipient."
    ),
    ev!(
        "message.read",
        "message",
        Raw,
        "A sent message is read by the recipient."
    ),
    ev!("message.failed", "message", Raw, "A message fails to send."),
    ev!(
        "broadcast.response",
        "broadcast",
        Raw,
        "A contact replies to a broadcast or campaign message."
    ),
    ev!(
        "meeting.recording.completed",
        "meeting",
        Raw,
        "A meeting's cloud recording finishes processing.",
        ["zoom.recording.completed"]
    ),
    ev!(
        "webhook.disabled",
        "webhook",
        Operational,
        "Hookline disabled a webhook whose deliveries kept failing."
    ),
    ev!(
        "webhook.failing",
        "webhook",
        Operational,
        "A webhook's consecutive failures reached half its auto-disable threshold (once per failing streak)."
    ),
    ev!(
        "webhook.recovered",
        "webhook",
        Operational,
        "A webhook that was failing answered successfully again (once per failing streak)."
    ),
    ev!(
        "delivery.exhausted",
        "delivery",
        Operational,
        "A delivery ended failed: its retries ran out, or the answer was not retryable."
    ),
    ev!(
        "webhook.test",
        "webhook",
        Operational,
        "A test delivery sent from the test button, CLI or API."
    ),
];

/// Looks up a native name or alias (exact, lower case).
pub fn lookup(name: &str) -> Option<&'static EventType> {
    CATALOG
        .iter()
        .find(|e| e.name == name || e.aliases.contains(&name))
}

/// Plural of a subject type (`contact` → `contacts`, `delivery` → `deliveries`) as the envelope
/// format spells it.
pub fn plural(subject_type: &str) -> String {
    match subject_type.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{subject_type}s"),
    }
}

/// `contact.created` → `contacts.created` (the envelope format's spelling).
pub fn envelope_name(native: &str) -> String {
    match native.split_once('.') {
        Some((subject_type, rest)) => format!("{}.{rest}", plural(subject_type)),
        None => native.to_string(),
    }
}

/// Events the flat format names differently from Hookline's native name: (native, flat name).
const FLAT_SPELLINGS: &[(&str, &str)] =
    &[("meeting.recording.completed", "zoom.recording.completed")];

/// The flat format's spelling: the native name, except where the flat format calls the event
/// something else (`meeting.recording.completed` is its `zoom.recording.completed`), so a receiver
/// that switches on the flat format's names sees the names it knows.
pub fn flat_name(native: &str) -> String {
    FLAT_SPELLINGS
        .iter()
        .find(|(n, _)| *n == native)
        .map_or(native, |(_, flat)| *flat)
        .to_string()
}

/// `contact.created` → `ContactCreated`, `deal.stage.changed` → `DealStageChanged` (the
/// contacts-list format's style).
pub fn pascal_name(native: &str) -> String {
    native
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Why a subscription entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("event names must not be empty")]
    Empty,
    #[error("unknown event type `{0}`; GET /v1/event-types lists them")]
    Unknown(String),
}

/// Normalises one subscription entry to its stored native form.
///
/// Accepts `*`, native names, aliases, envelope plurals (`contacts.created`), PascalCase
/// (`ContactCreated`), and prefix wildcards in either spelling (`contact.*`, `contacts.*`,
/// `deal.stage.*`). A wildcard must match at least one catalog entry, so typos are caught.
pub fn normalize_pattern(input: &str) -> Result<String, PatternError> {
    let raw = input.trim();
    if raw.is_empty() {
        return Err(PatternError::Empty);
    }
    if raw == "*" {
        return Ok("*".into());
    }
    if let Some(prefix) = raw.strip_suffix(".*") {
        let prefix = prefix.to_ascii_lowercase();
        for candidate in singular_candidates(&prefix) {
            let dotted = format!("{candidate}.");
            if CATALOG.iter().any(|e| e.name.starts_with(&dotted)) {
                return Ok(format!("{candidate}.*"));
            }
        }
        return Err(PatternError::Unknown(raw.to_string()));
    }
    if let Some(e) = lookup(raw) {
        return Ok(e.name.to_string());
    }
    let lower = raw.to_ascii_lowercase();
    if let Some(e) = lookup(&lower) {
        return Ok(e.name.to_string());
    }
    for e in CATALOG {
        let names = std::iter::once(e.name).chain(e.aliases.iter().copied());
        for n in names {
            if envelope_name(n) == lower || pascal_name(n) == raw {
                return Ok(e.name.to_string());
            }
        }
    }
    Err(PatternError::Unknown(raw.to_string()))
}

/// The native name of one event type, in any of its spellings; `None` for a pattern (`contact.*`)
/// or an unknown name. The one answer to "is this an event name or a pattern?".
pub fn event_name(input: &str) -> Option<String> {
    normalize_pattern(input).ok().filter(|n| !n.contains('*'))
}

/// `contacts` → [`contacts`, `contact`], `deliveries` → [.., `delivery`]; other prefixes
/// unchanged. Lets `contacts.*` mean `contact.*` (the inverse of [`plural`]).
fn singular_candidates(prefix: &str) -> Vec<String> {
    let mut out = vec![prefix.to_string()];
    let (head, tail) = prefix.split_once('.').unwrap_or((prefix, ""));
    if let Some(stem) = head.strip_suffix("ies") {
        out.push(if tail.is_empty() {
            format!("{stem}y")
        } else {
            format!("{stem}y.{tail}")
        });
    } else if let Some(single) = head.strip_suffix('s') {
        out.push(if tail.is_empty() {
            single.to_string()
        } else {
            format!("{single}.{tail}")
        });
    }
    out
}

/// Does a stored (normalised) pattern match a native event type?
///
/// `*` matches every non-operational event: operational events (`webhook.*`) describe Hookline
/// itself and have their own shape, so a receiver only gets them when it names them.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return lookup(event_type).is_none_or(|e| e.origin != Origin::Operational);
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// Does any of a webhook's patterns match?
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, event_type))
}

/// Payload of the operational `webhook.disabled` event.
pub fn webhook_disabled_data(
    id: crate::ids::WebhookId,
    name: &str,
    url: &str,
    reason: &str,
    at: &crate::time::Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "url": url,
        "reason": reason,
        "disabled_at": crate::time::format(at),
    })
}

/// Operational events about one webhook that are never delivered to that webhook itself: a
/// failing endpoint would only fail them too, lengthen its own streak and, for
/// `delivery.exhausted`, feed a loop. Their payload names the webhook: `id` in `webhook.*` events
/// (as in `webhook.disabled`), `webhook_id` in `delivery.exhausted`.
pub const NOT_TO_SUBJECT: &[&str] = &["webhook.failing", "webhook.recovered", "delivery.exhausted"];

/// The webhook an operational event must not be delivered to (see [`NOT_TO_SUBJECT`]), if any.
pub fn excluded_webhook<'a>(event_type: &str, data: &'a serde_json::Value) -> Option<&'a str> {
    if !NOT_TO_SUBJECT.contains(&event_type) {
        return None;
    }
    let key = if event_type.starts_with("webhook.") {
        "id"
    } else {
        "webhook_id"
    };
    data.get(key).and_then(|v| v.as_str())
}

/// Payload of the operational `webhook.failing` event.
pub fn webhook_failing_data(
    id: crate::ids::WebhookId,
    name: &str,
    url: &str,
    consecutive_failures: u64,
    disable_after_failures: u64,
    failing_since: Option<&crate::time::Timestamp>,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "url": url,
        "consecutive_failures": consecutive_failures,
        "disable_after_failures": disable_after_failures,
        "failing_since": failing_since.map(crate::time::format),
    })
}

/// Payload of the operational `webhook.recovered` event.
pub fn webhook_recovered_data(
    id: crate::ids::WebhookId,
    name: &str,
    url: &str,
    failing_since: Option<&crate::time::Timestamp>,
    at: &crate::time::Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "url": url,
        "failing_since": failing_since.map(crate::time::format),
        "recovered_at": crate::time::format(at),
    })
}

/// Why a delivery ended `failed`: the schedule ran out, or the answer said not to retry.
pub const EXHAUSTED_RETRIES: &str = "retries_exhausted";
/// See [`EXHAUSTED_RETRIES`].
pub const EXHAUSTED_NOT_RETRYABLE: &str = "not_retryable";

/// The first concrete event type a subscription list matches (for test sends): exact names first,
/// then the first catalog entry a pattern matches; `contact.created` when nothing else fits.
pub fn first_match(patterns: &[String]) -> &'static str {
    for p in patterns {
        if let Some(e) = lookup(p) {
            return e.name;
        }
    }
    CATALOG
        .iter()
        .find(|e| subscribed(patterns, e.name))
        .map(|e| e.name)
        .unwrap_or("contact.created")
}

/// A realistic sample payload for an event type, used by test sends. Contacts follow the contact
/// schema ([`crate::record`]) field for field.
pub fn sample_data(event_type: &str) -> serde_json::Value {
    use serde_json::json;
    let subject_type = lookup(event_type).map(|e| e.subject).unwrap_or("contact");
    if event_type.ends_with(".deleted") {
        return json!({"ids": [format!("{subject_type}_sample_1")]});
    }
    match subject_type {
        "contact" => json!({
            "id": "contact_sample_1",
            "first_name": "John",
            "last_name": "Doe",
            "company": "Example Corp",
            "job_title": "Product Manager",
            "label": "Work",
            "notes": "Met at event",
            "primary_email": "john.doe@example.com",
            "primary_phone": "+15550101010",
            "emails": [{"label": "Work", "value": "john.doe@example.com"}],
            "phones": [{"label": "Mobile", "value": "+15550101010"}],
            "websites": [{"label": "Company", "value": "https://example.com"}],
            "socials": [{"linkedin_url": "https://linkedin.com/in/john-doe"}],
            "custom": [{"label": "CRM Owner", "value": "Sales"}],
            "address": {"formatted": "123 Market Street, San Francisco, CA, USA, 94105", "raw": {}},
            "where_we_met": {"formatted": "Moscone Center, San Francisco, CA, USA", "raw": {}},
            "tags": [{"name": "Conference", "type": "event"}],
            "notetaker_sessions": [],
            "owner_id": "user_sample_1",
            "created_at": "2026-05-15T10:00:00.000Z",
            "updated_at": "2026-05-15T10:05:00.000Z"
        }),
        "deal" => {
            json!({"id": "deal_sample_1", "name": "Sample deal", "stage": "qualified", "owner_id": "user_sample_1", "amount": 1000})
        }
        "organization" => json!({"id": "organization_sample_1", "name": "Example Corp"}),
        "service" => json!({"id": "service_sample_1", "name": "Onboarding"}),
        "task" => json!({"id": "task_sample_1", "title": "Call John"}),
        "conversation" => {
            json!({"id": "conversation_sample_1", "status": "OPEN", "channel": "whatsapp"})
        }
        "message" => {
            json!({"id": "message_sample_1", "conversation_id": "conversation_sample_1", "text": "Hello!"})
        }
        "broadcast" => {
            json!({"id": "broadcast_sample_1", "contact_id": "contact_sample_1", "text": "Yes, interested"})
        }
        "meeting" => {
            json!({"id": "meeting_sample_1", "recording_url": "https://example.com/recording"})
        }
        _ => {
            json!({"id": format!("{subject_type}_sample_1"), "message": "This is a test event from Hookline."})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for e in CATALOG {
            assert!(seen.insert(e.name), "duplicate {}", e.name);
            assert_eq!(e.name, e.name.to_ascii_lowercase());
            assert!(e.name.starts_with(&format!("{}.", e.subject)), "{}", e.name);
        }
        assert_eq!(CATALOG.len(), 33);
    }

    #[test]
    fn spellings() {
        assert_eq!(envelope_name("contact.created"), "contacts.created");
        assert_eq!(envelope_name("deal.stage.changed"), "deals.stage.changed");
        assert_eq!(envelope_name("delivery.exhausted"), "deliveries.exhausted");
        assert_eq!(plural("delivery"), "deliveries");
        assert_eq!(plural("survey"), "surveys");
        assert_eq!(normalize_pattern("deliveries.*").unwrap(), "delivery.*");
        assert_eq!(
            normalize_pattern("deliveries.exhausted").unwrap(),
            "delivery.exhausted"
        );
        assert_eq!(pascal_name("delivery.exhausted"), "DeliveryExhausted");
        assert_eq!(pascal_name("contact.deleted"), "ContactDeleted");
        assert_eq!(pascal_name("deal.stage.changed"), "DealStageChanged");
        assert_eq!(flat_name("contact.created"), "contact.created");
        assert_eq!(
            flat_name("meeting.recording.completed"),
            "zoom.recording.completed"
        );
    }

    #[test]
    fn operational_events_about_a_webhook_name_the_one_they_skip() {
        let w = crate::ids::WebhookId::new();
        let data = webhook_failing_data(w, "n", "https://x.test/", 5, 10, None);
        assert_eq!(
            excluded_webhook("webhook.failing", &data),
            Some(w.to_string().as_str())
        );
        // `webhook.disabled` goes out only to enabled webhooks anyway; other events never skip.
        assert_eq!(excluded_webhook("webhook.disabled", &data), None);
        assert_eq!(excluded_webhook("contact.created", &data), None);
        let exhausted = serde_json::json!({"delivery_id": "d", "webhook_id": "w"});
        assert_eq!(
            excluded_webhook("delivery.exhausted", &exhausted),
            Some("w")
        );
        for name in NOT_TO_SUBJECT {
            assert_eq!(lookup(name).unwrap().origin, Origin::Operational);
            // `*` never matches them: a receiver gets them only by naming them.
            assert!(!pattern_matches("*", name));
        }
    }

    #[test]
    fn normalizes_every_spelling_to_native() {
        for (input, want) in [
            ("contact.created", "contact.created"),
            ("contacts.created", "contact.created"),
            ("ContactCreated", "contact.created"),
            ("CONTACT.CREATED", "contact.created"),
            ("deals.stage.changed", "deal.stage.changed"),
            ("DealStageChanged", "deal.stage.changed"),
            ("zoom.recording.completed", "meeting.recording.completed"),
            ("ZoomRecordingCompleted", "meeting.recording.completed"),
            ("*", "*"),
            ("contact.*", "contact.*"),
            ("contacts.*", "contact.*"),
            ("deal.stage.*", "deal.stage.*"),
            ("  task.deleted ", "task.deleted"),
        ] {
            assert_eq!(normalize_pattern(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_unknown_names_and_patterns() {
        for input in [
            "contact.exploded",
            "contactz.*",
            "foo",
            "contact",
            "*.*",
            "contact.**",
        ] {
            assert!(
                matches!(normalize_pattern(input), Err(PatternError::Unknown(_))),
                "{input}"
            );
        }
        assert_eq!(normalize_pattern("  "), Err(PatternError::Empty));
    }

    #[test]
    fn patterns_match() {
        assert!(pattern_matches("*", "contact.created"));
        assert!(!pattern_matches("*", "webhook.disabled"));
        assert!(pattern_matches("webhook.disabled", "webhook.disabled"));
        assert!(pattern_matches("webhook.*", "webhook.disabled"));
        assert!(pattern_matches("contact.*", "contact.assigned"));
        assert!(!pattern_matches("contact.*", "conversation.created"));
        assert!(pattern_matches("deal.stage.*", "deal.stage.changed"));
        assert!(!pattern_matches("deal.created", "deal.updated"));
        assert!(subscribed(
            &["task.*".into(), "deal.created".into()],
            "deal.created"
        ));
    }
}
