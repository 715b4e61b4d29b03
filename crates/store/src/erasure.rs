//! Right to erasure in the store: what one step of an erasure job counts, and the text both
//! backends search for.
//!
//! An erasure job (`JobKind::Erasure`, params = `core::erasure::Target`) walks the tenant's events
//! in id order, a step of candidates per transaction (`Store::erasure_step`): a candidate is an
//! event whose entity is the record or whose stored `data` text contains the record's id. Each one
//! gets `Target::judge`'s verdict: kept, dropped with its deliveries and attempts, or rewritten
//! without the record (its removed objects' deliveries go, later ones move down, and the attempts
//! of its deliveries lose the receiver's answer, which may have echoed the record). When no
//! candidate is left, the last step removes the record itself, the stored answers of idempotent
//! requests that showed it, and the input rows of finished imports, then marks the job done.
//!
//! SQLite zeroes what each step deletes (`secure_delete`) and empties the WAL when the job ends, so
//! no copy lingers in free pages; PostgreSQL leaves dead row versions to its vacuum.

use hookline_core::erasure::Target;
use serde::{Deserialize, Serialize};

/// What an erasure did, summed over its steps: the job's `result`, and its audit entry. Counts
/// only, never the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub events_dropped: u64,
    pub events_rewritten: u64,
    pub deliveries_removed: u64,
    pub attempts_removed: u64,
    pub attempts_redacted: u64,
    pub records_removed: u64,
    pub stored_answers_removed: u64,
    pub import_rows_removed: u64,
}

impl Erased {
    /// The counts kept in a job's `result` so far (none before the first step).
    pub fn from_result(v: Option<&serde_json::Value>) -> Erased {
        v.and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    pub fn add(&mut self, o: &Erased) {
        self.events_dropped += o.events_dropped;
        self.events_rewritten += o.events_rewritten;
        self.deliveries_removed += o.deliveries_removed;
        self.attempts_removed += o.attempts_removed;
        self.attempts_redacted += o.attempts_redacted;
        self.records_removed += o.records_removed;
        self.stored_answers_removed += o.stored_answers_removed;
        self.import_rows_removed += o.import_rows_removed;
    }

    pub fn to_value(self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The record's id as it appears inside stored JSON text (escaped as JSON escapes it), for the
/// over-inclusive text search that finds candidates.
pub(crate) fn needle(target: &Target) -> String {
    let quoted = serde_json::to_string(&target.entity_id).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// Events examined per step: one transaction each, so other writers get in between.
pub const ERASURE_STEP: usize = 200;

/// Redacts the receiver's answers in the attempts of an event's deliveries (placeholder: the
/// event id); returns the count.
pub(crate) fn redact_attempts_sql(p: &str) -> String {
    format!(
        "UPDATE attempts SET response_body = NULL, response_headers = NULL
          WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = {p})
            AND (response_body IS NOT NULL OR response_headers IS NOT NULL)"
    )
}
