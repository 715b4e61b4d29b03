//! `hookline keys …`: a deployment's API keys over the REST API (`/v1/api-keys`): list, create,
//! revoke. `keys create --local` is the exception: it mints a key on this machine's database
//! without any server or key (the bootstrap) and is run from `main.rs`; which of the two a
//! `keys create` is, [`CreateArgs::local`] decides. `keys rotate-encryption` is local too (it
//! re-encrypts the database's webhook secrets, nothing to do with API keys but the word "keys").

use crate::client::Api;
use crate::error::{failed, usage};
use crate::input::PageArgs;
use crate::output::{self, details, text, Table};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the deployment's API keys, newest first (revoked and expired ones too).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create an API key and print only the key (shown this once). Through the API by default;
    /// with --local (or --database, --config, --tenant) on this machine's database instead, with no
    /// server or key needed: how the first key of a deployment is made.
    Create(CreateArgs),
    /// Revoke an API key: from its next request on it is refused, on every node. The last active
    /// full key can't be revoked.
    Revoke {
        /// The key's id (`hookline keys list` shows it).
        id: String,
        /// Don't ask for confirmation (asked only on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Local: re-encrypt every webhook secret and custom header value on this machine's database
    /// under the current encryption key (encryption_key / HOOKLINE_ENCRYPTION_KEY); values sealed
    /// under a key of encryption_keys_old are read with it meanwhile, so running nodes that hold
    /// both keys keep delivering. Afterwards the old key can be dropped (README: "Secrets at rest").
    RotateEncryption {
        /// Server configuration file (TOML). Default: ./hookline.toml when it exists, or
        /// HOOKLINE_CONFIG.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Database URL (sqlite://FILE or postgres://…). Default: the configuration's,
        /// HOOKLINE_DATABASE_URL, or ./hookline.db.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// What the key is for, shown in listings.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// `full` (default): everything; `read`: GET requests only.
    #[arg(long, value_name = "full|read")]
    pub scope: Option<String>,
    /// Stop working after this long, e.g. 90d or 12h (default: never, until revoked).
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Stop working at this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// Mint the key on this machine's database instead of through the API: a full key that never
    /// expires, for the tenant --tenant (created if needed).
    #[arg(long)]
    pub local: bool,
    /// With --local: server configuration file (TOML). Default: ./hookline.toml when it exists,
    /// or HOOKLINE_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With --local: database URL (sqlite://FILE or postgres://…). Default: the configuration's,
    /// HOOKLINE_DATABASE_URL, or ./hookline.db.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// With --local: the tenant (default `default`).
    #[arg(long)]
    pub tenant: Option<String>,
}

impl CreateArgs {
    /// Whether this is the local bootstrap: asked for with --local, or implied by an option only
    /// the local command has (so `keys create --tenant acme`, as before remote key management,
    /// still mints on the database). Environment variables never imply it: the same shell may name
    /// a deployment and a database.
    pub fn local(&self) -> anyhow::Result<bool> {
        let local =
            self.local || self.config.is_some() || self.database.is_some() || self.tenant.is_some();
        if local {
            let remote_only = [
                ("--scope", self.scope.is_some()),
                ("--expires-in", self.expires_in.is_some()),
                ("--expires-at", self.expires_at.is_some()),
            ];
            if let Some((flag, _)) = remote_only.iter().find(|(_, given)| *given) {
                return Err(usage(format!(
                    "{flag} needs the API: a key minted with --local (or --database, --config, \
                     --tenant) is a full key that never expires; create it through the API instead"
                )));
            }
        }
        Ok(local)
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

/// `name (this key)` for the key making the request.
fn name(k: &Value) -> String {
    let n = text(k, "name");
    if k["current"].as_bool() == Some(true) {
        format!("{n} (this key)")
    } else {
        n
    }
}

pub async fn run(api: &Api, as_json: bool, cmd: &KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { page } => {
            let list = api
                .list(&["v1", "api-keys"], &[], page.limit(), page.cursor.clone())
                .await?;
            if as_json {
                output::json(&list);
                return Ok(());
            }
            let mut t = Table::new(&[
                "ID",
                "PREFIX",
                "SCOPE",
                "STATUS",
                "LAST USED",
                "EXPIRES",
                "NAME",
            ]);
            for k in output::rows(&list) {
                let expires = match k["expires_at"].as_str() {
                    Some(e) => e.to_string(),
                    None => "never".into(),
                };
                let used = match k["last_used_at"].as_str() {
                    Some(u) => u.to_string(),
                    None => "never".into(),
                };
                t.row(vec![
                    text(k, "id"),
                    text(k, "prefix"),
                    text(k, "scope"),
                    text(k, "status"),
                    used,
                    expires,
                    name(k),
                ]);
            }
            t.print("no API keys");
            output::more(&list);
        }
        KeysCommand::Create(a) => {
            let mut body = Map::new();
            body.insert("name".into(), json!(a.name));
            if let Some(s) = &a.scope {
                body.insert("scope".into(), json!(s));
            }
            if let Some(e) = &a.expires_in {
                body.insert("expires_in".into(), json!(e));
            }
            if let Some(e) = &a.expires_at {
                body.insert("expires_at".into(), json!(e));
            }
            let k = api
                .post(&["v1", "api-keys"], Some(Value::Object(body)))
                .await?;
            if as_json {
                output::json(&k);
            } else {
                // Only the key on standard output, so `KEY=$(hookline keys create --name ci)`.
                outln!("{}", text(&k, "key"));
                let expiry = match k["expires_at"].as_str() {
                    Some(e) => format!("expires {e}"),
                    None => "never expires".into(),
                };
                eprintln!(
                    "Created key {} “{}” ({} scope, {expiry}). It is shown only this once.",
                    text(&k, "id"),
                    text(&k, "name"),
                    text(&k, "scope"),
                );
            }
        }
        KeysCommand::Revoke { id, yes } => {
            if !yes
                && std::io::stdin().is_terminal()
                && !confirm(&format!(
                    "Revoke API key {id}? Whatever uses it stops working at once."
                ))
            {
                return Err(failed("not revoked"));
            }
            let k = api.delete(&["v1", "api-keys", id]).await?;
            if as_json {
                output::json(&k);
            } else {
                details(&[
                    ("revoked", text(&k, "id")),
                    ("name", name(&k)),
                    ("prefix", text(&k, "prefix")),
                    ("at", text(&k, "revoked_at")),
                ]);
            }
        }
        // A local command on the database, with no API to call: main.rs runs it before any
        // remote `keys` command gets here.
        KeysCommand::RotateEncryption { .. } => {
            unreachable!("main.rs runs `keys rotate-encryption` on the local database")
        }
    }
    Ok(())
}
