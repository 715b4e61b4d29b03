//! CSV for contact imports: an RFC 4180 reader that skips bad rows, and the documented header
//! mapping onto the contact schema (see [`crate::record`]).
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

/// Splits CSV text into records. A record that can't be read is an error of its own (saying on
/// which line it starts) and the records after it are still read.
///
/// Records are read with the `csv` crate: comma-separated, `"` quotes a field, `""` inside quotes
/// is one quote, lines end with LF, CRLF or CR, a leading byte order mark is ignored, and blank or
/// all-space lines are skipped. Within one line the reading is lenient: a quote inside an unquoted
/// field, or text right after a closing quote, is kept as text.
///
/// A quoted field may hold line breaks. An unterminated quote, though, would run on through the
/// following rows (to the end of the text, or to the next quote, which it pairs with). The rule
/// that confines it to its own row:
///
/// - a record in which a quoted field never closes is bad;
/// - a quoted field that holds a line break must close right before a comma or the end of the
///   record (text right after its closing quote is how an unterminated quote reads once it pairs up
///   with a quote of a later row), and a record that spans several lines must have as many fields
///   as the header (the first record read); otherwise the record is bad;
/// - a bad record stands for the one line it starts on: reading goes on at the next line, so the
///   rows after it are read as if the bad line weren't there.
pub fn records(text: &str) -> Vec<Result<Vec<String>, String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    // Fields in the header (the first record read), once known.
    let mut width = None;
    // Line numbers for errors: bad records come in text order, so one count moves forward.
    let (mut counted_to, mut line) = (0, 1);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::Cursor::new(text.as_bytes()));
    let mut record = ::csv::StringRecord::new();
    loop {
        let before = reader.position().byte() as usize;
        let (start, raw, verdict) = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                // The record's own text, without the blank lines before it and its line break.
                let after = reader.position().byte() as usize;
                let raw = text[before..after].trim_start_matches(LINE_BREAK);
                let start = after - raw.len();
                let fields = record.iter().map(str::to_string).collect();
                let raw = raw.trim_end_matches(LINE_BREAK);
                (start, raw, judge(raw, fields, width))
            }
            // Not expected from UTF-8 text read flexibly; still one bad record, not a lost file.
            Err(e) => (before, "", Err(Bad::Unreadable(e.to_string()))),
        };
        match verdict {
            Ok(fields) if fields.len() == 1 && fields[0].trim().is_empty() => {}
            Ok(fields) => {
                width.get_or_insert(fields.len());
                out.push(Ok(fields));
            }
            Err(bad) => {
                line += line_breaks(&text.as_bytes()[counted_to..start]);
                counted_to = start;
                let last = line + line_breaks(raw.as_bytes());
                out.push(Err(bad.message(line, last)));
                // Go on at the line after the one the bad record starts on.
                let mut next = ::csv::Position::new();
                next.set_byte(next_line(text, start) as u64);
                if reader.seek(next).is_err() {
                    break; // Seeking in memory can't fail.
                }
            }
        }
    }
    out
}

const LINE_BREAK: [char; 2] = ['\r', '\n'];

/// Why a record is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bad {
    /// A quoted field never closes.
    Unterminated,
    /// A quoted field holding a line break doesn't close where a field ends.
    RunsOn,
    /// A record spanning lines has another number of fields than the header.
    Width { cells: usize, header: usize },
    /// The `csv` crate refused it.
    Unreadable(String),
}

impl Bad {
    /// The message for a bad record that starts on line `line` and ends on line `last`.
    fn message(&self, line: usize, last: usize) -> String {
        match self {
            Bad::Unterminated => format!(
                "unterminated quoted field on line {line}: its closing quote is missing; the line \
                 is skipped"
            ),
            Bad::RunsOn => format!(
                "unterminated quoted field on line {line}: a quote runs on to line {last} and \
                 doesn't close where a field ends; the line is skipped"
            ),
            Bad::Width { cells, header } => format!(
                "a quoted field on line {line} runs on to line {last}, giving {} where the header \
                 has {header}: probably an unterminated quote; the line is skipped",
                match cells {
                    1 => "1 cell".to_string(),
                    n => format!("{n} cells"),
                },
            ),
            Bad::Unreadable(e) => format!("line {line}: {e}; the line is skipped"),
        }
    }
}

/// Whether one record, read as `fields` from `raw` (its text), is accepted under the rule of
/// [`records`].
fn judge(raw: &str, fields: Vec<String>, width: Option<usize>) -> Result<Vec<String>, Bad> {
    match quoting(raw) {
        Quoting::Unterminated => Err(Bad::Unterminated),
        Quoting::RunsOn => Err(Bad::RunsOn),
        Quoting::Closed => match width {
            Some(header) if header != fields.len() && raw.contains(LINE_BREAK) => Err(Bad::Width {
                cells: fields.len(),
                header,
            }),
            _ => Ok(fields),
        },
    }
}

/// How the quoted fields of one record's text end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Every quoted field closes, and each one that holds a line break closes right before a comma
    /// or the end of the record.
    Closed,
    /// A quoted field that holds a line break has text right after its closing quote: how an
    /// unterminated quote reads once it pairs up with a quote of a later row.
    RunsOn,
    /// A quoted field never closes.
    Unterminated,
}

