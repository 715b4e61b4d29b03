//! `hookline`: the one binary. Subcommands run the server or act on its database directly.

mod bench;
mod mcp;
mod ops;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookline_server::config::Config;
use hookline_server::{App, Roles};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Signed, durable webhooks for a CRM"
)]
struct Cli {
    /// Configuration file (TOML). Default: ./hookline.toml when it exists.
    #[arg(long, global = true, env = "HOOKLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (sqlite://FILE). Overrides the file and HOOKLINE_DATABASE_URL.
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API and delivery worker).
    Serve {
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
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure throughput, latency, isolation, fan-out and backlog memory (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run a local receiver that verifies signatures and prints each delivery.
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
    },
    /// Check a saved delivery's signatures as a receiver would (exit 0 when they verify).
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
    },
    /// Serve MCP on stdin/stdout for an AI assistant, forwarding to a running server's /mcp.
    Mcp {
        /// The deployment, e.g. https://hooks.example.com (its /mcp endpoint is used).
        #[arg(long, env = "HOOKLINE_URL")]
        url: Option<String>,
        /// An API key of the deployment.
        #[arg(long, env = "HOOKLINE_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Inspect and test webhooks.
    Webhooks {
        #[command(flatten)]
        scope: ops::Scope,
        #[command(subcommand)]
        command: ops::WebhooksCommand,
    },
    /// CRM contacts: import a CSV or JSON file.
    Contacts {
        #[command(flatten)]
        scope: ops::Scope,
        #[command(subcommand)]
        command: ops::ContactsCommand,
    },
    /// The delivery log: list, show, resend.
    Deliveries {
        #[command(flatten)]
        scope: ops::Scope,
        #[command(subcommand)]
        command: ops::DeliveriesCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Mint a new API key and print only the key on stdout (the tenant is created if needed).
    Create {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// A label for the key, shown in listings.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn load_config(cli: &Cli, extra: &[(&str, String)]) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("hookline.toml");
    let file = cli
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let mut flags: Vec<(&str, String)> = extra.to_vec();
    if let Some(db) = &cli.database {
        flags.push(("database_url", db.clone()));
    }
    Ok(Config::load(file.as_deref(), std::env::vars(), &flags)?)
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Mcp { url, key } => {
            // rmcp logs a cancelled write task as an error when stdin closes: not news to anyone.
            init_tracing("warn,rmcp=off");
            mcp::run(url.clone(), key.clone()).await
        }
        Command::Serve {
            listen,
            api,
            worker,
        } => {
            let mut extra = Vec::new();
            if let Some(l) = listen {
                extra.push(("listen", l.clone()));
            }
            let config = load_config(&cli, &extra)?;
            init_tracing(&config.log);
            let roles = if *api || *worker {
                Roles {
                    api: *api,
                    worker: *worker,
                }
            } else {
                Roles::default()
            };
            serve(config, roles).await
        }
        Command::Migrate => {
            let config = load_config(&cli, &[])?;
            init_tracing(&config.log);
            App::build(config).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Bench(args) => {
            init_tracing("warn");
            bench::run(args.clone()).await
        }
        Command::Receive {
            listen,
            secret,
            quiet,
        } => {
            init_tracing("warn");
            let addr: std::net::SocketAddr = listen.parse().with_context(|| {
                format!("--listen `{listen}` is not an address like 127.0.0.1:9000")
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
                secret: secret.clone(),
                quiet: *quiet,
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
        } => verify(body, secret, headers, *at),
        Command::Webhooks { scope, command } => {
            let config = load_config(&cli, &[])?;
            init_tracing("warn");
            let app = App::build(config).await?;
            ops::webhooks(&app.hookline, scope, command).await
        }
        Command::Contacts { scope, command } => {
            let config = load_config(&cli, &[])?;
            init_tracing("warn");
            let app = App::build(config).await?;
            ops::contacts(&app.hookline, scope, command).await
        }
        Command::Deliveries { scope, command } => {
            let config = load_config(&cli, &[])?;
            init_tracing("warn");
            let app = App::build(config).await?;
            ops::deliveries(&app.hookline, scope, command).await
        }
        Command::Keys {
            command: KeysCommand::Create { tenant, name },
        } => {
            let config = load_config(&cli, &[])?;
            init_tracing("warn");
            let app = App::build(config).await?;
            let key = app.hookline.create_key(tenant, name).await?;
            println!("{key}");
            Ok(())
        }
    }
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
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut raw = Vec::new();
    if body.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw)?;
    } else {
        raw = std::fs::read(body).with_context(|| format!("can't read {}", body.display()))?;
    }
    let mut map = std::collections::HashMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header `{h}` must look like `Name: value`"))?;
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
        (None, None) => anyhow::bail!("no signature header given (use -H 'X-Webhook-Signature: …' and/or the webhook-* headers)"),
        (Some(Err(_)), _) | (_, Some(Err(_))) => anyhow::bail!("the signatures do not verify"),
        _ => Ok(()),
    }
}
