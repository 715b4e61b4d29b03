//! Receiver-side verification of Hookline webhook deliveries, for Rust receivers.
//!
//! Hookline signs every delivery twice, with the webhook's secret (see the README's "Signatures"
//! and "Receiving webhooks" sections); a receiver checks either one:
//!
//! - **`X-Webhook-Signature`**: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret's
//!   bytes (the scheme ConnectGain's and Customermates' receivers use). Check it with
//!   [`verify_hex`]. During a secret rotation, `X-Webhook-Signature-Previous` carries the same with
//!   the old secret.
//! - **Standard Webhooks**: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`
//!   over `id.timestamp.body`, keyed with the base64 part of a `whsec_` secret (or the secret's
//!   bytes for any other secret). During a rotation the header carries several space-separated
//!   signatures; one match is enough. Check it with [`verify_standard`], which also refuses
//!   timestamps outside a tolerance window, so a captured request can't be replayed later.
//!
//! [`verify_request`] is all most receivers need: it checks the Standard Webhooks signature and
//! timestamp, and **refuses a request that carries only `X-Webhook-Signature`**
//! ([`VerifyError::HexOnlyNotAllowed`]). That signature covers the body alone, with no timestamp,
//! so a captured request stays valid forever; were the combined check to fall back to it, an
//! attacker could strip the `webhook-*` headers from a captured delivery and replay it. Hookline
//! always sends both schemes, so a request from Hookline never needs the fallback. A receiver whose
//! sender signs with `X-Webhook-Signature` alone opts in explicitly with
//! [`Verifier::allow_hex_only`] (and should deduplicate on the delivery id, its only defence
//! against replays then). Every comparison is constant-time.
//!
//! Always verify the **raw body bytes** as received, before parsing them.
//!
//! # Example: a receiver's handler
//!
//! ```
//! use hookline_verify::{verify_request, unix_now, Scheme, VerifyError};
//! use std::collections::HashMap;
//!
//! /// Whatever your HTTP framework hands you: lowercase header names, the raw body.
//! fn handle(secret: &str, headers: &HashMap<String, String>, body: &[u8]) -> u16 {
//!     let header = |name: &str| headers.get(name).map(String::as_str);
//!     match verify_request(secret, header, body, unix_now()) {
//!         Ok(_scheme) => {
//!             // Authentic. Deduplicate on the delivery id (`webhook-id`): delivery is at least once.
//!             let delivery_id = header("webhook-id").unwrap_or_default();
//!             let event = header("x-webhook-event").unwrap_or_default();
//!             println!("{event} {delivery_id}");
//!             200
//!         }
//!         Err(VerifyError::TimestampOutOfTolerance { .. }) => 401, // stale: a replay?
//!         Err(_) => 401,
//!     }
//! }
//!
//! // What Hookline sends, reproduced with the signing helpers (handy in a receiver's own tests).
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"event":"contact.created","timestamp":"2026-05-15T10:30:00.000Z","data":{"id":"c1"}}"#;
//! let (id, ts) = ("0196d3a1-7c2e-7b4a-9f10-2c3d4e5f6a7b", unix_now());
//! let mut headers = HashMap::new();
//! headers.insert("x-webhook-event".to_string(), "contact.created".to_string());
//! headers.insert("x-webhook-signature".to_string(), hookline_verify::sign_hex(secret, body));
//! headers.insert("webhook-id".to_string(), id.to_string());
//! headers.insert("webhook-timestamp".to_string(), ts.to_string());
//! headers.insert("webhook-signature".to_string(), hookline_verify::sign_standard(secret, id, ts, body));
//! assert_eq!(handle(secret, &headers, body), 200);
//!
//! // A body changed in transit, or signed with another secret, is refused.
//! assert_eq!(handle(secret, &headers, br#"{"event":"contact.deleted"}"#), 401);
//! assert_eq!(handle("whsec_AAAA", &headers, body), 401);
//!
//! // The same delivery with the `webhook-*` headers stripped is refused: without them nothing
//! // dates the request, so it could be a replay.
//! let hex = headers["x-webhook-signature"].clone();
//! let stripped = |n: &str| (n == "x-webhook-signature").then_some(hex.as_str());
//! assert_eq!(
//!     verify_request(secret, stripped, body, ts),
//!     Err(VerifyError::HexOnlyNotAllowed)
//! );
//!
//! // Only a receiver whose sender signs with `X-Webhook-Signature` alone opts in to that path.
//! let legacy = hookline_verify::Verifier::new(secret).allow_hex_only(true);
//! assert_eq!(legacy.verify(stripped, body, ts), Ok(Scheme::Hex));
//! ```
//!
//! `examples/receiver.rs` is a complete receiver on `std::net` alone:
//! `cargo run -p hookline-verify --example receiver -- 127.0.0.1:9000 "$SECRET"`.
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
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is missing or empty.
    MissingHeader(&'static str),
    /// The request carries `X-Webhook-Signature` but no Standard Webhooks signature, and the
    /// hex-only path was not enabled ([`Verifier::allow_hex_only`]): nothing dates such a request,
    /// so it may be a replay.
    HexOnlyNotAllowed,
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
            VerifyError::HexOnlyNotAllowed => write!(
                f,
                "only X-Webhook-Signature is present; without the webhook-id, webhook-timestamp \
                 and webhook-signature headers a replay can't be told apart, so the hex-only path \
                 must be enabled explicitly"
            ),
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

/// Which signature scheme verified a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-id` / `webhook-timestamp` / `webhook-signature`.
    StandardWebhooks,
    /// `X-Webhook-Signature` (or `X-Webhook-Signature-Previous` during a rotation); only with
    /// [`Verifier::allow_hex_only`].
    Hex,
}