/// The quoting of one record's text, followed through the `csv` crate reader's states.
fn quoting(raw: &str) -> Quoting {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut at = At::FieldStart;
    // Whether the quoted field being read holds a line break.
    let mut spans_lines = false;
    for b in raw.bytes() {
        at = match (at, b) {
            (At::FieldStart, b'"') => {
                spans_lines = false;
                At::Quoted
            }
            (At::Quoted, b'"') => At::QuoteInQuoted,
            (At::Quoted, b'\r' | b'\n') => {
                spans_lines = true;
                At::Quoted
            }
            (At::Quoted, _) => At::Quoted,
            (At::QuoteInQuoted, b'"') => At::Quoted,
            (_, b',' | b'\r' | b'\n') => At::FieldStart,
            (At::QuoteInQuoted, _) if spans_lines => return Quoting::RunsOn,
            _ => At::Unquoted,
        };
    }
    if at == At::Quoted {
        Quoting::Unterminated
    } else {
        Quoting::Closed
    }
}

/// How many lines end in `bytes` (LF, CRLF and CR each end one).
fn line_breaks(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count()
}

/// The byte just past the line break that ends the line holding byte `at`.
fn next_line(text: &str, at: usize) -> usize {
    match text[at..].find(LINE_BREAK) {
        None => text.len(),
        Some(i) if text[at + i..].starts_with("\r\n") => at + i + 2,
        Some(i) => at + i + 1,
    }
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
const DIRECT: &[&str] = crate::record::CONTACT_SCALARS;

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
    fn an_unterminated_quote_in_the_middle_costs_only_its_own_row() {
        let text = "first_name,last_name\n\
                    Ada,Lovelace\n\
                    \"Bad,Row\n\
                    Grace,Hopper\n\
                    \"Quoted, Name\",X\n\
                    Linus,Torvalds\n";
        let r = records(text);
        assert_eq!(r.len(), 6, "{r:?}");
        assert_eq!(r[0], Ok(vec!["first_name".into(), "last_name".into()]));
        assert_eq!(r[1], Ok(vec!["Ada".into(), "Lovelace".into()]));
        let err = r[2].as_ref().unwrap_err();
        assert!(err.contains("unterminated quoted field on line 3"), "{err}");
        assert_eq!(r[3], Ok(vec!["Grace".into(), "Hopper".into()]));
        assert_eq!(r[4], Ok(vec!["Quoted, Name".into(), "X".into()]));
        assert_eq!(r[5], Ok(vec!["Linus".into(), "Torvalds".into()]));

        // The quote never closes at all: the same rows are read.
        let r = records("a,b\n1,2\n\"open,x\r\n3,4\r\n\r\n5,6");
        let ok: Vec<_> = r.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok, [&["a", "b"], &["1", "2"], &["3", "4"], &["5", "6"]]);
        assert!(r[2].as_ref().unwrap_err().contains("line 3"), "{r:?}");
        assert_eq!(r.len(), 5);

        // Lines are counted in the text (blank lines and line breaks inside fields included).
        let r = records("a,b\n\"x\ny\",z\r\n\r\n\"bad\n1,2\n");
        assert_eq!(r[1], Ok(vec!["x\ny".into(), "z".into()]));
        assert!(r[2].as_ref().unwrap_err().contains("on line 5:"), "{r:?}");
        assert_eq!(r[3], Ok(vec!["1".into(), "2".into()]));
    }

    #[test]
    fn a_quote_spans_lines_only_when_the_record_comes_out_whole() {
        // The quote pairs up with the opening quote of a later row's field, which text follows.
        let r = records("a,b,c\nx,y,\"oops\n1,2,3\n4,5,\"six\"\n");
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[1].is_err());
        assert_eq!(r[2], Ok(vec!["1".into(), "2".into(), "3".into()]));
        assert_eq!(r[3], Ok(vec!["4".into(), "5".into(), "six".into()]));
        // Two cells where the header has two, yet the closing quote is followed by text.
        let r = records("a,b\n\"oops\n1,2\n\"3\",4\n");
        assert!(r[1].is_err(), "{r:?}");
        assert_eq!(
            r[2..],
            [
                Ok(vec!["1".into(), "2".into()]),
                Ok(vec!["3".into(), "4".into()])
            ]
        );
        // The quote closes cleanly at the end of a later line, but gives one cell where the header
        // has two.
        let r = records("a,b\n\"oops\n1,2\n3,4\"\n");
        assert!(
            r[1].as_ref()
                .unwrap_err()
                .contains("1 cell where the header has 2"),
            "{r:?}"
        );
        assert_eq!(r[2], Ok(vec!["1".into(), "2".into()]));
        // Stray quotes are text, as in any lenient reader.
        assert_eq!(r[3], Ok(vec!["3".into(), "4\"".into()]));
        let r = records("a,b\n5'11\" tall,\"Dwayne\" Johnson\n");
        assert_eq!(
            r[1],
            Ok(vec!["5'11\" tall".into(), "Dwayne Johnson".into()])
        );
        // A well-formed multi-line field of the header's width is one record.
        let r = records("a,b\n\"line 1\r\nline 2\",\"say \"\"hi\"\"\"\n3,4\n");
        assert_eq!(
            r[1],
            Ok(vec!["line 1\r\nline 2".into(), "say \"hi\"".into()])
        );
        assert_eq!(r[2], Ok(vec!["3".into(), "4".into()]));
        assert_eq!(r.len(), 3);
        // Also next to a field spanning lines.
        let r = records("a,b\n\"line 1\nline 2\",say \"hi\"\n");
        assert_eq!(r[1], Ok(vec!["line 1\nline 2".into(), "say \"hi\"".into()]));
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
