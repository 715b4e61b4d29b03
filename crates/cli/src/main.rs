//! `hookline`: the one binary. Two kinds of commands:
//!
//! - remote ones (`login`, `webhooks`, `events`, `deliveries`, `contacts`, `keys`, `api`, `mcp`)
//!   talk to a deployment's REST API (or `/mcp`) with an API key, from any machine; they hold no
//!   rules of their own and never open a database;
//! - local ones (`serve`, `migrate`, `keys create --local`, `bench`, `receive`, `verify`,
//!   `completions`) act on this machine: the server, its database, a local receiver, a saved
//!   request.
//!
//! Exit statuses are a contract; `error.rs` lists them.

/// `println!` for results: a closed pipe (`hookline … | head`) ends the process quietly, as it does
/// other command-line tools, instead of a panic. Defined before the modules so they all see it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

/// mimalloc instead of glibc malloc: a delivery allocates and frees many small buffers (JSON
/// values, header maps, request and response bytes) across threads, and glibc's `malloc`, `free`
/// and `malloc_consolidate` took ~15 % of all CPU under sustained delivery load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod client;
mod contacts;
mod deliveries;
mod erasures;
mod error;
mod events;
mod input;
mod jobs;
mod keys;
mod listen;
mod mcp;
mod output;
mod profile;
mod raw;
mod webhooks;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use error::usage;
use hookline_server::config::Config;
use hookline_server::{App, Roles};
use profile::Target;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

const AFTER_HELP: &str = "\
Remote commands (login, webhooks, events, deliveries, contacts, keys, api, mcp) talk to a \
deployment's REST API from any machine. They find it with --url (also --api-url; in `webhooks`, where --url is \
a webhook's endpoint, only --api-url) / HOOKLINE_URL and --key / HOOKLINE_API_KEY, or a profile \
saved by `hookline login` in ~/.config/hookline/config.toml (--profile NAME or HOOKLINE_PROFILE; \
else the profile `default`). Add --json for the API's JSON.

Local commands (serve, migrate, keys create --local, keys rotate-encryption, bench, receive, \
verify) act on this machine and, for serve, migrate and the two keys commands, on the database \
named by --database / --config.

Exit status: 0 done; 1 refused by the API (its message and field are shown) or the operation \
failed; 2 bad command line or local input; 3 API key refused; 4 server unreachable; 5 server \
error (5xx).";

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Signed, durable webhooks for a CRM",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a remote command goes, and how it prints.
#[derive(Args)]
struct Remote {
    #[command(flatten)]
    target: Target,
    /// Print the API's JSON instead of tables (errors too: the API's error object on stdout).
    #[arg(long, global = true)]
    json: bool,
}

/// [`Remote`] for `webhooks`, whose `--url` is a webhook's endpoint.
#[derive(Args)]
struct WebhooksRemote {
    #[command(flatten)]
    target: profile::WebhooksTarget,
    /// Print the API's JSON instead of tables (errors too: the API's error object on stdout).
    #[arg(long, global = true)]
    json: bool,
}

