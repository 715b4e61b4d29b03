//! Operator commands that act on the database through the service layer (the same rules as the
//! API): `webhooks list|test`, `deliveries list|show|resend`. A running server picks up work these
//! create (resends) on its next poll, within a few seconds.

use clap::{Args, Subcommand};
use hookline_core::ids::{DeliveryId, WebhookId};
use hookline_server::service::{DeliveryQuery, Hookline, Principal, TestInput};
use hookline_store::Page;
use serde::Serialize;

#[derive(Args)]
pub struct Scope {
    /// Tenant to act as.
    #[arg(long, default_value = "default", global = true)]
    tenant: String,
    /// Print JSON (as the API answers) instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List webhooks, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a sample event to a webhook now and show the attempt.
    Test {
        id: WebhookId,
        /// Event to simulate (default: the first one the webhook subscribes to).
        #[arg(long)]
        event_type: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[arg(long)]
        webhook: Option<String>,
        /// pending, delivering, retrying, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        event_type: Option<String>,
        /// Substring of the URL or the event name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one delivery with its attempts.
    Show { id: DeliveryId },
    /// Send a delivery's event again as a new delivery.
    Resend { id: DeliveryId },
}

#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Import contacts from a .csv (header row, see the README's mapping) or .json (array) file,
    /// with a progress bar; bad rows are reported and skipped.
    Import {
        file: std::path::PathBuf,
        /// Contacts committed per transaction.
        #[arg(long, default_value_t = 1000)]
        chunk: usize,
    },
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn page(limit: usize) -> anyhow::Result<Page> {
    if !(1..=1000).contains(&limit) {
        anyhow::bail!("--limit must be between 1 and 1000");
    }
    Ok(Page {
        before: None,
        limit,
    })
}

async fn principal(h: &Hookline, scope: &Scope) -> anyhow::Result<Principal> {
    Ok(h.principal_for_tenant(&scope.tenant).await?)
}

pub async fn webhooks(h: &Hookline, scope: &Scope, cmd: &WebhooksCommand) -> anyhow::Result<()> {
    let who = principal(h, scope).await?;
    match cmd {
        WebhooksCommand::List { limit } => {
            let rows = h.list_webhooks(&who, None, page(*limit)?).await?;
            if scope.json {
                return print_json(&rows);
            }
            for w in rows {
                let state = if w.enabled { "enabled" } else { "disabled" };
                println!(
                    "{}  {:8}  {:13}  {}  [{}]",
                    w.id,
                    state,
                    w.format.as_str(),
                    w.url,
                    w.events.join(", ")
                );
            }
            Ok(())
        }
        WebhooksCommand::Test { id, event_type } => {
            let input = TestInput {
                event_type: event_type.clone(),
                ..Default::default()
            };
            let t = h.test_webhook(&who, *id, input).await?;
            if scope.json {
                print_json(&t)?;
            } else {
                let a = &t.attempt;
                let outcome = match (a.status_code, &a.error_kind) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(kind)) => {
                        format!("{kind}: {}", a.error_message.clone().unwrap_or_default())
                    }
                    (None, None) => "no answer".into(),
                };
                println!(
                    "{} {} → {} in {:.1} ms (delivery {})",
                    if t.success { "OK" } else { "FAILED" },
                    t.event_type,
                    outcome,
                    a.total_ms,
                    t.delivery_id.map(|d| d.to_string()).unwrap_or_default()
                );
                if let Some(body) = &a.response_body {
                    println!("response: {body}");
                }
            }
            if t.success {
                Ok(())
            } else {
                anyhow::bail!("the receiver did not accept the test event")
            }
        }
    }
}

