//! `hookline deliveries …`: the delivery log over `/v1/deliveries`: list, show, resend, cancel, replay, and
//! `tail`, which follows new deliveries and their outcomes live.
//!
//! `tail` polls the list endpoint (the API has no push channel for the log). It remembers what it
//! has shown and prints a line when a delivery appears and each time its status or attempt count
//! changes. Each poll reads the deliveries created since the oldest one still open (pending,
//! delivering, retrying), or since the newest one seen when none is, so a retry minutes later is
//! still reported, while a long quiet stretch costs one small request per interval. Timestamps
//! compared are the server's, never this machine's clock.

use crate::client::{Api, MAX_PAGE};
use crate::error::{usage, ApiError, CliError};
use crate::input::PageArgs;
use crate::output::{self, details, text, Table};
use clap::{Args, Subcommand};
use hookline_core::time::{self, Timestamp};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Filters of the log that `list` and `tail` share.
#[derive(Args, Clone, Debug)]
pub struct Filters {
    /// Only deliveries of this webhook.
    #[arg(long, value_name = "WEBHOOK_ID")]
    webhook: Option<String>,
    /// pending, delivering, retrying, delivered or failed.
    #[arg(long)]
    status: Option<String>,
    /// Only this event type (any format's spelling).
    #[arg(long)]
    event_type: Option<String>,
    /// Text in the webhook URL or the event name.
    #[arg(long)]
    search: Option<String>,
}

