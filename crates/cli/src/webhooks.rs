//! `hookline webhooks …`: the `/v1/webhooks` resource over the REST API: list, get, create, update,
//! delete, enable/disable, secrets, test sends, the receiver handshake and trying a payload filter.
//!
//! Options map one-to-one onto the API's fields; nothing is validated here beyond turning flags
//! into JSON, so a refusal is the API's own message naming the field.

use crate::client::Api;
use crate::error::{failed, usage};
use crate::input::PageArgs;
use crate::output::{self, details, show, text, Table};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List webhooks, newest first.
    List {
        /// Only webhooks whose name, URL or description contains this text.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one webhook.
    Get { id: String },
    /// Create a webhook. Prints it with its signing secret (shown here and by `webhooks secret`).
    Create(CreateArgs),
    /// Change some settings of a webhook; what isn't given keeps its value.
    Update(UpdateArgs),
    /// Delete a webhook with its delivery log.
    Delete {
        id: String,
        /// Don't ask for confirmation (asked only on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Turn deliveries on again (also after Hookline disabled a failing webhook).
    Enable { id: String },
    /// Stop making deliveries to a webhook (events published meanwhile are not queued for it).
    Disable { id: String },
    /// Print a webhook's current signing secret.
    Secret { id: String },
    /// Replace the signing secret; the old one keeps signing beside the new one for a grace period.
    RotateSecret {
        id: String,
        /// The new secret (default: a generated `whsec_…`).
        #[arg(long)]
        secret: Option<String>,
        /// How long the old secret keeps signing, e.g. 24h (the default) or 0s to stop at once.
        #[arg(long)]
        grace_period: Option<String>,
    },
    /// Send a sample event now and show the receiver's answer (exit 1 unless it answers 2xx).
    /// Give a webhook id, or --url (with --format, --secret) for an endpoint not saved yet.
    Test {
        /// The webhook to test.
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        id: Option<String>,
        /// Test a URL that isn't a saved webhook (same URL policy; nothing is stored).
        #[arg(long)]
        url: Option<String>,
        /// With --url: the wire format (envelope, flat, entity, contacts-list).
        #[arg(long, requires = "url")]
        format: Option<String>,
        /// With --url: the secret to sign with (default: a generated one, printed back).
        #[arg(long, requires = "url")]
        secret: Option<String>,
        /// The event to simulate (default: the first one the webhook subscribes to).
        #[arg(long)]
        event_type: Option<String>,
    },
    /// Check that the receiver verifies signatures: it gets one mis-signed and one signed request
    /// and should refuse the first and accept the second (exit 1 unless it does).
    VerifyReceiver {
        id: String,
        /// The event to simulate.
        #[arg(long)]
        event_type: Option<String>,
    },
    /// Try a payload filter on a sample event, as fan-out would evaluate it (nothing is saved).
    /// Exit 0 when it matches (the event would be delivered), 1 when it doesn't.
    FilterTest {
        /// The filter, e.g. '"vip" in data.tags[*].name'.
        #[arg(long)]
        filter: String,
        /// The event as a filter reads it ({"type": …, "data": …, "changes": …, "actor": …}):
        /// JSON text, @FILE, or - for standard input (the default when it isn't a terminal).
        #[arg(long, conflicts_with = "event_file")]
        event: Option<String>,
        /// Read the event from this JSON file.
        #[arg(long, value_name = "FILE")]
        event_file: Option<String>,
    },
}

/// Settings both `create` and `update` take.
#[derive(Args)]
pub struct Settings {
    /// Display name (default: the URL's host).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Wire format: envelope (default), flat, entity or contacts-list.
    #[arg(long)]
    format: Option<String>,
    /// A header sent with every delivery, as `Name=value` or `Name: value`; repeat for more.
    /// On update the given headers replace all the webhook's headers.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Delays before each retry, e.g. `30s,6m,2h` or `exp:30s..1h x8` (8 retries doubling from
    /// 30s, capped at 1h); `never` for no retries; `default` for the deployment's schedule.
    #[arg(long, value_name = "DELAYS")]
    retry_schedule: Option<String>,
    /// Deliveries per second at most, or `none`.
    #[arg(long, value_name = "N|none")]
    rate_limit: Option<String>,
    /// `none` (default) or `entity`: events about one record arrive in order.
    #[arg(long)]
    ordering: Option<String>,
    /// Deliver only the events this condition matches, e.g. 'data.amount >= 1000' (see "Filters"
    /// in the README; `webhooks filter-test` tries one out).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The endpoint (https://…).
    #[arg(long)]
    url: String,
    /// Event names or patterns, comma-separated or repeated: contact.*,deal.stage.changed
    #[arg(long, required = true, value_delimiter = ',')]
    events: Vec<String>,
    /// The signing secret (default: a generated `whsec_…`).
    #[arg(long)]
    secret: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
pub struct UpdateArgs {
    id: String,
    /// A new endpoint.
    #[arg(long)]
    url: Option<String>,
    /// The new subscription (replaces the old one), comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// Remove every custom header.
    #[arg(long, conflicts_with = "headers")]
    clear_headers: bool,
    /// Remove the payload filter: every subscribed event is delivered again.
    #[arg(long, conflicts_with = "filter")]
    clear_filter: bool,
    #[command(flatten)]
    settings: Settings,
}

/// `Name=value` or `Name: value`, split at whichever separator comes first.
fn header(raw: &str) -> anyhow::Result<(String, String)> {
    let at = raw
        .find(['=', ':'])
        .ok_or_else(|| usage(format!("--header `{raw}` must look like Name=value")))?;
    let (name, value) = (raw[..at].trim(), raw[at + 1..].trim());
    if name.is_empty() {
        return Err(usage(format!("--header `{raw}` has no name")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `30s,6m,2h` → `["30s","6m","2h"]` (bare numbers as seconds), `never` → `[]`, `default` → `null`.
fn retry_schedule(raw: &str) -> Value {
    match raw.trim() {
        "default" => Value::Null,
        "never" | "none" | "" => json!([]),
        list => Value::Array(
            list.split(',')
                .map(str::trim)
                .map(|d| match d.parse::<u64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(d),
                })
                .collect(),
        ),
    }
}

impl Settings {
    fn apply(&self, body: &mut Map<String, Value>) -> anyhow::Result<()> {
        if let Some(v) = &self.name {
            body.insert("name".into(), json!(v));
        }
        if let Some(v) = &self.description {
            body.insert("description".into(), json!(v));
        }
        if let Some(v) = &self.format {
            body.insert("format".into(), json!(v));
        }
        if !self.headers.is_empty() {
            let mut map = Map::new();
            for h in &self.headers {
                let (k, v) = header(h)?;
                map.insert(k, json!(v));
            }
            body.insert("headers".into(), Value::Object(map));
        }
        if let Some(v) = &self.retry_schedule {
            body.insert("retry_schedule".into(), retry_schedule(v));
        }
        if let Some(v) = &self.rate_limit {
            let limit = match v.trim() {
                "none" | "null" => Value::Null,
                n => json!(n.parse::<u64>().map_err(|_| usage(format!(
                    "--rate-limit `{n}` must be a whole number of deliveries per second, or `none`"
                )))?),
            };
            body.insert("rate_limit".into(), limit);
        }
        if let Some(v) = &self.ordering {
            body.insert("ordering".into(), json!(v));
        }
        if let Some(v) = &self.filter {
            body.insert("filter".into(), json!(v));
        }
        Ok(())
    }
}

/// A webhook as `label  value` lines.
fn print_webhook(w: &Value) {
    let status = match (w["enabled"].as_bool(), w["disabled_reason"].as_str()) {
        (Some(true), _) => "enabled".to_string(),
        (_, Some(reason)) => format!("disabled ({reason})"),
        _ => "disabled".to_string(),
    };
    let headers = w["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {}", show(v)))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let retry = match &w["retry_schedule"] {
        Value::Null => "deployment default".to_string(),
        Value::Array(a) if a.is_empty() => "never".to_string(),
        other => show(other),
    };
    let rate = match &w["rate_limit"] {
        Value::Null => "none".to_string(),
        n => format!("{n}/s"),
    };
    details(&[
        ("id", text(w, "id")),
        ("name", text(w, "name")),
        ("url", text(w, "url")),
        ("events", text(w, "events")),
        ("status", status),
        ("format", text(w, "format")),
        ("ordering", text(w, "ordering")),
        ("headers", headers),
        ("retries", retry),
        ("rate limit", rate),
        ("filter", w["filter"].as_str().unwrap_or("none").to_string()),
        (
            "description",
            w["description"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "old secret until",
            w["previous_secret_expires_at"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        ("created", text(w, "created_at")),
        ("updated", text(w, "updated_at")),
        (
            "secret",
            w["secret"].as_str().unwrap_or_default().to_string(),
        ),
    ]);
}

/// One attempt's outcome: `HTTP 200`, or the error kind and message.
pub fn outcome(a: &Value) -> String {
    match (a["status_code"].as_u64(), a["error_kind"].as_str()) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(kind)) => match a["error_message"].as_str() {
            Some(m) if !m.is_empty() => format!("{kind}: {m}"),
            _ => kind.to_string(),
        },
        (None, None) => "no answer".into(),
    }
}

fn confirm(question: &str) -> bool {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

pub async fn run(api: &Api, as_json: bool, cmd: &WebhooksCommand) -> anyhow::Result<()> {
    let one = |w: &Value| {
        if as_json {
            output::json(w)
        } else {
            print_webhook(w)
        }
    };
    match cmd {
        WebhooksCommand::List { search, page } => {
            let filters = [("search", search.clone().unwrap_or_default())];
            let list = api
                .list(
                    &["v1", "webhooks"],
                    &filters,
                    page.limit(),
                    page.cursor.clone(),
                )
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "NAME", "STATUS", "FORMAT", "URL", "EVENTS"]);
            for w in output::rows(&list) {
                let status = if w["enabled"].as_bool() == Some(true) {
                    "enabled"
                } else {
                    "disabled"
                };
                t.row(vec![
                    text(w, "id"),
                    text(w, "name"),
                    status.into(),
                    text(w, "format"),
                    text(w, "url"),
                    text(w, "events"),
                ]);
            }
            t.print("no webhooks");
            output::more(&list);
        }
        WebhooksCommand::Get { id } => one(&api.get(&["v1", "webhooks", id], &[]).await?),
        WebhooksCommand::Create(a) => {
            let mut body = Map::new();
            body.insert("url".into(), json!(a.url));
            body.insert("events".into(), json!(a.events));
            if let Some(s) = &a.secret {
                body.insert("secret".into(), json!(s));
            }
            if a.disabled {
                body.insert("enabled".into(), json!(false));
            }
            a.settings.apply(&mut body)?;
            let w = api
                .post(&["v1", "webhooks"], Some(Value::Object(body)))
                .await?;
            one(&w);
            if !as_json {
                eprintln!(
                    "Created. Keep the secret: `hookline webhooks secret {}` shows it again.",
                    text(&w, "id")
                );
            }
        }
        WebhooksCommand::Update(a) => {
            let mut body = Map::new();
            if let Some(u) = &a.url {
                body.insert("url".into(), json!(u));
            }
            if let Some(e) = &a.events {
                body.insert("events".into(), json!(e));
            }
            if a.clear_headers {
                body.insert("headers".into(), json!({}));
            }
            if a.clear_filter {
                body.insert("filter".into(), Value::Null);
            }
            a.settings.apply(&mut body)?;
            if body.is_empty() {
                return Err(usage(
                    "nothing to change: give at least one setting (see `hookline webhooks update --help`)",
                ));
            }
            one(&api
                .patch(&["v1", "webhooks", &a.id], Value::Object(body))
                .await?);
        }
        WebhooksCommand::Delete { id, yes } => {
            if !yes
                && std::io::stdin().is_terminal()
                && !confirm(&format!("Delete webhook {id} and its delivery log?"))
            {
                return Err(failed("not deleted"));
            }
            api.delete(&["v1", "webhooks", id]).await?;
            if as_json {
                output::json(&json!({"id": id, "deleted": true}));
            } else {
                outln!("deleted webhook {id}");
            }
        }
        WebhooksCommand::Enable { id } | WebhooksCommand::Disable { id } => {
            let enabled = matches!(cmd, WebhooksCommand::Enable { .. });
            let w = api
                .patch(&["v1", "webhooks", id], json!({"enabled": enabled}))
                .await?;
            if as_json {
                output::json(&w);
            } else {
                outln!(
                    "webhook {id} is {}",
                    if enabled { "enabled" } else { "disabled" }
                );
            }
        }
        WebhooksCommand::Secret { id } => {
            let s = api.get(&["v1", "webhooks", id, "secret"], &[]).await?;
            if as_json {
                output::json(&s);
            } else {
                // Only the secret on standard output, so `SECRET=$(hookline webhooks secret ID)`.
                outln!("{}", text(&s, "secret"));
                if let Some(until) = s["previous_secret_expires_at"].as_str() {
                    eprintln!("(the previous secret also signs until {until})");
                }
            }
        }
        WebhooksCommand::RotateSecret {
            id,
            secret,
            grace_period,
        } => {
            let mut body = Map::new();
            if let Some(s) = secret {
                body.insert("secret".into(), json!(s));
            }
            if let Some(g) = grace_period {
                body.insert("grace_period".into(), json!(g));
            }
            let s = api
                .post(
                    &["v1", "webhooks", id, "rotate-secret"],
                    Some(Value::Object(body)),
                )
                .await?;
            if as_json {
                output::json(&s);
            } else {
                outln!("{}", text(&s, "secret"));
                if let Some(until) = s["previous_secret_expires_at"].as_str() {
                    eprintln!("(the previous secret also signs until {until})");
                }
            }
        }
        WebhooksCommand::Test {
            id,
            url,
            format,
            secret,
            event_type,
        } => {
            let mut body = Map::new();
            if let Some(t) = event_type {
                body.insert("event_type".into(), json!(t));
            }
            let t = match (id, url) {
                (Some(id), _) => {
                    api.post(&["v1", "webhooks", id, "test"], Some(Value::Object(body)))
                        .await?
                }
                (None, Some(url)) => {
                    body.insert("url".into(), json!(url));
                    if let Some(f) = format {
                        body.insert("format".into(), json!(f));
                    }
                    if let Some(s) = secret {
                        body.insert("secret".into(), json!(s));
                    }
                    api.post(&["v1", "webhooks", "test"], Some(Value::Object(body)))
                        .await?
                }
                (None, None) => return Err(usage("give a webhook id or --url")),
            };
            let success = t["success"].as_bool() == Some(true);
            if as_json {
                output::json(&t);
            } else {
                let a = &t["attempt"];
                let delivery = t["delivery_id"]
                    .as_str()
                    .map(|d| format!(" (delivery {d})"))
                    .unwrap_or_default();
                outln!(
                    "{} {} → {} in {:.1} ms{delivery}",
                    if success { "OK" } else { "FAILED" },
                    text(&t, "event_type"),
                    outcome(a),
                    a["total_ms"].as_f64().unwrap_or(0.0),
                );
                if let Some(body) = a["response_body"].as_str() {
                    outln!("response: {body}");
                }
                if let Some(s) = t["secret"].as_str() {
                    outln!("signed with secret: {s}");
                }
            }
            if !success {
                return Err(failed("the receiver did not accept the test event"));
            }
        }
        WebhooksCommand::VerifyReceiver { id, event_type } => {
            let body = event_type.as_ref().map(|t| json!({"event_type": t}));
            let v = api
                .post(&["v1", "webhooks", id, "verify-receiver"], body)
                .await?;
            let verdict = text(&v, "verdict");
            if as_json {
                output::json(&v);
            } else {
                details(&[
                    ("verdict", verdict.clone()),
                    ("event", text(&v, "event_type")),
                    ("delivery id", text(&v, "delivery_id")),
                    ("mis-signed", outcome(&v["mis_signed"])),
                    ("signed", outcome(&v["signed"])),
                ]);
                outln!("\n{}", text(&v, "advice"));
            }
            if verdict != "verifies_signatures" {
                return Err(failed(format!(
                    "the receiver does not verify signatures correctly ({verdict})"
                )));
            }
        }
        WebhooksCommand::FilterTest {
            filter,
            event,
            event_file,
        } => {
            let event = match event_file {
                Some(path) => crate::input::json("--event-file", Some(&format!("@{path}")))?,
                None => crate::input::json("--event", event.as_deref())?,
            };
            let v = api
                .post(
                    &["v1", "webhooks", "filter-test"],
                    Some(json!({"filter": filter, "event": event})),
                )
                .await?;
            let matches = v["matches"].as_bool() == Some(true);
            if as_json {
                output::json(&v);
            } else {
                details(&[
                    ("matches", if matches { "yes" } else { "no" }.to_string()),
                    ("value", v["value"].to_string()),
                    ("steps", text(&v, "steps")),
                ]);
                if v["exhausted"].as_bool() == Some(true) {
                    outln!("\nThe filter ran out of evaluation steps, so it does not match.");
                }
            }
            if !matches {
                return Err(failed("the filter does not match the event"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_at_the_first_separator() {
        assert_eq!(
            header("Authorization: Bearer a=b").unwrap(),
            ("Authorization".into(), "Bearer a=b".into())
        );
        assert_eq!(
            header("X-Token=abc==").unwrap(),
            ("X-Token".into(), "abc==".into())
        );
        assert!(header("novalue").is_err());
        assert!(header("=x").is_err());
    }

    #[test]
    fn retry_schedules_read_as_the_api_takes_them() {
        assert_eq!(retry_schedule("30s, 6m,120"), json!(["30s", "6m", 120]));
        assert_eq!(retry_schedule("never"), json!([]));
        assert_eq!(retry_schedule("default"), Value::Null);
    }
}
