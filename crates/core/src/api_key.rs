//! The lifecycle rules of API keys: the two scopes, a new key's expiry, whether a key still
//! authenticates, and which key may be revoked. The key's format (prefix, hash, comparison) is
//! [`crate::signing`]'s; storing keys and checking them per request is the store's and the server's.

use crate::time::Timestamp;
use crate::webhook::FieldError;
use std::time::Duration;

/// What a key may do. Every key acts for its whole tenant; a `read` key only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyScope {
    /// Everything the tenant may do, managing keys included.
    #[default]
    Full,
    /// Reading only: lists and details, never a change, a send or a secret.
    Read,
}

impl KeyScope {
    pub const ALL: [KeyScope; 2] = [KeyScope::Full, KeyScope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Full => "full",
            KeyScope::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        KeyScope::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The scope a request names (`scope`), `full` when it names none.
    pub fn from_input(s: Option<&str>) -> Result<KeyScope, FieldError> {
        match s {
            None => Ok(KeyScope::Full),
            Some(s) => KeyScope::parse(s).ok_or_else(|| {
                FieldError::new("scope", "invalid", format!("`{s}` is not `full` or `read`"))
            }),
        }
    }
}

/// The longest a key may be given to live when it is given an expiry at all (none means it lives
/// until revoked). Mostly a guard against durations no clock can add.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);

/// When a new key stops working, from the request's `expires_at` (RFC 3339) or `expires_in`
/// (`90d`, `12h`, seconds): strictly after `now` and within [`MAX_LIFETIME`]; `None` for a key
/// without an expiry. Giving both is refused rather than guessing which one was meant.
pub fn expiry(
    expires_at: Option<&str>,
    expires_in: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, FieldError> {
    let latest = now + chrono::Duration::from_std(MAX_LIFETIME).unwrap_or(chrono::Duration::MAX);
    let at = match (expires_at, expires_in) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "expires_in",
                "invalid",
                "give expires_at or expires_in, not both",
            ))
        }
        (Some(raw), None) => {
            let at = crate::time::parse(raw).ok_or_else(|| {
                FieldError::new(
                    "expires_at",
                    "invalid",
                    format!("`{raw}` is not an RFC 3339 timestamp like 2027-01-31T00:00:00Z"),
                )
            })?;
            if at <= now || at > latest {
                return Err(FieldError::new(
                    "expires_at",
                    "invalid",
                    "expires_at must be in the future and at most 10 years away",
                ));
            }
            at
        }
        (None, Some(raw)) => {
            let d = crate::retry::parse_delay(raw)
                .map_err(|e| FieldError::new("expires_in", "invalid", e))?;
            if d.is_zero() || d > MAX_LIFETIME {
                return Err(FieldError::new(
                    "expires_in",
                    "invalid",
                    "expires_in must be between 1s and 3650d",
                ));
            }
            now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
        }
    };
    // Stored and shown at millisecond precision: keep the value the caller will read back.
    Ok(Some(
        crate::time::parse(&crate::time::format(&at)).unwrap_or(at),
    ))
}

/// The part of a stored key its lifecycle depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    pub scope: KeyScope,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl KeyState {
    /// Whether the key authenticates at `now`: not revoked and not expired. Checked on every
    /// request against the stored row, so a revocation or an expiry holds at once on every node.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// A live key that can manage the tenant (and its keys).
    pub fn is_live_full(&self, now: Timestamp) -> bool {
        self.scope == KeyScope::Full && self.is_live(now)
    }
}

