//! The MCP server over streamable HTTP, driven by the official Rust SDK's client: every tool, each
//! error class as a tool error, tenant isolation, resources, and 401 without a key. (The stdio
//! transport is tested in the CLI crate, which owns `hookline mcp`.)

use super::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};

type McpClient = RunningService<RoleClient, ()>;

async fn connect(app: &TestApp, key: &str) -> McpClient {
    // In a workspace build the client's reqwest has TLS without a built-in provider (the CLI's
    // choice, for ring): install the same one, as `hookline mcp` does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base)).auth_header(key),
    );
    ().serve(transport).await.expect("MCP session")
}

async fn call(client: &McpClient, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// The structured result of a successful call.
async fn ok(client: &McpClient, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args).await;
    assert_eq!(r.is_error, Some(false), "{tool}: {:?}", r.content);
    r.structured_content
        .unwrap_or_else(|| panic!("{tool}: no structured content"))
}

/// The REST-shaped error of a refused call.
async fn refused(client: &McpClient, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool}: {:?}", r.structured_content);
    let text = &r.content[0].as_text().expect("text content").text;
    serde_json::from_str::<Value>(text).unwrap()["error"].clone()
}

const TOOLS: [&str; 19] = [
    "create_webhook",
    "delete_webhook",
    "erase_record",
    "get_entities",
    "get_erasure",
    "get_job",
    "get_webhook",
    "get_webhook_delivery",
    "list_event_types",
    "list_webhook_deliveries",
    "list_webhooks",
    "publish_event",
    "replay_webhook_deliveries",
    "resend_webhook_delivery",
    "rotate_webhook_secret",
    "send_test_event",
    "test_webhook_filter",
    "update_webhook",
    "verify_receiver",
];

