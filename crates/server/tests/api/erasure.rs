//! Right to erasure: after the job, no byte of the record is left in any table of either store,
//! nor (SQLite) anywhere in the database files; batches keep their other objects and the
//! deliveries of those still carry the right one.

use super::*;

impl TestApp {
    async fn run_erasures(&self) {
        hookline_server::jobs::JobRunner::new(self.hookline.clone())
            .run_once()
            .await
            .unwrap();
    }

    fn database_url(&self) -> String {
        match &self._db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("test.db").display()),
        }
    }
}

/// Texts that only the erased contact holds.
const ITS_NAME: &str = "Zerelda";
const ITS_EMAIL: &str = "zerelda.qvist@example.org";
const ITS_NOTE: &str = "allergic-to-marzipan";

#[tokio::test]
async fn an_erased_contact_leaves_no_byte_behind() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    // One webhook gets whole batches, one gets an object per delivery.
    app.create(json!({"url": rx.url, "events": ["contact.*"]}))
        .await;
    app.create(json!({"url": rx.url, "events": ["contact.*"], "format": "flat"}))
        .await;

    // The contact is written through the records API, with an Idempotency-Key (its stored answer
    // shows the contact), then changed (the event's `changes` hold the old values).
    let resp = app
        .client
        .post(format!("{}/v1/contacts", app.base))
        .bearer_auth(&app.key)
        .header("idempotency-key", "create-zerelda")
        .json(&json!({"first_name": ITS_NAME, "primary_email": ITS_EMAIL, "notes": ITS_NOTE}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let id = created["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {created}"))
        .to_string();
    let (s, v) = app
        .call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(json!({"notes": format!("{ITS_NOTE}, and more")})),
        )
        .await;
    assert!(s.is_success(), "{s} {v}");
    // A batch carrying it between two others; and an event about another contact.
    let (s, batch) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": [
                {"id": "c_keep_1", "first_name": "Ada"},
                {"id": id, "first_name": ITS_NAME, "primary_email": ITS_EMAIL},
                {"id": "c_keep_2", "first_name": "Grace"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{batch}");
    // Every receiver answer echoes the person: the log keeps answers.
    for _ in 0..8 {
        rx.then(Reply {
            body: format!("got {ITS_NAME} <{ITS_EMAIL}>").into_bytes(),
            ..Reply::status(200)
        });
    }
    app.dispatcher.drain().await.unwrap();
    // created + updated: 1 + 1 each for both webhooks; batch: 1 + 3.
    assert_eq!(rx.received().len(), 8);
    // An event about another contact, answered plainly.
    let (s, other) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": {"id": "c_other", "first_name": "Lin"}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{other}");
    app.dispatcher.drain().await.unwrap();
    assert_eq!(rx.received().len(), 10);
    let url = app.database_url();
    for needle in [ITS_NAME, ITS_EMAIL, ITS_NOTE] {
        assert!(
            !hookline_store::testing::tables_holding(&url, needle)
                .await
                .is_empty(),
            "{needle} should be stored before the erasure"
        );
    }

    let (s, erasure) = app
        .call(
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "contact", "entity_id": id})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{erasure}");
    assert_eq!(erasure["status"], "queued");
    app.run_erasures().await;
    let (s, done) = app
        .call(
            Method::GET,
            &format!("/v1/erasures/{}", erasure["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "succeeded", "{done}");
    let erased = &done["erased"];
    assert_eq!(erased["events_dropped"], 2, "{done}");
    assert_eq!(erased["events_rewritten"], 1, "{done}");
    assert_eq!(erased["records_removed"], 1, "{done}");
    assert_eq!(erased["stored_answers_removed"], 1, "{done}");
    // created/updated: 2 deliveries each; the batch's flat delivery of the contact.
    assert_eq!(erased["deliveries_removed"], 5, "{done}");
    assert_eq!(erased["attempts_removed"], 5, "{done}");
    // The batch's envelope delivery and its two remaining flat ones lose the answer.
    assert_eq!(erased["attempts_redacted"], 3, "{done}");

    for needle in [ITS_NAME, ITS_EMAIL, ITS_NOTE] {
        assert_eq!(
            hookline_store::testing::tables_holding(&url, needle).await,
            Vec::<String>::new(),
            "{needle} is still stored"
        );
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        // Free pages and the WAL included.
        for file in [path.to_string(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in [ITS_NAME, ITS_EMAIL, ITS_NOTE] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} is still in {file}"
                );
            }
        }
    }

    // The record is gone; the batch keeps its other two objects, in order.
    let (s, _) = app
        .call(Method::GET, &format!("/v1/contacts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let batch_id = batch["data"][0]["id"]
        .as_str()
        .or(batch["id"].as_str())
        .unwrap_or_else(|| panic!("no event id in {batch}"))
        .to_string();
    let (s, event) = app
        .call(Method::GET, &format!("/v1/events/{batch_id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{event}");
    assert_eq!(
        event["data"],
        json!([{"id": "c_keep_1", "first_name": "Ada"}, {"id": "c_keep_2", "first_name": "Grace"}])
    );
    // The flat delivery that carried the third object carries it still: resent, it sends Grace.
    let third = batch["data"][0]["delivery_ids"]
        .as_array()
        .or(batch["delivery_ids"].as_array())
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let before = rx.received().len();
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{third}/resend"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    app.dispatcher.drain().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), before + 1);
    assert_eq!(got[before].json()["data"]["first_name"], "Grace");

    // The audit lists it; other records are untouched.
    let (s, list) = app.call(Method::GET, "/v1/erasures", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["entity_id"], id.as_str());
    let other_id = other["data"][0]["id"]
        .as_str()
        .or(other["id"].as_str())
        .unwrap()
        .to_string();
    let (s, _) = app
        .call(Method::GET, &format!("/v1/events/{other_id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn an_erasure_request_is_checked_and_needs_a_full_key() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "person", "entity_id": "p_1"})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        Some("entity_type"),
        "unknown type",
    );
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "contact", "entity_id": ""})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        Some("entity_id"),
        "empty id",
    );
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "contact"})),
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{v}");

    let (s, created) = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "reader", "scope": "read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let read = created["key"].as_str().unwrap().to_string();
    let (s, v) = app
        .call_as(
            &read,
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "contact", "entity_id": "c_1"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/v1/erasures/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// `log_redact`: the named fields never reach the stored event (nor `changes`), receivers get
/// them on every attempt while a delivery may still be sent, and the sealed copy goes with the
/// last of them.
#[tokio::test]
async fn log_redact_keeps_fields_out_of_the_log_but_not_from_receivers() {
    let mut config = local_receivers();
    config.push((
        "log_redact",
        "data.primary_email,data.emails[*].value".into(),
    ));
    let app = spawn_app_with(&config).await;
    let rx = Receiver::start().await;
    app.create(json!({"url": rx.url, "events": ["contact.*"]}))
        .await;
    const EMAIL: &str = "hedda.q@example.org";
    const NEW_EMAIL: &str = "hedda.new@example.org";
    let (s, created) = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "Hedda", "primary_email": EMAIL,
                        "emails": [{"label": "Work", "value": EMAIL}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    // The first try of the creation fails: its retry must still carry the email.
    rx.then(Reply::status(503));
    app.dispatcher.drain().await.unwrap();
    let (s, updated) = app
        .call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(json!({"primary_email": NEW_EMAIL})),
        )
        .await;
    assert!(s.is_success(), "{updated}");
    app.dispatcher.drain().await.unwrap();

    // Stored and shown redacted: data and changes.
    let (_, events) = app.call(Method::GET, "/v1/events", None).await;
    let events: Vec<Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity_type"] == "contact")
        .cloned()
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let update = &events[0];
    assert_eq!(update["data"]["primary_email"], "[redacted]", "{update}");
    assert_eq!(update["changes"]["primary_email"]["previous"], "[redacted]");
    assert_eq!(update["changes"]["primary_email"]["current"], "[redacted]");
    assert_eq!(events[1]["data"]["emails"][0]["value"], "[redacted]");
    assert_eq!(events[1]["data"]["emails"][0]["label"], "Work");
    let url = app.database_url();
    for needle in [EMAIL, NEW_EMAIL] {
        // Only the contact itself holds it (the CRM record is not a log).
        assert_eq!(
            hookline_store::testing::tables_holding(&url, needle).await,
            ["entities"],
            "{needle}"
        );
    }

    // A retention pass keeps the copy of the event whose delivery still waits for its retry...
    let long_ago = hookline_core::time::now() - chrono::Duration::days(3650);
    app.hookline.store.prune(long_ago, long_ago).await.unwrap();
    app.hookline
        .store
        .travel(std::time::Duration::from_secs(400))
        .await
        .unwrap();
    app.dispatcher.run_once().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 3, "503, then the update, then the retry");
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    assert!(
        bodies.iter().all(|b| !b.to_string().contains("[redacted]")),
        "{bodies:?}"
    );
    // The retried creation carries the email (twice: primary and in `emails`); the update, the
    // new one and, in its changes, the old one.
    assert_eq!(
        bodies[2].to_string().matches(EMAIL).count(),
        2,
        "{}",
        bodies[2]
    );
    assert!(bodies[1].to_string().contains(NEW_EMAIL), "{}", bodies[1]);
    assert!(bodies[1].to_string().contains(EMAIL), "{}", bodies[1]);

    // ...and drops both once nothing may be sent: a resend now carries the redacted text.
    app.hookline.store.prune(long_ago, long_ago).await.unwrap();
    let (_, deliveries) = app.call(Method::GET, "/v1/deliveries", None).await;
    let first = deliveries["data"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/v1/deliveries/{first}/resend"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    app.dispatcher.drain().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 4);
    let resent = got[3].json().to_string();
    assert!(
        resent.contains("[redacted]") && !resent.contains(EMAIL) && !resent.contains(NEW_EMAIL),
        "{resent}"
    );
}

/// With `log_redact`, an erasure that rewrites a batch keeps the sealed values of the objects
/// left: a delivery still waiting sends them for real, and nothing of the erased one.
#[tokio::test]
async fn an_erasure_keeps_the_redacted_values_of_the_rest_of_a_batch() {
    let mut config = local_receivers();
    config.push(("log_redact", "data.primary_email".into()));
    let app = spawn_app_with(&config).await;
    let rx = Receiver::start().await;
    app.create(json!({"url": rx.url, "events": ["contact.*"]}))
        .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": [
                {"id": "c_a", "primary_email": "a@ex.org"},
                {"id": "c_b", "primary_email": "b@ex.org"},
                {"id": "c_c", "primary_email": "c@ex.org"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    rx.then(Reply::status(503));
    app.dispatcher.drain().await.unwrap();
    let (s, e) = app
        .call(
            Method::POST,
            "/v1/erasures",
            Some(json!({"entity_type": "contact", "entity_id": "c_b"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{e}");
    hookline_server::jobs::JobRunner::new(app.hookline.clone())
        .run_once()
        .await
        .unwrap();
    app.hookline
        .store
        .travel(std::time::Duration::from_secs(400))
        .await
        .unwrap();
    app.dispatcher.run_once().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 2, "the 503, then the retry");
    let retry = got[1].json().to_string();
    assert!(
        retry.contains("a@ex.org") && retry.contains("c@ex.org"),
        "{retry}"
    );
    assert!(
        !retry.contains("b@ex.org") && !retry.contains("c_b"),
        "{retry}"
    );
    assert!(!retry.contains("[redacted]"), "{retry}");
    let url = app.database_url();
    assert!(hookline_store::testing::tables_holding(&url, "b@ex.org")
        .await
        .is_empty());
}
