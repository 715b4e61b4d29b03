//! One attempt, start to finish: render the delivery in its format, sign it, send it through the
//! SSRF-checking sender, classify the outcome and compute the delivery's next state.
//!
//! The dispatcher, synchronous test sends and the verification handshake all call [`attempt`], so
//! every request Hookline makes follows exactly the same rules. See ARCHITECTURE.md, "The path of an
//! event".

use crate::config::Config;
use crate::sender::{ErrorKind, OutboundRequest, SendResult, Sender, SenderConfig};
use hookline_core::formats::{self, EventFields, SigningKeys};
use hookline_core::ids::{AttemptId, DeliveryId};
use hookline_core::retry::{self, Next, Verdict};
use hookline_core::time::{self, Timestamp};
use hookline_core::webhook::Format;
use hookline_store::{Attempt, Event, NextState, Webhook};
use std::time::Duration;
use tracing::Instrument;

/// Outcome of one attempt, before it is recorded.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    pub verdict: Verdict,
    pub retry_after: Option<Duration>,
}

/// Builds the sender the configuration describes.
pub fn sender_for(config: &Config) -> anyhow::Result<Sender> {
    let extra_ca_pem =
        match &config.extra_ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("extra_ca_cert: can't read {}: {e}", path.display())
            })?),
            None => None,
        };
    Sender::new(SenderConfig {
        policy: config.url_policy.clone(),
        timeout: config.timeout,
        body_cap: config.response_body_cap,
        extra_ca_pem,
        user_agent: format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
        // Many webhooks may share one host: keep enough idle connections for all of them.
        max_idle_per_host: config.max_inflight.max(8),
    })
    .map_err(|e| anyhow::anyhow!("sender: {e}"))
}

/// The body of one delivery of `event` in `format`, byte for byte as it is sent (rendering is a pure
/// function of the stored event and the delivery's `message_id`, so the log can show it again later).
pub fn render_body(
    event: &Event,
    tenant_name: &str,
    format: Format,
    message_id: DeliveryId,
    item_index: Option<u32>,
) -> Vec<u8> {
    let fields = EventFields {
        id: event.id,
        event_type: &event.event_type,
        occurred_at: event.occurred_at,
        source: event.source.as_deref(),
        source_id: event.source_id.as_deref(),
        actor_id: event.actor_id.as_deref(),
        tenant: tenant_name,
        entity_id: event.entity_id.as_deref(),
        data: &event.data,
        changes: event.changes.as_ref(),
        batch: event.batch.as_ref(),
    };
    formats::render_body(format, &fields, message_id, item_index.map(|i| i as usize))
}

/// One attempt to make: which delivery of which event to which webhook.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub webhook: &'a Webhook,
    pub event: &'a Event,
    pub tenant_name: &'a str,
    /// The log record this attempt belongs to (the attempt row, spans and logs name it).
    pub delivery_id: DeliveryId,
    /// What the receiver sees as the delivery's id, rendered and signed: the first delivery of a
    /// chain of resends and replays (`Delivery::message_id`), so retries, resends and replays of
    /// one event to one webhook all carry the same id.
    pub message_id: DeliveryId,
    pub item_index: Option<u32>,
    /// How to render: the delivery's own format (fixed when it was made), not the webhook's now.
    pub format: Format,
    pub attempt_number: u32,
}

/// Renders, signs and sends one attempt; shared by the dispatcher and synchronous test sends so
/// both follow exactly the same rules.
pub async fn attempt(sender: &Sender, config: &Config, target: Target<'_>) -> AttemptOutcome {
    attempt_signed_with(sender, config, target, None).await
}