pub async fn deliveries(
    h: &Hookline,
    scope: &Scope,
    cmd: &DeliveriesCommand,
) -> anyhow::Result<()> {
    let who = principal(h, scope).await?;
    match cmd {
        DeliveriesCommand::List {
            webhook,
            status,
            event_type,
            search,
            since,
            until,
            limit,
        } => {
            let q = DeliveryQuery {
                webhook_id: webhook.clone(),
                status: status.clone(),
                event_type: event_type.clone(),
                since: since.clone(),
                until: until.clone(),
                search: search.clone(),
            };
            let rows = h.list_deliveries(&who, q, page(*limit)?).await?;
            if scope.json {
                return print_json(&rows);
            }
            for d in rows {
                let code = d
                    .last_status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}  {:10}  {:>3}  {:2} tries  {:24}  {}  {}",
                    d.id, d.status, code, d.attempt_count, d.event_type, d.created_at, d.url
                );
            }
            Ok(())
        }
        DeliveriesCommand::Show { id } => {
            let d = h.get_delivery(&who, *id).await?;
            if scope.json {
                return print_json(&d);
            }
            let v = &d.delivery;
            println!("delivery   {}\nevent      {} ({})\nwebhook    {} {}\nstatus     {} after {} attempt(s)", v.id, v.event_id, v.event_type, v.webhook_id, v.url, v.status, v.attempt_count);
            if let Some(next) = &v.next_attempt_at {
                println!("next try   {next}");
            }
            for a in &d.attempts {
                let outcome = match (a.status_code, &a.error_kind) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(kind)) => kind.clone(),
                    (None, None) => "-".into(),
                };
                let ms =
                    |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
                println!(
                    "  #{} {}  {}  dns {} connect {} tls {} ttfb {} total {:.1} ms",
                    a.attempt_number,
                    a.started_at,
                    outcome,
                    ms(a.dns_ms),
                    ms(a.connect_ms),
                    ms(a.tls_ms),
                    ms(a.ttfb_ms),
                    a.total_ms
                );
                if let Some(m) = &a.error_message {
                    println!("     {m}");
                }
                if let Some(b) = &a.response_body {
                    println!("     response: {b}");
                }
            }
            Ok(())
        }
        DeliveriesCommand::Resend { id } => {
            let d = h.resend(&who, *id).await?;
            if scope.json {
                print_json(&d)
            } else {
                println!("{}", d.id);
                Ok(())
            }
        }
    }
}

/// Draws `[=====>    ] done/total` on stderr, in place on a terminal, a line per update otherwise.
fn progress(done: usize, total: usize) {
    use std::io::{IsTerminal, Write};
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let bar = format!(
        "[{}{}] {done}/{total} contacts",
        "=".repeat(filled),
        " ".repeat(width - filled)
    );
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{bar}");
        if done == total {
            let _ = writeln!(err);
        }
    } else {
        let _ = writeln!(err, "{bar}");
    }
    let _ = err.flush();
}

pub async fn contacts(h: &Hookline, scope: &Scope, cmd: &ContactsCommand) -> anyhow::Result<()> {
    let who = principal(h, scope).await?;
    let ContactsCommand::Import { file, chunk } = cmd;
    if *chunk == 0 {
        anyhow::bail!("--chunk must be at least 1");
    }
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("can't read {}: {e}", file.display()))?;
    let csv = match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => true,
        Some("json") => false,
        _ => bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|b| *b != b'['),
    };
    let rows = hookline_server::service::parse_import(csv, &bytes)?;
    let total = rows.len();
    let import_id = hookline_core::ids::new_id().to_string();
    let (mut created, mut failed, mut batches) = (0, 0, 0);
    let mut errors = Vec::new();
    let mut rows = rows.into_iter().peekable();
    progress(0, total);
    let mut done = 0;
    // Chunks are multiples of the batch size so every batch but the last is full.
    let size = chunk.div_ceil(h.config.batch_max_size).max(1) * h.config.batch_max_size;
    while rows.peek().is_some() {
        let part: Vec<_> = rows.by_ref().take(size).collect();
        let n = part.len();
        let report = h
            .import_contacts(&who, part, &import_id, batches + 1, None)
            .await?;
        created += report.created;
        failed += report.failed;
        batches += report.events.len();
        errors.extend(report.rows.into_iter().filter(|r| r.status == "error"));
        done += n;
        progress(done, total);
    }
    if scope.json {
        print_json(&serde_json::json!({
            "import_id": import_id, "created": created, "failed": failed, "batches": batches, "errors": errors,
        }))?;
    } else {
        println!("imported {created} contacts in {batches} batches ({failed} rows skipped); import id {import_id}");
        for e in errors.iter().take(20) {
            let err = e.error.clone().unwrap_or_default();
            println!(
                "  row {}: {} ({})",
                e.row,
                err["message"].as_str().unwrap_or(""),
                err["field"].as_str().unwrap_or("")
            );
        }
        if errors.len() > 20 {
            println!("  … and {} more", errors.len() - 20);
        }
    }
    if created == 0 && failed > 0 {
        anyhow::bail!("no contact could be imported");
    }
    Ok(())
}
