//! `hookline erasures …`: the right to erasure over `/v1/erasures`: erase a record (optionally
//! waiting for the job to end), show one erasure, list them (the tenant's erasure audit).

use crate::client::Api;
use crate::input::PageArgs;
use crate::output::{self, text, Table};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum ErasuresCommand {
    /// Erase one record everywhere: the record, every stored event about it (batches are
    /// rewritten without it), their deliveries and attempts, and stored answers that showed it.
    Create {
        /// The record's subject type: contact, organization, deal, service, task, conversation,
        /// message, broadcast or meeting.
        #[arg(long)]
        entity_type: String,
        /// The record's id.
        #[arg(long)]
        entity_id: String,
        /// Wait until the erasure ends (progress on standard error); fails unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Show an erasure: status and what it removed.
    Show { id: String },
    /// List erasures, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
}

pub async fn run(api: &Api, as_json: bool, cmd: &ErasuresCommand) -> anyhow::Result<()> {
    match cmd {
        ErasuresCommand::Create {
            entity_type,
            entity_id,
            wait,
        } => {
            let body = json!({"entity_type": entity_type, "entity_id": entity_id});
            let mut e = api.post(&["v1", "erasures"], Some(body)).await?;
            if *wait {
                let id = text(&e, "id");
                crate::jobs::wait(api, &id, as_json).await?;
                e = api.get(&["v1", "erasures", &id], &[]).await?;
                print(&e, as_json);
                if e["status"] != "succeeded" {
                    anyhow::bail!("erasure {id} ended {}", text(&e, "status"));
                }
                return Ok(());
            }
            print(&e, as_json);
        }
        ErasuresCommand::Show { id } => {
            let e = api.get(&["v1", "erasures", id], &[]).await?;
            print(&e, as_json);
        }
        ErasuresCommand::List { page } => {
            let list = api
                .list(&["v1", "erasures"], &[], page.limit(), page.cursor.clone())
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "RECORD", "STATUS", "EVENTS", "CREATED"]);
            for e in output::rows(&list) {
                t.row(vec![
                    text(e, "id"),
                    format!("{} {}", text(e, "entity_type"), text(e, "entity_id")),
                    text(e, "status"),
                    events(e),
                    text(e, "created_at"),
                ]);
            }
            t.print("no erasures");
            output::more(&list);
        }
    }
    Ok(())
}

/// `dropped+rewritten` events.
fn events(e: &Value) -> String {
    let n = |k: &str| e["erased"][k].as_u64().unwrap_or(0);
    format!(
        "{} dropped, {} rewritten",
        n("events_dropped"),
        n("events_rewritten")
    )
}

fn print(e: &Value, as_json: bool) {
    if as_json {
        output::json(e);
        return;
    }
    outln!(
        "{} {} {} {}",
        text(e, "id"),
        text(e, "entity_type"),
        text(e, "entity_id"),
        text(e, "status")
    );
    if let Some(counts) = e["erased"].as_object() {
        for (k, v) in counts {
            outln!("  {k}: {v}");
        }
    }
    if let Some(err) = e["error"].as_str() {
        outln!("error: {err}");
    }
}
