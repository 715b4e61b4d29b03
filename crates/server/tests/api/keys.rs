//! `/v1/api-keys`: the lifecycle of API keys (list, create shown once, revoke), what a `read` key
//! may do, the last full key, expiry, and revocation seen at once by a second node on the same
//! database (PostgreSQL under `HOOKLINE_TEST_STORE=postgres`, the same SQLite file otherwise).

use super::*;
use hookline_core::api_key::KeyScope;
use hookline_core::ids::ApiKeyId;

async fn create_key(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, v) = app
        .call_as(key, Method::POST, "/v1/api-keys", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn list_keys(app: &TestApp, key: &str) -> Vec<Value> {
    let (s, v) = app.call_as(key, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["next_cursor"].is_null());
    v["data"].as_array().unwrap().clone()
}

/// The id of the bootstrap key the app was started with.
async fn own_id(app: &TestApp) -> String {
    let keys = list_keys(app, &app.key).await;
    let me: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(me.len(), 1, "{keys:?}");
    me[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn keys_are_listed_created_once_and_revoked() {
    let app = spawn_app().await;
    // The bootstrap key, as the only one: its prefix, full scope, in use by this very request.
    let keys = list_keys(&app, &app.key).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let boot = &keys[0];
    assert_eq!(boot["name"], "bootstrap");
    assert_eq!(boot["prefix"], &app.key[..11]);
    assert_eq!(boot["scope"], "full");
    assert_eq!(boot["status"], "active");
    assert_eq!(boot["current"], true);
    assert!(boot["expires_at"].is_null() && boot["revoked_at"].is_null());
    assert!(boot["last_used_at"].is_string(), "{boot}");
    assert!(boot.get("key").is_none() && boot.get("key_hash").is_none());

    let created = create_key(
        &app,
        &app.key,
        json!({"name": "  CI deploys ", "scope": "read", "expires_in": "30d"}),
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hk_") && secret.len() == 46, "{created}");
    assert_eq!(created["name"], "CI deploys");
    assert_eq!(created["prefix"], &secret[..11]);
    assert_eq!(created["scope"], "read");
    assert_eq!(created["status"], "active");
    assert_eq!(created["current"], false);
    assert!(created["last_used_at"].is_null());
    let created_at = hookline_core::time::parse(created["created_at"].as_str().unwrap()).unwrap();
    let expires_at = hookline_core::time::parse(created["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at - created_at, chrono::Duration::days(30));
    let id = created["id"].as_str().unwrap().to_string();

    // Listed newest first, and never again with the key itself.
    let (_, raw) = app.call(Method::GET, "/v1/api-keys", None).await;
    assert!(!raw.to_string().contains(&secret));
    let keys = raw["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], id.as_str());

    // The new key works, and its use is recorded.
    let (s, _) = app
        .call_as(&secret, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let keys = list_keys(&app, &app.key).await;
    assert!(keys[0]["last_used_at"].is_string(), "{keys:?}");

    // Revoked: the answer says so, and the key is refused from the next request on.
    let (s, revoked) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    let (s, body) = app
        .call_as(&secret, Method::GET, "/v1/webhooks", None)
        .await;
    assert_error(
        s,
        &body,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
        "revoked",
    );
    // Still listed, as revoked; revoking again changes nothing.
    let keys = list_keys(&app, &app.key).await;
    assert_eq!(keys[0]["status"], "revoked");
    let (s, again) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // Unknown, malformed and other tenants' ids.
    let (s, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_error(
        s,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "unknown",
    );
    let (s, body) = app.call(Method::DELETE, "/v1/api-keys/nope", None).await;
    assert_error(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some("id"),
        "malformed",
    );
    let other = app.other_tenant_key("other").await;
    let theirs = list_keys(&app, &other).await;
    assert_eq!(theirs.len(), 1, "another tenant sees only its own keys");
    let (s, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", theirs[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found", None, "theirs");
    let (s, _) = app.call_as(&other, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn new_keys_are_validated() {
    let app = spawn_app().await;
    // Control characters get the code of the deployment's one rule for them (`*`: only the status
    // and the field are checked).
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            Some("name"),
        ),
        (
            json!({"name": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            Some("name"),
        ),
        (
            json!({"name": "a\u{7}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "*",
            Some("name"),
        ),
        (
            json!({"name": "a\nb"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "*",
            Some("name"),
        ),
        (
            json!({"name": "x".repeat(201)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
            Some("name"),
        ),
        (
            json!({"name": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            Some("name"),
        ),
        (
            json!({"name": "ci", "scope": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("scope"),
        ),
        (
            json!({"name": "ci", "expires_at": "2020-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("expires_at"),
        ),
        (
            json!({"name": "ci", "expires_at": "next week"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("expires_at"),
        ),
        (
            json!({"name": "ci", "expires_in": "0s"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("expires_in"),
        ),
        (
            json!({"name": "ci", "expires_in": "99999999999999999999d"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("expires_in"),
        ),
        (
            json!({"name": "ci", "expires_in": "1d", "expires_at": "2099-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("expires_in"),
        ),
        (
            json!({"name": "ci", "secret": "hk_mine"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            Some("secret"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, v) = app
            .call(Method::POST, "/v1/api-keys", Some(body.clone()))
            .await;
        let code = match code {
            "*" => v["error"]["code"].as_str().unwrap_or("?"),
            code => code,
        };
        assert_error(s, &v, status, code, field, &body.to_string());
    }
    let (s, v) = app
        .raw(Method::POST, "/v1/api-keys", Some("text/plain"), "name=ci")
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (s, v) = app
        .raw(Method::POST, "/v1/api-keys", Some("application/json"), "{")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Nothing was stored.
    assert_eq!(list_keys(&app, &app.key).await.len(), 1);
}

#[tokio::test]
async fn a_read_key_may_only_read() {
    let app = spawn_app().await;
    let w = app.create(hook("https://hooks.example.com/a")).await;
    let wid = w["id"].as_str().unwrap();
    let read = create_key(
        &app,
        &app.key,
        json!({"name": "dashboard", "scope": "read"}),
    )
    .await;
    let read = read["key"].as_str().unwrap();

    for path in [
        "/v1/webhooks".to_string(),
        format!("/v1/webhooks/{wid}"),
        "/v1/deliveries".into(),
        "/v1/events".into(),
        "/v1/event-types".into(),
        "/v1/contacts".into(),
        "/v1/api-keys".into(),
    ] {
        let (s, v) = app.call_as(read, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    }

    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/webhooks".into(),
            Some(hook("https://hooks.example.com/b")),
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/{wid}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{wid}"), None),
        // A GET, but a secret: it would let its holder sign deliveries.
        (Method::GET, format!("/v1/webhooks/{wid}/secret"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{wid}/rotate-secret"),
            Some(json!({})),
        ),
        (Method::POST, format!("/v1/webhooks/{wid}/test"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{wid}/replay"),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!({"event_type": "contact.created", "data": {"id": "c1"}})),
        ),
        (
            Method::POST,
            "/v1/contacts".into(),
            Some(json!({"id": "c1", "first_name": "Ada"})),
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "escalate"})),
        ),
        (
            Method::DELETE,
            format!("/v1/api-keys/{}", own_id(&app).await),
            None,
        ),
        (Method::POST, "/v1/portal-sessions".into(), Some(json!({}))),
        (Method::DELETE, "/v1/portal-sessions".into(), None),
    ];
    for (method, path, body) in refused {
        let (s, v) = app.call_as(read, method.clone(), &path, body).await;
        assert_error(
            s,
            &v,
            StatusCode::FORBIDDEN,
            "forbidden",
            None,
            &format!("{method} {path}"),
        );
    }
    // Nothing changed.
    let (_, got) = app
        .call(Method::GET, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_eq!(got["enabled"], true);
    let (_, secret) = app
        .call(Method::GET, &format!("/v1/webhooks/{wid}/secret"), None)
        .await;
    assert_eq!(secret["secret"], w["secret"], "not rotated");
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"], json!([]));
    assert_eq!(list_keys(&app, &app.key).await.len(), 2);
}

/// Every operation but a GET, as the OpenAPI document lists them, called with a read key: none
/// succeeds, and each that gets as far as the service is refused for the scope (the rest stop at
/// their own input first: a missing body, an unknown id).
#[tokio::test]
async fn no_changing_operation_succeeds_with_a_read_key() {
    let app = spawn_app().await;
    let w = app.create(hook("https://hooks.example.com/a")).await;
    let wid = w["id"].as_str().unwrap().to_string();
    let read = create_key(&app, &app.key, json!({"name": "r", "scope": "read"})).await;
    let read = read["key"].as_str().unwrap().to_string();
    let (_, doc) = app.call(Method::GET, "/v1/openapi.json", None).await;
    let mut forbidden = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["post", "put", "patch", "delete"] {
            if item.get(m).is_none() {
                continue;
            }
            let path = path.replace("{id}", &wid);
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let (s, v) = app.call_as(&read, method, &path, Some(json!({}))).await;
            assert!(
                s.is_client_error() && s != StatusCode::UNAUTHORIZED,
                "{m} {path}: {s} {v}"
            );
            if s == StatusCode::FORBIDDEN {
                forbidden += 1;
            }
        }
    }
    assert!(
        forbidden >= 20,
        "only {forbidden} operations were refused for the scope"
    );
    let (_, got) = app
        .call(Method::GET, &format!("/v1/webhooks/{wid}"), None)
        .await;
    assert_eq!(got["name"], w["name"]);
}

#[tokio::test]
async fn the_last_active_full_key_cant_be_revoked() {
    let app = spawn_app().await;
    let me = own_id(&app).await;
    // A read key and an expired full key don't count.
    create_key(&app, &app.key, json!({"name": "r", "scope": "read"})).await;
    let expired = hookline_core::signing::generate_api_key();
    let tenant = app.hookline.principal_for_tenant("default").await.unwrap();
    app.hookline
        .store
        .insert_api_key(&hookline_store::ApiKey {
            id: ApiKeyId::new(),
            tenant_id: tenant.tenant_id,
            name: "old".into(),
            prefix: expired.prefix.clone(),
            key_hash: expired.hash.clone(),
            default_user_id: None,
            created_at: hookline_core::time::now() - chrono::Duration::days(2),
            scope: KeyScope::Full,
            expires_at: Some(hookline_core::time::now() - chrono::Duration::days(1)),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let (s, body) = app
        .call_as(&expired.plaintext, Method::GET, "/v1/webhooks", None)
        .await;
    assert_error(
        s,
        &body,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
        "expired",
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let statuses: Vec<Value> = list_keys(&app, &app.key)
        .await
        .iter()
        .map(|k| k["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("expired"), json!("active"), json!("active")]
    );

    let (s, body) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{me}"), None)
        .await;
    assert_error(
        s,
        &body,
        StatusCode::CONFLICT,
        "last_full_key",
        None,
        "alone",
    );
    let (s, _) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK, "still works");

    // With a second full key, a key may revoke itself; then the other is the last one.
    let second = create_key(&app, &app.key, json!({"name": "second"})).await;
    let second_key = second["key"].as_str().unwrap();
    let (s, v) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{me}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["current"], true);
    let (s, _) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = app
        .call_as(
            second_key,
            Method::DELETE,
            &format!("/v1/api-keys/{}", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_error(
        s,
        &body,
        StatusCode::CONFLICT,
        "last_full_key",
        None,
        "second",
    );
}

/// A second node serving the same database as `app` (the same PostgreSQL database, or the same
/// SQLite file) with the same configuration, the API only.
async fn second_node(app: &TestApp) -> (String, CancellationToken) {
    let config = (*app.hookline.config).clone();
    let node = hookline_server::App::build(config).await.unwrap();
    assert!(node.hookline.bootstrap().await.unwrap().is_none());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(node.serve(
        listener,
        shutdown.clone(),
        hookline_server::Roles {
            api: true,
            worker: false,
        },
    ));
    (base, shutdown)
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_by_the_next_request_on_another() {
    let app = spawn_app().await;
    let (b, stop_b) = second_node(&app).await;
    let created = create_key(&app, &app.key, json!({"name": "travels"})).await;
    let key = created["key"].as_str().unwrap();
    let on_b = |key: &str| {
        app.client
            .get(format!("{b}/v1/webhooks"))
            .bearer_auth(key)
            .send()
    };
    // Node B has accepted the key (so a node that cached positive answers would now hold it).
    for _ in 0..3 {
        assert_eq!(on_b(key).await.unwrap().status(), StatusCode::OK);
    }
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let resp = on_b(key).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // Node B's own keys are unaffected.
    assert_eq!(on_b(&app.key).await.unwrap().status(), StatusCode::OK);
    stop_b.cancel();
}
