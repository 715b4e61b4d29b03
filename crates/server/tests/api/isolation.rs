//! No receiver, tenant or client can stop, stall or starve a node: poisoned response bodies, hanging
//! endpoints of another tenant, oversized publishes, and clients that hold connections open.
//! Every timeout here is a guard against a hang, never a speed assertion.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Guard for "this must happen at all": generous, so a slow machine never fails it.
const GUARD: Duration = Duration::from_secs(30);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("the server never closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_receiver_answering_nul_and_binary_bodies_is_recorded_and_spoils_nothing() {
    let app = spawn_app_with(&local_receivers()).await;
    let poison = Receiver::start().await;
    let gzip = vec![
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xfe,
    ];
    poison.then(Reply {
        status: 200,
        headers: vec![("x-odd", "a;b=\"c\"".into())],
        body: b"nul\0byte".to_vec(),
        hold: None,
    });
    poison.then(Reply {
        status: 500,
        headers: vec![("content-encoding", "gzip".into())],
        body: gzip,
        hold: None,
    });
    let healthy = Receiver::start().await;
    let p = app.create(hook(&poison.url)).await;
    app.create(hook(&healthy.url)).await;
    for id in ["c1", "c2"] {
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/events",
                Some(json!({"event_type": "contact.created", "data": {"id": id}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    app.dispatcher.drain().await.unwrap();
    assert_eq!(healthy.received().len(), 2);
    // Every attempt to the poisoned endpoint is in the log, with what it answered made storable.
    let (s, list) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={}", p["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let mut bodies = Vec::new();
    for d in list["data"].as_array().unwrap() {
        let (s, full) = app
            .call(
                Method::GET,
                &format!("/v1/deliveries/{}", d["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{full}");
        let attempts = full["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{full}");
        bodies.push(attempts[0]["response_body"].as_str().unwrap().to_string());
    }
    bodies.sort();
    assert!(
        bodies.contains(&"nul\u{FFFD}byte".to_string()),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.starts_with("\u{1f}\u{FFFD}")),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn a_tenant_with_hanging_endpoints_cant_take_the_slots_of_another() {
    // The node has 20 slots; a tenant may hold 10. The noisy tenant's 30 endpoints never answer
    // (and the attempt timeout is long), so without the per-tenant cap its sends would hold every
    // slot and the calm tenant's deliveries would wait for those timeouts.
    let mut cfg = local_receivers();
    cfg.extend([
        ("max_inflight", "20".to_string()),
        ("max_in_flight_per_tenant", "10".to_string()),
        ("timeout", "120s".to_string()),
        ("lease", "300s".to_string()),
    ]);
    let app = spawn_app_with_worker(&cfg).await;
    let hang = Arc::new(Notify::new());
    let hanging = Receiver::start().await;
    for _ in 0..30 {
        hanging.then(Reply {
            hold: Some(hang.clone()),
            ..Reply::status(200)
        });
    }
    let noisy_key = app.other_tenant_key("noisy").await;
    for _ in 0..30 {
        let (s, v) = app
            .call_as(
                &noisy_key,
                Method::POST,
                "/v1/webhooks",
                Some(hook(&hanging.url)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = app
        .call_as(
            &noisy_key,
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": {"id": "n"}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // The noisy tenant is now holding all it may: 10 sends hang.
    hanging.wait_for(10).await;
    let calm = Receiver::start().await;
    app.create(hook(&calm.url)).await;
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"event_type": "contact.created", "data": {"id": format!("c{i}")}}))
        .collect();
    let (s, v) = app
        .call(Method::POST, "/v1/events", Some(Value::Array(batch)))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    calm.wait_for(20).await;
    assert_eq!(
        hanging.received().len(),
        10,
        "the noisy tenant went past its cap"
    );
    hang.notify_waiters();
}

#[tokio::test]
async fn a_publish_that_would_create_too_many_deliveries_is_refused_whole() {
    let mut cfg = local_receivers();
    cfg.push(("max_deliveries_per_publish", "10".to_string()));
    let app = spawn_app_with(&cfg).await;
    let r = Receiver::start().await;
    for _ in 0..3 {
        app.create(hook(&r.url)).await;
    }
    let batch = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"event_type": "contact.created", "data": {"id": format!("c{i}")}}))
            .collect()
    };
    // 4 events x 3 webhooks = 12 > 10.
    let (s, v) = app.call(Method::POST, "/v1/events", Some(batch(4))).await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_deliveries",
        Some("."),
        "over the limit",
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_deliveries_per_publish"));
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 0, "{events}");
    // 3 x 3 = 9 fits.
    let (s, v) = app.call(Method::POST, "/v1/events", Some(batch(3))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let app = spawn_app_with(&[("max_request_body", "2048".to_string())]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n",
        app.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Not a byte of the announced 10 GiB follows; the answer must come anyway.
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut_while_others_are_served() {
    let app = spawn_app_with(&[
        ("http_header_timeout", "1s".to_string()),
        ("http_body_timeout", "1s".to_string()),
    ])
    .await;
    // A slowloris: a header byte now and then, never the end of the head.
    let mut slow_head = TcpStream::connect(addr(&app)).await.unwrap();
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nX-A: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow_head.write_all(b"a").await.is_err() {
                break;
            }
        }
        read_to_close(&mut slow_head).await
    });
    // A slow body: 10 of the 100 announced bytes, then nothing.
    let mut slow_body = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_t",
        app.key
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    // An idle keep-alive connection: one request, then silence.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Meanwhile a normal client is served.
    let (s, _) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);

    let body_answer = read_to_close(&mut slow_body).await;
    assert!(
        body_answer.is_empty() || body_answer.starts_with("HTTP/1.1 4"),
        "{body_answer}"
    );
    let idle_answer = read_to_close(&mut idle).await;
    assert!(idle_answer.starts_with("HTTP/1.1 200"), "{idle_answer}");
    // The slowloris is cut (hyper closes it without an answer) long before its 100 bytes.
    let cut = tokio::time::timeout(GUARD, trickle).await.unwrap().unwrap();
    assert!(!cut.starts_with("HTTP/1.1 200"), "{cut}");
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let app = spawn_app().await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let large = format!("X-Big: {}\r\n", "a".repeat(100 * 1024));
    for (case, extra) in [("150 headers", many), ("100 KiB header", large)] {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        // The server may answer and close before it has read everything we write.
        let _ = stream.write_all(req.as_bytes()).await;
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{case}: {answer}");
    }
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_a_connection_closes() {
    let app = spawn_app_with(&[
        ("http_max_connections", "2".to_string()),
        ("http_header_timeout", "1s".to_string()),
    ])
    .await;
    // Two clients take both connections and send nothing.
    let mut squatters = Vec::new();
    for _ in 0..2 {
        squatters.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // A third is served once the header timeout has cut a squatter.
    let (s, _) = tokio::time::timeout(GUARD, app.call(Method::GET, "/v1/webhooks", None))
        .await
        .expect("the third client was never served");
    assert_eq!(s, StatusCode::OK);
    for mut s in squatters {
        let answer = read_to_close(&mut s).await;
        assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    }
}

#[tokio::test]
async fn shutdown_finishes_within_the_grace_period_while_a_receiver_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, _db) = test_database_url(dir.path()).await;
    let mut flags = local_receivers();
    flags.extend([
        ("database_url", database_url),
        ("encryption_key", crate::test_encryption_key()),
        ("timeout", "120s".to_string()),
        ("lease", "300s".to_string()),
        ("shutdown_grace", "1s".to_string()),
    ]);
    let config = hookline_server::config::Config::load(None, std::iter::empty(), &flags).unwrap();
    let app = hookline_server::App::build(config).await.unwrap();
    let key = app.hookline.bootstrap().await.unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(app.serve(
        listener,
        shutdown.clone(),
        hookline_server::Roles::default(),
    ));
    let hang = Arc::new(Notify::new());
    let r = Receiver::start().await;
    r.then(Reply {
        hold: Some(hang.clone()),
        ..Reply::status(200)
    });
    let client = Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    assert!(post("/v1/webhooks", hook(&r.url))
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(post(
        "/v1/events",
        json!({"event_type": "contact.created", "data": {"id": "c"}})
    )
    .await
    .unwrap()
    .status()
    .is_success());
    r.wait_for(1).await;
    // The send hangs for up to 120 s; shutdown must not wait for it.
    shutdown.cancel();
    tokio::time::timeout(GUARD, serving)
        .await
        .expect("shutdown outlived its grace period by far")
        .unwrap()
        .unwrap();
    hang.notify_waiters();
}

#[tokio::test]
async fn a_delivery_waiting_for_its_rate_limit_keeps_its_lease_from_another_node() {
    // One delivery per second and 10 claimed at once: the last waits ~9 s, longer than the 7 s
    // lease. Without renewal a second node would take the waiting ones over and send them again.
    let mut cfg = local_receivers();
    cfg.extend([("timeout", "1s".to_string()), ("lease", "7s".to_string())]);
    let app = spawn_app_with_worker(&cfg).await;
    let rx = Receiver::start().await;
    let mut body = hook(&rx.url);
    body["rate_limit"] = json!(1);
    app.create(body).await;
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"event_type": "contact.created", "data": {"id": format!("c{i}")}}))
        .collect();
    let (s, v) = app
        .call(Method::POST, "/v1/events", Some(Value::Array(batch)))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    rx.wait_for(1).await;
    // The first node holds all ten now; a second node on the same database starts.
    let second = hookline_server::dispatcher::Dispatcher::new(
        app.hookline.clone(),
        app.hookline.sender.clone(),
    );
    let stop = CancellationToken::new();
    let node2 = tokio::spawn(second.run(stop.clone()));
    let got = rx.wait_for(10).await;
    // Give a would-be duplicate the time to arrive: past the last lease the first node took.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-hookline-delivery-id").to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (10, 10), "{ids:?}");
    assert!(got.len() >= 10);
    stop.cancel();
    node2.await.unwrap();
}

