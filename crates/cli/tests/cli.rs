//! The `hookline` binary as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hookline(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.current_dir(dir)
        .env_remove("HOOKLINE_DATABASE_URL")
        .env_remove("HOOKLINE_CONFIG")
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
        let out = run(hookline(dir.path()).args(["--database", "sqlite://custom.db", "migrate"]));
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
    let out = run(hookline(dir.path()).args(["--config", "missing.toml", "migrate"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
