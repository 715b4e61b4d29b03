//! Secrets at rest: the envelope that webhook secrets and custom header values are stored in.
//!
//! A value is sealed with XChaCha20-Poly1305 under a 32-byte key, with a fresh random 24-byte nonce
//! each time (random nonces of that size never collide in practice, so no counter has to be kept
//! across nodes). The stored text names the key it was sealed under:
//!
//! ```text
//! enc:v1:<key id>:<base64url(nonce || ciphertext || tag)>
//! ```
//!
//! The key id is the first 8 hex digits of a SHA-256 fingerprint of the key, so it needs no
//! registry: any node holding the key computes the same id, and a row sealed under a key the node
//! doesn't hold is recognised as such (and refused) instead of decrypting to garbage. The caller
//! binds every value to where it lives through the associated data (e.g. the column and the row's
//! id): a sealed value copied into another row or column no longer opens.
//!
//! A [`Keyring`] holds one current key, which seals, and any number of older ones, which only
//! open: that is what lets a deployment move to a new key while rows sealed under the old one stay
//! readable until they are re-sealed.
//!
//! Nothing here does I/O except asking the OS for random bytes (nonces and new keys).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Length of an encryption key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Every sealed value starts with this; anything else in a sealed column is a value from before
/// encryption existed (still in clear).
pub const PREFIX: &str = "enc:v1:";
/// Length of a key id in hex digits.
pub const KEY_ID_LEN: usize = 8;

/// The short, public name of a key: the first 8 hex digits of SHA-256 over a fixed label and the
/// key. It identifies a key without revealing anything usable about it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// A 32-byte encryption key: wiped when dropped, never shown by `Debug` (which prints its id).
/// Clones share the one copy of the bytes.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Arc<SecretBox<[u8; KEY_LEN]>>,
    id: KeyId,
}

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"hookline encryption key id\0");
        h.update(bytes);
        let id = crate::signing::hex(&h.finalize()[..KEY_ID_LEN / 2]);
        EncryptionKey {
            bytes: Arc::new(SecretBox::new(Box::new(bytes))),
            id: KeyId(id),
        }
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        // As for webhook secrets: without the OS RNG no key can be trusted, so refuse loudly.
        getrandom::fill(&mut bytes).expect("operating system random number generator failed");
        Self::from_bytes(bytes)
    }

    /// Reads a key written as 64 hex digits (`openssl rand -hex 32`) or as base64, padded or not
    /// (`openssl rand -base64 32`). The error never repeats the text: it may be a real key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let decoded = if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..KEY_LEN)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "is not valid hex".to_string())?
        } else {
            STANDARD
                .decode(t)
                .or_else(|_| STANDARD_NO_PAD.decode(t))
                .map_err(|_| {
                    "must be 32 bytes written as base64 (`openssl rand -base64 32`) or as 64 hex \
                     digits (`openssl rand -hex 32`)"
                        .to_string()
                })?
        };
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            format!(
                "must be exactly {KEY_LEN} bytes (it decodes to {}); make one with `openssl rand -base64 32`",
                decoded.len()
            )
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key as standard base64, the form [`EncryptionKey::parse`] reads back (for a key file).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.expose_secret())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.expose_secret().into())
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.id)
    }
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed under a key this keyring doesn't hold: the node runs with the wrong key(s).
    #[error(
        "sealed under encryption key {key_id}, which is not among the configured keys ({known})"
    )]
    UnknownKey { key_id: String, known: String },
    /// The key is known but the value doesn't authenticate: altered, truncated, or moved from
    /// another row or column.
    #[error(
        "sealed value under key {key_id} fails authentication (altered, or moved from another row)"
    )]
    Tampered { key_id: String },
    /// Starts like a sealed value but isn't one.
    #[error("malformed sealed value")]
    Malformed,
}

/// The key id a stored value was sealed under, or `None` when it is in clear.
pub fn sealed_key_id(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(PREFIX)?;
    Some(rest.split_once(':').map_or(rest, |(id, _)| id))
}

/// Whether a stored value is sealed (as opposed to still in clear).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// One current key (seals and opens) and older ones (open only).
#[derive(Clone, Debug)]
pub struct Keyring {
    current: EncryptionKey,
    old: Vec<EncryptionKey>,
}

impl Keyring {
    /// `old` may repeat keys or contain the current one; duplicates are dropped.
    pub fn new(current: EncryptionKey, old: Vec<EncryptionKey>) -> Self {
        let mut kept: Vec<EncryptionKey> = Vec::new();
        for k in old {
            if k.id != current.id && !kept.iter().any(|x| x.id == k.id) {
                kept.push(k);
            }
        }
        Keyring { current, old: kept }
    }

    /// A keyring of one random key that lives only as long as the process: for throwaway databases
    /// (tests, in-memory SQLite), never for data that must outlive a restart.
    pub fn ephemeral() -> Self {
        Keyring::new(EncryptionKey::generate(), Vec::new())
    }

    /// The id of the key new values are sealed under.
    pub fn current_id(&self) -> &KeyId {
        &self.current.id
    }

    /// Ids of every key held, the current one first.
    pub fn ids(&self) -> Vec<&KeyId> {
        std::iter::once(&self.current.id)
            .chain(self.old.iter().map(|k| &k.id))
            .collect()
    }