#[tokio::test]
async fn a_replay_job_runs_in_steps_beside_another_tenants_publishes_and_sends_each_copy_once() {
    let mut cfg = local_receivers();
    cfg.push(("job_step", "100".to_string()));
    // 2,000 failures in a row must not disable the webhook.
    cfg.push(("disable_after_failures", "100000".to_string()));
    let app = spawn_app_with_worker(&cfg).await;
    let rx = Receiver::start().await;
    // 2,000 deliveries fail for good (400), then the receiver is fixed (200 from then on).
    for _ in 0..2000 {
        rx.then(Reply::status(400));
    }
    let w = app.create(hook(&rx.url)).await;
    let wid = w["id"].as_str().unwrap().to_string();
    for b in 0..2 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| json!({"event_type": "contact.created", "data": {"id": format!("c{b}-{i}")}}))
            .collect();
        let (s, v) = app
            .call(Method::POST, "/v1/events", Some(Value::Array(batch)))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    rx.wait_for(2000).await;
    let replay_path = format!("/v1/webhooks/{wid}/replay");
    let since = "2000-01-01T00:00:00Z";
    // The failures are recorded just after the answers: wait until all 2,000 are.
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let (_, v) = app
            .call(
                Method::POST,
                &replay_path,
                Some(json!({"since": since, "dry_run": true})),
            )
            .await;
        if v["count"] == 2000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = app.other_tenant_key("other").await;
    let rx2 = Receiver::start().await;
    let (s, v) = app
        .call_as(&other, Method::POST, "/v1/webhooks", Some(hook(&rx2.url)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (s, r) = app
        .call(Method::POST, &replay_path, Some(json!({"since": since})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["job"]["total"], 2000, "{r}");
    let job_path = format!("/v1/jobs/{}", r["job"]["id"].as_str().unwrap());
    // The other tenant publishes while the job runs; each publish is answered.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let start = tokio::time::Instant::now();
        let (s, v) = app
            .call_as(
                &other,
                Method::POST,
                "/v1/events",
                Some(json!({"event_type": "contact.created", "data": {"id": format!("o{i}")}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        slowest = slowest.max(start.elapsed());
    }
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + GUARD;
    let job = loop {
        let (s, j) = app.call(Method::GET, &job_path, None).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        seen.push(j["done"].as_u64().unwrap());
        if j["status"] == "succeeded" {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["done"], 2000, "{job}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {seen:?}"
    );
    rx2.wait_for(20).await;
    let got = rx.wait_for(4000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-hookline-delivery-id").to_string())
        .collect();
    assert_eq!(ids.len(), 4000);
    // A copy carries its original's receiver-facing id: the 2,000 failed sends came first, then
    // each copy exactly once, under the same 2,000 ids.
    let (originals, copies) = ids.split_at(2000);
    let originals: std::collections::HashSet<&String> = originals.iter().collect();
    let copies: std::collections::HashSet<&String> = copies.iter().collect();
    assert_eq!((originals.len(), copies.len()), (2000, 2000));
    assert_eq!(originals, copies);
    assert!(got.len() >= 4000);
    eprintln!(
        "replay of 2000 in steps of 100; slowest publish of another tenant meanwhile: {slowest:?}; progress seen: {} distinct values",
        {
            let mut s = seen.clone();
            s.dedup();
            s.len()
        }
    );
}

#[tokio::test]
async fn a_large_import_runs_as_a_job_in_steps_and_reports_its_rows() {
    let mut cfg = local_receivers();
    cfg.push(("job_step", "10".to_string()));
    cfg.push(("batch_max_size", "4".to_string()));
    let app = spawn_app_with(&cfg).await;
    let rx = Receiver::start().await;
    let mut body = hook(&rx.url);
    body["events"] = json!(["contact.created"]);
    app.create(body).await;
    // 35 rows: two refused by the record rules, one duplicate id.
    let mut rows: Vec<Value> = (0..33)
        .map(|i| json!({"id": format!("imp{i}"), "first_name": format!("N{i}")}))
        .collect();
    rows.insert(
        5,
        json!({"id": "bad-email", "primary_email": "not an email"}),
    );
    rows.insert(20, json!({"id": "imp3", "first_name": "again"}));
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/contacts/import",
            Some(Value::Array(rows)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = &v["job"];
    assert_eq!(job["kind"], "import", "{v}");
    assert_eq!(job["total"], 35, "{v}");
    assert!(v["rows"].as_array().unwrap().is_empty(), "{v}");
    let import_id = v["import_id"].as_str().unwrap().to_string();
    let job_path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    // Nothing is written before the job runs.
    let (_, listed) = app.call(Method::GET, "/v1/contacts?limit=100", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");

    let runner = hookline_server::jobs::JobRunner::new(app.hookline.clone());
    assert_eq!(runner.run_once().await.unwrap(), 1);
    let (s, done) = app.call(Method::GET, &job_path, None).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["done"], 35, "{done}");
    let r = &done["result"];
    assert_eq!(
        (r["created"].clone(), r["failed"].clone()),
        (json!(33), json!(2)),
        "{done}"
    );
    let refused: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(refused.len(), 2, "{done}");
    let (_, listed) = app.call(Method::GET, "/v1/contacts?limit=100", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 33, "{listed}");
    // contact.created went out in batches of at most 4, numbered across the job's steps.
    let (_, events) = app
        .call(
            Method::GET,
            "/v1/events?event_type=contact.created&limit=100",
            None,
        )
        .await;
    let mut indexes: Vec<u64> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source_id"] == import_id.as_str())
        .map(|e| e["batch"]["index"].as_u64().unwrap())
        .collect();
    indexes.sort();
    let n = indexes.len() as u64;
    assert_eq!(indexes, (1..=n).collect::<Vec<_>>(), "{events}");
    assert_eq!(r["batches"], n, "{done}");
    // One delivery per batch event.
    app.dispatcher.drain().await.unwrap();
    assert_eq!(rx.received().len() as u64, n);
}
