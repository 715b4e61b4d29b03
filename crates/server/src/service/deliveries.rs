//! The delivery log, resend, replay and test sends.

use super::access::Capability;
use super::access::Principal;
use super::handle::Hookline;
use super::request::Idempotency;
use crate::attempt::{self, AttemptOutcome};
use crate::error::{Error, Result};
use hookline_core::ids::{DeliveryId, EventId, WebhookId};
use hookline_core::retry::Verdict;
use hookline_core::signing::WebhookSecret;
use hookline_core::url_policy::WebhookUrl;
use hookline_core::webhook::{Format, Ordering as DeliveryOrdering};
use hookline_core::{catalog, signing, time};
use hookline_store::{
    Attempt, CancelOutcome, Delivery, DeliveryFilter, DeliveryStatus, Event, Page, ReplayFilter,
    Webhook,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A delivery as the log shows it.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct DeliveryView {
    /// This log record: one per delivery, resend and replay (what `/v1/deliveries/{id}`, resend
    /// and the attempts are keyed on). Not what the receiver sees: see `message_id`.
    pub id: Uuid,
    /// The id the receiver sees and deduplicates on (`X-{Brand}-Delivery-ID`, `webhook-id`, the
    /// envelope's `event_id`): the same for the first delivery of an event to a webhook and for
    /// every retry, resend and replay of it (the `id` of the first delivery of the chain; equal to
    /// `id` on a delivery that is no resend or replay).
    pub message_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub url: String,
    /// pending | delivering | retrying | delivered | failed | cancelled
    pub status: String,
    /// Why it was cancelled (status `cancelled` only): `webhook_deleted`, `webhook_disabled`,
    /// `endpoint_gone` (the receiver answered 410 Gone) or `manual`.
    pub cancel_reason: Option<String>,
    pub attempt_count: u32,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// Set on resends and replays: the log record this one repeats (its `message_id` is the same).
    pub resent_from: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id.into(),
            message_id: d.message_id.into(),
            webhook_id: d.webhook_id.into(),
            event_id: d.event_id.into(),
            event_type: d.event_type,
            url: d.url,
            status: d.status.as_str().into(),
            cancel_reason: d.cancel_reason.map(|r| r.as_str().into()),
            attempt_count: d.attempt_count,
            next_attempt_at: d.next_attempt_at.as_ref().map(time::format),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            resent_from: d.resent_from.map(Into::into),
            created_at: time::format(&d.created_at),
            updated_at: time::format(&d.updated_at),
        }
    }
}

/// One finished attempt.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct AttemptView {
    pub attempt_number: u32,
    pub started_at: String,
    pub url: String,
    pub status_code: Option<u16>,
    /// timeout | dns | connect | tls | blocked_destination | invalid_url | protocol
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub total_ms: f64,
    /// Sent headers: signatures shown, credentials redacted.
    pub request_headers: BTreeMap<String, String>,
    pub response_headers: BTreeMap<String, String>,
    /// At most 4096 bytes.
    pub response_body: Option<String>,
    pub response_truncated: bool,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        AttemptView {
            attempt_number: a.attempt_number,
            started_at: time::format(&a.started_at),
            url: a.url,
            status_code: a.status_code,
            error_kind: a.error_kind,
            error_message: a.error_message,
            dns_ms: a.dns_ms,
            connect_ms: a.connect_ms,
            tls_ms: a.tls_ms,
            ttfb_ms: a.ttfb_ms,
            total_ms: a.total_ms,
            request_headers: a.request_headers.into_iter().collect(),
            response_headers: a.response_headers.into_iter().collect(),
            response_body: a.response_body,
            response_truncated: a.response_truncated,
        }
    }
}

#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
}

/// Filters of `GET /v1/deliveries` as given (strings are validated here).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeliveryQuery {
    pub webhook_id: Option<String>,
    pub status: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub search: Option<String>,
}

fn query_error(field: &str, message: impl Into<String>) -> Error {
    Error::bad_request("invalid_query", message, Some(field))
}

fn parse_status(field: &str, s: &str) -> Result<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| {
        Error::invalid(
            field,
            "invalid",
            format!("status `{s}` is not one of pending, delivering, retrying, delivered, failed"),
        )
    })
}

