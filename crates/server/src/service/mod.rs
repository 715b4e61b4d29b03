//! The service layer: one place for every rule (DESIGN §2). REST handlers, the CLI and later the MCP
//! server and web UI call these methods; none of them re-implements validation or storage logic.

mod auth;
mod webhooks;

pub use auth::Principal;
pub use webhooks::{RotateInput, SecretView, WebhookInput, WebhookView};

use crate::config::Config;
use hookline_store::Store;
use std::sync::Arc;

/// Handle to the running system's rules and storage. Cheap to clone.
#[derive(Clone)]
pub struct Hookline {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
}

impl Hookline {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        Hookline { store, config }
    }
}
