//! The outbound HTTP sender: performs one delivery attempt (one `POST` to a webhook URL) and
//! reports what happened in a form the dispatcher can store and act on.
//!
//! Webhook URLs are chosen by users, so every request is a potential SSRF probe. The sender
//! therefore does not use a general-purpose HTTP client's connection logic; it is built from
//! hyper-util's legacy `Client` (for its keep-alive pool and HTTP/1.1 + HTTP/2 support) with a
//! connector of our own (the `connect` submodule) that:
//!
//! - re-validates the URL against the current [`UrlPolicy`] before anything else;
//! - resolves the host itself, exactly once per connection, through [`Resolve`];
//! - runs every answer through [`UrlPolicy::filter_resolved`] and dials only the addresses that
//!   survived, through [`Dial`] (never a second lookup, so DNS rebinding gains nothing);
//! - never uses a proxy and never follows redirects (a `301` is reported as a `301`).
//!
//! TLS is rustls with the ring provider and webpki-roots (plus an optional extra CA, for tests
//! and private deployments), offering `h2` and `http/1.1` by ALPN.
//!
//! One [`SendResult`] carries everything about an attempt: status or error kind, timings
//! (DNS / TCP / TLS are measured inside the connector and attached to the connection, so a
//! request that reused a pooled connection reports them as `None` and `reused_connection`),
//! and a bounded copy of the response (at most [`SenderConfig::body_cap`] bytes of body, 50
//! headers). The whole attempt is bounded by [`SenderConfig::timeout`]; a receiver that streams
//! an endless body is cut off after a bounded read and its connection closed, never drained.
//!
//! The resolver and dialer are traits so tests can check the resolve-filter-dial logic with a
//! stub resolver and a dialer that records addresses instead of connecting.

mod connect;
mod error_kind;
pub mod listen;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use hookline_core::url_policy::{UrlError, UrlPolicy, WebhookUrl};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use http::{Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use connect::{BoxFuture, Dial, Resolve, SystemResolver, TcpDialer};
use connect::{ConnInfo, ConnectError, Connector};
pub use error_kind::ErrorKind;

/// Most response headers kept in a [`SendResult`].
pub const MAX_RESPONSE_HEADERS: usize = 50;
/// Longest response header value kept, in bytes (after lossy UTF-8 conversion).
pub const MAX_RESPONSE_HEADER_VALUE: usize = 1024;
/// Default for [`SenderConfig::body_cap`].
pub const DEFAULT_BODY_CAP: usize = 4096;
/// How long an idle pooled connection is kept. Below the common 60 s server-side keep-alive
/// limits, so we rarely pick a connection the receiver is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the sender behaves. Fixed for the sender's lifetime; build a new [`Sender`] to change it.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Checked again on every send (the webhook was validated at creation, possibly under a
    /// different policy) and applied to every resolved address.
    pub policy: UrlPolicy,
    /// Whole attempt: resolve + connect + TLS + response headers + capped body.
    pub timeout: Duration,
    /// Bytes of response body kept.
    pub body_cap: usize,
    /// Extra trusted CA certificate(s), PEM, added to the webpki roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// `User-Agent` sent unless the request has its own.
    pub user_agent: String,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            policy: UrlPolicy::default(),
            timeout: Duration::from_secs(10),
            body_cap: DEFAULT_BODY_CAP,
            extra_ca_pem: None,
            user_agent: concat!("Hookline/", env!("CARGO_PKG_VERSION")).to_string(),
            max_idle_per_host: 32,
        }
    }
}

/// One delivery attempt's request. Always sent as `POST`.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub url: String,
    /// Sent in order, after `Content-Type: application/json` and `User-Agent` (each only when
    /// not given here). Framing and hop-by-hop headers (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection`, ...) are the sender's business and are ignored.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Milliseconds spent in each phase. `dns_ms`, `connect_ms` and `tls_ms` are `None` when the
/// phase did not happen for this request (IP literal, plain HTTP, pooled connection).
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    /// From the start of `send` to the response headers.
    pub ttfb_ms: Option<f64>,
    /// From the start of `send` until the (capped) body was read or the attempt failed.
    pub total_ms: f64,
}

