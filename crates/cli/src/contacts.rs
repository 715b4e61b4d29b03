//! `hookline contacts …`: CRM contacts over `/v1/contacts`: list, get, create, update, delete, and
//! `import`, which sends a CSV or JSON file in chunks with a progress bar and resumes after an
//! interruption.
//!
//! How an import survives an interruption:
//!
//! - The file is read with the service's own parser (`parse_import`, the one `/v1/contacts/import`
//!   runs), so row numbers and the CSV column mapping are the API's. Rows it can't read are
//!   reported here; the others go to the API as JSON arrays of `--chunk` rows, each committed in
//!   one transaction by the server.
//! - A row without an `id` gets one here (a UUIDv7, as the server would make) before it is sent.
//!   Sending the same chunk again then can't create a contact twice: a row the server already has
//!   answers `already_exists`.
//! - Before each request the state (rows done, totals, the ids given to the chunk in flight) is
//!   written to `$XDG_STATE_HOME/hookline/imports/<hash of the file>.json` (default
//!   `~/.local/state/…`). When a request fails, the import stops, says which row it reached, and
//!   `--resume` continues from the chunk in flight with the same ids, so whether or not the server
//!   committed it before the failure, every contact ends up there exactly once. The state file is
//!   removed when the import finishes.
//! - `--resume-from ROW` starts at a row without any state (say, on another machine); rows without
//!   an id in the chunk that was in flight could then be created twice, so `--resume` is preferred.

