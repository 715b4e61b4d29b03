//! CSV for contact imports: an RFC 4180 reader and the documented header mapping onto seed 000's
//! contact schema.
//!
//! Columns (case-insensitive; spaces and dashes count as underscores):
//! `id`, `first_name`, `last_name`, `company`, `job_title`, `label`, `notes`, `primary_email`,
//! `primary_phone`, `owner_id` map to the fields of the same name; `email` and `email:<label>`
//! (e.g. `email:Work`, `email:Home`) add to `emails`; likewise `phone[:<label>]` → `phones`,
//! `website[:<label>]` → `websites`, `custom:<label>` → `custom`; `social:<platform>` (e.g.
//! `social:linkedin`) adds `{"<platform>_url": value}` to `socials`; `address` and `where_we_met`
//! fill `formatted`; `tags` holds tag names separated by `;`. Empty cells are absent. When
//! `primary_email` / `primary_phone` are empty, the first email / phone is used.

use crate::webhook::FieldError;
use serde_json::{json, Map, Value};

/// Splits CSV text into records. A record that can't be read (an unterminated quote) is an error
/// for that record only; reading goes on at the next line.
pub fn records(text: &str) -> Vec<Result<Vec<String>, String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut at_start = true;
        let mut error = None;
        loop {
            match chars.next() {
                None => {
                    if quoted {
                        error = Some("unterminated quoted field".to_string());
                    }
                    break;
                }
                Some('"') if at_start => {
                    quoted = true;
                    at_start = false;
                }
                Some('"') if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                Some(',') if !quoted => {
                    fields.push(std::mem::take(&mut field));
                    at_start = true;
                }
                Some('\r') if !quoted && chars.peek() == Some(&'\n') => {}
                Some('\n') if !quoted => break,
                Some(c) => {
                    field.push(c);
                    at_start = false;
                }
            }
        }
        fields.push(field);
        // Skip blank lines entirely.
        if fields.len() == 1 && fields[0].trim().is_empty() && error.is_none() {
            continue;
        }
        out.push(match error {
            Some(e) => Err(e),
            None => Ok(fields),
        });
    }
    out
}

/// A recognised column.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Field(&'static str),
    Labelled {
        list: &'static str,
        label: Option<String>,
    },
    Social(String),
    Place(&'static str),
    Tags,
}

/// Columns that fill one field of the same name.
const DIRECT: &[&str] = crate::entity::CONTACT_SCALARS;

fn column(header: &str) -> Option<Column> {
    let h = header.trim();
    let (name, label) = match h.split_once(':') {
        Some((n, l)) => (
            n.trim(),
            Some(l.trim().to_string()).filter(|l| !l.is_empty()),
        ),
        None => (h, None),
    };
    let name = name.to_ascii_lowercase().replace([' ', '-'], "_");
    if label.is_none() {
        if let Some(f) = DIRECT.iter().find(|f| **f == name) {
            return Some(Column::Field(f));
        }
    }
    Some(match (name.as_str(), label) {
        ("email" | "emails", l) => Column::Labelled {
            list: "emails",
            label: l,
        },
        ("phone" | "phones", l) => Column::Labelled {
            list: "phones",
            label: l,
        },
        ("website" | "websites", l) => Column::Labelled {
            list: "websites",
            label: l,
        },
        ("custom", Some(l)) => Column::Labelled {
            list: "custom",
            label: Some(l),
        },
        ("social", Some(p)) => Column::Social(p.to_ascii_lowercase()),
        ("address", None) => Column::Place("address"),
        ("where_we_met", None) => Column::Place("where_we_met"),
        ("tags", None) => Column::Tags,
        _ => return None,
    })
}

/// The column mapping of a header row; an unknown column is an error naming it.
pub struct ContactColumns(Vec<Column>);