impl Filters {
    fn query(&self, with_status: bool) -> Vec<(&'static str, String)> {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut q = vec![
            ("webhook_id", v(&self.webhook)),
            ("event_type", v(&self.event_type)),
            ("search", v(&self.search)),
        ];
        if with_status {
            q.push(("status", v(&self.status)));
        }
        q
    }
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Created before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one delivery with every attempt: outcome, timings, the receiver's answer.
    Show { id: String },
    /// Send a delivery's event to its webhook again, as a new delivery (prints its id).
    Resend { id: String },
    /// Cancel a pending or retrying delivery: it is never sent again (status `cancelled`, reason
    /// `manual`).
    Cancel { id: String },
    /// Send a webhook's past deliveries in a time range again (default: the failed ones).
    Replay {
        /// The webhook whose deliveries to replay.
        #[arg(long, value_name = "WEBHOOK_ID")]
        webhook: String,
        /// Deliveries created at or after this time (RFC 3339).
        #[arg(long)]
        since: String,
        /// ... and before this time.
        #[arg(long)]
        until: Option<String>,
        /// Which statuses to replay, comma-separated (default: failed).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only count what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Wait until the replay's background job has made every copy (progress on stderr).
        #[arg(long, conflicts_with = "dry_run")]
        wait: bool,
    },
    /// Follow new deliveries and their outcomes as they happen, like `tail -f` (Ctrl-C stops).
    /// With --json, one delivery object per line at each change. --status shows a delivery when
    /// it reaches that status.
    Tail {
        #[command(flatten)]
        filters: Filters,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

fn delivery_row(d: &Value) -> Vec<String> {
    let code = d["last_status_code"]
        .as_u64()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    vec![
        text(d, "id"),
        text(d, "status"),
        code,
        text(d, "attempt_count"),
        text(d, "event_type"),
        text(d, "created_at"),
        text(d, "url"),
    ]
}

/// `GET /v1/deliveries/{id}`: the delivery's fields with its `attempts` beside them.
fn print_detail(d: &Value) {
    let v = d;
    let next = v["next_attempt_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let resent = v["resent_from"].as_str().unwrap_or_default().to_string();
    details(&[
        ("delivery", text(v, "id")),
        // What the receiver deduplicates on: the same on every resend and replay.
        ("message id", text(v, "message_id")),
        (
            "event",
            format!("{} ({})", text(v, "event_id"), text(v, "event_type")),
        ),
        (
            "webhook",
            format!("{} {}", text(v, "webhook_id"), text(v, "url")),
        ),
        (
            "status",
            format!(
                "{} after {} attempt(s){}",
                text(v, "status"),
                text(v, "attempt_count"),
                // Why a cancelled delivery ended (webhook deleted or disabled, gone, by hand).
                v["cancel_reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
        ("next try", next),
        ("resent from", resent),
        ("created", text(v, "created_at")),
    ]);
    let ms = |a: &Value, k: &str| {
        a[k].as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    for a in d["attempts"].as_array().into_iter().flatten() {
        outln!(
            "  #{} {}  {}  dns {} connect {} tls {} ttfb {} total {} ms",
            text(a, "attempt_number"),
            text(a, "started_at"),
            match (a["status_code"].as_u64(), a["error_kind"].as_str()) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(kind)) => kind.to_string(),
                _ => "-".into(),
            },
            ms(a, "dns_ms"),
            ms(a, "connect_ms"),
            ms(a, "tls_ms"),
            ms(a, "ttfb_ms"),
            ms(a, "total_ms"),
        );
        if let Some(m) = a["error_message"].as_str() {
            outln!("     {m}");
        }
        if let Some(b) = a["response_body"].as_str() {
            outln!("     response: {b}");
        }
    }
}

pub async fn run(api: &Api, as_json: bool, cmd: &DeliveriesCommand) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List {
            filters,
            since,
            until,
            page,
        } => {
            let mut q = filters.query(true);
            q.push(("since", since.clone().unwrap_or_default()));
            q.push(("until", until.clone().unwrap_or_default()));
            let list = api
                .list(&["v1", "deliveries"], &q, page.limit(), page.cursor.clone())
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "STATUS", "CODE", "TRIES", "EVENT", "CREATED", "URL"]);
            for d in output::rows(&list) {
                t.row(delivery_row(d));
            }
            t.print("no deliveries");
            output::more(&list);
        }
        DeliveriesCommand::Show { id } => {
            let d = api.get(&["v1", "deliveries", id], &[]).await?;
            if as_json {
                output::json(&d);
            } else {
                print_detail(&d);
            }
        }
        DeliveriesCommand::Resend { id } => {
            let d = api.post(&["v1", "deliveries", id, "resend"], None).await?;
            if as_json {
                output::json(&d);
            } else {
                outln!("{}", text(&d, "id"));
            }
        }
        DeliveriesCommand::Cancel { id } => {
            let d = api.post(&["v1", "deliveries", id, "cancel"], None).await?;
            if as_json {
                output::json(&d);
            } else {
                outln!("{} {}", text(&d, "id"), text(&d, "status"));
            }
        }
        DeliveriesCommand::Replay {
            webhook,
            since,
            until,
            status,
            dry_run,
            wait,
        } => {
            let mut body = Map::new();
            body.insert("since".into(), json!(since));
            if let Some(u) = until {
                body.insert("until".into(), json!(u));
            }
            if !status.is_empty() {
                body.insert("status".into(), json!(status));
            }
            body.insert("dry_run".into(), json!(dry_run));
            let r = api
                .post(
                    &["v1", "webhooks", webhook, "replay"],
                    Some(Value::Object(body)),
                )
                .await?;
            let job = r["job"]["id"].as_str().map(str::to_string);
            let finished = match (&job, wait) {
                (Some(id), true) => Some(crate::jobs::wait(api, id, as_json).await?),
                _ => None,
            };
            if as_json {
                match &finished {
                    Some(j) => {
                        output::json(&json!({"count": r["count"], "dry_run": false, "job": j}))
                    }
                    None => output::json(&r),
                }
            } else if *dry_run {
                outln!("would replay {} deliveries", text(&r, "count"));
            } else if let Some(j) = &finished {
                outln!(
                    "replay job {} {}: {} of {} deliveries",
                    text(j, "id"),
                    text(j, "status"),
                    text(j, "done"),
                    text(&r, "count")
                );
            } else if let Some(id) = &job {
                outln!(
                    "replaying {} deliveries in job {id} (follow: hookline jobs wait {id})",
                    text(&r, "count")
                );
            } else {
                outln!("nothing to replay");
            }
            if let Some(j) = &finished {
                if j["status"] != "succeeded" {
                    anyhow::bail!("the replay job ended {}", text(j, "status"));
                }
            }
        }
        DeliveriesCommand::Tail { filters, interval } => {
            if !(interval.is_finite() && (0.1..=3600.0).contains(interval)) {
                return Err(usage("--interval must be between 0.1 and 3600 seconds"));
            }
            tail(api, as_json, filters, Duration::from_secs_f64(*interval)).await?;
        }
    }
    Ok(())
}

/// Pages read per poll at most; past that the tail is behind and skips ahead.
const TAIL_PAGES: usize = 10;
/// Reads reach this far before the window, for deliveries committed a little out of order.
const TAIL_MARGIN_MS: i64 = 5_000;

/// What the tail last showed of a delivery.
struct Seen {
    status: String,
    attempts: u64,
    created: Timestamp,
}

fn is_open(status: &str) -> bool {
    matches!(status, "pending" | "delivering" | "retrying")
}

fn created(d: &Value) -> Option<Timestamp> {
    d["created_at"].as_str().and_then(time::parse)
}