use crate::client::{Api, Body};
use crate::error::{failed, usage, ApiError};
use crate::input::{self, PageArgs};
use crate::output::{self, text, Table};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Import contacts from a .csv file (header row; see the README's column mapping) or a .json
    /// array, in chunks, with a progress bar. Bad rows are reported and skipped. When it is
    /// interrupted, run it again with --resume.
    Import(ImportArgs),
    /// List contacts, newest first.
    List {
        /// Only contacts with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only contacts changed at or after this time (RFC 3339).
        #[arg(long)]
        updated_since: Option<String>,
        /// Text in the name, company, email or title.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one contact.
    Get { id: String },
    /// Create a contact from JSON (emits contact.created).
    Create {
        /// The contact: JSON text, @FILE, or `-` for standard input.
        #[arg(long, value_name = "JSON|@FILE|-")]
        data: Option<String>,
        /// The user who made the change (`X-Actor-Id`).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Change a contact with a JSON merge patch (`null` removes a field; emits contact.updated).
    Update {
        id: String,
        /// The patch: JSON text, @FILE, or `-` for standard input.
        #[arg(long, value_name = "JSON|@FILE|-")]
        data: Option<String>,
        /// Refuse the change unless the contact is still at this version.
        #[arg(long, value_name = "VERSION")]
        if_match: Option<u64>,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Delete contacts (one contact.deleted event for several ids).
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Don't ask for confirmation (asked only on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Args)]
pub struct ImportArgs {
    /// A .csv (with a header row) or .json (an array of contacts) file.
    file: PathBuf,
    /// Rows per request; each request is committed on its own.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    chunk: u64,
    /// Continue an interrupted import of this file where it stopped.
    #[arg(long, conflicts_with = "resume_from")]
    resume: bool,
    /// Start at this row (1 = the first row after a CSV header), skipping the rows before it.
    #[arg(long, value_name = "ROW")]
    resume_from: Option<usize>,
    /// The user who runs the import (`X-Actor-Id`).
    #[arg(long)]
    actor: Option<String>,
}

fn actor_header(actor: &Option<String>) -> Vec<(&'static str, String)> {
    actor
        .iter()
        .map(|a| ("x-actor-id", a.clone()))
        .collect::<Vec<_>>()
}

fn confirm(question: &str) -> bool {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

/// A contact's display name from its first and last name (or its email).
fn name(c: &Value) -> String {
    let n = format!(
        "{} {}",
        c["first_name"].as_str().unwrap_or(""),
        c["last_name"].as_str().unwrap_or("")
    );
    let n = n.trim();
    if n.is_empty() {
        "-".into()
    } else {
        n.to_string()
    }
}

fn tags(c: &Value) -> String {
    let names: Vec<&str> = c["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().or(t.as_str()))
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

/// A write's answer: the contact and the events it emitted.
fn print_write(w: &Value, verb: &str) {
    let id = w["data"]["id"].as_str().unwrap_or("-");
    if w["changed"].as_bool() == Some(false) {
        outln!("contact {id} unchanged (nothing to write, no event)");
        return;
    }
    let events: Vec<String> = w["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let n = e["delivery_ids"].as_array().map_or(0, Vec::len);
            format!("{} ({n} deliveries)", text(e, "event_type"))
        })
        .collect();
    let version = w["version"]
        .as_u64()
        .map(|v| format!(" version {v}"))
        .unwrap_or_default();
    outln!("{verb} contact {id}{version}: {}", events.join(", "));
}

pub async fn run(api: &Api, as_json: bool, cmd: &ContactsCommand) -> anyhow::Result<()> {
    match cmd {
        ContactsCommand::Import(args) => import(api, as_json, args).await?,
        ContactsCommand::List {
            tag,
            updated_since,
            search,
            page,
        } => {
            let v = |o: &Option<String>| o.clone().unwrap_or_default();
            let filters = [
                ("tag", v(tag)),
                ("updated_since", v(updated_since)),
                ("search", v(search)),
            ];
            let list = api
                .list(
                    &["v1", "contacts"],
                    &filters,
                    page.limit(),
                    page.cursor.clone(),
                )
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "NAME", "EMAIL", "COMPANY", "TAGS", "UPDATED"]);
            for r in output::rows(&list) {
                let c = &r["data"];
                t.row(vec![
                    text(c, "id"),
                    name(c),
                    text(c, "primary_email"),
                    text(c, "company"),
                    tags(c),
                    text(c, "updated_at"),
                ]);
            }
            t.print("no contacts");
            output::more(&list);
        }
        ContactsCommand::Get { id } => {
            let c = api.get(&["v1", "contacts", id], &[]).await?;
            if as_json {
                output::json(&c);
            } else {
                outln!("contact {} (version {})", id, text(&c, "version"));
                output::json(&c["data"]);
            }
        }
        ContactsCommand::Create { data, actor } => {
            let body = input::json("--data", data.as_deref())?;
            let w = api
                .send(
                    Method::POST,
                    &["v1", "contacts"],
                    &[],
                    &actor_header(actor),
                    Body::Json(body),
                )
                .await?
                .body;
            if as_json {
                output::json(&w);
            } else {
                print_write(&w, "created");
            }
        }
        ContactsCommand::Update {
            id,
            data,
            if_match,
            actor,
        } => {
            let body = input::json("--data", data.as_deref())?;
            let mut headers = actor_header(actor);
            if let Some(v) = if_match {
                headers.push(("if-match", format!("\"{v}\"")));
            }
            let w = api
                .send(
                    Method::PATCH,
                    &["v1", "contacts", id],
                    &[],
                    &headers,
                    Body::Json(body),
                )
                .await?
                .body;
            if as_json {
                output::json(&w);
            } else {
                print_write(&w, "updated");
            }
        }
        ContactsCommand::Delete { ids, yes, actor } => {
            if !yes
                && std::io::stdin().is_terminal()
                && !confirm(&format!("Delete {} contact(s)?", ids.len()))
            {
                return Err(failed("nothing deleted"));
            }
            let headers = actor_header(actor);
            let answer = if let [one] = ids.as_slice() {
                api.send(
                    Method::DELETE,
                    &["v1", "contacts", one],
                    &[],
                    &headers,
                    Body::None,
                )
                .await?
                .body
            } else {
                api.send(
                    Method::POST,
                    &["v1", "contacts", "bulk-delete"],
                    &[],
                    &headers,
                    Body::Json(json!({"ids": ids})),
                )
                .await?
                .body
            };
            if as_json {
                output::json(&answer);
            } else if let [one] = ids.as_slice() {
                outln!("deleted contact {one}");
            } else {
                outln!(
                    "deleted {} contact(s); not found: {}",
                    answer["deleted"].as_array().map_or(0, Vec::len),
                    output::text(&answer, "not_found")
                );
            }
        }
    }
    Ok(())
}

/// One skipped row, as reported.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct RowError {
    row: usize,
    code: String,
    message: String,
    field: Option<String>,
}

/// The chunk in flight when an import stopped: its rows and the ids given to rows that had none.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Pending {
    from: usize,
    to: usize,
    ids: BTreeMap<usize, String>,
}

/// What `--resume` needs, kept in the state file between runs.
#[derive(Serialize, Deserialize, Debug)]
struct ImportState {
    /// The deployment, so a resume can't go to another one by mistake.
    url: String,
    file: String,
    total: usize,
    /// The first row not known to be committed.
    next_row: usize,
    pending: Option<Pending>,
    created: usize,
    failed: usize,
    already: usize,
    batches: usize,
    import_ids: Vec<String>,
    errors: Vec<RowError>,
}

/// Rows reported in the summary at most (the JSON output has them all).
const SHOWN_ERRORS: usize = 20;

/// `$XDG_STATE_HOME/hookline/imports`, else `~/.local/state/hookline/imports`.
fn state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("hookline").join("imports"))
}

