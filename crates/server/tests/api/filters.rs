//! Webhook payload filters through the API: validated when saved (422 with the position), tried
//! out at `POST /v1/webhooks/filter-test`, and applied at fan-out (a filtered-out event creates no
//! delivery).

use super::*;

impl TestApp {
    async fn publish_one(&self, body: Value, actor: Option<&str>) -> Vec<String> {
        let mut req = self
            .client
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(&self.key)
            .json(&body);
        if let Some(a) = actor {
            req = req.header("X-Actor-Id", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let v: Value = resp.json().await.unwrap();
        v["delivery_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    }

    /// The webhooks the deliveries `ids` go to, sorted.
    async fn webhooks_of(&self, ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for id in ids {
            let (s, v) = self
                .call(Method::GET, &format!("/v1/deliveries/{id}"), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            out.push(v["webhook_id"].as_str().unwrap().to_string());
        }
        out.sort();
        out
    }
}

#[tokio::test]
async fn filters_are_validated_stored_shown_and_cleared() {
    let app = spawn_app().await;
    // A refused filter names the field and the position, at create and at update.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://example.com/a", "events": ["*"], "filter": "data.amount >= "})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
        Some("filter"),
        "create",
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("filter: at position 15: "), "{message}");
    for (bad, position) in [
        ("data.stage = \"won\"", 11),
        ("", 0),
        ("data.tags[*].name", 0),
        ("\"vip\" in data.tags[*].name &&", 29),
    ] {
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(json!({"url": "https://example.com/a", "events": ["*"], "filter": bad})),
            )
            .await;
        assert_error(
            s,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_filter",
            Some("filter"),
            bad,
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.starts_with(&format!("filter: at position {position}: ")),
            "{bad}: {m}"
        );
    }
    // A NUL can't be stored (the shared text rule), even inside a string literal.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://example.com/a", "events": ["*"], "filter": "type == \"a\u{0}\""})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "control_character",
        Some("filter"),
        "NUL",
    );

    let source = "\"vip\" in data.tags[*].name\n  && data.amount >= 1000";
    let created = app
        .create(json!({"url": "https://example.com/a", "events": ["*"], "filter": source}))
        .await;
    assert_eq!(created["filter"], source, "stored as written");
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    let (_, got) = app.call(Method::GET, &path, None).await;
    assert_eq!(got["filter"], source);
    let (_, listed) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["data"][0]["filter"], source);

    // A bad update changes nothing; an absent filter keeps it; null removes it.
    let (s, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"filter": "size(data.tags) >"})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
        Some("filter"),
        "patch",
    );
    let (_, p) = app
        .call(Method::PATCH, &path, Some(json!({"name": "renamed"})))
        .await;
    assert_eq!(p["filter"], source);
    let (_, p) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"filter": "type == 'deal.updated'"})),
        )
        .await;
    assert_eq!(p["filter"], "type == 'deal.updated'");
    let (_, p) = app
        .call(Method::PATCH, &path, Some(json!({"filter": null})))
        .await;
    assert_eq!(p["filter"], Value::Null);
    let plain = app.create(hook("https://example.com/b")).await;
    assert_eq!(plain["filter"], Value::Null);
}

#[tokio::test]
async fn filter_test_evaluates_like_fan_out_and_names_the_position_of_an_error() {
    let app = spawn_app().await;
    let event = json!({"type": "deal.updated", "data": {"amount": 1500, "tags": [{"name": "vip"}]},
                       "changes": {"owner_id": {"previous": "a", "current": "b"}}});
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "changes.owner_id != null && data.amount >= 1000", "event": event})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["matches"], true);
    assert_eq!(v["value"], true);
    assert_eq!(v["exhausted"], false);
    assert!(v["steps"].as_u64().unwrap() > 0);
    // A missing field is null: the comparison is false, not an error.
    let (_, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "data.stage == \"won\"", "event": event})),
        )
        .await;
    assert_eq!(v["matches"], false);
    assert_eq!(v["value"], false);
    // A bare path is a condition: it matches only when it is `true`.
    let (_, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "data.flags.beta", "event": event})),
        )
        .await;
    assert_eq!(
        (v["matches"].clone(), v["value"].clone()),
        (json!(false), Value::Null)
    );

    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "data.amount >= 1000 &&", "event": event})),
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
        Some("filter"),
        "bad",
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("filter: at position 22: "),
        "{v}"
    );
    // `event` is required; the route is its own, not a webhook id.
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "true"})),
        )
        .await;
    assert!(s.is_client_error() && s != StatusCode::NOT_FOUND, "{s} {v}");
    let (s, _) = app
        .call_as(
            "hk_wrong",
            Method::POST,
            "/v1/webhooks/filter-test",
            Some(json!({"filter": "true", "event": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_webhooks_whose_filter_matches_get_a_delivery() {
    let app = spawn_app().await;
    let mk = |filter: Option<&str>| {
        let mut b = json!({"url": "https://example.com/h", "events": ["deal.*", "contact.*"]});
        if let Some(f) = filter {
            b["filter"] = json!(f);
        }
        b
    };
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let vip = id(app.create(mk(Some(r#""vip" in data.tags[*].name"#))).await);
    let reassigned_big = id(app
        .create(mk(Some("changes.owner_id != null && data.amount >= 1000")))
        .await);
    let by_actor = id(app
        .create(mk(Some(
            r#"type.startsWith("deal.") && actor == "u_7" && source == "api""#,
        )))
        .await);
    let all = id(app.create(mk(None)).await);

    // Everything matches but the reassignment rule (no `changes`).
    let d = app
        .publish_one(
            json!({"event_type": "deal.created", "source": "api",
                   "data": {"id": "d1", "amount": 5000, "tags": [{"name": "new"}, {"name": "vip"}]}}),
            Some("u_7"),
        )
        .await;
    let mut want = vec![vip.clone(), by_actor.clone(), all.clone()];
    want.sort();
    assert_eq!(app.webhooks_of(&d).await, want);

    // A big reassigned deal, without tags, published by someone else.
    let d = app
        .publish_one(
            json!({"event_type": "deal.updated", "data": {"id": "d1", "amount": 1000},
                   "changes": {"owner_id": {"previous": "u1", "current": "u2"}}}),
            Some("u_8"),
        )
        .await;
    let mut want = vec![reassigned_big.clone(), all.clone()];
    want.sort();
    assert_eq!(app.webhooks_of(&d).await, want);

    // Too small, and `changes` without the owner: only the unfiltered webhook.
    for body in [
        json!({"event_type": "deal.updated", "data": {"id": "d1", "amount": 999},
               "changes": {"owner_id": {"previous": "u1", "current": "u2"}}}),
        json!({"event_type": "deal.updated", "data": {"id": "d1", "amount": 5000},
               "changes": {"stage": {"previous": "a", "current": "b"}}}),
        json!({"event_type": "contact.created", "data": {"id": "c1", "tags": ["vip"]}}),
    ] {
        let d = app.publish_one(body.clone(), None).await;
        assert_eq!(app.webhooks_of(&d).await, [all.as_str()], "{body}");
    }

    // Removing a filter takes effect at the next publish.
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{vip}"),
            Some(json!({"filter": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let d = app
        .publish_one(
            json!({"event_type": "contact.created", "data": {"id": "c2"}}),
            None,
        )
        .await;
    let mut want = vec![vip, all];
    want.sort();
    assert_eq!(app.webhooks_of(&d).await, want);
}
