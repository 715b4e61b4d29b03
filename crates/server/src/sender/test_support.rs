//! Test-only helpers for the sender: local receivers (bound to 127.0.0.1 only), a throwaway
//! PKI, a stub resolver, and dialers that either record instead of dialing or refuse anything
//! that is not loopback. Nothing here can open a socket to a non-loopback address.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::connect::{BoxFuture, Dial, Resolve, TcpDialer};

/// One request seen by a [`Receiver`].
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Handler = Arc<dyn Fn(&Hit) -> Response<Full<Bytes>> + Send + Sync>;

/// A hyper server on `127.0.0.1:0`, plain HTTP/1.1 or TLS (HTTP/2 when ALPN picks `h2`).
pub struct Receiver {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn handler(f: impl Fn(&Hit) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Handler {
    Arc::new(f)
}

pub fn respond(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    r
}

pub async fn local_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

pub async fn http_receiver(handler: Handler) -> Receiver {
    start_receiver(handler, None).await
}

pub async fn https_receiver(handler: Handler, tls: Arc<ServerConfig>) -> Receiver {
    start_receiver(handler, Some(TlsAcceptor::from(tls))).await
}

async fn start_receiver(handler: Handler, tls: Option<TlsAcceptor>) -> Receiver {
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn({
        let hits = hits.clone();
        let connections = connections.clone();
        async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                let hits = hits.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let hits = hits.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let hit = Hit {
                                method: parts.method.to_string(),
                                target: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            let response = handler(&hit);
                            hits.lock().unwrap().push(hit);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    match tls {
                        None => {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tcp), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            if h2 {
                                let _ =
                                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                            } else {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        }
    });
    Receiver {
        addr,
        hits,
        connections,
        task,
    }
}

/// A CA and a leaf certificate for `localhost` and `127.0.0.1`, signed by it.
pub struct TestPki {
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Hookline Test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &*ca).unwrap();

        TestPki {
            ca_pem: ca.pem(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key_der: leaf_key.serialize_der(),
        }
    }

    /// Server configuration offering `alpn` (e.g. `[b"h2", b"http/1.1"]`).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Answers from a script, one entry per call (the last one repeats); `None` is a lookup
/// error. Records every question.
pub struct StubResolver {
    script: Mutex<VecDeque<Option<Vec<SocketAddr>>>>,
    last: Mutex<Option<Vec<SocketAddr>>>,
    pub questions: Mutex<Vec<(String, u16)>>,
    hang: bool,
}

impl StubResolver {
    pub fn new(script: Vec<Option<Vec<SocketAddr>>>) -> Arc<StubResolver> {
        Arc::new(StubResolver {
            script: Mutex::new(script.into()),
            last: Mutex::new(None),
            questions: Mutex::new(Vec::new()),
            hang: false,
        })
    }

    pub fn always(answer: &[&str]) -> Arc<StubResolver> {
        StubResolver::new(vec![Some(addrs(answer))])
    }

    /// Never answers.
    pub fn hanging() -> Arc<StubResolver> {
        Arc::new(StubResolver {
            script: Mutex::new(VecDeque::new()),
            last: Mutex::new(None),
            questions: Mutex::new(Vec::new()),
            hang: true,
        })
    }

    pub fn calls(&self) -> usize {
        self.questions.lock().unwrap().len()
    }
}

impl Resolve for StubResolver {
    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        self.questions.lock().unwrap().push((host.clone(), port));
        if self.hang {
            return Box::pin(std::future::pending());
        }
        let next = {
            let mut script = self.script.lock().unwrap();
            let mut last = self.last.lock().unwrap();
            match script.pop_front() {
                Some(entry) => {
                    *last = entry.clone();
                    entry
                }
                None => last.clone(),
            }
        };
        Box::pin(async move {
            next.ok_or_else(|| io::Error::other(format!("stub resolver: no such host `{host}`")))
        })
    }
}

/// Socket addresses from `"ip:port"` or bare IPs (port 0).
pub fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .unwrap_or_else(|_| SocketAddr::new(s.parse().unwrap(), 0))
        })
        .collect()
}

/// Records the address it was asked to dial and fails. Never opens a socket.
#[derive(Default)]
pub struct RecordingDialer {
    pub dialed: Mutex<Vec<SocketAddr>>,
}

impl RecordingDialer {
    pub fn new() -> Arc<RecordingDialer> {
        Arc::new(RecordingDialer::default())
    }

    pub fn dialed(&self) -> Vec<SocketAddr> {
        self.dialed.lock().unwrap().clone()
    }
}

impl Dial for RecordingDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>> {
        self.dialed.lock().unwrap().push(addr);
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("recording dialer: not dialing {addr}"),
            ))
        })
    }
}

/// Dials loopback addresses for real and refuses everything else (a second safety net for
/// tests that pair a stub resolver with real connections).
#[derive(Default)]
pub struct LoopbackDialer {
    pub dialed: Mutex<Vec<SocketAddr>>,
}

impl Dial for LoopbackDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>> {
        self.dialed.lock().unwrap().push(addr);
        if !addr.ip().to_canonical().is_loopback() {
            return Box::pin(async move {
                Err(io::Error::other(format!(
                    "loopback dialer: refusing non-loopback {addr}"
                )))
            });
        }
        TcpDialer.dial(addr)
    }
}