    /// Whether a key with this id is held.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&EncryptionKey> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id.0 == key_id)
    }

    fn known(&self) -> String {
        self.ids()
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Seals `plaintext` under the current key, bound to `aad` (where the value lives).
    pub fn seal(&self, plaintext: &str, aad: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("operating system random number generator failed");
        let ct = self
            .current
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            // Encryption only fails for inputs of gigabytes; a secret or a header map never is.
            .expect("XChaCha20-Poly1305 seals any value shorter than 256 GiB");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        format!(
            "{PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(blob)
        )
    }

    /// Opens a stored value sealed by [`Keyring::seal`] with the same `aad`. A value in clear is
    /// answered as it is (rows written before encryption, until they are sealed at start).
    pub fn open(&self, stored: &str, aad: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (key_id, payload) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let key = self.key(key_id).ok_or_else(|| SealError::UnknownKey {
            key_id: key_id.to_string(),
            known: self.known(),
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SealError::Malformed)?;
        if blob.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let tampered = || SealError::Tampered {
            key_id: key_id.to_string(),
        };
        let plain = key
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        String::from_utf8(plain).map_err(|_| tampered())
    }

    /// Whether a stored value must be (re-)sealed: it is in clear, or, with `all`, sealed under any
    /// key but the current one. A value under a key this keyring doesn't hold is an error: it can't
    /// be opened, so it can't be re-sealed either.
    pub fn needs_sealing(&self, stored: &str, all: bool) -> Result<bool, SealError> {
        match sealed_key_id(stored) {
            None => Ok(true),
            Some(id) if !self.knows(id) => Err(SealError::UnknownKey {
                key_id: id.to_string(),
                known: self.known(),
            }),
            Some(id) => Ok(all && id != self.current.id.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> EncryptionKey {
        EncryptionKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("whsec_abc", "webhooks.secret:1");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", ring.current_id())));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            ring.open(&sealed, "webhooks.secret:1").unwrap(),
            "whsec_abc"
        );
        // Moved to another row or column: refused, never garbage.
        assert!(matches!(
            ring.open(&sealed, "webhooks.secret:2"),
            Err(SealError::Tampered { .. })
        ));
        // Another keyring that happens to be handed this value doesn't know its key.
        let other = Keyring::new(key(2), vec![]);
        let err = other.open(&sealed, "webhooks.secret:1").unwrap_err();
        assert!(
            err.to_string().contains(ring.current_id().as_str()),
            "{err}"
        );
        assert!(matches!(err, SealError::UnknownKey { .. }));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let ring = Keyring::ephemeral();
        assert_ne!(ring.seal("same", "a"), ring.seal("same", "a"));
    }

    #[test]
    fn altered_ciphertext_is_refused() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("Bearer token", "h");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(ring.open(&altered, "h").is_err());
        assert_eq!(ring.open("enc:v1:nocolon", "h"), Err(SealError::Malformed));
        let id = ring.current_id().to_string();
        assert_eq!(
            ring.open(&format!("enc:v1:{id}:!!"), "h"),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn old_keys_open_and_rotation_is_needed_only_for_them() {
        let old = Keyring::new(key(1), vec![]);
        let sealed_old = old.seal("s", "a");
        let ring = Keyring::new(key(2), vec![key(1), key(1), key(2)]);
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.open(&sealed_old, "a").unwrap(), "s");
        let sealed_new = ring.seal("s", "a");
        assert!(!ring.needs_sealing(&sealed_new, true).unwrap());
        assert!(ring.needs_sealing(&sealed_old, true).unwrap());
        assert!(!ring.needs_sealing(&sealed_old, false).unwrap());
        assert!(ring.needs_sealing("in clear", false).unwrap());
        let stranger = Keyring::new(key(3), vec![]).seal("s", "a");
        assert!(matches!(
            ring.needs_sealing(&stranger, false),
            Err(SealError::UnknownKey { .. })
        ));
    }

    #[test]
    fn values_in_clear_are_read_as_they_are() {
        let ring = Keyring::ephemeral();
        assert_eq!(ring.open("whsec_legacy", "a").unwrap(), "whsec_legacy");
        assert_eq!(sealed_key_id("whsec_legacy"), None);
        assert!(!is_sealed("{}"));
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_errors_hide_the_text() {
        let k = EncryptionKey::generate();
        let b64 = k.to_base64();
        assert_eq!(EncryptionKey::parse(&b64).unwrap().id(), k.id());
        assert_eq!(
            EncryptionKey::parse(b64.trim_end_matches('='))
                .unwrap()
                .id(),
            k.id()
        );
        let hex = crate::signing::hex(&[7u8; KEY_LEN]);
        assert_eq!(EncryptionKey::parse(&hex).unwrap().id(), key(7).id());
        assert_eq!(
            EncryptionKey::parse(&format!(" {hex}\n")).unwrap().id(),
            key(7).id()
        );
        for bad in ["", "short", "c2hvcnQ=", "zz".repeat(32).as_str()] {
            let err = EncryptionKey::parse(bad).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        assert_eq!(key(1).id().as_str().len(), KEY_ID_LEN);
        assert_ne!(key(1).id(), key(2).id());
    }

    #[test]
    fn debug_shows_the_key_id_only() {
        let k = key(9);
        let shown = format!("{k:?} {:?}", Keyring::new(k.clone(), vec![]));
        assert!(shown.contains(k.id().as_str()), "{shown}");
        assert!(!shown.contains(&k.to_base64()), "{shown}");
    }
}
