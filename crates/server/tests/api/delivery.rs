//! The delivery engine end to end: publish → dispatcher → local receiver → delivery log.

use super::*;
use hookline_core::time;

fn contact(id: &str) -> Value {
    json!({"event_type": "contact.created", "data": {"id": id, "first_name": "John", "last_name": "Doe"}})
}

impl TestApp {
    async fn webhook_to(&self, receiver: &Receiver, extra: Value) -> Value {
        let mut body = json!({"url": receiver.url, "events": ["*"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.create(body).await
    }

    async fn publish(&self, body: Value) -> Value {
        let (s, v) = self.call(Method::POST, "/v1/events", Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        v
    }

    async fn delivery(&self, id: &str) -> Value {
        let (s, v) = self
            .call(Method::GET, &format!("/v1/deliveries/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn drain(&self) -> usize {
        self.dispatcher.drain().await.unwrap()
    }

    /// Runs every queued background job (replays) to its end.
    async fn run_jobs(&self) -> usize {
        hookline_server::jobs::JobRunner::new(self.hookline.clone())
            .run_once()
            .await
            .unwrap()
    }

    /// Lets `secs` seconds pass on the store's clock (cumulatively: every schedule moves that much
    /// closer), then runs the dispatcher once (reaches scheduled retries without waiting).
    async fn run_later(&self, secs: u64) -> usize {
        self.hookline
            .store
            .travel(std::time::Duration::from_secs(secs))
            .await
            .unwrap();
        self.dispatcher.run_once().await.unwrap()
    }
}

fn first_delivery(published: &Value) -> String {
    published["delivery_ids"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn publish_delivers_a_signed_envelope_and_logs_the_attempt() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app
        .webhook_to(
            &rx,
            json!({"events": ["contacts.created"], "headers": {"X-Api-Key": "receiver-token"}}),
        )
        .await;
    let secret = w["secret"].as_str().unwrap().to_string();
    let p = app.publish(contact("c1")).await;
    let delivery_id = first_delivery(&p);
    assert_eq!(p["delivery_ids"].as_array().unwrap().len(), 1);
    assert_eq!(app.drain().await, 1);

    let got = rx.received();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.header("content-type"), "application/json");
    assert!(req.header("user-agent").starts_with("Hookline/"));
    assert_eq!(req.header("x-hookline-event"), "contacts.created");
    assert_eq!(req.header("x-webhook-event"), "contacts.created");
    assert_eq!(req.header("x-hookline-delivery-id"), delivery_id);
    assert_eq!(req.header("webhook-id"), delivery_id);
    assert_eq!(req.header("x-api-key"), "receiver-token");
    assert!(time::parse(req.header("x-webhook-timestamp")).is_some());
    // Flat and record-centred receivers: hex HMAC of the raw body.
    hookline_verify::verify_hex(&secret, &req.body, req.header("x-webhook-signature")).unwrap();
    // Standard Webhooks receivers.
    let headers = hookline_verify::StandardHeaders {
        id: req.header("webhook-id"),
        timestamp: req.header("webhook-timestamp"),
        signature: req.header("webhook-signature"),
    };
    hookline_verify::verify_standard(
        &secret,
        &headers,
        &req.body,
        hookline_verify::unix_now(),
        300,
    )
    .unwrap();
    let body = req.json();
    assert_eq!(body["event_id"], delivery_id.as_str());
    assert_eq!(body["data"]["event_type"], "contacts.created");
    assert_eq!(body["data"]["contacts"][0]["id"], "c1");

    let d = app.delivery(&delivery_id).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempt_count"], 1);
    assert_eq!(d["last_status_code"], 200);
    let a = &d["attempts"][0];
    assert_eq!(a["status_code"], 200);
    assert_eq!(a["response_body"], "ok");
    assert!(a["total_ms"].as_f64().unwrap() > 0.0);
    assert!(a["ttfb_ms"].as_f64().is_some());
    assert_eq!(a["request_headers"]["X-Api-Key"], "<redacted>");
    assert_eq!(
        a["request_headers"]["X-Webhook-Signature"],
        req.header("x-webhook-signature")
    );
    assert!(
        a.to_string().find(&secret).is_none(),
        "secret leaked into the log: {a}"
    );
}

#[tokio::test]
async fn retries_on_503_then_delivers_with_the_same_delivery_id() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(503));
    app.webhook_to(&rx, json!({})).await;
    let id = first_delivery(&app.publish(contact("c1")).await);
    assert_eq!(app.drain().await, 1);
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "retrying");
    assert_eq!(d["last_status_code"], 503);
    let next = time::parse(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = (next - time::now()).num_seconds();
    assert!(
        (350..=360).contains(&wait),
        "default schedule is 6 minutes, got {wait}s"
    );
    // Not due yet: nothing is sent.
    assert_eq!(app.drain().await, 0);
    assert_eq!(app.run_later(361).await, 1);
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempt_count"], 2);
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("x-hookline-delivery-id"),
        got[1].header("x-hookline-delivery-id")
    );
    assert_eq!(got[0].json()["event_id"], got[1].json()["event_id"]);
}

#[tokio::test]
async fn gives_up_after_the_schedule_and_never_retries_with_an_empty_one() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    for _ in 0..3 {
        rx.then(Reply::status(500));
    }
    app.webhook_to(&rx, json!({"retry_schedule": ["10s", "20s"]}))
        .await;
    let id = first_delivery(&app.publish(contact("c1")).await);
    app.drain().await;
    app.run_later(11).await;
    app.run_later(40).await;
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempt_count"], 3);
    assert_eq!(app.run_later(100_000).await, 0);

    let rx2 = Receiver::start().await;
    rx2.then(Reply::status(503));
    let w = app.webhook_to(&rx2, json!({"retry_schedule": []})).await;
    let p = app.publish(contact("c2")).await;
    app.drain().await;
    let ids: Vec<_> = p["delivery_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={}", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["status"], "failed");
    assert!(ids.contains(&log["data"][0]["id"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn fails_at_once_on_400_and_does_not_follow_301() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(400));
    let mut moved = Reply::status(301);
    moved
        .headers
        .push(("location", format!("{}/elsewhere", rx.url)));
    rx.then(moved);
    app.webhook_to(&rx, json!({})).await;
    let a = first_delivery(&app.publish(contact("a")).await);
    app.drain().await;
    let b = first_delivery(&app.publish(contact("b")).await);
    app.drain().await;
    assert_eq!(app.delivery(&a).await["status"], "failed");
    let d = app.delivery(&b).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["last_status_code"], 301);
    assert_eq!(
        app.run_later(100_000).await,
        0,
        "permanent failures are not retried"
    );
    let paths: Vec<_> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/hook", "/hook"], "the redirect was not followed");
}

#[tokio::test]
async fn hanging_receiver_times_out_and_is_retried() {
    let mut cfg = local_receivers();
    cfg.push(("timeout", "1s".into()));
    let app = spawn_app_with(&cfg).await;
    let rx = Receiver::start().await;
    let never = Arc::new(Notify::new());
    rx.then(Reply {
        hold: Some(never.clone()),
        ..Reply::status(200)
    });
    app.webhook_to(&rx, json!({})).await;
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "retrying");
    assert_eq!(d["attempts"][0]["error_kind"], "timeout");
    assert_eq!(d["attempts"][0]["status_code"], Value::Null);
    never.notify_waiters();
}

#[tokio::test]
async fn connection_refused_is_retried_and_blocked_destinations_fail_for_good() {
    let app = spawn_app_with(&local_receivers()).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    app.create(json!({"url": format!("http://127.0.0.1:{closed}/hook"), "events": ["*"]}))
        .await;
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "retrying");
    assert_eq!(d["attempts"][0]["error_kind"], "connect");

    // A webhook saved while an address was allowed, then refused by the policy at send time.
    let strict = spawn_app_with(&[("allow_http", "true".into())]).await;
    let tenant = strict
        .hookline
        .authenticate(&strict.key)
        .await
        .unwrap()
        .tenant_id;
    let now = time::now();
    let w = hookline_store::Webhook {
        id: hookline_core::ids::WebhookId::new(),
        tenant_id: tenant,
        name: "old".into(),
        description: String::new(),
        url: format!("http://127.0.0.1:{closed}/hook"),
        events: vec!["*".into()],
        secret: "s".into(),
        previous_secret: None,
        previous_secret_expires_at: None,
        enabled: true,
        disabled_reason: None,
        format: Default::default(),
        headers: Default::default(),
        retry_schedule: None,
        rate_limit: None,
        ordering: Default::default(),
        consecutive_failures: 0,
        failing_since: None,
        created_at: now,
        updated_at: now,
        last_attempt_at: None,
        filter: None,
    };
    strict.hookline.store.insert_webhook(&w).await.unwrap();
    let id = first_delivery(&strict.publish(contact("c")).await);
    strict.drain().await;
    let d = strict.delivery(&id).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"][0]["error_kind"], "blocked_destination");
}

#[tokio::test]
async fn a_huge_response_body_is_capped_in_the_log() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply {
        body: vec![b'x'; 20 << 20],
        ..Reply::status(200)
    });
    app.webhook_to(&rx, json!({})).await;
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "delivered");
    let a = &d["attempts"][0];
    assert_eq!(a["response_body"].as_str().unwrap().len(), 4096);
    assert_eq!(a["response_truncated"], true);
}