impl ContactColumns {
    pub fn new(headers: &[String]) -> Result<Self, FieldError> {
        headers
            .iter()
            .map(|h| {
                column(h).ok_or_else(|| {
                    FieldError::new(
                        format!("columns.{h}"),
                        "unknown_column",
                        format!("unknown CSV column `{h}`; see the README's import section for the mapping"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ContactColumns)
    }

    /// One record as a contact body.
    pub fn contact(&self, record: &[String]) -> Result<Value, FieldError> {
        if record.len() != self.0.len() {
            return Err(FieldError::new(
                ".",
                "invalid",
                format!(
                    "the row has {} cells but the header has {}",
                    record.len(),
                    self.0.len()
                ),
            ));
        }
        let mut m = Map::new();
        let push = |m: &mut Map<String, Value>, list: &str, item: Value| {
            if let Value::Array(items) = m.entry(list.to_string()).or_insert_with(|| json!([])) {
                items.push(item);
            }
        };
        for (col, cell) in self.0.iter().zip(record) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match col {
                Column::Field(f) => {
                    m.insert(f.to_string(), json!(cell));
                }
                Column::Labelled { list, label } => {
                    push(&mut m, list, json!({"label": label, "value": cell}))
                }
                Column::Social(p) => push(&mut m, "socials", json!({ format!("{p}_url"): cell })),
                Column::Place(f) => {
                    m.insert(f.to_string(), json!({"formatted": cell, "raw": {}}));
                }
                Column::Tags => {
                    for name in cell.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                        push(&mut m, "tags", json!({"name": name, "type": "tag"}));
                    }
                }
            }
        }
        for (primary, list) in [("primary_email", "emails"), ("primary_phone", "phones")] {
            if !m.contains_key(primary) {
                if let Some(first) = m
                    .get(list)
                    .and_then(|l| l.get(0))
                    .and_then(|e| e.get("value"))
                    .cloned()
                {
                    m.insert(primary.into(), first);
                }
            }
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quotes_commas_newlines_and_crlf() {
        let text = "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"multi\nline\"\n\n1,,3\n";
        let r: Vec<_> = records(text).into_iter().map(Result::unwrap).collect();
        assert_eq!(r[0], ["a", "b", "c"]);
        assert_eq!(r[1], ["x, y", "say \"hi\"", "multi\nline"]);
        assert_eq!(r[2], ["1", "", "3"]);
        assert_eq!(r.len(), 3);
        let bad = records("a,b\n\"open,x\n");
        assert!(bad[1].is_err());
    }

    #[test]
    fn maps_headers_to_the_contact_schema() {
        let headers: Vec<String> = [
            "First Name",
            "last_name",
            "Email:Work",
            "email:Home",
            "Phone:Mobile",
            "social:linkedin",
            "tags",
            "address",
            "custom:CRM Owner",
            "website",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cols = ContactColumns::new(&headers).unwrap();
        let row: Vec<String> = [
            "Ada",
            "Lovelace",
            "ada@work.com",
            "ada@home.com",
            "+441234567",
            "https://linkedin.com/in/ada",
            "vip; math",
            "London",
            "Sales",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = cols.contact(&row).unwrap();
        assert_eq!(c["first_name"], "Ada");
        assert_eq!(
            c["emails"],
            json!([{"label": "Work", "value": "ada@work.com"}, {"label": "Home", "value": "ada@home.com"}])
        );
        assert_eq!(c["primary_email"], "ada@work.com");
        assert_eq!(c["primary_phone"], "+441234567");
        assert_eq!(
            c["socials"],
            json!([{"linkedin_url": "https://linkedin.com/in/ada"}])
        );
        assert_eq!(
            c["tags"],
            json!([{"name": "vip", "type": "tag"}, {"name": "math", "type": "tag"}])
        );
        assert_eq!(c["address"], json!({"formatted": "London", "raw": {}}));
        assert_eq!(
            c["custom"],
            json!([{"label": "CRM Owner", "value": "Sales"}])
        );
        assert!(c.get("websites").is_none());
        assert!(ContactColumns::new(&["shoe size".to_string()]).is_err());
        assert!(cols.contact(&["only one".to_string()]).is_err());
    }
}
