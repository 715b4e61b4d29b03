//! `hookline listen`: a developer's machine receives deliveries without a public URL.
//!
//! Opening a session creates a temporary webhook of the tenant (the events and format asked for,
//! its own signing secret) whose URL is `listen:<session>`; the sender hands its requests to the
//! session's stream instead of dialing (`sender/listen.rs`), and the CLI reports each local answer
//! back, so deliveries, retries and the log work as for any webhook. When the stream ends (the CLI
//! exits, the connection drops, the node stops), the webhook is deleted: its queued deliveries end
//! `cancelled` in the log, and nothing more is made for it. Other webhooks are untouched.

use super::access::Principal;
use super::handle::Hookline;
use super::webhooks::{WebhookInput, WebhookView};
use crate::error::{Error, Result};
use crate::sender::listen::{ListenReport, ListenRequest};
use hookline_core::ids::WebhookId;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

/// How often a node marks its listen sessions alive and looks for abandoned ones.
pub const LISTEN_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);
/// A session's webhook without a heartbeat for this long belongs to a node that is gone.
pub const LISTEN_STALE: std::time::Duration = std::time::Duration::from_secs(120);

/// The first message of a session: what the CLI prints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListenStart {
    /// The session's id (reports name it).
    pub session: String,
    /// The temporary webhook, with its signing secret (the listen-session secret).
    pub webhook: WebhookView,
}

/// An open session: its start, the requests to forward, and the guard that ends it when dropped.
pub struct ListenSession {
    pub start: ListenStart,
    pub requests: mpsc::Receiver<ListenRequest>,
    pub guard: ListenGuard,
}

/// Ends its session when dropped: the hub forgets it and its webhook is deleted.
pub struct ListenGuard {
    hookline: Hookline,
    who: Principal,
    session: String,
    webhook: WebhookId,
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        self.hookline.sender.listens().close(&self.session);
        let (h, who, id) = (self.hookline.clone(), self.who.clone(), self.webhook);
        // Drop can't wait: the deletion runs on the runtime. (If the node stops first, another
        // node's sweep, or this one's after a restart, deletes it: `sweep_listen_sessions`.)
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = h.delete_webhook(&who, id).await {
                    tracing::warn!(webhook_id = %id, error = %e, "deleting a listen session's webhook failed");
                }
            });
        }
    }
}

impl Hookline {
    /// Opens a listen session for `events` (patterns allowed) in `format` (default `envelope`).
    /// Needs a key that may create webhooks.
    pub async fn open_listen(
        &self,
        who: &Principal,
        events: Vec<String>,
        format: Option<String>,
    ) -> Result<ListenSession> {
        who.require_tenant_write()?;
        let session = format!("ls_{}", uuid::Uuid::new_v4().simple());
        let requests = self.sender.listens().open(&session, who.tenant_id.into());
        let input = WebhookInput {
            name: Some(format!("hookline listen ({session})")),
            description: Some(
                "A temporary webhook of a `hookline listen` session: deleted when it ends.".into(),
            ),
            events: Some(events),
            format,
            ..Default::default()
        };
        let webhook = match self.insert_webhook_to(who, input, Some(&session)).await {
            Ok(w) => w,
            Err(e) => {
                self.sender.listens().close(&session);
                return Err(e);
            }
        };
        self.sender.listens().attach(&session, webhook.id);
        tracing::info!(%session, webhook_id = %webhook.id, "listen session opened");
        let guard = ListenGuard {
            hookline: self.clone(),
            who: who.clone(),
            session: session.clone(),
            webhook: WebhookId::from(webhook.id),
        };
        Ok(ListenSession {
            start: ListenStart { session, webhook },
            requests,
            guard,
        })
    }

    /// Housekeeping, every [`LISTEN_HEARTBEAT`] on API nodes: marks this node's sessions alive,
    /// then deletes the webhooks of sessions whose node stopped without ending them (no heartbeat
    /// for `stale`): their queued deliveries end `cancelled`. Returns how many it deleted.
    pub async fn sweep_listen_sessions(&self, stale: std::time::Duration) -> Result<usize> {
        let mine = self.sender.listens().webhooks();
        self.store
            .touch_webhooks(mine.iter().map(|&w| WebhookId::from(w)).collect())
            .await?;
        let mut deleted = 0;
        for (tenant, id) in self.store.stale_listen_webhooks(stale).await? {
            if mine.contains(&id.into()) {
                continue;
            }
            if self.store.delete_webhook(tenant, id).await? {
                tracing::info!(webhook_id = %id, "deleted the webhook of a listen session whose node is gone");
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Takes the CLI's report of what the local receiver answered to one request.
    pub fn report_listen(
        &self,
        who: &Principal,
        session: &str,
        report: ListenReport,
    ) -> Result<()> {
        who.require_tenant_write()?;
        let listens = self.sender.listens();
        if !listens.holds(session, who.tenant_id.into()) {
            return Err(Error::not_found("listen session"));
        }
        if !listens.report(session, who.tenant_id.into(), report) {
            return Err(Error::Conflict {
                code: "not_waiting",
                message: "no request of this session waits for that report (answered already, or timed out)"
                    .into(),
            });
        }
        Ok(())
    }
}
