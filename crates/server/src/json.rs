//! Decoding JSON input into typed values, with errors that name the offending field. Used by the
//! API's extractors and by anything else that accepts JSON from users (imports, the CLI).

use crate::error::Error;
use serde::de::DeserializeOwned;

/// Parses JSON into `T`: syntax errors are 400, shape errors 422 with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let msg = inner.to_string();
                    // serde_path_to_error already includes an unknown field in the path; a missing
                    // one is reported at its parent, so append its name.
                    let (code, field) = if msg.starts_with("unknown field") {
                        ("unknown_field", path)
                    } else if msg.starts_with("missing field") {
                        let name = backticked(&msg).unwrap_or_default();
                        (
                            "required",
                            if path == "." {
                                name.to_string()
                            } else {
                                format!("{path}.{name}")
                            },
                        )
                    } else {
                        ("invalid_type", path)
                    };
                    Error::invalid(field, code, strip_position(&msg))
                }
                _ => Error::bad_request(
                    "invalid_json",
                    format!("request body is not valid JSON: {inner}"),
                    None,
                ),
            });
        }
    };
    de.end().map_err(|e| {
        Error::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
            None,
        )
    })?;
    Ok(value)
}

fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// serde_json appends " at line 1 column 17"; useful for syntax errors, noise for field errors.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
