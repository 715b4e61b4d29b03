//! Store errors, sorted by what the caller should do about them.
//!
//! Policy: a store method returns `Conflict` for a broken uniqueness rule the caller can report,
//! `Unavailable` for conditions that pass (database busy, locked, disk I/O, connection lost), which
//! the API answers with 503 and workers retry, and `Internal` for everything that means a bug or
//! corrupted data. Raw driver errors never cross this boundary, so no caller matches on SQLite codes.
//! That includes the PostgreSQL pool: no free connection in time, a connect or statement timeout are
//! all `Unavailable` (see `postgres.rs`).

/// The result of every store method.
pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal store error: {0}")]
    Internal(String),
    /// The caller's plan (see [`crate::PlanFn`]) refused the write; nothing was written.
    #[error("{0}")]
    Rejected(crate::model::Rejection),
    /// A publish (or record write) would create more deliveries than the deployment allows in one
    /// request; nothing was written.
    #[error("this request would create {needed} or more deliveries; at most {limit} are allowed per request")]
    TooManyDeliveries { limit: usize, needed: usize },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                ConstraintViolation => StoreError::Conflict(e.to_string()),
                DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | CannotOpen => {
                    StoreError::Unavailable(e.to_string())
                }
                _ => StoreError::Internal(e.to_string()),
            },
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Internal(format!("stored JSON is invalid: {e}"))
    }
}
