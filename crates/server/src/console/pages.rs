//! The console's handlers: each reads the browser's session, calls the service layer as that
//! session's principal, and renders a page (or redirects). Validation messages come from the
//! service's errors and are shown beside the field they name.

use super::session::{
    clear_cookie, csrf_refusal, over_tls, redirect, session_cookie, session_token, Browser,
    ClientIp, Console, FormData,
};
use super::views::html;
use super::views::{
    self, DeliveryFilters, Frame, Outcome, WebhookFormValues, WebhookPage, WebhookRow,
};
use crate::error::Error;
use crate::service::catalog::event_types as catalog;
use crate::service::{
    ApiKeyInput, DeliveryQuery, ErasureInput, FilterTestInput, HandshakeInput, ReplayInput,
    RotateInput, TestInput, WebhookInput,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hookline_core::ids::{ApiKeyId, DeliveryId, WebhookId};
use hookline_core::time;
use hookline_core::webhook::Format;
use hookline_store::Page;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

type Q = Query<HashMap<String, String>>;

async fn frame_parts(c: &Console, b: &Browser) -> String {
    c.hookline.tenant_name(&b.signed.principal).await
}

macro_rules! frame {
    ($c:expr, $b:expr, $tenant:expr) => {
        Frame {
            brand: &$c.hookline.config.brand,
            tenant: Some($tenant.as_str()),
            signed: Some(&$b.signed),
        }
    };
}

fn fail(b: &Browser, e: Error) -> Response {
    views::error_page(Some(&b.signed), &e)
}

fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, Error> {
    raw.parse()
        .map_err(|_| Error::NotFound(format!("{what} not found")))
}

/// A form posted about one row (`raw_id` from the path): its CSRF token checked and the id parsed
/// as a `T`, or the page that refuses it.
// The refusal is a page handed straight back to axum: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn posted_for<T: std::str::FromStr>(
    b: &Browser,
    raw_id: &str,
    what: &str,
    body: &[u8],
) -> Result<(FormData, T), Response> {
    let form = FormData::parse(body);
    if let Some(r) = csrf_refusal(b, &form) {
        return Err(r);
    }
    let id = parse_id::<T>(raw_id, what).map_err(|e| fail(b, e))?;
    Ok((form, id))
}

pub async fn home(b: Result<Browser, Response>) -> Response {
    match b {
        Ok(_) => redirect("/webhooks"),
        Err(_) => redirect("/login"),
    }
}

pub async fn login_form(State(c): State<Console>, Query(q): Q) -> Response {
    let message = q
        .contains_key("expired")
        .then_some("Your session has ended. Sign in again.");
    views::login(&c.hookline.config.brand, message, StatusCode::OK)
}

