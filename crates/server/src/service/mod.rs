//! The service layer: one place for every rule (DESIGN §2). REST handlers, the CLI and later the MCP
//! server and web UI call these methods; none of them re-implements validation or storage logic.

mod auth;
mod deliveries;
mod entities;
mod events;
mod handshake;
mod webhooks;

pub use auth::Principal;
pub use deliveries::{
    AttemptView, DeliveryDetail, DeliveryQuery, DeliveryView, ReplayInput, ReplayView, TestInput,
    TestView,
};
pub use entities::{
    parse_import, BulkDeleteView, EmittedEvent, EntityView, ImportRow, ImportRowResult, ImportView,
    WriteContext, WriteView,
};
pub use events::{EventInput, EventView, PublishInput, PublishOutput};
pub use handshake::{HandshakeInput, HandshakeView, ReceiverVerdict};
pub use webhooks::{RotateInput, SecretView, WebhookInput, WebhookView};

use crate::config::Config;
use crate::sender::Sender;
use hookline_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// Handle to the running system's rules and storage. Cheap to clone.
#[derive(Clone)]
pub struct Hookline {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Sends test deliveries synchronously (the dispatcher has its own clone).
    pub sender: Sender,
    /// Wakes the dispatcher when new deliveries were committed.
    pub wake: Arc<Notify>,
    /// Delivery counters for `/metrics`.
    pub counters: Arc<crate::dispatcher::Counters>,
}

impl Hookline {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, sender: Sender) -> Self {
        Hookline {
            store,
            config,
            sender,
            wake: Arc::new(Notify::new()),
            counters: Arc::default(),
        }
    }

    /// Tells the dispatcher new work was committed.
    pub(crate) fn notify_new_work(&self) {
        self.wake.notify_one();
    }
}
