//! When this node last wrote each API key's `last_used_at`: the throttle that keeps authentication
//! from costing a write per request. Kept apart from `keys.rs` so that the handle can hold it
//! without importing the module that uses the handle.

use hookline_core::ids::ApiKeyId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A key's use is written back at most this often per node (each request would otherwise be a
/// write); `last_used_at` is therefore up to this much behind, per node.
pub const RECORDED_EVERY: Duration = Duration::from_secs(60);

/// When this node last wrote each key's `last_used_at`. Per node, like every in-memory state: with
/// several nodes a key's use is written at most once a minute by each.
#[derive(Default)]
pub struct KeyUses {
    last: Mutex<HashMap<ApiKeyId, Instant>>,
}

impl KeyUses {
    /// Whether a use of `id` now should be written (and, if so, remembers that it was).
    pub(super) fn due(&self, id: ApiKeyId) -> bool {
        let mut m = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget old entries so the map can't grow without bound.
        if m.len() > 10_000 {
            m.retain(|_, t| now.duration_since(*t) < RECORDED_EVERY);
        }
        match m.get(&id) {
            Some(t) if now.duration_since(*t) < RECORDED_EVERY => false,
            _ => {
                m.insert(id, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_use_is_written_once_per_interval() {
        let uses = KeyUses::default();
        let (a, b) = (ApiKeyId::new(), ApiKeyId::new());
        assert!(uses.due(a));
        assert!(!uses.due(a), "a second use right away is not written");
        assert!(uses.due(b), "each key has its own interval");
        // An interval that has passed makes the next use due again.
        uses.last
            .lock()
            .unwrap()
            .insert(a, Instant::now() - RECORDED_EVERY);
        assert!(uses.due(a));
    }
}