pub async fn login(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let brand = &c.hookline.config.brand;
    if c.limited(ip) {
        return views::login(
            brand,
            Some("Too many failed sign-ins from this address. Wait five minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let form = FormData::parse(&body);
    let key = form.text("key").unwrap_or_default();
    match c.hookline.sign_in(&key).await {
        Ok((token, signed)) => {
            let mut r = redirect("/webhooks");
            r.headers_mut().insert(
                SET_COOKIE,
                session_cookie(&token, &signed, over_tls(&headers)),
            );
            r
        }
        Err(Error::Unauthorized(_)) => {
            c.note_failure(ip);
            views::login(
                brand,
                Some("That API key is not valid. Check it and try again."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => views::error_page(None, &e),
    }
}

pub async fn logout(
    State(c): State<Console>,
    b: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = FormData::parse(&body);
    if let Some(r) = csrf_refusal(&b, &form) {
        return r;
    }
    if let Some(token) = session_token(&headers) {
        if let Err(e) = c.hookline.sign_out(&token).await {
            return fail(&b, e);
        }
    }
    let mut r = redirect("/login");
    r.headers_mut().insert(SET_COOKIE, clear_cookie());
    r
}

pub async fn portal_entry(
    State(c): State<Console>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    match c.hookline.redeem_portal(&code).await {
        Ok((token, signed)) => {
            let mut r = redirect("/webhooks");
            r.headers_mut().insert(
                SET_COOKIE,
                session_cookie(&token, &signed, over_tls(&headers)),
            );
            r
        }
        Err(e) => views::error_page(None, &e),
    }
}

/// A list page's `cursor` (empty or absent: the first page).
fn page_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, Error> {
    match cursor.filter(|c| !c.is_empty()) {
        Some(cur) => hookline_core::ids::parse_id(cur)
            .map(Some)
            .ok_or_else(|| Error::bad_request("invalid_query", "bad cursor", Some("cursor"))),
        None => Ok(None),
    }
}

pub async fn webhooks(State(c): State<Console>, b: Browser, Query(q): Q) -> Response {
    let who = &b.signed.principal;
    let search = q.get("search").cloned().unwrap_or_default();
    let limit = 50;
    let before = match page_cursor(q.get("cursor").map(String::as_str)) {
        Ok(before) => before,
        Err(e) => return fail(&b, e),
    };
    let mut list = match c
        .hookline
        .list_webhooks(
            who,
            Some(&search),
            Page {
                before,
                limit: limit + 1,
            },
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return fail(&b, e),
    };
    let next = (list.len() > limit).then(|| {
        list.truncate(limit);
        list.last().map(|w| w.id.to_string()).unwrap_or_default()
    });
    let ids: Vec<WebhookId> = list.iter().map(|w| WebhookId(w.id)).collect();
    let since = time::now() - chrono::Duration::hours(24);
    let stats = match c.hookline.webhook_stats(who, &ids, since).await {
        Ok(s) => s,
        Err(e) => return fail(&b, e),
    };
    let rows: Vec<WebhookRow> = list
        .into_iter()
        .map(|w| {
            let day = stats
                .get(&WebhookId(w.id))
                .and_then(|h| hookline_core::stats::total(h));
            WebhookRow { webhook: w, day }
        })
        .collect();
    let tenant = frame_parts(&c, &b).await;
    html(views::webhooks(&frame!(c, b, tenant), &rows, &search, next))
}

/// The form's fields as the service's input; what can't be parsed becomes a field error.
fn webhook_input(
    form: &FormData,
    errors: &mut BTreeMap<String, String>,
) -> (WebhookInput, WebhookFormValues) {
    let mut events = form.all("events");
    let patterns = form.get("patterns").unwrap_or_default().to_string();
    events.extend(
        patterns
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    );
    let headers_text = form
        .get("headers")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut headers = BTreeMap::new();
    for line in headers_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line.split_once(':') {
            Some((k, v)) => {
                headers.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => {
                errors.insert("headers".into(), format!("`{line}` is not `Name: value`"));
            }
        }
    }
    let retry = form
        .get("retry_schedule")
        .unwrap_or_default()
        .trim()
        .to_string();
    let retry_schedule = if retry.is_empty() {
        Some(None)
    } else {
        Some(Some(Value::Array(
            retry
                .split(',')
                .map(|s| Value::String(s.trim().to_string()))
                .collect(),
        )))
    };
    let rate = form
        .get("rate_limit")
        .unwrap_or_default()
        .trim()
        .to_string();
    let rate_limit = if rate.is_empty() {
        Some(None)
    } else {
        match rate.parse::<u32>() {
            Ok(n) => Some(Some(n)),
            Err(_) => {
                errors.insert(
                    "rate_limit".into(),
                    "a whole number of deliveries per second".into(),
                );
                None
            }
        }
    };
    // Line breaks as the browser shows them (`\n`), so an error's position counts what the user
    // sees; blank = no filter.
    let filter = form
        .get("filter")
        .unwrap_or_default()
        .replace("\r\n", "\n")
        .trim()
        .to_string();
    let values = WebhookFormValues {
        name: form.get("name").unwrap_or_default().to_string(),
        url: form.get("url").unwrap_or_default().to_string(),
        description: form.get("description").unwrap_or_default().to_string(),
        events: events.clone(),
        format: form.get("format").unwrap_or("envelope").to_string(),
        headers: headers_text.clone(),
        retry_schedule: retry,
        rate_limit: rate,
        ordering: form.get("ordering").unwrap_or("none").to_string(),
        filter: filter.clone(),
        enabled: form.get("enabled") == Some("true"),
    };
    let input = WebhookInput {
        name: form.text("name"),
        description: Some(values.description.trim().to_string()),
        url: Some(values.url.trim().to_string()),
        events: Some(events),
        secret: None,
        enabled: Some(values.enabled),
        format: Some(values.format.clone()),
        headers: Some(headers),
        retry_schedule,
        rate_limit,
        ordering: Some(values.ordering.clone()),
        filter: Some((!filter.is_empty()).then_some(filter)),
    };
    (input, values)
}

/// The form field an API error names (`events[2]` → `events`, `headers.X-Foo` → `headers`).
fn form_field(field: &str) -> String {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    let f = &field[..end];
    if f.is_empty() {
        ".".into()
    } else {
        f.to_string()
    }
}

fn error_into_fields(e: &Error, errors: &mut BTreeMap<String, String>) {
    let body = e.body().error;
    let field = body
        .field
        .as_deref()
        .map(form_field)
        .unwrap_or_else(|| ".".into());
    errors.insert(field, body.message);
}

pub async fn new_webhook(State(c): State<Console>, b: Browser) -> Response {
    if let Err(e) = b
        .signed
        .principal
        .require(crate::service::access::Capability::Manage)
    {
        return fail(&b, e);
    }
    let tenant = frame_parts(&c, &b).await;
    let values = WebhookFormValues {
        format: "envelope".into(),
        ordering: "none".into(),
        enabled: true,
        ..Default::default()
    };
    html(views::webhook_form(
        &frame!(c, b, tenant),
        &catalog(),
        &values,
        &BTreeMap::new(),
        "/webhooks/new",
        "New webhook",
    ))
}

pub async fn create_webhook(State(c): State<Console>, b: Browser, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(r) = csrf_refusal(&b, &form) {
        return r;
    }
    let mut errors = BTreeMap::new();
    let (input, values) = webhook_input(&form, &mut errors);
    let result = if errors.is_empty() {
        c.hookline.create_webhook(&b.signed.principal, input).await
    } else {
        Err(unparsed_fields())
    };
    let tenant = frame_parts(&c, &b).await;
    match result {
        Ok(w) => {
            let secret = w.secret.clone().unwrap_or_default();
            let page = WebhookPage {
                webhook: &w,
                day: &[],
                week: &[],
                catalog: &catalog(),
                outcome: Some(Outcome::Secret(secret)),
            };
            (
                StatusCode::CREATED,
                html(views::webhook(&frame!(c, b, tenant), page)),
            )
                .into_response()
        }
        Err(e) => {
            let form = RefusedForm {
                errors,
                values,
                action: "/webhooks/new".into(),
                title: "New webhook",
            };
            refused_form(&c, &b, &tenant, e, form)
        }
    }
}

/// The error for a form whose fields couldn't even be read (their messages are already set).
fn unparsed_fields() -> Error {
    Error::invalid(".", "invalid", "check the fields marked below")
}

/// A webhook form sent back with what the user typed.
struct RefusedForm {
    errors: BTreeMap<String, String>,
    values: WebhookFormValues,
    action: String,
    title: &'static str,
}

/// A refused webhook form: validation errors go beside their fields (422) with the values kept;
/// any other error is an error page.
fn refused_form(c: &Console, b: &Browser, tenant: &str, e: Error, mut f: RefusedForm) -> Response {
    if !matches!(e, Error::Invalid(_) | Error::BadRequest { .. }) {
        return fail(b, e);
    }
    if f.errors.is_empty() {
        error_into_fields(&e, &mut f.errors);
    }
    let frame = Frame {
        brand: &c.hookline.config.brand,
        tenant: Some(tenant),
        signed: Some(&b.signed),
    };
    let page = views::webhook_form(&frame, &catalog(), &f.values, &f.errors, &f.action, f.title);
    (StatusCode::UNPROCESSABLE_ENTITY, html(page)).into_response()
}

pub async fn edit_webhook(
    State(c): State<Console>,
    b: Browser,
    Path(id): Path<String>,
) -> Response {
    let who = &b.signed.principal;
    let w = match parse_id::<WebhookId>(&id, "webhook") {
        Ok(id) => match who.require(crate::service::access::Capability::Manage) {
            Ok(()) => c.hookline.get_webhook(who, id).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let w = match w {
        Ok(w) => w,
        Err(e) => return fail(&b, e),
    };
    let values = WebhookFormValues {
        name: w.name.clone(),
        url: w.url.clone(),
        description: w.description.clone(),
        events: w.events.clone(),
        format: w.format.as_str().into(),
        headers: w
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        retry_schedule: w
            .retry_schedule
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        rate_limit: w.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
        ordering: w.ordering.as_str().into(),
        filter: w.filter.clone().unwrap_or_default(),
        enabled: w.enabled,
    };
    let tenant = frame_parts(&c, &b).await;
    html(views::webhook_form(
        &frame!(c, b, tenant),
        &catalog(),
        &values,
        &BTreeMap::new(),
        &format!("/webhooks/{}/edit", w.id),
        &format!("Edit {}", w.name),
    ))
}

pub async fn update_webhook(
    State(c): State<Console>,
    b: Browser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (form, id) = match posted_for::<WebhookId>(&b, &id, "webhook", &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let mut errors = BTreeMap::new();
    let (input, values) = webhook_input(&form, &mut errors);
    let result = if errors.is_empty() {
        c.hookline
            .update_webhook(&b.signed.principal, id, input)
            .await
    } else {
        Err(unparsed_fields())
    };
    match result {
        Ok(w) => redirect(&format!("/webhooks/{}", w.id)),
        Err(e) => {
            let tenant = frame_parts(&c, &b).await;
            let form = RefusedForm {
                errors,
                values,
                action: format!("/webhooks/{id}/edit"),
                title: "Edit webhook",
            };
            refused_form(&c, &b, &tenant, e, form)
        }
    }
}

async fn render_webhook(
    c: &Console,
    b: &Browser,
    id: WebhookId,
    outcome: Option<Outcome>,
    status: StatusCode,
) -> Response {
    let who = &b.signed.principal;
    let w = match c.hookline.get_webhook(who, id).await {
        Ok(w) => w,
        Err(e) => return fail(b, e),
    };
    let since = time::now() - chrono::Duration::days(7);
    let stats = match c.hookline.webhook_stats(who, &[id], since).await {
        Ok(s) => s.get(&id).cloned().unwrap_or_default(),
        Err(e) => return fail(b, e),
    };
    let day_start = hookline_core::stats::hour_of(time::now() - chrono::Duration::hours(23));
    let day: Vec<_> = stats
        .iter()
        .filter(|h| h.hour >= day_start)
        .cloned()
        .collect();
    let tenant = frame_parts(c, b).await;
    let page = WebhookPage {
        webhook: &w,
        day: &day,
        week: &stats,
        catalog: &catalog(),
        outcome,
    };
    (status, html(views::webhook(&frame!(c, b, tenant), page))).into_response()
}

pub async fn webhook(State(c): State<Console>, b: Browser, Path(id): Path<String>) -> Response {
    match parse_id::<WebhookId>(&id, "webhook") {
        Ok(id) => render_webhook(&c, &b, id, None, StatusCode::OK).await,
        Err(e) => fail(&b, e),
    }
}

pub async fn webhook_action(
    State(c): State<Console>,
    b: Browser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (form, id) = match posted_for::<WebhookId>(&b, &id, "webhook", &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let who = &b.signed.principal;
    let h = &c.hookline;
    let op = form.get("op").unwrap_or_default();
    let outcome = match op {
        "reveal" => h
            .webhook_secret(who, id)
            .await
            .map(|s| Outcome::Secret(s.secret)),
        "rotate" => h
            .rotate_secret(
                who,
                id,
                RotateInput {
                    secret: None,
                    grace_period: form.text("grace_period"),
                },
            )
            .await
            .map(|s| Outcome::Secret(s.secret)),
        "test" => h
            .test_webhook(
                who,
                id,
                TestInput {
                    event_type: form.text("event_type"),
                    ..TestInput::default()
                },
            )
            .await
            .map(|t| Outcome::Test(Box::new(t))),
        "filter_test" => {
            let filter = form
                .get("filter")
                .unwrap_or_default()
                .replace("\r\n", "\n")
                .trim()
                .to_string();
            let event = form.get("event").unwrap_or_default().to_string();
            let result = match serde_json::from_str::<Value>(&event) {
                Err(e) => Err(format!("the sample event is not JSON: {e}")),
                Ok(ev) => h
                    .test_filter(
                        who,
                        FilterTestInput {
                            filter: filter.clone(),
                            event: ev,
                        },
                    )
                    .map_err(|e| e.body().error.message),
            };
            Ok(Outcome::FilterTest {
                filter,
                event,
                result,
            })
        }
        "verify" => h
            .verify_receiver(who, id, HandshakeInput { event_type: None })
            .await
            .map(|v| Outcome::Verified(Box::new(v))),
        "enable" | "disable" => {
            let enabled = op == "enable";
            h.update_webhook(
                who,
                id,
                WebhookInput {
                    enabled: Some(enabled),
                    ..WebhookInput::default()
                },
            )
            .await
            .map(|_| Outcome::Message(if enabled { "Enabled." } else { "Disabled." }.into()))
        }
        "delete" => {
            if form.get("confirm") != Some("yes") {
                Ok(Outcome::Failed(
                    "Tick the box to confirm that its queued deliveries are cancelled.".into(),
                ))
            } else {
                return match h.delete_webhook(who, id).await {
                    Ok(()) => redirect("/webhooks"),
                    Err(e) => fail(&b, e),
                };
            }
        }
        "replay_count" | "replay" => {
            let since = form.text("since").unwrap_or_default();
            let dry_run = op == "replay_count";
            h.replay(
                who,
                id,
                ReplayInput {
                    since: since.clone(),
                    until: None,
                    status: None,
                    dry_run,
                },
            )
            .await
            .map(|r| {
                if dry_run {
                    Outcome::ReplayCount {
                        since,
                        count: r.count,
                    }
                } else {
                    Outcome::Replayed {
                        count: r.count,
                        job: r.job.map(|j| j.id.to_string()),
                    }
                }
            })
        }
        _ => Err(Error::bad_request(
            "invalid_form",
            "unknown action",
            Some("op"),
        )),
    };
    match outcome {
        Ok(o) => render_webhook(&c, &b, id, Some(o), StatusCode::OK).await,
        Err(e @ (Error::NotFound(_) | Error::Unavailable(_) | Error::Internal(_))) => fail(&b, e),
        Err(e) => {
            let status = e.status();
            let msg = e.body().error.message;
            render_webhook(&c, &b, id, Some(Outcome::Failed(msg)), status).await
        }
    }
}

fn filters(q: &HashMap<String, String>) -> DeliveryFilters {
    let g = |k: &str| q.get(k).cloned().unwrap_or_default();
    DeliveryFilters {
        status: g("status"),
        event_type: g("event_type"),
        webhook_id: g("webhook_id"),
        since: g("since"),
        until: g("until"),
        search: g("search"),
    }
}

pub async fn deliveries(State(c): State<Console>, b: Browser, Query(q): Q) -> Response {
    let f = filters(&q);
    let limit = 50;
    let before = q
        .get("cursor")
        .and_then(|cur| hookline_core::ids::parse_id(cur));
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let query = DeliveryQuery {
        webhook_id: opt(&f.webhook_id),
        status: opt(&f.status),
        event_type: opt(&f.event_type),
        since: opt(&f.since),
        until: opt(&f.until),
        search: opt(&f.search),
    };
    let (mut rows, error) = match c
        .hookline
        .list_deliveries(
            &b.signed.principal,
            query,
            Page {
                before,
                limit: limit + 1,
            },
        )
        .await
    {
        Ok(r) => (r, None),
        Err(e @ (Error::Invalid(_) | Error::BadRequest { .. })) => {
            (Vec::new(), Some(e.body().error.message))
        }
        Err(e) => return fail(&b, e),
    };
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map(|d| d.id.to_string()).unwrap_or_default()
    });
    if q.get("fragment").map(String::as_str) == Some("rows") {
        return html(views::delivery_rows(&rows));
    }
    let tenant = frame_parts(&c, &b).await;
    html(views::deliveries(
        &frame!(c, b, tenant),
        &rows,
        &f,
        error.as_deref(),
        next,
        before.is_none(),
    ))
}

pub async fn delivery(State(c): State<Console>, b: Browser, Path(id): Path<String>) -> Response {
    let who = &b.signed.principal;
    let id = match parse_id::<DeliveryId>(&id, "delivery") {
        Ok(id) => id,
        Err(e) => return fail(&b, e),
    };
    let d = match c.hookline.get_delivery(who, id).await {
        Ok(d) => d,
        Err(e) => return fail(&b, e),
    };
    let body = c.hookline.delivery_body(who, id).await.ok();
    let resends = c.hookline.resends_of(who, id).await.unwrap_or_default();
    let tenant = frame_parts(&c, &b).await;
    html(views::delivery(
        &frame!(c, b, tenant),
        &d,
        body.as_deref(),
        &resends,
    ))
}

pub async fn resend(
    State(c): State<Console>,
    b: Browser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (_, id) = match posted_for::<DeliveryId>(&b, &id, "delivery", &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    match c.hookline.resend(&b.signed.principal, id).await {
        Ok(d) => redirect(&format!("/deliveries/{}", d.id)),
        Err(e) => fail(&b, e),
    }
}

/// The API keys page: the list, the create form and, after a create or a revocation, its outcome.
async fn render_keys(
    c: &Console,
    b: &Browser,
    cursor: Option<&str>,
    mut p: views::KeysPage<'_>,
    status: StatusCode,
) -> Response {
    let limit = 50;
    let before = match page_cursor(cursor) {
        Ok(before) => before,
        Err(e) => return fail(b, e),
    };
    let page = Page {
        before,
        limit: limit + 1,
    };
    let mut keys = match c.hookline.list_api_keys(&b.signed.principal, page).await {
        Ok(k) => k,
        Err(e) => return fail(b, e),
    };
    if keys.len() > limit {
        keys.truncate(limit);
        p.next_cursor = keys.last().map(|k| k.id.to_string());
    }
    let tenant = frame_parts(c, b).await;
    (
        status,
        html(views::api_keys(&frame!(c, b, tenant), &keys, &p)),
    )
        .into_response()
}

async fn render_erasures(
    c: &Console,
    b: &Browser,
    cursor: Option<&str>,
    mut p: views::ErasuresPage<'_>,
    status: StatusCode,
) -> Response {
    let limit = 50;
    let before = match page_cursor(cursor) {
        Ok(before) => before,
        Err(e) => return fail(b, e),
    };
    let page = Page {
        before,
        limit: limit + 1,
    };
    let mut list = match c.hookline.list_erasures(&b.signed.principal, page).await {
        Ok(l) => l,
        Err(e) => return fail(b, e),
    };
    if list.len() > limit {
        list.truncate(limit);
        p.next_cursor = list.last().map(|e| e.id.to_string());
    }
    let tenant = frame_parts(c, b).await;
    (
        status,
        html(views::erasures(&frame!(c, b, tenant), &list, &p)),
    )
        .into_response()
}

pub async fn erasures(State(c): State<Console>, b: Browser, Query(q): Q) -> Response {
    let cursor = q.get("cursor").map(String::as_str);
    render_erasures(
        &c,
        &b,
        cursor,
        views::ErasuresPage::default(),
        StatusCode::OK,
    )
    .await
}

pub async fn create_erasure(State(c): State<Console>, b: Browser, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(r) = csrf_refusal(&b, &form) {
        return r;
    }
    let values = (
        form.get("entity_type")
            .unwrap_or_default()
            .trim()
            .to_string(),
        form.get("entity_id").unwrap_or_default().trim().to_string(),
    );
    let mut errors = BTreeMap::new();
    if form.get("confirm") != Some("yes") {
        errors.insert(".".to_string(), "Tick “I'm sure” to erase.".to_string());
        let page = views::ErasuresPage {
            values,
            errors,
            ..Default::default()
        };
        return render_erasures(&c, &b, None, page, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let input = ErasureInput {
        entity_type: values.0.clone(),
        entity_id: values.1.clone(),
    };
    match c.hookline.request_erasure(&b.signed.principal, input).await {
        Ok(queued) => {
            let page = views::ErasuresPage {
                queued: Some(&queued),
                ..Default::default()
            };
            render_erasures(&c, &b, None, page, StatusCode::ACCEPTED).await
        }
        Err(e @ (Error::Invalid(_) | Error::BadRequest { .. })) => {
            error_into_fields(&e, &mut errors);
            let page = views::ErasuresPage {
                values,
                errors,
                ..Default::default()
            };
            render_erasures(&c, &b, None, page, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => fail(&b, e),
    }
}

pub async fn keys(State(c): State<Console>, b: Browser, Query(q): Q) -> Response {
    let cursor = q.get("cursor").map(String::as_str);
    render_keys(&c, &b, cursor, views::KeysPage::default(), StatusCode::OK).await
}

pub async fn create_key(State(c): State<Console>, b: Browser, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(r) = csrf_refusal(&b, &form) {
        return r;
    }
    let values = views::KeyFormValues {
        name: form.get("name").unwrap_or_default().to_string(),
        scope: form.get("scope").unwrap_or("full").to_string(),
        expires_in: form
            .get("expires_in")
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    let input = ApiKeyInput {
        name: Some(values.name.clone()),
        scope: Some(values.scope.clone()),
        expires_at: None,
        expires_in: Some(values.expires_in.clone()).filter(|s| !s.is_empty()),
    };
    match c.hookline.create_api_key(&b.signed.principal, input).await {
        Ok(created) => {
            let page = views::KeysPage {
                created: Some(&created),
                ..Default::default()
            };
            render_keys(&c, &b, None, page, StatusCode::CREATED).await
        }
        Err(e @ (Error::Invalid(_) | Error::BadRequest { .. })) => {
            let mut errors = BTreeMap::new();
            error_into_fields(&e, &mut errors);
            let page = views::KeysPage {
                values,
                errors,
                ..Default::default()
            };
            render_keys(&c, &b, None, page, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => fail(&b, e),
    }
}

pub async fn revoke_key(
    State(c): State<Console>,
    b: Browser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (form, id) = match posted_for::<ApiKeyId>(&b, &id, "API key", &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let (message, status) = if form.get("confirm") != Some("yes") {
        (
            Err("Tick the box to confirm the revocation.".to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    } else {
        match c.hookline.revoke_api_key(&b.signed.principal, id).await {
            // This browser's own key: its session ended with it.
            Ok(k) if k.current => {
                let mut r = redirect("/login?expired=1");
                r.headers_mut().insert(SET_COOKIE, clear_cookie());
                return r;
            }
            Ok(k) => (
                Ok(format!("Revoked the key “{}” ({}…).", k.name, k.prefix)),
                StatusCode::OK,
            ),
            Err(e @ Error::Conflict { .. }) => (Err(e.body().error.message), e.status()),
            Err(e) => return fail(&b, e),
        }
    };
    let page = views::KeysPage {
        message: Some(message),
        ..Default::default()
    };
    render_keys(&c, &b, None, page, status).await
}

pub async fn event_types(State(c): State<Console>, b: Browser) -> Response {
    let list = catalog();
    let mut examples = Vec::with_capacity(list.data.len());
    for e in &list.data {
        let mut bodies = Vec::new();
        for fmt in Format::ALL {
            if fmt.carries(e.name) {
                if let Ok(body) = c
                    .hookline
                    .example_body(&b.signed.principal, fmt, e.name)
                    .await
                {
                    bodies.push((fmt, body));
                }
            }
        }
        examples.push((e.name.to_string(), bodies));
    }
    let tenant = frame_parts(&c, &b).await;
    html(views::event_types(&frame!(c, b, tenant), &list, &examples))
}

pub async fn test_url_form(State(c): State<Console>, b: Browser) -> Response {
    let tenant = frame_parts(&c, &b).await;
    html(views::test_url(
        &frame!(c, b, tenant),
        "",
        "envelope",
        "contact.created",
        &catalog(),
        None,
    ))
}

pub async fn test_url(State(c): State<Console>, b: Browser, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    if let Some(r) = csrf_refusal(&b, &form) {
        return r;
    }
    let url = form.get("url").unwrap_or_default().to_string();
    let format = form.get("format").unwrap_or("envelope").to_string();
    let event = form
        .get("event_type")
        .unwrap_or("contact.created")
        .to_string();
    let result = c
        .hookline
        .test_url(
            &b.signed.principal,
            TestInput {
                url: Some(url.clone()),
                format: Some(format.clone()),
                secret: None,
                event_type: Some(event.clone()),
            },
        )
        .await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    };
    let shown = result.as_ref().map_err(|e| e.body().error.message);
    let tenant = frame_parts(&c, &b).await;
    (
        status,
        html(views::test_url(
            &frame!(c, b, tenant),
            &url,
            &format,
            &event,
            &catalog(),
            Some(shown),
        )),
    )
        .into_response()
}

/// The live example of the webhook form: a sample body as text.
pub async fn format_example(State(c): State<Console>, b: Browser, Query(q): Q) -> Response {
    let format = q
        .get("format")
        .and_then(|f| Format::parse(f))
        .unwrap_or_default();
    let event = q
        .get("event")
        .cloned()
        .unwrap_or_else(|| "contact.created".into());
    match c
        .hookline
        .example_body(&b.signed.principal, format, &event)
        .await
    {
        Ok(body) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response(),
        Err(e) => (
            e.status(),
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            e.body().error.message,
        )
            .into_response(),
    }
}

pub async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("assets/app.js"),
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

/// The tab icon (also answers `/favicon.ico`, which browsers ask for on their own).
pub async fn icon() -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("assets/icon.svg"),
    )
        .into_response()
}
