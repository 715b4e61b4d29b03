//! The connector: turns a request URI into a connected (and, for `https`, TLS-wrapped) stream,
//! doing its own DNS resolution so that every address it dials has been checked by the URL policy.
//!
//! hyper-util's legacy `Client` calls [`Connector`] (a `tower_service::Service<Uri>`) only when
//! its pool has no idle connection for the URI's scheme and authority. One call is one
//! connection: resolve once ([`Resolve`]), filter the answer with
//! [`UrlPolicy::filter_resolved`], dial the survivors in order ([`Dial`]) and, for `https`, run
//! the rustls handshake. The name is never looked up a second time, so a DNS server that answers
//! "public" to a check and "private" to the connect (rebinding) has nothing to exploit: the
//! address that was checked is the address that is dialled.
//!
//! Per-connection facts (how long DNS, TCP and TLS took, when the connection was made) travel
//! to the response through [`Connected::extra`] as a [`ConnInfo`], which is how the sender tells
//! a fresh connection from a pooled one.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hookline_core::url_policy::UrlPolicy;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error_kind::ErrorKind;

/// Boxed future returned by [`Resolve`] and [`Dial`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Name resolution used by the connector. Tests substitute a stub so that no real lookup (and,
/// with a recording [`Dial`], no real connection) ever happens.
pub trait Resolve: Send + Sync + 'static {
    /// All addresses for `host`. The port of the returned addresses is ignored: the connector
    /// always dials the URL's port.
    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver, through [`tokio::net::lookup_host`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// Opens a TCP connection to one already-checked address.
pub trait Dial: Send + Sync + 'static {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>>;
}

/// Plain `TcpStream::connect`, with Nagle disabled (webhook requests are small and
/// latency-bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

impl Dial for TcpDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why the connector could not produce a connection. Carries the timings measured before the
/// failure so that a failed attempt can still say, e.g., how long DNS took.
#[derive(Debug, Clone)]
pub(crate) struct ConnectError {
    pub kind: ErrorKind,
    pub message: String,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
}

impl ConnectError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> ConnectError {
        ConnectError {
            kind,
            message: message.into(),
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

// ---------------------------------------------------------------------------
// Per-connection information
// ---------------------------------------------------------------------------

/// Facts about one connection, attached to it with [`Connected::extra`] and therefore copied
/// into the extensions of every response received on it.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Process-unique connection number (for logs).
    pub id: u64,
    /// When the connector started making this connection.
    pub started: Instant,
    pub dns_ms: Option<f64>,
    pub connect_ms: f64,
    pub tls_ms: Option<f64>,
    pub peer: SocketAddr,
    /// Set by the first response that reports this connection's setup timings; every later
    /// response on the same connection is a reuse.
    claimed: Arc<AtomicBool>,
}

impl ConnInfo {
    /// Whether the request that started at `request_start` paid for setting up this
    /// connection: the connection was started after the request and no earlier response has
    /// claimed it. Only the first caller for a fresh connection gets `true`.
    pub fn claim_fresh(&self, request_start: Instant) -> bool {
        self.started >= request_start && !self.claimed.swap(true, Ordering::AcqRel)
    }
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

// ---------------------------------------------------------------------------
// The stream
// ---------------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// A connection handed to hyper: the stream plus what hyper-util should know about it.
pub(crate) struct Conn {
    io: TokioIo<Stream>,
    info: ConnInfo,
    h2: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.info.clone());
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.io)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

// ---------------------------------------------------------------------------
// TLS configuration
// ---------------------------------------------------------------------------

/// rustls client configuration: ring provider, webpki-roots plus the optional extra CA(s), ALPN
/// offering HTTP/2 first.
pub(crate) fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        let mut count = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("extra CA PEM could not be parsed: {e}"))?;
            count += 1;
            roots.add(cert).map_err(|e| {
                format!("extra CA certificate #{count} is not usable as a trust anchor: {e}")
            })?;
        }
        if count == 0 {
            return Err("extra CA PEM contains no CERTIFICATE block".to_string());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------
// The connector
// ---------------------------------------------------------------------------

/// Resolve → filter → dial → TLS, as a `Service<Uri>` for hyper-util's legacy `Client`.
#[derive(Clone)]
pub(crate) struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    policy: UrlPolicy,
    resolver: Arc<dyn Resolve>,
    dialer: Arc<dyn Dial>,
    tls: TlsConnector,
    /// The whole-attempt timeout; used to share time between several addresses so that one
    /// black-holed address (say, an unroutable IPv6 answer) does not eat the whole attempt.
    attempt_timeout: Duration,
}

