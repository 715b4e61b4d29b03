//! The verification handshake: does a receiver really check signatures?
//!
//! `POST /v1/webhooks/{id}/verify-receiver` sends the webhook's endpoint two test deliveries with
//! the same body, the same delivery id and the same headers, through the same rendering, signing
//! and sending code as every real delivery ([`attempt::attempt_signed_with`]):
//!
//! 1. one **mis-signed**: both schemes (`X-Webhook-Signature` and Standard Webhooks) signed with a
//!    random secret that is not the webhook's;
//! 2. one **correctly signed** with the webhook's secret(s).
//!
//! A receiver that checks signatures answers non-2xx to the first and 2xx to the second. The
//! mis-signed request goes first so that a receiver which remembers delivery ids (as it should, for
//! idempotency) can't mistake the correctly signed one for a duplicate and answer it differently;
//! a receiver that records ids only after verifying, as it should, sees the good request as new.
//!
//! Nothing is stored: neither request is a delivery in the log, and neither is retried. Both carry
//! `source = test`, so a receiver that does process them can tell.

use super::access::Principal;
use super::deliveries::AttemptView;
use super::handle::Hookline;
use crate::attempt;
use crate::error::Result;
use hookline_core::formats::SigningKeys;
use hookline_core::ids::{DeliveryId, WebhookId};
use hookline_core::signing;
use hookline_store::Attempt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Optional body of `POST /v1/webhooks/{id}/verify-receiver`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandshakeInput {
    /// Which event to simulate; default: the first one the webhook subscribes to.
    pub event_type: Option<String>,
}

/// What the handshake concluded about the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverVerdict {
    /// Accepted the correctly signed request (2xx) and refused the mis-signed one (non-2xx).
    VerifiesSignatures,
    /// Answered 2xx to the mis-signed request: anyone who knows the URL can forge events.
    AcceptsBadSignatures,
    /// Refused the correctly signed request: wrong secret, or not hashing the raw body.
    RejectsValidSignatures,
    /// At least one request got no HTTP answer (DNS, connect, TLS, timeout, URL policy).
    Unreachable,
}

/// The answer of the handshake.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct HandshakeView {
    pub verdict: ReceiverVerdict,
    /// The simulated event type (native name).
    pub event_type: String,
    /// The delivery id both requests carried (`X-{Brand}-Delivery-ID`, `webhook-id`).
    pub delivery_id: Uuid,
    /// The request signed with the webhook's secret.
    pub signed: AttemptView,
    /// The same request signed with a random wrong secret (sent first).
    pub mis_signed: AttemptView,
    /// What the verdict means and what to do about it.
    pub advice: String,
}

fn is_2xx(a: &Attempt) -> bool {
    a.status_code.is_some_and(|c| (200..300).contains(&c))
}

fn describe(a: &Attempt) -> String {
    match (a.status_code, &a.error_kind) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(kind)) => match &a.error_message {
            Some(m) => format!("{kind}: {m}"),
            None => kind.clone(),
        },
        (None, None) => "no answer".into(),
    }
}

/// The handshake's rule: the verdict on a receiver from its answers to the two requests.
pub fn judge(signed: &Attempt, mis_signed: &Attempt) -> ReceiverVerdict {
    if signed.status_code.is_none() || mis_signed.status_code.is_none() {
        ReceiverVerdict::Unreachable
    } else if !is_2xx(signed) {
        ReceiverVerdict::RejectsValidSignatures
    } else if is_2xx(mis_signed) {
        ReceiverVerdict::AcceptsBadSignatures
    } else {
        ReceiverVerdict::VerifiesSignatures
    }
}

