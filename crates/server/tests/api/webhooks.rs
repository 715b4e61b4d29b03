//! Webhook management: CRUD, validation, secrets, tenants, catalog, OpenAPI.

use super::*;

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn bootstrap_happens_once() {
    let app = spawn_app().await;
    assert!(app.key.starts_with("hk_"));
    assert_eq!(app.hookline.bootstrap().await.unwrap(), None);
}

#[tokio::test]
async fn every_v1_route_needs_a_valid_bearer_key() {
    let app = spawn_app().await;
    let id = app.create(hook("https://example.com/h")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let routes = [
        (Method::GET, "/v1/webhooks".to_string()),
        (Method::POST, "/v1/webhooks".to_string()),
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::PATCH, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::GET, format!("/v1/webhooks/{id}/secret")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::GET, "/v1/event-types".to_string()),
        // `/v1/openapi.json` is public: it describes the API and holds no tenant data
        // (openapi::the_document_needs_no_key).
    ];
    for (method, path) in routes {
        for auth in [
            None,
            Some("Bearer hk_wrongwrongwrongwrongwrongwrongwrongwrongwrong"),
            Some("Bearer nope"),
            Some("Basic Zm9vOmJhcg=="),
            Some("Bearer"),
            Some(app.key.as_str()),
        ] {
            if auth == Some(app.key.as_str()) {
                continue; // the owner's key is exercised by the other tests
            }
            let mut req = app
                .client
                .request(method.clone(), format!("{}{path}", app.base));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                None,
                &format!("{method} {path} {auth:?}"),
            );
        }
    }
    // Nothing was deleted by the unauthenticated DELETE.
    let (s, _) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn create_returns_the_webhook_with_a_generated_secret_and_defaults() {
    let app = spawn_app().await;
    let v = app.create(json!({"url": "https://hooks.example.com/crm", "events": ["contacts.created", "ContactUpdated", "deal.*"]})).await;
    assert_eq!(v["url"], "https://hooks.example.com/crm");
    assert_eq!(v["name"], "hooks.example.com");
    assert_eq!(
        v["events"],
        json!(["contact.created", "contact.updated", "deal.*"])
    );
    assert_eq!(v["enabled"], true);
    assert_eq!(v["format"], "envelope");
    assert_eq!(v["ordering"], "none");
    assert_eq!(v["retry_schedule"], Value::Null);
    assert_eq!(v["rate_limit"], Value::Null);
    assert_eq!(v["headers"], json!({}));
    let secret = v["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );

    // The secret is shown on create and by /secret, never by get or list.
    let id = v["id"].as_str().unwrap();
    let (_, got) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert!(got.get("secret").is_none(), "{got}");
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert!(list["data"][0].get("secret").is_none());
    let (s, sec) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sec["secret"], secret);
}

#[tokio::test]
async fn create_accepts_every_documented_field_and_every_spelling() {
    let app = spawn_app().await;
    let v = app
        .create(json!({
            "name": "My Integration",
            "description": "sync to warehouse",
            "url": "https://example.com/webhooks",
            "events": ["contact.created", "deal.stage.changed", "zoom.recording.completed"],
            "secret": "your-hmac-secret",
            "is_active": false,
            "format": "flat",
            "headers": {"Authorization": "Bearer abc", "X-Tenant": "42"},
            "retry_schedule": ["30s", 120, "2h"],
            "rate_limit": 25,
            "ordering": "entity"
        }))
        .await;
    assert_eq!(v["name"], "My Integration");
    assert_eq!(v["description"], "sync to warehouse");
    assert_eq!(v["secret"], "your-hmac-secret");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["format"], "flat");
    assert_eq!(
        v["events"],
        json!([
            "contact.created",
            "deal.stage.changed",
            "meeting.recording.completed"
        ])
    );
    // Header values are stored encrypted and shown masked, from the create response on.
    assert_eq!(
        v["headers"],
        json!({"Authorization": "••••••••", "X-Tenant": "••••••••"})
    );
    assert_eq!(v["retry_schedule"], json!(["30s", "2m", "2h"]));
    assert_eq!(v["rate_limit"], 25);
    assert_eq!(v["ordering"], "entity");
    let v = app.create(json!({"url": "https://example.com/x", "events": ["ContactDeleted"], "format": "contacts-list", "retry_schedule": []})).await;
    assert_eq!(v["retry_schedule"], json!([]));
}