/// One human line for a delivery's current state.
fn tail_line(d: &Value) -> String {
    let result = match (d["last_status_code"].as_u64(), d["last_error"].as_str()) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(e)) => e.to_string(),
        _ => "-".into(),
    };
    let next = match (d["status"].as_str(), d["next_attempt_at"].as_str()) {
        (Some("retrying"), Some(at)) => format!("  next {at}"),
        _ => String::new(),
    };
    format!(
        "{}  {}  {:<22}  {:<10}  {:<10}  try {}  {}{next}",
        text(d, "updated_at"),
        text(d, "id"),
        text(d, "event_type"),
        text(d, "status"),
        result,
        text(d, "attempt_count"),
        text(d, "url"),
    )
}

/// Whether a failure of one poll is worth waiting out (the server is down or busy) rather than
/// ending the tail.
fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<CliError>(), Some(CliError::Unreachable(_)))
            || c.downcast_ref::<ApiError>()
                .is_some_and(|a| a.status >= 500 || a.status == 429)
    })
}

/// Reads the log since `since` (newest first, at most [`TAIL_PAGES`] pages); `true` when more
/// rows were left unread.
async fn read_window(
    api: &Api,
    query: &[(&'static str, String)],
    since: Option<Timestamp>,
) -> anyhow::Result<(Vec<Value>, bool)> {
    let mut q = query.to_vec();
    if let Some(s) = since {
        let from = s - chrono::Duration::milliseconds(TAIL_MARGIN_MS);
        q.push(("since", time::format(&from)));
    }
    let list = api
        .list(&["v1", "deliveries"], &q, TAIL_PAGES * MAX_PAGE, None)
        .await?;
    let behind = !list["next_cursor"].is_null();
    Ok((output::rows(&list).to_vec(), behind))
}

async fn tail(
    api: &Api,
    as_json: bool,
    filters: &Filters,
    interval: Duration,
) -> anyhow::Result<()> {
    // The status filter is applied here, not by the API: a delivery changes status, and the tail
    // must keep watching a pending one to see it become, say, failed. One request checks the value.
    if filters.status.is_some() {
        api.list(&["v1", "deliveries"], &filters.query(true), 1, None)
            .await?;
    }
    let wanted = filters.status.clone();
    let query = filters.query(false);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // What exists already is not news: remember it without printing.
    let first = api
        .list(&["v1", "deliveries"], &query, MAX_PAGE, None)
        .await?;
    let mut window: Option<Timestamp> = None;
    for d in output::rows(&first) {
        if let (Some(id), Some(c)) = (d["id"].as_str(), created(d)) {
            window = window.max(Some(c));
            seen.insert(
                id.to_string(),
                Seen {
                    status: text(d, "status"),
                    attempts: d["attempt_count"].as_u64().unwrap_or(0),
                    created: c,
                },
            );
        }
    }
    eprintln!("following deliveries on {} (Ctrl-C to stop)", api.base());
    let mut down_since: Option<std::time::Instant> = None;
    let mut behind_noted = false;
    loop {
        let wait = if down_since.is_some() {
            interval.max(Duration::from_secs(2))
        } else {
            interval
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (rows, behind) = match read_window(api, &query, window).await {
            Ok(r) => r,
            Err(e) if transient(&e) => {
                if down_since.is_none() {
                    eprintln!("{e:#}; retrying");
                    down_since = Some(std::time::Instant::now());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(t) = down_since.take() {
            eprintln!("(back after {:.0}s)", t.elapsed().as_secs_f64());
        }
        if behind && !behind_noted {
            eprintln!(
                "(more than {} deliveries since the oldest open one: following the newest only)",
                TAIL_PAGES * MAX_PAGE
            );
            behind_noted = true;
        }
        // Oldest first, so the output reads in time order.
        for d in rows.iter().rev() {
            let (Some(id), Some(c)) = (d["id"].as_str(), created(d)) else {
                continue;
            };
            let status = text(d, "status");
            let attempts = d["attempt_count"].as_u64().unwrap_or(0);
            let changed = seen
                .get(id)
                .is_none_or(|s| s.status != status || s.attempts != attempts);
            if !changed {
                continue;
            }
            seen.insert(
                id.to_string(),
                Seen {
                    status: status.clone(),
                    attempts,
                    created: c,
                },
            );
            if wanted.as_ref().is_some_and(|w| *w != status) {
                continue;
            }
            if as_json {
                outln!("{d}");
            } else {
                outln!("{}", tail_line(d));
            }
        }
        // Next window: from the oldest delivery still open, else from the newest one seen. Both
        // come from this poll's rows, so when behind the window moves on past what it can't read.
        let open = rows
            .iter()
            .filter(|d| d["status"].as_str().is_some_and(is_open))
            .filter_map(created)
            .min();
        let newest = rows.iter().filter_map(created).max();
        if let Some(next) = open.or(newest) {
            window = Some(next);
        }
        if let Some(w) = window {
            let keep_from = w - chrono::Duration::milliseconds(2 * TAIL_MARGIN_MS);
            seen.retain(|_, s| s.created >= keep_from);
        }
    }
}
