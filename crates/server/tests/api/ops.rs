//! The operator's endpoints: `/healthz` and `/readyz` say nothing but their status, and `/metrics`
//! needs the `metrics_token` when one is configured (on API nodes and worker-only nodes alike).

use super::*;

const TOKEN: &str = "scrape-me-0123456789abcdef";

async fn get(app: &TestApp, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn probes_answer_with_their_status_and_nothing_else() {
    // A token on /metrics changes nothing for the probes: load balancers have no token.
    let app = spawn_app_with(&[("metrics_token", TOKEN.to_string())]).await;
    let r = get(&app, "/healthz", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = get(&app, "/readyz", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
}

#[tokio::test]
async fn an_unready_node_answers_503_without_saying_why() {
    // The database vanishes under a running node; only PostgreSQL lets a test do that.
    let Some(db) = hookline_store::testing::TestDatabase::create().await else {
        return;
    };
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let app = spawn_app_with(&[
        ("database_url", db.url.clone()),
        ("encryption_key", test_encryption_key()),
    ])
    .await;
    assert_eq!(get(&app, "/readyz", None).await.status(), 200);
    drop(db); // DROP DATABASE … WITH (FORCE): the node's connections are cut.
    let r = get(&app, "/readyz", None).await;
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"status": "unavailable"})
    );
    assert!(!text.contains(&name), "{text}");
    // Liveness is not readiness: the process is still up.
    assert_eq!(get(&app, "/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn metrics_need_the_configured_bearer_token() {
    let app = spawn_app_with(&[("metrics_token", TOKEN.to_string())]).await;
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789abcdef".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        // An API key is not the metrics token.
        Some(format!("Bearer {}", app.key)),
    ] {
        let r = get(&app, "/metrics", authorization.as_deref()).await;
        assert_eq!(r.status(), 401, "{authorization:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert!(
            !body.to_string().contains(TOKEN),
            "the answer repeats the token: {body}"
        );
    }
    for authorization in [format!("Bearer {TOKEN}"), format!("bearer {TOKEN}")] {
        let r = get(&app, "/metrics", Some(&authorization)).await;
        assert_eq!(r.status(), 200, "{authorization}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        assert!(r.text().await.unwrap().contains("hookline_attempts_total"));
    }
}

#[tokio::test]
async fn a_worker_only_node_guards_its_metrics_too() {
    let app = spawn(
        &[("metrics_token", TOKEN.to_string())],
        hookline_server::Roles {
            api: false,
            worker: true,
        },
    )
    .await;
    assert_eq!(get(&app, "/metrics", None).await.status(), 401);
    let r = get(&app, "/metrics", Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&app, "/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn without_a_token_metrics_are_open() {
    let app = spawn_app().await;
    let r = get(&app, "/metrics", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("hookline_attempts_total"));
}

/// Each stage of a delivery has its histogram, the publish's own commit included, so a stall can
/// be placed: in the publish's transaction, the claim, the queue or the send (the record stage is
/// the background result writer's, which `drain` doesn't use).
#[tokio::test]
async fn metrics_time_every_stage_of_a_delivery() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    app.create(json!({"url": rx.url, "events": ["contact.*"]}))
        .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": {"id": "c1"}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    app.dispatcher.drain().await.unwrap();
    let text = get(&app, "/metrics", None).await.text().await.unwrap();
    for stage in ["commit", "claim", "queue", "send"] {
        let line = format!("hookline_delivery_stage_seconds_count{{stage=\"{stage}\"}} 1");
        assert!(text.contains(&line), "no `{line}` in\n{text}");
    }
    // One claim leased the one delivery (the drain's last, empty claim doesn't count).
    for line in ["hookline_claims_total 1", "hookline_claimed_total 1"] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
}
