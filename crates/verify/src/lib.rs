//! Receiver-side verification of Hookline deliveries.
//!
//! Hookline signs every delivery twice (see the README's "Signatures" section):
//!
//! - `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret's bytes.
//!   Verify it with [`verify_hex`].
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>` over
//!   `id.timestamp.body`, keyed with the base64 part of a `whsec_` secret (or the secret's bytes for
//!   any other secret). During a secret rotation the header carries several space-separated
//!   signatures; one match is enough. Verify it with [`verify_standard`], which also refuses
//!   timestamps outside a tolerance window so a captured request can't be replayed later.
//!
//! ```
//! use hookline_verify::{verify_hex, verify_standard, StandardHeaders, DEFAULT_TOLERANCE_SECS};
//! # let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! # let body = br#"{"test": 2432232314}"#;
//! # let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
//! let headers = StandardHeaders { id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", signature: sig };
//! assert!(verify_standard(secret, &headers, body, 1614265330, DEFAULT_TOLERANCE_SECS).is_ok());
//! # let hex = "0d4d4ae8b1e1d6eba6d0a4a1fd2d2ce9bfe5fb4eab7e1eb5fd23bbcbd8a1d1b0";
//! # let _ = verify_hex(secret, body, hex);
//! ```
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Five minutes either side, as the Standard Webhooks libraries default to.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is missing or empty.
    MissingHeader(&'static str),
    /// The timestamp header is not a whole number of seconds.
    BadTimestamp,
    /// The timestamp is further than the tolerance from now: possibly a replay.
    TimestampOutOfTolerance { skew_secs: i64 },
    /// No signature in the header matches.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "missing header {h}"),
            VerifyError::BadTimestamp => write!(f, "webhook-timestamp is not a number of seconds"),
            VerifyError::TimestampOutOfTolerance { skew_secs } => {
                write!(f, "webhook-timestamp is {skew_secs}s away from now")
            }
            VerifyError::Mismatch => write!(f, "signature does not match"),
        }
    }
}

impl std::error::Error for VerifyError {}

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Checks `X-Webhook-Signature` (lowercase or uppercase hex) against the raw body.
pub fn verify_hex(secret: &str, body: &[u8], signature_header: &str) -> Result<(), VerifyError> {
    let given = signature_header.trim();
    if given.is_empty() {
        return Err(VerifyError::MissingHeader("X-Webhook-Signature"));
    }
    let mut m = mac(secret.as_bytes());
    m.update(body);
    let expected = m.finalize().into_bytes();
    let expected_hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    let ok: bool = expected_hex
        .as_bytes()
        .ct_eq(given.to_ascii_lowercase().as_bytes())
        .into();
    ok.then_some(()).ok_or(VerifyError::Mismatch)
}

/// The three Standard Webhooks headers of one request.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// The HMAC key Hookline uses for a secret: base64-decoded after `whsec_`, else the raw bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Checks Standard Webhooks headers. `now` is the receiver's clock in Unix seconds.
pub fn verify_standard(
    secret: &str,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if headers.id.is_empty() {
        return Err(VerifyError::MissingHeader("webhook-id"));
    }
    if headers.signature.trim().is_empty() {
        return Err(VerifyError::MissingHeader("webhook-signature"));
    }
    let ts: i64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance { skew_secs: skew });
    }
    let mut m = mac(&standard_key(secret));
    m.update(headers.id.as_bytes());
    m.update(b".");
    m.update(ts.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    let expected = m.finalize().into_bytes();
    for candidate in headers.signature.split_whitespace() {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            continue;
        };
        if bool::from(given.ct_eq(&expected)) {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

/// Current Unix time in seconds, for [`verify_standard`]'s `now`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

    fn headers(sig: &str) -> StandardHeaders<'_> {
        StandardHeaders {
            id: ID,
            timestamp: "1614265330",
            signature: sig,
        }
    }

    #[test]
    fn accepts_the_spec_example() {
        assert_eq!(
            verify_standard(SECRET, &headers(SIG), BODY, 1614265330, 300),
            Ok(())
        );
    }

    #[test]
    fn accepts_any_of_several_signatures_during_rotation() {
        let both = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SIG}");
        assert_eq!(
            verify_standard(SECRET, &headers(&both), BODY, 1614265330, 300),
            Ok(())
        );
        let unknown_versions = format!("v2,xyz v1a,abc {SIG}");
        assert_eq!(
            verify_standard(SECRET, &headers(&unknown_versions), BODY, 1614265330, 300),
            Ok(())
        );
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_stale_timestamps() {
        assert_eq!(
            verify_standard(SECRET, &headers(SIG), b"{\"test\": 1}", 1614265330, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_standard("whsec_AAAA", &headers(SIG), BODY, 1614265330, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_standard(SECRET, &headers(SIG), BODY, 1614265330 + 301, 300),
            Err(VerifyError::TimestampOutOfTolerance { skew_secs: 301 })
        );
        assert!(verify_standard(SECRET, &headers(SIG), BODY, 1614265330 - 301, 300).is_err());
        let mut h = headers(SIG);
        h.timestamp = "yesterday";
        assert_eq!(
            verify_standard(SECRET, &h, BODY, 1614265330, 300),
            Err(VerifyError::BadTimestamp)
        );
        h = headers("");
        assert_eq!(
            verify_standard(SECRET, &h, BODY, 1614265330, 300),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            verify_standard(SECRET, &headers("v1,!!!"), BODY, 1614265330, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn hex_signature_round_trips() {
        // RFC 4231 test case 2.
        let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(
            verify_hex("Jefe", b"what do ya want for nothing?", sig),
            Ok(())
        );
        assert_eq!(
            verify_hex("Jefe", b"what do ya want for nothing?", &sig.to_uppercase()),
            Ok(())
        );
        assert_eq!(
            verify_hex("Jefe", b"what do ya want for nothing!", sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_hex("Jefe", b"x", ""),
            Err(VerifyError::MissingHeader("X-Webhook-Signature"))
        );
        assert_eq!(verify_hex("Jefe", b"x", "zz"), Err(VerifyError::Mismatch));
    }
}