/// [`attempt`], signed with `keys` instead of the webhook's own secrets when given: the
/// verification handshake's deliberately mis-signed request. Rendering, headers and sending are
/// the same code path as every real delivery.
pub async fn attempt_signed_with(
    sender: &Sender,
    config: &Config,
    target: Target<'_>,
    keys: Option<SigningKeys<'_>>,
) -> AttemptOutcome {
    let Target {
        webhook,
        event,
        tenant_name,
        delivery_id,
        message_id,
        item_index,
        format,
        attempt_number,
    } = target;
    let span = crate::telemetry::attempt_span(
        delivery_id,
        webhook.id,
        event.id,
        &event.event_type,
        attempt_number,
    );
    let body = render_body(event, tenant_name, format, message_id, item_index);
    let started_at = time::now();
    let previous = match (&webhook.previous_secret, webhook.previous_secret_expires_at) {
        (Some(p), Some(until)) if until > started_at => Some(p.expose()),
        _ => None,
    };
    let keys = keys.unwrap_or(SigningKeys {
        current: webhook.secret.expose(),
        previous,
    });
    let meta = formats::AttemptMeta {
        brand: &config.brand,
        format,
        event_type: &event.event_type,
        message_id,
        attempt_time: started_at,
    };
    let mut headers = formats::delivery_headers(meta, keys, &body, &webhook.headers);
    headers.push((
        "User-Agent".into(),
        format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
    ));
    // With traces exported, the receiver's own spans can join this attempt's trace.
    if config.otel_endpoint.is_some() {
        if let Some(traceparent) = crate::telemetry::traceparent(&span) {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("traceparent"));
            headers.push(("traceparent".into(), traceparent));
        }
    }
    let logged_headers = formats::loggable_headers(&headers, &webhook.headers);
    let result = sender
        .send(OutboundRequest {
            url: webhook.url.clone(),
            headers,
            body: body.into(),
        })
        .instrument(span.clone())
        .await;
    let o = outcome(
        delivery_id,
        attempt_number,
        started_at,
        &webhook.url,
        logged_headers,
        result,
    );
    crate::telemetry::attempt_finished(&span, o.verdict, &o.attempt);
    o
}

fn outcome(
    delivery_id: DeliveryId,
    attempt_number: u32,
    started_at: Timestamp,
    url: &str,
    request_headers: Vec<(String, String)>,
    r: SendResult,
) -> AttemptOutcome {
    let verdict = match (&r.error, r.status_code) {
        // The URL policy refused the destination: no retry will change that.
        (Some((ErrorKind::BlockedDestination | ErrorKind::InvalidUrl, _)), _) => Verdict::Failed,
        (Some(_), _) => Verdict::Retry,
        (None, Some(code)) => retry::classify_status(code),
        (None, None) => Verdict::Retry,
    };
    // Retry-After matters only where the receiver asks us to slow down.
    let retry_after = r
        .retry_after
        .filter(|_| matches!(r.status_code, Some(429) | Some(503)));
    AttemptOutcome {
        attempt: Attempt {
            id: AttemptId::new(),
            delivery_id,
            attempt_number,
            started_at,
            url: url.to_string(),
            status_code: r.status_code,
            error_kind: r.error.as_ref().map(|(k, _)| k.as_str().to_string()),
            error_message: r.error.map(|(_, m)| m),
            dns_ms: r.timings.dns_ms,
            connect_ms: r.timings.connect_ms,
            tls_ms: r.timings.tls_ms,
            ttfb_ms: r.timings.ttfb_ms,
            total_ms: r.timings.total_ms,
            request_headers,
            response_headers: r.response_headers,
            response_body: (r.status_code.is_some()).then_some(r.response_body),
            response_truncated: r.response_truncated,
        },
        verdict,
        retry_after,
    }
}

/// A uniform random number in `[0, 1)` for the retry jitter. Jitter only spreads load, so if the
/// operating system's generator ever fails, the middle of the band (the exact delay) is used
/// rather than failing the attempt's bookkeeping.
fn uniform_draw() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        // The top 53 bits fill an f64's mantissa exactly.
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// What state a delivery moves to after an attempt, by the webhook's (or the default) schedule,
/// with the deployment's jitter applied to the delay.
pub fn next_state(config: &Config, webhook: &Webhook, o: &AttemptOutcome) -> NextState {
    let schedule = webhook
        .retry_schedule
        .as_ref()
        .unwrap_or(&config.retry_schedule);
    match retry::next_step(
        o.verdict,
        o.attempt.attempt_number as usize,
        schedule,
        o.retry_after,
        config.retry_after_cap,
        config.retry_jitter,
        uniform_draw(),
    ) {
        Next::Delivered => NextState::Delivered,
        Next::Failed => NextState::Failed,
        Next::RetryIn(d) => NextState::RetryAfter(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_draws_are_uniform_numbers_below_one_and_vary() {
        let draws: Vec<f64> = (0..200).map(|_| uniform_draw()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)), "{draws:?}");
        // 200 draws of 53 random bits: equal ones would mean the generator isn't being used.
        let mut bits: Vec<u64> = draws.iter().map(|d| d.to_bits()).collect();
        bits.sort_unstable();
        bits.dedup();
        assert_eq!(bits.len(), 200);
    }
}