/// The database a local command opens.
#[derive(Args, Clone)]
struct LocalDb {
    /// Server configuration file (TOML). Default: ./hookline.toml when it exists.
    #[arg(long, env = "HOOKLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (sqlite://FILE or postgres://…). Overrides the file and HOOKLINE_DATABASE_URL.
    #[arg(long)]
    database: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Save a deployment's URL and API key as a profile (checked against the API first).
    Login {
        /// The deployment, e.g. https://hooks.example.com
        #[arg(long)]
        url: String,
        /// The API key (hk_…); `-` reads it from standard input, out of the shell's history.
        #[arg(long)]
        key: String,
        /// The profile's name.
        #[arg(long, default_value = profile::DEFAULT_PROFILE)]
        profile: String,
        /// Save without checking the key against the deployment.
        #[arg(long)]
        no_verify: bool,
    },
    /// Remove a saved profile.
    Logout {
        #[arg(long, default_value = profile::DEFAULT_PROFILE)]
        profile: String,
    },
    /// A deployment's webhooks: list, get, create, update, delete, enable, disable, secrets, test.
    /// Here `--url` is a webhook's endpoint: give the deployment as --api-url (or by profile or
    /// HOOKLINE_URL).
    Webhooks {
        #[command(flatten)]
        remote: WebhooksRemote,
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Publish events and read them back; the event catalog.
    Events {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The delivery log: list, show, resend, replay, and tail (follow live).
    Deliveries {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: deliveries::DeliveriesCommand,
    },
    /// Background jobs (replays): list, show, cancel, wait.
    Jobs {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// Receive a deployment's deliveries on this machine, without a public URL: a temporary
    /// webhook whose deliveries are forwarded to --forward-to until you stop (Ctrl-C).
    Listen {
        #[command(flatten)]
        remote: Remote,
        /// Event names or patterns, comma-separated.
        #[arg(long, default_value = "*")]
        events: String,
        /// The wire format: envelope (default), flat, entity or contacts-list.
        #[arg(long)]
        format: Option<String>,
        /// Where to send each delivery, e.g. http://localhost:3000/hook.
        #[arg(long)]
        forward_to: String,
    },
    /// Right to erasure: erase a record from every stored event and log, show, list.
    Erasures {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: erasures::ErasuresCommand,
    },
    /// CRM contacts: import a CSV or JSON file (resumable), list, get, create, update, delete.
    Contacts {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: contacts::ContactsCommand,
    },
    /// Call any REST endpoint with the configured deployment and key, e.g. `api GET /v1/deals`.
    Api {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: raw::ApiArgs,
    },
    /// Serve MCP on stdin/stdout for an AI assistant, forwarding to a deployment's /mcp.
    Mcp {
        #[command(flatten)]
        target: Target,
    },
    /// Local: run the server (API and delivery worker) on this machine.
    Serve {
        #[command(flatten)]
        db: LocalDb,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Serve the REST API (alone, unless --worker is given too).
        #[arg(long)]
        api: bool,
        /// Run the delivery worker (alone, unless --api is given too).
        #[arg(long)]
        worker: bool,
    },
    /// Local: apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: LocalDb,
    },
    /// The deployment's API keys: list, create (shown once), revoke. `keys create --local` mints
    /// one on this machine's database instead (no server or key needed: the first key);
    /// `keys rotate-encryption` re-encrypts the database's webhook secrets under a new key.
    Keys {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Local: measure throughput, latency, isolation, fan-out and backlog memory (BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Local: run a receiver that verifies signatures and prints each delivery.
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The webhook's secret; without it signatures are shown as unchecked.
        #[arg(long, env = "HOOKLINE_RECEIVE_SECRET")]
        secret: Option<String>,
        /// Print counts once a second instead of a line per delivery.
        #[arg(long)]
        quiet: bool,
        /// Accept a request signed with X-Webhook-Signature alone (no webhook-* headers). That
        /// signature has no timestamp, so a captured request could be replayed; Hookline always
        /// sends both schemes.
        #[arg(long)]
        allow_hex_only: bool,
    },
    /// Local: check a saved delivery's signatures as a receiver would (exit 0 when they verify).
    Verify {
        /// File holding the raw request body exactly as received (`-` for standard input).
        body: PathBuf,
        /// The webhook's secret.
        #[arg(long, env = "HOOKLINE_RECEIVE_SECRET")]
        secret: String,
        /// A request header as `Name: value`; repeat for each (X-Webhook-Signature, webhook-id,
        /// webhook-timestamp, webhook-signature).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Judge the Standard Webhooks timestamp as of this Unix time instead of now (for old deliveries).
        #[arg(long)]
        at: Option<i64>,
        /// Accept a request signed with X-Webhook-Signature alone (no webhook-* headers). That
        /// signature has no timestamp, so a captured request could be replayed.
        #[arg(long)]
        allow_hex_only: bool,
    },
    /// Print a shell completion script, e.g. `hookline completions bash > /etc/bash_completion.d/hookline`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the user asked for JSON (then an API error is printed as JSON on stdout too).
    fn json(&self) -> bool {
        match self {
            Command::Webhooks { remote, .. } => remote.json,
            Command::Events { remote, .. }
            | Command::Deliveries { remote, .. }
            | Command::Jobs { remote, .. }
            | Command::Erasures { remote, .. }
            | Command::Listen { remote, .. }
            | Command::Contacts { remote, .. }
            | Command::Keys { remote, .. } => remote.json,
            Command::Api { .. } => true,
            _ => false,
        }
    }
}

fn load_config(db: &LocalDb, extra: &[(&str, String)]) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("hookline.toml");
    let file = db
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let mut flags: Vec<(&str, String)> = extra.to_vec();
    if let Some(url) = &db.database {
        flags.push(("database_url", url.clone()));
    }
    Config::load(file.as_deref(), std::env::vars(), &flags).map_err(|e| usage(e.to_string()))
}

fn init_tracing(filter: &str) {
    let logs = hookline_server::config::LogFormat::Text;
    let _ = hookline_server::telemetry::init(filter, logs, None);
}

/// Logs as the configuration asks (`log`, `log_format`) and, with `traces`, trace export to
/// `otel_endpoint` when it is set; the answer flushes queued spans at `shutdown()`.
fn init_telemetry(
    config: &Config,
    traces: bool,
) -> anyhow::Result<hookline_server::telemetry::Telemetry> {
    let otel = config.otel_endpoint.as_deref().filter(|_| traces);
    hookline_server::telemetry::init(&config.log, config.log_format, otel)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.command.json();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if json {
                if let Some(body) = error::api_body(&e) {
                    output::json(body);
                }
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(error::exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Login {
            url,
            key,
            profile,
            no_verify,
        } => login(&url, &key, &profile, no_verify).await,
        Command::Logout { profile } => {
            profile::check_name(&profile)?;
            let (path, mut file) = profile::load()?;
            if file.profiles.remove(&profile).is_none() {
                return Err(usage(format!(
                    "no profile `{profile}` in {}",
                    path.display()
                )));
            }
            profile::save(&path, &file)?;
            outln!("removed profile `{profile}` from {}", path.display());
            Ok(())
        }
        Command::Webhooks { remote, command } => {
            let api = client::Api::from_target(&Target::from(&remote.target))?;
            webhooks::run(&api, remote.json, &command).await
        }
        Command::Events { remote, command } => {
            let api = client::Api::from_target(&remote.target)?;
            events::run(&api, remote.json, &command).await
        }
        Command::Deliveries { remote, command } => {
            let api = client::Api::from_target(&remote.target)?;
            deliveries::run(&api, remote.json, &command).await
        }
        Command::Jobs { remote, command } => {
            let api = client::Api::from_target(&remote.target)?;
            jobs::run(&api, remote.json, &command).await
        }
        Command::Listen {
            remote,
            events,
            format,
            forward_to,
        } => {
            let api = client::Api::from_target(&remote.target)?;
            let args = listen::Listen {
                events,
                format,
                forward_to,
            };
            listen::run(api, args, remote.json).await
        }
        Command::Erasures { remote, command } => {
            let api = client::Api::from_target(&remote.target)?;
            erasures::run(&api, remote.json, &command).await
        }
        Command::Contacts { remote, command } => {
            let api = client::Api::from_target(&remote.target)?;
            contacts::run(&api, remote.json, &command).await
        }
        Command::Api { target, args } => {
            let api = client::Api::from_target(&target)?;
            raw::run(&api, &args).await
        }
        Command::Mcp { target } => {
            // rmcp logs a cancelled write task as an error when stdin closes: not news to anyone.
            init_tracing("warn,rmcp=off");
            let (url, key) = profile::resolve_parts(&target)?;
            mcp::run(url, key).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hookline",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Serve {
            db,
            listen,
            api,
            worker,
        } => {
            let mut extra = Vec::new();
            if let Some(l) = listen {
                extra.push(("listen", l));
            }
            let config = load_config(&db, &extra)?;
            let telemetry = init_telemetry(&config, true)?;
            let roles = if api || worker {
                Roles { api, worker }
            } else {
                Roles::default()
            };
            let served = serve(config, roles).await;
            telemetry.shutdown().await;
            served
        }
        Command::Migrate { db } => {
            let config = load_config(&db, &[])?;
            let _logs = init_telemetry(&config, false)?;
            App::build(config).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Bench(args) => {
            init_tracing("warn");
            bench::run(args).await
        }
        Command::Receive {
            listen,
            secret,
            quiet,
            allow_hex_only,
        } => {
            init_tracing("warn");
            let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
                usage(format!(
                    "--listen `{listen}` is not an address like 127.0.0.1:9000"
                ))
            })?;
            let listener = hookline_server::receiver::bind(addr)
                .await
                .with_context(|| format!("can't listen on {addr}"))?;
            eprintln!(
                "receiving on http://{}/ (Ctrl-C to stop)",
                listener.local_addr()?
            );
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_shutdown(shutdown.clone()));
            let opts = hookline_server::receiver::ReceiverOptions {
                secret,
                quiet,
                allow_hex_only,
            };
            let stats = std::sync::Arc::default();
            hookline_server::receiver::run(listener, opts, stats, shutdown).await?;
            Ok(())
        }
        Command::Verify {
            body,
            secret,
            headers,
            at,
            allow_hex_only,
        } => verify(&body, &secret, &headers, at, allow_hex_only),
        Command::Keys {
            remote,
            command: keys::KeysCommand::Create(a),
        } if a.local()? => {
            if remote.target.url.is_some() || remote.target.key.is_some() {
                return Err(usage(
                    "--local mints the key on this machine's database: drop --url and --key, or \
                     drop --local (and --database, --config, --tenant) to create it through the API",
                ));
            }
            let db = LocalDb {
                config: a
                    .config
                    .clone()
                    .or_else(|| std::env::var_os("HOOKLINE_CONFIG").map(PathBuf::from)),
                database: a.database.clone(),
            };
            let config = load_config(&db, &[])?;
            init_tracing("warn");
            let app = App::build(config).await?;
            let tenant = a.tenant.as_deref().unwrap_or("default");
            let key = app.hookline.create_key(tenant, &a.name).await?;
            println!("{key}");
            Ok(())
        }
        Command::Keys {
            remote,
            command: keys::KeysCommand::RotateEncryption { config, database },
        } => {
            let db = LocalDb {
                config: config.or_else(|| std::env::var_os("HOOKLINE_CONFIG").map(PathBuf::from)),
                database,
            };
            if remote.target.url.is_some() || remote.target.key.is_some() {
                return Err(usage(
                    "rotate-encryption works on this machine's database (--database, --config): \
                     drop --url and --key",
                ));
            }
            let config = load_config(&db, &[])?;
            init_tracing("warn");
            // Opening migrates, which first refuses any secret sealed under a key not configured.
            let app = App::build(config).await?;
            let report = app.hookline.rotate_encryption().await?;
            println!(
                "re-encrypted the secrets of {} webhooks under key {}; every secret is under that key now",
                report.webhooks, report.key_id
            );
            Ok(())
        }
        Command::Keys { remote, command } => {
            let api = client::Api::from_target(&remote.target).map_err(|e| match &command {
                // Before there is any key, the way in is the database.
                keys::KeysCommand::Create(_) => usage(format!(
                    "{e}; or add --local to mint the key on this machine's database"
                )),
                _ => e,
            })?;
            keys::run(&api, remote.json, &command).await
        }
    }
}

/// `hookline login`: checks the key against the deployment (unless told not to), then saves it.
async fn login(url: &str, key: &str, name: &str, no_verify: bool) -> anyhow::Result<()> {
    profile::check_name(name)?;
    let key = if key == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| usage(format!("can't read the key from standard input: {e}")))?;
        line.trim().to_string()
    } else {
        key.trim().to_string()
    };
    let api = client::Api::new(url, &key)?;
    if !no_verify {
        // The cheapest call that needs a valid key.
        api.get(&["v1", "event-types"], &[])
            .await
            .context("the key was not saved")?;
    }
    let (path, mut file) = profile::load()?;
    file.profiles.insert(
        name.to_string(),
        profile::Profile {
            url: api.base().to_string(),
            key,
        },
    );
    profile::save(&path, &file)?;
    outln!(
        "saved profile `{name}` for {} in {}",
        api.base(),
        path.display()
    );
    Ok(())
}

