//! Listen sessions: deliveries to a developer's machine without a public URL (`hookline listen`).
//!
//! A session is a temporary webhook whose URL is `listen:<session id>`. Instead of dialing out, the
//! sender hands such a request to the session's open stream (the CLI holds it, a server-sent event
//! stream on the node it connected to), and waits for the CLI to report what the local receiver
//! answered; that report becomes the attempt's result, so the delivery log shows the local
//! receiver's status, headers, body and time. No socket is opened for it, and the URL policy has
//! nothing to check: the request leaves through the CLI's own connection.
//!
//! The hub is this node's: a delivery claimed by a node the session isn't connected to fails with
//! a `connect` error and is retried on its schedule (on one node, or behind sticky routing, that
//! never happens). A session that closes fails every request still waiting for its report.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The URL scheme of a listen session's webhook.
pub const SCHEME: &str = "listen:";

/// Requests a session may hold before its stream takes them (more wait in the dispatcher).
const SESSION_QUEUE: usize = 64;

/// One request for the CLI to forward: the signed headers and the body, as a receiver gets them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListenRequest {
    /// Names this request in the CLI's report.
    pub id: String,
    /// `[name, value]` pairs, in order.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What the local receiver answered, as the CLI reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenReport {
    /// The request's `id`.
    pub id: String,
    /// The local receiver's status; absent when it couldn't be reached (`error` says why).
    pub status: Option<u16>,
    /// `[name, value]` pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    pub error: Option<String>,
}

struct Session {
    tenant: uuid::Uuid,
    /// Its temporary webhook, once made.
    webhook: Option<uuid::Uuid>,
    stream: mpsc::Sender<ListenRequest>,
    waiting: HashMap<String, oneshot::Sender<ListenReport>>,
}

/// This node's open listen sessions.
#[derive(Default)]
pub struct ListenHub {
    sessions: Mutex<HashMap<String, Session>>,
}

impl ListenHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens session `id` of `tenant`: the requests for it arrive on the answer.
    pub fn open(&self, id: &str, tenant: uuid::Uuid) -> mpsc::Receiver<ListenRequest> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.lock().insert(
            id.to_string(),
            Session {
                tenant,
                webhook: None,
                stream: tx,
                waiting: HashMap::new(),
            },
        );
        rx
    }

    /// Notes the temporary webhook of session `id` (see [`Self::webhooks`]).
    pub fn attach(&self, id: &str, webhook: uuid::Uuid) {
        if let Some(s) = self.lock().get_mut(id) {
            s.webhook = Some(webhook);
        }
    }

    /// The webhooks of the sessions open on this node: their heartbeat.
    pub fn webhooks(&self) -> Vec<uuid::Uuid> {
        self.lock().values().filter_map(|s| s.webhook).collect()
    }

    /// Closes a session: requests waiting for a report fail at once.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Hands the CLI's report to the request waiting for it; false when no request of `tenant`'s
    /// session `id` waits under that id (already answered, timed out, or never sent).
    pub fn report(&self, id: &str, tenant: uuid::Uuid, report: ListenReport) -> bool {
        let mut sessions = self.lock();
        let Some(s) = sessions.get_mut(id).filter(|s| s.tenant == tenant) else {
            return false;
        };
        match s.waiting.remove(&report.id) {
            Some(waiter) => waiter.send(report).is_ok(),
            None => false,
        }
    }

    /// Whether `tenant` has session `id` open on this node.
    pub fn holds(&self, id: &str, tenant: uuid::Uuid) -> bool {
        self.lock().get(id).is_some_and(|s| s.tenant == tenant)
    }

    /// Sends one request (its headers and body) through session `session` and waits up to
    /// `timeout` for its report.
    pub async fn send(
        &self,
        session: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        timeout: Duration,
    ) -> Answer {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let stream = {
            let mut sessions = self.lock();
            match sessions.get_mut(session) {
                Some(s) => {
                    s.waiting.insert(id.clone(), tx);
                    s.stream.clone()
                }
                None => {
                    return Answer::Unreachable(
                        "the listen session is not connected to this node".into(),
                    )
                }
            }
        };
        let request = ListenRequest {
            id: id.clone(),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let answered = tokio::time::timeout(timeout, async {
            stream.send(request).await.ok()?;
            rx.await.ok()
        })
        .await;
        if let Some(s) = self.lock().get_mut(session) {
            s.waiting.remove(&id);
        }
        match answered {
            Err(_) => Answer::TimedOut(format!(
                "the listen session did not report an answer within {} s",
                timeout.as_secs()
            )),
            Ok(None) => Answer::Unreachable(
                "the listen session closed before the local receiver answered".into(),
            ),
            Ok(Some(r)) => match r.status {
                Some(_) => Answer::Answered(r),
                None => Answer::Unreachable(format!(
                    "the local receiver could not be reached: {}",
                    r.error.unwrap_or_else(|| "no answer".into())
                )),
            },
        }
    }
}

/// How a request through a session ended.
#[derive(Debug)]
pub enum Answer {
    /// The local receiver answered (`status` is set).
    Answered(ListenReport),
    /// No session, a closed one, or a local receiver the CLI couldn't reach.
    Unreachable(String),
    TimedOut(String),
}
