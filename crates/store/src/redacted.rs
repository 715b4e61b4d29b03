//! `log_redact` in the store: an event is stored with the deployment's redacted fields replaced
//! (`core::redact`), and the values taken out are kept beside it, sealed (encrypted like webhook
//! secrets), in `events.redacted`, only while a delivery of it may still be sent.
//!
//! Why a sealed copy at all: a delivery is rendered from the stored event at each attempt, and
//! receivers must still get the fields. A claim puts the values back into the event it hands to
//! the sender ([`LogRedactor::restore`]); reading an event for the API or the log never does. Once
//! no delivery of an event is pending, retrying or being sent, retention's pass drops the copy
//! ([`DROP_SPENT_SQL`]): a resend after that sends the redacted text.

use crate::error::Result;
use crate::model::Event;
use crate::sealed::Sealer;
use hookline_core::redact::{self, Redaction};
use std::borrow::Cow;
use std::sync::Arc;

/// What the sealed copy is called in its additional authenticated data.
const WHAT: &str = "events.redacted";

/// The deployment's redaction with the store's sealer.
pub(crate) struct LogRedactor<'a> {
    pub paths: &'a Redaction,
    pub sealer: &'a Sealer,
}

impl LogRedactor<'_> {
    /// `e` as stored, and the sealed values taken out of it (`None`: stored as it is).
    pub fn for_storage<'e>(&self, e: &'e Event) -> Result<(Cow<'e, Event>, Option<String>)> {
        if self.paths.is_empty() {
            return Ok((Cow::Borrowed(e), None));
        }
        let mut stored = e.clone();
        match self.paths.apply(&mut stored.data, &mut stored.changes) {
            None => Ok((Cow::Borrowed(e), None)),
            Some(taken) => {
                let sealed = self
                    .sealer
                    .seal_text(WHAT, &e.id.to_string(), &taken.to_string())?;
                Ok((Cow::Owned(stored), Some(sealed)))
            }
        }
    }

    /// Puts the sealed values back into an event read for sending. A copy that can't be opened
    /// (a key dropped too early) leaves the event as stored, with a warning: the receiver gets the
    /// redacted text rather than nothing.
    pub fn restore(&self, e: &mut Event, sealed: Option<&str>) {
        let Some(sealed) = sealed else { return };
        let opened = self
            .sealer
            .open_text(WHAT, &e.id.to_string(), sealed)
            .and_then(|t| Ok(serde_json::from_str::<serde_json::Value>(&t)?));
        match opened {
            Ok(taken) => redact::restore(&mut e.data, &mut e.changes, &taken),
            Err(err) => tracing::warn!(event_id = %e.id, error = %err,
                "the redacted values of an event can't be opened; sending it as stored"),
        }
    }
}

/// The sealed copy of a batch after an erasure took the objects at `removed` out of it
/// (`core::redact::without_items`): their values go, the others' follow their objects. A copy that
/// can't be opened is dropped (with a warning): the erasure must not fail over it.
pub(crate) fn without_items(
    sealer: &Sealer,
    event_id: hookline_core::ids::EventId,
    sealed: Option<&str>,
    removed: &[usize],
) -> Result<Option<String>> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let id = event_id.to_string();
    let taken = match sealer
        .open_text(WHAT, &id, sealed)
        .and_then(|t| Ok(serde_json::from_str::<serde_json::Value>(&t)?))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(event_id = %id, error = %e, "dropping a redacted copy that can't be opened");
            return Ok(None);
        }
    };
    match redact::without_items(&taken, removed) {
        Some(kept) => Ok(Some(sealer.seal_text(WHAT, &id, &kept.to_string())?)),
        None => Ok(None),
    }
}

/// Shared handle to the deployment's redaction (empty unless `log_redact` names fields).
pub(crate) type Paths = Arc<Redaction>;

/// Drops the sealed copies no delivery needs any more (no placeholders). Runs with retention. The
/// stored event changes, so its `revision` moves: a node holding the full copy reads it again.
pub(crate) const DROP_SPENT_SQL: &str = "UPDATE events SET redacted = NULL, revision = revision + 1
  WHERE redacted IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id
                     AND d.status IN ('pending', 'retrying', 'delivering'))";
