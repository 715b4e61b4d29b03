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

/// The time schedules are kept in when the process is the only clock (SQLite): the wall time when
/// the process first asked, advanced by the monotonic clock since, at millisecond precision. A wall
/// clock stepped back (or forward) while the process runs doesn't move a retry or a lease: an hour's
/// step back would otherwise delay every due retry by that hour. Signatures and the timestamps the
/// service writes (events, attempts) stay wall time ([`now`]); the SQLite store keeps due times,
/// leases and the stamps it writes itself on this clock, so whatever it compares is on one clock.
pub fn steady_now() -> Timestamp {
    static ANCHOR: std::sync::OnceLock<(Timestamp, std::time::Instant)> =
        std::sync::OnceLock::new();
    let (wall, at) = *ANCHOR.get_or_init(|| (now(), std::time::Instant::now()));
    steady_from(wall, at.elapsed())
}

fn steady_from(anchor: Timestamp, elapsed: std::time::Duration) -> Timestamp {
    anchor + chrono::Duration::milliseconds(elapsed.as_millis().min(i64::MAX as u128) as i64)
}

/// A std duration as a chrono one, capped at a century so adding it to a timestamp can't overflow
/// (no schedule or lease comes near it).
pub fn span(d: std::time::Duration) -> chrono::Duration {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
    chrono::Duration::from_std(d.min(CENTURY)).unwrap_or(chrono::Duration::zero())
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
    fn steady_time_moves_with_the_monotonic_clock_only() {
        let anchor = parse("2026-05-15T10:30:00Z").unwrap();
        let later = steady_from(anchor, std::time::Duration::from_millis(90_500));
        assert_eq!(format(&later), "2026-05-15T10:31:30.500Z");
        let a = steady_now();
        let b = steady_now();
        assert!(b >= a, "steady time never goes back");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-05-15").is_none());
    }
}