/// Whether `target` may be revoked given all the tenant's keys (`target` among them or not): a
/// tenant must keep one live full key, or nobody could make or revoke keys through the API again
/// (the operator's local `hookline keys create --local` would be the only way back). Revoking a
/// key that is already dead, or a read key, is always allowed.
pub fn may_revoke<'a>(
    target_id: uuid::Uuid,
    target: &KeyState,
    all: impl IntoIterator<Item = (uuid::Uuid, &'a KeyState)>,
    now: Timestamp,
) -> bool {
    !target.is_live_full(now)
        || all
            .into_iter()
            .any(|(id, k)| id != target_id && k.is_live_full(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        crate::time::parse(s).unwrap()
    }

    #[test]
    fn scopes_parse_and_default_to_full() {
        assert_eq!(KeyScope::from_input(None), Ok(KeyScope::Full));
        assert_eq!(KeyScope::from_input(Some("read")), Ok(KeyScope::Read));
        assert_eq!(KeyScope::parse("full"), Some(KeyScope::Full));
        let e = KeyScope::from_input(Some("admin")).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("scope", "invalid"));
        assert_eq!(KeyScope::parse("Read"), None);
    }

    #[test]
    fn an_expiry_lies_in_the_future_within_ten_years() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(expiry(None, None, now), Ok(None));
        assert_eq!(
            expiry(None, Some("30d"), now),
            Ok(Some(at("2026-01-31T00:00:00Z")))
        );
        assert_eq!(
            expiry(Some("2026-06-01T02:00:00+02:00"), None, now),
            Ok(Some(at("2026-06-01T00:00:00Z")))
        );
        for (a, i, field) in [
            (Some("2025-12-31T23:59:59Z"), None, "expires_at"),
            (Some("2026-01-01T00:00:00Z"), None, "expires_at"),
            (Some("2040-01-01T00:00:00Z"), None, "expires_at"),
            (Some("tomorrow"), None, "expires_at"),
            (None, Some("0s"), "expires_in"),
            (None, Some("3651d"), "expires_in"),
            (None, Some("99999999999999999999d"), "expires_in"),
            (None, Some("soon"), "expires_in"),
            (Some("2026-06-01T00:00:00Z"), Some("1d"), "expires_in"),
        ] {
            let e = expiry(a, i, now).unwrap_err();
            assert_eq!(e.field, field, "{a:?} {i:?}");
            assert_eq!(e.code, "invalid");
        }
    }

    #[test]
    fn a_key_is_live_until_revoked_or_expired() {
        let now = at("2026-01-01T00:00:00Z");
        let mut k = KeyState {
            scope: KeyScope::Read,
            expires_at: None,
            revoked_at: None,
        };
        assert!(k.is_live(now) && !k.is_live_full(now));
        k.expires_at = Some(now);
        assert!(!k.is_live(now), "expiry is exclusive");
        k.expires_at = Some(at("2026-01-01T00:00:01Z"));
        assert!(k.is_live(now));
        k.revoked_at = Some(now);
        assert!(!k.is_live(now));
    }

    #[test]
    fn the_last_live_full_key_cant_be_revoked() {
        let now = at("2026-01-01T00:00:00Z");
        let full = KeyState {
            scope: KeyScope::Full,
            expires_at: None,
            revoked_at: None,
        };
        let read = KeyState {
            scope: KeyScope::Read,
            ..full
        };
        let expired = KeyState {
            expires_at: Some(at("2025-01-01T00:00:00Z")),
            ..full
        };
        let revoked = KeyState {
            revoked_at: Some(at("2025-01-01T00:00:00Z")),
            ..full
        };
        let (a, b, c, d) = (
            uuid::Uuid::from_u128(1),
            uuid::Uuid::from_u128(2),
            uuid::Uuid::from_u128(3),
            uuid::Uuid::from_u128(4),
        );
        // Alone, or beside only read, expired and revoked keys: refused (itself in the list or not).
        let others = [(b, &read), (c, &expired), (d, &revoked)];
        assert!(!may_revoke(a, &full, others, now));
        assert!(!may_revoke(a, &full, [(a, &full), (b, &read)], now));
        // Another live full key makes it fine.
        assert!(may_revoke(a, &full, [(a, &full), (b, &full)], now));
        // Read keys and dead keys can always go.
        assert!(may_revoke(b, &read, [(b, &read)], now));
        assert!(may_revoke(c, &expired, [(c, &expired)], now));
    }
}
