//! [`Hookline`], the handle every interface holds: the store, the configuration, the sender for
//! synchronous test sends, the dispatcher's wake-up and the node's metrics.

use crate::config::Config;
use crate::metrics::Metrics;
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
    /// Wakes the job runner when a job was queued.
    pub job_wake: Arc<Notify>,
    /// This node's counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// When this node last recorded each API key's use (`last_used.rs`).
    pub(super) key_uses: Arc<super::last_used::KeyUses>,
}

impl Hookline {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, sender: Sender) -> Self {
        Hookline {
            store,
            config,
            sender,
            wake: Arc::new(Notify::new()),
            job_wake: Arc::new(Notify::new()),
            metrics: Arc::default(),
            key_uses: Arc::default(),
        }
    }

    /// Tells the dispatcher new work was committed.
    pub(crate) fn notify_new_work(&self) {
        self.wake.notify_one();
    }
}
