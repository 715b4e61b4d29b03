//! The OpenAPI document and the reference page rendered from it. (`scripts/openapi-check` also
//! runs a standard validator over the document and a client generated from it.)

use super::*;

async fn document(app: &TestApp) -> Value {
    // No Authorization header: the document describes the API and holds no tenant data.
    let resp = app
        .client
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_needs_no_key() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // A wrong key doesn't matter either.
    let (s, _) = app
        .call_as("hk_wrong", Method::GET, "/v1/openapi.json", None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn every_operation_has_its_own_descriptive_id_and_documented_errors() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut seen = std::collections::HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        assert!(
            id.len() > 6 && id.chars().next().unwrap().is_ascii_lowercase(),
            "{method} {path}: {id:?}"
        );
        assert!(seen.insert(id.clone()), "operation id {id} repeats");
        let responses = op["responses"].as_object().unwrap();
        for status in ["401", "500", "503"] {
            assert!(responses.contains_key(status), "{id} lacks {status}");
        }
        if path.contains("{id}") {
            assert!(responses.contains_key("404"), "{id} lacks 404");
            assert!(
                responses.contains_key("400"),
                "{id} lacks 400 (malformed id)"
            );
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{id} lacks {status}");
            }
        }
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let r = match r["$ref"].as_str() {
                    Some(name) => &doc["components"]["responses"][name.rsplit('/').next().unwrap()],
                    None => r,
                };
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{id} {status}"
                );
            }
        }
    }
    for id in [
        "listWebhooks",
        "createWebhook",
        "getWebhook",
        "publishEvents",
        "listDeliveries",
        "listContacts",
        "createDeal",
        "updateTask",
        "importContacts",
        "testWebhookFilter",
    ] {
        assert!(seen.contains(id), "no operation {id}");
    }
}

#[tokio::test]
async fn each_record_kind_has_its_own_paths_and_schemas() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        !paths.keys().any(|p| p.contains("{kind}")),
        "generic path left"
    );
    for (kind, schema) in [
        ("contacts", "Contact"),
        ("organizations", "Organization"),
        ("deals", "Deal"),
        ("services", "Service"),
        ("tasks", "Task"),
    ] {
        let collection = &paths[&format!("/v1/{kind}")];
        let item = &paths[&format!("/v1/{kind}/{{id}}")];
        assert_eq!(
            collection["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}")
        );
        assert_eq!(
            item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}View")
        );
        assert_eq!(
            collection["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}List")
        );
        assert!(doc["components"]["schemas"].get(schema).is_some());
    }
    let contact = &doc["components"]["schemas"]["Contact"];
    assert_eq!(
        contact["additionalProperties"], false,
        "contacts are strict"
    );
    assert!(contact["properties"].get("primary_email").is_some());
    assert_eq!(
        doc["components"]["schemas"]["Deal"]["required"],
        json!(["name", "stage"])
    );
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let id = uuid::Uuid::now_v7().to_string();
    for (method, path, _) in operations(&doc) {
        let url = format!("{}{}", app.base, path.replace("{id}", &id));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        // Without a key every documented route answers 401: it exists and has that method (an
        // undocumented path would be 404 `no such route`, a wrong method 405).
        let resp = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

#[tokio::test]
async fn the_reference_page_is_rendered_from_the_document() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let resp = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap();
        assert!(
            html.contains(&format!("id=\"op-{id}\"")),
            "{id} not on the page"
        );
        assert!(html.contains(&format!(">{}<", method.to_uppercase())));
        assert!(
            html.contains(&format!("<code class=\"path\">{path}</code>")),
            "{path}"
        );
    }
    for schema in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            html.contains(&format!("id=\"schema-{schema}\"")),
            "{schema}"
        );
    }
    // Self-contained: no script, nothing loaded from elsewhere; text from the document is escaped.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains("Bearer &lt;API key&gt;"));
    let css = app
        .client
        .get(format!("{}/docs/docs.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}
