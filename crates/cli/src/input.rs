//! Inputs several commands share: `--data` in its three forms and the paging options of lists.

use crate::error::usage;
use clap::Args;
use serde_json::Value;
use std::io::{IsTerminal, Read};

/// `--limit` and `--cursor` of a list command.
#[derive(Args, Clone, Debug)]
pub struct PageArgs {
    /// How many rows to show (pages of the API are read as needed).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// Start after this row: the `next_cursor` of a previous list.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl PageArgs {
    pub fn limit(&self) -> usize {
        usize::try_from(self.limit).unwrap_or(usize::MAX)
    }
}

/// The bytes named by a `--data`-style argument: `@FILE`, `-` (standard input) or the text itself.
/// Absent means standard input too, unless it is a terminal (then nobody is going to type JSON).
pub fn bytes(flag: &str, value: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match value {
        Some(v) if v.starts_with('@') => {
            let path = &v[1..];
            std::fs::read(path).map_err(|e| usage(format!("{flag}: can't read {path}: {e}")))
        }
        Some("-") => stdin(flag),
        Some(text) => Ok(text.as_bytes().to_vec()),
        None if std::io::stdin().is_terminal() => Err(usage(format!(
            "give {flag} '{{…}}', {flag} @FILE, or pipe the JSON into standard input"
        ))),
        None => stdin(flag),
    }
}

fn stdin(flag: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| usage(format!("{flag}: can't read standard input: {e}")))?;
    Ok(buf)
}

/// A `--data`-style argument parsed as JSON; a parse error names the flag, line and column.
pub fn json(flag: &str, value: Option<&str>) -> anyhow::Result<Value> {
    let raw = bytes(flag, value)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(usage(format!("{flag}: no JSON given (the input is empty)")));
    }
    serde_json::from_slice(&raw).map_err(|e| usage(format!("{flag} is not valid JSON: {e}")))
}
