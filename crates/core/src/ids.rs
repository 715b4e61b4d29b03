//! Identifiers. Every row id is a UUIDv7: time-ordered, so ids double as stable cursor positions and
//! index locality is good for append-heavy tables (events, deliveries, attempts).
//!
//! Each kind of row has its own id type ([`WebhookId`], [`DeliveryId`], …), so a delivery id can't
//! be passed where a webhook id is expected. They are plain UUIDs on the wire and in the database:
//! `serde` sees them as transparent, and the optional `sql` feature lets both database drivers
//! bind and read them directly.

use std::fmt;
use std::str::FromStr;
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

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new() -> Self {
                $name(new_id())
            }

            /// Parses a UUID; `None` when `s` is not one.
            pub fn parse(s: &str) -> Option<Self> {
                parse_id(s).map($name)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                // SQLite stores ids as their hyphenated text.
                Ok(rusqlite::types::ToSqlOutput::from(self.0.to_string()))
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                Uuid::parse_str(text)
                    .map($name)
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }

        #[cfg(feature = "sql")]
        impl postgres_types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &postgres_types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.0.to_sql(ty, out)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <Uuid as postgres_types::ToSql>::accepts(ty)
            }

            postgres_types::to_sql_checked!();
        }

        #[cfg(feature = "sql")]
        impl<'a> postgres_types::FromSql<'a> for $name {
            fn from_sql(
                ty: &postgres_types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                Uuid::from_sql(ty, raw).map($name)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <Uuid as postgres_types::FromSql>::accepts(ty)
            }
        }
    };
}

typed_id!(
    /// A tenant: an isolated customer of the deployment.
    TenantId
);
typed_id!(
    /// An API key (the row, not the secret).
    ApiKeyId
);
typed_id!(
    /// A webhook (endpoint subscription).
    WebhookId
);
typed_id!(
    /// An event.
    EventId
);
typed_id!(
    /// A delivery record: one event to one webhook.
    DeliveryId
);
typed_id!(
    /// One attempt of a delivery.
    AttemptId
);
typed_id!(
    /// A background job (a replay).
    JobId
);
typed_id!(
    /// A lease on a claimed delivery: only its holder may record the result.
    LeaseToken
);

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

    #[test]
    fn typed_ids_are_plain_uuids_on_the_wire() {
        let id = WebhookId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.0));
        let back: WebhookId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert_eq!(WebhookId::parse(&id.to_string()), Some(id));
        assert_eq!(DeliveryId::parse("nope"), None);
    }
}
