//! Storage for Hookline: the [`Store`] trait every interface reaches the database through, its row
//! types, and two implementations: the embedded SQLite store ([`SqliteStore`]) and the PostgreSQL
//! store for several nodes sharing one database ([`PostgresStore`]).
//!
//! The trait speaks in domain rows, not SQL, so both implementations run the same behavioural test
//! suite. Every method is scoped by tenant where rows belong to one: a caller can't read or change
//! another tenant's rows by guessing an id.
//!
//! This file only declares modules and re-exports: the backends import what they share from the
//! modules that define it, so no module imports this one back.
#![forbid(unsafe_code)]

mod contract;
mod erasure;
mod error;
mod fairness;
pub mod fanout;
pub mod health;
mod jobs;
mod model;
mod pg_tls;
mod postgres;
mod redacted;
mod sealed;
mod shared;
mod sqlite;
mod stats;
// Test helpers that panic: only built with the `testing` feature, which dev-dependencies turn on,
// so no production binary carries them.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use contract::{Page, Store};
pub use erasure::{Erased, ERASURE_STEP};
pub use error::{Result, StoreError};
pub use health::disabled_event;
pub use jobs::{job_lost, Job, JobKind, JobStatus, ReplayJob};
pub use model::*;
pub use postgres::{PoolOptions, PostgresStore};
pub use sealed::{Reseal, ResealReport};
pub use sqlite::{SqliteStore, Synchronous};
