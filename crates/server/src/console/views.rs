//! The console's HTML. `maud` escapes every interpolated value, so what a user or a receiver
//! typed (names, URLs, headers, payloads, response bodies) can only ever be text on the page.

use super::charts;
use crate::error::Error;
use crate::service::access::Capability;
use crate::service::catalog::EventTypeList;
use crate::service::sessions::SignedIn;
use crate::service::{
    ApiKeyView, AttemptView, CreatedApiKey, DeliveryDetail, DeliveryView, ErasureView,
    FilterTestView, HandshakeView, TestView, WebhookView,
};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookline_core::stats::HourStats;
use hookline_core::webhook::Format;
use maud::{html, Markup, DOCTYPE};
use std::collections::BTreeMap;

/// What every page needs to draw its frame.
pub struct Frame<'a> {
    pub brand: &'a str,
    pub tenant: Option<&'a str>,
    pub signed: Option<&'a SignedIn>,
}

impl Frame<'_> {
    fn can(&self, c: Capability) -> bool {
        self.signed.is_some_and(|s| s.principal.require(c).is_ok())
    }
}

pub fn page(f: &Frame, title: &str, body: Markup) -> Markup {
    page_at(f, title, None, body)
}

/// [`page`], answered to a POST that created `location`: the script puts that address in the
/// location bar, so a reload shows the page instead of posting again.
pub fn page_at(f: &Frame, title: &str, location: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (f.brand) " webhooks" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/webhooks" { (f.brand) " webhooks" }
                    @if let Some(t) = f.tenant { span.tenant { (t) } }
                    @if f.signed.is_some_and(|s| s.principal.is_read_only()) {
                        " " span.badge title="Signed in with a read-only API key: nothing can be changed from here" { "read-only" }
                    }
                    @if let Some(s) = f.signed {
                        nav aria-label="Main" {
                            a href="/webhooks" { "Webhooks" }
                            a href="/deliveries" { "Deliveries" }
                            a href="/event-types" { "Event types" }
                            @if s.principal.require(Capability::Resend).is_ok() {
                                a href="/test-url" { "Test a URL" }
                            }
                            @if s.principal.require_tenant_wide().is_ok() {
                                a href="/keys" { "API keys" }
                                a href="/erasures" { "Erasures" }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="_csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" data-location=[location] { (body) }
            }
        }
    }
}

pub fn csrf(f: &Frame) -> Markup {
    html! {
        @if let Some(s) = f.signed { input type="hidden" name="_csrf" value=(s.csrf); }
    }
}

pub fn error_page(signed: Option<&SignedIn>, e: &Error) -> Response {
    let body = e.body().error;
    let f = Frame {
        brand: "Hookline",
        tenant: None,
        signed,
    };
    let markup = page(
        &f,
        "Error",
        html! {
            h1 { "Something went wrong" }
            p.error role="alert" { (body.message) }
            p { a href="/webhooks" { "Back to webhooks" } }
        },
    );
    (e.status(), html(markup)).into_response()
}

