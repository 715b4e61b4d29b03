//! The `hookline` binary as a user runs it: the local commands here, the remote ones (a deployment
//! reached with a URL and a key) in `cli/remote.rs`.

#[path = "cli/remote.rs"]
mod remote;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary run in `dir`, which is also its home (profiles, import state): nothing of the
/// machine's own user or environment leaks in.
fn hookline(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOOKLINE_URL")
        .env_remove("HOOKLINE_API_KEY")
        .env_remove("HOOKLINE_PROFILE")
        .env_remove("HOOKLINE_DATABASE_URL")
        .env_remove("HOOKLINE_CONFIG")
        .env_remove("HOOKLINE_ENCRYPTION_KEY")
        .env_remove("HOOKLINE_ENCRYPTION_KEYS_OLD")
        .env("HOOKLINE_SQLITE_SYNCHRONOUS", "normal");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("hookline runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_ready(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some((200, _)) = http_get(port, "/healthz", None) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {port} never became ready");
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keys_create_prints_only_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(hookline(dir.path()).args(["keys", "create", "--tenant", "acme"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    assert!(
        lines[0].starts_with("hk_") && lines[0].len() == 46,
        "{stdout:?}"
    );
    let again = String::from_utf8(
        run(hookline(dir.path()).args(["keys", "create", "--tenant", "acme"])).stdout,
    )
    .unwrap();
    assert_ne!(again.trim(), lines[0]);
    assert!(
        dir.path().join("hookline.db").exists(),
        "default database is ./hookline.db"
    );
    let bad = run(hookline(dir.path()).args(["keys", "create", "--tenant", "no spaces please"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant"));
}

#[test]
fn serve_prints_the_first_key_once_serves_it_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = hookline(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let mut key = String::new();
    stdout.read_line(&mut key).unwrap();
    let key = key.trim().to_string();
    assert!(key.starts_with("hk_"), "{first}{key}");
    wait_ready(port);
    let (status, body) = http_get(port, "/v1/webhooks", Some(&key)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"data\""), "{body}");
    assert_eq!(
        http_get(port, "/v1/webhooks", Some("hk_bogus_bogus_bogus"))
            .unwrap()
            .0,
        401
    );
    assert!(terminate(child).success());

    // A second start finds the tenant and prints no key.
    let port = free_port();
    let child = hookline(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port);
    assert_eq!(http_get(port, "/v1/webhooks", Some(&key)).unwrap().0, 200);
    let out = {
        let status = terminate(child);
        assert!(status.success());
        status
    };
    let _ = out;
}

#[test]
fn migrate_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(hookline(dir.path()).args(["migrate", "--database", "sqlite://custom.db"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("custom.db").exists());
}

#[test]
fn bad_configuration_fails_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, needle) in [
        ("HOOKLINE_BRAND", "has space", "brand"),
        ("HOOKLINE_ALLOW_TARGETS", "10.0.0.0/99", "allow_targets"),
        ("HOOKLINE_RETRY_SCHEDULE", "6m,later", "retry_schedule"),
        ("HOOKLINE_DATABASE_URL", "mysql://x", "database_url"),
        (
            "HOOKLINE_DATABASE_URL",
            "postgres://localhost/x",
            "PostgreSQL",
        ),
    ] {
        let out = run(hookline(dir.path()).env(var, value).arg("migrate"));
        assert!(!out.status.success(), "{var}={value} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{var}={value}: {err}");
    }
    std::fs::write(dir.path().join("hookline.toml"), "brand = 5\n").unwrap();
    let out = run(hookline(dir.path()).arg("migrate"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("brand"));
    let out = run(hookline(dir.path()).args(["migrate", "--config", "missing.toml"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1 (keep-alive aware) that records delivery ids and
/// answers 200 after `delay` (503 to its first `fail_first` requests).
struct MiniReceiver {
    port: u16,
    ids: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl MiniReceiver {
    fn start(delay: Duration) -> MiniReceiver {
        Self::failing_first(delay, 0)
    }

    fn failing_first(delay: Duration, fail_first: usize) -> MiniReceiver {
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ids.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, failures) = (seen.clone(), failures.clone());
                std::thread::spawn(move || serve_conn(stream, seen, delay, failures));
            }
        });
        MiniReceiver { port, ids }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

fn serve_conn(
    stream: TcpStream,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    delay: Duration,
    failures: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut len = 0usize;
        let mut id = String::new();
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "x-hookline-delivery-id" => id = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(delay);
        seen.lock().unwrap().push(id);
        let fail = failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        let answer: &[u8] = if fail {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

fn http_json(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let raw = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(raw).unwrap_or(serde_json::Value::Null),
    )
}

fn spawn_serve(dir: &std::path::Path, port: u16) -> Child {
    hookline(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOOKLINE_ALLOW_TARGETS", "127.0.0.1/32")
        .env("HOOKLINE_ALLOW_HTTP", "true")
        .env("HOOKLINE_TIMEOUT", "1s")
        .env("HOOKLINE_LEASE", "7s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A wall clock stepped back an hour while a retry waits doesn't delay it: on SQLite the process
/// keeps due times on its steady clock (wall time when it started, then monotonic).
#[test]
fn a_wall_clock_stepped_back_an_hour_does_not_delay_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let spec = dir.path().join("clock");
    std::fs::write(&spec, "+0").unwrap();
    let port = free_port();
    let mut cmd = hookline(dir.path());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOOKLINE_ALLOW_TARGETS", "127.0.0.1/32")
        .env("HOOKLINE_ALLOW_HTTP", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !with_faked_clock(&mut cmd, &spec) {
        return;
    }
    let server = cmd.spawn().unwrap();
    wait_ready(port);
    let rx = MiniReceiver::failing_first(Duration::ZERO, 1);
    let (s, w) = http_json(
        port,
        "POST",
        "/v1/webhooks",
        &key,
        &format!(
            r#"{{"url":"{}","events":["contact.*"],"retry_schedule":["3s"]}}"#,
            rx.url()
        ),
    );
    assert_eq!(s, 201, "{w}");
    let (s, published) = http_json(
        port,
        "POST",
        "/v1/events",
        &key,
        r#"[{"event_type":"contact.created","data":{"id":"c1"}}]"#,
    );
    assert_eq!(s, 202, "{published}");
    let start = Instant::now();
    while rx.ids().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "never sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The first try got a 503; its retry is due in about 3 s. Now the wall clock jumps back.
    std::fs::write(&spec, "-1h").unwrap();
    while rx.ids().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the retry waited for the wall clock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = published["data"][0]["delivery_ids"][0].as_str().unwrap();
    let (s, d) = http_json(port, "GET", &format!("/v1/deliveries/{id}"), &key, "");
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (d["status"].as_str(), d["attempt_count"].as_u64()),
        (Some("delivered"), Some(2)),
        "{d}"
    );
    assert!(terminate(server).success());
}

#[test]
fn a_killed_server_loses_nothing_and_the_cli_reads_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    // Another tenant's key, to check the CLI sees only its own tenant's log.
    let other = String::from_utf8(
        run(hookline(dir.path()).args(["keys", "create", "--tenant", "nobody"])).stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let rx = MiniReceiver::start(Duration::from_millis(15));
    let port = free_port();
    let mut first = spawn_serve(dir.path(), port);
    wait_ready(port);
    let (s, w) = http_json(
        port,
        "POST",
        "/v1/webhooks",
        &key,
        &format!(r#"{{"url":"{}","events":["*"]}}"#, rx.url()),
    );
    assert_eq!(s, 201, "{w}");
    let events: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"event_type":"contact.created","data":{{"id":"c{i}"}}}}"#))
        .collect();
    let (s, published) = http_json(
        port,
        "POST",
        "/v1/events",
        &key,
        &format!("[{}]", events.join(",")),
    );
    assert_eq!(s, 202, "{published}");
    let expected: std::collections::HashSet<String> = published["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["delivery_ids"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 200);
    // Kill the node mid-backlog, without any chance to clean up.
    let start = Instant::now();
    while rx.ids().len() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "deliveries never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before_restart = rx.ids().len();
    assert!(
        before_restart < 200,
        "the backlog finished before the kill; nothing was tested"
    );
    // The node died holding more deliveries than it can send at once (concurrency 10): the ones
    // it had leased ahead of its send slots, waiting in memory, must not be lost with it.
    let held: i64 = rusqlite::Connection::open(dir.path().join("hookline.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'delivering'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        held > 10,
        "only {held} deliveries were leased at the kill: none was held ahead of the send slots"
    );

    let port = free_port();
    let second = spawn_serve(dir.path(), port);
    wait_ready(port);
    // The CLI reads the log from elsewhere: another directory, no database, only a URL and a key.
    let laptop = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str], key: &str| {
        run(hookline(laptop.path())
            .args(args)
            .args(["--api-url", &url, "--key", key]))
    };
    // Every delivery id arrives, and the log ends with all 200 delivered (the dead node's in-flight
    // ones are sent again once their lease expires).
    let delivered = || {
        let out = cli(
            &[
                "deliveries",
                "list",
                "--status",
                "delivered",
                "--limit",
                "1000",
                "--json",
            ],
            &key,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let start = Instant::now();
    while delivered() < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of 200 delivered after restart",
            delivered()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got: std::collections::HashSet<String> = rx.ids().into_iter().collect();
    assert!(got.is_superset(&expected));
    let all = rx.ids();
    eprintln!(
        "delivered 200 unique ids with {} duplicate sends after a SIGKILL",
        all.len() - 200
    );

    // The CLI reads the same log.
    let one = expected.iter().next().unwrap();
    let out = cli(&["deliveries", "show", one], &key);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("delivered") && text.contains("HTTP 200"),
        "{text}"
    );
    let out = cli(&["deliveries", "resend", one], &key);
    assert!(out.status.success());
    let new_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(uuid_like(&new_id) && &new_id != one, "{new_id}");
    let wid = w["id"].as_str().unwrap();
    let out = cli(&["webhooks", "test", wid], &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK contact.created"));
    // The deployment's URL policy applies: an address it doesn't allow-list is refused.
    let out = cli(
        &["webhooks", "test", "--url", "http://127.0.0.2:9/hook"],
        &key,
    );
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("invalid_url"), "{said}");
    let out = cli(&["deliveries", "show", "not-a-uuid"], &key);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid id"));
    // Another tenant's key sees nothing of this one.
    let out = cli(&["deliveries", "show", &new_id], &other);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert!(
        !laptop.path().join("hookline.db").exists(),
        "remote commands never open a database"
    );
    assert!(terminate(second).success());
}

#[test]
fn a_replay_job_killed_midway_resumes_and_copies_each_delivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let rx = MiniReceiver::start(Duration::ZERO);
    // Steps of 10 rows: the job takes long enough to be killed in the middle of it.
    let serve = |port: u16| {
        hookline(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("HOOKLINE_ALLOW_TARGETS", "127.0.0.1/32")
            .env("HOOKLINE_ALLOW_HTTP", "true")
            .env("HOOKLINE_TIMEOUT", "1s")
            .env("HOOKLINE_LEASE", "7s")
            .env("HOOKLINE_JOB_STEP", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let port = free_port();
    let mut first = serve(port);
    wait_ready(port);
    let (s, w) = http_json(
        port,
        "POST",
        "/v1/webhooks",
        &key,
        &format!(r#"{{"url":"{}","events":["*"]}}"#, rx.url()),
    );
    assert_eq!(s, 201, "{w}");
    let wid = w["id"].as_str().unwrap().to_string();
    for batch in 0..2 {
        let events: Vec<String> = (0..1000)
            .map(|i| {
                format!(r#"{{"event_type":"contact.created","data":{{"id":"c{batch}-{i}"}}}}"#)
            })
            .collect();
        let (s, v) = http_json(
            port,
            "POST",
            "/v1/events",
            &key,
            &format!("[{}]", events.join(",")),
        );
        assert_eq!(s, 202, "{v}");
    }
    let start = Instant::now();
    while rx.ids().len() < 2000 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} delivered",
            rx.ids().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Keep the copies queued (a disabled webhook's deliveries wait), so they can be counted.
    let (s, v) = http_json(
        port,
        "PATCH",
        &format!("/v1/webhooks/{wid}"),
        &key,
        r#"{"enabled":false}"#,
    );
    assert_eq!(s, 200, "{v}");
    let since = "2000-01-01T00:00:00Z";
    let (s, r) = http_json(
        port,
        "POST",
        &format!("/v1/webhooks/{wid}/replay"),
        &key,
        &format!(r#"{{"since":"{since}","status":["delivered"]}}"#),
    );
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["count"], 2000, "{r}");
    let job_path = format!("/v1/jobs/{}", r["job"]["id"].as_str().unwrap());
    // Kill the node with the job under way.
    let start = Instant::now();
    loop {
        let (_, j) = http_json(port, "GET", &job_path, &key, "");
        if j["done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never started: {j}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let port = free_port();
    let second = serve(port);
    wait_ready(port);
    let (_, at_kill) = http_json(port, "GET", &job_path, &key, "");
    assert!(
        at_kill["done"].as_u64().unwrap() < 2000,
        "the job finished before the kill; nothing was tested: {at_kill}"
    );
    // Once the dead node's lease runs out, this node goes on from the job's cursor.
    let start = Instant::now();
    let done = loop {
        let (_, j) = http_json(port, "GET", &job_path, &key, "");
        if j["status"] == "succeeded" {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the job never resumed: {j}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["done"], 2000, "{done}");
    // Exactly one copy of each original: nothing repeated across the kill, nothing lost.
    let mut copies = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = http_json(
            port,
            "GET",
            &format!("/v1/deliveries?webhook_id={wid}&status=pending&limit=100{cursor}"),
            &key,
            "",
        );
        assert_eq!(s, 200, "{page}");
        for d in page["data"].as_array().unwrap() {
            copies.push(d["resent_from"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let distinct: std::collections::HashSet<&String> = copies.iter().collect();
    assert_eq!((copies.len(), distinct.len()), (2000, 2000));
    eprintln!(
        "replay job killed at {} of 2000 copies, resumed and made each copy once",
        at_kill["done"]
    );
    assert!(terminate(second).success());
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn contacts_import_shows_progress_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let port = free_port();
    let server = spawn_serve(dir.path(), port);
    wait_ready(port);
    let laptop = tempfile::tempdir().unwrap();
    let mut csv = String::from("first_name,Email:Work,tags\n");
    for i in 0..250 {
        csv.push_str(&format!(
            "P{i},{},vip\n",
            if i == 7 {
                "broken".to_string()
            } else {
                format!("p{i}@example.com")
            }
        ));
    }
    std::fs::write(laptop.path().join("people.csv"), csv).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let import = |args: &[&str]| {
        run(hookline(laptop.path())
            .args(["contacts", "import"])
            .args(args)
            .args(["--url", &url, "--key", &key]))
    };
    let out = import(&["people.csv", "--chunk", "100"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("imported 249 contacts in 3 batches (1 rows skipped)"),
        "{stdout}"
    );
    assert!(stdout.contains("row 8:"), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("250/250 contacts"), "{stderr}");
    let out = import(&["missing.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
    assert!(terminate(server).success());
}

#[test]
fn erasures_create_waits_for_the_job_and_list_shows_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let port = free_port();
    let server = spawn_serve(dir.path(), port);
    wait_ready(port);
    let (status, created) = http_json(
        port,
        "POST",
        "/v1/contacts",
        &key,
        r#"{"first_name": "Oona", "primary_email": "oona@example.org"}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let erasures = |args: &[&str]| {
        run(hookline(dir.path())
            .arg("erasures")
            .args(args)
            .args(["--url", &url, "--key", &key]))
    };
    let out = erasures(&[
        "create",
        "--entity-type",
        "contact",
        "--entity-id",
        &id,
        "--wait",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(stdout.contains("records_removed: 1"), "{stdout}");
    assert!(stdout.contains("events_dropped: 1"), "{stdout}");
    let (status, _) = http_json(port, "GET", &format!("/v1/contacts/{id}"), &key, "");
    assert_eq!(status, 404);

    let out = erasures(&["list"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&format!("contact {id}")), "{stdout}");
    // A refused request: a clear message and a non-zero exit, nothing queued.
    let out = erasures(&["create", "--entity-type", "person", "--entity-id", "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entity_type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = erasures(&["list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(terminate(server).success());
}

/// `hookline listen` against a running server: deliveries reach a local receiver through the
/// session, signed, the local answers land in the log, and killing the CLI ends the session: its
/// webhook goes and a delivery still waiting for a retry ends `cancelled`.
#[test]
fn listen_forwards_deliveries_reports_answers_and_ends_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let port = free_port();
    let mut server = hookline(dir.path());
    server
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOOKLINE_TIMEOUT", "5s")
        // A retry far enough away that it is still waiting when the CLI is killed.
        .env("HOOKLINE_RETRY_SCHEDULE", "1h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = server.spawn().unwrap();
    wait_ready(port);
    // The local receiver: its first answer is a 503, then 200s. No allow-list names it: a
    // listen session's requests leave through the CLI, not through the server's sender.
    let local = MiniReceiver::failing_first(Duration::ZERO, 1);
    let url = format!("http://127.0.0.1:{port}");
    let mut listen = hookline(dir.path())
        .args(["listen", "--url", &url, "--key", &key])
        .args(["--events", "contact.*", "--forward-to", &local.url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(listen.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    assert!(ready.starts_with("Ready. Session ls_"), "{ready}");
    let mut secret = String::new();
    out.read_line(&mut secret).unwrap();
    assert!(secret.contains("whsec_"), "{secret}");

    let publish = |n: u32| {
        let (status, v) = http_json(
            port,
            "POST",
            "/v1/events",
            &key,
            &format!(r#"{{"event_type": "contact.created", "data": {{"id": "c_{n}"}}}}"#),
        );
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["delivery_ids"].as_array().unwrap().len(), 1, "{v}");
        v["delivery_ids"][0].as_str().unwrap().to_string()
    };
    let delivery = |id: &str| http_json(port, "GET", &format!("/v1/deliveries/{id}"), &key, "").1;
    let settled = |id: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = delivery(id);
            if d["status"] == want {
                return d;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {d}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The first answer (503) is recorded and the delivery waits for its retry.
    let waiting = publish(1);
    let d = settled(&waiting, "retrying");
    assert_eq!(d["attempts"][0]["status_code"], 503, "{d}");
    assert_eq!(d["attempts"][0]["response_body"], "busy", "{d}");
    // The next one is delivered: the local 200 is the attempt's answer.
    let delivered = publish(2);
    let d = settled(&delivered, "delivered");
    assert_eq!(d["attempts"][0]["status_code"], 200, "{d}");
    // Both reached the receiver signed, with their delivery ids.
    let ids = local.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|i| !i.is_empty()), "{ids:?}");
    let (_, hooks) = http_json(port, "GET", "/v1/webhooks", &key, "");
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1, "{hooks}");

    // Killing the CLI ends the session: the webhook goes, the waiting delivery is cancelled.
    listen.kill().unwrap();
    listen.wait().unwrap();
    let d = settled(&waiting, "cancelled");
    assert_eq!(d["cancel_reason"], "webhook_deleted", "{d}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, hooks) = http_json(port, "GET", "/v1/webhooks", &key, "");
        if hooks["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session's webhook stayed: {hooks}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more is made for it.
    let (status, v) = http_json(
        port,
        "POST",
        "/v1/events",
        &key,
        r#"{"event_type": "contact.created", "data": {"id": "c_3"}}"#,
    );
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["delivery_ids"].as_array().unwrap().len(), 0, "{v}");
    assert!(terminate(server).success());
}

/// The encryption key every node of a PostgreSQL test shares (PostgreSQL needs one configured).
fn shared_encryption_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| hookline_core::sealing::EncryptionKey::generate().to_base64())
        .clone()
}

fn spawn_node(url: &str, port: u16) -> Child {
    node_command(url, port).spawn().unwrap()
}

/// `hookline serve` as one node of a PostgreSQL deployment (spawn it, or change it first).
fn node_command(url: &str, port: u16) -> Command {
    let mut cmd = hookline(std::env::temp_dir().as_path());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOOKLINE_DATABASE_URL", url)
        .env("HOOKLINE_ENCRYPTION_KEY", shared_encryption_key())
        .env("HOOKLINE_ALLOW_TARGETS", "127.0.0.1/32")
        .env("HOOKLINE_ALLOW_HTTP", "true")
        .env("HOOKLINE_TIMEOUT", "1s")
        .env("HOOKLINE_LEASE", "7s")
        .env("HOOKLINE_PG_POOL_SIZE", "8")
        .env("HOOKLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Gives a child process a wall clock that reads what `spec` says (`+1h`, `-1h`, `+0`; the file
/// is read again on every reading, so writing it steps the clock mid-run) while its monotonic
/// clock runs true: libfaketime, preloaded. How a test makes a node's clock wrong without touching
/// the machine's. `false` (with a notice) when libfaketime isn't installed; under CI that fails.
fn with_faked_clock(cmd: &mut Command, spec: &std::path::Path) -> bool {
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(lib) = lib else {
        assert!(
            std::env::var_os("CI").is_none(),
            "libfaketime is not installed: CI must install it (apt-get install faketime)"
        );
        eprintln!("note: libfaketime is not installed (apt-get install faketime); skipping");
        return false;
    };
    cmd.env("LD_PRELOAD", lib)
        .env("FAKETIME_TIMESTAMP_FILE", spec)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    true
}

/// Two PostgreSQL nodes, the second with a clock an hour ahead. Leases and due times are judged by
/// the database's clock, so the fast node sees the first node's live leases as live: every
/// delivery is sent once (with each node's own clock, the fast node took all ten over mid-send).
#[test]
fn a_node_whose_clock_runs_an_hour_ahead_takes_over_no_live_lease() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(hookline_store::testing::TestDatabase::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("clock");
    std::fs::write(&spec, "+1h").unwrap();
    let (a_port, b_port) = (free_port(), free_port());
    let mut fast = node_command(&db.url, b_port);
    fast.env("HOOKLINE_TIMEOUT", "10s")
        .env("HOOKLINE_LEASE", "25s");
    if !with_faked_clock(&mut fast, &spec) {
        return;
    }
    let key_out = run(hookline(dir.path())
        .env("HOOKLINE_DATABASE_URL", &db.url)
        .env("HOOKLINE_ENCRYPTION_KEY", shared_encryption_key())
        .args(["keys", "create", "--local"]));
    assert!(key_out.status.success());
    let key = String::from_utf8(key_out.stdout)
        .unwrap()
        .trim()
        .to_string();
    // Each answer takes 4 s: the first node holds all ten leases while the fast node starts.
    let rx = MiniReceiver::start(Duration::from_secs(4));
    let a = node_command(&db.url, a_port)
        .env("HOOKLINE_TIMEOUT", "10s")
        .env("HOOKLINE_LEASE", "25s")
        .spawn()
        .unwrap();
    wait_ready(a_port);
    let (s, w) = http_json(
        a_port,
        "POST",
        "/v1/webhooks",
        &key,
        &format!(r#"{{"url":"{}","events":["contact.*"]}}"#, rx.url()),
    );
    assert_eq!(s, 201, "{w}");
    let events: Vec<String> = (0..10)
        .map(|n| format!(r#"{{"event_type":"contact.created","data":{{"id":"c{n}"}}}}"#))
        .collect();
    let (s, published) = http_json(
        a_port,
        "POST",
        "/v1/events",
        &key,
        &format!("[{}]", events.join(",")),
    );
    assert_eq!(s, 202, "{published}");
    let leased = || {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE status = 'delivering'),
                            COUNT(*) FILTER (WHERE status = 'delivered')
                     FROM deliveries",
                    &[],
                )
                .await
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
                .unwrap()
        })
    };
    let start = Instant::now();
    while leased().0 < 10 {
        assert!(start.elapsed() < Duration::from_secs(30), "never leased");
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = fast.spawn().unwrap();
    wait_ready(b_port);
    while leased().1 < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not delivered: {:?}",
            leased()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Give the fast node a few more claims' worth of time to do anything wrong.
    std::thread::sleep(Duration::from_secs(2));
    let ids = rx.ids();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (10, 10), "{ids:?}");
    assert!(terminate(b).success());
    assert!(terminate(a).success());
}

/// Three nodes on one PostgreSQL database; one is SIGKILLed mid-run and another restarted. Every
/// delivery id still arrives, nothing is left pending or in flight, and duplicates are reported.
#[test]
fn three_nodes_on_postgres_survive_a_killed_and_a_restarted_node() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(hookline_store::testing::TestDatabase::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_out = run(hookline(dir.path())
        .env("HOOKLINE_DATABASE_URL", &db.url)
        .env("HOOKLINE_ENCRYPTION_KEY", shared_encryption_key())
        .args(["keys", "create", "--local"]));
    assert!(
        key_out.status.success(),
        "{}",
        String::from_utf8_lossy(&key_out.stderr)
    );
    let key = String::from_utf8(key_out.stdout)
        .unwrap()
        .trim()
        .to_string();
    let contacts_rx = MiniReceiver::start(Duration::from_millis(0));
    let deals_rx = MiniReceiver::start(Duration::from_millis(0));
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Option<Child>> = ports
        .iter()
        .map(|p| Some(spawn_node(&db.url, *p)))
        .collect();
    for p in &ports {
        wait_ready(*p);
    }
    for (rx, events) in [(&contacts_rx, "contact.*"), (&deals_rx, "deal.*")] {
        let (s, w) = http_json(
            ports[0],
            "POST",
            "/v1/webhooks",
            &key,
            &format!(r#"{{"url":"{}","events":["{events}"]}}"#, rx.url()),
        );
        assert_eq!(s, 201, "{w}");
    }
    let mut expected = std::collections::HashSet::new();
    for chunk in 0..10 {
        let events: Vec<String> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let t = if n % 2 == 0 {
                    "contact.created"
                } else {
                    "deal.created"
                };
                format!(
                    r#"{{"event_type":"{t}","data":{{"id":"e{n}","name":"n{n}","stage":"s"}}}}"#
                )
            })
            .collect();
        // Spread publishing over the nodes' APIs too.
        let (s, published) = http_json(
            ports[chunk % 2],
            "POST",
            "/v1/events",
            &key,
            &format!("[{}]", events.join(",")),
        );
        assert_eq!(s, 202, "{published}");
        for e in published["data"].as_array().unwrap() {
            expected.insert(e["delivery_ids"][0].as_str().unwrap().to_string());
        }
    }
    assert_eq!(expected.len(), 10_000);
    let received = || contacts_rx.ids().len() + deals_rx.ids().len();
    let start = Instant::now();
    while received() < 2_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "deliveries never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL node 1 mid-run: its leased deliveries must be picked up by the others.
    let mut killed = nodes[1].take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let at_kill = received();
    while received() < 5_000 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "stalled at {} after the kill",
            received()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Restart node 2 (graceful stop, new process).
    assert!(terminate(nodes[2].take().unwrap()).success());
    let port = free_port();
    nodes[2] = Some(spawn_node(&db.url, port));
    wait_ready(port);
    // Wait until the database says every delivery is delivered.
    let counts = || {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query(
                    "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
    };
    loop {
        let c = counts();
        if c.get("delivered") == Some(&10_000) && c.len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "not all delivered: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let all: Vec<String> = contacts_rx
        .ids()
        .into_iter()
        .chain(deals_rx.ids())
        .collect();
    let unique: std::collections::HashSet<String> = all.iter().cloned().collect();
    assert!(
        unique.is_superset(&expected),
        "missing {} delivery ids",
        expected.difference(&unique).count()
    );
    eprintln!(
        "3 nodes, 10000 deliveries: all arrived; {} duplicate sends ({} received when node 1 was killed) in {:.1}s",
        all.len() - unique.len(),
        at_kill,
        start.elapsed().as_secs_f64()
    );
    for node in nodes.into_iter().flatten() {
        assert!(terminate(node).success());
    }
}

#[test]
fn bench_runs_a_short_measurement_and_refuses_unknown_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(hookline(dir.path()).args([
        "bench",
        "--scenario",
        "raw,single",
        "--duration",
        "1",
        "--json",
        "bench.json",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("raw loopback HTTP POST rate"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    assert!(
        json["results"][0]["value"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    // The one-endpoint phase reports what a delivery cost: CPU (the process's and the SQLite
    // writer thread's) and the claims' batch size, each measured, so above zero.
    for name in [
        "one endpoint: CPU per delivery (whole process)",
        "one endpoint: CPU per delivery (SQLite writer)",
        "one endpoint: deliveries leased per claim",
    ] {
        let value = json["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["figure"] == name)
            .and_then(|r| r["value"].as_f64());
        assert!(value.is_some_and(|v| v > 0.0), "{name}: {json}");
    }
    let out = run(hookline(dir.path()).args(["bench", "--scenario", "warp-speed"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
}

#[test]
fn verify_checks_a_saved_delivery_with_both_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"event":"contact.created","data":{"id":"c1"}}"#;
    std::fs::write(dir.path().join("body.json"), body).unwrap();
    std::fs::write(
        dir.path().join("tampered.json"),
        br#"{"event":"contact.created","data":{"id":"c2"}}"#,
    )
    .unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let ts = 1_700_000_000i64;
    let hex = hookline_core::signing::hex_signature(secret, body);
    let std_sig = hookline_core::signing::standard_signature(secret, "d-1", ts, body);
    let args = |file: &str| {
        vec![
            "verify".to_string(),
            file.to_string(),
            "--secret".into(),
            secret.into(),
            "-H".into(),
            format!("X-Webhook-Signature: {hex}"),
            "-H".into(),
            "webhook-id: d-1".into(),
            "-H".into(),
            format!("webhook-timestamp: {ts}"),
            "-H".into(),
            format!("webhook-signature: {std_sig}"),
            "--at".into(),
            (ts + 10).to_string(),
        ]
    };
    let out = run(hookline(dir.path()).args(args("body.json")));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("X-Webhook-Signature: ok") && text.contains("Standard Webhooks: ok"),
        "{text}"
    );
    let out = run(hookline(dir.path()).args(args("tampered.json")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
    // Judged as of now, the old timestamp is outside the tolerance window.
    let mut stale = args("body.json");
    stale.truncate(stale.len() - 2);
    let out = run(hookline(dir.path()).args(stale));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Standard Webhooks: FAILED"));
    let out = run(hookline(dir.path()).args(["verify", "body.json", "--secret", secret]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signature header"));
}

#[test]
fn verify_refuses_a_request_with_only_the_hex_signature_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"event":"contact.created","data":{"id":"c1"}}"#;
    std::fs::write(dir.path().join("body.json"), body).unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hex = hookline_core::signing::hex_signature(secret, body);
    let header = format!("X-Webhook-Signature: {hex}");
    let args = ["verify", "body.json", "--secret", secret, "-H", &header];
    let out = run(hookline(dir.path()).args(args));
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("X-Webhook-Signature: ok"));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("no timestamp") && err.contains("--allow-hex-only"),
        "{err}"
    );
    let out = run(hookline(dir.path()).args(args).arg("--allow-hex-only"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The opt-in accepts only a matching signature.
    let wrong = format!("X-Webhook-Signature: {}", "0".repeat(64));
    let out = run(hookline(dir.path()).args([
        "verify",
        "body.json",
        "--secret",
        secret,
        "-H",
        &wrong,
        "--allow-hex-only",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("X-Webhook-Signature: FAILED"));
}

/// `hookline keys create --local` on a fresh database in `dir`: the tenant's first key.
fn new_key(dir: &std::path::Path) -> String {
    let out = run(hookline(dir).args(["keys", "create", "--local"]));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_on_stdio_forwards_the_tools_of_a_running_server() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    use rmcp::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let port = free_port();
    let server = spawn_serve(dir.path(), port);
    wait_ready(port);
    let elsewhere = tempfile::tempdir().unwrap();
    let child = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline")).configure(|c| {
            c.current_dir(elsewhere.path())
                .args(["mcp", "--url", &format!("http://127.0.0.1:{port}")])
                .env("HOOKLINE_API_KEY", &key)
                .env_remove("HOOKLINE_DATABASE_URL");
        }),
    )
    .unwrap();
    let client = ().serve(child).await.expect("stdio MCP session");
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "hookline"
    );
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.len(),
        19,
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    assert!(tools.iter().all(|t| t.output_schema.is_some()));

    let call = |name: &str, args: serde_json::Value| {
        let serde_json::Value::Object(args) = args else {
            unreachable!()
        };
        CallToolRequestParams::new(name.to_string()).with_arguments(args)
    };
    let created = client
        .call_tool(call(
            "create_webhook",
            serde_json::json!({"url": "https://hooks.example.com/crm", "events": ["deal.*"]}),
        ))
        .await
        .unwrap();
    assert_eq!(created.is_error, Some(false), "{:?}", created.content);
    let id = created.structured_content.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = client
        .call_tool(call(
            "list_webhooks",
            serde_json::json!({"searchTerm": "crm"}),
        ))
        .await
        .unwrap();
    assert_eq!(listed.structured_content.unwrap()["webhooks"][0]["id"], id);

    let refused = client
        .call_tool(call(
            "create_webhook",
            serde_json::json!({"url": "http://169.254.169.254/", "events": ["deal.created"]}),
        ))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let text = &refused.content[0].as_text().unwrap().text;
    let err: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(err["error"]["field"], "url", "{err}");

    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "hookline://webhooks/{id}");
    client.cancel().await.unwrap();
    assert!(terminate(server).success());
}

#[test]
fn mcp_on_stdio_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path());
    let port = free_port();
    let server = spawn_serve(dir.path(), port);
    wait_ready(port);
    let url = format!("http://127.0.0.1:{port}");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&["mcp", "--url", &url], None, "no API key"),
        (
            &["mcp", "--url", &url],
            Some("hk_not_a_key"),
            "refused the API key",
        ),
        (&["mcp", "--url", &nowhere], Some(&key), "can't reach"),
        (&["mcp"], Some(&key), "no server"),
    ];
    for (args, key, want) in cases {
        let mut cmd = hookline(dir.path());
        cmd.args(args)
            .env_remove("HOOKLINE_URL")
            .env_remove("HOOKLINE_API_KEY");
        if let Some(k) = key {
            cmd.env("HOOKLINE_API_KEY", k);
        }
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: stdout must carry only MCP"
        );
    }
    assert!(terminate(server).success());
}

/// [`hookline`] with `keys[0]` as the encryption key and the others as old keys.
fn with_keys(dir: &std::path::Path, keys: &[&hookline_core::sealing::EncryptionKey]) -> Command {
    let old: Vec<String> = keys[1..].iter().map(|k| k.to_base64()).collect();
    let mut cmd = hookline(dir);
    cmd.env("HOOKLINE_ENCRYPTION_KEY", keys[0].to_base64())
        .env("HOOKLINE_ENCRYPTION_KEYS_OLD", old.join(","));
    cmd
}

#[test]
fn a_new_sqlite_database_gets_a_private_key_file_and_postgres_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(hookline(dir.path()).arg("migrate"));
    assert!(out.status.success(), "{out:?}");
    let file = dir.path().join("hookline.db.key");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(hookline_core::sealing::EncryptionKey::parse(&text).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    // The next start uses the same key.
    assert!(run(hookline(dir.path()).arg("migrate")).status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // PostgreSQL without a key is refused before any connection is tried.
    let out = run(hookline(dir.path())
        .env(
            "HOOKLINE_DATABASE_URL",
            "postgres://hookline@127.0.0.1:1/none",
        )
        .arg("migrate"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HOOKLINE_ENCRYPTION_KEY") && err.contains("PostgreSQL"),
        "{err}"
    );
}

#[test]
fn rotate_encryption_reseals_every_secret_and_a_wrong_key_stops_the_start() {
    use hookline_core::sealing::EncryptionKey;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (EncryptionKey::generate(), EncryptionKey::generate());
    let out = run(with_keys(dir.path(), &[&a]).args(["keys", "create", "--local"]));
    assert!(out.status.success(), "{out:?}");
    let api_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let serve = |keys: &[&EncryptionKey], port: u16| {
        with_keys(dir.path(), keys)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // A webhook with a secret and a credential header, sealed under key A. No event is published:
    // nothing is ever sent to its URL.
    let port = free_port();
    let server = serve(&[&a], port);
    wait_ready(port);
    let (s, w) = http_json(
        port,
        "POST",
        "/v1/webhooks",
        &api_key,
        r#"{"url":"https://example.com/h","events":["contact.*"],"headers":{"Authorization":"Bearer CANARY-token"}}"#,
    );
    assert_eq!(s, 201, "{w}");
    let (id, secret) = (w["id"].as_str().unwrap(), w["secret"].as_str().unwrap());
    assert!(terminate(server).success());

    // Another key alone: the start stops, naming the key the database needs.
    let out = run(with_keys(dir.path(), &[&b]).arg("migrate"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong encryption key"), "{err}");
    assert!(err.contains(a.id().as_str()), "{err}");

    // The rotation: B seals, A still opens.
    let out = run(with_keys(dir.path(), &[&b, &a]).args(["keys", "rotate-encryption"]));
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 webhooks") && said.contains(b.id().as_str()),
        "{said}"
    );
    // Now A can go; A alone opens nothing any more.
    let out = run(with_keys(dir.path(), &[&a]).arg("migrate"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(b.id().as_str()));
    let port = free_port();
    let server = serve(&[&b], port);
    wait_ready(port);
    let (s, shown) = http_json(
        port,
        "GET",
        &format!("/v1/webhooks/{id}/secret"),
        &api_key,
        "",
    );
    assert_eq!(s, 200, "{shown}");
    assert_eq!(shown["secret"], secret);
    let (_, got) = http_json(port, "GET", &format!("/v1/webhooks/{id}"), &api_key, "");
    assert_eq!(got["headers"]["Authorization"], "Bear…en");
    assert!(terminate(server).success());

    // And the file on disk holds neither in clear.
    let stored: String = ["hookline.db", "hookline.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(dir.path().join(f)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    assert!(stored.contains("example.com"), "the file holds the webhook");
    assert!(!stored.contains("CANARY") && !stored.contains(secret));
}
