//! `hookline receive`: a local receiver for debugging a setup (and for benchmarks). It verifies
//! both signature schemes with `hookline-verify`, answers 200 to a good request and 401 to a badly
//! signed one (so it behaves like a careful receiver), and prints one line per delivery, or only
//! counts with `quiet`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    pub secret: Option<String>,
    pub quiet: bool,
    /// Accept a request signed with `X-Webhook-Signature` alone. Off by default: that signature
    /// has no timestamp, so a captured delivery stripped of its `webhook-*` headers would verify
    /// forever (`hookline_verify::Verifier::allow_hex_only`).
    pub allow_hex_only: bool,
}

/// Counts kept by a running receiver.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub received: AtomicU64,
    pub verified: AtomicU64,
    pub rejected: AtomicU64,
}

struct Shared {
    opts: ReceiverOptions,
    stats: Arc<ReceiverStats>,
}

/// The verdict on one request's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `ok`, `bad`, `missing` or `unchecked` (no secret given).
    pub hex: &'static str,
    pub standard: &'static str,
}

impl Verdict {
    /// A careful receiver's answer: no bad signature, and a good Standard Webhooks one (or, with
    /// `allow_hex_only`, a good hex one when the request has no Standard Webhooks signature).
    /// Without a secret nothing is checked and everything is accepted.
    pub fn accepted(&self, allow_hex_only: bool) -> bool {
        match (self.hex, self.standard) {
            ("bad", _) | (_, "bad") => false,
            (_, "ok") => true,
            ("ok", "missing") => allow_hex_only,
            ("unchecked", "unchecked") => true,
            _ => false,
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks both signature schemes of a request against `secret`.
pub fn verify(secret: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Verdict {
    let Some(secret) = secret else {
        return Verdict {
            hex: "unchecked",
            standard: "unchecked",
        };
    };
    let hex_header = header(headers, "x-webhook-signature");
    let hex = if hex_header.is_empty() {
        "missing"
    } else if hookline_verify::verify_hex(secret, body, hex_header).is_ok()
        || hookline_verify::verify_hex(
            secret,
            body,
            header(headers, "x-webhook-signature-previous"),
        )
        .is_ok()
    {
        "ok"
    } else {
        "bad"
    };
    let std_headers = hookline_verify::StandardHeaders {
        id: header(headers, "webhook-id"),
        timestamp: header(headers, "webhook-timestamp"),
        signature: header(headers, "webhook-signature"),
    };
    let standard = if std_headers.signature.is_empty() {
        "missing"
    } else if hookline_verify::verify_standard(
        secret,
        &std_headers,
        body,
        hookline_verify::unix_now(),
        hookline_verify::DEFAULT_TOLERANCE_SECS,
    )
    .is_ok()
    {
        "ok"
    } else {
        "bad"
    };
    Verdict { hex, standard }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    s.stats.received.fetch_add(1, Ordering::Relaxed);
    let verdict = verify(s.opts.secret.as_deref(), &headers, &body);
    let ok = verdict.accepted(s.opts.allow_hex_only);
    if ok {
        s.stats.verified.fetch_add(1, Ordering::Relaxed);
    } else {
        s.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }
    if !s.opts.quiet {
        let event = match header(&headers, "x-webhook-event") {
            "" => "?",
            e => e,
        };
        let latency = hookline_core::time::parse(header(&headers, "x-webhook-timestamp"))
            .map(|t| format!("{} ms", (hookline_core::time::now() - t).num_milliseconds()))
            .unwrap_or_else(|| "-".into());
        println!(
            "{} {event} delivery={} hex={} standard={} latency={latency} bytes={}",
            hookline_core::time::format(&hookline_core::time::now()),
            header(&headers, "webhook-id"),
            verdict.hex,
            verdict.standard,
            body.len()
        );
    }
    if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::UNAUTHORIZED, "invalid signature")
    }
}

/// Serves on `listener` until `shutdown`. With `quiet`, prints counts once a second when they change.
pub async fn run(
    listener: tokio::net::TcpListener,
    opts: ReceiverOptions,
    stats: Arc<ReceiverStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let quiet = opts.quiet;
    let shared = Arc::new(Shared {
        opts,
        stats: stats.clone(),
    });
    let app = Router::new().fallback(handle).with_state(shared);
    if quiet {
        let stats = stats.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let n = stats.received.load(Ordering::Relaxed);
                if n != last {
                    println!(
                        "received {n} ({}/s), verified {}, rejected {}",
                        n - last,
                        stats.verified.load(Ordering::Relaxed),
                        stats.rejected.load(Ordering::Relaxed)
                    );
                    last = n;
                }
            }
        });
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds the receiver's address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_request_signed_only_with_the_hex_signature_is_refused_unless_allowed() {
        let (secret, body) = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", br#"{"a":1}"#);
        let now = hookline_verify::unix_now();
        let hex = hookline_verify::sign_hex(secret, body);
        let hex_only = verify(
            Some(secret),
            &headers(&[("x-webhook-signature", hex.clone())]),
            body,
        );
        assert_eq!((hex_only.hex, hex_only.standard), ("ok", "missing"));
        assert!(!hex_only.accepted(false));
        assert!(hex_only.accepted(true));
        let both = verify(
            Some(secret),
            &headers(&[
                ("x-webhook-signature", hex),
                ("webhook-id", "d1".into()),
                ("webhook-timestamp", now.to_string()),
                (
                    "webhook-signature",
                    hookline_verify::sign_standard(secret, "d1", now, body),
                ),
            ]),
            body,
        );
        assert!(both.accepted(false));
        let bad = verify(
            Some("other"),
            &headers(&[("x-webhook-signature", "00".into())]),
            body,
        );
        assert!(!bad.accepted(true));
        assert!(!verify(Some(secret), &HeaderMap::new(), body).accepted(true));
        assert!(verify(None, &HeaderMap::new(), body).accepted(false));
    }
}