async fn serve(config: Config, roles: Roles) -> anyhow::Result<()> {
    let listen = config.listen;
    let app = App::build(config).await?;
    if let Some(key) = app.hookline.bootstrap().await? {
        println!("Created tenant `default` with this API key (shown once; keep it safe):");
        println!("{key}");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("can't listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, api = roles.api, worker = roles.worker, "hookline listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    app.serve(listener, shutdown, roles).await
}

/// Cancels `token` on Ctrl-C or SIGTERM.
async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    token.cancel();
}

/// `hookline verify`: both signature schemes of one saved request, checked with hookline-verify.
fn verify(
    body: &std::path::Path,
    secret: &str,
    headers: &[String],
    at: Option<i64>,
    allow_hex_only: bool,
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut raw = Vec::new();
    if body.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw)?;
    } else {
        raw = std::fs::read(body)
            .map_err(|e| usage(format!("can't read {}: {e}", body.display())))?;
    }
    let mut map = std::collections::HashMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("--header `{h}` must look like `Name: value`")))?;
        map.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let get = |n: &str| map.get(n).map(String::as_str).unwrap_or("");
    let now = at.unwrap_or_else(hookline_verify::unix_now);
    let hex = match get("x-webhook-signature") {
        "" => None,
        sig => Some(hookline_verify::verify_hex(secret, &raw, sig)),
    };
    let standard = match get("webhook-signature") {
        "" => None,
        sig => {
            let h = hookline_verify::StandardHeaders {
                id: get("webhook-id"),
                timestamp: get("webhook-timestamp"),
                signature: sig,
            };
            Some(hookline_verify::verify_standard(
                secret,
                &h,
                &raw,
                now,
                hookline_verify::DEFAULT_TOLERANCE_SECS,
            ))
        }
    };
    let show = |name: &str, r: &Option<Result<(), hookline_verify::VerifyError>>| match r {
        None => println!("{name}: not present"),
        Some(Ok(())) => println!("{name}: ok"),
        Some(Err(e)) => println!("{name}: FAILED ({e})"),
    };
    show("X-Webhook-Signature", &hex);
    show("Standard Webhooks", &standard);
    match (&hex, &standard) {
        (None, None) => Err(usage("no signature header given (use -H 'X-Webhook-Signature: …' and/or the webhook-* headers)")),
        (Some(Err(_)), _) | (_, Some(Err(_))) => anyhow::bail!("the signatures do not verify"),
        // The hex signature has no timestamp: accepting it alone would accept a replay.
        (Some(Ok(())), None) if !allow_hex_only => anyhow::bail!(
            "only X-Webhook-Signature was given: it carries no timestamp, so a replay would verify \
             too; a careful receiver refuses it (add the webhook-* headers, or pass \
             --allow-hex-only for a sender that signs with X-Webhook-Signature alone)"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
