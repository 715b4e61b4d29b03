//! Webhook management: create, read, update, delete, secret rotation, and payload filters (checked
//! here when saved, tried out by `test_filter`; evaluated at fan-out by `store/src/fanout.rs`).

use super::access::Capability;
use super::access::Principal;
use super::handle::Hookline;
use super::request::Idempotency;
use crate::error::{Error, Result};
use hookline_core::filter::Filter;
use hookline_core::formats;
use hookline_core::ids::WebhookId;
use hookline_core::retry::RetrySchedule;
use hookline_core::signing::{self, WebhookSecret};
use hookline_core::time;
use hookline_core::url_policy::WebhookUrl;
use hookline_core::webhook::{self as rules, FieldError, Format, Ordering};
use hookline_store::{Page, Webhook, WebhookFilter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in a PATCH.
fn explicit<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /v1/webhooks` and `PATCH /v1/webhooks/{id}`. On create, `url` and `events` are
/// required; on update every field is optional and only the given ones change. (Serialized only to
/// fingerprint a create for its `Idempotency-Key`.)
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Display name; defaults to the URL's host.
    pub name: Option<String>,
    pub description: Option<String>,
    /// HTTPS endpoint (http:// only where the deployment allows it).
    pub url: Option<String>,
    /// Event names or patterns in any format's spelling: `contact.created`, `contacts.created`,
    /// `ContactCreated`, `contact.*`, `*`.
    pub events: Option<Vec<String>>,
    /// Signing secret; generated (`whsec_…`) when absent. Create only: use rotate-secret to change it.
    pub secret: Option<String>,
    /// Whether deliveries are made (`is_active` is accepted too).
    #[serde(alias = "is_active")]
    pub enabled: Option<bool>,
    /// `envelope` (default), `flat`, `entity` or `contacts-list`.
    pub format: Option<String>,
    /// Extra headers sent with every delivery. On update the given map replaces the stored one (an
    /// absent `headers` keeps them); a value sent back exactly as the API shows it (masked, e.g.
    /// `Bear…en`) keeps the stored value of that header.
    pub headers: Option<BTreeMap<String, String>>,
    /// Delays before each retry: seconds or strings like "30s", "6m", "2h"; an item
    /// "exp:30s..1h x8" expands to 8 delays doubling from 30s, capped at 1h (stored and shown
    /// expanded); `[]` = never retry; `null` = the deployment default.
    #[serde(
        default,
        deserialize_with = "explicit",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<Value>>)]
    pub retry_schedule: Option<Option<Value>>,
    /// Deliveries per second at most; `null` = unlimited.
    #[serde(
        default,
        deserialize_with = "explicit",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Option<Option<u32>>,
    /// `none` (default) or `entity`: events of one entity arrive in order.
    pub ordering: Option<String>,
    /// A condition on the payload (see "Filters" in the README): only events it matches create a
    /// delivery, e.g. `"vip" in data.tags[*].name`. `null` = every subscribed event.
    #[serde(
        default,
        deserialize_with = "explicit",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = "data.amount >= 1000")]
    pub filter: Option<Option<String>>,
}

/// A webhook as the API shows it. The secret appears only in the create response.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why Hookline disabled it, when it did.
    pub disabled_reason: Option<String>,
    #[schema(value_type = String, example = "envelope")]
    #[schemars(with = "String")]
    pub format: Format,
    /// Custom headers, their values masked (`Bear…en`; `••••••••` when short): stored encrypted and
    /// never shown again once set.
    pub headers: BTreeMap<String, String>,
    /// `null` when the deployment default applies.
    #[schema(value_type = Option<Vec<String>>)]
    pub retry_schedule: Option<Value>,
    pub rate_limit: Option<u32>,
    #[schema(value_type = String, example = "none")]
    #[schemars(with = "String")]
    pub ordering: Ordering,
    /// The payload filter; `null` when every subscribed event is delivered.
    pub filter: Option<String>,
    /// While a rotated-out secret still signs: when it stops.
    pub previous_secret_expires_at: Option<String>,
    /// When its last attempt was recorded, if ever.
    pub last_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    fn from(w: &Webhook, with_secret: bool) -> Self {
        WebhookView {
            id: w.id.into(),
            name: w.name.clone(),
            description: w.description.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            format: w.format,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), formats::mask_header_value(v)))
                .collect(),
            retry_schedule: w.retry_schedule.as_ref().map(RetrySchedule::to_json),
            rate_limit: w.rate_limit,
            ordering: w.ordering,
            filter: w.filter.clone(),
            previous_secret_expires_at: live_previous(w).map(|(_, t)| time::format(&t)),
            last_attempt_at: w.last_attempt_at.as_ref().map(time::format),
            created_at: time::format(&w.created_at),
            updated_at: time::format(&w.updated_at),
            secret: with_secret.then(|| w.secret.expose().to_string()),
        }
    }
}

/// Body of `POST /v1/webhooks/{id}/rotate-secret` (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// The new secret; generated when absent.
    pub secret: Option<String>,
    /// How long the old secret keeps signing beside the new one, e.g. "24h" (default), "0s" to stop at once.
    pub grace_period: Option<String>,
}

/// The signing secret of a webhook.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct SecretView {
    pub secret: String,
    /// When the previous secret stops signing, while a rotation is in its grace period.
    pub previous_secret_expires_at: Option<String>,
}

/// Body of `POST /v1/webhooks/filter-test`: a filter and an event to try it on.
#[derive(Debug, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTestInput {
    /// The filter's source, as it would be saved on a webhook.
    pub filter: String,
    /// The event as a filter sees it: `{"type": "deal.updated", "data": {...}, "changes": {...},
    /// "source", "source_id", "actor", "entity_type", "entity_id", "occurred_at", "id"}`; absent
    /// keys read as `null`.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// How a filter evaluated on an event.
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct FilterTestView {
    /// Whether the event would create a delivery: the value is exactly `true`.
    pub matches: bool,
    /// The filter's final value (`null` when it ran out of steps).
    #[schema(value_type = Object)]
    pub value: Value,
    /// Evaluation steps taken (at most 10000).
    pub steps: usize,
    /// The evaluation ran out of steps: it does not match.
    pub exhausted: bool,
}

/// A filter's source checked as stored text and parsed; a refusal names the field `filter` and
/// the position (`filter: at position 12: ...`).
pub(crate) fn check_filter(src: &str) -> Result<Filter> {
    hookline_core::text::check_multiline("filter", src)?;
    Filter::parse(src)
        .map_err(|e| Error::invalid("filter", "invalid_filter", format!("filter: {e}")))
}

/// The rotated-out secret and its expiry, if it still signs.
fn live_previous(w: &Webhook) -> Option<(&str, time::Timestamp)> {
    match (&w.previous_secret, w.previous_secret_expires_at) {
        (Some(s), Some(until)) if until > time::now() => Some((s.expose(), until)),
        _ => None,
    }
}

/// `given` headers with every value that is the mask of the stored value of the same header (names
/// compared as HTTP does, case-insensitively) replaced by that stored value: a client that sends
/// back what it read (the console's edit form, a GET-modify-PUT) keeps the values it never saw. A
/// mask matching nothing stays as it is, and validation refuses it (masks aren't ASCII).
fn keep_masked(
    stored: &BTreeMap<String, String>,
    given: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    given
        .into_iter()
        .map(|(name, value)| {
            let kept = stored
                .iter()
                .find(|(n, v)| {
                    n.eq_ignore_ascii_case(&name) && formats::mask_header_value(v) == value
                })
                .map(|(_, v)| v.clone());
            (name, kept.unwrap_or(value))
        })
        .collect()
}

/// A refused URL: `control_character` like every other field holding one (the shared text rule),
/// `invalid_url` for everything else.
pub(crate) fn url_error(e: hookline_core::url_policy::UrlError) -> Error {
    use hookline_core::url_policy::UrlError;
    let code = match e {
        UrlError::ControlCharacter { .. } => hookline_core::text::CONTROL_CHARACTER,
        _ => "invalid_url",
    };
    Error::Invalid(FieldError::new("url", code, e.to_string()))
}

impl Hookline {
    fn check_url(&self, url: &str) -> Result<String> {
        WebhookUrl::parse(url, &self.config.url_policy)
            .map(|u| u.as_str().to_string())
            .map_err(url_error)
    }

    /// Applies the fields of `input` over `w`, validating each. Shared by create and update so a
    /// rule can't differ between them.
    fn apply(&self, w: &mut Webhook, input: WebhookInput) -> Result<()> {
        if let Some(url) = input.url {
            w.url = self.check_url(&url)?;
        }
        if let Some(name) = input.name {
            w.name = rules::validate_name(&name)?;
        }
        if let Some(d) = input.description {
            w.description = rules::validate_description(&d)?;
        }
        if let Some(f) = input.format {
            w.format = Format::parse(&f).ok_or_else(|| {
                Error::invalid(
                    "format",
                    "invalid",
                    format!("format `{f}` is not one of envelope, flat, entity, contacts-list"),
                )
            })?;
        }
        if let Some(events) = input.events {
            w.events = rules::validate_events(&events, w.format)?;
        } else {
            // A format change must still be able to render what the webhook subscribes to.
            w.events = rules::validate_events(&w.events, w.format)?;
        }
        if let Some(enabled) = input.enabled {
            if enabled && !w.enabled {
                // Re-enabling starts a fresh failure count: the user says the endpoint is fixed.
                w.disabled_reason = None;
                w.consecutive_failures = 0;
                w.failing_since = None;
            }
            w.enabled = enabled;
        }
        if let Some(h) = input.headers {
            w.headers = rules::validate_headers(&keep_masked(&w.headers, h), &self.config.brand)?;
        }
        if let Some(s) = input.retry_schedule {
            w.retry_schedule = s
                .map(|v| {
                    RetrySchedule::from_json(&v)
                        .map_err(|e| Error::invalid("retry_schedule", "invalid", e))
                })
                .transpose()?;
        }
        if let Some(r) = input.rate_limit {
            w.rate_limit = rules::validate_rate_limit(r)?;
        }
        if let Some(o) = input.ordering {
            w.ordering = Ordering::parse(&o).ok_or_else(|| {
                Error::invalid(
                    "ordering",
                    "invalid",
                    format!("ordering `{o}` is not one of none, entity"),
                )
            })?;
        }
        if let Some(f) = input.filter {
            // Stored as written (the user's spacing and quotes), once it parses.
            w.filter = f.map(|src| check_filter(&src).map(|_| src)).transpose()?;
        }
        Ok(())
    }

    /// Evaluates `input.filter` on `input.event` as fan-out would, and tells how it went. Reads
    /// nothing stored: any caller that may view webhooks may try filters.
    pub fn test_filter(&self, who: &Principal, input: FilterTestInput) -> Result<FilterTestView> {
        who.require(Capability::View)?;
        let filter = check_filter(&input.filter)?;
        let e = filter.evaluate(&input.event);
        Ok(FilterTestView {
            matches: e.matched,
            value: e.value,
            steps: e.steps,
            exhausted: e.exhausted,
        })
    }

    pub async fn create_webhook(
        &self,
        who: &Principal,
        input: WebhookInput,
    ) -> Result<WebhookView> {
        Ok(self.create_webhook_once(who, input, None).await?.0)
    }

    /// [`Hookline::create_webhook`] with an `Idempotency-Key` (`idempotency.rs`): the same key with
    /// the same body answers the webhook it created, as it is now, with its secret (and `true`:
    /// a replay); with another body, 422.
    pub async fn create_webhook_once(
        &self,
        who: &Principal,
        input: WebhookInput,
        idempotency_key: Option<&str>,
    ) -> Result<(WebhookView, bool)> {
        // The secret and header values are credentials: they stay out of the stored fingerprint
        // (a hash of a weak secret could be guessed offline from it). Whether they were given, and
        // the header names, still count.
        let mut fingerprint = serde_json::to_value(&input)
            .map_err(|e| Error::Internal(format!("webhook input: {e}")))?;
        if let Some(o) = fingerprint.as_object_mut() {
            if o.get("secret").is_some_and(|s| !s.is_null()) {
                o.insert("secret".into(), serde_json::json!("(given)"));
            }
            if let Some(serde_json::Value::Object(h)) = o.get_mut("headers") {
                for v in h.values_mut() {
                    *v = serde_json::json!("(given)");
                }
            }
        }
        let Some(key) = Idempotency::for_request(idempotency_key, "create_webhook", &fingerprint)?
        else {
            return Ok((self.insert_webhook(who, input).await?, false));
        };
        let (this, who2) = (self.clone(), who.clone());
        let (id, replayed) = self
            .once(who, Some(key), move || async move {
                Ok(this.insert_webhook(&who2, input).await?.id)
            })
            .await?;
        let w = self.load_webhook(who, WebhookId::from(id)).await?;
        Ok((WebhookView::from(&w, true), replayed))
    }

    async fn insert_webhook(&self, who: &Principal, input: WebhookInput) -> Result<WebhookView> {
        self.insert_webhook_to(who, input, None).await
    }

    /// [`Self::insert_webhook`]; with `listen`, to that listen session (`listen:<id>`, no URL to
    /// check: nothing is dialed) instead of `input.url`.
    pub(super) async fn insert_webhook_to(
        &self,
        who: &Principal,
        input: WebhookInput,
        listen: Option<&str>,
    ) -> Result<WebhookView> {
        who.require(Capability::Manage)?;
        let url = match listen {
            Some(session) => format!("{}{session}", crate::sender::listen::SCHEME),
            None => {
                let url = input
                    .url
                    .as_deref()
                    .ok_or_else(|| Error::invalid("url", "required", "url is required"))?;
                self.check_url(url)?
            }
        };
        if input.events.is_none() {
            return Err(Error::invalid(
                "events",
                "required",
                "events is required: name at least one event type or pattern",
            ));
        }
        let secret = WebhookSecret::new(match &input.secret {
            Some(s) => rules::validate_secret(s)?,
            None => signing::generate_webhook_secret(),
        });
        let now = time::now();
        let host = url::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let mut w = Webhook {
            id: WebhookId::new(),
            tenant_id: who.tenant_id,
            name: host,
            description: String::new(),
            url,
            events: Vec::new(),
            secret,
            previous_secret: None,
            previous_secret_expires_at: None,
            enabled: true,
            disabled_reason: None,
            format: Format::default(),
            headers: BTreeMap::new(),
            retry_schedule: None,
            rate_limit: None,
            ordering: Ordering::default(),
            consecutive_failures: 0,
            failing_since: None,
            created_at: now,
            updated_at: now,
            last_attempt_at: None,
            filter: None,
        };
        self.apply(
            &mut w,
            WebhookInput {
                secret: None,
                ..input
            },
        )?;
        self.store.insert_webhook(&w).await?;
        // A webhook made through a portal that lists its webhooks joins that list.
        if let Some(scope) = &who.scope {
            self.store
                .add_webhook_to_grant(who.tenant_id, scope.grant_id, w.id)
                .await?;
        }
        Ok(WebhookView::from(&w, true))
    }

    /// The caller's webhook, or 404 (also for another tenant's id, or one outside a portal's list).
    pub(crate) async fn load_webhook(&self, who: &Principal, id: WebhookId) -> Result<Webhook> {
        who.require(Capability::View)?;
        if !who.sees_webhook(id) {
            return Err(Error::not_found("webhook"));
        }
        self.store
            .get_webhook(who.tenant_id, id)
            .await?
            .ok_or_else(|| Error::not_found("webhook"))
    }

    pub async fn get_webhook(&self, who: &Principal, id: WebhookId) -> Result<WebhookView> {
        Ok(WebhookView::from(&self.load_webhook(who, id).await?, false))
    }

    /// Hourly attempt statistics of the caller's webhooks `ids` from `since` on (charts, success
    /// rates); webhooks the caller can't see are left out.
    pub async fn webhook_stats(
        &self,
        who: &Principal,
        ids: &[WebhookId],
        since: time::Timestamp,
    ) -> Result<std::collections::HashMap<WebhookId, Vec<hookline_core::stats::HourStats>>> {
        who.require(Capability::View)?;
        let ids: Vec<WebhookId> = ids
            .iter()
            .copied()
            .filter(|i| who.sees_webhook(*i))
            .collect();
        let mut out: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let since = hookline_core::stats::hour_of(since);
        for h in self.store.webhook_hours(who.tenant_id, ids, since).await? {
            out.entry(h.webhook_id).or_default().push(h.stats);
        }
        Ok(out)
    }

    /// Webhooks newest first; `search` matches name, URL and description.
    pub async fn list_webhooks(
        &self,
        who: &Principal,
        search: Option<&str>,
        page: Page,
    ) -> Result<Vec<WebhookView>> {
        who.require(Capability::View)?;
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > 200 || s.chars().any(char::is_control)) {
            return Err(Error::bad_request(
                "invalid_query",
                "search must be at most 200 characters without control characters",
                Some("search"),
            ));
        }
        let rows = self
            .store
            .list_webhooks(
                who.tenant_id,
                WebhookFilter {
                    search: search.map(str::to_string),
                    ids: who.webhook_limit(),
                },
                page,
            )
            .await?;
        Ok(rows.iter().map(|w| WebhookView::from(w, false)).collect())
    }

    pub async fn update_webhook(
        &self,
        who: &Principal,
        id: WebhookId,
        input: WebhookInput,
    ) -> Result<WebhookView> {
        if input.secret.is_some() {
            return Err(Error::invalid(
                "secret",
                "use_rotate_secret",
                "the secret can't be changed by an update; POST /v1/webhooks/{id}/rotate-secret keeps the old one signing during a grace period",
            ));
        }
        let this = self.clone();
        let w = self
            .edit_webhook(who, id, move |w| {
                this.apply(w, input)?;
                w.updated_at = time::now();
                Ok(())
            })
            .await?;
        Ok(WebhookView::from(&w, false))
    }

    /// Runs `edit` on the stored webhook inside the transaction that writes it back, so it never
    /// overwrites a concurrent change (an auto-disable, a failure count, another edit) with stale
    /// values.
    async fn edit_webhook(
        &self,
        who: &Principal,
        id: WebhookId,
        edit: impl FnOnce(&mut Webhook) -> Result<()> + Send + 'static,
    ) -> Result<Webhook> {
        who.require(Capability::Manage)?;
        if !who.sees_webhook(id) {
            return Err(Error::not_found("webhook"));
        }
        self.store
            .modify_webhook(
                who.tenant_id,
                id,
                Box::new(move |w| edit(w).map_err(|e| Box::new(e) as hookline_store::Rejection)),
            )
            .await?
            .ok_or_else(|| Error::not_found("webhook"))
    }

    /// Deletes a webhook softly (`Store::delete_webhook`): its queue is cancelled, its log kept.
    pub async fn delete_webhook(&self, who: &Principal, id: WebhookId) -> Result<()> {
        who.require(Capability::Manage)?;
        if !who.sees_webhook(id) {
            return Err(Error::not_found("webhook"));
        }
        if self.store.delete_webhook(who.tenant_id, id).await? {
            Ok(())
        } else {
            Err(Error::not_found("webhook"))
        }
    }

    pub async fn webhook_secret(&self, who: &Principal, id: WebhookId) -> Result<SecretView> {
        who.require(Capability::RevealSecret)?;
        let w = self.load_webhook(who, id).await?;
        Ok(SecretView {
            previous_secret_expires_at: live_previous(&w).map(|(_, t)| time::format(&t)),
            secret: w.secret.expose().to_string(),
        })
    }

    /// Replaces the secret; the old one keeps signing beside the new one until the grace ends.
    pub async fn rotate_secret(
        &self,
        who: &Principal,
        id: WebhookId,
        input: RotateInput,
    ) -> Result<SecretView> {
        let grace = match &input.grace_period {
            Some(g) => hookline_core::retry::parse_delay(g)
                .map_err(|e| Error::invalid("grace_period", "invalid", e))?,
            None => self.config.secret_rotation_grace,
        };
        if grace > std::time::Duration::from_secs(30 * 86400) {
            return Err(Error::invalid(
                "grace_period",
                "invalid",
                "grace_period must be at most 30d",
            ));
        }
        let new_secret = WebhookSecret::new(match &input.secret {
            Some(s) => rules::validate_secret(s)?,
            None => signing::generate_webhook_secret(),
        });
        let w = self
            .edit_webhook(who, id, move |w| {
                if new_secret == w.secret {
                    return Err(Error::invalid(
                        "secret",
                        "unchanged",
                        "the new secret equals the current one",
                    ));
                }
                let now = time::now();
                let old = std::mem::replace(&mut w.secret, new_secret);
                if grace.is_zero() {
                    w.previous_secret = None;
                    w.previous_secret_expires_at = None;
                } else {
                    w.previous_secret = Some(old);
                    w.previous_secret_expires_at =
                        Some(now + chrono::Duration::from_std(grace).unwrap_or_default());
                }
                w.updated_at = now;
                Ok(())
            })
            .await?;
        Ok(SecretView {
            previous_secret_expires_at: w.previous_secret_expires_at.as_ref().map(time::format),
            secret: w.secret.expose().to_string(),
        })
    }
}