impl DeliveryQuery {
    fn filter(self) -> Result<DeliveryFilter> {
        // Single-line text, whichever interface the filters came through (the console's form,
        // MCP's searchTerm): PostgreSQL refuses a NUL in a query parameter.
        for (name, value) in [
            ("webhook_id", &self.webhook_id),
            ("status", &self.status),
            ("event_type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
            ("search", &self.search),
        ] {
            if let Some(v) = value {
                hookline_core::text::check_line(name, v)
                    .map_err(|e| query_error(name, e.message))?;
            }
        }
        let ts = |field: &str, v: Option<String>| {
            v.filter(|s| !s.is_empty())
                .map(|s| {
                    time::parse(&s).ok_or_else(|| {
                        query_error(field, format!("{field} must be an RFC 3339 timestamp"))
                    })
                })
                .transpose()
        };
        Ok(DeliveryFilter {
            webhook_id: self
                .webhook_id
                .filter(|s| !s.is_empty())
                .map(|s| {
                    WebhookId::parse(&s)
                        .ok_or_else(|| query_error("webhook_id", "webhook_id must be a UUID"))
                })
                .transpose()?,
            status: self
                .status
                .filter(|s| !s.is_empty())
                .map(|s| {
                    DeliveryStatus::parse(&s)
                        .ok_or_else(|| query_error("status", format!("unknown status `{s}`")))
                })
                .transpose()?,
            event_type: self
                .event_type
                .filter(|s| !s.is_empty())
                .map(|s| {
                    catalog::event_name(&s).ok_or_else(|| {
                        query_error("event_type", format!("unknown event type `{s}`"))
                    })
                })
                .transpose()?,
            since: ts("since", self.since)?,
            until: ts("until", self.until)?,
            search: self
                .search
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string()),
            ..DeliveryFilter::default()
        })
    }
}

/// Body of `POST /v1/webhooks/{id}/replay`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    /// Replay deliveries created at or after this time (RFC 3339).
    pub since: String,
    /// ... and before this time.
    pub until: Option<String>,
    /// Which statuses to replay: one or a list; default `failed`.
    #[schema(value_type = Option<Vec<String>>)]
    pub status: Option<serde_json::Value>,
    /// Only count what would be replayed.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct ReplayView {
    /// Deliveries the replay makes (or, with dry_run, would make).
    pub count: u64,
    pub dry_run: bool,
    /// The background job making them (none for a dry run, or when nothing matches): follow it at
    /// `GET /v1/jobs/{id}`.
    pub job: Option<super::jobs::JobView>,
}

/// Body of `POST /v1/webhooks/test` (a URL not saved yet) and optional body of
/// `POST /v1/webhooks/{id}/test`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// Required for an unsaved URL.
    pub url: Option<String>,
    pub format: Option<String>,
    /// Secret to sign with; generated (and returned) for an unsaved URL when absent.
    pub secret: Option<String>,
    /// Which event to simulate; default: the first one the webhook subscribes to.
    pub event_type: Option<String>,
}