impl Connector {
    pub fn new(
        policy: UrlPolicy,
        resolver: Arc<dyn Resolve>,
        dialer: Arc<dyn Dial>,
        tls: Arc<ClientConfig>,
        attempt_timeout: Duration,
    ) -> Connector {
        Connector {
            inner: Arc::new(ConnectorInner {
                policy,
                resolver,
                dialer,
                tls: TlsConnector::from(tls),
                attempt_timeout,
            }),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = BoxFuture<Result<Conn, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            // The sender bounds each attempt anyway; this bound also covers a connection that
            // hyper-util finishes in the background after its request was served by a pooled
            // connection instead.
            let limit = inner.attempt_timeout;
            match tokio::time::timeout(limit, inner.connect(uri)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::new(
                    ErrorKind::Timeout,
                    format!("connection not established within {} ms", limit.as_millis()),
                )),
            }
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl ConnectorInner {
    async fn connect(&self, uri: Uri) -> Result<Conn, ConnectError> {
        let started = Instant::now();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if self.policy.allow_http => false,
            Some("http") => {
                return Err(ConnectError::new(
                    ErrorKind::InvalidUrl,
                    "http:// URLs are not allowed by the URL policy",
                ))
            }
            other => {
                return Err(ConnectError::new(
                    ErrorKind::InvalidUrl,
                    format!("unsupported URL scheme {:?}", other.unwrap_or("")),
                ))
            }
        };
        let raw_host = uri.host().unwrap_or_default();
        let host = raw_host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw_host)
            .to_string();
        if host.is_empty() {
            return Err(ConnectError::new(ErrorKind::InvalidUrl, "URL has no host"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });

        // 1. Resolve, exactly once. IP literals are their own answer.
        let literal: Option<IpAddr> = host.parse().ok();
        let (answer, dns_ms) = match literal {
            Some(ip) => (vec![SocketAddr::new(ip, port)], None),
            None => {
                let t = Instant::now();
                let result = self.resolver.resolve(host.clone(), port).await;
                let dns_ms = Some(ms(t.elapsed()));
                let answer = match result {
                    Ok(a) => a,
                    Err(e) => {
                        return Err(ConnectError {
                            dns_ms,
                            ..ConnectError::new(
                                ErrorKind::Dns,
                                format!("DNS lookup for `{host}` failed: {e}"),
                            )
                        })
                    }
                };
                if answer.is_empty() {
                    return Err(ConnectError {
                        dns_ms,
                        ..ConnectError::new(
                            ErrorKind::Dns,
                            format!("DNS lookup for `{host}` returned no addresses"),
                        )
                    });
                }
                // Whatever port the resolver echoed, the URL's port is the one dialled.
                let answer = answer
                    .into_iter()
                    .map(|a| SocketAddr::new(a.ip(), port))
                    .collect();
                (answer, dns_ms)
            }
        };

        // 2. Filter. Only what survives is ever dialled.
        let allowed = match self.policy.filter_resolved(&answer) {
            Ok(allowed) => allowed,
            Err(_) => {
                let refused: Vec<String> = answer
                    .iter()
                    .take(5)
                    .map(|a| match self.policy.explain_ip(a.ip()) {
                        Err(refusal) => format!("{} ({refusal})", a.ip()),
                        Ok(()) => a.ip().to_string(),
                    })
                    .collect();
                let what = if literal.is_some() {
                    format!("destination {}", refused.join(", "))
                } else {
                    format!("`{host}` resolved only to {}", refused.join(", "))
                };
                return Err(ConnectError {
                    dns_ms,
                    ..ConnectError::new(
                        ErrorKind::BlockedDestination,
                        format!("{what}: refused by the URL policy"),
                    )
                });
            }
        };
        if allowed.len() < answer.len() {
            tracing::debug!(
                host = %host,
                refused = answer.len() - allowed.len(),
                "some resolved addresses refused by the URL policy"
            );
        }

        // 3. Dial the checked addresses in order until one connects.
        let t = Instant::now();
        let mut last_err: Option<(SocketAddr, io::Error)> = None;
        let mut connected = None;
        let n = allowed.len();
        for (i, addr) in allowed.iter().copied().enumerate() {
            let dial = self.dialer.dial(addr);
            let outcome = if i + 1 < n {
                // Not the last candidate: give it a fair share of the attempt.
                let share = self.attempt_timeout / u32::try_from(n).unwrap_or(u32::MAX);
                match tokio::time::timeout(share, dial).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {} ms", share.as_millis()),
                    )),
                }
            } else {
                dial.await
            };
            match outcome {
                Ok(stream) => {
                    connected = Some((addr, stream));
                    break;
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "dial failed");
                    last_err = Some((addr, e));
                }
            }
        }
        let connect_ms = ms(t.elapsed());
        let Some((peer, tcp)) = connected else {
            let detail = match last_err {
                Some((addr, e)) if n == 1 => format!("connecting to {addr} failed: {e}"),
                Some((addr, e)) => {
                    format!("connecting to {n} addresses failed; last, {addr}: {e}")
                }
                None => "no address to connect to".to_string(),
            };
            return Err(ConnectError {
                dns_ms,
                connect_ms: Some(connect_ms),
                ..ConnectError::new(ErrorKind::Connect, detail)
            });
        };

        // 4. TLS.
        let (stream, tls_ms, h2) = if https {
            let server_name = match literal {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => match ServerName::try_from(host.clone()) {
                    Ok(name) => name,
                    Err(e) => {
                        return Err(ConnectError {
                            dns_ms,
                            connect_ms: Some(connect_ms),
                            ..ConnectError::new(
                                ErrorKind::InvalidUrl,
                                format!("`{host}` is not a valid TLS server name: {e}"),
                            )
                        })
                    }
                },
            };
            let t = Instant::now();
            let tls = match self.tls.connect(server_name, tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    return Err(ConnectError {
                        dns_ms,
                        connect_ms: Some(connect_ms),
                        tls_ms: Some(ms(t.elapsed())),
                        ..ConnectError::new(
                            ErrorKind::Tls,
                            format!("TLS handshake with {peer} failed: {e}"),
                        )
                    })
                }
            };
            let tls_ms = ms(t.elapsed());
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Stream::Tls(Box::new(tls)), Some(tls_ms), h2)
        } else {
            (Stream::Plain(tcp), None, false)
        };

        let info = ConnInfo {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            started,
            dns_ms,
            connect_ms,
            tls_ms,
            peer,
            claimed: Arc::new(AtomicBool::new(false)),
        };
        tracing::debug!(
            conn = info.id,
            %peer,
            h2,
            dns_ms = ?info.dns_ms,
            connect_ms = info.connect_ms,
            tls_ms = ?info.tls_ms,
            "connected"
        );
        Ok(Conn {
            io: TokioIo::new(stream),
            info,
            h2,
        })
    }
}
