//! The remote commands against a spawned `hookline serve`, run from another directory with no
//! database, as a user on another machine would: every command, `--json` parsed, the API's errors
//! and the exit statuses, profiles, `deliveries tail`, and an import interrupted and resumed.

use super::{free_port, hookline, new_key, run, spawn_serve, terminate, wait_ready, MiniReceiver};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running server and a "laptop": another directory (also its home) with only a URL and a key.
struct Deployment {
    _server_dir: tempfile::TempDir,
    laptop: tempfile::TempDir,
    server: Option<Child>,
    url: String,
    key: String,
}

impl Deployment {
    fn start() -> Deployment {
        let server_dir = tempfile::tempdir().unwrap();
        let key = new_key(server_dir.path());
        let port = free_port();
        let server = spawn_serve(server_dir.path(), port);
        wait_ready(port);
        Deployment {
            _server_dir: server_dir,
            laptop: tempfile::tempdir().unwrap(),
            server: Some(server),
            url: format!("http://127.0.0.1:{port}"),
            key,
        }
    }

    /// `hookline ARGS --api-url … --key …` on the laptop (`--api-url`: in `webhooks` commands
    /// `--url` is a webhook's endpoint).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = hookline(self.laptop.path());
        c.args(args)
            .args(["--api-url", &self.url, "--key", &self.key]);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    /// Stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.out(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `--json` output of a command that must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// A command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.out(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// A command fed `input` on standard input.
    fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            terminate(server);
        }
        assert!(
            !self.laptop.path().join("hookline.db").exists(),
            "remote commands never open a database"
        );
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn every_remote_command_works_with_a_url_and_a_key() {
    let d = Deployment::start();
    let rx = MiniReceiver::start(Duration::ZERO);

    // Webhooks.
    let w = d.json(&[
        "webhooks",
        "create",
        "--url",
        &rx.url(),
        "--events",
        "contact.*,deal.stage.changed",
        "--format",
        "flat",
        "--header",
        "X-Team=crm",
        "--name",
        "Sync",
    ]);
    let id = s(&w["id"]).to_string();
    assert!(s(&w["secret"]).starts_with("whsec_"), "{w}");
    assert_eq!(
        w["events"],
        serde_json::json!(["contact.*", "deal.stage.changed"])
    );
    assert_eq!(w["format"], "flat");
    // Stored encrypted, shown masked (short values wholly).
    assert_eq!(w["headers"]["X-Team"], "••••••••");
    let human = d.ok(&["webhooks", "list"]);
    assert!(
        human.starts_with("ID") && human.contains(&id) && human.contains("Sync"),
        "{human}"
    );
    let list = d.json(&["webhooks", "list", "--search", "Sync"]);
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(list["next_cursor"].is_null());
    assert_eq!(d.json(&["webhooks", "get", &id])["name"], "Sync");
    let u = d.json(&[
        "webhooks",
        "update",
        &id,
        "--name",
        "Renamed",
        "--rate-limit",
        "50",
        "--retry-schedule",
        "30s,6m",
    ]);
    assert_eq!(u["name"], "Renamed");
    assert_eq!(u["rate_limit"], 50);
    assert_eq!(d.json(&["webhooks", "disable", &id])["enabled"], false);
    assert!(d.ok(&["webhooks", "get", &id]).contains("disabled"));
    assert_eq!(d.json(&["webhooks", "enable", &id])["enabled"], true);
    let secret = d.ok(&["webhooks", "secret", &id]).trim().to_string();
    assert_eq!(secret, s(&w["secret"]));
    let rotated = d.json(&["webhooks", "rotate-secret", &id, "--grace-period", "0s"]);
    assert_ne!(s(&rotated["secret"]), secret);
    let t = d.json(&["webhooks", "test", &id, "--event-type", "contact.updated"]);
    assert_eq!(t["success"], true, "{t}");
    assert_eq!(t["attempt"]["status_code"], 200);
    let t = d.json(&[
        "webhooks",
        "test",
        "--url",
        &rx.url(),
        "--format",
        "envelope",
    ]);
    assert_eq!(t["success"], true, "{t}");
    // The test receiver answers 200 to anything, forged signatures too: the handshake says so,
    // and the command fails.
    let out = d.out(&["webhooks", "verify-receiver", &id, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "accepts_bad_signatures", "{v}");

    // Events: --data @file, standard input, arrays.
    std::fs::write(
        d.laptop.path().join("contact.json"),
        r#"{"id": "c1", "first_name": "Ada"}"#,
    )
    .unwrap();
    let p = d.json(&[
        "events",
        "publish",
        "--type",
        "contact.created",
        "--data",
        "@contact.json",
        "--idempotency-key",
        "k1",
    ]);
    let event_id = s(&p["id"]).to_string();
    assert_eq!(p["delivery_ids"].as_array().unwrap().len(), 1, "{p}");
    let again = d.ok(&[
        "events",
        "publish",
        "--type",
        "contact.created",
        "--data",
        "@contact.json",
        "--idempotency-key",
        "k1",
    ]);
    assert!(
        again.contains(&event_id),
        "an idempotent replay answers the same event: {again}"
    );
    let out = d.with_stdin(
        &[
            "events",
            "publish",
            "--type",
            "deal.stage.changed",
            "--json",
        ],
        r#"{"id": "d1", "name": "Big", "stage": "won"}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.with_stdin(
        &["events", "publish", "--json"],
        r#"[{"event_type": "contact.updated", "data": {"id": "c1"}},
            {"event_type": "contact.deleted", "data": {"ids": ["c1"]}}]"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let many: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(many["data"].as_array().unwrap().len(), 2, "{many}");
    let events = d.json(&["events", "list", "--type", "contact.created"]);
    assert!(events["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == event_id.as_str()));
    let e = d.json(&["events", "get", &event_id]);
    assert_eq!(e["data"]["first_name"], "Ada");
    assert!(d
        .ok(&["events", "get", &event_id])
        .contains("\"first_name\": \"Ada\""));
    let types = d.json(&["events", "types"]);
    assert!(types["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "contact.created"));

    // Deliveries.
    let delivery = s(&p["delivery_ids"][0]).to_string();
    let start = Instant::now();
    while d.json(&["deliveries", "show", &delivery])["status"] != "delivered" {
        assert!(start.elapsed() < Duration::from_secs(20), "never delivered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.json(&[
        "deliveries",
        "list",
        "--webhook",
        &id,
        "--event-type",
        "contact.created",
    ]);
    assert!(log["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == delivery.as_str()));
    let paged = d.json(&["deliveries", "list", "--limit", "1"]);
    assert_eq!(paged["data"].as_array().unwrap().len(), 1);
    let cursor = s(&paged["next_cursor"]).to_string();
    let next = d.json(&["deliveries", "list", "--limit", "1", "--cursor", &cursor]);
    assert_ne!(next["data"][0]["id"], paged["data"][0]["id"]);
    assert!(d.ok(&["deliveries", "list"]).contains(&delivery));
    assert!(d
        .ok(&["deliveries", "show", &delivery])
        .contains("HTTP 200"));
    let resent = d.json(&["deliveries", "resend", &delivery]);
    assert_eq!(resent["resent_from"], delivery.as_str());
    // The resend is a new log record that the receiver sees under the original's id.
    assert_eq!(resent["message_id"], delivery.as_str());
    // A delivered delivery can't be cancelled: the API's 409 comes through.
    let refused = d.fails(&["deliveries", "cancel", &delivery], 1);
    assert!(refused.contains("not_cancellable"), "{refused}");
    let shown = d.ok(&["deliveries", "show", s(&resent["id"])]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("message id") && l.contains(&delivery)),
        "{shown}"
    );
    let replay = d.json(&[
        "deliveries",
        "replay",
        "--webhook",
        &id,
        "--since",
        "2000-01-01T00:00:00Z",
        "--status",
        "delivered",
        "--dry-run",
    ]);
    assert!(replay["count"].as_u64().unwrap() >= 1, "{replay}");
    assert_eq!(replay["dry_run"], true);

    // Contacts.
    let c = d.json(&[
        "contacts",
        "create",
        "--data",
        r#"{"id": "ct1", "first_name": "Grace", "primary_email": "grace@example.com", "tags": [{"name": "vip"}]}"#,
    ]);
    assert_eq!(c["events"][0]["event_type"], "contact.created", "{c}");
    assert_eq!(
        d.json(&["contacts", "get", "ct1"])["data"]["first_name"],
        "Grace"
    );
    let patched = d.json(&[
        "contacts",
        "update",
        "ct1",
        "--data",
        r#"{"last_name": "Hopper"}"#,
        "--if-match",
        "1",
    ]);
    assert_eq!(patched["version"], 2, "{patched}");
    let stale = d.fails(
        &[
            "contacts",
            "update",
            "ct1",
            "--data",
            r#"{"last_name": "X"}"#,
            "--if-match",
            "1",
        ],
        1,
    );
    assert!(stale.contains("HTTP 409"), "{stale}");
    let listed = d.json(&["contacts", "list", "--tag", "vip"]);
    assert_eq!(listed["data"][0]["data"]["id"], "ct1");
    assert!(d
        .ok(&["contacts", "list", "--search", "hopper"])
        .contains("Grace Hopper"));
    d.ok(&["contacts", "delete", "ct1"]);
    d.fails(&["contacts", "get", "ct1"], 1);

    // Anything else the API can do.
    let deal = d.ok(&[
        "api",
        "POST",
        "/v1/deals",
        "--data",
        r#"{"id": "d9", "name": "Deal", "stage": "lead"}"#,
    ]);
    assert!(deal.contains("deal.created"), "{deal}");
    let deals: Value = serde_json::from_str(&d.ok(&["api", "GET", "/v1/deals?limit=5"])).unwrap();
    assert_eq!(deals["data"][0]["data"]["id"], "d9");

    // Delete last: the webhook goes, its log stays readable.
    d.ok(&["webhooks", "delete", &id, "--yes"]);
    let gone = d.fails(&["webhooks", "get", &id], 1);
    assert!(
        gone.contains("not found") && gone.contains("HTTP 404"),
        "{gone}"
    );
    assert_eq!(
        d.json(&["deliveries", "show", &delivery])["status"],
        "delivered"
    );
}

#[test]
fn bad_input_gives_the_apis_message_and_a_meaningful_exit_status() {
    let d = Deployment::start();
    // Refused by the API: its message, the field it names, exit 1.
    let err = d.fails(
        &[
            "webhooks",
            "create",
            "--url",
            "https://hooks.example.com/x",
            "--events",
            "contact.exploded",
        ],
        1,
    );
    assert!(
        err.contains("contact.exploded") && err.contains("field `events[0]`"),
        "{err}"
    );
    let err = d.fails(
        &[
            "webhooks",
            "create",
            "--url",
            "http://169.254.169.254/latest",
            "--events",
            "contact.*",
        ],
        1,
    );
    assert!(
        err.contains("field `url`") && err.contains("HTTP 422"),
        "{err}"
    );
    let err = d.fails(
        &[
            "events",
            "publish",
            "--type",
            "contact.exploded",
            "--data",
            "{}",
        ],
        1,
    );
    assert!(err.contains("contact.exploded"), "{err}");
    // Under --json the API's error object is on standard output too.
    let out = d.out(&[
        "webhooks",
        "create",
        "--url",
        "notaurl",
        "--events",
        "contact.*",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["field"], "url", "{body}");
    // Caught before any request: bad JSON, a bad header, nothing to change, no server: exit 2.
    let err = d.fails(
        &[
            "events",
            "publish",
            "--type",
            "contact.created",
            "--data",
            "{oops",
        ],
        2,
    );
    assert!(err.contains("--data is not valid JSON"), "{err}");
    let err = d.fails(
        &[
            "webhooks",
            "create",
            "--url",
            "https://h.example/x",
            "--events",
            "contact.*",
            "--header",
            "novalue",
        ],
        2,
    );
    assert!(err.contains("--header"), "{err}");
    d.fails(
        &["webhooks", "update", "00000000-0000-0000-0000-000000000000"],
        2,
    );
    let out = run(hookline(d.laptop.path()).args(["webhooks", "list"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server"));
    // Clap's own usage errors exit 2 as well.
    d.fails(&["webhooks", "create", "--url", "https://h.example/x"], 2);
    // A wrong key: exit 3, with the API's message and what to check.
    let out = run(hookline(d.laptop.path()).args([
        "webhooks",
        "list",
        "--api-url",
        &d.url,
        "--key",
        "hk_wrong_wrong_wrong",
    ]));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid API key") && err.contains("HTTP 401"),
        "{err}"
    );
    // Nobody listening: exit 4.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = run(hookline(d.laptop.path()).args([
        "deliveries",
        "list",
        "--url",
        &nowhere,
        "--key",
        &d.key,
    ]));
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("can't reach the Hookline server"));
}

#[cfg(unix)]
#[test]
fn login_saves_a_private_profile_that_every_command_uses() {
    use std::os::unix::fs::PermissionsExt;
    let d = Deployment::start();
    let home = d.laptop.path();
    let plain = |args: &[&str]| run(hookline(home).args(args));
    // A refused key is not saved.
    let out = plain(&["login", "--url", &d.url, "--key", "hk_wrong_wrong_wrong"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!home.join(".config/hookline/config.toml").exists());
    let out = plain(&["login", "--url", &d.url, "--key", &d.key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = home.join(".config/hookline/config.toml");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains(&d.key));
    // No --url, no --key: the default profile.
    let out = plain(&["webhooks", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A named profile, chosen by flag or environment; it beats HOOKLINE_URL.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = plain(&[
        "login",
        "--profile",
        "staging",
        "--url",
        &nowhere,
        "--key",
        "hk_x",
        "--no-verify",
    ]);
    assert!(out.status.success());
    let out = plain(&["events", "types", "--profile", "staging"]);
    assert_eq!(out.status.code(), Some(4), "staging points nowhere");
    let out = run(hookline(home)
        .env("HOOKLINE_PROFILE", "default")
        .env("HOOKLINE_URL", &nowhere)
        .args(["events", "types"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The environment beats the default profile; flags beat everything.
    let out = run(hookline(home)
        .env("HOOKLINE_URL", &nowhere)
        .args(["events", "types"]));
    assert_eq!(out.status.code(), Some(4));
    let out = plain(&[
        "events",
        "types",
        "--profile",
        "staging",
        "--url",
        &d.url,
        "--key",
        &d.key,
    ]);
    assert!(out.status.success());
    let out = plain(&["events", "types", "--profile", "prod"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile `prod`"));
    // `hookline mcp` honours profiles too: it goes where the profile says.
    let out = plain(&["mcp", "--profile", "staging"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can't reach"),
        "{out:?}"
    );
    let out = plain(&["logout", "--profile", "staging"]);
    assert!(out.status.success());
    assert!(!std::fs::read_to_string(&file).unwrap().contains("staging"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_on_stdio_uses_the_saved_profile() {
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    use rmcp::ServiceExt;
    let d = Deployment::start();
    let out = run(hookline(d.laptop.path()).args(["login", "--url", &d.url, "--key", &d.key]));
    assert!(out.status.success());
    let home = d.laptop.path().to_path_buf();
    let child = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline")).configure(|c| {
            c.current_dir(&home)
                .arg("mcp")
                .env("HOME", &home)
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("HOOKLINE_URL")
                .env_remove("HOOKLINE_API_KEY")
                .env_remove("HOOKLINE_PROFILE");
        }),
    )
    .unwrap();
    let client = ().serve(child).await.expect("stdio MCP session from the profile");
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.unwrap();
}

/// Lines of a child's output as they come, through a channel (so a test can wait with a timeout).
fn lines(from: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits up to `within` for a line that satisfies `want`; all lines read so far on failure.
fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    within: Duration,
    want: impl Fn(&str) -> bool,
) -> Result<String, Vec<String>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = within.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen)
}

#[test]
fn deliveries_tail_prints_a_delivery_published_after_it_started() {
    let d = Deployment::start();
    let rx = MiniReceiver::start(Duration::ZERO);
    let w = d.json(&[
        "webhooks",
        "create",
        "--url",
        &rx.url(),
        "--events",
        "contact.*",
    ]);
    // An old delivery, which the tail must not print.
    let old = d.json(&[
        "events",
        "publish",
        "--type",
        "contact.created",
        "--data",
        r#"{"id": "old"}"#,
    ]);
    let old_delivery = s(&old["delivery_ids"][0]).to_string();
    let start = Instant::now();
    while d.json(&["deliveries", "show", &old_delivery])["status"] != "delivered" {
        assert!(start.elapsed() < Duration::from_secs(20), "never delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut tail = d
        .cmd(&[
            "deliveries",
            "tail",
            "--webhook",
            s(&w["id"]),
            "--interval",
            "0.2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(tail.stdout.take().unwrap());
    let err = lines(tail.stderr.take().unwrap());
    wait_for(&err, Duration::from_secs(20), |l| {
        l.contains("following deliveries")
    })
    .expect("the tail starts");
    let p = d.json(&[
        "events",
        "publish",
        "--type",
        "contact.updated",
        "--data",
        r#"{"id": "new"}"#,
    ]);
    let delivery = s(&p["delivery_ids"][0]).to_string();
    let line = wait_for(&out, Duration::from_secs(30), |l| {
        l.contains(&delivery) && l.contains("delivered")
    });
    let _ = tail.kill();
    let _ = tail.wait();
    let line =
        line.unwrap_or_else(|seen| panic!("the tail never showed {delivery} delivered: {seen:?}"));
    assert!(
        line.contains("contact.updated") && line.contains("HTTP 200"),
        "{line}"
    );
    assert!(!line.contains(&old_delivery));
    let mut rest = Vec::new();
    while let Ok(l) = out.try_recv() {
        rest.push(l);
    }
    assert!(!rest.iter().any(|l| l.contains(&old_delivery)), "{rest:?}");
}

/// An HTTP/1.1 proxy in front of `upstream`. It relays each request whole and its answer, except
/// that for the `lose`-th `POST /v1/contacts/import` it lets the server handle the request and then
/// closes the client's connection instead of answering: the chunk is committed but the client
/// never hears so, the worst moment for an interruption.
fn lossy_proxy(upstream: u16, lose: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let imports = Arc::new(AtomicUsize::new(0));
    let count = imports.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let count = count.clone();
            std::thread::spawn(move || relay(client, upstream, lose, &count));
        }
    });
    (port, imports)
}

fn relay(client: TcpStream, upstream: u16, lose: usize, imports: &AtomicUsize) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    loop {
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            // One request per upstream connection, so the answer ends where the connection does.
            if !lower.starts_with("connection:") {
                head.push_str(&line);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let is_import = head.starts_with("POST /v1/contacts/import ");
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        up.write_all(head.as_bytes()).unwrap();
        up.write_all(b"Connection: close\r\n\r\n").unwrap();
        up.write_all(&body).unwrap();
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        if is_import && imports.fetch_add(1, Ordering::SeqCst) + 1 == lose {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

#[test]
fn an_interrupted_import_resumes_and_every_contact_exists_once() {
    let d = Deployment::start();
    let port: u16 = d.url.rsplit(':').next().unwrap().parse().unwrap();
    // The third of five requests is committed but its answer is lost.
    let (proxy, imports) = lossy_proxy(port, 3);
    let via_proxy = format!("http://127.0.0.1:{proxy}");
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("people.csv");
    let mut csv = String::from("first_name,email\n");
    for i in 0..2500 {
        if i == 1099 {
            // A line the CSV reader can't read, in the chunk whose answer is lost: reported once.
            csv.push_str(&format!("\"Broken{i},p{i}@example.com\n"));
        } else if i % 500 == 250 {
            csv.push_str(&format!("Bad{i},not-an-email\n"));
        } else {
            csv.push_str(&format!("P{i},p{i}@example.com\n"));
        }
    }
    std::fs::write(&file, csv).unwrap();
    let file = file.to_str().unwrap();
    let import = |extra: &[&str]| {
        run(hookline(d.laptop.path())
            .args(["contacts", "import", file, "--chunk", "500"])
            .args(extra)
            .args(["--url", &via_proxy, "--key", &d.key]))
    };
    let out = import(&[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("stopped at row 1001 of 2500") && err.contains("--resume"),
        "{err}"
    );
    assert!(
        err.contains("1000/2500 contacts") && !err.contains("1500/2500"),
        "{err}"
    );
    assert_eq!(imports.load(Ordering::SeqCst), 3);

    // Resumed: the lost chunk goes again with the same ids, so nothing is created twice.
    let out = import(&["--resume"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("imported 1996 contacts"), "{stdout}");
    assert!(stdout.contains("(6 rows skipped)"), "{stdout}");
    assert!(stdout.contains("498 rows were already in"), "{stdout}");
    assert!(
        stdout.contains("row 1100: unterminated quoted field"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming at row 1001"));
    assert_eq!(imports.load(Ordering::SeqCst), 6);
    let all = d.json(&["contacts", "list", "--limit", "5000"]);
    let emails: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["data"]["primary_email"]))
        .collect();
    let unique: std::collections::HashSet<&str> = emails.iter().copied().collect();
    assert_eq!(emails.len(), 2494, "every good row once");
    assert_eq!(unique.len(), 2494);
    // Finished: nothing left to resume.
    let out = import(&["--resume"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interrupted import"));
    // --resume-from starts at a row of the user's choosing (here: the last 500 again, which are
    // new contacts since rows without an id get fresh ones).
    let json = run(hookline(d.laptop.path())
        .args([
            "contacts",
            "import",
            file,
            "--resume-from",
            "2001",
            "--json",
        ])
        .args(["--url", &d.url, "--key", &d.key]));
    assert!(json.status.success());
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["created"], 499, "{report}");
    assert_eq!(report["errors"][0]["row"], 2251, "{report}");
}

#[test]
fn completions_and_help_describe_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(hookline(dir.path()).args(["completions", shell]));
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("webhooks") && script.contains("verify-receiver"),
            "{shell}"
        );
    }
    let out = run(hookline(dir.path()).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
    let help = String::from_utf8(run(hookline(dir.path()).arg("--help")).stdout).unwrap();
    for local in [
        "Local: run the server",
        "Local: apply database migrations",
        "`keys create --local` mints one on this machine's database",
    ] {
        assert!(help.contains(local), "{help}");
    }
    assert!(
        help.contains("Exit status: 0 done; 1 refused by the API"),
        "{help}"
    );
    let help =
        String::from_utf8(run(hookline(dir.path()).args(["webhooks", "create", "--help"])).stdout)
            .unwrap();
    assert!(
        help.contains("--api-url")
            && help.contains("HOOKLINE_API_KEY")
            && help.contains("--profile"),
        "{help}"
    );
    let help =
        String::from_utf8(run(hookline(dir.path()).args(["deliveries", "list", "--help"])).stdout)
            .unwrap();
    assert!(
        help.contains("--url") && help.contains("HOOKLINE_URL"),
        "{help}"
    );
}

#[test]
fn keys_are_listed_created_and_revoked_through_the_api() {
    let d = Deployment::start();
    let listed = d.json(&["keys", "list"]);
    let keys = listed["data"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["current"], true);
    let own = s(&keys[0]["id"]).to_string();

    // Only the key on standard output, so a script can capture it; what it is on standard error.
    let out = d.out(&[
        "keys",
        "create",
        "--name",
        "wallboard",
        "--scope",
        "read",
        "--expires-in",
        "30d",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let read_key = lines[0].to_string();
    assert!(
        read_key.starts_with("hk_") && read_key.len() == 46,
        "{stdout:?}"
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("read scope") && note.contains("only this once"),
        "{note}"
    );

    // Listed as a table, never with the key itself.
    let table = d.ok(&["keys", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("wallboard") && table.contains(&read_key[..11]),
        "{table}"
    );
    assert!(table.contains("(this key)"));
    assert!(!table.contains(&read_key));

    // The read key reads, and may not write.
    let as_read = |args: &[&str]| {
        let mut c = hookline(d.laptop.path());
        c.args(args).args(["--api-url", &d.url, "--key", &read_key]);
        run(&mut c)
    };
    assert!(as_read(&["webhooks", "list"]).status.success());
    let refused = as_read(&["keys", "create", "--name", "escalate"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only"));

    // Revoked: the key stops working (exit 3: key refused).
    let created = d.json(&["keys", "list"]);
    let read_id = s(&created["data"][0]["id"]).to_string();
    let revoked = d.json(&["keys", "revoke", &read_id, "--yes"]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(as_read(&["webhooks", "list"]).status.code(), Some(3));
    let text = d.ok(&["keys", "revoke", &read_id, "-y"]);
    assert!(
        text.contains(&read_id) && text.contains("wallboard"),
        "{text}"
    );

    // The last full key stays: the API's refusal, exit 1.
    let err = d.fails(&["keys", "revoke", &own, "-y"], 1);
    assert!(err.contains("last active full key"), "{err}");
    let err = d.fails(
        &["keys", "create", "--name", "x", "--expires-in", "forever"],
        1,
    );
    assert!(err.contains("expires_in"), "{err}");
}

#[test]
fn keys_create_without_a_deployment_points_to_local() {
    let laptop = tempfile::tempdir().unwrap();
    let out = run(hookline(laptop.path()).args(["keys", "create", "--name", "ci"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--local"));
    // Local options and remote-only ones don't mix.
    let out = run(hookline(laptop.path()).args(["keys", "create", "--local", "--scope", "read"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope"));
    let out = run(hookline(laptop.path()).args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--url",
        "http://127.0.0.1:9",
    ]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!laptop.path().join("hookline.db").exists());
}

#[test]
fn webhook_filters_are_set_tried_and_cleared_from_the_cli() {
    let d = Deployment::start();
    let w = d.json(&[
        "webhooks",
        "create",
        "--url",
        "https://hooks.example.com/f",
        "--events",
        "deal.*",
        "--filter",
        "changes.owner_id != null && data.amount >= 1000",
    ]);
    let id = s(&w["id"]).to_string();
    assert_eq!(
        w["filter"],
        "changes.owner_id != null && data.amount >= 1000"
    );
    assert!(d
        .ok(&["webhooks", "get", &id])
        .contains("changes.owner_id != null"));
    let err = d.fails(
        &["webhooks", "update", &id, "--filter", "data.amount >="],
        1,
    );
    assert!(
        err.contains("field `filter`") && err.contains("at position 14"),
        "{err}"
    );
    let u = d.json(&["webhooks", "update", &id, "--clear-filter"]);
    assert!(u["filter"].is_null(), "{u}");

    // filter-test: exit 0 on a match, 1 otherwise; the event as text, from a file or stdin.
    let filter = r#""vip" in data.tags[*].name"#;
    let vip = r#"{"type": "deal.created", "data": {"tags": [{"name": "vip"}]}}"#;
    let t = d.json(&[
        "webhooks",
        "filter-test",
        "--filter",
        filter,
        "--event",
        vip,
    ]);
    assert_eq!(t["matches"], true, "{t}");
    std::fs::write(
        d.laptop.path().join("event.json"),
        r#"{"data": {"tags": []}}"#,
    )
    .unwrap();
    let out = d.out(&[
        "webhooks",
        "filter-test",
        "--filter",
        filter,
        "--event-file",
        "event.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("matches") && human.contains("no"), "{human}");
    let out = d.with_stdin(&["webhooks", "filter-test", "--filter", filter], vip);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = d.fails(
        &[
            "webhooks",
            "filter-test",
            "--filter",
            "type ==",
            "--event",
            "{}",
        ],
        1,
    );
    assert!(err.contains("at position 7"), "{err}");
}
