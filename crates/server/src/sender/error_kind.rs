//! Why an attempt produced no HTTP status: the error kinds the delivery log shows and the retry
//! rules classify. Its own module so the connector and the sender both use it without importing
//! each other.

use std::fmt;

/// Why an attempt produced no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The URL is malformed or not allowed by the policy for a reason other than its
    /// destination (scheme, userinfo, ...).
    InvalidUrl,
    /// The URL or every address its host resolved to is refused by the SSRF policy. Final.
    BlockedDestination,
    /// The name did not resolve (lookup error or empty answer).
    Dns,
    /// No TCP connection could be made to any allowed address.
    Connect,
    /// TLS handshake failed (certificate, protocol).
    Tls,
    /// The attempt did not get response headers within the timeout.
    Timeout,
    /// The connection broke or the peer spoke invalid HTTP.
    Protocol,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::BlockedDestination => "blocked_destination",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