/// Outcome of one attempt.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub status_code: Option<u16>,
    /// `None` when a response status was received (whatever the status).
    pub error: Option<(ErrorKind, String)>,
    pub timings: Timings,
    /// The request went over a connection set up earlier (by another request).
    pub reused_connection: bool,
    /// `"HTTP/1.1"` or `"HTTP/2"` (`"HTTP/1.0"` for an HTTP/1.0 peer).
    pub http_version: Option<&'static str>,
    /// At most [`MAX_RESPONSE_HEADERS`], values lossy UTF-8 and at most
    /// [`MAX_RESPONSE_HEADER_VALUE`] bytes. Names are lowercase.
    pub response_headers: Vec<(String, String)>,
    /// Lossy UTF-8 of at most `body_cap` bytes (a character cut by the cap is dropped).
    pub response_body: String,
    /// The body was longer than what was kept, or did not complete (broken connection or
    /// timeout while reading it).
    pub response_truncated: bool,
    /// `Retry-After` as a delay from now (delta-seconds, or an HTTP-date; a past date is 0).
    pub retry_after: Option<Duration>,
}

impl SendResult {
    fn empty() -> SendResult {
        SendResult {
            status_code: None,
            error: None,
            timings: Timings::default(),
            reused_connection: false,
            http_version: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            response_truncated: false,
            retry_after: None,
        }
    }
}

/// Sends webhook requests. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    policy: UrlPolicy,
    timeout: Duration,
    body_cap: usize,
    user_agent: HeaderValue,
    client: Client<Connector, Full<Bytes>>,
    /// Listen sessions connected to this node (`listen:` URLs).
    listens: listen::ListenHub,
    /// Stored URLs that passed the policy, parsed: checking and parsing a URL again for every
    /// attempt was ~3 % of a delivery's CPU. The policy is fixed for the sender's life, so a URL
    /// that passed once passes again; refused ones are not kept (they are rare, and checked anew).
    targets: std::sync::Mutex<std::collections::HashMap<String, Uri>>,
}

/// Most parsed URLs [`Inner::targets`] keeps; past it the map starts over.
const TARGETS_KEPT: usize = 4096;

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.inner.policy)
            .field("timeout", &self.inner.timeout)
            .field("body_cap", &self.inner.body_cap)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `fut` until `deadline` (`None` = no deadline). `None` when the deadline passed first.
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(tokio::time::Instant::from_std(d), fut)
            .await
            .ok(),
        None => Some(fut.await),
    }
}

impl Sender {
    /// A sender using the system resolver and plain TCP. Fails on an unusable extra CA PEM or
    /// user agent.
    pub fn new(cfg: SenderConfig) -> Result<Sender, String> {
        Sender::with_parts(cfg, Arc::new(SystemResolver), Arc::new(TcpDialer))
    }

    /// A sender with its own resolver and dialer (tests, or a deployment-specific resolver).
    pub fn with_parts(
        cfg: SenderConfig,
        resolver: Arc<dyn Resolve>,
        dialer: Arc<dyn Dial>,
    ) -> Result<Sender, String> {
        let tls = connect::tls_config(cfg.extra_ca_pem.as_deref())?;
        let user_agent = HeaderValue::from_str(&cfg.user_agent).map_err(|_| {
            format!(
                "user agent {:?} is not a valid header value",
                cfg.user_agent
            )
        })?;
        let connector = Connector::new(cfg.policy.clone(), resolver, dialer, tls, cfg.timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Sender {
            inner: Arc::new(Inner {
                policy: cfg.policy,
                timeout: cfg.timeout,
                body_cap: cfg.body_cap,
                user_agent,
                client,
                listens: listen::ListenHub::default(),
                targets: Default::default(),
            }),
        })
    }

    /// This node's listen sessions (`hookline listen`).
    pub fn listens(&self) -> &listen::ListenHub {
        &self.inner.listens
    }

    /// One attempt. Never panics and returns within the configured timeout (plus scheduling
    /// slack); every failure is described in [`SendResult::error`].
    pub async fn send(&self, req: OutboundRequest) -> SendResult {
        if let Some(session) = req.url.strip_prefix(listen::SCHEME) {
            let session = session.to_string();
            return self.send_to_session(&session, req).await;
        }
        let start = Instant::now();
        let mut out = SendResult::empty();
        self.send_inner(req, start, &mut out).await;
        out.timings.total_ms = ms(start.elapsed());
        if let Some((kind, message)) = &out.error {
            tracing::debug!(kind = kind.as_str(), %message, "send failed");
        }
        out
    }

