//! `hookline events …`: publish events, read them back, and show the event catalog, over
//! `/v1/events` and `/v1/event-types`.

use crate::client::{Api, Body};
use crate::error::usage;
use crate::input::{self, PageArgs};
use crate::output::{self, details, text, Table};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Publish an event: `--type T --data @file.json` (or the data on standard input). The data
    /// may be an array (a batch of records). Without --type the input is the whole request: an
    /// event `{"event_type", "data", …}` or an array of up to 1000 of them.
    Publish(PublishArgs),
    /// List events, newest first.
    List {
        /// Only this event type (any format's spelling).
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one event with its data.
    Get { id: String },
    /// The event catalog: every event type, its subject and origin.
    Types,
}

#[derive(Args)]
pub struct PublishArgs {
    /// The event type, in any format's spelling: contact.created, contacts.created, ContactCreated.
    #[arg(long = "type", visible_alias = "event-type", value_name = "TYPE")]
    event_type: Option<String>,
    /// The data (or with no --type, the whole event or array of events): JSON text, @FILE, or `-`
    /// for standard input (the default when input is piped).
    #[arg(long, value_name = "JSON|@FILE|-")]
    data: Option<String>,
    /// What changed: `{"field": {"previous": …, "current": …}}` as JSON text or @FILE.
    #[arg(long, requires = "event_type", value_name = "JSON|@FILE")]
    changes: Option<String>,
    /// The subject record's type (default: from the event type).
    #[arg(long, requires = "event_type")]
    entity_type: Option<String>,
    /// The subject record's id (default: the data's `id`).
    #[arg(long, requires = "event_type")]
    entity_id: Option<String>,
    /// Where the event comes from (default: api).
    #[arg(long, requires = "event_type")]
    source: Option<String>,
    /// An id of the event in its source system.
    #[arg(long, requires = "event_type")]
    source_id: Option<String>,
    /// When it happened (RFC 3339; default: now).
    #[arg(long, requires = "event_type")]
    occurred_at: Option<String>,
    /// Publishing again with the same key and body answers the first result without a second
    /// fan-out (safe retries).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The user who caused the event (`X-Actor-Id`).
    #[arg(long)]
    actor: Option<String>,
}

impl PublishArgs {
    fn body(&self) -> anyhow::Result<Value> {
        let data = input::json("--data", self.data.as_deref())?;
        let Some(event_type) = &self.event_type else {
            if !(data.is_object() || data.is_array()) {
                return Err(usage(
                    "without --type the input must be an event object or an array of events",
                ));
            }
            return Ok(data);
        };
        let mut e = Map::new();
        e.insert("event_type".into(), json!(event_type));
        e.insert("data".into(), data);
        if let Some(c) = &self.changes {
            e.insert("changes".into(), input::json("--changes", Some(c))?);
        }
        for (k, v) in [
            ("entity_type", &self.entity_type),
            ("entity_id", &self.entity_id),
            ("source", &self.source),
            ("source_id", &self.source_id),
            ("occurred_at", &self.occurred_at),
        ] {
            if let Some(v) = v {
                e.insert(k.into(), json!(v));
            }
        }
        Ok(Value::Object(e))
    }
}

/// `published ID → n deliveries` for one published event.
fn published_line(p: &Value) -> String {
    let ids: Vec<String> = p["delivery_ids"]
        .as_array()
        .map(|a| a.iter().map(output::show).collect())
        .unwrap_or_default();
    let n = ids.len();
    let plural = if n == 1 { "delivery" } else { "deliveries" };
    if ids.is_empty() {
        format!(
            "published {} → no deliveries (no enabled webhook subscribes to it)",
            text(p, "id")
        )
    } else {
        format!(
            "published {} → {n} {plural}: {}",
            text(p, "id"),
            ids.join(", ")
        )
    }
}

pub async fn run(api: &Api, as_json: bool, cmd: &EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Publish(args) => {
            let body = args.body()?;
            let mut headers = Vec::new();
            if let Some(k) = &args.idempotency_key {
                headers.push(("idempotency-key", k.clone()));
            }
            if let Some(a) = &args.actor {
                headers.push(("x-actor-id", a.clone()));
            }
            let answer = api
                .send(
                    Method::POST,
                    &["v1", "events"],
                    &[],
                    &headers,
                    Body::Json(body),
                )
                .await?;
            let replayed = answer.header("idempotent-replayed") == Some("true");
            if as_json {
                output::json(&answer.body);
                return Ok(());
            }
            match answer.body.get("data").and_then(Value::as_array) {
                Some(many) => many.iter().for_each(|p| outln!("{}", published_line(p))),
                None => outln!("{}", published_line(&answer.body)),
            }
            if replayed {
                eprintln!(
                    "(idempotent replay: this key was used before; nothing new was published)"
                );
            }
        }
        EventsCommand::List { event_type, page } => {
            let filters = [("event_type", event_type.clone().unwrap_or_default())];
            let list = api
                .list(
                    &["v1", "events"],
                    &filters,
                    page.limit(),
                    page.cursor.clone(),
                )
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "TYPE", "SOURCE", "SUBJECT", "CREATED"]);
            for e in output::rows(&list) {
                let subject = match (e["entity_type"].as_str(), e["entity_id"].as_str()) {
                    (Some(t), Some(id)) => format!("{t} {id}"),
                    (Some(t), None) => t.to_string(),
                    _ => "-".into(),
                };
                t.row(vec![
                    text(e, "id"),
                    text(e, "event_type"),
                    text(e, "source"),
                    subject,
                    text(e, "created_at"),
                ]);
            }
            t.print("no events");
            output::more(&list);
        }
        EventsCommand::Get { id } => {
            let e = api.get(&["v1", "events", id], &[]).await?;
            if as_json {
                output::json(&e);
                return Ok(());
            }
            let opt = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            details(&[
                ("id", text(&e, "id")),
                ("type", text(&e, "event_type")),
                ("occurred", text(&e, "occurred_at")),
                ("created", text(&e, "created_at")),
                ("source", opt("source")),
                ("source id", opt("source_id")),
                ("actor", opt("actor_id")),
                (
                    "subject",
                    format!("{} {}", opt("entity_type"), opt("entity_id"))
                        .trim()
                        .to_string(),
                ),
                (
                    "batch",
                    if e["batch"].is_null() {
                        String::new()
                    } else {
                        e["batch"].to_string()
                    },
                ),
            ]);
            outln!("data:");
            output::json(&e["data"]);
            if !e["changes"].is_null() {
                outln!("changes:");
                output::json(&e["changes"]);
            }
        }
        EventsCommand::Types => {
            let list = api.get(&["v1", "event-types"], &[]).await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["NAME", "SUBJECT", "ORIGIN", "DESCRIPTION"]);
            for e in output::rows(&list) {
                t.row(vec![
                    text(e, "name"),
                    text(e, "entity"),
                    text(e, "origin"),
                    text(e, "description"),
                ]);
            }
            t.print("no event types");
        }
    }
    Ok(())
}