#[tokio::test]
async fn retry_after_stretches_the_next_attempt() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let mut slow_down = Reply::status(429);
    slow_down.headers.push(("retry-after", "900".into()));
    rx.then(slow_down);
    app.webhook_to(&rx, json!({"retry_schedule": ["10s"]}))
        .await;
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    let d = app.delivery(&id).await;
    let next = time::parse(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = (next - time::now()).num_seconds();
    assert!((890..=900).contains(&wait), "{wait}");
    assert_eq!(
        app.run_later(60).await,
        0,
        "the schedule's 10s is not enough"
    );
    assert_eq!(app.run_later(901).await, 1);
}

#[tokio::test]
async fn fan_out_reaches_only_matching_enabled_webhooks() {
    let app = spawn_app_with(&local_receivers()).await;
    let contacts = Receiver::start().await;
    let deals = Receiver::start().await;
    let off = Receiver::start().await;
    app.webhook_to(&contacts, json!({"events": ["contact.*"]}))
        .await;
    app.webhook_to(&deals, json!({"events": ["deal.*"]})).await;
    app.webhook_to(&off, json!({"events": ["*"], "enabled": false}))
        .await;
    let p = app.publish(contact("c")).await;
    assert_eq!(p["delivery_ids"].as_array().unwrap().len(), 1);
    let p = app
        .publish(json!([
            {"event_type": "DealStageChanged", "data": {"id": "d1", "stage": "won"}},
            {"event_type": "message.received", "data": {"id": "m1", "text": "hi"}}
        ]))
        .await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2);
    assert_eq!(p["data"][0]["delivery_ids"].as_array().unwrap().len(), 1);
    assert_eq!(p["data"][1]["delivery_ids"], json!([]));
    app.drain().await;
    assert_eq!(contacts.received().len(), 1);
    assert_eq!(deals.received().len(), 1);
    assert_eq!(
        deals.received()[0].header("x-hookline-event"),
        "deals.stage.changed"
    );
    assert!(off.received().is_empty());
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.webhook_to(&rx, json!({})).await;
    let send = |body: Value, key: &'static str| {
        let req = app
            .client
            .post(format!("{}/v1/events", app.base))
            .bearer_auth(&app.key)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            (r.status(), replayed, r.json::<Value>().await.unwrap())
        }
    };
    let (s1, r1, first) = send(contact("c1"), "k-1").await;
    assert_eq!((s1, r1), (StatusCode::ACCEPTED, false));
    let (s2, r2, again) = send(contact("c1"), "k-1").await;
    assert_eq!((s2, r2), (StatusCode::ACCEPTED, true));
    assert_eq!(first, again);
    let (s3, _, other) = send(contact("c2"), "k-1").await;
    assert_error(
        s3,
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
        "reused key",
    );
    app.drain().await;
    assert_eq!(rx.received().len(), 1, "one fan-out only");
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_events_get_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"event_type": "contact.exploded", "data": {}}),
            ".",
            "invalid",
        ),
        (
            json!({"event_type": "contact.exploded", "data": {"id": "1"}}),
            "event_type",
            "unknown_event_type",
        ),
        (
            json!({"event_type": "contact.*", "data": {"id": "1"}}),
            "event_type",
            "unknown_event_type",
        ),
        (
            json!({"event_type": "webhook.disabled", "data": {"id": "1"}}),
            "event_type",
            "reserved_event_type",
        ),
        (
            json!({"event_type": "contact.created", "data": "x"}),
            "data",
            "invalid",
        ),
        (
            json!({"event_type": "contact.created", "data": []}),
            "data",
            "invalid",
        ),
        (
            json!({"event_type": "message.sent", "data": [{"id": 1}]}),
            "data",
            "invalid",
        ),
        (
            json!({"event_type": "contact.deleted", "data": {"name": "x"}}),
            "data",
            "invalid",
        ),
        (
            json!({"event_type": "contact.deleted", "data": {"ids": []}}),
            "data",
            "invalid",
        ),
        (
            json!({"event_type": "contact.created", "data": {"id": "1"}, "occurred_at": "yesterday"}),
            "occurred_at",
            "invalid",
        ),
        (
            json!({"event_type": "contact.created", "data": {"id": "1"}, "entity_type": "deal"}),
            "entity_type",
            "invalid",
        ),
        (
            json!({"event_type": "contact.updated", "data": {"id": "1"}, "changes": {"name": "x"}}),
            "changes",
            "invalid",
        ),
        (
            json!({"event_type": "contact.created", "data": {"id": "1"}, "source": ""}),
            "source",
            "invalid",
        ),
        (
            json!([contact("a"), {"event_type": "nope", "data": {}}]),
            "[1].event_type",
            "unknown_event_type",
        ),
        (json!([]), ".", "invalid"),
    ];
    for (body, field, code) in cases {
        let (s, v) = app
            .call(Method::POST, "/v1/events", Some(body.clone()))
            .await;
        if field == "." && code == "invalid" && body.is_object() {
            // `{}` data on an unknown type: either error is acceptable as long as it's a 422.
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
            continue;
        }
        assert_error(
            s,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            Some(field),
            &body.to_string(),
        );
    }
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn resend_makes_a_new_log_record_the_receiver_sees_under_the_original_id() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(400));
    app.webhook_to(&rx, json!({})).await;
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    let before = app.delivery(&id).await;
    assert_eq!(before["status"], "failed");
    let (s, new) = app
        .call(Method::POST, &format!("/v1/deliveries/{id}/resend"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{new}");
    assert_ne!(new["id"], id.as_str());
    assert_eq!(new["resent_from"], id.as_str());
    assert_eq!(new["event_id"], before["event_id"]);
    assert_eq!(
        before["message_id"],
        id.as_str(),
        "a first delivery is its own message"
    );
    assert_eq!(
        new["message_id"],
        id.as_str(),
        "a resend repeats the message"
    );
    app.drain().await;
    assert_eq!(
        app.delivery(new["id"].as_str().unwrap()).await["status"],
        "delivered"
    );
    assert_eq!(app.delivery(&id).await, before, "the original is unchanged");
    let got = rx.received();
    assert_eq!(got.len(), 2);
    // Retried, resent or replayed, one event to one webhook is one message to the receiver.
    for req in &got {
        assert_eq!(req.header("x-hookline-delivery-id"), id);
        assert_eq!(req.header("webhook-id"), id);
        assert_eq!(req.json()["event_id"], id.as_str());
    }
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{}/resend", hookline_core::ids::new_id()),
            None,
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "unknown delivery",
    );
}

