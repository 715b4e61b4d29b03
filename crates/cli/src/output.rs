//! Printing answers: the API's JSON as-is under `--json`, aligned tables and `key  value` blocks
//! otherwise. Results go to standard output; progress, notices and errors to standard error, so a
//! pipe gets only the data.

use serde_json::Value;

/// Writes one line of results to standard output (see `outln!`).
pub fn write_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: can't write the output: {e}");
        std::process::exit(i32::from(crate::error::EXIT_FAILED));
    }
}

/// Pretty JSON on standard output.
pub fn json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A field as display text: strings bare, `null` and absent as `-`, anything else as JSON.
pub fn text(v: &Value, key: &str) -> String {
    show(v.get(key).unwrap_or(&Value::Null))
}

/// A value as display text (see [`text`]).
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            if items.is_empty() {
                "-".into()
            } else {
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            }
        }
        other => other.to_string(),
    }
}

/// Rows under upper-case headers, each column as wide as its widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([self.headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == last {
                        c.to_string()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = line(self.headers.clone());
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }

    /// Prints the table, or a note on standard error when there is nothing to show.
    pub fn print(&self, empty: &str) {
        if self.rows.is_empty() {
            eprintln!("{empty}");
        } else {
            outln!("{}", self.render());
        }
    }
}

/// `label  value` lines, labels aligned; empty values are left out.
pub fn details(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        if !v.is_empty() {
            outln!("{k:<w$}  {v}");
        }
    }
}

/// After a page of a list: how to get the next one (on standard error, so pipes stay clean).
pub fn more(list: &Value) {
    if let Some(c) = list.get("next_cursor").and_then(Value::as_str) {
        eprintln!("(more: add --cursor {c})");
    }
}

/// The rows of a list answer.
pub fn rows(list: &Value) -> &[Value] {
    list.get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_the_last_ragged() {
        let mut t = Table::new(&["ID", "STATUS", "URL"]);
        t.row(vec!["a".into(), "delivered".into(), "https://x".into()]);
        t.row(vec!["bbbb".into(), "-".into(), "h".into()]);
        assert_eq!(
            t.render(),
            "ID    STATUS     URL\na     delivered  https://x\nbbbb  -          h"
        );
    }

    #[test]
    fn values_show_as_plain_text() {
        let v = serde_json::json!({"a": "x", "b": null, "c": ["p", "q"], "d": 3});
        assert_eq!(text(&v, "a"), "x");
        assert_eq!(text(&v, "b"), "-");
        assert_eq!(text(&v, "missing"), "-");
        assert_eq!(text(&v, "c"), "p, q");
        assert_eq!(text(&v, "d"), "3");
    }
}
