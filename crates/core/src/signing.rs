//! Secrets, API keys and the two signature schemes Hookline sends.
//!
//! - `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret's bytes
//!   exactly as the user sees them (as ConnectGain's and Customermates' receivers compute it).
//! - Standard Webhooks (`webhook-signature: v1,<base64>`): HMAC-SHA256 of `id.timestamp.body`. The key
//!   is the base64 part of a `whsec_` secret, or the secret's bytes for any other secret.
//!
//! The receiver side of both lives in the `hookline-verify` crate; its tests pin it to this one.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS RNG failing is unrecoverable for a service that mints secrets: refuse loudly.
    getrandom::fill(&mut buf).expect("operating system random number generator failed");
    buf
}

/// A webhook's signing secret as it is held in memory: never shown by `Debug`, wiped when dropped
/// (`secrecy`), compared in constant time. Only [`WebhookSecret::expose`] gives the text, at the
/// places that must sign with it, store it or show it to its owner.
#[derive(Clone)]
pub struct WebhookSecret(secrecy::SecretString);

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookSecret(secrecy::SecretString::from(secret.into()))
    }

    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl From<&str> for WebhookSecret {
    fn from(s: &str) -> Self {
        WebhookSecret::new(s)
    }
}

impl From<String> for WebhookSecret {
    fn from(s: String) -> Self {
        WebhookSecret::new(s)
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        secrets_equal(self.expose(), other.expose())
    }
}

impl Eq for WebhookSecret {}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A new webhook secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks' form).
pub fn generate_webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<32>()))
}

/// The HMAC key used for Standard Webhooks signatures.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `X-Webhook-Signature`: lowercase hex HMAC-SHA256(secret, body).
pub fn hex_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// One Standard Webhooks signature: `v1,<base64 HMAC(key, "{id}.{ts}.{body}")>`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(&standard_key(secret)).expect("HMAC accepts any key");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// A freshly minted API key: the plaintext (shown once) and what is stored.
#[derive(Clone)]
pub struct NewApiKey {
    pub plaintext: String,
    /// First characters of the key, stored in clear to find the row and to show in listings.
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub hash: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("prefix", &self.prefix)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// Length of the stored lookup prefix: `hk_` plus 8 characters of the random part.
pub const API_KEY_PREFIX_LEN: usize = 11;

/// Mints `hk_<43 base64url chars>` (32 random bytes).
pub fn generate_api_key() -> NewApiKey {
    let plaintext = format!("hk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    NewApiKey {
        prefix: plaintext[..API_KEY_PREFIX_LEN].to_string(),
        hash: hash_api_key(&plaintext),
        plaintext,
    }
}

/// A bearer token for a browser session or a one-time portal code: `prefix` + 43 base64url
/// characters (32 random bytes). Only its [`sha256_hex`] is ever stored.
pub fn generate_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Constant-time equality of two secrets of the same kind (CSRF tokens).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The lookup prefix of a presented key, or `None` when it can't be one of ours.
pub fn api_key_prefix(presented: &str) -> Option<&str> {
    // Visible ASCII only, so a presented value (a console form field, a typed header) with a
    // control character never reaches the key lookup: PostgreSQL refuses a NUL in a query parameter.
    (presented.starts_with("hk_")
        && presented.len() > API_KEY_PREFIX_LEN
        && presented.bytes().all(|b| b.is_ascii_graphic()))
    .then(|| &presented[..API_KEY_PREFIX_LEN])
}

/// Lowercase hex SHA-256 (request fingerprints for idempotency).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hash_api_key(plaintext: &str) -> String {
    hex(&Sha256::digest(plaintext.as_bytes()))
}

/// Constant-time check of a presented key against a stored hash.
pub fn api_key_matches(presented: &str, stored_hash: &str) -> bool {
    let h = hash_api_key(presented);
    h.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_signature_matches_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_matches_the_spec_example() {
        // The example from the Standard Webhooks specification.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn non_whsec_secrets_key_with_their_bytes() {
        assert_eq!(standard_key("plain"), b"plain".to_vec());
        assert_eq!(
            standard_key("whsec_!!notbase64"),
            b"whsec_!!notbase64".to_vec()
        );
    }

    #[test]
    fn generated_secrets_have_the_standard_form() {
        let s = generate_webhook_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(standard_key(&s).len(), 32);
        assert_ne!(s, generate_webhook_secret());
    }

    #[test]
    fn api_keys_round_trip_and_reject_others() {
        let k = generate_api_key();
        assert!(k.plaintext.starts_with("hk_"));
        assert_eq!(k.plaintext.len(), 46);
        assert_eq!(api_key_prefix(&k.plaintext), Some(k.prefix.as_str()));
        assert!(api_key_matches(&k.plaintext, &k.hash));
        assert!(!api_key_matches(&(k.plaintext.clone() + "x"), &k.hash));
        assert_eq!(api_key_prefix("sk_live_123456789"), None);
        assert_eq!(api_key_prefix("hk_short"), None);
        assert!(!format!("{k:?}").contains(&k.plaintext));
    }
}

/// The receiver crate must accept what this module signs, for every kind of secret.
#[cfg(test)]
mod receiver_agreement {
    use super::*;

    #[test]
    fn hookline_verify_accepts_both_signatures_for_generated_and_user_secrets() {
        let body = br#"{"event":"contact.created","data":{"id":"1","name":"J\u00f6rg"}}"#;
        for secret in [
            generate_webhook_secret(),
            "your-hmac-secret".to_string(),
            "whsec_not*base64".to_string(),
        ] {
            hookline_verify::verify_hex(&secret, body, &hex_signature(&secret, body)).unwrap();
            let sig = standard_signature(&secret, "d-1", 1_700_000_000, body);
            let headers = hookline_verify::StandardHeaders {
                id: "d-1",
                timestamp: "1700000000",
                signature: &sig,
            };
            hookline_verify::verify_standard(&secret, &headers, body, 1_700_000_000, 300).unwrap();
            assert!(hookline_verify::verify_hex(
                &secret,
                b"tampered",
                &hex_signature(&secret, body)
            )
            .is_err());
        }
    }
}