/// A sentence or two a user can act on.
pub fn advice(verdict: ReceiverVerdict, signed: &Attempt, mis_signed: &Attempt) -> String {
    match verdict {
        ReceiverVerdict::VerifiesSignatures => {
            let mut s = format!(
                "The endpoint accepted the correctly signed request ({}) and refused the mis-signed one ({}): it checks signatures.",
                describe(signed),
                describe(mis_signed)
            );
            if let Some(code @ (408 | 425 | 429 | 500..=599)) = mis_signed.status_code {
                s.push_str(&format!(
                    " It answered {code} to the bad signature, which senders retry; 401 or 403 says \"refused\" without inviting a retry."
                ));
            }
            s
        }
        ReceiverVerdict::AcceptsBadSignatures => format!(
            "The endpoint answered {} to a request signed with a wrong secret, so anyone who knows its URL can send it forged events. \
             Verify X-Webhook-Signature (lowercase hex HMAC-SHA256 of the raw body with the webhook's secret) or the Standard Webhooks \
             headers (webhook-id, webhook-timestamp, webhook-signature), compare in constant time, and answer 401 when they don't match \
             (the hookline-verify crate and the README's \"Receiving webhooks\" section show how).",
            describe(mis_signed)
        ),
        ReceiverVerdict::RejectsValidSignatures => format!(
            "The endpoint refused the correctly signed request ({}). Check that it uses this webhook's current secret \
             (GET /v1/webhooks/{{id}}/secret), that it computes the HMAC over the raw request body (or JSON.stringify of the parsed \
             body, which gives the same bytes), and that it answers 2xx to this event type.",
            describe(signed)
        ),
        ReceiverVerdict::Unreachable => {
            let failed = if signed.status_code.is_none() {
                signed
            } else {
                mis_signed
            };
            format!(
                "No HTTP answer from the endpoint ({}), so its signature checking can't be judged. \
                 Check that the URL is right, publicly reachable, and answers within the timeout.",
                describe(failed)
            )
        }
    }
}

impl Hookline {
    /// Sends a mis-signed and then a correctly signed test request to a saved webhook's endpoint
    /// and judges from the answers whether the receiver verifies signatures. Nothing is stored.
    pub async fn verify_receiver(
        &self,
        who: &Principal,
        id: WebhookId,
        input: HandshakeInput,
    ) -> Result<HandshakeView> {
        who.require(super::access::Capability::Resend)?;
        let webhook = self.load_webhook(who, id).await?;
        let event = self.test_event(
            who,
            &webhook.events,
            webhook.format,
            input.event_type.as_deref(),
        )?;
        let tenant = self.tenant_name(who).await;
        // The handshake's requests are messages of their own, never stored.
        let handshake_id = DeliveryId::new();
        let target = attempt::Target {
            webhook: &webhook,
            event: &event,
            tenant_name: &tenant,
            delivery_id: handshake_id,
            message_id: handshake_id,
            item_index: None,
            format: webhook.format,
            attempt_number: 1,
        };
        let wrong_secret = signing::generate_webhook_secret();
        let wrong = SigningKeys {
            current: &wrong_secret,
            previous: None,
        };
        let mis_signed =
            attempt::attempt_signed_with(&self.sender, &self.config, target, Some(wrong)).await;
        let signed = attempt::attempt(&self.sender, &self.config, target).await;
        let verdict = judge(&signed.attempt, &mis_signed.attempt);
        let advice = advice(verdict, &signed.attempt, &mis_signed.attempt);
        let delivery_id = target.delivery_id.into();
        Ok(HandshakeView {
            verdict,
            event_type: event.event_type,
            delivery_id,
            signed: signed.attempt.into(),
            mis_signed: mis_signed.attempt.into(),
            advice,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::time;

    fn answered(status: Option<u16>) -> Attempt {
        Attempt {
            id: Default::default(),
            delivery_id: DeliveryId::default(),
            attempt_number: 1,
            started_at: time::now(),
            url: "https://hooks.example.com/x".into(),
            status_code: status,
            error_kind: status.is_none().then(|| "connect".to_string()),
            error_message: status.is_none().then(|| "connection refused".to_string()),
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            ttfb_ms: None,
            total_ms: 1.0,
            request_headers: vec![],
            response_headers: vec![],
            response_body: None,
            response_truncated: false,
        }
    }

    #[test]
    fn verdicts() {
        use ReceiverVerdict::*;
        for (signed, mis, want) in [
            (Some(200), Some(401), VerifiesSignatures),
            (Some(204), Some(403), VerifiesSignatures),
            (Some(200), Some(500), VerifiesSignatures),
            (Some(200), Some(200), AcceptsBadSignatures),
            (Some(202), Some(299), AcceptsBadSignatures),
            (Some(401), Some(401), RejectsValidSignatures),
            (Some(500), Some(200), RejectsValidSignatures),
            (Some(301), Some(401), RejectsValidSignatures),
            (None, Some(401), Unreachable),
            (Some(200), None, Unreachable),
            (None, None, Unreachable),
        ] {
            let (s, m) = (answered(signed), answered(mis));
            assert_eq!(judge(&s, &m), want, "{signed:?} {mis:?}");
            assert!(!advice(want, &s, &m).is_empty());
        }
        let a = advice(
            VerifiesSignatures,
            &answered(Some(200)),
            &answered(Some(500)),
        );
        assert!(a.contains("401 or 403"), "{a}");
        let a = advice(Unreachable, &answered(None), &answered(None));
        assert!(a.contains("connect: connection refused"), "{a}");
    }
}
