//! What a caller says about a request besides its body — who acted, which version it last saw,
//! which idempotency key it used, which interface it came through — validated once here, so the
//! REST API, the console, MCP and the CLI all apply the same rules. Interfaces only pull the raw
//! strings out of their transport (headers, form fields, tool arguments) and hand them over.

use crate::error::{Error, Result};
use hookline_core::{signing, text};
use serde::Serialize;

/// Longest actor id (`X-Actor-Id`) accepted.
pub const MAX_ACTOR: usize = 256;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The interface a write came through; becomes the event's `source` unless the caller names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// The REST API.
    Api,
    /// The web console or the embedded portal.
    Console,
    /// The MCP server.
    Mcp,
}

impl Interface {
    pub fn source(self) -> &'static str {
        match self {
            Interface::Api => "api",
            Interface::Console => "ui",
            Interface::Mcp => "mcp",
        }
    }
}

fn bad_header(header: &str, message: impl Into<String>) -> Error {
    Error::bad_request("invalid_header", message, Some(header))
}

/// The acting user's id (`X-Actor-Id`): no control characters (422, the shared text rule, checked
/// before trimming so none is silently cut off); trimmed; empty means none; at most [`MAX_ACTOR`]
/// characters (400).
pub fn actor_id(raw: Option<&str>) -> Result<Option<String>> {
    if let Some(a) = raw {
        text::check_line("X-Actor-Id", a)?;
    }
    let Some(a) = raw.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    if a.chars().count() > MAX_ACTOR {
        return Err(bad_header(
            "X-Actor-Id",
            format!("X-Actor-Id must be at most {MAX_ACTOR} characters"),
        ));
    }
    Ok(Some(a.to_string()))
}

/// `If-Match`: the record version the caller last saw, as `ETag` gave it (`"3"`, `W/"3"` or `3`).
pub fn if_match(raw: Option<&str>) -> Result<Option<u64>> {
    raw.map(|v| {
        v.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<u64>()
            .map_err(|_| {
                bad_header(
                    "If-Match",
                    "If-Match must be a version as returned in ETag, e.g. \"3\"",
                )
            })
    })
    .transpose()
}

/// An idempotency key with the fingerprint of the request it came with: the same key with the
/// same request answers the first result again; the same key with another request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 of the request's canonical JSON, so whitespace or key order in the raw body
    /// doesn't make the same request look different.
    pub fingerprint: String,
}

impl Idempotency {
    /// Validates `key` and fingerprints `request` (publish's form: the body alone).
    pub fn new(key: &str, request: &impl Serialize) -> Result<Idempotency> {
        check_key(key)?;
        let canonical = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Idempotency {
            key: key.to_string(),
            fingerprint: signing::sha256_hex(&canonical),
        })
    }

    /// Optional variant for interfaces where the key may be absent.
    pub fn optional(key: Option<&str>, request: &impl Serialize) -> Result<Option<Idempotency>> {
        key.map(|k| Idempotency::new(k, request)).transpose()
    }

    /// For the other creating requests: the fingerprint covers the operation and what it acts on
    /// (`"resend"` and the delivery id, `"create_webhook"` and the body...), so one key can't answer
    /// for two different operations.
    pub fn for_request(
        key: Option<&str>,
        operation: &str,
        request: &impl Serialize,
    ) -> Result<Option<Idempotency>> {
        key.map(|k| {
            Idempotency::new(
                k,
                &serde_json::json!({"operation": operation, "request": request}),
            )
        })
        .transpose()
    }
}

/// An `Idempotency-Key`: no control characters (422, the shared text rule), 1 to
/// [`MAX_IDEMPOTENCY_KEY`] ASCII characters (400).
fn check_key(key: &str) -> Result<()> {
    text::check_line("Idempotency-Key", key)?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.is_ascii() {
        return Err(bad_header(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} ASCII characters"),
        ));
    }
    Ok(())
}

/// What an import body is, from its media type: CSV or a JSON array. Anything else is a 415.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Json,
}

impl ImportFormat {
    /// From a `Content-Type` value (parameters such as `charset` are ignored).
    pub fn from_media_type(content_type: Option<&str>) -> Result<ImportFormat> {
        let mime = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/csv" => Ok(ImportFormat::Csv),
            "application/json" => Ok(ImportFormat::Json),
            _ => Err(Error::UnsupportedMediaType(
                "send a JSON array (application/json) or CSV (text/csv)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_ids_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(actor_id(None).unwrap(), None);
        assert_eq!(actor_id(Some("  ")).unwrap(), None);
        assert_eq!(actor_id(Some(" u_1 ")).unwrap().as_deref(), Some("u_1"));
        for bad in ["a\u{7}b", "u_1\n", "\tu", "\u{85}", "\0"] {
            let e = actor_id(Some(bad)).unwrap_err();
            assert_eq!(
                e.status(),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{bad:?}"
            );
            assert_eq!(e.body().error.field.as_deref(), Some("X-Actor-Id"));
            assert_eq!(e.body().error.code, "control_character");
        }
        assert!(actor_id(Some(&"x".repeat(MAX_ACTOR))).is_ok());
        assert!(actor_id(Some(&"x".repeat(MAX_ACTOR + 1))).is_err());
    }

    #[test]
    fn if_match_takes_strong_weak_and_bare_versions() {
        assert_eq!(if_match(Some("\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(Some("W/\"4\"")).unwrap(), Some(4));
        assert_eq!(if_match(Some("5")).unwrap(), Some(5));
        assert_eq!(if_match(None).unwrap(), None);
        assert!(if_match(Some("abc")).is_err());
    }

    #[test]
    fn idempotency_fingerprint_ignores_formatting_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[1, 2]}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":[1,2]}"#).unwrap();
        let fa = Idempotency::new("k", &a).unwrap().fingerprint;
        assert_eq!(fa, Idempotency::new("k", &b).unwrap().fingerprint);
        assert_ne!(fa, Idempotency::new("k", &c).unwrap().fingerprint);
        let status = |k: &str| Idempotency::new(k, &a).unwrap_err().status().as_u16();
        assert_eq!(status(""), 400);
        assert_eq!(status(&"k".repeat(256)), 400);
        assert!(Idempotency::new(&"k".repeat(255), &a).is_ok());
        assert_eq!(status("é"), 400);
        assert_eq!(status("k\u{7f}"), 422);
        assert_eq!(status("k\0"), 422);
        // The operation is part of the fingerprint.
        let r = |op| {
            Idempotency::for_request(Some("k"), op, &a)
                .unwrap()
                .unwrap()
                .fingerprint
        };
        assert_ne!(r("resend"), r("replay"));
        assert_ne!(r("resend"), fa);
        assert_eq!(Idempotency::for_request(None, "resend", &a).unwrap(), None);
    }

    #[test]
    fn import_format_comes_from_the_media_type() {
        assert_eq!(
            ImportFormat::from_media_type(Some("text/csv; charset=utf-8")).unwrap(),
            ImportFormat::Csv
        );
        assert_eq!(
            ImportFormat::from_media_type(Some("Application/JSON")).unwrap(),
            ImportFormat::Json
        );
        assert!(ImportFormat::from_media_type(Some("text/plain")).is_err());
        assert!(ImportFormat::from_media_type(None).is_err());
    }
}