    /// A request to a listen session (`listen.rs`): its report becomes the result.
    async fn send_to_session(&self, session: &str, req: OutboundRequest) -> SendResult {
        let inner = &*self.inner;
        let start = Instant::now();
        let mut out = SendResult::empty();
        let answer = inner
            .listens
            .send(session, req.headers, &req.body, inner.timeout)
            .await;
        out.timings.ttfb_ms = Some(ms(start.elapsed()));
        out.timings.total_ms = ms(start.elapsed());
        match answer {
            listen::Answer::Answered(r) => {
                out.status_code = r.status;
                out.response_headers = r.headers;
                let mut body = r.body;
                if body.len() > inner.body_cap {
                    let mut cut = inner.body_cap;
                    while !body.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    body.truncate(cut);
                    out.response_truncated = true;
                }
                out.response_body = body;
            }
            listen::Answer::Unreachable(m) => out.error = Some((ErrorKind::Connect, m)),
            listen::Answer::TimedOut(m) => out.error = Some((ErrorKind::Timeout, m)),
        }
        out
    }

    async fn send_inner(&self, req: OutboundRequest, start: Instant, out: &mut SendResult) {
        let inner = &*self.inner;
        let uri = match self.target(&req.url) {
            Ok(t) => t,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        };
        let request = match self.build_request(uri, req) {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        };
        let deadline = start.checked_add(inner.timeout);

        let response = match until(deadline, inner.client.request(request)).await {
            None => {
                out.error = Some((
                    ErrorKind::Timeout,
                    format!("no response within {} ms", inner.timeout.as_millis()),
                ));
                return;
            }
            Some(Err(e)) => {
                let (kind, message, connect_err) = classify_client_error(&e);
                if let Some(ce) = connect_err {
                    out.timings.dns_ms = ce.dns_ms;
                    out.timings.connect_ms = ce.connect_ms;
                    out.timings.tls_ms = ce.tls_ms;
                }
                out.error = Some((kind, message));
                return;
            }
            Some(Ok(r)) => r,
        };
        out.timings.ttfb_ms = Some(ms(start.elapsed()));
        out.status_code = Some(response.status().as_u16());
        out.http_version = Some(version_str(response.version()));
        // Cannot be missing with our connector; if it were, report nothing rather than guess.
        if let Some(info) = response.extensions().get::<ConnInfo>() {
            if info.claim_fresh(start) {
                out.timings.dns_ms = info.dns_ms;
                out.timings.connect_ms = Some(info.connect_ms);
                out.timings.tls_ms = info.tls_ms;
            } else {
                out.reused_connection = true;
            }
            tracing::trace!(
                conn = info.id,
                peer = %info.peer,
                reused = out.reused_connection,
                status = response.status().as_u16(),
                "response headers received"
            );
        }
        out.response_headers = collect_headers(response.headers());
        out.retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));

        let (kept, truncated) = read_capped(response.into_body(), inner.body_cap, deadline).await;
        // The body (and with it, for an unfinished HTTP/1 body, the connection) is dropped
        // here: an oversized response is cut off, never drained.
        out.response_truncated = truncated;
        out.response_body = lossy_utf8(&kept, truncated);
    }

    /// The stored URL `stored`, checked against the policy and parsed (from `Inner::targets`
    /// when it passed before).
    fn target(&self, stored: &str) -> Result<Uri, (ErrorKind, String)> {
        let lock = || {
            self.inner
                .targets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(uri) = lock().get(stored) {
            return Ok(uri.clone());
        }
        // The URL was checked as written when it was saved; the policy applies again here.
        let url = WebhookUrl::from_stored(stored, &self.inner.policy).map_err(|e| {
            let kind = match e {
                UrlError::BlockedAddress { .. } | UrlError::BlockedHostname { .. } => {
                    ErrorKind::BlockedDestination
                }
                _ => ErrorKind::InvalidUrl,
            };
            (kind, e.to_string())
        })?;
        let uri: Uri = url.as_str().parse().map_err(|e| {
            (
                ErrorKind::InvalidUrl,
                format!("webhook URL cannot be used as a request target: {e}"),
            )
        })?;
        let mut targets = lock();
        if targets.len() >= TARGETS_KEPT {
            targets.clear();
        }
        targets.insert(stored.to_string(), uri.clone());
        Ok(uri)
    }

    fn build_request(
        &self,
        uri: Uri,
        req: OutboundRequest,
    ) -> Result<Request<Full<Bytes>>, (ErrorKind, String)> {
        let mut caller = Vec::with_capacity(req.headers.len());
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                (
                    ErrorKind::Protocol,
                    format!("request header name {name:?} is not valid"),
                )
            })?;
            if is_managed_header(&name) {
                tracing::debug!(header = %name, "ignoring caller-supplied framing header");
                continue;
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                (
                    ErrorKind::Protocol,
                    format!("value of request header `{name}` is not a valid header value"),
                )
            })?;
            caller.push((name, value));
        }
        let body_len = req.body.len();
        let mut request = Request::new(Full::new(req.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        if !caller.iter().any(|(n, _)| n == CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !caller.iter().any(|(n, _)| n == USER_AGENT) {
            headers.insert(USER_AGENT, self.inner.user_agent.clone());
        }
        for (name, value) in caller {
            headers.append(name, value);
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
        Ok(request)
    }
}

/// Headers that describe the connection or the message framing: set by the sender/hyper only.
fn is_managed_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Maps a client error to a kind and a message; the connector's own error, when it is the
/// cause, decides the kind and carries the timings measured before the failure.
fn classify_client_error(
    e: &hyper_util::client::legacy::Error,
) -> (ErrorKind, String, Option<ConnectError>) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(err) = source {
        if let Some(ce) = err.downcast_ref::<ConnectError>() {
            return (ce.kind, ce.message.clone(), Some(ce.clone()));
        }
        chain.push(err.to_string());
        source = err.source();
    }
    let kind = if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Protocol
    };
    (kind, chain.join(": "), None)
}