#[tokio::test]
async fn invalid_webhooks_get_422_naming_the_field() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "missing url",
            json!({"events": ["contact.created"]}),
            "url",
            "required",
        ),
        (
            "missing events",
            json!({"url": "https://example.com"}),
            "events",
            "required",
        ),
        (
            "empty events",
            json!({"url": "https://example.com", "events": []}),
            "events",
            "required",
        ),
        (
            "unknown event",
            json!({"url": "https://example.com", "events": ["contact.exploded"]}),
            "events[0]",
            "unknown_event_type",
        ),
        (
            "empty event",
            json!({"url": "https://example.com", "events": [""]}),
            "events[0]",
            "required",
        ),
        (
            "duplicate event",
            json!({"url": "https://example.com", "events": ["contact.created", "contacts.created"]}),
            "events[1]",
            "duplicate",
        ),
        (
            "events not a list",
            json!({"url": "https://example.com", "events": "contact.created"}),
            "events",
            "invalid_type",
        ),
        (
            "http refused",
            hook("http://example.com/h"),
            "url",
            "invalid_url",
        ),
        (
            "ftp refused",
            hook("ftp://example.com/h"),
            "url",
            "invalid_url",
        ),
        ("not a url", hook("not a url"), "url", "invalid_url"),
        ("empty url", hook(""), "url", "invalid_url"),
        (
            "userinfo",
            hook("https://user:pw@example.com/h"),
            "url",
            "invalid_url",
        ),
        (
            "localhost",
            hook("https://localhost/h"),
            "url",
            "invalid_url",
        ),
        (
            "dot local",
            hook("https://printer.local/h"),
            "url",
            "invalid_url",
        ),
        (
            "dot internal",
            hook("https://metadata.google.internal/h"),
            "url",
            "invalid_url",
        ),
        (
            "single label",
            hook("https://intranet/h"),
            "url",
            "invalid_url",
        ),
        (
            "loopback",
            hook("https://127.0.0.1/h"),
            "url",
            "invalid_url",
        ),
        (
            "decimal loopback",
            hook("https://2130706433/h"),
            "url",
            "invalid_url",
        ),
        (
            "octal loopback",
            hook("https://0177.0.0.1/h"),
            "url",
            "invalid_url",
        ),
        (
            "hex loopback",
            hook("https://0x7f000001/h"),
            "url",
            "invalid_url",
        ),
        (
            "short loopback",
            hook("https://127.1/h"),
            "url",
            "invalid_url",
        ),
        (
            "metadata",
            hook("https://169.254.169.254/latest"),
            "url",
            "invalid_url",
        ),
        ("private", hook("https://10.1.2.3/h"), "url", "invalid_url"),
        (
            "private 192",
            hook("https://192.168.1.1/h"),
            "url",
            "invalid_url",
        ),
        ("cgnat", hook("https://100.64.0.1/h"), "url", "invalid_url"),
        (
            "v4-mapped",
            hook("https://[::ffff:127.0.0.1]/h"),
            "url",
            "invalid_url",
        ),
        (
            "nat64",
            hook("https://[64:ff9b::a9fe:a9fe]/h"),
            "url",
            "invalid_url",
        ),
        ("v6 loopback", hook("https://[::1]/h"), "url", "invalid_url"),
        (
            "aws v6 metadata",
            hook("https://[fd00:ec2::254]/h"),
            "url",
            "invalid_url",
        ),
        (
            "fragment",
            hook("https://example.com/h#frag"),
            "url",
            "invalid_url",
        ),
        (
            "name too long",
            json!({"url": "https://example.com", "events": ["*"], "name": long}),
            "name",
            "too_long",
        ),
        (
            "blank name",
            json!({"url": "https://example.com", "events": ["*"], "name": "  "}),
            "name",
            "required",
        ),
        (
            "description too long",
            json!({"url": "https://example.com", "events": ["*"], "description": "d".repeat(2001)}),
            "description",
            "too_long",
        ),
        (
            "empty secret",
            json!({"url": "https://example.com", "events": ["*"], "secret": ""}),
            "secret",
            "required",
        ),
        (
            "bad format",
            json!({"url": "https://example.com", "events": ["*"], "format": "xml"}),
            "format",
            "invalid",
        ),
        (
            "bad ordering",
            json!({"url": "https://example.com", "events": ["*"], "ordering": "strict"}),
            "ordering",
            "invalid",
        ),
        (
            "format can't carry event",
            json!({"url": "https://example.com", "events": ["deal.created"], "format": "contacts-list"}),
            "events[0]",
            "unsupported_by_format",
        ),
        (
            "bad schedule unit",
            json!({"url": "https://example.com", "events": ["*"], "retry_schedule": ["5 fortnights"]}),
            "retry_schedule",
            "invalid",
        ),
        (
            "schedule not a list",
            json!({"url": "https://example.com", "events": ["*"], "retry_schedule": "6m"}),
            "retry_schedule",
            "invalid",
        ),
        (
            "rate limit zero",
            json!({"url": "https://example.com", "events": ["*"], "rate_limit": 0}),
            "rate_limit",
            "invalid",
        ),
        (
            "rate limit negative",
            json!({"url": "https://example.com", "events": ["*"], "rate_limit": -5}),
            "rate_limit",
            "invalid_type",
        ),
        (
            "crlf header",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"X-A": "a\r\nX-Injected: 1"}}),
            "headers.X-A",
            "control_character",
        ),
        (
            "header name with space",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"X A": "1"}}),
            "headers.X A",
            "invalid_header",
        ),
        (
            "hop-by-hop header",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"Connection": "close"}}),
            "headers.Connection",
            "reserved_header",
        ),
        (
            "reserved header",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"X-Webhook-Signature": "x"}}),
            "headers.X-Webhook-Signature",
            "reserved_header",
        ),
        (
            "brand header",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"X-Hookline-Event": "x"}}),
            "headers.X-Hookline-Event",
            "reserved_header",
        ),
        (
            "header value not a string",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"X-A": 5}}),
            "headers.X-A",
            "invalid_type",
        ),
        (
            "unknown field",
            json!({"url": "https://example.com", "events": ["*"], "colour": "blue"}),
            "colour",
            "unknown_field",
        ),
        (
            "enabled not bool",
            json!({"url": "https://example.com", "events": ["*"], "enabled": "yes"}),
            "enabled",
            "invalid_type",
        ),
    ];
    for (case, body, field, code) in cases {
        let (s, v) = app.call(Method::POST, "/v1/webhooks", Some(body)).await;
        assert_error(
            s,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            Some(field),
            case,
        );
    }
    // None of them was stored.
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn malformed_requests_get_400_413_415_in_the_same_shape() {
    let app = spawn_app_with(&[("max_request_body", "2048".into())]).await;
    let (s, v) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            Some("application/json"),
            "{\"url\": ",
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
        "truncated JSON",
    );
    let (s, v) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            Some("application/json"),
            "{} trailing",
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
        "trailing garbage",
    );
    let (s, v) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            Some("application/json"),
            "[1,2]",
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_type",
        Some("[0]"),
        "array body",
    );
    let (s, v) = app.raw(Method::POST, "/v1/webhooks", None, "{}").await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
        "no content type",
    );
    let (s, v) = app
        .raw(Method::POST, "/v1/webhooks", Some("text/plain"), "{}")
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
        "text/plain",
    );
    let big =
        json!({"url": "https://example.com", "events": ["*"], "description": "d".repeat(5000)})
            .to_string();
    let (s, v) = app
        .raw(Method::POST, "/v1/webhooks", Some("application/json"), &big)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
        "oversize body",
    );
    let (s, v) = app.call(Method::GET, "/v1/webhooks/not-a-uuid", None).await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some("id"),
        "bad id",
    );
    let (s, v) = app.call(Method::GET, "/v1/nothing-here", None).await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "unknown route",
    );
    let (s, v) = app.call(Method::PUT, "/v1/webhooks", None).await;
    assert_error(
        s,
        &v,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
        "wrong method",
    );
    // A charset parameter and +json media types are fine.
    let (s, _) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            Some("application/json; charset=utf-8"),
            &hook("https://example.com/a").to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn list_paginates_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create(hook(&format!("https://example.com/{i}"))).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = app
            .call(
                Method::GET,
                &format!("/v1/webhooks?limit=2&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|w| w["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=zzz", "cursor"),
    ] {
        let (s, v) = app
            .call(Method::GET, &format!("/v1/webhooks?{q}"), None)
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
    let (s, page) = app.call(Method::GET, "/v1/webhooks?limit=100", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn exponential_retry_schedules_are_stored_expanded_and_bad_ones_get_422() {
    let app = spawn_app().await;
    let v = app
        .create(json!({"url": "https://example.com/a", "events": ["*"], "retry_schedule": "exp:30s..1h x8"}))
        .await;
    let expanded = json!(["30s", "1m", "2m", "4m", "8m", "16m", "32m", "1h"]);
    assert_eq!(v["retry_schedule"], expanded);
    let path = format!("/v1/webhooks/{}", v["id"].as_str().unwrap());
    let (_, got) = app.call(Method::GET, &path, None).await;
    assert_eq!(got["retry_schedule"], expanded);
    // Inside a list, beside explicit delays (the form MCP, the console and the CLI send).
    let (s, p) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"retry_schedule": ["10s", "exp:1m..4m x3"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["retry_schedule"], json!(["10s", "1m", "2m", "4m"]));
    for (schedule, needle) in [
        (json!("exp:30s..1d x0"), "1 to 50"),
        (json!(["exp:30s..1d x51"]), "1 to 50"),
        (json!("exp:1d..30s x3"), "longer than the maximum"),
        (json!("exp:30s..1d"), "exp:<first>..<max> x<retries>"),
        (json!(["exp:1m..8d x2"]), "between 1s and 7d"),
        (json!(["exp:1s..1m x30", "exp:1s..1m x30"]), "at most 50"),
    ] {
        let (s, e) = app
            .call(
                Method::PATCH,
                &path,
                Some(json!({"retry_schedule": schedule.clone()})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{schedule}: {e}");
        assert_eq!(e["error"]["field"], "retry_schedule", "{schedule}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{schedule}: {message}");
    }
    let (_, after) = app.call(Method::GET, &path, None).await;
    assert_eq!(after["retry_schedule"], json!(["10s", "1m", "2m", "4m"]));
}

#[tokio::test]
async fn patch_changes_only_given_fields_and_null_resets() {
    let app = spawn_app().await;
    let v = app.create(json!({"url": "https://example.com/a", "events": ["*"], "name": "A", "rate_limit": 5, "retry_schedule": ["1m"]})).await;
    let id = v["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");
    let (s, p) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "B", "events": ["task.*"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["name"], "B");
    assert_eq!(p["events"], json!(["task.*"]));
    assert_eq!(p["url"], "https://example.com/a");
    assert_eq!(p["rate_limit"], 5);
    assert_eq!(p["retry_schedule"], json!(["1m"]));
    let (_, p) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"rate_limit": null, "retry_schedule": null, "enabled": false})),
        )
        .await;
    assert_eq!(p["rate_limit"], Value::Null);
    assert_eq!(p["retry_schedule"], Value::Null);
    assert_eq!(p["enabled"], false);
    let (_, got) = app.call(Method::GET, &path, None).await;
    assert_eq!(got["name"], "B");
    assert_eq!(got["enabled"], false);
    assert!(got["updated_at"].as_str().unwrap() >= got["created_at"].as_str().unwrap());

    // Invalid patches change nothing.
    for (body, field) in [
        (json!({"url": "https://10.0.0.1/"}), "url"),
        (json!({"events": []}), "events"),
        (json!({"secret": "new"}), "secret"),
        (json!({"format": "contacts-list"}), "events[0]"),
        (json!({"headers": {"Host": "x"}}), "headers.Host"),
    ] {
        let (s, v) = app.call(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let (_, after) = app.call(Method::GET, &path, None).await;
    assert_eq!(after, got);
}

#[tokio::test]
async fn delete_removes_the_webhook() {
    let app = spawn_app().await;
    let id = app.create(hook("https://example.com/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/webhooks/{id}");
    let (s, _) = app.call(Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE, Method::PATCH] {
        let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
        let (s, v) = app.call(method.clone(), &path, body).await;
        assert_error(
            s,
            &v,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            &format!("{method} after delete"),
        );
    }
}

#[tokio::test]
async fn rotate_secret_keeps_the_old_one_signing_for_the_grace_period() {
    let app = spawn_app().await;
    let v = app.create(hook("https://example.com/a")).await;
    let id = v["id"].as_str().unwrap();
    let old = v["secret"].as_str().unwrap().to_string();
    let (s, r) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let new = r["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old);
    let until =
        hookline_core::time::parse(r["previous_secret_expires_at"].as_str().unwrap()).unwrap();
    let hours = (until - hookline_core::time::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    let (_, sec) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(sec["secret"], new);
    let stored = app
        .hookline
        .store
        .get_webhook(
            app.hookline.authenticate(&app.key).await.unwrap().tenant_id,
            id.parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.previous_secret.as_ref().map(|s| s.expose()),
        Some(old.as_str())
    );

    // An explicit secret with no grace replaces at once.
    let (s, r) = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(json!({"secret": "mine", "grace_period": "0s"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["secret"], "mine");
    assert_eq!(r["previous_secret_expires_at"], Value::Null);
    for (body, field) in [
        (json!({"grace_period": "soon"}), "grace_period"),
        (json!({"grace_period": "31d"}), "grace_period"),
        (json!({"secret": "mine"}), "secret"),
        (json!({"secret": ""}), "secret"),
        (json!({"sekret": "x"}), "sekret"),
    ] {
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/v1/webhooks/{id}/rotate-secret"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_webhooks() {
    let app = spawn_app().await;
    let other = app.other_tenant_key("acme").await;
    let mine = app.create(hook("https://example.com/mine")).await;
    let id = mine["id"].as_str().unwrap();
    let (s, list) = app.call_as(&other, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"], json!([]));
    for (method, path, body) in [
        (Method::GET, format!("/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"name": "stolen"})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
        (Method::GET, format!("/v1/webhooks/{id}/secret"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/rotate-secret"),
            None,
        ),
    ] {
        let (s, v) = app.call_as(&other, method.clone(), &path, body).await;
        assert_error(
            s,
            &v,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            &format!("{method} {path} as other tenant"),
        );
    }
    let (_, still) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(still["name"], mine["name"]);
    // And the other tenant's own webhooks stay its own.
    let (s, _) = app
        .call_as(
            &other,
            Method::POST,
            "/v1/webhooks",
            Some(hook("https://example.com/theirs")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn event_types_list_the_catalog_with_spellings() {
    let app = spawn_app().await;
    let (s, v) = app.call(Method::GET, "/v1/event-types", None).await;
    assert_eq!(s, StatusCode::OK);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 33);
    let created = data
        .iter()
        .find(|e| e["name"] == "contact.created")
        .unwrap();
    assert_eq!(
        created["spellings"],
        json!({"envelope": "contacts.created", "flat": "contact.created", "entity": "contact.created", "contacts-list": "ContactCreated"})
    );
    let stage = data
        .iter()
        .find(|e| e["name"] == "deal.stage.changed")
        .unwrap();
    assert_eq!(stage["spellings"]["envelope"], "deals.stage.changed");
    assert!(stage["spellings"].get("contacts-list").is_none());
    let zoom = data
        .iter()
        .find(|e| e["name"] == "meeting.recording.completed")
        .unwrap();
    assert_eq!(zoom["aliases"], json!(["zoom.recording.completed"]));
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let app = spawn_app().await;
    let (s, v) = app.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/rotate-secret",
        "/v1/webhooks/{id}/secret",
        "/v1/event-types",
    ] {
        assert!(v["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(v["components"]["schemas"].get("WebhookInput").is_some());
    // A delivery names both its log record and the message the receiver deduplicates on.
    let delivery = &v["components"]["schemas"]["DeliveryView"]["properties"];
    for field in ["id", "message_id"] {
        let doc = delivery[field]["description"].as_str().unwrap_or_default();
        assert!(doc.contains("receiver"), "{field}: {delivery}");
    }
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn garbage_input_never_produces_a_server_error() {
    let app = spawn_app().await;
    let id = app.create(hook("https://example.com/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bodies = [
        "",
        "null",
        "0",
        "\"str\"",
        "[]",
        "{}",
        "{\"url\":null}",
        "{\"url\":1,\"events\":{}}",
        "{\"events\":[null]}",
        "{\"events\":[1,2]}",
        "{\"headers\":[]}",
        "{\"retry_schedule\":[1.5]}",
        "{\"retry_schedule\":[\"\"]}",
        "{\"retry_schedule\":[18446744073709551616]}",
        "{\"rate_limit\":99999999999}",
        "{\"url\":\"https://\\u0000.com\"}",
        "{\"url\":\"https://[::1\"}",
        "{\"url\":\"https://exa mple.com\"}",
        "{\"name\":\"\\ud800\"}",
        "\u{feff}{}",
        "{\"url\":\"https://xn--nxasmq6b.com\",\"events\":[\"*\"]}",
        "{\"url\":\"https://例え.テスト\",\"events\":[\"*\"]}",
    ];
    for b in bodies {
        for (method, path) in [
            (Method::POST, "/v1/webhooks".to_string()),
            (Method::PATCH, format!("/v1/webhooks/{id}")),
            (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        ] {
            let (s, v) = app
                .raw(method.clone(), &path, Some("application/json"), b)
                .await;
            assert!(
                s.is_client_error() || s.is_success(),
                "{method} {path} {b:?} → {s} {v}"
            );
            if s.is_client_error() {
                assert!(v["error"]["code"].is_string(), "{v}");
            }
        }
    }
}

#[tokio::test]
async fn allow_targets_and_allow_http_open_exactly_what_they_say() {
    let app = spawn_app_with(&[
        ("allow_targets", "127.0.0.1/32".into()),
        ("allow_http", "true".into()),
    ])
    .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(hook("http://127.0.0.1:9999/h")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(hook("http://127.0.0.2:9999/h")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(hook("https://10.0.0.1/h")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
