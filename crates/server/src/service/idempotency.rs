//! `Idempotency-Key` on the creating requests other than publish — create a webhook, create,
//! import or bulk-delete records, resend a delivery, replay a webhook's deliveries — with publish's
//! semantics: the same key with the same request answers the first answer again (and says it is a
//! replay); the same key with another request is refused (422 `idempotency_key_reused`). The key
//! itself is validated, and the request fingerprinted, by [`Idempotency`] (`request.rs`), the
//! same rule as publish's.
//!
//! Publish stores its key in the transaction that writes its events. These operations claim the
//! key first, run, then store their answer: a request that fails gives the key back, so it may be
//! retried with the same key; a second request arriving while the first still runs gets 409
//! `idempotency_key_in_use`. The run is spawned so that a client hanging up can't leave a claim
//! behind half-way; if a node dies between its commit and storing the answer, the key answers 409
//! until the keys are pruned (after 24 hours), and never runs the request twice.

use super::access::Principal;
use super::handle::Hookline;
use super::request::Idempotency;
use crate::error::{Error, Result};
use hookline_store::KeyClaim;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;

/// The refusal of a key used before with another request (publish answers the same).
pub(crate) fn key_reused() -> Error {
    Error::invalid(
        "Idempotency-Key",
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request",
    )
}

impl Hookline {
    /// Runs `run` once per key and request: without a key it just runs; with one, it runs only if
    /// the key is free, and its answer (`A`, what is needed to answer again) is kept for the next
    /// request with the same key. Returns the answer and whether it is a replay.
    pub(crate) async fn once<A, F, Fut>(
        &self,
        who: &Principal,
        key: Option<Idempotency>,
        run: F,
    ) -> Result<(A, bool)>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<A>> + Send + 'static,
    {
        let Some(key) = key else {
            return Ok((run().await?, false));
        };
        let tenant = who.tenant_id;
        match self
            .store
            .claim_idempotency_key(tenant, &key.key, &key.fingerprint)
            .await?
        {
            KeyClaim::Answered(text) => {
                let answer = serde_json::from_str(&text).map_err(|e| {
                    Error::Internal(format!("stored idempotent answer unreadable: {e}"))
                })?;
                return Ok((answer, true));
            }
            KeyClaim::InProgress => return Err(Error::Conflict {
                code: "idempotency_key_in_use",
                message:
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
            }),
            KeyClaim::Reused => return Err(key_reused()),
            KeyClaim::Claimed => {}
        }
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let outcome = run().await;
            let settled = match &outcome {
                Ok(answer) => match serde_json::to_string(answer) {
                    Ok(text) => {
                        store
                            .complete_idempotency_key(tenant, &key.key, &text)
                            .await
                    }
                    Err(e) => Err(hookline_store::StoreError::Internal(e.to_string())),
                },
                Err(_) => store.release_idempotency_key(tenant, &key.key).await,
            };
            // The request itself succeeded or failed as it says; a key that couldn't be settled
            // answers 409 until it is pruned, which never repeats the request.
            if let Err(e) = settled {
                tracing::warn!(error = %e, "could not settle an idempotency key");
            }
            outcome
        });
        let answer = task
            .await
            .map_err(|e| Error::Internal(format!("idempotent request task: {e}")))??;
        Ok((answer, false))
    }
}