/// How a receiver checks whole requests: the secret, the replay window, and whether a request
/// signed with `X-Webhook-Signature` alone is accepted. [`verify_request`] is
/// `Verifier::new(secret).verify(…)`.
///
/// ```
/// use hookline_verify::{Verifier, unix_now};
/// # let (secret, body) = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b"{}");
/// # let header = |_: &str| -> Option<&str> { None };
/// let verifier = Verifier::new(secret).tolerance_secs(120);
/// let result = verifier.verify(header, body, unix_now());
/// # assert!(result.is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'s> {
    secret: &'s str,
    tolerance_secs: i64,
    allow_hex_only: bool,
}

impl<'s> Verifier<'s> {
    /// Standard Webhooks required, [`DEFAULT_TOLERANCE_SECS`] either side of `now`.
    pub fn new(secret: &'s str) -> Self {
        Verifier {
            secret,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            allow_hex_only: false,
        }
    }

    /// How far `webhook-timestamp` may be from the receiver's clock, in seconds.
    pub fn tolerance_secs(mut self, secs: i64) -> Self {
        self.tolerance_secs = secs;
        self
    }

    /// With `true`, a request without a `webhook-signature` header is checked by its
    /// `X-Webhook-Signature` (or `X-Webhook-Signature-Previous`) instead of being refused with
    /// [`VerifyError::HexOnlyNotAllowed`]. That signature covers only the body: a captured request
    /// verifies again whenever it is replayed, so enable this only for a sender that doesn't send
    /// Standard Webhooks headers, and deduplicate on the delivery id. A request that does carry
    /// `webhook-signature` is always judged by it, timestamp included.
    pub fn allow_hex_only(mut self, allow: bool) -> Self {
        self.allow_hex_only = allow;
        self
    }

