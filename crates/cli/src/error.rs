//! What can go wrong in a command, and the exit status each kind of failure gets.
//!
//! Scripts branch on the status, so it is a contract (listed in `hookline --help` and the README):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the API refused the request (validation, not found, conflict…) or the operation failed (a test send the receiver refused, an import with bad rows only, a signature that doesn't verify) |
//! | 2 | the command line or a local input is wrong (bad flag, unreadable file, no URL or key configured) |
//! | 3 | the API key was refused (401/403) |
//! | 4 | the server could not be reached (connection, DNS, TLS, timeout) |
//! | 5 | the server failed (5xx): retry later |
//!
//! Commands return `anyhow::Error`; one of the types here anywhere in its chain decides the status
//! (anything else is 1).

use serde_json::Value;
use std::fmt;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_UNREACHABLE: u8 = 4;
pub const EXIT_SERVER: u8 = 5;

/// An answer of the API other than 2xx, with the API's own error object when it sent one.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    /// The API's machine-readable code (`invalid_url`, `not_found`…), when the body had one.
    pub code: Option<String>,
    pub message: String,
    /// Which input the API blamed (`url`, `events[0]`, `id`…).
    pub field: Option<String>,
    /// The body as received (the `{"error": …}` object), printed as-is under `--json`.
    pub body: Option<Value>,
}

impl ApiError {
    /// Reads `{"error": {"code", "message", "field"}}`; anything else (a proxy's HTML page, an
    /// empty body) is reported with its status and the start of its text.
    pub fn from_response(status: u16, text: &str) -> ApiError {
        let body: Option<Value> = serde_json::from_str(text).ok();
        let err = body.as_ref().and_then(|b| b.get("error"));
        let s = |k: &str| {
            err.and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match s("message") {
            Some(message) => ApiError {
                status,
                code: s("code"),
                message,
                field: s("field"),
                body,
            },
            None => {
                let snippet: String = text.trim().chars().take(200).collect();
                ApiError {
                    status,
                    code: None,
                    message: if snippet.is_empty() {
                        format!("the server answered HTTP {status} with no error message")
                    } else {
                        format!("the server answered HTTP {status}: {snippet}")
                    },
                    field: None,
                    body: None,
                }
            }
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.status {
            401 | 403 => EXIT_AUTH,
            500..=599 => EXIT_SERVER,
            _ => EXIT_FAILED,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        match &self.code {
            Some(code) => write!(f, " [HTTP {} {code}]", self.status)?,
            None => write!(f, " [HTTP {}]", self.status)?,
        }
        if matches!(self.status, 401 | 403) {
            write!(
                f,
                "; check --key, HOOKLINE_API_KEY or the profile (`hookline login`)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A failure that isn't an API answer, with the status it exits with.
#[derive(Debug)]
pub enum CliError {
    /// The command line or a local input is wrong.
    Usage(String),
    /// No answer from the server.
    Unreachable(String),
    /// The request went through but the outcome is a failure (e.g. a test send was refused).
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable(_) => EXIT_UNREACHABLE,
            CliError::Failed(_) => EXIT_FAILED,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Unreachable(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

/// A usage error (exit 2) with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    CliError::Usage(message.into()).into()
}

/// A failed outcome (exit 1) with this message.
pub fn failed(message: impl Into<String>) -> anyhow::Error {
    CliError::Failed(message.into()).into()
}

/// The exit status for an error: the first [`ApiError`] or [`CliError`] in its chain decides.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api.exit_code();
        }
        if let Some(cli) = cause.downcast_ref::<CliError>() {
            return cli.exit_code();
        }
    }
    EXIT_FAILED
}

/// The API's error object, when the error is an API answer that carried one (for `--json`).
pub fn api_body(e: &anyhow::Error) -> Option<&Value> {
    e.chain()
        .find_map(|c| c.downcast_ref::<ApiError>())
        .and_then(|a| a.body.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_error_object_is_read_and_shown_with_its_field() {
        let e = ApiError::from_response(
            422,
            r#"{"error":{"code":"invalid_url","message":"must be https","field":"url"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "must be https (field `url`) [HTTP 422 invalid_url]"
        );
        assert_eq!(e.exit_code(), EXIT_FAILED);
        let e = ApiError::from_response(502, "<html>Bad gateway</html>");
        assert!(e.message.contains("HTTP 502") && e.message.contains("Bad gateway"));
        assert_eq!(e.exit_code(), EXIT_SERVER);
        let e = ApiError::from_response(
            401,
            r#"{"error":{"code":"unauthorized","message":"invalid API key"}}"#,
        );
        assert_eq!(e.exit_code(), EXIT_AUTH);
        assert!(e.to_string().contains("HOOKLINE_API_KEY"));
    }

    #[test]
    fn the_first_known_error_in_the_chain_decides_the_status() {
        let e = anyhow::Error::from(CliError::Unreachable("down".into())).context("listing");
        assert_eq!(exit_code(&e), EXIT_UNREACHABLE);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), EXIT_FAILED);
    }
}
