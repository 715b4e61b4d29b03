//! Webhook secrets at rest: the three columns that hold credentials (`secret`, `previous_secret`,
//! `headers`) are written sealed under the store's [`Keyring`] and opened when a row is read, so
//! the rest of Hookline only ever sees plain [`WebhookSecret`]s and header maps, and the database
//! only ever holds ciphertext (`hookline_core::sealing` has the envelope).
//!
//! Each value is bound to its column and webhook id (the AEAD's associated data), so a sealed value
//! copied into another row doesn't open. The header map is sealed whole, as its JSON text: header
//! names can say as much as values (`X-Shopify-Access-Token`), and one value per row keeps the
//! "anything left in clear?" test a plain `LIKE`.
//!
//! Values written before encryption existed are read as they are and sealed by
//! [`crate::Store::reseal`], which `migrate` runs after the SQL migrations. Both backends run the
//! same statements and the same per-row decision from here; only their loops differ.

use crate::error::{Result, StoreError};
use crate::model::Webhook;
use hookline_core::ids::WebhookId;
use hookline_core::sealing::{self, Keyring, SealError};
use hookline_core::signing::WebhookSecret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What [`crate::Store::reseal`] re-encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Values still in clear (rows from before encryption). Run at every start: a no-op once done.
    Clear,
    /// Every value not sealed under the current key: a key rotation.
    All,
}

/// What a reseal pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResealReport {
    /// Webhooks whose sealed columns were rewritten.
    pub webhooks: u64,
    /// The key they are sealed under now (the current key's id).
    pub key_id: String,
}

/// Rows a reseal pass rewrites per transaction: short transactions, so the SQLite writer and
/// PostgreSQL's row locks are never held long.
pub(crate) const RESEAL_CHUNK: i64 = 200;

/// The store's keyring; `None` until one is given. A store without one can open and migrate an
/// empty database, but refuses to read or write a webhook rather than invent a key whose loss would
/// make every secret unreadable.
#[derive(Clone, Default)]
pub(crate) struct Sealer(Option<Arc<Keyring>>);

/// A webhook's sealed columns as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedCols {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub headers: String,
}

/// A webhook as read from its row, the sealed columns not opened yet: until
/// [`Sealer::unseal`], its `secret` is empty, and `previous_secret` and `headers` are too.
pub(crate) struct RawWebhook {
    pub webhook: Webhook,
    pub sealed: SealedCols,
}

/// A webhook's sealed columns, opened.
pub(crate) struct OpenedCols {
    pub secret: WebhookSecret,
    pub previous_secret: Option<WebhookSecret>,
    pub headers: BTreeMap<String, String>,
}

/// The associated data of a value: where it lives.
fn aad(column: &str, id: WebhookId) -> String {
    format!("hookline webhooks.{column} {id}")
}