    /// Verifies one request. `header` looks a header up by its **lowercase** name
    /// (`"webhook-id"`, `"x-webhook-signature"`); most frameworks' header maps are
    /// case-insensitive already. `now` is the receiver's clock in Unix seconds.
    pub fn verify<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        now: i64,
    ) -> Result<Scheme, VerifyError> {
        if let Some(signature) = header("webhook-signature").filter(|s| !s.trim().is_empty()) {
            let h = StandardHeaders {
                id: header("webhook-id").unwrap_or_default(),
                timestamp: header("webhook-timestamp").unwrap_or_default(),
                signature,
            };
            return verify_standard(self.secret, &h, body, now, self.tolerance_secs)
                .map(|()| Scheme::StandardWebhooks);
        }
        let current = header("x-webhook-signature").unwrap_or_default();
        if !self.allow_hex_only {
            // Decided before any comparison: a hex-only request is refused whether or not its
            // signature matches, so the answer says nothing about the secret.
            return Err(if current.trim().is_empty() {
                VerifyError::MissingHeader("webhook-signature")
            } else {
                VerifyError::HexOnlyNotAllowed
            });
        }
        match verify_hex(self.secret, body, current) {
            Ok(()) => Ok(Scheme::Hex),
            Err(e) => match header("x-webhook-signature-previous") {
                Some(previous) if verify_hex(self.secret, body, previous).is_ok() => {
                    Ok(Scheme::Hex)
                }
                _ => Err(e),
            },
        }
    }
}

/// Verifies a request by its Standard Webhooks headers, with [`DEFAULT_TOLERANCE_SECS`] around
/// `now`. A request carrying only `X-Webhook-Signature` is refused
/// ([`VerifyError::HexOnlyNotAllowed`]); [`Verifier::allow_hex_only`] accepts it instead.
///
/// `header` looks a header up by its **lowercase** name (`"webhook-id"`,
/// `"x-webhook-signature"`); most frameworks' header maps are case-insensitive already.
pub fn verify_request<'a>(
    secret: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<Scheme, VerifyError> {
    Verifier::new(secret).verify(header, body, now)
}

