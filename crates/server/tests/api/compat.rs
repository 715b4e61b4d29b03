//! Wire compatibility of the four wire formats, end to end: for each format a receiver written
//! from its product's webhook documentation (ConnectMachine's envelope, ConnectGain's flat format,
//! CloudCX's contacts list, Customermates' record-centred format) — its header names, its
//! verification code, its field access — runs as a real Node or Python process
//! (`tests/compat/*.js|py`) on 127.0.0.1 and must accept real deliveries from a running Hookline.
//! And the verification handshake (`POST /v1/webhooks/{id}/verify-receiver`) against careful and
//! careless receivers.
//!
//! A test is skipped, with a notice on stderr, only when `node` or `python3` is not installed,
//! and never under CI (`CI` set), where that fails the test instead.

use super::*;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tokio::sync::mpsc;

const BOOT: Duration = Duration::from_secs(20);
const FINISH: Duration = Duration::from_secs(45);

/// A receiver script running as a child process.
struct Script {
    name: String,
    child: Option<Child>,
    port: u16,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

/// What a script printed: one `RESULT` per request it answered.
struct ScriptOutput {
    name: String,
    success: bool,
    results: Vec<Value>,
    log: Vec<String>,
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Script {
    /// Starts `program tests/compat/<script> 0 <requests>` and waits until it listens. `None`
    /// (with a notice) when the interpreter isn't installed.
    async fn start(
        program: &str,
        script: &str,
        requests: usize,
        env: &[(&str, &str)],
    ) -> Option<Script> {
        if !installed(program) {
            // CI installs both interpreters; there a missing one is a broken setup, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "`{program}` is not installed, and CI must run the {script} compatibility test"
            );
            eprintln!(
                "NOTICE: skipping the {script} compatibility test: `{program}` is not installed"
            );
            return None;
        }
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/compat")
            .join(script);
        let mut child = Command::new(program)
            .arg(&path)
            .arg("0")
            .arg(requests.to_string())
            .envs(env.iter().copied())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("can't start {program} {}: {e}", path.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Script {
            name: script.to_string(),
            child: Some(child),
            port: 0,
            lines,
            log: Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + BOOT;
        while s.port == 0 {
            match tokio::time::timeout_at(deadline, s.lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(p) = line.strip_prefix("LISTENING ") {
                        s.port = p.trim().parse().unwrap();
                    }
                    s.log.push(line);
                }
                _ => panic!("{script} did not start listening:\n{}", s.log.join("\n")),
            }
        }
        Some(s)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits for the script to answer all its requests and exit.
    async fn finish(mut self) -> ScriptOutput {
        let deadline = tokio::time::Instant::now() + FINISH;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => break,
                Err(_) => panic!(
                    "{} did not finish in time:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
        let mut child = self.child.take().unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        let results = self
            .log
            .iter()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        ScriptOutput {
            name: self.name.clone(),
            success: status.success() && self.log.iter().any(|l| l == "DONE"),
            results,
            log: std::mem::take(&mut self.log),
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ScriptOutput {
    fn context(&self) -> String {
        format!("{} printed:\n{}", self.name, self.log.join("\n"))
    }

    /// The script exited cleanly after answering `statuses.len()` requests with these statuses,
    /// in order.
    fn assert_statuses(&self, statuses: &[u64]) {
        assert!(self.success, "{}", self.context());
        let got: Vec<u64> = self
            .results
            .iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        assert_eq!(got, statuses, "{}", self.context());
        for r in &self.results {
            if r["status"] == 200 {
                assert!(
                    !r["checks"].as_array().unwrap().is_empty(),
                    "{}",
                    self.context()
                );
            }
        }
    }

    /// The accepted deliveries of one event name (as the format spells it). Every test ends with
    /// the handshake, whose two requests come last and are left out here.
    fn accepted(&self, event: &str) -> Vec<&Value> {
        self.results[..self.results.len().saturating_sub(2)]
            .iter()
            .filter(|r| r["status"] == 200 && r["event"] == event)
            .collect()
    }

    fn one(&self, event: &str) -> &Value {
        let found = self.accepted(event);
        assert_eq!(found.len(), 1, "one {event}: {}", self.context());
        found[0]
    }
}

const NOTES: &str = "Met at event\nfollow up: \"soon\" \t🚀 </script> \u{2028} \u{1} back\\slash";

/// A contact in the ConnectMachine contact schema with text and numbers that exercise JavaScript's
/// JSON rules: non-ASCII and astral characters, escapes, a float, integers beyond 2^53, 1e21 and
/// 1e-7, and keys JavaScript reorders.
fn tricky_contact(id: &str) -> Value {
    json!({
        "id": id,
        "first_name": "Zoë 🚀",
        "last_name": "Ångström \"中村\"",
        "company": "Example Corp",
        "job_title": "Product Manager",
        "notes": NOTES,
        "primary_email": "zoe@example.com",
        "primary_phone": "+15550101010",
        "emails": [{"label": "Work", "value": "zoe@example.com"}],
        "phones": [{"label": "Mobile", "value": "+15550101010"}],
        "custom": [{"label": "Score", "value": 0.1}],
        "address": {"formatted": "123 Market Street", "raw": {"zip": "94105", "10": "suite", "2": "floor"}},
        "tags": [{"name": "Conference", "type": "event"}],
        "owner_id": "u_17",
        "lifetime_value": 12345678901234567890u64,
        "ratios": [1.0, 1e21, 1e-7, 5e-324, -0.0, 0.30000000000000004],
        "created_at": "2026-05-15T10:00:00.000Z",
        "updated_at": "2026-05-15T10:05:00.000Z"
    })
}

async fn publish(app: &TestApp, body: Value, actor: Option<&str>) -> Value {
    let mut req = app
        .client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&app.key)
        .json(&body);
    if let Some(a) = actor {
        req = req.header("X-Actor-Id", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v
}

/// Every delivery of the webhook is `delivered` (the receiver answered 2xx); returns them.
async fn assert_all_delivered(app: &TestApp, webhook_id: &str, count: usize) -> Vec<Value> {
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={webhook_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), count, "{v}");
    for d in &list {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_status_code"], 200, "{d}");
    }
    list
}

async fn handshake(app: &TestApp, webhook_id: &str) -> Value {
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{webhook_id}/verify-receiver"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// The flat format: ConnectGain's own Node or Python example, which Node verifies over
/// `JSON.stringify(req.body)` and Python over the raw body.
async fn flat_receiver(program: &str, script: &str) {
    let Some(rx) = Script::start(program, script, 5, &[]).await else {
        return;
    };
    let app = spawn_app_with(&local_receivers()).await;
    let w = app
        .create(json!({
            "name": "My Integration",
            "url": rx.url("/webhooks"),
            "events": ["contact.created", "deal.stage.changed", "contact.updated"],
            "secret": "your-secret-here",
            "is_active": true,
            "format": "flat"
        }))
        .await;
    let id = w["id"].as_str().unwrap();
    publish(
        &app,
        json!({"event_type": "contact.created", "data": tricky_contact("c_1")}),
        None,
    )
    .await;
    let mut updated = tricky_contact("c_1");
    updated["job_title"] = json!("CTO");
    publish(
        &app,
        json!({"event_type": "contact.updated", "data": updated,
               "changes": {"job_title": {"previous": "Product Manager", "current": "CTO"}}}),
        None,
    )
    .await;
    publish(
        &app,
        json!({"event_type": "deal.stage.changed",
               "data": {"id": "deal_1", "name": "Renewal", "stage": "won", "owner_id": "u_17", "amount": 12500.5},
               "changes": {"stage": {"previous": "negotiation", "current": "won"}}}),
        None,
    )
    .await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 3);
    assert_all_delivered(&app, id, 3).await;
    // ConnectGain's receiver really checks: the handshake's mis-signed request gets its 401.
    let h = handshake(&app, id).await;
    assert_eq!(h["verdict"], "verifies_signatures", "{h}");

    let out = rx.finish().await;
    out.assert_statuses(&[200, 200, 200, 401, 200]);
    let created = out.one("contact.created");
    let ctx = out.context();
    assert_eq!(created["first_name"], "Zoë 🚀", "{ctx}");
    assert_eq!(created["notes"], NOTES, "{ctx}");
    assert_eq!(created["organization_id"], "default", "{ctx}");
    // What JavaScript and Python hold after parsing: the nearest double, as Hookline wrote it.
    assert_eq!(
        created["lifetime_value"],
        json!(12345678901234567000u64),
        "{ctx}"
    );
    let updated = out.one("contact.updated");
    assert_eq!(updated["changes"]["job_title"]["current"], "CTO", "{ctx}");
    let deal = out.one("deal.stage.changed");
    assert_eq!(deal["stage"], "won", "{ctx}");
    assert_eq!(deal["id"], "deal_1", "{ctx}");
}

#[tokio::test]
async fn flat_format_node_example_verifies_and_reads_real_deliveries() {
    flat_receiver("node", "flat_node.js").await;
}

#[tokio::test]
async fn flat_format_python_example_verifies_and_reads_real_deliveries() {
    flat_receiver("python3", "flat_python.py").await;
}

/// The record-centred format (`entity`): Customermates' `verify` with `crypto.timingSafeEqual` over
/// the raw body, and its envelope read field by field.
#[tokio::test]
async fn record_centred_node_example_verifies_and_reads_real_deliveries() {
    let Some(rx) = Script::start("node", "record_node.js", 7, &[]).await else {
        return;
    };
    let app = spawn_app_with(&local_receivers()).await;
    let w = app
        .create(json!({
            "url": rx.url("/hooks/customermates"),
            "events": ["contact.created", "contact.updated", "contact.deleted", "deal.updated"],
            "secret": "use-a-random-string-from-a-password-manager",
            "enabled": true,
            "format": "entity",
            "retry_schedule": []
        }))
        .await;
    let id = w["id"].as_str().unwrap();
    publish(
        &app,
        json!({"event_type": "contact.created", "data": tricky_contact("ct_xyz")}),
        Some("u_123"),
    )
    .await;
    let mut updated = tricky_contact("ct_xyz");
    updated["tags"] =
        json!([{"name": "Conference", "type": "event"}, {"name": "VIP", "type": "label"}]);
    publish(
        &app,
        json!({"event_type": "contact.updated", "data": updated,
               "changes": {"tags": {"previous": [{"name": "Conference", "type": "event"}],
                                    "current": [{"name": "Conference", "type": "event"}, {"name": "VIP", "type": "label"}]}}}),
        Some("u_123"),
    )
    .await;
    publish(
        &app,
        json!({"event_type": "contact.deleted", "data": {"ids": ["ct_1", "ct_2"]}}),
        Some("u_123"),
    )
    .await;
    publish(
        &app,
        json!({"event_type": "deal.updated",
               "data": {"id": "deal_1", "name": "Renewal ✓", "stage": "won", "owner_id": "u_17", "amount": 1e21},
               "changes": {"amount": {"previous": 0.1, "current": 1e21}}}),
        None,
    )
    .await;
    // A delete of two contacts is two deliveries in a one-object format.
    assert_eq!(app.dispatcher.drain().await.unwrap(), 5);
    assert_all_delivered(&app, id, 5).await;
    let h = handshake(&app, id).await;
    assert_eq!(h["verdict"], "verifies_signatures", "{h}");

    let out = rx.finish().await;
    out.assert_statuses(&[200, 200, 200, 200, 200, 401, 200]);
    let ctx = out.context();
    let created = out.one("contact.created");
    assert_eq!(created["userId"], "u_123", "{ctx}");
    assert_eq!(created["companyId"], "default", "{ctx}");
    assert_eq!(created["entityId"], "ct_xyz", "{ctx}");
    assert_eq!(created["first_name"], "Zoë 🚀", "{ctx}");
    let updated = out.one("contact.updated");
    assert_eq!(
        updated["changes"]["tags"]["current"][1]["name"], "VIP",
        "{ctx}"
    );
    let mut deleted: Vec<&str> = out
        .accepted("contact.deleted")
        .iter()
        .map(|r| r["entityId"].as_str().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["ct_1", "ct_2"], "{ctx}");
    let deal = out.one("deal.updated");
    assert_eq!(deal["userId"], Value::Null, "{ctx}");
    assert_eq!(deal["name"], "Renewal ✓", "{ctx}");
    assert_eq!(deal["changes"]["amount"]["current"], json!(1e21), "{ctx}");
}

/// The ConnectMachine-style envelope format: its headers, envelope and delete shape, with
/// the README's Node Standard Webhooks snippet verifying.
#[tokio::test]
async fn envelope_node_receiver_reads_real_deliveries_with_brand_headers() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let Some(rx) =
        Script::start("node", "envelope_node.js", 7, &[("WEBHOOK_SECRET", SECRET)]).await
    else {
        return;
    };
    let mut config = local_receivers();
    config.push(("brand", "ConnectMachine".into()));
    config.push(("batch_max_size", "2".into()));
    let app = spawn_app_with(&config).await;
    let w = app
        .create(json!({
            "url": rx.url("/connectmachine"),
            "events": ["contacts.created", "contacts.updated", "contacts.deleted"],
            "secret": SECRET
        }))
        .await;
    assert_eq!(w["format"], "envelope");
    let id = w["id"].as_str().unwrap();
    let created = publish(
        &app,
        json!({"event_type": "contacts.created", "data": tricky_contact("c_1")}),
        None,
    )
    .await;
    let mut updated = tricky_contact("c_1");
    updated["tags"] = json!([]);
    publish(
        &app,
        json!({"event_type": "contacts.updated", "data": updated, "source": "api", "source_id": "req_1",
               "changes": {"tags": {"previous": [{"name": "Conference", "type": "event"}], "current": []}}}),
        None,
    )
    .await;
    publish(
        &app,
        json!({"event_type": "contacts.deleted", "data": {"ids": ["c_1", "c_2"]}}),
        None,
    )
    .await;
    // An import of three contacts with batches of at most two: two deliveries.
    let resp = app
        .client
        .post(format!("{}/v1/contacts/import", app.base))
        .bearer_auth(&app.key)
        .json(&json!([
            {"first_name": "Ada", "last_name": "Lovelace", "primary_email": "ada@example.com"},
            {"first_name": "Émile", "last_name": "Zola", "primary_email": "emile@example.com"},
            {"first_name": "小林", "last_name": "Kobayashi", "primary_email": "k@example.com"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let import: Value = resp.json().await.unwrap();
    assert_eq!(import["created"], 3, "{import}");
    // The envelope carries a whole delete, and a whole batch, in one delivery.
    assert_eq!(app.dispatcher.drain().await.unwrap(), 5);
    assert_all_delivered(&app, id, 5).await;
    let h = handshake(&app, id).await;
    assert_eq!(h["verdict"], "verifies_signatures", "{h}");

    let out = rx.finish().await;
    out.assert_statuses(&[200, 200, 200, 200, 200, 401, 200]);
    let ctx = out.context();
    let mut batches: Vec<&Value> = out
        .accepted("contacts.created")
        .into_iter()
        .filter(|r| r.get("batch").is_some())
        .collect();
    batches.sort_by_key(|r| r["batch"]["index"].as_u64());
    assert_eq!(batches.len(), 2, "{ctx}");
    assert_eq!(
        batches[0]["batch"],
        json!({"index": 1, "count": 2, "max_size": 2}),
        "{ctx}"
    );
    assert_eq!(
        batches[1]["batch"],
        json!({"index": 2, "count": 1, "max_size": 2}),
        "{ctx}"
    );
    for b in &batches {
        assert_eq!(b["source"], "contact_import", "{ctx}");
        assert_eq!(b["source_id"], import["import_id"], "{ctx}");
    }
    let c = out
        .accepted("contacts.created")
        .into_iter()
        .find(|r| r.get("batch").is_none())
        .unwrap();
    assert_eq!(c["event_id"], created["delivery_ids"][0], "{ctx}");
    assert_eq!(c["first_name"], "Zoë 🚀", "{ctx}");
    assert_eq!(c["source"], Value::Null, "{ctx}");
    assert_eq!(
        c["ratios"],
        json!([1, 1e21, 1e-7, 5e-324, 0, 0.30000000000000004]),
        "{ctx}"
    );
    let u = out.one("contacts.updated");
    assert_eq!(u["source"], "api", "{ctx}");
    assert_eq!(u["changes"]["tags"]["current"], json!([]), "{ctx}");
    let d = out.one("contacts.deleted");
    assert_eq!(d["contact_ids"], json!(["c_1", "c_2"]), "{ctx}");
}

/// CloudCX's contacts-list format: `ContactCreated` with camelCase contacts, `createdTime` a
/// string, deletes with `ids`; the README's Python Standard Webhooks snippet verifying with a
/// secret that is not `whsec_`-encoded.
#[tokio::test]
async fn contacts_list_python_receiver_reads_real_deliveries() {
    const SECRET: &str = "cloudcx-shared-secret";
    let Some(rx) = Script::start(
        "python3",
        "contacts_list_python.py",
        5,
        &[("WEBHOOK_SECRET", SECRET)],
    )
    .await
    else {
        return;
    };
    let app = spawn_app_with(&local_receivers()).await;
    let w = app
        .create(json!({
            "url": rx.url("/cloudcx"),
            "events": ["ContactCreated", "ContactUpdated", "ContactDeleted"],
            "secret": SECRET,
            "format": "contacts-list"
        }))
        .await;
    let id = w["id"].as_str().unwrap();
    publish(
        &app,
        json!({"event_type": "ContactCreated", "data": tricky_contact("392a0465-fc1b-4820-abc7-e96cb5d98774")}),
        None,
    )
    .await;
    let mut updated = tricky_contact("392a0465-fc1b-4820-abc7-e96cb5d98774");
    updated["company"] = json!("Cloudfon");
    publish(
        &app,
        json!({"event_type": "ContactUpdated", "data": updated,
               "changes": {"company": {"previous": "Example Corp", "current": "Cloudfon"}}}),
        None,
    )
    .await;
    publish(
        &app,
        json!({"event_type": "ContactDeleted", "data": {"ids": ["392a0465-fc1b-4820-abc7-e96cb5d98774", "c_2"]}}),
        None,
    )
    .await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 3);
    assert_all_delivered(&app, id, 3).await;
    let h = handshake(&app, id).await;
    assert_eq!(h["verdict"], "verifies_signatures", "{h}");

    let out = rx.finish().await;
    out.assert_statuses(&[200, 200, 200, 401, 200]);
    let ctx = out.context();
    let c = out.one("ContactCreated");
    assert_eq!(c["firstName"], "Zoë 🚀", "{ctx}");
    assert_eq!(c["lastName"], "Ångström \"中村\"", "{ctx}");
    assert_eq!(c["email"], "zoe@example.com", "{ctx}");
    assert_eq!(c["phoneNumber"], "+15550101010", "{ctx}");
    assert_eq!(c["owner"], "u_17", "{ctx}");
    assert_eq!(c["createdTime"], "1778839200000", "{ctx}");
    assert_eq!(c["lastUpdatedTime"], "1778839500000", "{ctx}");
    assert_eq!(c["customFields"], json!([{"label": "Score", "value": 0.1}]));
    let u = out.one("ContactUpdated");
    assert_eq!(u["companyName"], "Cloudfon", "{ctx}");
    let d = out.one("ContactDeleted");
    assert_eq!(
        d["ids"],
        json!(["392a0465-fc1b-4820-abc7-e96cb5d98774", "c_2"]),
        "{ctx}"
    );
}

// ---------------------------------------------------------------------------------------------
// The verification handshake.

async fn webhook_for(app: &TestApp, url: &str, secret: Option<&str>) -> (String, String) {
    let mut body = json!({"url": url, "events": ["contact.*"]});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let w = app.create(body).await;
    (
        w["id"].as_str().unwrap().to_string(),
        w["secret"].as_str().unwrap().to_string(),
    )
}

async fn no_deliveries_logged(app: &TestApp, webhook_id: &str) {
    let (_, v) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={webhook_id}"),
            None,
        )
        .await;
    assert_eq!(v["data"], json!([]), "the handshake stores nothing: {v}");
}

#[tokio::test]
async fn handshake_recognises_a_receiver_that_verifies_signatures() {
    let app = spawn_app_with(&local_receivers()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (id, secret) = webhook_for(&app, &url, None).await;
    let stats = Arc::new(hookline_server::receiver::ReceiverStats::default());
    let stop = CancellationToken::new();
    tokio::spawn(hookline_server::receiver::run(
        listener,
        hookline_server::receiver::ReceiverOptions {
            secret: Some(secret),
            quiet: true,
            allow_hex_only: false,
        },
        stats.clone(),
        stop.clone(),
    ));
    let h = handshake(&app, &id).await;
    stop.cancel();
    assert_eq!(h["verdict"], "verifies_signatures", "{h}");
    assert_eq!(h["event_type"], "contact.created");
    assert_eq!(h["signed"]["status_code"], 200, "{h}");
    assert_eq!(h["mis_signed"]["status_code"], 401, "{h}");
    assert!(h["advice"].as_str().unwrap().contains("checks signatures"));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.verified.load(Relaxed), 1);
    assert_eq!(stats.rejected.load(Relaxed), 1);
    no_deliveries_logged(&app, &id).await;
}

#[tokio::test]
async fn handshake_catches_a_receiver_that_accepts_anything() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let (id, secret) = webhook_for(&app, &rx.url, None).await;
    let h = handshake(&app, &id).await;
    assert_eq!(h["verdict"], "accepts_bad_signatures", "{h}");
    assert!(h["advice"].as_str().unwrap().contains("forged"), "{h}");
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let (mis, good) = (&got[0], &got[1]);
    // Same body and delivery id; only the signatures differ.
    assert_eq!(mis.body, good.body);
    assert_eq!(mis.header("webhook-id"), good.header("webhook-id"));
    assert_eq!(
        mis.header("x-hookline-delivery-id"),
        h["delivery_id"].as_str().unwrap()
    );
    assert_eq!(good.json()["source"], "test");
    let verify = |r: &Received| {
        let hex = hookline_verify::verify_hex(&secret, &r.body, r.header("x-webhook-signature"));
        let std = hookline_verify::verify_standard(
            &secret,
            &hookline_verify::StandardHeaders {
                id: r.header("webhook-id"),
                timestamp: r.header("webhook-timestamp"),
                signature: r.header("webhook-signature"),
            },
            &r.body,
            hookline_verify::unix_now(),
            300,
        );
        (hex.is_ok(), std.is_ok())
    };
    assert_eq!(verify(mis), (false, false));
    assert_eq!(verify(good), (true, true));
    no_deliveries_logged(&app, &id).await;
}

#[tokio::test]
async fn handshake_reports_a_receiver_that_rejects_valid_signatures() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(401)).then(Reply::status(401));
    let (id, _) = webhook_for(&app, &rx.url, Some("my-own-secret")).await;
    let h = handshake(&app, &id).await;
    assert_eq!(h["verdict"], "rejects_valid_signatures", "{h}");
    assert!(h["advice"].as_str().unwrap().contains("HTTP 401"), "{h}");
}

#[tokio::test]
async fn handshake_reports_an_unreachable_receiver() {
    let app = spawn_app_with(&local_receivers()).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (id, _) = webhook_for(&app, &format!("http://127.0.0.1:{port}/gone"), None).await;
    let h = handshake(&app, &id).await;
    assert_eq!(h["verdict"], "unreachable", "{h}");
    assert_eq!(h["signed"]["error_kind"], "connect", "{h}");
    assert_eq!(h["signed"]["status_code"], Value::Null, "{h}");
}

#[tokio::test]
async fn handshake_errors() {
    let app = spawn_app_with(&local_receivers()).await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/00000000-0000-0000-0000-000000000000/verify-receiver",
            None,
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "unknown id",
    );
    let rx = Receiver::start().await;
    let w = app
        .create(json!({"url": rx.url, "events": ["ContactCreated"], "format": "contacts-list"}))
        .await;
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{}/verify-receiver", w["id"].as_str().unwrap()),
            Some(json!({"event_type": "deal.created"})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_by_format",
        Some("event_type"),
        "event the format can't carry",
    );
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{}/verify-receiver", w["id"].as_str().unwrap()),
            Some(json!({"secret": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(rx.received().is_empty());
}

/// The README's "Receiving webhooks" snippets are the code the envelope and contacts-list
/// receivers run, character for character.
#[test]
fn readme_snippets_are_the_code_the_compat_receivers_run() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    for (script, start, end) in [
        (
            "envelope_node.js",
            "// --- README: verifying in Node ---",
            "// --- end ---",
        ),
        (
            "contacts_list_python.py",
            "# --- README: verifying in Python ---",
            "# --- end ---",
        ),
    ] {
        let text = std::fs::read_to_string(root.join("tests/compat").join(script)).unwrap();
        let from = text
            .find(start)
            .unwrap_or_else(|| panic!("{script}: no {start}"));
        let to = text[from..].find(end).unwrap() + from + end.len();
        let snippet = &text[from..to];
        assert!(
            readme.contains(snippet),
            "README.md must contain {script}'s snippet verbatim:\n{snippet}"
        );
    }
}
