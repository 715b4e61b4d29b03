//! The console and the portal at the HTTP level: sign-in, sessions, CSRF, security headers,
//! capability checks and scoping. (The same flows run in Chromium in scripts/console-e2e.)

use super::*;
use reqwest::redirect::Policy;

/// A browser-like client: keeps no cookies by itself (each test carries its cookie), never
/// follows redirects, so each answer is seen as sent.
fn browser() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn cookie_of(resp: &reqwest::Response) -> String {
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn sign_in(app: &TestApp, key: &str) -> (String, String) {
    let c = browser();
    let resp = c
        .post(format!("{}/login", app.base))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&resp);
    let page = get(app, &cookie, "/webhooks").await;
    (cookie, csrf_in(&page.1))
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &html[at + 20..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = browser()
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_a_clear_message_and_a_good_one_signs_in() {
    let app = spawn_app().await;
    let resp = browser()
        .post(format!("{}/login", app.base))
        .form(&[("key", "hk_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("That API key is not valid"));

    let resp = browser()
        .post(format!("{}/login", app.base))
        .form(&[("key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/webhooks");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    // The token is never stored: only its hash could match, and the cookie isn't the API key.
    assert!(!set.contains(&app.key));
    let cookie = set.split(';').next().unwrap();
    let (s, page) = get(&app, cookie, "/webhooks").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<h1>Webhooks</h1>"));
    // Behind a TLS proxy the cookie is Secure.
    let resp = browser()
        .post(format!("{}/login", app.base))
        .header("x-forwarded-proto", "https")
        .form(&[("key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn pages_carry_strict_security_headers() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app, &app.key).await;
    for path in ["/login", "/webhooks", "/deliveries", "/event-types"] {
        let resp = browser()
            .get(format!("{}{path}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    }
}

#[tokio::test]
async fn without_a_session_pages_redirect_to_sign_in() {
    let app = spawn_app().await;
    for path in ["/", "/webhooks", "/deliveries", "/webhooks/new"] {
        let resp = browser()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login"));
    }
    let (s, _) = get(&app, "hookline_session=hlc_forged", "/webhooks").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn state_changes_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let form = [
        ("url", "https://hooks.example.com/x"),
        ("events", "contact.created"),
        ("format", "envelope"),
    ];
    for token in [None, Some("wrong")] {
        let mut f: Vec<(&str, &str)> = form.to_vec();
        if let Some(t) = token {
            f.push(("_csrf", t));
        }
        let resp = post(&app, &cookie, "/webhooks/new", &f).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{token:?}");
    }
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
    let mut f = form.to_vec();
    f.push(("_csrf", &csrf));
    let resp = post(&app, &cookie, "/webhooks/new", &f).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let page = resp.text().await.unwrap();
    assert!(page.contains("whsec_"), "the secret is shown once");
    // Signing out needs the token too.
    let resp = post(&app, &cookie, "/logout", &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(&app, &cookie, "/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (s, _) = get(&app, &cookie, "/webhooks").await;
    assert_eq!(s, StatusCode::SEE_OTHER, "the session ended");
}

#[tokio::test]
async fn invalid_fields_come_back_beside_the_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let resp = post(
        &app,
        &cookie,
        "/webhooks/new",
        &[
            ("_csrf", &csrf),
            ("url", "http://169.254.169.254/latest"),
            ("events", "contact.created"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"f-url-error\""), "{page}");
    assert!(page.contains("value=\"http://169.254.169.254/latest\""));
    let resp = post(
        &app,
        &cookie,
        "/webhooks/new",
        &[
            ("_csrf", &csrf),
            ("url", "https://hooks.example.com/x"),
            ("patterns", "contact.exploded"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.unwrap().contains("contact.exploded"));
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn names_and_receiver_answers_are_shown_as_text() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    rx.then(Reply {
        body: b"<script>alert(1)</script>".to_vec(),
        ..Reply::status(200)
    });
    let hook = app
        .create(json!({"url": rx.url, "events": ["contact.created"], "name": "<img src=x onerror=alert(1)>"}))
        .await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let (_, list) = get(&app, &cookie, "/webhooks").await;
    assert!(!list.contains("<img src=x"));
    assert!(list.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let id = hook["id"].as_str().unwrap();
    let resp = post(
        &app,
        &cookie,
        &format!("/webhooks/{id}/action"),
        &[("_csrf", &csrf), ("op", "test")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)</script>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test]
async fn sessions_end_after_the_idle_time() {
    let app = spawn_app_with(&[("console_session_idle", "1s".to_string())]).await;
    let (cookie, _) = sign_in(&app, &app.key).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = browser()
        .get(format!("{}/webhooks", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?expired=1");
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_address() {
    let app = spawn_app().await;
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        last = browser()
            .post(format!("{}/login", app.base))
            .form(&[("key", "hk_guess")])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right key waits now.
    let resp = browser()
        .post(format!("{}/login", app.base))
        .form(&[("key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn portal(app: &TestApp, body: Value) -> Value {
    let (s, v) = app
        .call(Method::POST, "/v1/portal-sessions", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn open_portal(app: &TestApp, url: &str) -> reqwest::Response {
    let path = &url[url.find("/portal/").unwrap()..];
    browser()
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_portal_link_works_once_and_is_scoped_to_its_webhooks() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let a = app
        .create(json!({"url": rx.url, "events": ["contact.created"], "name": "mine"}))
        .await;
    let b = app
        .create(json!({"url": rx.url, "events": ["deal.created"], "name": "theirs"}))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    for (event, id) in [("contact.created", "c1"), ("deal.created", "d1")] {
        app.call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": event, "data": {"id": id}})),
        )
        .await;
    }
    app.dispatcher.drain().await.unwrap();
    let (_, log) = app.call(Method::GET, "/v1/deliveries", None).await;
    let delivery_of = |w: &str| {
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["webhook_id"] == w)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (da, db) = (delivery_of(a), delivery_of(b));

    let minted = portal(&app, json!({"webhook_ids": [a], "expires_in": "1h"})).await;
    let url = minted["url"].as_str().unwrap();
    assert!(url.contains("/portal/hlp_"), "{url}");
    let resp = open_portal(&app, url).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&resp);
    assert_eq!(
        open_portal(&app, url).await.status(),
        StatusCode::UNAUTHORIZED,
        "once only"
    );

    let (_, page) = get(&app, &cookie, "/webhooks").await;
    assert!(page.contains("mine") && !page.contains("theirs"), "{page}");
    assert_eq!(
        get(&app, &cookie, &format!("/webhooks/{b}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &cookie, &format!("/webhooks/{a}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, &cookie, &format!("/deliveries/{db}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &cookie, &format!("/deliveries/{da}")).await.0,
        StatusCode::OK
    );
    let (_, all) = get(&app, &cookie, "/deliveries").await;
    assert!(all.contains(&da[..13]) && !all.contains(&db[..13]));
    let (_, filtered) = get(&app, &cookie, &format!("/deliveries?webhook_id={b}")).await;
    assert!(!filtered.contains(&db[..13]));
    // Default capabilities: no secrets.
    let csrf = csrf_in(&get(&app, &cookie, "/webhooks").await.1);
    let resp = post(
        &app,
        &cookie,
        &format!("/webhooks/{a}/action"),
        &[("_csrf", &csrf), ("op", "reveal")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!resp.text().await.unwrap().contains("whsec_"));
    // A webhook the portal creates joins its list.
    let resp = post(
        &app,
        &cookie,
        "/webhooks/new",
        &[
            ("_csrf", &csrf),
            ("url", &rx.url),
            ("events", "contact.updated"),
            ("name", "made in portal"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, page) = get(&app, &cookie, "/webhooks").await;
    assert!(page.contains("made in portal"));
    // Portal frames follow their own policy.
    let resp = browser()
        .get(format!("{}/webhooks", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors"));

    // Revoked: the session ends at once.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/portal-sessions/{}", minted["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, &cookie, "/webhooks").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_view_only_portal_cant_resend_or_manage() {
    let app = spawn_app_with(&local_receivers()).await;
    let rx = Receiver::start().await;
    let hook = app
        .create(json!({"url": rx.url, "events": ["contact.created"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.call(
        Method::POST,
        "/v1/events",
        Some(json!({"event_type": "contact.created", "data": {"id": "c"}})),
    )
    .await;
    app.dispatcher.drain().await.unwrap();
    let (_, log) = app.call(Method::GET, "/v1/deliveries", None).await;
    let delivery = log["data"][0]["id"].as_str().unwrap().to_string();
    let minted = portal(&app, json!({"capabilities": ["view"]})).await;
    let cookie = cookie_of(&open_portal(&app, minted["url"].as_str().unwrap()).await);
    let (_, page) = get(&app, &cookie, &format!("/deliveries/{delivery}")).await;
    assert!(!page.contains(">Resend<"));
    // What the receiver deduplicates on is shown beside the record id (the same on a first send).
    assert!(
        page.contains(&format!(
            "Message id</dt><dd><code class=\"wrap\">{delivery}</code>"
        )),
        "{page}"
    );
    let csrf = csrf_in(&page);
    let resp = post(
        &app,
        &cookie,
        &format!("/deliveries/{delivery}/resend"),
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    for op in ["test", "disable", "delete"] {
        let resp = post(
            &app,
            &cookie,
            &format!("/webhooks/{id}/action"),
            &[("_csrf", &csrf), ("op", op), ("confirm", "yes")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{op}");
    }
    assert_eq!(
        get(&app, &cookie, "/webhooks/new").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(rx.received().len(), 1, "nothing more was sent");
    let (s, still) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(still["enabled"], true);
}

#[tokio::test]
async fn portal_grants_are_validated_and_revocable_in_bulk() {
    let app = spawn_app().await;
    let cases = [
        (json!({"capabilities": ["fly"]}), "capabilities[0]"),
        (json!({"expires_in": "90d"}), "expires_in"),
        (
            json!({"webhook_ids": [uuid::Uuid::now_v7()]}),
            "webhook_ids[0]",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app
            .call(Method::POST, "/v1/portal-sessions", Some(body))
            .await;
        assert_error(
            s,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            v["error"]["code"].as_str().unwrap(),
            Some(field),
            field,
        );
    }
    let one = portal(&app, json!({})).await;
    let two = portal(&app, json!({})).await;
    let c1 = cookie_of(&open_portal(&app, one["url"].as_str().unwrap()).await);
    let (s, v) = app.call(Method::DELETE, "/v1/portal-sessions", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["revoked"], 2);
    assert_eq!(get(&app, &c1, "/webhooks").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        open_portal(&app, two["url"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Another tenant can't revoke this tenant's links.
    let three = portal(&app, json!({})).await;
    let other = app.other_tenant_key("other").await;
    let (s, _) = app
        .call_as(
            &other,
            Method::DELETE,
            &format!("/v1/portal-sessions/{}", three["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        open_portal(&app, three["url"].as_str().unwrap())
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

/// A new key of the app's tenant through the API: (id, key).
async fn api_key(app: &TestApp, body: Value) -> (String, String) {
    let (s, v) = app.call(Method::POST, "/v1/api-keys", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn the_keys_page_lists_creates_once_and_revokes_after_confirmation() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let (s, page) = get(&app, &cookie, "/keys").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<h1>API keys</h1>"));
    assert!(page.contains(&app.key[..11]), "the bootstrap key's prefix");
    assert!(page.contains("(this session)"));
    assert!(!page.contains(&app.key), "never the key itself");

    // A refused form comes back with the message beside the field and what was typed.
    let resp = post(
        &app,
        &cookie,
        "/keys",
        &[
            ("_csrf", &csrf),
            ("name", "ci"),
            ("scope", "read"),
            ("expires_in", "soon"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"k-expires-error\""), "{page}");
    assert!(page.contains("value=\"soon\""));
    assert!(page.contains("<option value=\"read\" selected"));

    let resp = post(
        &app,
        &cookie,
        "/keys",
        &[
            ("_csrf", &csrf),
            ("name", "CI <deploys>"),
            ("scope", "read"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let page = resp.text().await.unwrap();
    let at = page.find("id=\"new-key\"").expect("the new key is shown");
    let rest = &page[at..];
    let start = rest.find("hk_").unwrap();
    let key = &rest[start..start + 46];
    assert!(page.contains("CI &lt;deploys&gt;"), "names are text");
    // The key works, as a read key, and is never shown again.
    let (s, _) = app.call_as(key, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call_as(
            key,
            Method::POST,
            "/v1/webhooks",
            Some(hook("https://a.example.com/")),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, page) = get(&app, &cookie, "/keys").await;
    assert!(!page.contains(key));
    assert!(page.contains(&key[..11]));

    // Revoking asks for confirmation first.
    let (_, listed) = app.call(Method::GET, "/v1/api-keys", None).await;
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/keys/{id}/revoke");
    let resp = post(&app, &cookie, &path, &[("_csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.call_as(key, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK, "not revoked without confirmation");
    let resp = post(
        &app,
        &cookie,
        &path,
        &[("_csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("Revoked the key"));
    let (s, _) = app.call_as(key, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Without the CSRF token nothing happens.
    let (other_id, other) = api_key(&app, json!({"name": "other"})).await;
    let resp = post(
        &app,
        &cookie,
        &format!("/keys/{other_id}/revoke"),
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (s, _) = app.call_as(&other, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn the_last_full_key_stays_and_revoking_your_own_key_signs_you_out() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let (_, listed) = app.call(Method::GET, "/v1/api-keys", None).await;
    let own = listed["data"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/keys/{own}/revoke");
    let resp = post(
        &app,
        &cookie,
        &path,
        &[("_csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("last active full key"));
    // With another full key it can go, and this browser's session goes with it.
    api_key(&app, json!({"name": "successor"})).await;
    let resp = post(
        &app,
        &cookie,
        &path,
        &[("_csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?expired=1");
    assert_eq!(
        get(&app, &cookie, "/webhooks").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_key_revoked_elsewhere_ends_its_console_sessions() {
    let app = spawn_app().await;
    let (id, key) = api_key(&app, json!({"name": "laptop"})).await;
    let (cookie, _) = sign_in(&app, &key).await;
    assert_eq!(get(&app, &cookie, "/webhooks").await.0, StatusCode::OK);
    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let resp = browser()
        .get(format!("{}/webhooks", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?expired=1");
    // And it can't sign in again.
    let resp = browser()
        .post(format!("{}/login", app.base))
        .form(&[("key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_read_key_gets_a_read_only_console() {
    let app = spawn_app().await;
    let hook = app.create(hook("https://hooks.example.com/a")).await;
    let id = hook["id"].as_str().unwrap();
    let (_, key) = api_key(&app, json!({"name": "wallboard", "scope": "read"})).await;
    let (cookie, csrf) = sign_in(&app, &key).await;
    let (s, page) = get(&app, &cookie, "/webhooks").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("read-only"));
    assert!(!page.contains("New webhook"));
    let (_, page) = get(&app, &cookie, &format!("/webhooks/{id}")).await;
    for action in ["Edit", "Reveal secret", "Send test", "Delete"] {
        assert!(!page.contains(&format!(">{action}<")), "{action}");
    }
    let (s, page) = get(&app, &cookie, "/keys").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("wallboard"));
    assert!(!page.contains("Create key") && !page.contains(">Revoke<"));
    // Forms posted by hand are refused by the service all the same.
    let resp = post(
        &app,
        &cookie,
        "/keys",
        &[("_csrf", &csrf), ("name", "more")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    for op in ["disable", "delete", "reveal", "rotate"] {
        let resp = post(
            &app,
            &cookie,
            &format!("/webhooks/{id}/action"),
            &[("_csrf", &csrf), ("op", op), ("confirm", "yes")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{op}");
    }
    assert_eq!(
        get(&app, &cookie, "/webhooks/new").await.0,
        StatusCode::FORBIDDEN
    );
    let (_, still) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(still["enabled"], true);
    let (_, keys) = app.call(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_edit_form_shows_header_values_masked_and_saving_it_keeps_them() {
    let app = spawn_app().await;
    let w = app
        .create(
            json!({"url": "https://hooks.example.com/x", "events": ["contact.created"],
                       "headers": {"Authorization": "Bearer receiver-token"}}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let (s, page) = get(&app, &cookie, &format!("/webhooks/{id}/edit")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Authorization: Bear…en"), "{page}");
    assert!(!page.contains("receiver-token"));
    let (_, detail) = get(&app, &cookie, &format!("/webhooks/{id}")).await;
    assert!(!detail.contains("receiver-token"));
    // The form posted back as shown, with another name.
    let resp = post(
        &app,
        &cookie,
        &format!("/webhooks/{id}/edit"),
        &[
            ("_csrf", &csrf),
            ("name", "edited"),
            ("url", "https://hooks.example.com/x"),
            ("events", "contact.created"),
            ("format", "envelope"),
            ("ordering", "none"),
            ("enabled", "true"),
            ("headers", "Authorization: Bear…en"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let tenant = app
        .hookline
        .store
        .tenant_by_name("default")
        .await
        .unwrap()
        .unwrap();
    let stored = app
        .hookline
        .store
        .get_webhook(tenant.id, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "edited");
    assert_eq!(stored.headers["Authorization"], "Bearer receiver-token");
}

#[tokio::test]
async fn a_console_session_ends_when_its_key_expires() {
    use hookline_core::time;
    let app = spawn_app().await;
    // A key that expired a second ago, and a session signed in with it while it still worked.
    let minted = hookline_core::signing::generate_api_key();
    let tenant = app.hookline.principal_for_tenant("default").await.unwrap();
    let key = hookline_store::ApiKey {
        id: hookline_core::ids::ApiKeyId::new(),
        tenant_id: tenant.tenant_id,
        name: "short-lived".into(),
        prefix: minted.prefix.clone(),
        key_hash: minted.hash.clone(),
        default_user_id: None,
        created_at: time::now() - chrono::Duration::hours(1),
        scope: hookline_core::api_key::KeyScope::Full,
        expires_at: Some(time::now() - chrono::Duration::seconds(1)),
        last_used_at: None,
        revoked_at: None,
    };
    app.hookline.store.insert_api_key(&key).await.unwrap();
    let token = hookline_core::signing::generate_token("hlc_");
    app.hookline
        .store
        .insert_console_session(&hookline_store::ConsoleSession {
            id_hash: hookline_core::signing::sha256_hex(token.as_bytes()),
            tenant_id: tenant.tenant_id,
            key_id: Some(key.id),
            grant_id: None,
            csrf: "csrf".into(),
            created_at: time::now(),
            last_seen_at: time::now(),
            expires_at: time::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    let cookie = format!("hookline_session={token}");
    let resp = browser()
        .get(format!("{}/webhooks", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?expired=1");
    // A live key's session, made the same way, works: the expiry is what ended the other.
    let token = hookline_core::signing::generate_token("hlc_");
    let (_, listed) = app.call(Method::GET, "/v1/api-keys", None).await;
    let live = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.hookline
        .store
        .insert_console_session(&hookline_store::ConsoleSession {
            id_hash: hookline_core::signing::sha256_hex(token.as_bytes()),
            tenant_id: tenant.tenant_id,
            key_id: Some(live),
            grant_id: None,
            csrf: "csrf".into(),
            created_at: time::now(),
            last_seen_at: time::now(),
            expires_at: time::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    let (s, _) = get(&app, &format!("hookline_session={token}"), "/webhooks").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn the_webhook_form_takes_a_filter_and_shows_its_error_beside_it() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let form = |filter: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("url", "https://hooks.example.com/x".to_string()),
            ("events", "deal.updated".to_string()),
            ("format", "envelope".to_string()),
            ("ordering", "none".to_string()),
            ("enabled", "true".to_string()),
            ("filter", filter.to_string()),
        ]
    };
    let post_form = |f: Vec<(&'static str, String)>, path: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, &cookie, &path, &pairs).await
        }
    };
    let resp = post_form(form("data.amount >=\r\n  "), "/webhooks/new".into()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"f-filter-error\""), "{page}");
    assert!(page.contains("filter: at position 14: "), "{page}");
    assert!(
        page.contains("data.amount &gt;=</textarea>"),
        "the value is kept: {page}"
    );
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    let resp = post_form(
        form("changes.owner_id != null\r\n&& data.amount >= 1000"),
        "/webhooks/new".into(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    let w = &list["data"][0];
    assert_eq!(
        w["filter"],
        "changes.owner_id != null\n&& data.amount >= 1000"
    );
    let id = w["id"].as_str().unwrap();
    let (_, page) = get(&app, &cookie, &format!("/webhooks/{id}")).await;
    assert!(
        page.contains("changes.owner_id != null\n&amp;&amp; data.amount &gt;= 1000"),
        "{page}"
    );
    let (_, edit) = get(&app, &cookie, &format!("/webhooks/{id}/edit")).await;
    assert!(edit.contains("id=\"f-filter\""), "{edit}");
    assert!(edit.contains("data.amount &gt;= 1000</textarea>"), "{edit}");

    // Trying a filter on a sample event saves nothing and says whether it would be delivered.
    let action = format!("/webhooks/{id}/action");
    let tried = |filter: &'static str, event: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("op", "filter_test".to_string()),
            ("filter", filter.to_string()),
            ("event", event.to_string()),
        ]
    };
    let resp = post_form(
        tried(
            "data.amount >= 1000",
            r#"{"type": "deal.updated", "data": {"amount": 1000}}"#,
        ),
        action.clone(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("The filter matches"));
    let resp = post_form(
        tried(
            "data.amount >= 1000",
            r#"{"type": "deal.updated", "data": {}}"#,
        ),
        action.clone(),
    )
    .await;
    assert!(resp.text().await.unwrap().contains("does not match"));
    let resp = post_form(tried("data.amount >=", "{}"), action.clone()).await;
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"ft-error\""), "{page}");
    assert!(page.contains("filter: at position 14: "), "{page}");
    let resp = post_form(tried("true", "{not json"), action).await;
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("the sample event is not JSON"));

    // Emptying the field removes the filter.
    let mut f = form("  ");
    f.push(("name", "edited".into()));
    let resp = post_form(f, format!("/webhooks/{id}/edit")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, got) = app
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(got["filter"], Value::Null);
}

#[tokio::test]
async fn the_erasures_page_erases_after_confirmation_and_shows_the_audit() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app, &app.key).await;
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/contacts",
            Some(json!({"first_name": "Ottilie"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, page) = get(&app, &cookie, "/erasures").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<h1>Erasures</h1>"));
    assert!(page.contains("No erasures."));

    // Not confirmed: nothing queued, the form keeps what was typed.
    let resp = post(
        &app,
        &cookie,
        "/erasures",
        &[
            ("_csrf", &csrf),
            ("entity_type", "contact"),
            ("entity_id", &id),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = resp.text().await.unwrap();
    assert!(page.contains("I'm sure"), "{page}");
    assert!(page.contains(&format!("value=\"{id}\"")));
    // A bad type: the message beside the field.
    let resp = post(
        &app,
        &cookie,
        "/erasures",
        &[
            ("_csrf", &csrf),
            ("entity_type", "person"),
            ("entity_id", &id),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"e-type-error\""), "{page}");
    let (_, list) = app.call(Method::GET, "/v1/erasures", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    let resp = post(
        &app,
        &cookie,
        "/erasures",
        &[
            ("_csrf", &csrf),
            ("entity_type", "contact"),
            ("entity_id", &id),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(resp.text().await.unwrap().contains("queued"));
    hookline_server::jobs::JobRunner::new(app.hookline.clone())
        .run_once()
        .await
        .unwrap();
    let (_, page) = get(&app, &cookie, "/erasures").await;
    assert!(page.contains("succeeded"), "{page}");
    assert!(page.contains("1 events dropped"), "{page}");
    let (s, _) = app
        .call(Method::GET, &format!("/v1/contacts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
