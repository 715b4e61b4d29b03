//! CRM records as the event source: writes commit their events; changes, no-op suppression,
//! derived events, import batches, bulk delete, optimistic concurrency.

use super::*;

fn full_contact() -> Value {
    json!({
        "first_name": "John", "last_name": "Doe", "company": "Example Corp", "job_title": "Product Manager",
        "label": "Work", "notes": "Met at event", "primary_email": "john.doe@example.com", "primary_phone": "+15550101010",
        "emails": [{"label": "Work", "value": "john.doe@example.com"}],
        "phones": [{"label": "Mobile", "value": "+15550101010"}],
        "websites": [{"label": "Company", "value": "https://example.com"}],
        "socials": [{"linkedin_url": "https://linkedin.com/in/john-doe"}, {"github_url": "https://github.com/john-doe"}],
        "custom": [{"label": "CRM Owner", "value": "Sales"}],
        "address": {"formatted": "123 Market Street, San Francisco, CA, USA, 94105", "raw": {}},
        "where_we_met": {"formatted": "Moscone Center, San Francisco, CA, USA", "raw": {}},
        "tags": [{"name": "Conference", "type": "event"}],
        "notetaker_sessions": [],
        "owner_id": "u_1"
    })
}

impl TestApp {
    async fn write(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }
}