/// The key ids found in any sealed column, each once: the same text on both backends (`substr`
/// counts from 1 in both, and `enc:v1:` is 7 characters long).
pub(crate) fn key_ids_sql() -> String {
    let start = sealing::PREFIX.len() + 1;
    let n = sealing::KEY_ID_LEN;
    ["secret", "previous_secret", "headers"]
        .iter()
        .map(|c| {
            format!(
                "SELECT DISTINCT substr({c}, {start}, {n}) FROM webhooks WHERE {c} LIKE '{}%'",
                sealing::PREFIX
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ")
}

/// `WHERE` condition of rows a pass must rewrite: a column in clear or, for [`Reseal::All`], sealed
/// under another key than `current`. Key ids are hex digits, so they need no LIKE escaping.
pub(crate) fn needs_reseal_sql(scope: Reseal, current: &str) -> String {
    let prefix = match scope {
        Reseal::Clear => sealing::PREFIX.to_string(),
        Reseal::All => format!("{}{current}:", sealing::PREFIX),
    };
    format!(
        "(secret NOT LIKE '{prefix}%' OR previous_secret NOT LIKE '{prefix}%' \
         OR headers NOT LIKE '{prefix}%')"
    )
}

impl Sealer {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Sealer(Some(keyring))
    }

    fn ring(&self) -> Result<&Keyring> {
        self.0.as_deref().ok_or_else(|| {
            StoreError::Internal(
                "no encryption key was given to the store, so webhook secrets can't be read or \
                 written"
                    .into(),
            )
        })
    }

    /// The id of the key new values are sealed under, if a keyring was given.
    pub fn current_id(&self) -> Option<String> {
        self.0.as_ref().map(|k| k.current_id().to_string())
    }

    fn open_one(&self, id: WebhookId, column: &str, stored: &str) -> Result<String> {
        self.ring()?
            .open(stored, &aad(column, id))
            .map_err(|e| explain(id, column, e))
    }

    /// `text` sealed for column `what` of row `id` (an event's redacted values).
    pub fn seal_text(&self, what: &str, id: &str, text: &str) -> Result<String> {
        Ok(self.ring()?.seal(text, &format!("hookline {what} {id}")))
    }

    /// What [`Self::seal_text`] sealed.
    pub fn open_text(&self, what: &str, id: &str, stored: &str) -> Result<String> {
        self.ring()?
            .open(stored, &format!("hookline {what} {id}"))
            .map_err(|e| StoreError::Internal(format!("{what} of {id}: can't decrypt: {e}")))
    }

    /// The sealed columns of `w` as they are written.
    pub fn seal(
        &self,
        id: WebhookId,
        secret: &WebhookSecret,
        previous_secret: Option<&WebhookSecret>,
        headers: &BTreeMap<String, String>,
    ) -> Result<SealedCols> {
        let ring = self.ring()?;
        Ok(SealedCols {
            secret: ring.seal(secret.expose(), &aad("secret", id)),
            previous_secret: previous_secret
                .map(|s| ring.seal(s.expose(), &aad("previous_secret", id))),
            headers: ring.seal(&serde_json::to_string(headers)?, &aad("headers", id)),
        })
    }

    /// The sealed columns of `w`, as written.
    pub fn seal_webhook(&self, w: &Webhook) -> Result<SealedCols> {
        self.seal(w.id, &w.secret, w.previous_secret.as_ref(), &w.headers)
    }

    /// The webhook of a row read back, its secrets opened.
    pub fn unseal(&self, raw: RawWebhook) -> Result<Webhook> {
        let RawWebhook {
            mut webhook,
            sealed,
        } = raw;
        let o = self.open(webhook.id, &sealed)?;
        webhook.secret = o.secret;
        webhook.previous_secret = o.previous_secret;
        webhook.headers = o.headers;
        Ok(webhook)
    }

    /// Opens the sealed columns of a row read back.
    pub fn open(&self, id: WebhookId, cols: &SealedCols) -> Result<OpenedCols> {
        Ok(OpenedCols {
            secret: WebhookSecret::new(self.open_one(id, "secret", &cols.secret)?),
            previous_secret: cols
                .previous_secret
                .as_deref()
                .map(|p| {
                    self.open_one(id, "previous_secret", p)
                        .map(WebhookSecret::new)
                })
                .transpose()?,
            headers: serde_json::from_str(&self.open_one(id, "headers", &cols.headers)?)?,
        })
    }

    /// The row's columns re-sealed under the current key when any of them needs it for `scope`
    /// (see [`Keyring::needs_sealing`]), else `None`.
    pub fn reseal(
        &self,
        id: WebhookId,
        cols: &SealedCols,
        scope: Reseal,
    ) -> Result<Option<SealedCols>> {
        let ring = self.ring()?;
        let all = scope == Reseal::All;
        let mut needed = false;
        for (column, v) in [
            ("secret", Some(&cols.secret)),
            ("previous_secret", cols.previous_secret.as_ref()),
            ("headers", Some(&cols.headers)),
        ] {
            if let Some(v) = v {
                needed |= ring
                    .needs_sealing(v, all)
                    .map_err(|e| explain(id, column, e))?;
            }
        }
        if !needed {
            return Ok(None);
        }
        let o = self.open(id, cols)?;
        self.seal(id, &o.secret, o.previous_secret.as_ref(), &o.headers)
            .map(Some)
    }

    /// Refuses to go on when the database holds values sealed under keys this store doesn't hold
    /// (`found`: the distinct key ids of [`key_ids_sql`]). Run at start, so a node given the wrong
    /// key stops with a message naming the key it lacks instead of failing later, one webhook at a
    /// time, or ever signing with anything but the real secret.
    pub fn check_key_ids(&self, found: &[String]) -> Result<()> {
        let ring = match (&self.0, found.is_empty()) {
            (_, true) => return Ok(()),
            (None, false) => self.ring()?,
            (Some(r), false) => r,
        };
        let missing: Vec<&str> = found
            .iter()
            .map(String::as_str)
            .filter(|id| !ring.knows(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let known = ring
            .ids()
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(StoreError::Internal(format!(
            "wrong encryption key: webhook secrets in this database are encrypted under key {}, \
             which is not among the configured keys ({known}); configure that key as the current \
             or an old encryption key (a key's id is the first 8 hex digits of its fingerprint)",
            missing.join(" and ")
        )))
    }
}

/// A claimed webhook whose secrets don't open (a node lacking a key another node sealed under, a
/// damaged row) is left out of the claim's webhooks, so the dispatcher sends none of its deliveries
/// and they wait, leased, until a node that can open them claims them again. One such webhook must
/// not stop every other webhook's deliveries, and none is ever signed with anything but its secret.
pub(crate) fn unopenable_in_claim(id: WebhookId, e: &StoreError) {
    tracing::error!(webhook_id = %id, error = %e, "a claimed webhook's secrets can't be decrypted; its deliveries wait");
}

fn explain(id: WebhookId, column: &str, e: SealError) -> StoreError {
    StoreError::Internal(format!("webhook {id}: can't decrypt its {column}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::sealing::EncryptionKey;

    fn sealer(keys: &[u8]) -> Sealer {
        let mut ks = keys.iter().map(|b| EncryptionKey::from_bytes([*b; 32]));
        let current = ks.next().unwrap();
        Sealer::new(Arc::new(Keyring::new(current, ks.collect())))
    }

    fn cols(s: &Sealer, id: WebhookId) -> SealedCols {
        let headers = BTreeMap::from([("Authorization".to_string(), "Bearer t0k".to_string())]);
        s.seal(id, &"whsec_x".into(), Some(&"old_secret".into()), &headers)
            .unwrap()
    }

    #[test]
    fn columns_round_trip_sealed_and_bound_to_their_row() {
        let s = sealer(&[1]);
        let id = WebhookId::new();
        let c = cols(&s, id);
        for v in [&c.secret, c.previous_secret.as_ref().unwrap(), &c.headers] {
            assert!(sealing::is_sealed(v));
            assert!(!v.contains("whsec_x") && !v.contains("t0k") && !v.contains("old_secret"));
        }
        let o = s.open(id, &c).unwrap();
        assert_eq!(o.secret.expose(), "whsec_x");
        assert_eq!(o.previous_secret.unwrap().expose(), "old_secret");
        assert_eq!(o.headers["Authorization"], "Bearer t0k");
        // Another row's id: refused.
        assert!(s.open(WebhookId::new(), &c).is_err());
        // Secret and previous secret swapped: refused.
        let swapped = SealedCols {
            secret: c.previous_secret.clone().unwrap(),
            previous_secret: Some(c.secret.clone()),
            headers: c.headers.clone(),
        };
        assert!(s.open(id, &swapped).is_err());
    }

    #[test]
    fn reseal_rewrites_clear_rows_and_on_rotation_old_key_rows() {
        let id = WebhookId::new();
        let clear = SealedCols {
            secret: "whsec_x".into(),
            previous_secret: None,
            headers: "{}".into(),
        };
        let s1 = sealer(&[1]);
        let sealed = s1.reseal(id, &clear, Reseal::Clear).unwrap().unwrap();
        assert_eq!(s1.open(id, &sealed).unwrap().secret.expose(), "whsec_x");
        assert_eq!(s1.reseal(id, &sealed, Reseal::Clear).unwrap(), None);
        assert_eq!(s1.reseal(id, &sealed, Reseal::All).unwrap(), None);
        // Key 2 current, key 1 old: a rotation re-seals, a start-up pass leaves it.
        let s2 = sealer(&[2, 1]);
        assert_eq!(s2.reseal(id, &sealed, Reseal::Clear).unwrap(), None);
        let rotated = s2.reseal(id, &sealed, Reseal::All).unwrap().unwrap();
        let key2 = s2.current_id().unwrap();
        assert!(rotated.secret.starts_with(&format!("enc:v1:{key2}:")));
        assert_eq!(
            sealer(&[2]).open(id, &rotated).unwrap().secret.expose(),
            "whsec_x"
        );
        // Key 1 unknown: refused with its id named.
        let err = sealer(&[3]).reseal(id, &sealed, Reseal::All).unwrap_err();
        assert!(err.to_string().contains(&s1.current_id().unwrap()), "{err}");
    }

    #[test]
    fn unknown_key_ids_stop_the_start_with_the_key_named() {
        let s = sealer(&[2, 1]);
        let k1 = sealer(&[1]).current_id().unwrap();
        assert!(s.check_key_ids(std::slice::from_ref(&k1)).is_ok());
        assert!(s.check_key_ids(&[]).is_ok());
        assert!(Sealer::default().check_key_ids(&[]).is_ok());
        let err = sealer(&[3])
            .check_key_ids(std::slice::from_ref(&k1))
            .unwrap_err();
        assert!(err.to_string().contains("wrong encryption key"), "{err}");
        assert!(err.to_string().contains(&k1), "{err}");
        assert!(Sealer::default().check_key_ids(&[k1]).is_err());
    }

    #[test]
    fn without_a_keyring_nothing_is_sealed_or_opened() {
        let s = Sealer::default();
        let err = s
            .seal(WebhookId::new(), &"x".into(), None, &BTreeMap::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no encryption key"), "{err}");
    }

    #[test]
    fn statements_name_each_sealed_column() {
        let q = key_ids_sql();
        assert!(q.contains("substr(previous_secret, 8, 8)"), "{q}");
        assert_eq!(q.matches(" UNION ").count(), 2);
        let w = needs_reseal_sql(Reseal::All, "0a1b2c3d");
        assert!(w.contains("headers NOT LIKE 'enc:v1:0a1b2c3d:%'"), "{w}");
        assert!(needs_reseal_sql(Reseal::Clear, "x").contains("secret NOT LIKE 'enc:v1:%'"));
    }
}
