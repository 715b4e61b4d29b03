//! The service layer: the one place for every rule that is not a pure function of core. The REST
//! API, the console, the MCP server and the CLI's local commands call [`Hookline`]'s methods with
//! domain types; none of them re-implements validation or storage logic. ARCHITECTURE.md lists
//! which rule lives in which file.

pub mod access;
mod auth;
pub mod catalog;
mod deliveries;
mod erasures;
mod events;
mod handle;
mod handshake;
mod idempotency;
mod jobs;
mod keys;
mod last_used;
mod listen;
mod ops;
mod records;
pub mod request;
pub mod sessions;
mod webhooks;

pub use access::Principal;
pub use deliveries::{
    AttemptView, DeliveryDetail, DeliveryQuery, DeliveryView, ReplayInput, ReplayView, TestInput,
    TestView,
};
pub use erasures::{ErasedCounts, ErasureInput, ErasureView};
pub use events::{EventInput, EventView, PublishInput, PublishOutput};
pub use handle::Hookline;
pub use handshake::{HandshakeInput, HandshakeView, ReceiverVerdict};
pub use jobs::JobView;
pub use keys::{ApiKeyInput, ApiKeyView, CreatedApiKey};
pub use listen::{ListenGuard, ListenSession, ListenStart, LISTEN_HEARTBEAT, LISTEN_STALE};
pub use records::{
    parse_import, BulkDeleteView, EmittedEvent, ImportRow, ImportRowResult, ImportView, RecordView,
    WriteContext, WriteView,
};
pub use webhooks::{
    FilterTestInput, FilterTestView, RotateInput, SecretView, WebhookInput, WebhookView,
};