#[tokio::test]
async fn resends_of_resends_and_replays_keep_the_first_deliverys_id_for_the_receiver() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app.webhook_to(&rx, json!({})).await;
    let wid = w["id"].as_str().unwrap();
    let since = time::format(&(time::now() - chrono::Duration::minutes(1)));
    let id = first_delivery(&app.publish(contact("c")).await);
    app.drain().await;
    // A resend of the resend: the copy inherits the first delivery's message id, not the
    // intermediate's.
    let (s, first) = app
        .call(Method::POST, &format!("/v1/deliveries/{id}/resend"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();
    let (s, second) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{first_id}/resend"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["resent_from"], first_id.as_str());
    assert_eq!(second["message_id"], id.as_str());
    app.drain().await;
    // A replay copies all three log records; each copy is still the same message.
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{wid}/replay"),
            Some(json!({"since": since, "status": ["delivered"]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["count"], 3, "{v}");
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(app.drain().await, 3);
    let (_, log) = app.call(Method::GET, "/v1/deliveries", None).await;
    let log = log["data"].as_array().unwrap().clone();
    assert_eq!(log.len(), 6, "{log:?}");
    let mut records: Vec<&str> = log.iter().map(|d| d["id"].as_str().unwrap()).collect();
    records.sort();
    records.dedup();
    assert_eq!(
        records.len(),
        6,
        "every resend and replay has its own record id"
    );
    for d in &log {
        assert_eq!(d["message_id"], id.as_str(), "{d}");
        assert_eq!(d["status"], "delivered", "{d}");
        if d["id"] != id.as_str() {
            let from = d["resent_from"]
                .as_str()
                .expect("copies name their original");
            assert!(records.contains(&from), "{d}");
        }
    }
    let got = rx.received();
    assert_eq!(got.len(), 6);
    for req in &got {
        assert_eq!(req.header("x-hookline-delivery-id"), id);
        assert_eq!(req.header("webhook-id"), id);
        assert_eq!(req.json()["event_id"], id.as_str());
    }
    // One record read alone shows both ids too.
    let (s, copy) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries/{}", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{copy}");
    assert_eq!(copy["message_id"], id.as_str());
}

#[tokio::test]
async fn replay_counts_then_resends_failed_deliveries_in_range() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    for _ in 0..3 {
        rx.then(Reply::status(400));
    }
    let w = app.webhook_to(&rx, json!({})).await;
    let wid = w["id"].as_str().unwrap();
    let since = time::format(&(time::now() - chrono::Duration::minutes(1)));
    for i in 0..4 {
        app.publish(contact(&format!("c{i}"))).await;
    }
    app.drain().await;
    let path = format!("/v1/webhooks/{wid}/replay");
    let (s, v) = app
        .call(
            Method::POST,
            &path,
            Some(json!({"since": since, "dry_run": true})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v, json!({"count": 3, "dry_run": true, "job": null}));
    let (_, v) = app
        .call(
            Method::POST,
            &path,
            Some(json!({"since": since, "status": ["delivered"], "dry_run": true})),
        )
        .await;
    assert_eq!(v["count"], 1);
    let (s, v) = app
        .call(Method::POST, &path, Some(json!({"since": since})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (v["count"].clone(), v["dry_run"].clone()),
        (json!(3), json!(false))
    );
    // The copies are made by a background job, followed at /v1/jobs/{id}.
    let job = &v["job"];
    assert_eq!(job["kind"], "replay");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["webhook_id"], wid);
    assert_eq!(
        (job["total"].clone(), job["done"].clone()),
        (json!(3), json!(0))
    );
    let job_path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    assert_eq!(
        app.drain().await,
        0,
        "nothing is copied before the job runs"
    );
    assert_eq!(app.run_jobs().await, 1);
    let (s, done) = app.call(Method::GET, &job_path, None).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["done"], 3);
    assert!(done["finished_at"].is_string(), "{done}");
    let (_, listed) = app.call(Method::GET, "/v1/jobs", None).await;
    assert_eq!(listed["data"][0]["id"], job["id"], "{listed}");
    assert_eq!(app.drain().await, 3);
    assert_eq!(rx.received().len(), 7);
    // Cancelling a finished job changes nothing; another tenant can't see it.
    let (s, same) = app
        .call(Method::POST, &format!("{job_path}/cancel"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{same}");
    assert_eq!(same["status"], "succeeded");
    let other = app.other_tenant_key("other").await;
    let (s, _) = app.call_as(&other, Method::GET, &job_path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let future = time::format(&(time::now() + chrono::Duration::hours(1)));
    let (_, v) = app
        .call(
            Method::POST,
            &path,
            Some(json!({"since": future, "dry_run": true})),
        )
        .await;
    assert_eq!(v["count"], 0);
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "soon"}), "since"),
        (json!({"since": since, "until": since}), "until"),
        (json!({"since": since, "status": "exploded"}), "status"),
        (json!({"since": since, "status": [5]}), "status[0]"),
    ] {
        let (s, v) = app.call(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
}

#[tokio::test]
async fn test_button_sends_a_sample_synchronously_and_logs_it() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app
        .webhook_to(&rx, json!({"events": ["contacts.*"], "format": "entity"}))
        .await;
    let id = w["id"].as_str().unwrap();
    let (s, v) = app
        .call(Method::POST, &format!("/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["event_type"], "contact.created");
    assert_eq!(v["attempt"]["status_code"], 200);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["event"], "contact.created");
    assert_eq!(body["data"]["payload"]["contact"]["firstName"], "John");
    let d = app.delivery(v["delivery_id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);

    // A failing test is reported, logged as failed, and never retried.
    rx.then(Reply::status(503));
    let (_, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "contact.deleted"})),
        )
        .await;
    assert_eq!(v["success"], false);
    assert_eq!(v["attempt"]["status_code"], 503);
    assert_eq!(
        app.delivery(v["delivery_id"].as_str().unwrap()).await["status"],
        "failed"
    );
    assert_eq!(app.run_later(100_000).await, 0);
}

#[tokio::test]
async fn test_an_unsaved_url_under_the_same_url_policy() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/test",
            Some(json!({"url": rx.url, "format": "flat"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["delivery_id"], Value::Null);
    let secret = v["secret"].as_str().unwrap();
    let got = rx.received();
    hookline_verify::verify_hex(secret, &got[0].body, got[0].header("x-webhook-signature"))
        .unwrap();
    assert_eq!(got[0].json()["event"], "contact.created");
    for (body, field) in [
        (json!({"url": "http://10.0.0.1/hook"}), "url"),
        (json!({"url": "http://127.0.0.2/hook"}), "url"),
        (json!({}), "url"),
        (json!({"url": rx.url, "format": "xml"}), "format"),
        (
            json!({"url": rx.url, "format": "contacts-list", "event_type": "deal.created"}),
            "event_type",
        ),
    ] {
        let (s, v) = app
            .call(Method::POST, "/v1/webhooks/test", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn the_log_filters_by_webhook_status_type_time_and_search() {
    let app = spawn_app_with(&local_receivers()).await;
    let ok = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.then(Reply::status(404)).then(Reply::status(404));
    let w_ok = app.webhook_to(&ok, json!({})).await;
    app.webhook_to(&bad, json!({"url": bad.url.replace("/hook", "/crm-sync")}))
        .await;
    app.publish(contact("a")).await;
    app.publish(json!({"event_type": "deal.created", "data": {"id": "d"}}))
        .await;
    app.drain().await;
    let list = |q: String| {
        let app = &app;
        async move {
            let (s, v) = app
                .call(Method::GET, &format!("/v1/deliveries?{q}"), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            v["data"].as_array().unwrap().clone()
        }
    };
    assert_eq!(list(String::new()).await.len(), 4);
    assert_eq!(
        list(format!("webhook_id={}", w_ok["id"].as_str().unwrap()))
            .await
            .len(),
        2
    );
    assert_eq!(list("status=failed".into()).await.len(), 2);
    assert_eq!(
        list("status=delivered&event_type=deals.created".into())
            .await
            .len(),
        1
    );
    assert_eq!(list("event_type=ContactCreated".into()).await.len(), 2);
    assert_eq!(list("search=crm-sync".into()).await.len(), 2);
    assert_eq!(list("search=deal".into()).await.len(), 2);
    assert_eq!(list("search=contacts.created".into()).await.len(), 2);
    assert_eq!(
        list("search=%25".into()).await.len(),
        0,
        "LIKE wildcards are literal"
    );
    let past = time::format(&(time::now() - chrono::Duration::hours(1)));
    assert_eq!(
        list(format!("since={}", past.replace('+', "%2B")))
            .await
            .len(),
        4
    );
    assert_eq!(list(format!("until={past}")).await.len(), 0);
    let page = list("limit=3".into()).await;
    assert_eq!(page.len(), 3);
    for (q, field) in [
        ("status=lost", "status"),
        ("webhook_id=abc", "webhook_id"),
        ("event_type=nope", "event_type"),
        ("since=yesterday", "since"),
    ] {
        let (s, v) = app
            .call(Method::GET, &format!("/v1/deliveries?{q}"), None)
            .await;
        assert_error(
            s,
            &v,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            Some(field),
            q,
        );
    }
}

#[tokio::test]
async fn deliveries_and_events_are_scoped_by_tenant() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.webhook_to(&rx, json!({})).await;
    let p = app.publish(contact("c")).await;
    let id = first_delivery(&p);
    let other = app.other_tenant_key("acme").await;
    for path in [
        format!("/v1/deliveries/{id}"),
        format!("/v1/events/{}", p["id"].as_str().unwrap()),
    ] {
        let (s, v) = app.call_as(&other, Method::GET, &path, None).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", None, &path);
    }
    let (s, v) = app
        .call_as(
            &other,
            Method::POST,
            &format!("/v1/deliveries/{id}/resend"),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", None, "resend");
    let (_, list) = app
        .call_as(&other, Method::GET, "/v1/deliveries", None)
        .await;
    assert_eq!(list["data"], json!([]));
    let (_, list) = app.call_as(&other, Method::GET, "/v1/events", None).await;
    assert_eq!(list["data"], json!([]));
    // Another tenant's publish reaches none of our webhooks.
    let (s, v) = app
        .call_as(&other, Method::POST, "/v1/events", Some(contact("x")))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["delivery_ids"], json!([]));
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app.webhook_to(&rx, json!({"secret": "old-secret"})).await;
    let id = w["id"].as_str().unwrap();
    let (_, r) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(json!({"secret": "new-secret"})),
        )
        .await;
    assert_eq!(r["secret"], "new-secret");
    app.publish(contact("c")).await;
    app.drain().await;
    let req = &rx.received()[0];
    hookline_verify::verify_hex("new-secret", &req.body, req.header("x-webhook-signature"))
        .unwrap();
    hookline_verify::verify_hex(
        "old-secret",
        &req.body,
        req.header("x-webhook-signature-previous"),
    )
    .unwrap();
    assert_eq!(req.header("webhook-signature").split(' ').count(), 2);
    // The reference library accepts the request with either secret (non-whsec secrets key with
    // their bytes, see the README).
    for secret in ["old-secret", "new-secret"] {
        standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
            .unwrap()
            .verify(&req.body, &req.headers)
            .unwrap();
    }
    for secret in ["old-secret", "new-secret"] {
        let h = hookline_verify::StandardHeaders {
            id: req.header("webhook-id"),
            timestamp: req.header("webhook-timestamp"),
            signature: req.header("webhook-signature"),
        };
        hookline_verify::verify_standard(secret, &h, &req.body, hookline_verify::unix_now(), 300)
            .unwrap();
    }
}

#[tokio::test]
async fn events_of_one_record_arrive_in_order_when_the_webhook_asks() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(503));
    app.webhook_to(&rx, json!({"ordering": "entity", "retry_schedule": ["5s"]}))
        .await;
    for n in 1..=3 {
        app.publish(json!({"event_type": "contact.updated", "data": {"id": "same", "n": n}}))
            .await;
    }
    app.publish(json!({"event_type": "contact.updated", "data": {"id": "other", "n": 9}}))
        .await;
    // First pass: the head of `same` fails; `other` is not held back.
    app.drain().await;
    let order = |rx: &Receiver| {
        rx.received()
            .iter()
            .map(|r| {
                let b = r.json();
                (
                    b["data"]["contacts"][0]["id"].as_str().unwrap().to_string(),
                    b["data"]["contacts"][0]["n"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = order(&rx);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first.contains(&("same".to_string(), 1)) && first.contains(&("other".to_string(), 9)),
        "{first:?}"
    );
    for _ in 0..5 {
        app.run_later(6).await;
    }
    let same: Vec<i64> = order(&rx)
        .into_iter()
        .filter(|(id, _)| id == "same")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(same, [1, 1, 2, 3]);
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_disabled_and_announced() {
    let mut cfg = local_receivers();
    cfg.push(("disable_after_failures", "3".into()));
    let app = spawn_app_with(&cfg).await;
    let ops = Receiver::start().await;
    app.webhook_to(&ops, json!({"events": ["webhook.disabled"]}))
        .await;
    let rx = Receiver::start().await;
    for _ in 0..3 {
        rx.then(Reply::status(500));
    }
    let w = app
        .webhook_to(&rx, json!({"events": ["contact.*"], "retry_schedule": []}))
        .await;
    for i in 0..3 {
        app.publish(contact(&format!("c{i}"))).await;
        app.drain().await;
    }
    let (_, got) = app
        .call(
            Method::GET,
            &format!("/v1/webhooks/{}", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["enabled"], false);
    assert!(
        got["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 consecutive"),
        "{got}"
    );
    app.drain().await;
    let note = &ops.received()[0];
    assert_eq!(note.header("x-hookline-event"), "webhooks.disabled");
    assert_eq!(note.json()["data"]["webhooks"][0]["id"], w["id"]);
    // A disabled webhook gets no new deliveries; re-enabling resumes them and resets the streak.
    let p = app.publish(contact("while-disabled")).await;
    assert_eq!(p["delivery_ids"], json!([]));
    let (_, again) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", w["id"].as_str().unwrap()),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(again["disabled_reason"], Value::Null);
    app.publish(contact("after")).await;
    app.drain().await;
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test]
async fn failing_recovered_and_exhausted_reach_their_subscribers_in_every_format() {
    let mut cfg = local_receivers();
    cfg.push(("disable_after_failures", "4".into()));
    let app = spawn_app_with(&cfg).await;
    let ops = ["webhook.failing", "webhook.recovered", "delivery.exhausted"];
    let mut watchers = Vec::new();
    for format in ["envelope", "flat", "entity"] {
        let rx = Receiver::start().await;
        app.webhook_to(&rx, json!({"events": ops, "format": format}))
            .await;
        watchers.push((format, rx));
    }
    // The failing endpoint subscribes to them too, and never hears about itself.
    let rx = Receiver::start().await;
    rx.then(Reply::status(500));
    rx.then(Reply::status(400));
    let mut events = vec!["contact.*"];
    events.extend(ops);
    let w = app
        .webhook_to(&rx, json!({"events": events, "retry_schedule": []}))
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(first_delivery(
            &app.publish(contact(&format!("c{i}"))).await,
        ));
        app.drain().await;
    }
    app.drain().await;
    assert_eq!(rx.received().len(), 3);
    assert!(rx
        .received()
        .iter()
        .all(|r| r.header("x-hookline-event") == "contacts.created"));
    for (format, watcher) in &watchers {
        // Per format: the names as that format spells them, where the payload sits and how its
        // keys are spelled.
        let (exhausted, failing, recovered) = match *format {
            "envelope" => (
                "deliveries.exhausted",
                "webhooks.failing",
                "webhooks.recovered",
            ),
            _ => ("delivery.exhausted", "webhook.failing", "webhook.recovered"),
        };
        let payload = |b: &Value, subject: &str, plural: &str| -> Value {
            match *format {
                "envelope" => b["data"][plural][0].clone(),
                "flat" => b["data"].clone(),
                _ => b["data"]["payload"][subject].clone(),
            }
        };
        let key = |snake: &'static str, camel: &'static str| {
            if *format == "entity" {
                camel
            } else {
                snake
            }
        };
        // Notices made in one transaction may arrive in either order: sorted by name and
        // delivery.
        let mut got: Vec<(String, Value)> = watcher
            .received()
            .iter()
            .map(|r| {
                let name = r.header("x-hookline-event").to_string();
                let body = r.json();
                let data = if name == exhausted {
                    payload(&body, "delivery", "deliveries")
                } else {
                    payload(&body, "webhook", "webhooks")
                };
                (name, data)
            })
            .collect();
        got.sort_by_key(|(name, data)| {
            (
                name.clone(),
                data[key("delivery_id", "deliveryId")]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        });
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [exhausted, exhausted, failing, recovered],
            "{format}: {got:?}"
        );
        // Delivery ids are UUIDv7: the first publish's sorts first.
        let (first, second) = (&got[0].1, &got[1].1);
        assert_eq!(
            first[key("delivery_id", "deliveryId")],
            json!(ids[0]),
            "{format}: {first}"
        );
        assert_eq!(
            first[key("webhook_id", "webhookId")],
            w["id"],
            "{format}: {first}"
        );
        assert_eq!(first["reason"], "retries_exhausted", "{format}: {first}");
        assert_eq!(
            first[key("last_status_code", "lastStatusCode")],
            500,
            "{format}: {first}"
        );
        assert_eq!(first["attempts"], 1, "{format}: {first}");
        assert_eq!(
            second[key("delivery_id", "deliveryId")],
            json!(ids[1]),
            "{format}: {second}"
        );
        assert_eq!(second["reason"], "not_retryable", "{format}: {second}");
        assert_eq!(got[2].1["id"], w["id"], "{format}: {:?}", got[2]);
        assert_eq!(
            got[2].1[key("consecutive_failures", "consecutiveFailures")],
            2,
            "{format}: {:?}",
            got[2]
        );
        assert_eq!(got[3].1["id"], w["id"], "{format}: {:?}", got[3]);
    }
}

#[tokio::test]
async fn retries_of_an_outage_spread_over_the_jitter_band() {
    // The deployment's default jitter (±10 %); `local_receivers` turns it off for exact timings.
    let mut cfg = local_receivers();
    cfg.retain(|(k, _)| *k != "retry_jitter");
    let app = spawn_app_with(&cfg).await;
    let rx = Receiver::start().await;
    for _ in 0..20 {
        rx.then(Reply::status(503));
    }
    app.webhook_to(&rx, json!({"retry_schedule": ["1000s"]}))
        .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(first_delivery(
            &app.publish(contact(&format!("c{i}"))).await,
        ));
    }
    let before = time::now();
    app.drain().await;
    let after = time::now();
    let mut due = std::collections::BTreeSet::new();
    for id in &ids {
        let d = app.delivery(id).await;
        assert_eq!(d["status"], "retrying", "{d}");
        let next = time::parse(d["next_attempt_at"].as_str().unwrap()).unwrap();
        // 1000 s ± 10 %, counted from a moment between `before` and `after`.
        assert!(next >= before + chrono::Duration::seconds(900), "{d}");
        assert!(next <= after + chrono::Duration::seconds(1100), "{d}");
        due.insert(next);
    }
    // Twenty draws over a 200 s band at millisecond precision: spread out, not one instant (a
    // couple may share a millisecond by chance, about once in a thousand runs).
    assert!(due.len() >= 18, "{due:?}");
    let spread = *due.last().unwrap() - *due.first().unwrap();
    assert!(spread > chrono::Duration::seconds(20), "{due:?}");
}

#[tokio::test]
async fn a_receiver_answering_410_disables_its_webhook_as_endpoint_gone() {
    // One delivery of a webhook in flight at a time, so the second event is still queued when the
    // first one's 410 is recorded.
    let mut cfg = local_receivers();
    cfg.push(("max_concurrency_per_webhook", "1".into()));
    let app = spawn_app_with(&cfg).await;
    let ops = Receiver::start().await;
    app.webhook_to(&ops, json!({"events": ["webhook.disabled"]}))
        .await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(410));
    // The default schedule retries: a 410 must not be retried all the same.
    let w = app.webhook_to(&rx, json!({"events": ["contact.*"]})).await;
    let wid = w["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        let p = app.publish(contact(&format!("c{i}"))).await;
        ids.extend(p["delivery_ids"].as_array().unwrap().clone());
    }
    assert_eq!(ids.len(), 2);
    app.drain().await;
    assert_eq!(
        rx.received().len(),
        1,
        "one request: no retry, nothing after"
    );
    let (_, got) = app
        .call(Method::GET, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_eq!(got["enabled"], false, "{got}");
    assert_eq!(got["disabled_reason"], "endpoint_gone", "{got}");
    let mut attempts = Vec::new();
    for id in &ids {
        let (s, d) = app
            .call(
                Method::GET,
                &format!("/v1/deliveries/{}", id.as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        attempts.push((d["attempt_count"].as_u64().unwrap(), d["status"].clone()));
    }
    attempts.sort_by_key(|(n, _)| *n);
    assert_eq!(
        attempts[0].0, 0,
        "the queued delivery is never sent: {attempts:?}"
    );
    assert_eq!(attempts[1], (1, json!("failed")), "{attempts:?}");
    // The queued one ends cancelled, naming why.
    assert_eq!(attempts[0].1, json!("cancelled"), "{attempts:?}");
    let (_, queued) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={wid}&status=cancelled"),
            None,
        )
        .await;
    assert_eq!(
        queued["data"][0]["cancel_reason"], "endpoint_gone",
        "{queued}"
    );
    // The tenant's operational webhook hears about it, with the reason.
    let notes = ops.received();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].header("x-hookline-event"), "webhooks.disabled");
    let body = notes[0].json().to_string();
    assert!(
        body.contains(wid) && body.contains("endpoint_gone"),
        "{body}"
    );
    // Further events are not sent to it.
    let p = app.publish(contact("after")).await;
    assert_eq!(p["delivery_ids"], json!([]));
    app.drain().await;
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another() {
    let mut cfg = local_receivers();
    cfg.push(("max_concurrency_per_webhook", "2".into()));
    let app = spawn_app_with_worker(&cfg).await;
    let hanging = Receiver::start().await;
    let release = Arc::new(Notify::new());
    for _ in 0..20 {
        hanging.then(Reply {
            hold: Some(release.clone()),
            ..Reply::status(200)
        });
    }
    let healthy = Receiver::start().await;
    app.webhook_to(&hanging, json!({})).await;
    app.webhook_to(&healthy, json!({})).await;
    for i in 0..20 {
        app.publish(contact(&format!("c{i}"))).await;
    }
    // Every healthy delivery arrives while the hanging endpoint still holds all its requests...
    healthy.wait_for(20).await;
    // ...and the hanging one never had more than its concurrency cap in flight.
    assert!(
        hanging.received().len() <= 2,
        "{}",
        hanging.received().len()
    );
    release.notify_waiters();
}

#[tokio::test]
async fn a_node_that_dies_mid_backlog_loses_nothing() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.webhook_to(&rx, json!({})).await;
    let mut ids = std::collections::HashSet::new();
    for i in 0..30 {
        ids.insert(first_delivery(
            &app.publish(contact(&format!("c{i}"))).await,
        ));
    }
    // A node claims everything and dies before sending anything.
    let claim = app
        .hookline
        .store
        .claim_due(hookline_store::ClaimRequest {
            lease: std::time::Duration::from_secs(60),
            limit: 1000,
            per_webhook: 1000,
            per_tenant: usize::MAX,
            busy: Default::default(),
            busy_tenants: Default::default(),
            known_events: Default::default(),
            round: 0,
            default_max_attempts: app.hookline.config.retry_schedule.max_attempts(),
        })
        .await
        .unwrap();
    assert_eq!(claim.deliveries.len(), 30);
    // A restarted node (same database) waits for the leases, then delivers every one.
    let config = app.hookline.config.as_ref().clone();
    let restarted = hookline_server::App::build(config).await.unwrap();
    assert_eq!(
        restarted.dispatcher.run_once().await.unwrap(),
        0,
        "leases still held"
    );
    app.hookline
        .store
        .travel(std::time::Duration::from_secs(61))
        .await
        .unwrap();
    while restarted.dispatcher.run_once().await.unwrap() > 0 {}
    let got: std::collections::HashSet<_> = rx
        .received()
        .iter()
        .map(|r| r.header("x-hookline-delivery-id").to_string())
        .collect();
    assert_eq!(got, ids);
    // The dead node's late results change nothing.
    let stale: Vec<_> = claim
        .deliveries
        .iter()
        .map(|d| hookline_store::AttemptResult {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            lease_token: d.lease_token,
            attempt: hookline_store::Attempt {
                id: hookline_core::ids::AttemptId::new(),
                delivery_id: d.id,
                attempt_number: 1,
                started_at: time::now(),
                url: "x".into(),
                status_code: Some(500),
                error_kind: None,
                error_message: None,
                dns_ms: None,
                connect_ms: None,
                tls_ms: None,
                ttfb_ms: None,
                total_ms: 1.0,
                request_headers: vec![],
                response_headers: vec![],
                response_body: None,
                response_truncated: false,
            },
            next: hookline_store::NextState::Failed,
        })
        .collect();
    let applied = app
        .hookline
        .store
        .record_attempts(stale, Default::default())
        .await
        .unwrap();
    assert!(applied.iter().all(|a| !a));
    let (_, log) = app
        .call(
            Method::GET,
            "/v1/deliveries?status=delivered&limit=100",
            None,
        )
        .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_sends_and_records_them() {
    let app = spawn_app_with_worker(&local_receivers()).await;
    let rx = Receiver::start().await;
    let release = Arc::new(Notify::new());
    rx.then(Reply {
        hold: Some(release.clone()),
        ..Reply::status(200)
    });
    app.webhook_to(&rx, json!({})).await;
    let id = first_delivery(&app.publish(contact("c")).await);
    rx.wait_for(1).await;
    // Shut down while the request is in flight, then let the receiver answer.
    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_waiters();
    let tenant = app.hookline.authenticate(&app.key).await.unwrap().tenant_id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (d, _) = app
            .hookline
            .store
            .get_delivery(tenant, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        if d.status == hookline_store::DeliveryStatus::Delivered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "in-flight delivery was not recorded: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_deliveries_and_attempts() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.webhook_to(&rx, json!({})).await;
    app.publish(contact("c")).await;
    app.publish(contact("d")).await;
    app.drain().await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hookline_deliveries{status=\"delivered\"} 2"),
        "{text}"
    );
    assert!(text.contains("hookline_attempts_total 2"), "{text}");
    assert!(text.contains("hookline_delivered_total 2"), "{text}");
}

#[tokio::test]
async fn the_bundled_receiver_accepts_good_signatures_and_rejects_bad_ones() {
    use hookline_server::receiver::{run, ReceiverOptions, ReceiverStats};
    let app = spawn_app_with(&local_receivers()).await;
    let mut stats = Vec::new();
    let mut urls = Vec::new();
    for secret in ["right-secret", "wrong-secret"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}/in", listener.local_addr().unwrap()));
        let s = Arc::new(ReceiverStats::default());
        stats.push(s.clone());
        let opts = ReceiverOptions {
            secret: Some(secret.into()),
            quiet: true,
            allow_hex_only: false,
        };
        tokio::spawn(run(listener, opts, s, app.shutdown.clone()));
    }
    let good = app
        .create(json!({"url": urls[0], "events": ["*"], "secret": "right-secret"}))
        .await;
    let bad = app
        .create(json!({"url": urls[1], "events": ["*"], "secret": "right-secret"}))
        .await;
    app.publish(contact("c")).await;
    app.drain().await;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (
            stats[0].verified.load(Relaxed),
            stats[0].rejected.load(Relaxed)
        ),
        (1, 0)
    );
    assert_eq!(
        (
            stats[1].verified.load(Relaxed),
            stats[1].rejected.load(Relaxed)
        ),
        (0, 1)
    );
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={}", bad["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["last_status_code"], 401);
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={}", good["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["status"], "delivered");
}

#[tokio::test]
async fn a_format_change_does_not_reshape_deliveries_already_made() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(503));
    let w = app
        .webhook_to(&rx, json!({"retry_schedule": ["10s"]}))
        .await;
    // A batch of three in the envelope format: one delivery carrying all three.
    app.publish(
        json!({"event_type": "contact.created", "data": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}),
    )
    .await;
    app.drain().await;
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", w["id"].as_str().unwrap()),
            Some(json!({"format": "flat"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The retry still carries the whole batch, as the envelope it was made as.
    assert_eq!(app.run_later(11).await, 1);
    let retry = rx.received()[1].json();
    assert_eq!(retry["data"]["event_type"], "contacts.created");
    assert_eq!(retry["data"]["contacts"].as_array().unwrap().len(), 3);
    // New events follow the new format: one delivery per object.
    let p = app
        .publish(json!({"event_type": "contact.created", "data": [{"id": "d"}, {"id": "e"}]}))
        .await;
    assert_eq!(p["delivery_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn metrics_expose_attempt_and_latency_histograms_and_the_backlog() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply::status(500));
    app.webhook_to(&rx, json!({})).await;
    app.publish(contact("c")).await;
    app.publish(contact("d")).await;
    app.drain().await;
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    // Every sample line parses as `name{labels} value`.
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_string(), value);
    }
    let get = |k: &str| {
        *samples
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    assert_eq!(
        get("hookline_attempt_duration_seconds_count{outcome=\"delivered\"}"),
        1.0
    );
    assert_eq!(
        get("hookline_attempt_duration_seconds_count{outcome=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        get("hookline_attempt_duration_seconds_bucket{le=\"+Inf\",outcome=\"rejected\"}"),
        1.0
    );
    assert_eq!(get("hookline_first_attempt_latency_seconds_count"), 2.0);
    assert!(get("hookline_first_attempt_latency_seconds_sum") >= 0.0);
    assert_eq!(get("hookline_in_flight"), 0.0);
    // The 500 left one delivery retrying, due later: queued, but nothing overdue yet.
    assert_eq!(get("hookline_deliveries{status=\"retrying\"}"), 1.0);
    assert_eq!(get("hookline_deliveries{status=\"delivered\"}"), 1.0);
    assert_eq!(get("hookline_backlog_oldest_due_age_seconds"), 0.0);
}

#[tokio::test]
async fn on_shutdown_claimed_but_unsent_deliveries_are_released_at_once() {
    let app = spawn_app_with_worker(&local_receivers()).await;
    let rx = Receiver::start().await;
    // One delivery a second: the first goes out, the other two wait in the dispatcher.
    let hook = app.webhook_to(&rx, json!({"rate_limit": 1})).await;
    let mut ids = Vec::new();
    for c in ["a", "b", "c"] {
        ids.push(
            app.publish(contact(c)).await["delivery_ids"][0]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    rx.wait_for(1).await;
    let tenant = app
        .hookline
        .principal_for_tenant("default")
        .await
        .unwrap()
        .tenant_id;
    // Wait until all three are claimed (one delivered, two leased and waiting).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = |id: &str| {
        let store = app.hookline.store.clone();
        let id = id.parse().unwrap();
        async move {
            store
                .get_delivery(tenant, id)
                .await
                .unwrap()
                .unwrap()
                .0
                .status
        }
    };
    loop {
        let mut leased = 0;
        for id in &ids {
            if status(id).await == hookline_store::DeliveryStatus::Delivering {
                leased += 1;
            }
        }
        if leased == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.shutdown.cancel();
    // Released: pending again at once, not leased until the lease runs out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut pending = 0;
        for id in &ids {
            if status(id).await == hookline_store::DeliveryStatus::Pending {
                pending += 1;
            }
        }
        if pending == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rx.received().len(), 1, "nothing more was sent");
    assert!(hook["id"].is_string());
}

#[tokio::test]
async fn header_values_are_masked_after_creation_and_a_mask_sent_back_keeps_the_stored_value() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app
        .webhook_to(
            &rx,
            json!({"headers": {"Authorization": "Bearer receiver-token", "X-Tenant": "42"}}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let secret = w["secret"].as_str().unwrap().to_string();
    let masked = json!({"Authorization": "Bear…en", "X-Tenant": "••••••••"});
    assert_eq!(w["headers"], masked);
    let path = format!("/v1/webhooks/{id}");
    let (_, got) = app.call(Method::GET, &path, None).await;
    assert_eq!(got["headers"], masked);
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"][0]["headers"], masked);

    // An edit that sends back what it read keeps that value (names compare case-insensitively);
    // a new value replaces the stored one.
    let (s, u) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "renamed", "headers": {"authorization": "Bear…en", "X-Tenant": "43"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        u["headers"],
        json!({"authorization": "Bear…en", "X-Tenant": "••••••••"})
    );
    // An update without headers leaves them alone.
    let (s, _) = app
        .call(Method::PATCH, &path, Some(json!({"rate_limit": 10})))
        .await;
    assert_eq!(s, StatusCode::OK);
    // A mask that stands for no stored value is refused, never stored as a value.
    let (s, e) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"X-Other": "Bear…en"}})),
        )
        .await;
    assert_error(
        s,
        &e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_header",
        Some("headers.X-Other"),
        "a mask of nothing",
    );

    // Deliveries carry the real values, and the log shows them no more than the API does.
    let p = app.publish(contact("c1")).await;
    assert_eq!(app.drain().await, 1);
    let got = rx.received();
    assert_eq!(got[0].header("authorization"), "Bearer receiver-token");
    assert_eq!(got[0].header("x-tenant"), "43");
    let d = app.delivery(&first_delivery(&p)).await;
    let logged = &d["attempts"][0]["request_headers"];
    assert_eq!(logged["authorization"], "<redacted>");
    assert_eq!(logged["X-Tenant"], "••••••••");
    hookline_verify::verify_hex(&secret, &got[0].body, got[0].header("x-webhook-signature"))
        .unwrap();

    // The database holds neither the header's credential nor the secret in clear (the SQLite file
    // as it is on disk; the store suite checks PostgreSQL's tables).
    if app._db.is_none() {
        let stored: String = ["test.db", "test.db-wal"]
            .iter()
            .filter_map(|f| std::fs::read(app.dir.path().join(f)).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect();
        assert!(stored.contains("renamed"), "the file holds the webhook row");
        assert!(!stored.contains("receiver-token"), "header value in clear");
        assert!(!stored.contains(&secret), "secret in clear");
    }
}

impl TestApp {
    /// `PATCH /v1/webhooks/{id}` with `enabled`.
    async fn set_enabled(&self, webhook: &str, enabled: bool) {
        let (s, v) = self
            .call(
                Method::PATCH,
                &format!("/v1/webhooks/{webhook}"),
                Some(json!({"enabled": enabled})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// `(status, cancel_reason)` of each delivery, in the order given.
    async fn states(&self, ids: &[String]) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        for id in ids {
            let d = self.delivery(id).await;
            out.push((d["status"].clone(), d["cancel_reason"].clone()));
        }
        out
    }
}

fn delivery_ids(published: &Value) -> Vec<String> {
    published["delivery_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn deleting_a_webhook_cancels_its_queue_and_keeps_its_log_readable() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app.webhook_to(&rx, json!({})).await;
    let wid = w["id"].as_str().unwrap().to_string();
    let sent = first_delivery(&app.publish(contact("c0")).await);
    assert_eq!(app.drain().await, 1);
    let mut queued = Vec::new();
    for i in 1..3 {
        queued.extend(delivery_ids(&app.publish(contact(&format!("c{i}"))).await));
    }
    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .call(Method::GET, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "get after delete",
    );
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]), "{list}");
    let (s, v) = app
        .call(Method::DELETE, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "delete again",
    );

    // Nothing more is sent; the queue ends cancelled; the log stays readable.
    assert_eq!(app.drain().await, 0);
    assert_eq!(rx.received().len(), 1);
    let cancelled = (json!("cancelled"), json!("webhook_deleted"));
    assert_eq!(
        app.states(&queued).await,
        [cancelled.clone(), cancelled.clone()]
    );
    let d = app.delivery(&sent).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["cancel_reason"], Value::Null);
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    let (s, log) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries?webhook_id={wid}&status=cancelled"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["data"].as_array().unwrap().len(), 2, "{log}");
    // A resend of its log has nowhere to go.
    let (s, v) = app
        .call(Method::POST, &format!("/v1/deliveries/{sent}/resend"), None)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::CONFLICT,
        "webhook_deleted",
        None,
        "resend",
    );
    // New events don't reach it.
    assert_eq!(
        app.publish(contact("after")).await["delivery_ids"],
        json!([])
    );
}

#[tokio::test]
async fn disabling_a_webhook_cancels_its_queue_and_enabling_does_not_bring_it_back() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let w = app.webhook_to(&rx, json!({})).await;
    let wid = w["id"].as_str().unwrap().to_string();
    let since = time::format(&(time::now() - chrono::Duration::minutes(1)));
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.extend(delivery_ids(&app.publish(contact(&format!("c{i}"))).await));
    }
    app.set_enabled(&wid, false).await;
    let cancelled = (json!("cancelled"), json!("webhook_disabled"));
    assert_eq!(
        app.states(&ids).await,
        [cancelled.clone(), cancelled.clone()]
    );
    app.set_enabled(&wid, true).await;
    assert_eq!(app.drain().await, 0);
    assert!(rx.received().is_empty());
    assert_eq!(app.states(&ids).await, [cancelled.clone(), cancelled]);
    // Replaying what was cancelled sends it after all.
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{wid}/replay"),
            Some(json!({"since": since, "status": ["cancelled"]})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    app.run_jobs().await;
    assert_eq!(app.drain().await, 2);
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn a_webhook_disabled_or_deleted_after_the_claim_gets_no_request() {
    for delete in [false, true] {
        let app = spawn_app_with(&local_receivers()).await;
        let rx = Receiver::start().await;
        let w = app.webhook_to(&rx, json!({})).await;
        let wid = w["id"].as_str().unwrap().to_string();
        let ids = delivery_ids(&app.publish(contact("c1")).await);
        // Claimed while enabled; disabled or deleted before the send, which starts more than the
        // second the claim's own check is trusted for (as after a rate limit's wait).
        let between = async {
            if delete {
                let (s, _) = app
                    .call(Method::DELETE, &format!("/v1/webhooks/{wid}"), None)
                    .await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            } else {
                app.set_enabled(&wid, false).await;
            }
            tokio::time::sleep(Duration::from_millis(1100)).await;
        };
        let claimed = app.dispatcher.run_once_between(between).await.unwrap();
        assert_eq!(claimed, 1);
        assert!(rx.received().is_empty(), "delete={delete}");
        let reason = if delete {
            "webhook_deleted"
        } else {
            "webhook_disabled"
        };
        assert_eq!(
            app.states(&ids).await,
            [(json!("cancelled"), json!(reason))]
        );
        assert!(app.delivery(&ids[0]).await["attempts"]
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(app.drain().await, 0);
    }
}

#[tokio::test]
async fn cancel_ends_a_queued_delivery_and_refuses_one_that_is_not() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.webhook_to(&rx, json!({})).await;
    let done = first_delivery(&app.publish(contact("c0")).await);
    assert_eq!(app.drain().await, 1);
    let queued = first_delivery(&app.publish(contact("c1")).await);
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{queued}/cancel"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["cancel_reason"], "manual");
    assert_eq!(v["next_attempt_at"], Value::Null);
    assert_eq!(app.drain().await, 0);
    assert_eq!(rx.received().len(), 1);
    for (id, status) in [(&queued, "cancelled"), (&done, "delivered")] {
        let (s, v) = app
            .call(Method::POST, &format!("/v1/deliveries/{id}/cancel"), None)
            .await;
        assert_error(s, &v, StatusCode::CONFLICT, "not_cancellable", None, status);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(status),
            "{v}"
        );
    }
    let unknown = uuid::Uuid::now_v7();
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{unknown}/cancel"),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", None, "unknown");
    let (s, v) = app
        .call(Method::POST, "/v1/deliveries/not-a-uuid/cancel", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{queued}/cancel?force=1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no query parameters: {v}");
    // The log filters on the new status.
    let (_, log) = app
        .call(Method::GET, "/v1/deliveries?status=cancelled", None)
        .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
}
