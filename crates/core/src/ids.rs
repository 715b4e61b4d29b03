//! Identifiers. Every row id is a UUIDv7: time-ordered, so ids double as stable cursor positions and
//! index locality is good for append-heavy tables (events, deliveries, attempts).

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an id from a path or query parameter. `None` when it is not a UUID, so callers can answer
/// 404 or 400 as their route demands.
pub fn parse_id(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_time_ordered() {
        let a = new_id();
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(a.get_version_num(), 7);
    }

    #[test]
    fn parse_id_rejects_garbage() {
        assert!(parse_id("not-a-uuid").is_none());
        assert!(parse_id("").is_none());
        let id = new_id();
        assert_eq!(parse_id(&id.to_string()), Some(id));
    }
}