/// The state file of an import of these bytes: named by their hash, so the same file resumes
/// from any directory, and an edited file never resumes someone else's numbering.
fn state_file(bytes: &[u8]) -> Option<PathBuf> {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let name: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    state_dir().map(|d| d.join(format!("{name}.json")))
}

fn save_state(path: Option<&Path>, state: &ImportState) {
    let Some(path) = path else { return };
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&tmp, path)
    };
    // Without a state file the import still runs; only --resume is lost, and the message on
    // interruption says to use --resume-from instead.
    if let Err(e) = write() {
        eprintln!(
            "warning: can't save the import state in {}: {e}",
            path.display()
        );
    }
}

/// Draws `[=====>    ] done/total contacts` on stderr: in place on a terminal, a line per update
/// otherwise (so logs show the progress too).
fn progress(done: usize, total: usize) {
    use std::io::Write;
    let width = 30;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
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

/// CSV or JSON: by the extension, else by whether the text starts with `[`.
fn is_csv(file: &Path, bytes: &[u8]) -> bool {
    match file
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
    }
}

fn row_error(row: usize, e: &Value) -> RowError {
    RowError {
        row,
        code: e["code"].as_str().unwrap_or("invalid").to_string(),
        message: e["message"].as_str().unwrap_or_default().to_string(),
        field: e["field"].as_str().map(str::to_string),
    }
}

