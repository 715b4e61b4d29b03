//! What a stored text may contain: the one rule about control characters that every validator
//! calls (webhook names, descriptions, URLs and header values, record fields, actor ids and
//! idempotency keys, event fields and the JSON documents stored with events and records), so no
//! interface can store what another refuses, and nothing reaches a database that would refuse it
//! (PostgreSQL refuses NUL in `text`; before this rule a NUL there was a 500).
//!
//! Control characters are the Unicode `Cc` category: C0 (U+0000–U+001F, which includes tab, line
//! feed and carriage return), DEL (U+007F) and C1 (U+0080–U+009F). Three shapes of text:
//! - **single-line** ([`check_line`]): none of them. Names, URLs, ids, header values, keys.
//! - **multi-line** ([`check_multiline`]): line feed, carriage return and tab are allowed (a note
//!   has paragraphs), every other control character is refused.
//! - **JSON documents** ([`check_json`]): a JSON string may carry any control character as an
//!   escape (`\u0007`, `\n`), and the stored text keeps it escaped, so they are allowed — except
//!   NUL, in string values and in keys alike: PostgreSQL can't hold it in a `text` value it is
//!   unescaped into (ids and names taken from the document), and no receiver expects one.
//!
//! [`FieldError`] lives here too: every validation failure names the field it is about.

use serde_json::Value;

/// A validation failure tied to one input field (`field` uses dotted paths: `headers.X-Foo`,
/// `emails[1].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// Machine-readable reason, stable for clients: `required`, `too_long`, `invalid_url`, …
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The `code` of every control-character refusal.
pub const CONTROL_CHARACTER: &str = "control_character";

/// Whether `c` is a control character: C0, DEL or C1 (Unicode general category `Cc`).
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// The first control character of `s` (its 0-based character position and the character);
/// with `line_breaks`, line feed, carriage return and tab don't count.
pub fn find_control(s: &str, line_breaks: bool) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|&(_, c)| is_control(c) && !(line_breaks && matches!(c, '\n' | '\r' | '\t')))
}

/// How a control character is named in messages: `U+0009 (tab)`.
pub fn describe(c: char) -> String {
    let name = match c {
        '\0' => " (NUL)",
        '\t' => " (tab)",
        '\n' => " (line feed)",
        '\r' => " (carriage return)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (DEL)",
        _ => "",
    };
    format!("U+{:04X}{name}", c as u32)
}

fn refusal(field: &str, what: &str, at: usize, c: char) -> FieldError {
    FieldError::new(
        field,
        CONTROL_CHARACTER,
        format!(
            "{field} must not contain {what}; found {} at character {}",
            describe(c),
            at + 1
        ),
    )
}

/// Single-line text: no control character at all (no tab or line break either).
pub fn check_line(field: &str, s: &str) -> Result<(), FieldError> {
    match find_control(s, false) {
        None => Ok(()),
        Some((at, c)) => Err(refusal(field, "control characters", at, c)),
    }
}

/// Multi-line text: line feed, carriage return and tab allowed; any other control character is
/// refused.
pub fn check_multiline(field: &str, s: &str) -> Result<(), FieldError> {
    match find_control(s, true) {
        None => Ok(()),
        Some((at, c)) => Err(refusal(
            field,
            "control characters other than line breaks and tabs",
            at,
            c,
        )),
    }
}

/// A JSON document stored whole: no NUL in any string value or key, however deep (`field` is the
/// document's name; the error names the path inside it, e.g. `data.contacts[2].name`). Other
/// control characters travel as JSON escapes and are kept.
pub fn check_json(field: &str, v: &Value) -> Result<(), FieldError> {
    let nul = |path: &str, what: &str, s: &str| {
        let at = s.chars().position(|c| c == '\0').unwrap_or(0);
        FieldError::new(
            path,
            CONTROL_CHARACTER,
            format!(
                "{path} must not contain U+0000 (NUL) in a {what} (found at character {})",
                at + 1
            ),
        )
    };
    match v {
        Value::String(s) if s.contains('\0') => Err(nul(field, "string", s)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_json(&format!("{field}[{i}]"), item)),
        Value::Object(m) => m.iter().try_for_each(|(k, item)| {
            if k.contains('\0') {
                return Err(nul(if field.is_empty() { "." } else { field }, "key", k));
            }
            // An empty `field` is the document itself: its keys are top-level field names.
            let path = if field.is_empty() {
                k.clone()
            } else {
                format!("{field}.{k}")
            };
            check_json(&path, item)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every control character (C0, DEL, C1) and a few neighbours that are not.
    fn controls() -> impl Iterator<Item = char> {
        (0u32..=0x1f)
            .chain([0x7f])
            .chain(0x80..=0x9f)
            .map(|u| char::from_u32(u).unwrap())
    }

    #[test]
    fn every_c0_del_and_c1_character_is_a_control_character_and_nothing_else_is() {
        assert_eq!(controls().count(), 65);
        for c in controls() {
            assert!(is_control(c), "{}", describe(c));
        }
        for c in [
            ' ', '~', '\u{a0}', '\u{ad}', '\u{200b}', '\u{feff}', 'é', '😀',
        ] {
            assert!(!is_control(c), "{}", describe(c));
        }
    }

    #[test]
    fn single_line_text_refuses_each_control_character_anywhere_naming_the_field() {
        for c in controls() {
            for s in [
                format!("{c}"),
                format!("{c}abc"),
                format!("ab{c}c"),
                format!("abc{c}"),
            ] {
                let e = check_line("name", &s).unwrap_err();
                assert_eq!((e.field.as_str(), e.code), ("name", CONTROL_CHARACTER));
                assert!(e.message.contains(&describe(c)), "{}", e.message);
            }
        }
        assert!(check_line("name", "CRM sync – prod ✓").is_ok());
        assert!(check_line("name", "").is_ok());
        let e = check_line("name", "ab\tc").unwrap_err();
        assert_eq!(
            e.message,
            "name must not contain control characters; found U+0009 (tab) at character 3"
        );
    }

    #[test]
    fn multi_line_text_allows_line_breaks_and_tabs_only() {
        assert!(check_multiline("notes", "line 1\r\nline 2\n\tindented").is_ok());
        for c in controls().filter(|c| !matches!(c, '\n' | '\r' | '\t')) {
            let e = check_multiline("notes", &format!("a\n{c}")).unwrap_err();
            assert_eq!((e.field.as_str(), e.code), ("notes", CONTROL_CHARACTER));
        }
    }

    #[test]
    fn json_documents_refuse_nul_in_values_and_keys_at_any_depth_with_its_path() {
        assert!(check_json(
            "data",
            &json!({"a": "tab\there \u{7} \u{85}", "n": [1, null]})
        )
        .is_ok());
        for (doc, path) in [
            (json!("a\u{0}"), "data"),
            (json!({"a": "x\u{0}"}), "data.a"),
            (json!({"a": [1, {"b": "\u{0}"}]}), "data.a[1].b"),
            (json!({"a\u{0}b": 1}), "data"),
            (json!({"a": {"k\u{0}": "v"}}), "data.a"),
            (json!([[["\u{0}"]]]), "data[0][0][0]"),
        ] {
            let e = check_json("data", &doc).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                (path, CONTROL_CHARACTER),
                "{doc}"
            );
        }
        // A whole document: paths start at its field names.
        let e = check_json("", &json!({"name": "x", "extra": {"a": "\u{0}"}})).unwrap_err();
        assert_eq!(e.field, "extra.a");
        let e = check_json("", &json!({"a\u{0}": 1})).unwrap_err();
        assert_eq!(e.field, ".");
    }
}
