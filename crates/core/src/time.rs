//! Timestamps as they appear on the wire and in storage: RFC 3339 in UTC with millisecond
//! precision and a `Z` suffix (`2026-05-15T10:30:00.000Z`), the form every source document shows.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time at millisecond precision: what storage and the wire keep, so a value read back
/// equals the value written.
pub fn now() -> Timestamp {
    let t = Utc::now();
    t.with_nanosecond(t.timestamp_subsec_millis() * 1_000_000)
        .unwrap_or(t)
}

/// Canonical text form used everywhere (API, storage, headers).
pub fn format(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 timestamp (any offset) and converts it to UTC.
pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        let t = parse("2026-05-15T12:30:00+02:00").unwrap();
        assert_eq!(format(&t), "2026-05-15T10:30:00.000Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-05-15").is_none());
    }
}
