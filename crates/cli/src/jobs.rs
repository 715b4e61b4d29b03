//! `hookline jobs …`: background jobs over `/v1/jobs` (a replay runs as one): list, show, cancel,
//! and wait for one to end. The waiting loop is shared with `deliveries replay --wait`.

use crate::client::Api;
use crate::input::PageArgs;
use crate::output::{self, text, Table};
use clap::Subcommand;
use serde_json::Value;
use std::time::Duration;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List background jobs, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a job's status and progress.
    Show { id: String },
    /// Cancel a queued or running job (what it already did stays done).
    Cancel { id: String },
    /// Wait until a job ends, showing its progress; fails unless it succeeded.
    Wait { id: String },
}

pub async fn run(api: &Api, as_json: bool, cmd: &JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List { page } => {
            let list = api
                .list(&["v1", "jobs"], &[], page.limit(), page.cursor.clone())
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "KIND", "STATUS", "PROGRESS", "CREATED"]);
            for j in output::rows(&list) {
                t.row(vec![
                    text(j, "id"),
                    text(j, "kind"),
                    text(j, "status"),
                    progress(j),
                    text(j, "created_at"),
                ]);
            }
            t.print("no jobs");
            output::more(&list);
        }
        JobsCommand::Show { id } => {
            let j = api.get(&["v1", "jobs", id], &[]).await?;
            print(&j, as_json);
        }
        JobsCommand::Cancel { id } => {
            let j = api.post(&["v1", "jobs", id, "cancel"], None).await?;
            print(&j, as_json);
        }
        JobsCommand::Wait { id } => {
            let j = wait(api, id, as_json).await?;
            print(&j, as_json);
            if j["status"] != "succeeded" {
                anyhow::bail!("job {id} ended {}", text(&j, "status"));
            }
        }
    }
    Ok(())
}

fn print(j: &Value, as_json: bool) {
    if as_json {
        output::json(j);
    } else {
        outln!(
            "{} {} {} {}",
            text(j, "id"),
            text(j, "kind"),
            text(j, "status"),
            progress(j)
        );
        if let Some(e) = j["error"].as_str() {
            outln!("error: {e}");
        }
    }
}

/// `done/total`, or `done` when the total isn't known.
fn progress(j: &Value) -> String {
    match j["total"].as_u64() {
        Some(total) => format!("{}/{total}", text(j, "done")),
        None => text(j, "done"),
    }
}

/// Polls a job until it is no longer queued or running; progress goes to standard error (unless
/// `quiet`), so standard output keeps only the final answer.
pub async fn wait(api: &Api, id: &str, quiet: bool) -> anyhow::Result<Value> {
    let mut last = String::new();
    loop {
        let j = api.get(&["v1", "jobs", id], &[]).await?;
        let status = text(&j, "status");
        if !quiet {
            let now = format!("{status} {}", progress(&j));
            if now != last {
                eprintln!("job {id}: {now}");
                last = now;
            }
        }
        if status != "queued" && status != "running" {
            return Ok(j);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