async fn import(api: &Api, as_json: bool, args: &ImportArgs) -> anyhow::Result<()> {
    let file = &args.file;
    let bytes =
        std::fs::read(file).map_err(|e| usage(format!("can't read {}: {e}", file.display())))?;
    let rows = hookline_server::service::parse_import(is_csv(file, &bytes), &bytes)
        .map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let total = rows.len();
    let state_path = state_file(&bytes);
    let mut state = ImportState {
        url: api.base().to_string(),
        file: file.display().to_string(),
        total,
        next_row: 1,
        pending: None,
        created: 0,
        failed: 0,
        already: 0,
        batches: 0,
        import_ids: Vec::new(),
        errors: Vec::new(),
    };
    if args.resume {
        let path = state_path.as_ref().ok_or_else(|| {
            usage("can't resume: neither XDG_STATE_HOME nor HOME is set (use --resume-from ROW)")
        })?;
        let text = std::fs::read(path).map_err(|_| {
            usage(format!(
                "no interrupted import of {} to resume (it finished, or never started here; --resume-from ROW starts at a given row)",
                file.display()
            ))
        })?;
        let saved: ImportState = serde_json::from_slice(&text).map_err(|e| {
            usage(format!(
                "the import state {} is damaged ({e}); use --resume-from ROW",
                path.display()
            ))
        })?;
        if saved.url != state.url {
            return Err(usage(format!(
                "the interrupted import of {} went to {}, not {}: resume it there (or use --resume-from ROW)",
                file.display(),
                saved.url,
                state.url
            )));
        }
        state = saved;
        eprintln!("resuming at row {} of {total}", state.next_row);
    } else if let Some(row) = args.resume_from {
        if row == 0 || row > total + 1 {
            return Err(usage(format!(
                "--resume-from {row} is outside the file's rows 1 to {total}"
            )));
        }
        state.next_row = row;
    }
    let resumed_pending = state.pending.take();
    let chunk = usize::try_from(args.chunk).unwrap_or(usize::MAX);
    let headers = actor_header(&args.actor);
    let start = state.next_row.saturating_sub(1).min(total);
    progress(start, total);
    for part in rows[start..].chunks(chunk) {
        let (from, to) = (part[0].row, part[part.len() - 1].row);
        // Rows of the chunk that was in flight when the last run stopped keep their ids.
        let reuse = resumed_pending
            .as_ref()
            .filter(|p| from <= p.to && to >= p.from);
        let mut contacts = Vec::with_capacity(part.len());
        let mut sent_rows = Vec::with_capacity(part.len());
        let mut assigned = BTreeMap::new();
        // Rows this chunk couldn't read: counted once the chunk is done, so a chunk sent again
        // after an interruption doesn't count them twice.
        let mut unreadable = Vec::new();
        for r in part {
            match &r.contact {
                Err(f) => {
                    unreadable.push(RowError {
                        row: r.row,
                        code: f.code.to_string(),
                        message: f.message.clone(),
                        field: Some(f.field.clone()).filter(|f| !f.is_empty() && f != "."),
                    });
                }
                Ok(c) => {
                    let mut c = c.clone();
                    if c.get("id").is_none_or(Value::is_null) {
                        let id = reuse
                            .and_then(|p| p.ids.get(&r.row).cloned())
                            .unwrap_or_else(|| hookline_core::ids::new_id().to_string());
                        c["id"] = json!(id);
                        assigned.insert(r.row, id);
                    }
                    contacts.push(c);
                    sent_rows.push(r.row);
                }
            }
        }
        if !contacts.is_empty() {
            state.next_row = from;
            state.pending = Some(Pending {
                from,
                to,
                ids: assigned,
            });
            save_state(state_path.as_deref(), &state);
            let answer = api
                .send(
                    Method::POST,
                    &["v1", "contacts", "import"],
                    &[],
                    &headers,
                    Body::Json(Value::Array(contacts)),
                )
                .await;
            let report = match answer {
                Ok(a) => a.body,
                Err(e) => {
                    if std::io::stderr().is_terminal() {
                        eprintln!();
                    }
                    let how = if state_path.is_some() {
                        format!("run the same command with --resume to continue (or --resume-from {from})")
                    } else {
                        format!("continue with --resume-from {from}")
                    };
                    let too_large = e
                        .downcast_ref::<ApiError>()
                        .is_some_and(|a| a.status == 413);
                    let hint = if too_large {
                        "; the request was too large: add a smaller --chunk"
                    } else {
                        ""
                    };
                    return Err(e.context(format!(
                        "the import stopped at row {from} of {total} (rows before it are in); {how}{hint}"
                    )));
                }
            };
            // A chunk larger than the server's `job_step` is imported by a background job: wait
            // for it, then read its result as the report (counts, and the first refused rows).
            let (report, created_by_job) = match report["job"]["id"].as_str() {
                Some(job) => {
                    let j = crate::jobs::wait(api, job, true).await?;
                    if j["status"] != "succeeded" {
                        return Err(failed(format!(
                            "the server's import job {job} ended {} at row {from} of {total}",
                            j["status"].as_str().unwrap_or("?")
                        )));
                    }
                    let r = &j["result"];
                    let rows: Vec<Value> = r["errors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| json!({"row": e["row"], "status": "error", "error": e["error"]}))
                        .collect();
                    let batches = r["batches"].as_u64().unwrap_or(0) as usize;
                    let report = json!({"import_id": report["import_id"], "rows": rows,
                                        "events": vec![Value::Null; batches]});
                    (report, r["created"].as_u64().unwrap_or(0) as usize)
                }
                None => (report, 0),
            };
            state.created += created_by_job;
            for r in report["rows"].as_array().into_iter().flatten() {
                // The server numbers the rows of its request; map them back to the file's.
                let Some(row) = r["row"]
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok()?.checked_sub(1))
                    .and_then(|i| sent_rows.get(i).copied())
                else {
                    continue;
                };
                if r["status"] == "created" {
                    state.created += 1;
                } else if reuse.is_some() && r["error"]["code"] == "already_exists" {
                    // The interrupted run's request was committed after all.
                    state.already += 1;
                } else {
                    state.failed += 1;
                    state.errors.push(row_error(row, &r["error"]));
                }
            }
            state.batches += report["events"].as_array().map_or(0, Vec::len);
            if let Some(id) = report["import_id"].as_str() {
                state.import_ids.push(id.to_string());
            }
        }
        state.failed += unreadable.len();
        state.errors.extend(unreadable);
        state.errors.sort_by_key(|e| e.row);
        state.next_row = to + 1;
        state.pending = None;
        save_state(state_path.as_deref(), &state);
        progress(to, total);
    }
    if let Some(path) = &state_path {
        let _ = std::fs::remove_file(path);
    }
    if as_json {
        output::json(&json!({
            "import_id": state.import_ids.first(),
            "import_ids": state.import_ids,
            "created": state.created,
            "already_imported": state.already,
            "failed": state.failed,
            "batches": state.batches,
            "errors": state.errors,
        }));
    } else {
        let ids = match state.import_ids.as_slice() {
            [] => String::new(),
            [one] => format!("; import id {one}"),
            [first, .., last] => {
                format!("; import ids {first} … {last} (one per request of {chunk} rows)")
            }
        };
        outln!(
            "imported {} contacts in {} batches ({} rows skipped){ids}",
            state.created,
            state.batches,
            state.failed
        );
        if state.already > 0 {
            outln!(
                "  {} rows were already in: the interrupted run's last request had been committed",
                state.already
            );
        }
        for e in state.errors.iter().take(SHOWN_ERRORS) {
            match &e.field {
                Some(f) => outln!("  row {}: {} ({f})", e.row, e.message),
                None => outln!("  row {}: {}", e.row, e.message),
            }
        }
        if state.errors.len() > SHOWN_ERRORS {
            outln!("  … and {} more", state.errors.len() - SHOWN_ERRORS);
        }
    }
    if state.created + state.already == 0 && state.failed > 0 {
        return Err(failed("no contact could be imported"));
    }
    Ok(())
}
