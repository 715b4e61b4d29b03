//! `hookline listen` sessions in process (the CLI's end to end test is in the CLI crate): refusals,
//! and the housekeeping that deletes the webhook of a session whose node is gone.

use super::*;

#[tokio::test]
async fn a_session_whose_node_is_gone_loses_its_webhook_and_a_held_one_keeps_it() {
    let app = spawn_app().await;
    let who = app.hookline.authenticate(&app.key).await.unwrap();
    let held = app
        .hookline
        .open_listen(&who, vec!["contact.*".into()], None)
        .await
        .unwrap();
    let gone = app
        .hookline
        .open_listen(&who, vec!["*".into()], Some("flat".into()))
        .await
        .unwrap();
    assert!(held.start.webhook.url.starts_with("listen:ls_"));
    assert!(held
        .start
        .webhook
        .secret
        .as_deref()
        .is_some_and(|s| s.starts_with("whsec_")));
    let (_, hooks) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 2);

    // The second session's node dies: no guard runs, the session is no longer held anywhere.
    let gone_session = gone.start.session.clone();
    std::mem::forget(gone.guard);
    app.hookline.sender.listens().close(&gone_session);
    // With any heartbeat counted stale, only the webhook of the session nobody holds goes.
    let deleted = app
        .hookline
        .sweep_listen_sessions(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (_, hooks) = app.call(Method::GET, "/v1/webhooks", None).await;
    let left: Vec<&Value> = hooks["data"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "{hooks}");
    assert_eq!(left[0]["id"], json!(held.start.webhook.id));
    // A fresh heartbeat keeps a session's webhook from an ordinary sweep.
    assert_eq!(
        app.hookline
            .sweep_listen_sessions(hookline_server::service::LISTEN_STALE)
            .await
            .unwrap(),
        0
    );

    // Ending the held session deletes its webhook too.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, hooks) = app.call(Method::GET, "/v1/webhooks", None).await;
        if hooks["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{hooks}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn listen_requests_are_checked() {
    let app = spawn_app().await;
    // A read key can't open a session; an unknown event or format is refused with its field.
    let (_, created) = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "reader", "scope": "read"})),
        )
        .await;
    let read = created["key"].as_str().unwrap().to_string();
    let (s, v) = app
        .call_as(&read, Method::GET, "/v1/listen?events=contact.*", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let resp = app
        .client
        .get(format!("{}/v1/listen?events=nope.nothing", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["field"], "events[0]", "{v}");
    let resp = app
        .client
        .get(format!("{}/v1/listen?format=xml", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A report for a session this node doesn't hold.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/listen/ls_nothing/reports",
            Some(json!({"id": "x", "status": 200})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // Nothing was left behind by the refusals.
    let (_, hooks) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert!(hooks["data"].as_array().unwrap().is_empty(), "{hooks}");
}