async fn app_with_receiver(extra: Value) -> (TestApp, Receiver) {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let mut body = json!({"url": rx.url, "events": ["*"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create(body).await;
    (app, rx)
}

#[tokio::test]
async fn contact_lifecycle_emits_created_updated_and_deleted() {
    let (app, rx) = app_with_receiver(json!({})).await;
    let (s, created) = app
        .call(Method::POST, "/v1/contacts", Some(full_contact()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["version"], 1);
    assert_eq!(created["changed"], true);
    assert_eq!(created["events"][0]["event_type"], "contact.created");
    assert_eq!(created["data"]["created_at"], created["data"]["updated_at"]);
    let path = format!("/v1/contacts/{id}");
    let updated = app
        .write(
            Method::PATCH,
            &path,
            Some(json!({"job_title": "CTO", "tags": [{"name": "VIP", "type": "status"}]})),
        )
        .await;
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["data"]["job_title"], "CTO");
    assert_eq!(updated["data"]["first_name"], "John");
    let deleted = app.write(Method::DELETE, &path, None).await;
    assert_eq!(deleted["events"][0]["event_type"], "contact.deleted");
    let (s, _) = app.call(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.dispatcher.drain().await.unwrap();

    let got: Vec<Value> = rx.received().iter().map(Received::json).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["data"]["event_type"], "contacts.created");
    assert_eq!(got[0]["source"], "api");
    let c = &got[0]["data"]["contacts"][0];
    for field in [
        "first_name",
        "socials",
        "address",
        "where_we_met",
        "tags",
        "notetaker_sessions",
        "created_at",
        "updated_at",
    ] {
        assert!(c.get(field).is_some(), "{field} missing from {c}");
    }
    assert_eq!(got[1]["data"]["event_type"], "contacts.updated");
    assert_eq!(
        got[1]["data"]["changes"]["job_title"],
        json!({"previous": "Product Manager", "current": "CTO"})
    );
    assert_eq!(
        got[1]["data"]["changes"]["tags"]["current"][0]["name"],
        "VIP"
    );
    assert_eq!(
        got[1]["data"]["changes"].as_object().unwrap().len(),
        2,
        "only the moved fields"
    );
    assert_eq!(
        got[2]["data"],
        json!({"event_type": "contacts.deleted", "contact_ids": [id]})
    );
}

#[tokio::test]
async fn a_write_that_changes_nothing_emits_nothing_and_says_so() {
    let (app, rx) = app_with_receiver(json!({})).await;
    let created = app
        .write(Method::POST, "/v1/contacts", Some(full_contact()))
        .await;
    let path = format!("/v1/contacts/{}", created["data"]["id"].as_str().unwrap());
    let same = app.write(Method::PUT, &path, Some(full_contact())).await;
    assert_eq!(same["changed"], false);
    assert_eq!(same["events"], json!([]));
    assert_eq!(same["version"], 1);
    let mut reordered = full_contact();
    reordered["socials"] = json!([{"linkedin_url": "https://linkedin.com/in/john-doe"}, {"github_url": "https://github.com/john-doe"}]);
    let again = app
        .write(
            Method::PATCH,
            &path,
            Some(json!({"notes": "Met at event", "updated_at": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(again["changed"], false);
    app.dispatcher.drain().await.unwrap();
    assert_eq!(rx.received().len(), 1, "only the create");
}

#[tokio::test]
async fn owner_and_stage_changes_emit_derived_events_too() {
    let (app, rx) = app_with_receiver(json!({"format": "entity"})).await;
    let c = app
        .write(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "Ann", "owner_id": "u1"})),
        )
        .await;
    let cid = c["data"]["id"].as_str().unwrap();
    let upd = app
        .write(
            Method::PATCH,
            &format!("/v1/contacts/{cid}"),
            Some(json!({"owner_id": "u2"})),
        )
        .await;
    let types: Vec<_> = upd["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["contact.updated", "contact.assigned"]);
    let d = app.write(Method::POST, "/v1/deals", Some(json!({"name": "Big", "stage": "lead", "owner_id": "u1", "amount": 1000, "contact_ids": [cid], "organization_id": null}))).await;
    let did = d["data"]["id"].as_str().unwrap();
    let upd = app
        .write(
            Method::PATCH,
            &format!("/v1/deals/{did}"),
            Some(json!({"stage": "won", "owner_id": "u3"})),
        )
        .await;
    let types: Vec<_> = upd["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["deal.updated", "deal.assigned", "deal.stage.changed"]
    );
    app.dispatcher.drain().await.unwrap();
    let got: Vec<Value> = rx.received().iter().map(Received::json).collect();
    let stage = got
        .iter()
        .find(|b| b["event"] == "deal.stage.changed")
        .unwrap();
    assert_eq!(
        stage["data"]["payload"]["changes"],
        json!({"stage": {"previous": "lead", "current": "won"}})
    );
    assert_eq!(stage["data"]["payload"]["deal"]["stage"], "won");
    assert_eq!(stage["data"]["entityId"], did);
    let assigned = got
        .iter()
        .find(|b| b["event"] == "contact.assigned")
        .unwrap();
    assert_eq!(
        assigned["data"]["payload"]["changes"]["ownerId"]["current"],
        "u2"
    );
}

#[tokio::test]
async fn every_record_kind_emits_its_events_end_to_end() {
    let (app, rx) = app_with_receiver(json!({"format": "entity"})).await;
    let cases = [
        (
            "organizations",
            json!({"name": "Acme", "industry": "tools"}),
            json!({"name": "Acme Inc"}),
            "organization",
        ),
        (
            "deals",
            json!({"name": "Deal", "stage": "lead"}),
            json!({"amount": 5}),
            "deal",
        ),
        (
            "services",
            json!({"name": "Onboarding"}),
            json!({"price": 10}),
            "service",
        ),
        (
            "tasks",
            json!({"title": "Call", "due": "2026-12-01"}),
            json!({"done": true}),
            "task",
        ),
        (
            "contacts",
            json!({"first_name": "Zed"}),
            json!({"last_name": "Z"}),
            "contact",
        ),
    ];
    for (plural, create, patch, kind) in &cases {
        let c = app
            .write(Method::POST, &format!("/v1/{plural}"), Some(create.clone()))
            .await;
        let id = c["data"]["id"].as_str().unwrap().to_string();
        app.write(
            Method::PATCH,
            &format!("/v1/{plural}/{id}"),
            Some(patch.clone()),
        )
        .await;
        app.write(Method::DELETE, &format!("/v1/{plural}/{id}"), None)
            .await;
        app.dispatcher.drain().await.unwrap();
        let got: Vec<Value> = rx.received().iter().map(Received::json).collect();
        let mine: Vec<&Value> = got
            .iter()
            .filter(|b| b["data"]["entityId"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 3, "{plural}: {got:?}");
        assert_eq!(mine[0]["event"], format!("{kind}.created"));
        assert_eq!(mine[0]["data"]["payload"][kind]["id"], id.as_str());
        assert_eq!(mine[1]["event"], format!("{kind}.updated"));
        let field = patch.as_object().unwrap().keys().next().unwrap();
        let camel = hookline_core::formats::camel_case(field);
        assert_eq!(
            mine[1]["data"]["payload"]["changes"][camel.as_str()]["current"],
            patch[field]
        );
        assert_eq!(mine[2]["event"], format!("{kind}.deleted"));
        assert_eq!(
            mine[2]["data"]["payload"],
            json!({ format!("{kind}Id"): id })
        );
    }
}

#[tokio::test]
async fn if_match_refuses_a_stale_write() {
    let app = spawn_app().await;
    let c = app
        .write(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "A"})),
        )
        .await;
    let path = format!("/v1/contacts/{}", c["data"]["id"].as_str().unwrap());
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let send = |if_match: &'static str, name: &'static str| {
        let req = app
            .client
            .patch(format!("{}{path}", app.base))
            .bearer_auth(&app.key)
            .header("if-match", if_match)
            .json(&json!({"first_name": name}));
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = send("\"1\"", "B").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    let (s, v) = send("\"1\"", "C").await;
    assert_error(
        s,
        &v,
        StatusCode::CONFLICT,
        "version_conflict",
        None,
        "stale If-Match",
    );
    let (s, v) = send("nonsense", "C").await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_header",
        Some("If-Match"),
        "bad If-Match",
    );
    let (_, now) = app.call(Method::GET, &path, None).await;
    assert_eq!(now["data"]["first_name"], "B");
}

#[tokio::test]
async fn invalid_records_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            "/v1/contacts",
            json!({"first_name": "A", "nickname": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "nickname",
        ),
        (
            "/v1/contacts",
            json!({"notes": "nobody"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "first_name",
        ),
        (
            "/v1/contacts",
            json!({"first_name": "A", "primary_email": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "primary_email",
        ),
        (
            "/v1/contacts",
            json!({"first_name": "A", "emails": [{"label": "w", "value": "x"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "emails[0].value",
        ),
        (
            "/v1/contacts",
            json!({"first_name": "A", "socials": [{"twitter": "x"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "socials[0]",
        ),
        (
            "/v1/contacts",
            json!({"first_name": "A", "id": "has space"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
        ),
        (
            "/v1/contacts",
            json!({"first_name": "A", "id": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
        ),
        (
            "/v1/contacts",
            json!(["not", "an", "object"]),
            StatusCode::UNPROCESSABLE_ENTITY,
            ".",
        ),
        (
            "/v1/deals",
            json!({"name": "D"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "stage",
        ),
        (
            "/v1/tasks",
            json!({"name": "T"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
    ];
    for (path, body, status, field) in cases {
        let (s, v) = app.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert_eq!(v["error"]["field"], field, "{path} {body}: {v}");
    }
    let (_, list) = app.call(Method::GET, "/v1/contacts", None).await;
    assert_eq!(list["data"], json!([]));
    app.write(
        Method::POST,
        "/v1/contacts",
        Some(json!({"id": "crm-1", "first_name": "A"})),
    )
    .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(json!({"id": "crm-1", "first_name": "B"})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::CONFLICT,
        "already_exists",
        None,
        "duplicate id",
    );
    let (s, v) = app
        .call(
            Method::PATCH,
            "/v1/contacts/crm-1",
            Some(json!({"id": "crm-2"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = app
        .call(
            Method::PATCH,
            "/v1/contacts/nobody",
            Some(json!({"first_name": "x"})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        "missing record",
    );
    let (s, v) = app.call(Method::GET, "/v1/contacts/bad%20id", None).await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some("id"),
        "bad path id",
    );
    let other = app.other_tenant_key("acme").await;
    let (s, _) = app
        .call_as(&other, Method::GET, "/v1/contacts/crm-1", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's record");
}

#[tokio::test]
async fn lists_filter_by_tag_time_and_search_with_a_cursor() {
    let app = spawn_app().await;
    for (first, company, tag) in [
        ("Ada", "Analytical", "vip"),
        ("Grace", "Navy", "vip"),
        ("Alan", "Bletchley", "math"),
        ("Edsger", "Eindhoven", "math"),
    ] {
        app.write(Method::POST, "/v1/contacts", Some(json!({"first_name": first, "company": company, "tags": [{"name": tag, "type": "t"}]}))).await;
    }
    let names = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["data"]["first_name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, v) = app.call(Method::GET, "/v1/contacts?tag=vip", None).await;
    assert_eq!(names(&v), ["Grace", "Ada"]);
    let (_, v) = app
        .call(Method::GET, "/v1/contacts?search=bletch", None)
        .await;
    assert_eq!(names(&v), ["Alan"]);
    let (_, v) = app
        .call(Method::GET, "/v1/contacts?search=ada%20", None)
        .await;
    assert_eq!(names(&v), ["Ada"]);
    let (_, v) = app
        .call(
            Method::GET,
            "/v1/contacts?updated_since=2000-01-01T00:00:00Z&limit=3",
            None,
        )
        .await;
    assert_eq!(names(&v).len(), 3);
    let cursor = v["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .call(
            Method::GET,
            &format!("/v1/contacts?limit=3&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(names(&rest), ["Ada"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (s, v) = app
        .call(Method::GET, "/v1/contacts?updated_since=soon", None)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        Some("updated_since"),
        "bad updated_since",
    );
}

#[tokio::test]
async fn importing_10000_contacts_arrives_as_100_batches() {
    let (app, rx) = app_with_receiver(json!({"events": ["contact.created"]})).await;
    let contacts: Vec<Value> = (0..10_000)
        .map(|i| json!({"first_name": format!("Person {i}"), "primary_email": format!("p{i}@example.com")}))
        .collect();
    let (s, report) = app
        .call(
            Method::POST,
            "/v1/contacts/import",
            Some(Value::Array(contacts)),
        )
        .await;
    // More than `job_step` (1,000) rows: a background job, committed 1,000 rows at a time.
    assert_eq!(s, StatusCode::ACCEPTED, "{report}");
    let job_path = format!("/v1/jobs/{}", report["job"]["id"].as_str().unwrap());
    let import_id = report["import_id"].as_str().unwrap().to_string();
    hookline_server::jobs::JobRunner::new(app.hookline.clone())
        .run_once()
        .await
        .unwrap();
    let (_, job) = app.call(Method::GET, &job_path, None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["created"], 10_000, "{job}");
    assert_eq!(job["result"]["failed"], 0, "{job}");
    assert_eq!(job["result"]["batches"], 100, "{job}");
    app.dispatcher.drain().await.unwrap();
    let got: Vec<Value> = rx.received().iter().map(Received::json).collect();
    assert_eq!(got.len(), 100);
    let mut indexes: Vec<i64> = got
        .iter()
        .map(|b| b["batch"]["index"].as_i64().unwrap())
        .collect();
    indexes.sort();
    assert_eq!(indexes, (1..=100).collect::<Vec<_>>());
    let mut emails = std::collections::HashSet::new();
    for b in &got {
        assert_eq!(b["source"], "contact_import");
        assert_eq!(b["source_id"], import_id.as_str());
        assert_eq!(b["batch"]["count"], 100);
        assert_eq!(b["batch"]["max_size"], 100);
        assert_eq!(b["data"]["event_type"], "contacts.created");
        for c in b["data"]["contacts"].as_array().unwrap() {
            emails.insert(c["primary_email"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(emails.len(), 10_000, "every contact arrived exactly once");
    let (_, page) = app.call(Method::GET, "/v1/contacts?limit=1", None).await;
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn csv_import_reports_bad_rows_and_keeps_the_good_ones() {
    let (app, rx) =
        app_with_receiver(json!({"events": ["contact.created"], "format": "flat"})).await;
    let csv = "First Name,last_name,Email:Work,email:Home,Phone:Mobile,tags,social:linkedin\n\
               Ada,Lovelace,ada@work.com,ada@home.com,+44 20 1234,vip;math,https://linkedin.com/in/ada\n\
               ,,,,,,\n\
               Bad,Email,not-an-email,,,,\n\
               Grace,Hopper,grace@navy.mil,,,,\n\
               \"Quoted, Name\",X,q@x.com,,,,\n";
    let resp = app
        .client
        .post(format!("{}/v1/contacts/import", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["created"], 3, "{report}");
    assert_eq!(report["failed"], 2);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[1]["status"], "error");
    assert_eq!(rows[1]["error"]["field"], "first_name");
    assert_eq!(rows[2]["error"]["field"], "primary_email");
    app.dispatcher.drain().await.unwrap();
    // The flat format carries one object per request: one delivery per imported contact.
    let got: Vec<Value> = rx.received().iter().map(Received::json).collect();
    assert_eq!(got.len(), 3);
    let ada = got
        .iter()
        .find(|b| b["data"]["first_name"] == "Ada")
        .unwrap();
    assert_eq!(
        ada["data"]["emails"],
        json!([{"label": "Work", "value": "ada@work.com"}, {"label": "Home", "value": "ada@home.com"}])
    );
    assert_eq!(ada["data"]["primary_phone"], "+44 20 1234");
    assert_eq!(ada["data"]["tags"][1]["name"], "math");
    assert!(got
        .iter()
        .any(|b| b["data"]["first_name"] == "Quoted, Name"));
    let resp = app
        .client
        .post(format!("{}/v1/contacts/import", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "text/csv")
        .body("shoe size\n42\n")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_column", "{v}");
    let resp = app
        .client
        .post(format!("{}/v1/contacts/import", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn csv_import_with_an_unterminated_quote_mid_file_skips_only_that_row() {
    let app = spawn_app().await;
    let csv = "first_name,last_name,email\n\
               Ada,Lovelace,ada@example.com\n\
               \"Broken,Quote,broken@example.com\n\
               Grace,Hopper,grace@example.com\n\
               Linus,Torvalds,linus@example.com\n";
    let resp = app
        .client
        .post(format!("{}/v1/contacts/import", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["created"], 3, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[1]["status"], "error", "{report}");
    assert!(
        rows[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unterminated"),
        "{report}"
    );
    let (_, list) = app.call(Method::GET, "/v1/contacts?limit=10", None).await;
    let mut names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"]["first_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ada", "Grace", "Linus"]);
}

#[tokio::test]
async fn bulk_delete_sends_one_event_with_every_id() {
    let (app, rx) = app_with_receiver(json!({"events": ["contact.deleted"]})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = app
            .write(
                Method::POST,
                "/v1/contacts",
                Some(json!({"first_name": format!("P{i}")})),
            )
            .await;
        ids.push(c["data"]["id"].as_str().unwrap().to_string());
    }
    let mut asked = ids[..4].to_vec();
    asked.push("ghost".into());
    let v = app
        .write(
            Method::POST,
            "/v1/contacts/bulk-delete",
            Some(json!({"ids": asked})),
        )
        .await;
    assert_eq!(v["deleted"], json!(ids[..4]));
    assert_eq!(v["not_found"], json!(["ghost"]));
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    app.dispatcher.drain().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"]["contact_ids"], json!(ids[..4]));
    let (_, list) = app.call(Method::GET, "/v1/contacts", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/contacts/bulk-delete",
            Some(json!({"ids": []})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test]
async fn concurrent_updates_to_one_contact_form_a_correct_chain_of_changes() {
    let (app, rx) = app_with_receiver(json!({"events": ["contact.updated"]})).await;
    let c = app
        .write(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "v0"})),
        )
        .await;
    let path = format!("/v1/contacts/{}", c["data"]["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for i in 1..=20 {
        let req = app
            .client
            .patch(format!("{}{path}", app.base))
            .bearer_auth(&app.key)
            .json(&json!({"first_name": format!("v{i}")}));
        tasks.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    app.dispatcher.drain().await.unwrap();
    let changes: Vec<(String, String)> = rx
        .received()
        .iter()
        .map(|r| {
            let ch = &r.json()["data"]["changes"]["first_name"];
            (
                ch["previous"].as_str().unwrap().to_string(),
                ch["current"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 20);
    // Each change starts where the previous one ended: follow the chain from v0.
    let next: std::collections::HashMap<_, _> = changes.iter().cloned().collect();
    assert_eq!(next.len(), 20, "no two writes saw the same previous value");
    let mut at = "v0".to_string();
    for _ in 0..20 {
        at = next
            .get(&at)
            .unwrap_or_else(|| panic!("chain broken at {at}: {changes:?}"))
            .clone();
    }
    let (_, stored) = app.call(Method::GET, &path, None).await;
    assert_eq!(stored["data"]["first_name"], at.as_str());
    assert_eq!(stored["version"], 21);
}

#[tokio::test]
async fn actor_and_source_reach_the_event() {
    let (app, rx) = app_with_receiver(json!({"format": "entity"})).await;
    let resp = app
        .client
        .post(format!("{}/v1/contacts", app.base))
        .bearer_auth(&app.key)
        .header("x-actor-id", "user_42")
        .json(&json!({"first_name": "A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    app.dispatcher.drain().await.unwrap();
    let b = rx.received()[0].json();
    assert_eq!(b["data"]["userId"], "user_42");
    assert_eq!(b["data"]["companyId"], "default");
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"][0]["source"], "api");
    assert_eq!(events["data"][0]["actor_id"], "user_42");
}

#[tokio::test]
async fn concurrent_creates_of_one_id_make_one_record_and_one_409() {
    let app = spawn_app().await;
    for round in 0..5 {
        let id = format!("race-{round}");
        let mut tasks = Vec::new();
        for name in ["A", "B", "C"] {
            let req = app
                .client
                .post(format!("{}/v1/contacts", app.base))
                .bearer_auth(&app.key)
                .json(&json!({"id": id, "first_name": name}));
            tasks.push(tokio::spawn(
                async move { req.send().await.unwrap().status() },
            ));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [
                StatusCode::CREATED,
                StatusCode::CONFLICT,
                StatusCode::CONFLICT
            ],
            "{id}"
        );
        let (_, got) = app
            .call(Method::GET, &format!("/v1/contacts/{id}"), None)
            .await;
        assert_eq!(got["version"], 1, "{id}: {got}");
    }
    let (_, events) = app
        .call(
            Method::GET,
            "/v1/events?event_type=contact.created&limit=100",
            None,
        )
        .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        5,
        "one created event per id"
    );
}
