//! In-process API tests: each test spawns the app on 127.0.0.1:0 with its own temporary SQLite file
//! and talks to it over real HTTP. Receivers are local servers on 127.0.0.1 that the test config
//! allow-lists explicitly; nothing here opens a socket to any other address.

mod compat;
mod console;
mod delivery;
mod erasure;
mod filters;
mod isolation;
mod keys;
mod listen;
mod mcp;
mod openapi;
mod ops;
mod records;
mod strict_input;
mod telemetry;
mod webhooks;

use axum::http::{HeaderMap, StatusCode as AxStatus};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    pub key: String,
    pub client: Client,
    pub hookline: hookline_server::service::Hookline,
    pub dispatcher: hookline_server::dispatcher::Dispatcher,
    pub dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    /// The PostgreSQL database when the suite runs on PostgreSQL (dropped with the app).
    pub _db: Option<hookline_store::testing::TestDatabase>,
}

/// `HOOKLINE_TEST_STORE=postgres` runs this whole suite on PostgreSQL instead of SQLite.
pub async fn test_database_url(
    dir: &std::path::Path,
) -> (String, Option<hookline_store::testing::TestDatabase>) {
    if std::env::var("HOOKLINE_TEST_STORE").as_deref() == Ok("postgres") {
        let db = hookline_store::testing::TestDatabase::create()
            .await
            .expect("HOOKLINE_TEST_STORE=postgres needs HOOKLINE_TEST_DATABASE_URL");
        return (db.url.clone(), Some(db));
    }
    (format!("sqlite://{}", dir.join("test.db").display()), None)
}

/// A key for test databases that several nodes share (PostgreSQL needs one configured): fresh per
/// test process, so no database outlives its key by accident.
pub fn test_encryption_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| hookline_core::sealing::EncryptionKey::generate().to_base64())
        .clone()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Configuration every delivery test needs: loopback receivers allowed, plain HTTP allowed, no
/// retry jitter.
pub fn local_receivers() -> Vec<(&'static str, String)> {
    vec![
        ("allow_targets", "127.0.0.1/32".into()),
        ("allow_http", "true".into()),
        // Exact retry delays, so tests can step the clock to a due time; jitter has its own tests.
        ("retry_jitter", "0".into()),
    ]
}

/// The app with the dispatcher running in the background, as `hookline serve` runs it.
pub async fn spawn_app_with_worker(extra: &[(&str, String)]) -> TestApp {
    spawn(extra, hookline_server::Roles::default()).await
}

/// The app with the API only: tests drive the dispatcher with `run_once`/`drain`.
pub async fn spawn_app_with(extra: &[(&str, String)]) -> TestApp {
    spawn(
        extra,
        hookline_server::Roles {
            api: true,
            worker: false,
        },
    )
    .await
}

async fn spawn(extra: &[(&str, String)], roles: hookline_server::Roles) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, db) = test_database_url(dir.path()).await;
    let mut flags = vec![
        ("database_url", database_url),
        ("sqlite_synchronous", "normal".to_string()),
    ];
    // PostgreSQL needs the key given; SQLite makes its key file beside the database.
    if db.is_some() {
        flags.push(("encryption_key", test_encryption_key()));
    }
    flags.extend(extra.iter().cloned());
    let config = hookline_server::config::Config::load(None, std::iter::empty(), &flags).unwrap();
    let app = hookline_server::App::build(config).await.unwrap();
    let key = app
        .hookline
        .bootstrap()
        .await
        .unwrap()
        .expect("fresh database bootstraps");
    let hookline = app.hookline.clone();
    let dispatcher = app.dispatcher.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.serve(listener, shutdown.clone(), roles));
    TestApp {
        base,
        key,
        client: Client::new(),
        hookline,
        dispatcher,
        dir,
        shutdown,
        _db: db,
    }
}

impl TestApp {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.key.clone(), method, path, body).await
    }

    async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body {status}: {text}"))
        };
        (status, value)
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.body(body.to_string()).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON body {status}: {text}")),
        )
    }

    async fn create(&self, body: Value) -> Value {
        let (s, v) = self.call(Method::POST, "/v1/webhooks", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn other_tenant_key(&self, tenant: &str) -> String {
        self.hookline.create_key(tenant, "test").await.unwrap()
    }
}

pub fn hook(url: &str) -> Value {
    json!({"url": url, "events": ["contact.created"]})
}

pub fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    want_code: &str,
    want_field: Option<&str>,
    case: &str,
) {
    assert_eq!(status, want_status, "{case}: {body}");
    assert_eq!(body["error"]["code"], want_code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
    match want_field {
        Some(f) => assert_eq!(body["error"]["field"], f, "{case}: {body}"),
        None => assert!(body["error"].get("field").is_none(), "{case}: {body}"),
    }
}

/// What a receiver answers to one request.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Hold the answer until this is notified (a hanging endpoint the test controls).
    pub hold: Option<Arc<Notify>>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: b"ok".to_vec(),
            hold: None,
        }
    }
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A scripted HTTP receiver on 127.0.0.1: answers queued replies in order, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            script: Arc::default(),
            got: Arc::default(),
            arrived: Arc::new(Notify::new()),
        };
        let state = r.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        headers,
                        body: body.to_vec(),
                    });
                    state.arrived.notify_waiters();
                    let reply = state
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Reply::status(200));
                    if let Some(hold) = &reply.hold {
                        hold.notified().await;
                    }
                    let mut resp =
                        axum::response::Response::new(axum::body::Body::from(reply.body));
                    *resp.status_mut() = AxStatus::from_u16(reply.status).unwrap();
                    for (k, v) in reply.headers {
                        resp.headers_mut().insert(k, v.parse().unwrap());
                    }
                    resp
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    pub fn then(&self, reply: Reply) -> &Self {
        self.script.lock().unwrap().push_back(reply);
        self
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.arrived.notified();
            if self.got.lock().unwrap().len() >= n {
                return self.received();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "receiver got {} requests, expected {n}",
                    self.received().len()
                );
            }
        }
    }
}