pub fn login(brand: &str, message: Option<&str>, status: StatusCode) -> Response {
    let f = Frame {
        brand,
        tenant: None,
        signed: None,
    };
    let markup = page(
        &f,
        "Sign in",
        html! {
            section.narrow {
                h1 { "Sign in" }
                p { "Sign in with an API key of this deployment. The first start of the server prints one; "
                    "more are made on the API keys page, with " code { "hookline keys create" }
                    ", or on the server with " code { "hookline keys create --local" } "." }
                @if let Some(m) = message { p.error role="alert" id="login-error" { (m) } }
                form method="post" action="/login" {
                    label for="key" { "API key" }
                    input id="key" name="key" type="password" autocomplete="off" required
                        aria-describedby=[message.map(|_| "login-error")];
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    (status, html(markup)).into_response()
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |r| format!("{:.1} %", r * 100.0))
}

fn ms(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| {
        if v >= 1000.0 {
            format!("{:.1} s", v / 1000.0)
        } else {
            format!("{v:.0} ms")
        }
    })
}

fn status_badge(enabled: bool, reason: Option<&str>) -> Markup {
    html! {
        @if enabled { span.badge.ok { "enabled" } }
        @else {
            span.badge.off { "disabled" }
            @if let Some(r) = reason { " " span.muted { "(" (r) ")" } }
        }
    }
}

pub struct WebhookRow {
    pub webhook: WebhookView,
    pub day: Option<HourStats>,
}

pub fn webhooks(
    f: &Frame,
    rows: &[WebhookRow],
    search: &str,
    next_cursor: Option<String>,
) -> Markup {
    page(
        f,
        "Webhooks",
        html! {
            div.titlebar {
                h1 { "Webhooks" }
                @if f.can(Capability::Manage) { a.button href="/webhooks/new" { "New webhook" } }
            }
            form.search method="get" action="/webhooks" role="search" {
                label for="search" { "Search name, URL or description" }
                input id="search" name="search" type="search" value=(search);
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.empty { "No webhooks yet." }
            } @else {
                table.list {
                    thead { tr {
                        th { "Name" } th { "URL" } th { "Events" } th { "Status" }
                        th { "Success (24 h)" } th { "p95 (24 h)" } th { "Last attempt" }
                    } }
                    tbody {
                        @for r in rows {
                            tr {
                                td data-label="Name" { a href={ "/webhooks/" (r.webhook.id) } { (r.webhook.name) } }
                                td data-label="URL" { code.wrap { (r.webhook.url) } }
                                td data-label="Events" { (r.webhook.events.join(", ")) }
                                td data-label="Status" { (status_badge(r.webhook.enabled, r.webhook.disabled_reason.as_deref())) }
                                td data-label="Success (24 h)" { (pct(r.day.as_ref().and_then(HourStats::success_rate))) }
                                td data-label="p95 (24 h)" { (ms(r.day.as_ref().and_then(|d| d.latency_quantile(0.95)))) }
                                td data-label="Last attempt" { (r.webhook.last_attempt_at.as_deref().unwrap_or("never")) }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next_cursor {
                p { a href={ "/webhooks?" (url::form_urlencoded::Serializer::new(String::new()).append_pair("search", search).append_pair("cursor", &c).finish()) } rel="next" { "Next page →" } }
            }
        },
    )
}

/// The values a webhook form shows (a stored webhook's, or what the user sent back).
#[derive(Default, Clone)]
pub struct WebhookFormValues {
    pub name: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub format: String,
    pub headers: String,
    pub retry_schedule: String,
    pub rate_limit: String,
    pub ordering: String,
    /// The payload filter's source; empty = none.
    pub filter: String,
    pub enabled: bool,
}

pub fn webhook_form(
    f: &Frame,
    catalog: &EventTypeList,
    values: &WebhookFormValues,
    errors: &BTreeMap<String, String>,
    action: &str,
    title: &str,
) -> Markup {
    let err = |field: &str| errors.get(field).cloned();
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &catalog.data {
        groups.entry(e.subject).or_default().push(e.name);
    }
    let custom: Vec<&String> = values
        .events
        .iter()
        .filter(|e| !catalog.data.iter().any(|c| c.name == e.as_str()))
        .collect();
    let custom = custom
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let field = |name: &str, label: &str, value: &str, kind: &str, hint: &str| {
        let e = err(name);
        let id = format!("f-{name}");
        let hint_id = format!("{id}-hint");
        let err_id = format!("{id}-error");
        html! {
            div.field.invalid[e.is_some()] {
                label for=(id) { (label) }
                @if !hint.is_empty() { small id=(hint_id) { (hint) } }
                input id=(id) name=(name) type=(kind) value=(value)
                    aria-invalid=[e.as_ref().map(|_| "true")]
                    aria-describedby=(if e.is_some() { err_id.clone() } else { hint_id.clone() });
                @if let Some(m) = &e { p.field-error id=(err_id) role="alert" { (m) } }
            }
        }
    };
    page(
        f,
        title,
        html! {
            h1 { (title) }
            @if let Some(m) = err(".") { p.error role="alert" { (m) } }
            form.webhook method="post" action=(action) novalidate {
                (csrf(f))
                (field("url", "URL", &values.url, "url", "The HTTPS endpoint that receives the deliveries."))
                (field("name", "Name", &values.name, "text", "Defaults to the URL's host."))
                (field("description", "Description", &values.description, "text", ""))
                fieldset.events.invalid[err("events").is_some()] {
                    legend { "Events" }
                    @if let Some(m) = err("events") { p.field-error role="alert" { (m) } }
                    @for (subject, names) in &groups {
                        details open {
                            summary { (subject) }
                            @for n in names {
                                label.check {
                                    input type="checkbox" name="events" value=(n)
                                        checked[values.events.iter().any(|e| e == n)];
                                    " " code { (n) }
                                }
                            }
                        }
                    }
                    label for="f-patterns" { "Patterns (comma-separated), e.g. " code { "contact.*" } " or " code { "*" } }
                    input id="f-patterns" name="patterns" type="text" value=(custom);
                }
                div.field.invalid[err("format").is_some()] {
                    label for="f-format" { "Format" }
                    select id="f-format" name="format" {
                        @for fmt in Format::ALL {
                            option value=(fmt.as_str()) selected[values.format == fmt.as_str()] { (format_label(fmt)) }
                        }
                    }
                    @if let Some(m) = err("format") { p.field-error role="alert" { (m) } }
                    div.example {
                        label for="f-example-event" { "Example body for" }
                        select id="f-example-event" {
                            @for e in &catalog.data { option value=(e.name) { (e.name) } }
                        }
                        pre id="format-example" aria-live="polite" { "Choose a format and an event to see an example body." }
                    }
                }
                div.field.invalid[err("headers").is_some()] {
                    label for="f-headers" { "Custom headers" }
                    small id="f-headers-hint" { "One per line, as " code { "Name: value" } ". Saved values are stored encrypted and shown masked (" code { "Bear…en" } "); leave a masked value as it is to keep it." }
                    textarea id="f-headers" name="headers" rows="3" aria-describedby="f-headers-hint" { (values.headers) }
                    @if let Some(m) = err("headers") { p.field-error role="alert" { (m) } }
                }
                (field("retry_schedule", "Retry schedule", &values.retry_schedule, "text", "Delays before each retry, e.g. 30s, 5m, 1h, or exp:30s..1h x8 (doubling, capped). Empty: the deployment's default."))
                (field("rate_limit", "Rate limit (deliveries per second)", &values.rate_limit, "number", "Empty: unlimited."))
                div.field.invalid[err("ordering").is_some()] {
                    label for="f-ordering" { "Ordering" }
                    select id="f-ordering" name="ordering" {
                        option value="none" selected[values.ordering != "entity"] { "none: fastest" }
                        option value="entity" selected[values.ordering == "entity"] { "per record: events of one record in order" }
                    }
                    @if let Some(m) = err("ordering") { p.field-error role="alert" { (m) } }
                }
                div.field.invalid[err("filter").is_some()] {
                    label for="f-filter" { "Filter" }
                    small id="f-filter-hint" {
                        "Only events this condition matches are delivered, e.g. "
                        code { "\"vip\" in data.tags[*].name" } " or "
                        code { "changes.owner_id != null && data.amount >= 1000" }
                        ". It reads " code { "type" } ", " code { "data" } ", " code { "changes" } ", "
                        code { "source" } ", " code { "actor" } ", " code { "occurred_at" } "; a missing field is "
                        code { "null" } ". Empty: every subscribed event."
                    }
                    textarea id="f-filter" name="filter" rows="3" spellcheck="false"
                        aria-invalid=[err("filter").map(|_| "true")]
                        aria-describedby=(if err("filter").is_some() { "f-filter-error" } else { "f-filter-hint" }) { (values.filter) }
                    @if let Some(m) = err("filter") { p.field-error id="f-filter-error" role="alert" { (m) } }
                }
                label.check { input type="checkbox" name="enabled" value="true" checked[values.enabled]; " Enabled" }
                div.actions { button type="submit" { "Save" } a href="/webhooks" { "Cancel" } }
            }
        },
    )
}

pub fn format_label(f: Format) -> &'static str {
    match f {
        Format::Envelope => "envelope: {event_id, occurred_at, data}",
        Format::Flat => "flat: {event, timestamp, data}",
        Format::RecordCentred => "entity: {event, data: {userId, companyId, entityId, payload}}",
        Format::ContactsList => "contacts-list: {event: ContactCreated, contacts}",
    }
}

/// What the last action on a webhook's page produced.
pub enum Outcome {
    Secret(String),
    Test(Box<TestView>),
    Verified(Box<HandshakeView>),
    ReplayCount {
        since: String,
        count: u64,
    },
    /// A replay was queued: how many deliveries its background job copies, and the job's id.
    Replayed {
        count: u64,
        job: Option<String>,
    },
    Message(String),
    Failed(String),
    /// A filter tried on a sample event (the form keeps what was typed): how it evaluated, or why
    /// the filter or the event was refused.
    FilterTest {
        filter: String,
        event: String,
        result: Result<FilterTestView, String>,
    },
}

pub struct WebhookPage<'a> {
    pub webhook: &'a WebhookView,
    pub day: &'a [HourStats],
    pub week: &'a [HourStats],
    pub catalog: &'a EventTypeList,
    pub outcome: Option<Outcome>,
}

pub fn webhook(f: &Frame, p: WebhookPage) -> Markup {
    let w = p.webhook;
    let location = format!("/webhooks/{}", w.id);
    let action = format!("/webhooks/{}/action", w.id);
    let button = |op: &str, label: &str| {
        html! {
            form.inline method="post" action=(action) {
                (csrf(f)) input type="hidden" name="op" value=(op);
                button type="submit" { (label) }
            }
        }
    };
    let day_total = hookline_core::stats::total(p.day);
    page_at(
        f,
        &w.name,
        Some(&location),
        html! {
            div.titlebar {
                h1 { (w.name) }
                (status_badge(w.enabled, w.disabled_reason.as_deref()))
            }
            @if let Some(o) = &p.outcome { (outcome(o, &action, f)) }
            dl.facts {
                dt { "URL" } dd { code.wrap { (w.url) } }
                @if !w.description.is_empty() { dt { "Description" } dd { (w.description) } }
                dt { "Events" } dd { (w.events.join(", ")) }
                dt { "Format" } dd { (w.format.as_str()) }
                dt { "Ordering" } dd { (w.ordering.as_str()) }
                dt { "Retry schedule" } dd { (w.retry_schedule.as_ref().map_or("deployment default".to_string(), |s| s.to_string())) }
                dt { "Rate limit" } dd { (w.rate_limit.map_or("unlimited".to_string(), |r| format!("{r}/s"))) }
                dt { "Filter" } dd {
                    @match &w.filter {
                        Some(src) => code.wrap { (src) },
                        None => "none: every subscribed event",
                    }
                }
                @if !w.headers.is_empty() {
                    dt { "Headers" } dd { @for (k, v) in &w.headers { code.wrap { (k) ": " (v) } br; } }
                }
                dt { "Success (24 h)" } dd { (pct(day_total.as_ref().and_then(HourStats::success_rate))) }
                dt { "Latency p50 / p95 (24 h)" } dd {
                    (ms(day_total.as_ref().and_then(|d| d.latency_quantile(0.5)))) " / "
                    (ms(day_total.as_ref().and_then(|d| d.latency_quantile(0.95))))
                }
                dt { "Log" } dd { a href={ "/deliveries?webhook_id=" (w.id) } { "This webhook's deliveries" } }
            }
            section.actions {
                h2 { "Actions" }
                @if f.can(Capability::Resend) {
                    form.inline method="post" action=(action) {
                        (csrf(f)) input type="hidden" name="op" value="test";
                        label for="test-event" { "Send test event" }
                        select id="test-event" name="event_type" {
                            @for e in &p.catalog.data {
                                @if w.format.carries(e.name) { option value=(e.name) { (e.name) } }
                            }
                        }
                        button type="submit" { "Send test" }
                    }
                    (button("verify", "Verify the receiver"))
                }
                @if f.can(Capability::RevealSecret) { (button("reveal", "Reveal secret")) }
                @if f.can(Capability::Manage) {
                    a.button href={ "/webhooks/" (w.id) "/edit" } { "Edit" }
                    @if w.enabled { (button("disable", "Disable")) } @else { (button("enable", "Enable")) }
                    form.inline method="post" action=(action) {
                        (csrf(f)) input type="hidden" name="op" value="rotate";
                        label for="grace" { "Rotate secret, old one valid for" }
                        input id="grace" name="grace_period" type="text" value="24h" size="5";
                        button type="submit" { "Rotate" }
                    }
                }
                @if f.can(Capability::Resend) {
                    form.inline method="post" action=(action) {
                        (csrf(f)) input type="hidden" name="op" value="replay_count";
                        label for="replay-since" { "Replay failed deliveries since" }
                        input id="replay-since" name="since" type="text" placeholder="2026-01-31T00:00:00Z" required;
                        button type="submit" { "Count" }
                    }
                }
                @if f.can(Capability::Manage) {
                    form.inline.danger method="post" action=(action) data-confirm="Delete this webhook and cancel its queued deliveries?" {
                        (csrf(f)) input type="hidden" name="op" value="delete";
                        label.check { input type="checkbox" name="confirm" value="yes" required; " I understand its queued deliveries are cancelled" }
                        button type="submit" { "Delete" }
                    }
                }
            }
            (filter_test_form(f, w, p.outcome.as_ref(), &action))
            section.charts {
                h2 { "Last 24 hours" }
                (charts::deliveries_per_hour(p.day, 24, "Deliveries per hour, last 24 hours"))
                (charts::latency(p.day, 24, "Latency p50 and p95 per hour, last 24 hours"))
                h2 { "Last 7 days" }
                (charts::deliveries_per_hour(p.week, 24 * 7, "Deliveries per hour, last 7 days"))
                (charts::latency(p.week, 24 * 7, "Latency p50 and p95 per hour, last 7 days"))
            }
        },
    )
}

fn outcome(o: &Outcome, action: &str, f: &Frame) -> Markup {
    html! {
        section.outcome aria-live="polite" {
            @match o {
                Outcome::Secret(s) => {
                    h2 { "Signing secret" }
                    p { code #secret .wrap { (s) } " " button type="button" data-copy="secret" { "Copy" } }
                }
                Outcome::Test(t) => {
                    h2 { "Test " (if t.success { "delivered" } else { "failed" }) }
                    p { "Event " code { (t.event_type) } }
                    (attempt(&t.attempt))
                }
                Outcome::Verified(v) => {
                    h2 { "Receiver check: " (v.verdict_label()) }
                    p { (v.advice) }
                    h3 { "Mis-signed request" } (attempt(&v.mis_signed))
                    h3 { "Correctly signed request" } (attempt(&v.signed))
                }
                Outcome::ReplayCount { since, count } => {
                    h2 { "Replay" }
                    p { (count) " failed deliveries since " (since) " would be sent again." }
                    @if *count > 0 {
                        form method="post" action=(action) {
                            (csrf(f)) input type="hidden" name="op" value="replay";
                            input type="hidden" name="since" value=(since);
                            button type="submit" { "Replay " (count) }
                        }
                    }
                }
                Outcome::Replayed { count, job } => {
                    p.ok role="status" {
                        @match job {
                            Some(job) => { (count) " deliveries are being queued again by replay job " code { (job) } "." }
                            None => { "Nothing to replay." }
                        }
                    }
                }
                Outcome::Message(m) => { p.ok role="status" { (m) } }
                Outcome::Failed(m) => { p.error role="alert" { (m) } }
                Outcome::FilterTest { result, .. } => {
                    @match result {
                        Ok(v) if v.exhausted => { p.error role="status" { "The filter ran out of steps (" (v.steps) "): it does not match." } }
                        Ok(v) if v.matches => { p.ok role="status" { "The filter matches: this event would be delivered." } }
                        Ok(v) => { p.error role="status" { "The filter does not match (its value is " code { (v.value) } "): this event would not be delivered." } }
                        Err(_) => { p.error role="alert" { "The filter could not be tried: see below." } }
                    }
                }
            }
        }
    }
}

/// "Try a filter": a filter (the stored one, or what was last tried) and a sample event as the
/// filter reads it; posting it answers whether the event would be delivered. Saves nothing.
fn filter_test_form(f: &Frame, w: &WebhookView, o: Option<&Outcome>, action: &str) -> Markup {
    let (filter, event, error) = match o {
        Some(Outcome::FilterTest {
            filter,
            event,
            result,
        }) => (
            filter.clone(),
            event.clone(),
            result.as_ref().err().cloned(),
        ),
        _ => {
            let first = w.events.first().map_or("contact.created", |e| e.as_str());
            let sample = serde_json::json!({"type": first.replace('*', "created"), "data": {}, "changes": null});
            (
                w.filter.clone().unwrap_or_default(),
                sample.to_string(),
                None,
            )
        }
    };
    html! {
        section.filter-test {
            h2 { "Try a filter" }
            form method="post" action=(action) {
                (csrf(f)) input type="hidden" name="op" value="filter_test";
                div.field.invalid[error.is_some()] {
                    label for="ft-filter" { "Filter" }
                    textarea id="ft-filter" name="filter" rows="2" spellcheck="false"
                        aria-invalid=[error.as_ref().map(|_| "true")]
                        aria-describedby=[error.as_ref().map(|_| "ft-error")] { (filter) }
                    @if let Some(m) = &error { p.field-error id="ft-error" role="alert" { (m) } }
                }
                div.field {
                    label for="ft-event" { "Sample event (JSON)" }
                    small id="ft-event-hint" { "As the filter reads it: " code { "type" } ", " code { "data" } ", " code { "changes" } ", " code { "source" } ", " code { "actor" } ", " code { "occurred_at" } ", " code { "id" } "." }
                    textarea id="ft-event" name="event" rows="6" spellcheck="false" aria-describedby="ft-event-hint" { (event) }
                }
                button type="submit" { "Try" }
            }
        }
    }
}

/// One attempt: status or error, a timing bar, headers and the (capped) body as text.
pub fn attempt(a: &AttemptView) -> Markup {
    html! {
        div.attempt {
            p {
                strong { "#" (a.attempt_number) } " " (a.started_at) " — "
                @if let Some(c) = a.status_code { span.badge.ok[(200..300).contains(&c)].off[!(200..300).contains(&c)] { "HTTP " (c) } }
                @if let Some(k) = &a.error_kind { span.badge.off { (k) } " " (a.error_message.as_deref().unwrap_or("")) }
            }
            (charts::timing_bar(a))
            details {
                summary { "Request headers" }
                pre { @for (k, v) in &a.request_headers { (k) ": " (v) "\n" } }
            }
            details {
                summary { "Response headers" }
                pre { @for (k, v) in &a.response_headers { (k) ": " (v) "\n" } }
            }
            @if let Some(b) = &a.response_body {
                details open {
                    summary { "Response body" @if a.response_truncated { " (truncated)" } }
                    pre.body { (b) }
                }
            }
        }
    }
}

pub struct DeliveryFilters {
    pub status: String,
    pub event_type: String,
    pub webhook_id: String,
    pub since: String,
    pub until: String,
    pub search: String,
}

impl DeliveryFilters {
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &self.status)
            .append_pair("event_type", &self.event_type)
            .append_pair("webhook_id", &self.webhook_id)
            .append_pair("since", &self.since)
            .append_pair("until", &self.until)
            .append_pair("search", &self.search)
            .finish()
    }
}

pub fn delivery_rows(rows: &[DeliveryView]) -> Markup {
    html! {
        @for d in rows {
            tr {
                td data-label="Delivery" { a href={ "/deliveries/" (d.id) } { code { (d.id.to_string()[..13]) "…" } } }
                td data-label="Event" { code { (d.event_type) } }
                td data-label="URL" { code.wrap { (d.url) } }
                td data-label="Status" { span.badge.ok[d.status == "delivered"].off[d.status == "failed"] { (d.status) } }
                td data-label="Attempts" { (d.attempt_count) }
                td data-label="Last result" { (d.last_status_code.map(|c| c.to_string()).or(d.last_error.clone()).unwrap_or_default()) }
                td data-label="Created" { (d.created_at) }
            }
        }
    }
}

pub fn deliveries(
    f: &Frame,
    rows: &[DeliveryView],
    filters: &DeliveryFilters,
    error: Option<&str>,
    next_cursor: Option<String>,
    first_page: bool,
) -> Markup {
    page(
        f,
        "Deliveries",
        html! {
            h1 { "Deliveries" }
            form.filters method="get" action="/deliveries" {
                div.field {
                    label for="d-status" { "Status" }
                    select id="d-status" name="status" {
                        option value="" { "any" }
                        @for s in hookline_store::DeliveryStatus::ALL.map(|s| s.as_str()) {
                            option value=(s) selected[filters.status == s] { (s) }
                        }
                    }
                }
                div.field { label for="d-event" { "Event type" } input id="d-event" name="event_type" type="text" value=(filters.event_type); }
                div.field { label for="d-webhook" { "Webhook id" } input id="d-webhook" name="webhook_id" type="text" value=(filters.webhook_id); }
                div.field { label for="d-since" { "Since (RFC 3339)" } input id="d-since" name="since" type="text" value=(filters.since); }
                div.field { label for="d-until" { "Until" } input id="d-until" name="until" type="text" value=(filters.until); }
                div.field { label for="d-search" { "URL or event name" } input id="d-search" name="search" type="search" value=(filters.search); }
                button type="submit" { "Filter" }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            table.list {
                thead { tr { th { "Delivery" } th { "Event" } th { "URL" } th { "Status" } th { "Attempts" } th { "Last result" } th { "Created" } } }
                tbody id="delivery-rows" data-live=[first_page.then(|| format!("/deliveries?{}&fragment=rows", filters.query()))] {
                    (delivery_rows(rows))
                }
            }
            @if rows.is_empty() { p.empty { "No deliveries match." } }
            @if let Some(c) = next_cursor {
                p { a href={ "/deliveries?" (filters.query()) "&cursor=" (c) } rel="next" { "Older →" } }
            }
        },
    )
}

pub fn delivery(
    f: &Frame,
    d: &DeliveryDetail,
    body: Option<&str>,
    resends: &[DeliveryView],
) -> Markup {
    let v = &d.delivery;
    page(
        f,
        "Delivery",
        html! {
            h1 { "Delivery " code.wrap { (v.id) } }
            dl.facts {
                // The log record's id (the heading) is not what the receiver sees on a resend.
                dt { "Message id" } dd { code.wrap { (v.message_id) } " " small { "(what the receiver sees and deduplicates on)" } }
                dt { "Status" } dd { span.badge.ok[v.status == "delivered"].off[v.status == "failed"] { (v.status) } }
                @if let Some(r) = &v.cancel_reason { dt { "Cancelled because" } dd { code { (r) } } }
                dt { "Event" } dd { code { (v.event_type) } " (" code { (v.event_id) } ")" }
                dt { "Webhook" } dd { a href={ "/webhooks/" (v.webhook_id) } { code.wrap { (v.url) } } }
                dt { "Attempts" } dd { (v.attempt_count) }
                @if let Some(n) = &v.next_attempt_at { dt { "Next attempt" } dd { (n) } }
                @if let Some(o) = &v.resent_from { dt { "Resent from" } dd { a href={ "/deliveries/" (o) } { code { (o) } } } }
                @if !resends.is_empty() {
                    dt { "Resent as" } dd { @for r in resends { a href={ "/deliveries/" (r.id) } { code { (r.id) } } br; } }
                }
                dt { "Created" } dd { (v.created_at) }
            }
            @if f.can(Capability::Resend) {
                form method="post" action={ "/deliveries/" (v.id) "/resend" } {
                    (csrf(f))
                    button type="submit" { "Resend" }
                }
            }
            @if let Some(b) = body {
                h2 { "Body as sent" }
                pre.body { (b) }
            }
            h2 { "Attempts" }
            @if d.attempts.is_empty() { p.empty { "No attempt has finished yet." } }
            @for a in &d.attempts { (attempt(a)) }
        },
    )
}

pub fn event_types(
    f: &Frame,
    catalog: &EventTypeList,
    examples: &[(String, Vec<(Format, String)>)],
) -> Markup {
    page(
        f,
        "Event types",
        html! {
            h1 { "Event types" }
            p { "Subscribe with any spelling; patterns such as " code { "contact.*" } " or " code { "*" } " work too." }
            @for e in &catalog.data {
                section.event id=(e.name) {
                    h2 { code { (e.name) } }
                    p { (e.description) }
                    @if !e.aliases.is_empty() { p.muted { "Also: " (e.aliases.join(", ")) } }
                    @if let Some((_, bodies)) = examples.iter().find(|(n, _)| n == e.name) {
                        @for (fmt, body) in bodies {
                            details {
                                summary { (fmt.as_str()) " — " code { (fmt.event_name(e.name)) } }
                                pre.body { (body) }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn test_url(
    f: &Frame,
    url: &str,
    format: &str,
    event_type: &str,
    catalog: &EventTypeList,
    result: Option<Result<&TestView, String>>,
) -> Markup {
    page(
        f,
        "Test a URL",
        html! {
            h1 { "Test a URL before saving it" }
            form method="post" action="/test-url" {
                (csrf(f))
                div.field { label for="t-url" { "URL" } input id="t-url" name="url" type="url" value=(url) required; }
                div.field {
                    label for="t-format" { "Format" }
                    select id="t-format" name="format" {
                        @for fmt in Format::ALL { option value=(fmt.as_str()) selected[format == fmt.as_str()] { (format_label(fmt)) } }
                    }
                }
                div.field {
                    label for="t-event" { "Event" }
                    select id="t-event" name="event_type" {
                        @for e in &catalog.data { option value=(e.name) selected[event_type == e.name] { (e.name) } }
                    }
                }
                button type="submit" { "Send test" }
            }
            @match result {
                Some(Ok(t)) => {
                    section.outcome {
                        h2 { "Test " (if t.success { "delivered" } else { "failed" }) }
                        @if let Some(s) = &t.secret { p { "Signed with the secret " code.wrap { (s) } } }
                        (attempt(&t.attempt))
                    }
                }
                Some(Err(m)) => { p.error role="alert" id="t-url-error" { (m) } }
                None => {}
            }
        },
    )
}

/// What the API keys page shows besides the list.
#[derive(Default)]
pub struct KeysPage<'a> {
    /// A key just created: shown this once.
    pub created: Option<&'a CreatedApiKey>,
    /// The create form's values and field errors (`"."`: not about one field).
    pub values: KeyFormValues,
    pub errors: BTreeMap<String, String>,
    /// The outcome of a revocation.
    pub message: Option<Result<String, String>>,
    pub next_cursor: Option<String>,
}

#[derive(Default)]
pub struct KeyFormValues {
    pub name: String,
    pub scope: String,
    pub expires_in: String,
}

fn key_status(k: &ApiKeyView) -> Markup {
    html! {
        @match k.status.as_str() {
            "active" => span.badge.ok { "active" },
            other => span.badge.off { (other) },
        }
    }
}

pub fn api_keys(f: &Frame, keys: &[ApiKeyView], p: &KeysPage) -> Markup {
    let err = |field: &str| p.errors.get(field).cloned();
    let manage = f
        .signed
        .is_some_and(|s| s.principal.require_tenant_write().is_ok());
    page_at(
        f,
        "API keys",
        Some("/keys"),
        html! {
            h1 { "API keys" }
            p { "Keys sign requests to the API and the CLI in to this deployment. A " strong { "full" }
                " key may do everything; a " strong { "read" } " key only reads (GET requests, a read-only console)." }
            @if let Some(c) = p.created {
                section.outcome aria-live="polite" {
                    h2 { "New key “" (c.view.name) "”" }
                    p { "Copy it now: it is shown only this once." }
                    p { code #new-key .wrap { (c.key) } " " button type="button" data-copy="new-key" { "Copy" } }
                }
            }
            @match &p.message {
                Some(Ok(m)) => { p.ok role="status" { (m) } }
                Some(Err(m)) => { p.error role="alert" { (m) } }
                None => {}
            }
            @if keys.is_empty() {
                p.empty { "No API keys." }
            } @else {
                table.list {
                    thead { tr {
                        th { "Name" } th { "Prefix" } th { "Scope" } th { "Status" } th { "Created" }
                        th { "Last used" } th { "Expires" } th { "Revoked" }
                        @if manage { th { "Actions" } }
                    } }
                    tbody {
                        @for k in keys {
                            tr {
                                td data-label="Name" { (k.name) @if k.current { " " span.muted { "(this session)" } } }
                                td data-label="Prefix" { code { (k.prefix) "…" } }
                                td data-label="Scope" { (k.scope) }
                                td data-label="Status" { (key_status(k)) }
                                td data-label="Created" { (k.created_at) }
                                td data-label="Last used" { (k.last_used_at.as_deref().unwrap_or("never")) }
                                td data-label="Expires" { (k.expires_at.as_deref().unwrap_or("never")) }
                                td data-label="Revoked" { (k.revoked_at.as_deref().unwrap_or("–")) }
                                @if manage {
                                    td data-label="Actions" {
                                        @if k.revoked_at.is_none() {
                                            form.inline.danger method="post" action={ "/keys/" (k.id) "/revoke" }
                                                data-confirm={ "Revoke the key “" (k.name) "”? Whatever uses it stops working at once." } {
                                                (csrf(f))
                                                label.check { input type="checkbox" name="confirm" value="yes" required; " I'm sure" }
                                                button type="submit" { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = &p.next_cursor {
                p { a href={ "/keys?cursor=" (c) } rel="next" { "Older →" } }
            }
            @if manage {
                section {
                    h2 { "New API key" }
                    @if let Some(m) = err(".") { p.error role="alert" { (m) } }
                    form method="post" action="/keys" novalidate {
                        (csrf(f))
                        div.field.invalid[err("name").is_some()] {
                            label for="k-name" { "Name" }
                            small id="k-name-hint" { "What it is for, e.g. “CI deploys”." }
                            input id="k-name" name="name" type="text" value=(p.values.name) required
                                aria-invalid=[err("name").map(|_| "true")]
                                aria-describedby=(if err("name").is_some() { "k-name-error" } else { "k-name-hint" });
                            @if let Some(m) = err("name") { p.field-error id="k-name-error" role="alert" { (m) } }
                        }
                        div.field.invalid[err("scope").is_some()] {
                            label for="k-scope" { "Scope" }
                            select id="k-scope" name="scope" {
                                option value="full" selected[p.values.scope != "read"] { "full: everything, managing keys included" }
                                option value="read" selected[p.values.scope == "read"] { "read: lists and details only" }
                            }
                            @if let Some(m) = err("scope") { p.field-error role="alert" { (m) } }
                        }
                        div.field.invalid[err("expires_in").is_some()] {
                            label for="k-expires" { "Expires in" }
                            small id="k-expires-hint" { "e.g. 90d or 12h; empty: never (until revoked)." }
                            input id="k-expires" name="expires_in" type="text" value=(p.values.expires_in) size="8"
                                aria-invalid=[err("expires_in").map(|_| "true")]
                                aria-describedby=(if err("expires_in").is_some() { "k-expires-error" } else { "k-expires-hint" });
                            @if let Some(m) = err("expires_in") { p.field-error id="k-expires-error" role="alert" { (m) } }
                        }
                        div.actions { button type="submit" { "Create key" } }
                    }
                }
            }
        },
    )
}

/// What the erasures page shows besides the list.
#[derive(Default)]
pub struct ErasuresPage<'a> {
    /// An erasure just queued.
    pub queued: Option<&'a ErasureView>,
    /// The form's values (entity type, id) and field errors (`"."`: not about one field).
    pub values: (String, String),
    pub errors: BTreeMap<String, String>,
    pub next_cursor: Option<String>,
}

pub fn erasures(f: &Frame, list: &[ErasureView], p: &ErasuresPage) -> Markup {
    let err = |field: &str| p.errors.get(field).cloned();
    let manage = f
        .signed
        .is_some_and(|s| s.principal.require_tenant_write().is_ok());
    let count = |e: &ErasureView| {
        let c = &e.erased;
        format!(
            "{} events dropped, {} rewritten; {} deliveries and {} attempts removed, {} answers redacted; {} record",
            c.events_dropped, c.events_rewritten, c.deliveries_removed, c.attempts_removed,
            c.attempts_redacted, c.records_removed
        )
    };
    page_at(
        f,
        "Erasures",
        Some("/erasures"),
        html! {
            h1 { "Erasures" }
            p { "Erase one record everywhere Hookline keeps it (right to erasure): the record, every stored event about it "
                "with its deliveries and attempts, batches rewritten without it, and receivers' stored answers to them. "
                "Events that only refer to it (a deal's contact id) stay. Each erasure runs as a background job; this list "
                "is the audit: what was erased, as counts, never the data." }
            @if let Some(e) = p.queued {
                p.ok role="status" { "Erasure of " (e.entity_type) " " code { (e.entity_id) } " queued (" (e.status) ")." }
            }
            @if list.is_empty() {
                p.empty { "No erasures." }
            } @else {
                table.list {
                    thead { tr { th { "Record" } th { "Status" } th { "Removed" } th { "Requested" } th { "Finished" } } }
                    tbody {
                        @for e in list {
                            tr {
                                td data-label="Record" { (e.entity_type) " " code { (e.entity_id) } }
                                td data-label="Status" {
                                    @match e.status.as_str() {
                                        "succeeded" => span.badge.ok { "succeeded" },
                                        other => span.badge { (other) },
                                    }
                                    @if let Some(m) = &e.error { " " span.error { (m) } }
                                }
                                td data-label="Removed" { (count(e)) }
                                td data-label="Requested" { (e.created_at) }
                                td data-label="Finished" { (e.finished_at.as_deref().unwrap_or("–")) }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = &p.next_cursor {
                p { a href={ "/erasures?cursor=" (c) } rel="next" { "Older →" } }
            }
            @if manage {
                section {
                    h2 { "Erase a record" }
                    @if let Some(m) = err(".") { p.error role="alert" { (m) } }
                    form method="post" action="/erasures" novalidate
                        data-confirm="Erase this record everywhere? This can't be undone." {
                        (csrf(f))
                        div.field.invalid[err("entity_type").is_some()] {
                            label for="e-type" { "Type" }
                            input id="e-type" name="entity_type" type="text" value=(p.values.0) placeholder="contact" required
                                aria-invalid=[err("entity_type").map(|_| "true")]
                                aria-describedby=[err("entity_type").map(|_| "e-type-error")];
                            @if let Some(m) = err("entity_type") { p.field-error id="e-type-error" role="alert" { (m) } }
                        }
                        div.field.invalid[err("entity_id").is_some()] {
                            label for="e-id" { "Id" }
                            input id="e-id" name="entity_id" type="text" value=(p.values.1) required
                                aria-invalid=[err("entity_id").map(|_| "true")]
                                aria-describedby=[err("entity_id").map(|_| "e-id-error")];
                            @if let Some(m) = err("entity_id") { p.field-error id="e-id-error" role="alert" { (m) } }
                        }
                        label.check { input type="checkbox" name="confirm" value="yes" required; " I'm sure: this can't be undone" }
                        div.actions { button type="submit" { "Erase" } }
                    }
                }
            }
        },
    )
}

impl HandshakeView {
    fn verdict_label(&self) -> &'static str {
        use crate::service::ReceiverVerdict::*;
        match self.verdict {
            VerifiesSignatures => "verifies signatures",
            AcceptsBadSignatures => "accepts bad signatures",
            RejectsValidSignatures => "rejects valid signatures",
            Unreachable => "unreachable",
        }
    }
}

/// A rendered page as an HTML response.
pub fn html(markup: maud::Markup) -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}