/// The synchronous result of a test send.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct TestView {
    /// True when the receiver answered 2xx.
    pub success: bool,
    /// The test delivery in the log (saved webhooks only).
    pub delivery_id: Option<Uuid>,
    pub event_type: String,
    pub attempt: AttemptView,
    /// The secret the test was signed with, for an unsaved URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Hookline {
    pub async fn list_deliveries(
        &self,
        who: &Principal,
        q: DeliveryQuery,
        page: Page,
    ) -> Result<Vec<DeliveryView>> {
        who.require(Capability::View)?;
        let mut filter = q.filter()?;
        if let Some(id) = filter.webhook_id {
            if !who.sees_webhook(id) {
                return Ok(Vec::new());
            }
        }
        filter.webhook_ids = who.webhook_limit();
        let rows = self
            .store
            .list_deliveries(who.tenant_id, filter, page)
            .await?;
        Ok(rows.into_iter().map(DeliveryView::from).collect())
    }

    pub async fn get_delivery(&self, who: &Principal, id: DeliveryId) -> Result<DeliveryDetail> {
        let (d, attempts) = self.load_delivery(who, id).await?;
        Ok(DeliveryDetail {
            delivery: d.into(),
            attempts: attempts.into_iter().map(AttemptView::from).collect(),
        })
    }

    /// The caller's delivery with its attempts, or 404 (another tenant's, or outside a portal's
    /// webhooks).
    pub(crate) async fn load_delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        who.require(Capability::View)?;
        self.store
            .get_delivery(who.tenant_id, id)
            .await?
            .filter(|(d, _)| who.sees_webhook(d.webhook_id))
            .ok_or_else(|| Error::not_found("delivery"))
    }

    /// The body of a delivery exactly as it is (or was) sent: rendering is a pure function of the
    /// stored event, the delivery's format and receiver-facing id (`message_id`).
    pub async fn delivery_body(&self, who: &Principal, id: DeliveryId) -> Result<String> {
        let (d, _) = self.load_delivery(who, id).await?;
        let event = self
            .store
            .get_event(who.tenant_id, d.event_id)
            .await?
            .ok_or_else(|| Error::not_found("event"))?;
        let tenant = self.tenant_name(who).await;
        let body = attempt::render_body(&event, &tenant, d.format, d.message_id, d.item_index);
        String::from_utf8(body).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The resends and replays of a delivery (newest first): the log links them both ways.
    pub async fn resends_of(&self, who: &Principal, id: DeliveryId) -> Result<Vec<DeliveryView>> {
        who.require(Capability::View)?;
        let rows = self.store.resends_of(who.tenant_id, id).await?;
        Ok(rows
            .into_iter()
            .filter(|d| who.sees_webhook(d.webhook_id))
            .map(DeliveryView::from)
            .collect())
    }

    /// [`Hookline::resend`] with an `Idempotency-Key` (`idempotency.rs`): the same key for the
    /// same delivery answers the delivery it made, as it is now (and `true`: a replay).
    pub async fn resend_once(
        &self,
        who: &Principal,
        id: DeliveryId,
        idempotency_key: Option<&str>,
    ) -> Result<(DeliveryView, bool)> {
        let Some(key) = Idempotency::for_request(idempotency_key, "resend", &Uuid::from(id))?
        else {
            return Ok((self.resend(who, id).await?, false));
        };
        let (this, who2) = (self.clone(), who.clone());
        let (made, replayed) = self
            .once(who, Some(key), move || async move {
                Ok(this.resend(&who2, id).await?.id)
            })
            .await?;
        let (d, _) = self.load_delivery(who, DeliveryId::from(made)).await?;
        Ok((d.into(), replayed))
    }

    /// A new delivery of the same event to the same webhook; the original is left as it was. The
    /// log of a deleted webhook stays readable, but nothing more is sent to it: 409.
    pub async fn resend(&self, who: &Principal, id: DeliveryId) -> Result<DeliveryView> {
        who.require(Capability::Resend)?;
        let (d, _) = self.load_delivery(who, id).await?;
        if self
            .store
            .get_webhook(who.tenant_id, d.webhook_id)
            .await?
            .is_none()
        {
            return Err(Error::Conflict {
                code: "webhook_deleted",
                message: "this delivery's webhook was deleted; its log stays readable, but nothing more is sent to it".into(),
            });
        }
        let new_id = self
            .store
            .resend(who.tenant_id, id)
            .await?
            .ok_or_else(|| Error::not_found("delivery"))?;
        self.notify_new_work();
        let (d, _) = self
            .store
            .get_delivery(who.tenant_id, new_id)
            .await?
            .ok_or_else(|| Error::Internal("resent delivery vanished".into()))?;
        Ok(d.into())
    }

    /// Cancels one queued (pending or retrying) delivery: it ends `cancelled` with reason `manual`
    /// and is never sent again (a resend or replay makes a new one). 409 `not_cancellable` when it
    /// is being delivered right now or already finished.
    pub async fn cancel_delivery(&self, who: &Principal, id: DeliveryId) -> Result<DeliveryView> {
        who.require(Capability::Resend)?;
        if who.is_portal() {
            self.load_delivery(who, id).await?;
        }
        match self.store.cancel_delivery(who.tenant_id, id).await? {
            CancelOutcome::Cancelled(d) => Ok((*d).into()),
            CancelOutcome::NotQueued(status) => Err(Error::Conflict {
                code: "not_cancellable",
                message: format!(
                    "only a pending or retrying delivery can be cancelled; this one is {}",
                    status.as_str()
                ),
            }),
            CancelOutcome::NotFound => Err(Error::not_found("delivery")),
        }
    }

    /// [`Hookline::replay`] with an `Idempotency-Key` (`idempotency.rs`): the same key with the same
    /// webhook and body answers the first count again (and `true`: a replay), making nothing new.
    pub async fn replay_once(
        &self,
        who: &Principal,
        webhook_id: WebhookId,
        input: ReplayInput,
        idempotency_key: Option<&str>,
    ) -> Result<(ReplayView, bool)> {
        let request = serde_json::json!({"webhook_id": Uuid::from(webhook_id), "body": &input});
        let key = Idempotency::for_request(idempotency_key, "replay", &request)?;
        let (this, who2) = (self.clone(), who.clone());
        self.once(who, key, move || async move {
            this.replay(&who2, webhook_id, input).await
        })
        .await
    }

    pub async fn replay(
        &self,
        who: &Principal,
        webhook_id: WebhookId,
        input: ReplayInput,
    ) -> Result<ReplayView> {
        who.require(Capability::Resend)?;
        self.load_webhook(who, webhook_id).await?;
        let since = time::parse(&input.since).ok_or_else(|| {
            Error::invalid("since", "invalid", "since must be an RFC 3339 timestamp")
        })?;
        let until = input
            .until
            .as_deref()
            .map(|u| {
                time::parse(u).ok_or_else(|| {
                    Error::invalid("until", "invalid", "until must be an RFC 3339 timestamp")
                })
            })
            .transpose()?;
        if until.is_some_and(|u| u <= since) {
            return Err(Error::invalid(
                "until",
                "invalid",
                "until must be after since",
            ));
        }
        let statuses = match &input.status {
            None => vec![DeliveryStatus::Failed],
            Some(serde_json::Value::String(s)) => vec![parse_status("status", s)?],
            Some(serde_json::Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let field = format!("status[{i}]");
                    v.as_str()
                        .ok_or_else(|| {
                            Error::invalid(&field, "invalid_type", "expected a status string")
                        })
                        .and_then(|s| parse_status(&field, s))
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::invalid(
                    "status",
                    "invalid",
                    "status must be a status or a non-empty list of them",
                ))
            }
        };
        // Only what exists now is replayed (a job never replays its own copies), so the count is
        // the job's total. The copies are made by the job runner in short steps.
        let until = Some(until.map_or_else(time::now, |u| u.min(time::now())));
        let filter = ReplayFilter {
            since,
            until,
            statuses,
        };
        let count = self
            .store
            .replay(who.tenant_id, webhook_id, filter.clone(), true)
            .await?;
        let job = if input.dry_run || count == 0 {
            None
        } else {
            Some(self.queue_replay(who, webhook_id, filter, count).await?)
        };
        Ok(ReplayView {
            count,
            dry_run: input.dry_run,
            job,
        })
    }

    pub(super) fn test_event(
        &self,
        who: &Principal,
        patterns: &[String],
        format: Format,
        requested: Option<&str>,
    ) -> Result<Event> {
        let event_type = match requested {
            Some(t) => catalog::event_name(t).ok_or_else(|| {
                Error::invalid(
                    "event_type",
                    "unknown_event_type",
                    format!("`{t}` is not an event type"),
                )
            })?,
            None => catalog::first_match(patterns).to_string(),
        };
        if !format.carries(&event_type) {
            return Err(Error::invalid(
                "event_type",
                "unsupported_by_format",
                format!("the {} format can't carry {event_type}", format.as_str()),
            ));
        }
        let data = catalog::sample_data(&event_type);
        let now = time::now();
        Ok(Event {
            id: EventId::new(),
            tenant_id: who.tenant_id,
            entity_type: catalog::lookup(&event_type).map(|e| e.subject.to_string()),
            entity_id: data.get("id").and_then(|v| v.as_str()).map(str::to_string),
            event_type,
            occurred_at: now,
            source: Some("test".into()),
            source_id: None,
            actor_id: who.default_user_id.clone(),
            data,
            changes: None,
            batch: None,
            created_at: now,
        })
    }

    pub async fn tenant_name(&self, who: &Principal) -> String {
        // Only the bootstrap/CLI path creates tenants; the name is immutable, so this is cheap enough.
        self.store
            .tenant_name(who.tenant_id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| who.tenant_id.to_string())
    }

    /// Sends a sample event (`source = test`) to a saved webhook now and answers with the attempt.
    /// The test delivery is recorded in the log; it is never retried automatically.
    pub async fn test_webhook(
        &self,
        who: &Principal,
        id: WebhookId,
        input: TestInput,
    ) -> Result<TestView> {
        who.require(Capability::Resend)?;
        if input.url.is_some() || input.secret.is_some() || input.format.is_some() {
            return Err(Error::invalid(
                "url",
                "not_allowed",
                "a saved webhook is tested with its own url, format and secret; only event_type may be given",
            ));
        }
        let webhook = self.load_webhook(who, id).await?;
        let event = self.test_event(
            who,
            &webhook.events,
            webhook.format,
            input.event_type.as_deref(),
        )?;
        // Sent first, stored after: nothing claimable exists while the request is in flight, so a
        // test is never picked up and retried by a worker, even if this request is abandoned.
        let delivery_id = DeliveryId::new();
        let tenant = self.tenant_name(who).await;
        let target = attempt::Target {
            webhook: &webhook,
            event: &event,
            tenant_name: &tenant,
            delivery_id,
            // A test send is a message of its own.
            message_id: delivery_id,
            item_index: None,
            format: webhook.format,
            attempt_number: 1,
        };
        let o = attempt::attempt(&self.sender, &self.config, target).await;
        let status = if o.verdict == Verdict::Delivered {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Failed
        };
        self.store
            .insert_finished_delivery(
                event.clone(),
                webhook.id,
                webhook.format,
                o.attempt.clone(),
                status,
            )
            .await?;
        Ok(test_view(o, Some(delivery_id), event.event_type, None))
    }

    /// Sends a sample event to a URL that isn't saved yet; nothing is stored.
    pub async fn test_url(&self, who: &Principal, input: TestInput) -> Result<TestView> {
        who.require(Capability::Resend)?;
        let url = input
            .url
            .as_deref()
            .ok_or_else(|| Error::invalid("url", "required", "url is required"))?;
        let url =
            WebhookUrl::parse(url, &self.config.url_policy).map_err(super::webhooks::url_error)?;
        let format = match &input.format {
            Some(f) => Format::parse(f).ok_or_else(|| {
                Error::invalid(
                    "format",
                    "invalid",
                    format!("format `{f}` is not one of envelope, flat, entity, contacts-list"),
                )
            })?,
            None => Format::default(),
        };
        let secret = match &input.secret {
            Some(s) => hookline_core::webhook::validate_secret(s)?,
            None => signing::generate_webhook_secret(),
        };
        let event =
            self.test_event(who, &["*".to_string()], format, input.event_type.as_deref())?;
        let now = time::now();
        let webhook = Webhook {
            id: WebhookId::default(),
            tenant_id: who.tenant_id,
            name: "test".into(),
            description: String::new(),
            url: url.as_str().to_string(),
            events: vec![event.event_type.clone()],
            secret: WebhookSecret::new(secret.clone()),
            previous_secret: None,
            previous_secret_expires_at: None,
            enabled: true,
            disabled_reason: None,
            format,
            headers: BTreeMap::new(),
            retry_schedule: None,
            rate_limit: None,
            ordering: DeliveryOrdering::None,
            consecutive_failures: 0,
            failing_since: None,
            created_at: now,
            updated_at: now,
            last_attempt_at: None,
            filter: None,
        };
        let tenant = self.tenant_name(who).await;
        // Never stored: one id names the attempt and the message.
        let test_id = DeliveryId::new();
        let target = attempt::Target {
            webhook: &webhook,
            event: &event,
            tenant_name: &tenant,
            delivery_id: test_id,
            message_id: test_id,
            item_index: None,
            format: webhook.format,
            attempt_number: 1,
        };
        let o = attempt::attempt(&self.sender, &self.config, target).await;
        Ok(test_view(o, None, event.event_type, Some(secret)))
    }
}

fn test_view(
    o: AttemptOutcome,
    delivery_id: Option<DeliveryId>,
    event_type: String,
    secret: Option<String>,
) -> TestView {
    TestView {
        success: o.verdict == Verdict::Delivered,
        delivery_id: delivery_id.map(Into::into),
        event_type,
        attempt: o.attempt.into(),
        secret,
    }
}