/// The `X-Webhook-Signature` value Hookline sends for `body`: lowercase hex HMAC-SHA256 keyed
/// with the secret's bytes. For a receiver's own tests.
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One `webhook-signature` value as Hookline sends it: `v1,<base64>` of HMAC-SHA256 over
/// `id.timestamp.body` with [`standard_key`]. For a receiver's own tests.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(&standard_key(secret));
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
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
    fn verify_request_picks_the_scheme_the_request_carries() {
        let body = br#"{"a":1}"#;
        let ts = 1_700_000_000;
        let std_sig = sign_standard(SECRET, "d1", ts, body);
        let hex = sign_hex(SECRET, body);
        let pairs = [
            ("webhook-id", "d1".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", std_sig),
            ("x-webhook-signature", hex.clone()),
        ];
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            verify_request(SECRET, get, body, ts),
            Ok(Scheme::StandardWebhooks)
        );
        // Standard Webhooks present: its replay window applies even if the hex one matches.
        assert!(matches!(
            verify_request(SECRET, get, body, ts + 301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        // A shorter window of the receiver's own choosing.
        assert!(matches!(
            Verifier::new(SECRET)
                .tolerance_secs(10)
                .verify(get, body, ts + 11),
            Err(VerifyError::TimestampOutOfTolerance { skew_secs: 11 })
        ));
        assert_eq!(
            verify_request(SECRET, |_| None, body, ts),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        assert_eq!(sign_standard(SECRET, ID, 1614265330, BODY), SIG);
    }

    #[test]
    fn a_request_with_only_the_hex_signature_is_refused_by_default() {
        let body = br#"{"a":1}"#;
        let ts = 1_700_000_000;
        let hex = sign_hex(SECRET, body);
        let hex_only = |name: &str| (name == "x-webhook-signature").then_some(hex.as_str());
        assert_eq!(
            verify_request(SECRET, hex_only, body, ts),
            Err(VerifyError::HexOnlyNotAllowed)
        );
        // Refused the same whether or not the signature matches: the refusal reveals nothing.
        assert_eq!(
            verify_request("other", hex_only, body, ts),
            Err(VerifyError::HexOnlyNotAllowed)
        );
        let old_hex = sign_hex("old", body);
        let rotated = |name: &str| match name {
            "x-webhook-signature" => Some(hex.as_str()),
            "x-webhook-signature-previous" => Some(old_hex.as_str()),
            _ => None,
        };
        assert_eq!(
            verify_request("old", rotated, body, ts),
            Err(VerifyError::HexOnlyNotAllowed)
        );
        // An empty webhook-signature counts as absent, not as a Standard Webhooks request.
        let blank_standard = |name: &str| match name {
            "x-webhook-signature" => Some(hex.as_str()),
            "webhook-signature" => Some("  "),
            _ => None,
        };
        assert_eq!(
            verify_request(SECRET, blank_standard, body, ts),
            Err(VerifyError::HexOnlyNotAllowed)
        );
        assert!(VerifyError::HexOnlyNotAllowed
            .to_string()
            .contains("X-Webhook-Signature"));
    }

    #[test]
    fn a_captured_delivery_stripped_of_its_standard_headers_cannot_be_replayed() {
        let body = br#"{"event":"deal.won"}"#;
        let sent_at = 1_700_000_000;
        let std_sig = sign_standard(SECRET, "d7", sent_at, body);
        let hex = sign_hex(SECRET, body);
        let captured = |name: &str| match name {
            "webhook-id" => Some("d7"),
            "webhook-timestamp" => Some("1700000000"),
            "webhook-signature" => Some(std_sig.as_str()),
            "x-webhook-signature" => Some(hex.as_str()),
            _ => None,
        };
        let a_day_later = sent_at + 86_400;
        assert!(matches!(
            verify_request(SECRET, captured, body, a_day_later),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        let stripped = |name: &str| captured(name).filter(|_| !name.starts_with("webhook-"));
        assert_eq!(
            verify_request(SECRET, stripped, body, a_day_later),
            Err(VerifyError::HexOnlyNotAllowed)
        );
        // With the opt-in the stripped copy verifies: the risk the opt-in documents.
        assert_eq!(
            Verifier::new(SECRET)
                .allow_hex_only(true)
                .verify(stripped, body, a_day_later),
            Ok(Scheme::Hex)
        );
    }

    #[test]
    fn the_hex_only_path_is_an_explicit_opt_in() {
        let body = br#"{"a":1}"#;
        let ts = 1_700_000_000;
        let legacy = Verifier::new(SECRET).allow_hex_only(true);
        let hex = sign_hex(SECRET, body);
        let hex_only = |name: &str| (name == "x-webhook-signature").then_some(hex.as_str());
        assert_eq!(legacy.verify(hex_only, body, ts), Ok(Scheme::Hex));
        assert_eq!(
            Verifier::new("other")
                .allow_hex_only(true)
                .verify(hex_only, body, ts),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            legacy.verify(hex_only, b"{\"a\":2}", ts),
            Err(VerifyError::Mismatch)
        );
        // During a rotation a receiver still on the old secret matches the -Previous header.
        let old_hex = sign_hex("old", body);
        let rotated = |name: &str| match name {
            "x-webhook-signature" => Some(hex.as_str()),
            "x-webhook-signature-previous" => Some(old_hex.as_str()),
            _ => None,
        };
        assert_eq!(
            Verifier::new("old")
                .allow_hex_only(true)
                .verify(rotated, body, ts),
            Ok(Scheme::Hex)
        );
        assert_eq!(
            legacy.verify(|_| None, body, ts),
            Err(VerifyError::MissingHeader("X-Webhook-Signature"))
        );
        // The opt-in never weakens a Standard Webhooks request: its timestamp still counts.
        let std_sig = sign_standard(SECRET, "d1", ts, body);
        let both = |name: &str| match name {
            "webhook-id" => Some("d1"),
            "webhook-timestamp" => Some("1700000000"),
            "webhook-signature" => Some(std_sig.as_str()),
            "x-webhook-signature" => Some(hex.as_str()),
            _ => None,
        };
        assert_eq!(legacy.verify(both, body, ts), Ok(Scheme::StandardWebhooks));
        assert!(matches!(
            legacy.verify(both, body, ts + 301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
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