#[tokio::test]
async fn mcp_refuses_requests_without_a_valid_key_before_any_session() {
    let app = spawn_app().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for key in [None, Some("hk_wrong")] {
        let mut req = app
            .client
            .post(format!("{}/mcp", app.base))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert!(resp.headers().get("mcp-session-id").is_none());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn every_tool_has_input_and_output_schemas_and_annotations() {
    let app = spawn_app().await;
    let client = connect(&app, &app.key).await;
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().unwrap().name, "hookline");
    assert!(info
        .instructions
        .as_deref()
        .is_some_and(|i| i.contains("get_webhook_delivery")));
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, TOOLS);
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
        assert!(t.output_schema.is_some(), "{} has no output schema", t.name);
        let a = t.annotations.as_ref().expect("annotations");
        assert!(
            a.read_only_hint.is_some() && a.destructive_hint.is_some(),
            "{}",
            t.name
        );
    }
    let by_name = |n: &str| tools.iter().find(|t| t.name == n).unwrap();
    assert_eq!(
        by_name("list_webhook_deliveries")
            .annotations
            .as_ref()
            .unwrap()
            .read_only_hint,
        Some(true)
    );
    assert_eq!(
        by_name("delete_webhook")
            .annotations
            .as_ref()
            .unwrap()
            .destructive_hint,
        Some(true)
    );
    // Arguments are camelCase, as assistants know them from the source products.
    let props = by_name("list_webhook_deliveries").input_schema["properties"]
        .as_object()
        .unwrap()
        .clone();
    for arg in ["searchTerm", "webhookId", "pageSize", "eventType"] {
        assert!(props.contains_key(arg), "missing {arg}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_assistant_sets_up_tests_finds_and_resends_deliveries() {
    let app = spawn_app_with_worker(&local_receivers()).await;
    let rx = Receiver::start().await;
    let client = connect(&app, &app.key).await;

    let catalog = ok(&client, "list_event_types", json!({})).await;
    assert!(catalog["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "deal.stage.changed"));

    let hook = ok(
        &client,
        "create_webhook",
        json!({"url": rx.url, "events": ["contacts.*"], "name": "crm sync", "format": "flat",
               "retrySchedule": ["1s"], "headers": {"X-Team": "ops"}}),
    )
    .await;
    let id = hook["id"].as_str().unwrap().to_string();
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(hook["retry_schedule"], json!(["1s"]));

    let got = ok(&client, "get_webhook", json!({"id": id})).await;
    assert_eq!(got["name"], "crm sync");
    assert!(got.get("secret").is_none_or(Value::is_null));
    let listed = ok(&client, "list_webhooks", json!({"searchTerm": "crm"})).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    let listed = ok(
        &client,
        "list_webhooks",
        json!({"searchTerm": "nothing-like-it"}),
    )
    .await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 0);
    let updated = ok(
        &client,
        "update_webhook",
        json!({"id": id, "description": "the CRM's sync endpoint"}),
    )
    .await;
    assert_eq!(updated["description"], "the CRM's sync endpoint");
    assert_eq!(updated["name"], "crm sync");

    let test = ok(&client, "send_test_event", json!({"webhookId": id})).await;
    assert_eq!(test["success"], true);
    assert_eq!(test["attempt"]["status_code"], 200);
    let unsaved = ok(
        &client,
        "send_test_event",
        json!({"url": rx.url, "format": "envelope", "eventType": "deal.created"}),
    )
    .await;
    assert_eq!(unsaved["event_type"], "deal.created");
    let verdict = ok(&client, "verify_receiver", json!({"webhookId": id})).await;
    // The scripted receiver accepts everything: the handshake must say so.
    assert_eq!(verdict["verdict"], "accepts_bad_signatures");
    rx.wait_for(4).await;

    let published = ok(
        &client,
        "publish_event",
        json!({"eventType": "contact.created", "data": {"id": "c1", "first_name": "Ada"},
               "idempotencyKey": "k-1"}),
    )
    .await;
    assert_eq!(published["replayed"], false);
    assert_eq!(published["delivery_ids"].as_array().unwrap().len(), 1);
    let again = ok(
        &client,
        "publish_event",
        json!({"eventType": "contact.created", "data": {"id": "c1", "first_name": "Ada"},
               "idempotencyKey": "k-1"}),
    )
    .await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["id"], published["id"]);
    let got = rx.wait_for(5).await;
    assert_eq!(got[4].json()["event"], "contact.created");
    // The worker records the answer just after the receiver has it.
    let first = published["delivery_ids"][0].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ok(&client, "get_webhook_delivery", json!({"id": first})).await["status"] != "delivered" {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Found by event name and by URL (the test send above is in the log too), not by another name.
    let mut delivery_id = String::new();
    for term in ["contact.created", "contacts.created", "/hook"] {
        let page = ok(
            &client,
            "list_webhook_deliveries",
            json!({"searchTerm": term, "webhookId": id, "status": "delivered"}),
        )
        .await;
        let found: Vec<&Value> = page["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["event_id"] == published["id"])
            .collect();
        assert_eq!(found.len(), 1, "{term}: {page}");
        delivery_id = found[0]["id"].as_str().unwrap().to_string();
    }
    let page = ok(
        &client,
        "list_webhook_deliveries",
        json!({"searchTerm": "deal.stage.changed", "webhookId": id}),
    )
    .await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 0);

    let detail = ok(&client, "get_webhook_delivery", json!({"id": delivery_id})).await;
    assert_eq!(detail["attempts"][0]["status_code"], 200);
    assert!(detail["attempts"][0]["total_ms"].is_number());

    let resent = ok(
        &client,
        "resend_webhook_delivery",
        json!({"id": delivery_id}),
    )
    .await;
    assert_eq!(resent["resent_from"], delivery_id.as_str());
    assert_ne!(resent["id"], delivery_id.as_str());
    let got = rx.wait_for(6).await;
    assert_eq!(got[5].json()["data"]["id"], "c1");
    let original = ok(&client, "get_webhook_delivery", json!({"id": delivery_id})).await;
    assert_eq!(original["attempts"].as_array().unwrap().len(), 1);

    let replay = ok(
        &client,
        "replay_webhook_deliveries",
        json!({"webhookId": id, "since": "2000-01-01T00:00:00Z", "status": ["delivered"], "dryRun": true}),
    )
    .await;
    assert_eq!(replay["dry_run"], true);
    assert!(replay["count"].as_u64().unwrap() >= 2, "{replay}");
    let replay = ok(
        &client,
        "replay_webhook_deliveries",
        json!({"webhookId": id, "since": "2000-01-01T00:00:00Z", "status": ["delivered"]}),
    )
    .await;
    let job_id = replay["job"]["id"].as_str().unwrap().to_string();
    let job = ok(&client, "get_job", json!({"id": job_id})).await;
    assert_eq!(job["kind"], "replay", "{job}");
    assert_eq!(job["total"], replay["count"], "{job}");

    let rotated = ok(
        &client,
        "rotate_webhook_secret",
        json!({"id": id, "gracePeriod": "1h"}),
    )
    .await;
    assert_ne!(rotated["secret"], hook["secret"]);

    let deleted = ok(&client, "delete_webhook", json!({"id": id})).await;
    assert_eq!(deleted["deleted"], true);
    let err = refused(&client, "get_webhook", json!({"id": id})).await;
    assert_eq!(err["code"], "not_found");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn pages_of_the_delivery_log_follow_each_other() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let client = connect(&app, &app.key).await;
    ok(
        &client,
        "create_webhook",
        json!({"url": rx.url, "events": ["contact.created"]}),
    )
    .await;
    for i in 0..5 {
        ok(
            &client,
            "publish_event",
            json!({"eventType": "contact.created", "data": {"id": format!("c{i}")}}),
        )
        .await;
    }
    let mut seen = Vec::new();
    for page in 1..=3 {
        let p = ok(
            &client,
            "list_webhook_deliveries",
            json!({"page": page, "pageSize": 2}),
        )
        .await;
        assert_eq!(p["has_more"], page < 3, "{p}");
        for d in p["deliveries"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen.len(), 5);
    assert_eq!(unique.len(), 5);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refused_calls_are_tool_errors_with_the_api_code_naming_the_argument() {
    let app = spawn_app().await;
    let client = connect(&app, &app.key).await;
    let cases = [
        (
            "create_webhook",
            json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["contact.created"]}),
            "url",
        ),
        (
            "create_webhook",
            json!({"url": "https://hooks.example.com/x", "events": ["contact.exploded"]}),
            "events[0]",
        ),
        (
            "create_webhook",
            json!({"url": "https://hooks.example.com/x", "events": ["contact.created"], "retrySchedule": ["soon"]}),
            "retrySchedule",
        ),
        ("get_webhook", json!({"id": "not-a-uuid"}), "id"),
        (
            "publish_event",
            json!({"eventType": "nope.nothing", "data": {}}),
            "eventType",
        ),
        (
            "list_webhook_deliveries",
            json!({"status": "lost"}),
            "status",
        ),
        (
            "list_webhook_deliveries",
            json!({"pageSize": 1000}),
            "pageSize",
        ),
        (
            "send_test_event",
            json!({"eventType": "contact.created"}),
            "webhookId",
        ),
        (
            "get_entities",
            json!({"entityType": "planet"}),
            "entityType",
        ),
    ];
    for (tool, args, field) in cases {
        let err = refused(&client, tool, args.clone()).await;
        assert_eq!(err["field"], field, "{tool} {args}: {err}");
        assert!(err["code"].as_str().is_some_and(|c| !c.is_empty()), "{err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
    }
    // The same refusal over REST carries the same code and message.
    let (s, rest) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["contact.created"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let err = refused(
        &client,
        "create_webhook",
        json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["contact.created"]}),
    )
    .await;
    assert_eq!(err["code"], rest["error"]["code"]);
    assert_eq!(err["message"], rest["error"]["message"]);
    // A missing argument is a tool error too, never a protocol error.
    let r = call(&client, "get_webhook", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn another_tenant_sees_nothing_of_this_one() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let a = connect(&app, &app.key).await;
    let hook = ok(
        &a,
        "create_webhook",
        json!({"url": rx.url, "events": ["contact.created"]}),
    )
    .await;
    let published = ok(
        &a,
        "publish_event",
        json!({"eventType": "contact.created", "data": {"id": "c1"}}),
    )
    .await;
    let delivery = published["delivery_ids"][0].as_str().unwrap().to_string();
    let id = hook["id"].as_str().unwrap().to_string();

    let key_b = app.other_tenant_key("tenant-b").await;
    let b = connect(&app, &key_b).await;
    let listed = ok(&b, "list_webhooks", json!({})).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 0);
    let log = ok(&b, "list_webhook_deliveries", json!({})).await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 0);
    for (tool, args) in [
        ("get_webhook", json!({"id": id})),
        ("update_webhook", json!({"id": id, "name": "mine now"})),
        ("delete_webhook", json!({"id": id})),
        ("send_test_event", json!({"webhookId": id})),
        ("get_webhook_delivery", json!({"id": delivery})),
        ("resend_webhook_delivery", json!({"id": delivery})),
        (
            "replay_webhook_deliveries",
            json!({"webhookId": id, "since": "2000-01-01T00:00:00Z"}),
        ),
    ] {
        let err = refused(&b, tool, args).await;
        assert_eq!(err["code"], "not_found", "{tool}: {err}");
    }
    let err = b
        .read_resource(ReadResourceRequestParams::new(format!(
            "hookline://webhooks/{id}"
        )))
        .await;
    assert!(err.is_err(), "tenant B read A's webhook resource");
    // Tenant A's webhook is untouched.
    let still = ok(&a, "get_webhook", json!({"id": id})).await;
    assert_ne!(still["name"], "mine now");
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}

#[tokio::test]
async fn records_and_resources_are_readable() {
    let app = spawn_app().await;
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(json!({"id": "c-7", "first_name": "Grace", "last_name": "Hopper"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let client = connect(&app, &app.key).await;
    let found = ok(
        &client,
        "get_entities",
        json!({"entityType": "contacts", "ids": ["c-7", "c-8"]}),
    )
    .await;
    assert_eq!(found["records"][0]["data"]["first_name"], "Grace");
    assert_eq!(found["missing"], json!(["c-8"]));
    let searched = ok(
        &client,
        "get_entities",
        json!({"entityType": "contact", "searchTerm": "hopper"}),
    )
    .await;
    assert_eq!(searched["records"].as_array().unwrap().len(), 1);

    let hook = ok(
        &client,
        "create_webhook",
        json!({"url": "https://hooks.example.com/x", "events": ["contact.created"]}),
    )
    .await;
    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "hookline://webhooks/{id}");
    let resources = client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "hookline://event-types"));
    let uri = format!("hookline://webhooks/{}", hook["id"].as_str().unwrap());
    assert!(resources.iter().any(|r| r.uri == uri));
    let read = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("text resource expected")
    };
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["url"], "https://hooks.example.com/x");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_portal_sessions_token_sees_only_its_webhooks_and_capabilities() {
    let app = spawn_app().await;
    let a = app.create(hook("https://hooks.example.com/a")).await;
    app.create(hook("https://hooks.example.com/b")).await;
    let (s, minted) = app
        .call(
            Method::POST,
            "/v1/portal-sessions",
            Some(json!({"webhook_ids": [a["id"]], "capabilities": ["view"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{minted}");
    // Opening the link turns the one-time code into a session; its token is the bearer.
    let url = minted["url"].as_str().unwrap();
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}{}",
            app.base,
            &url[url.find("/portal/").unwrap()..]
        ))
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    let token = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let client = connect(&app, &token).await;
    let listed = ok(&client, "list_webhooks", json!({})).await;
    let ids: Vec<&Value> = listed["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["id"])
        .collect();
    assert_eq!(ids, [&a["id"]]);
    let err = refused(&client, "delete_webhook", json!({"id": a["id"]})).await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let err = refused(
        &client,
        "publish_event",
        json!({"eventType": "contact.created", "data": {"id": "x"}}),
    )
    .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_read_keys_tools_only_read() {
    let app = spawn_app().await;
    let w = app.create(hook("https://hooks.example.com/a")).await;
    let (s, created) = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "assistant", "scope": "read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let client = connect(&app, created["key"].as_str().unwrap()).await;
    let listed = ok(&client, "list_webhooks", json!({})).await;
    assert_eq!(listed["webhooks"][0]["id"], w["id"]);
    ok(&client, "get_webhook", json!({"id": w["id"]})).await;
    ok(&client, "list_webhook_deliveries", json!({})).await;
    for (tool, args) in [
        ("delete_webhook", json!({"id": w["id"]})),
        ("update_webhook", json!({"id": w["id"], "enabled": false})),
        ("rotate_webhook_secret", json!({"id": w["id"]})),
        ("send_test_event", json!({"webhookId": w["id"]})),
        (
            "create_webhook",
            json!({"url": "https://hooks.example.com/b", "events": ["contact.created"]}),
        ),
        (
            "publish_event",
            json!({"eventType": "contact.created", "data": {"id": "x"}}),
        ),
    ] {
        let err = refused(&client, tool, args).await;
        assert_eq!(err["code"], "forbidden", "{tool}: {err}");
    }
    let (_, still) = app
        .call(
            Method::GET,
            &format!("/v1/webhooks/{}", w["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(still["enabled"], true);
    client.cancel().await.unwrap();
}

/// Strict input is the service's rule, so MCP gets it too: control characters refused naming the
/// argument, a NUL in a search or in event data a tool error (never an internal one), on either
/// store.
#[tokio::test]
async fn control_characters_are_refused_through_mcp_as_through_the_api() {
    let app = spawn_app().await;
    let client = connect(&app, &app.key).await;
    for (tool, args, field) in [
        (
            "create_webhook",
            json!({"url": "https://hooks.example.com/x", "events": ["*"], "name": "a\u{7}b"}),
            "name",
        ),
        (
            "create_webhook",
            json!({"url": "https://hooks.example.com/\u{0}", "events": ["*"]}),
            "url",
        ),
        (
            "publish_event",
            json!({"eventType": "contact.created", "data": {"id": "c", "note": "a\u{0}b"}}),
            "data.note",
        ),
    ] {
        let e = refused(&client, tool, args).await;
        assert_eq!(e["code"], "control_character", "{tool}: {e}");
        assert_eq!(e["field"], field, "{tool}: {e}");
    }
    for (tool, args) in [
        ("list_webhook_deliveries", json!({"searchTerm": "a\u{0}b"})),
        ("list_webhooks", json!({"searchTerm": "a\u{0}b"})),
        (
            "get_entities",
            json!({"entityType": "contact", "searchTerm": "a\u{0}b"}),
        ),
    ] {
        let e = refused(&client, tool, args).await;
        assert_eq!(e["code"], "invalid_query", "{tool}: {e}");
    }
}

/// Payload filters through MCP: set on create and update, refused naming `filter` and the
/// position, removed with "", and tried out with `test_webhook_filter` (a read key may: it changes
/// nothing).
#[tokio::test]
async fn webhook_filters_are_set_refused_tested_and_removed() {
    let app = spawn_app().await;
    let client = connect(&app, &app.key).await;
    let hook = ok(
        &client,
        "create_webhook",
        json!({"url": "https://hooks.example.com/f", "events": ["deal.*"],
               "filter": "changes.owner_id != null && data.amount >= 1000"}),
    )
    .await;
    assert_eq!(
        hook["filter"],
        "changes.owner_id != null && data.amount >= 1000"
    );
    let e = refused(
        &client,
        "create_webhook",
        json!({"url": "https://hooks.example.com/g", "events": ["*"], "filter": "data.x =="}),
    )
    .await;
    assert_eq!(e["code"], "invalid_filter", "{e}");
    assert_eq!(e["field"], "filter", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("filter: at position 9: "),
        "{e}"
    );
    let updated = ok(
        &client,
        "update_webhook",
        json!({"id": hook["id"], "filter": "\"vip\" in data.tags[*].name"}),
    )
    .await;
    assert_eq!(updated["filter"], "\"vip\" in data.tags[*].name");
    let kept = ok(
        &client,
        "update_webhook",
        json!({"id": hook["id"], "name": "n"}),
    )
    .await;
    assert_eq!(kept["filter"], updated["filter"]);
    let cleared = ok(
        &client,
        "update_webhook",
        json!({"id": hook["id"], "filter": ""}),
    )
    .await;
    assert_eq!(cleared["filter"], Value::Null);

    let (_, key) = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "assistant", "scope": "read"})),
        )
        .await;
    let reader = connect(&app, key["key"].as_str().unwrap()).await;
    let tried = ok(
        &reader,
        "test_webhook_filter",
        json!({"filter": "\"vip\" in data.tags[*].name",
               "event": {"type": "deal.created", "data": {"tags": [{"name": "vip"}]}}}),
    )
    .await;
    assert_eq!(tried["matches"], true);
    assert_eq!(tried["exhausted"], false);
    let e = refused(
        &reader,
        "test_webhook_filter",
        json!({"filter": "type ==", "event": {}}),
    )
    .await;
    assert_eq!(e["field"], "filter", "{e}");
    reader.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn erase_record_queues_an_erasure_and_get_erasure_follows_it() {
    let app = spawn_app().await;
    let client = connect(&app, &app.key).await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "Ines"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let contact = v["data"]["id"].as_str().unwrap().to_string();
    let error = refused(
        &client,
        "erase_record",
        json!({"entityType": "person", "entityId": contact}),
    )
    .await;
    assert_eq!(error["field"], "entityType", "{error}");
    let erasure = ok(
        &client,
        "erase_record",
        json!({"entityType": "contact", "entityId": contact}),
    )
    .await;
    assert_eq!(erasure["status"], "queued", "{erasure}");
    hookline_server::jobs::JobRunner::new(app.hookline.clone())
        .run_once()
        .await
        .unwrap();
    let done = ok(&client, "get_erasure", json!({"id": erasure["id"]})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["erased"]["records_removed"], 1, "{done}");
    assert_eq!(done["erased"]["events_dropped"], 1, "{done}");
    let (s, _) = app
        .call(Method::GET, &format!("/v1/contacts/{contact}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