fn collect_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .take(MAX_RESPONSE_HEADERS)
        .map(|(name, value)| {
            let mut v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            truncate_at_char_boundary(&mut v, MAX_RESPONSE_HEADER_VALUE);
            (name.as_str().to_string(), v)
        })
        .collect()
}

fn truncate_at_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Reads at most `cap` bytes of body, then reads (and throws away) at most `cap` more to find
/// out whether the body ends there. Returns the kept bytes and whether the body was longer
/// than that or did not complete. Stops at `deadline`.
async fn read_capped(
    mut body: hyper::body::Incoming,
    cap: usize,
    deadline: Option<Instant>,
) -> (Vec<u8>, bool) {
    let mut kept: Vec<u8> = Vec::with_capacity(cap.min(64 * 1024));
    let mut discarded = 0usize;
    loop {
        let frame = match until(deadline, body.frame()).await {
            None => {
                tracing::debug!("timed out while reading the response body");
                return (kept, true);
            }
            Some(None) => return (kept, discarded > 0),
            Some(Some(Err(e))) => {
                tracing::debug!(error = %e, "response body ended with an error");
                return (kept, true);
            }
            Some(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let room = cap - kept.len();
        if data.len() <= room {
            kept.extend_from_slice(&data);
        } else {
            kept.extend_from_slice(&data[..room]);
            discarded += data.len() - room;
            if discarded >= cap {
                // More than twice the cap: stop here. Dropping the body closes the
                // connection instead of draining an arbitrarily large response.
                return (kept, true);
            }
        }
    }
}

/// Lossy UTF-8; when the bytes were cut, an incomplete character at the very end is dropped
/// instead of becoming U+FFFD.
fn lossy_utf8(bytes: &[u8], cut: bool) -> String {
    let mut end = bytes.len();
    if cut {
        // Find the start of the last character (at most 3 continuation bytes back).
        let mut i = end;
        while i > 0 && end - i < 4 {
            i -= 1;
            let b = bytes[i];
            if b & 0xC0 != 0x80 {
                let need = match b {
                    0x00..=0x7F => 1,
                    0xC0..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF7 => 4,
                    _ => 1,
                };
                if end - i < need {
                    end = i;
                }
                break;
            }
        }
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or
/// asctime form) turned into a delay from `now` (a past date gives zero).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = parse_http_date(v)?;
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    // Obsolete forms HTTP still requires recipients to accept (RFC 9110 §5.6.7).
    for format in ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(v, format) {
            return Some(n.and_utc());
        }
    }
    None
}
