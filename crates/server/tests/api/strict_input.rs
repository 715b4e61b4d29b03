//! Strict input through the REST API, on whichever store the suite runs on (SQLite by default,
//! PostgreSQL with `HOOKLINE_TEST_STORE=postgres`): control characters in every stored text field,
//! URLs refused rather than repaired, the URL policy's special-purpose table, email and header
//! value limits, unknown and repeated query parameters, `Idempotency-Key` on every creating POST,
//! the header limits, and property tests that arbitrary input never answers 5xx.

use super::*;
use hookline_core::url_policy::{IpCidr, SPECIAL_PURPOSE};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PropConfig, TestRng, TestRunner};
use reqwest::header::{HeaderName, HeaderValue};

/// Every control character: C0, DEL, C1.
fn controls() -> Vec<char> {
    (0u32..=0x1f)
        .chain([0x7f])
        .chain(0x80..=0x9f)
        .map(|u| char::from_u32(u).unwrap())
        .collect()
}

/// Collects failures so one run reports every broken row.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    fn finish(self, rows: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {rows} rows failed:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

impl TestApp {
    /// A request with extra headers; answers status, headers and the JSON body (or Null).
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let (status, h) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON {status}: {text}"))
        };
        (status, h, v)
    }
}

/// What a refusal looks like: status, code, field.
fn refusal(status: StatusCode, body: &Value) -> (u16, String, String) {
    (
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("-").to_string(),
        body["error"]["field"].as_str().unwrap_or("-").to_string(),
    )
}

// ---- control characters ------------------------------------------------------------------------

/// One request per control character (65) per text field (15): each is refused with 422
/// `control_character` naming the field, and nothing is stored.
#[tokio::test]
async fn control_characters_in_every_stored_text_field_are_refused_naming_it() {
    let app = spawn_app().await;
    let hook_id = app.create(hook("https://example.com/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut f = Failures::default();
    let mut rows = 0;
    for c in controls() {
        let t = format!("a{c}b");
        let base = || json!({"url": "https://example.com/h", "events": ["contact.created"]});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        #[rustfmt::skip]
        let cases: Vec<(Method, String, Value, &str)> = vec![
            (Method::POST, "/v1/webhooks".into(), with("name", json!(t)), "name"),
            (Method::POST, "/v1/webhooks".into(), with("description", json!(t)), "description"),
            (Method::POST, "/v1/webhooks".into(), with("url", json!(format!("https://example.com/{t}"))), "url"),
            (Method::POST, "/v1/webhooks".into(), with("secret", json!(t)), "secret"),
            (Method::POST, "/v1/webhooks".into(), with("headers", json!({"X-Token": t})), "headers.X-Token"),
            (Method::PATCH, format!("/v1/webhooks/{hook_id}"), json!({"name": t}), "name"),
            // Loopback: were the character let through, the policy would still refuse to send.
            (Method::POST, "/v1/webhooks/test".into(), json!({"url": format!("https://127.0.0.1/{t}")}), "url"),
            (Method::POST, "/v1/events".into(), json!({"event_type": "contact.created", "data": {"id": "c1"}, "source": t}), "source"),
            (Method::POST, "/v1/events".into(), json!({"event_type": "contact.created", "data": {"id": "c1"}, "source_id": t}), "source_id"),
            (Method::POST, "/v1/events".into(), json!({"event_type": "contact.created", "data": {"id": t}}), "data.id"),
            (Method::POST, "/v1/contacts".into(), json!({"first_name": t}), "first_name"),
            (Method::POST, "/v1/contacts".into(), json!({"first_name": "J", "emails": [{"label": t, "value": "j@example.com"}]}), "emails[0].label"),
            (Method::POST, "/v1/organizations".into(), json!({"name": t}), "name"),
            (Method::POST, "/v1/deals".into(), json!({"name": "D", "stage": t}), "stage"),
            (Method::POST, "/v1/tasks".into(), json!({"title": "T", t.clone(): 1}), "."),
        ];
        for (method, path, body, field) in cases {
            rows += 1;
            let (s, v) = app.call(method.clone(), &path, Some(body.clone())).await;
            let got = refusal(s, &v);
            let want = (422, "control_character".to_string(), field.to_string());
            f.check(got == want, || {
                format!(
                    "U+{:04X} {method} {path} {body}: want {want:?}, got {got:?} {v}",
                    c as u32
                )
            });
        }
    }
    f.finish(rows);
    // Nothing of it was stored.
    let (_, v) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = app.call(Method::GET, "/v1/events", None).await;
    assert_eq!(v["data"], json!([]));
    for kind in ["contacts", "organizations", "deals", "tasks"] {
        let (_, v) = app.call(Method::GET, &format!("/v1/{kind}"), None).await;
        assert_eq!(v["data"], json!([]), "{kind}");
    }
}

/// JSON documents stored whole carry escaped control characters unchanged — except NUL, which is
/// refused in any string or key, at any depth, on both stores.
#[tokio::test]
async fn json_documents_keep_escaped_control_characters_but_refuse_nul() {
    let app = spawn_app().await;
    let mut f = Failures::default();
    let mut rows = 0;
    for c in controls() {
        let t = format!("a{c}b");
        let data = json!({"id": "c1", "first_name": "J", "note": t, "nested": [{"k": t}]});
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/events",
                Some(json!({"event_type": "contact.created", "data": data, "changes": {"note": {"previous": null, "current": t}}})),
            )
            .await;
        rows += 1;
        if c == '\0' {
            f.check(
                refusal(s, &v) == (422, "control_character".into(), "data.note".into()),
                || format!("NUL in data: {s} {v}"),
            );
            continue;
        }
        f.check(s == StatusCode::ACCEPTED, || {
            format!("U+{:04X} in data: {s} {v}", c as u32)
        });
        if s == StatusCode::ACCEPTED {
            let (_, e) = app
                .call(
                    Method::GET,
                    &format!("/v1/events/{}", v["id"].as_str().unwrap()),
                    None,
                )
                .await;
            f.check(e["data"] == data, || {
                format!("U+{:04X} stored as {}", c as u32, e["data"])
            });
            f.check(e["changes"]["note"]["current"] == json!(t), || {
                format!("changes {}", e["changes"])
            });
        }
        // A free field of a record: the same rule.
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/deals",
                Some(json!({"name": "D", "stage": "lead", "memo": {"text": t}})),
            )
            .await;
        rows += 1;
        if c == '\0' {
            f.check(
                refusal(s, &v) == (422, "control_character".into(), "memo.text".into()),
                || format!("NUL in a deal: {s} {v}"),
            );
        } else {
            f.check(
                s == StatusCode::CREATED && v["data"]["memo"]["text"] == json!(t),
                || format!("U+{:04X} in a deal: {s} {v}", c as u32),
            );
        }
    }
    for (body, field) in [
        (
            json!({"event_type": "contact.created", "data": {"id": "c", "k\u{0}": 1}}),
            "data",
        ),
        (
            json!({"event_type": "contact.created", "data": {"id": "c"}, "changes": {"a\u{0}": {"previous": 1, "current": 2}}}),
            "changes",
        ),
        (
            json!([{"event_type": "task.created", "data": {"id": "t"}}, {"event_type": "task.created", "data": {"x": ["\u{0}"]}}]),
            "[1].data.x[0]",
        ),
    ] {
        rows += 1;
        let (s, v) = app
            .call(Method::POST, "/v1/events", Some(body.clone()))
            .await;
        f.check(
            refusal(s, &v) == (422, "control_character".into(), field.into()),
            || format!("{body}: {s} {v}"),
        );
    }
    // Notes are multi-line text: line breaks and tabs are kept, other control characters refused.
    for c in controls() {
        rows += 1;
        let (s, v) = app
            .call(
                Method::POST,
                "/v1/contacts",
                Some(json!({"first_name": "J", "notes": format!("a{c}b")})),
            )
            .await;
        if matches!(c, '\n' | '\r' | '\t') {
            f.check(s == StatusCode::CREATED, || {
                format!("notes U+{:04X}: {s} {v}", c as u32)
            });
        } else {
            f.check(
                refusal(s, &v) == (422, "control_character".into(), "notes".into()),
                || format!("notes U+{:04X}: {s} {v}", c as u32),
            );
        }
    }
    f.finish(rows);
}

/// Headers can only carry a tab of all control characters over HTTP; a tab in `X-Actor-Id` or
/// `Idempotency-Key` is refused like anywhere else.
#[tokio::test]
async fn a_tab_in_the_actor_or_idempotency_key_header_is_refused_naming_it() {
    let app = spawn_app().await;
    let body = json!({"event_type": "task.created", "data": {"id": "t"}});
    for (header, value) in [("x-actor-id", "u\t1"), ("idempotency-key", "k\t1")] {
        let (s, _, v) = app
            .send(Method::POST, "/v1/events", &[(header, value)], Some(&body))
            .await;
        let field = if header == "x-actor-id" {
            "X-Actor-Id"
        } else {
            "Idempotency-Key"
        };
        assert_eq!(
            refusal(s, &v),
            (422, "control_character".into(), field.into()),
            "{v}"
        );
    }
    let (s, _, v) = app
        .send(
            Method::POST,
            "/v1/contacts",
            &[("x-actor-id", "u\tv")],
            Some(&json!({"first_name": "J"})),
        )
        .await;
    assert_eq!(
        refusal(s, &v),
        (422, "control_character".into(), "X-Actor-Id".into()),
        "{v}"
    );
}

// ---- URLs --------------------------------------------------------------------------------------

/// URLs a lenient parser would repair are refused with a message that says what to write, through
/// `POST /v1/webhooks` and `PATCH` alike. (Not through the test of an unsaved URL: a mistake here
/// must not make the test send anything anywhere; the control-character table covers that route
/// with loopback URLs.)
#[tokio::test]
async fn urls_are_refused_not_repaired() {
    let app = spawn_app().await;
    let id = app.create(hook("https://example.com/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    #[rustfmt::skip]
    let refused: &[(&str, &str)] = &[
        (" https://example.com/", "whitespace"),
        ("https://example.com/ ", "whitespace"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/\u{a0}", "whitespace"),
        ("https:example.com/", "two slashes"),
        ("https:/example.com/", "two slashes"),
        ("https:///example.com/", "two slashes"),
        ("https:\\\\example.com/", "backslash"),
        ("https://example.com\\hook", "backslash"),
        ("https://example.com/a|b", "`|`"),
        ("https://example.com/{x}", "`{`"),
        ("https://example.com/%zz", "percent-encoding"),
        ("https://ex%61mple.com/", "percent-encoded"),
        ("https://example.com/a/../b", "segments"),
        ("https://16843009/", "write it as 1.1.1.1"),
        ("https://0x01.1.1.1/", "write it as 1.1.1.1"),
        ("https://1.1.1.1./", "write it as 1.1.1.1"),
        ("https://\u{ff45}xample.com/", "standard form"),
        ("https://exa\u{200b}mple.com/", "invisible"),
        ("https://example.com/[x]", "`[`"),
    ];
    let label64 = format!("https://{}.com/", "a".repeat(64));
    let host254 = format!(
        "https://{}.{}.{}.{}/",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62)
    );
    let long: [(&str, &str); 2] = [(&label64, "longer than 63"), (&host254, "at most 253")];
    let mut f = Failures::default();
    let mut rows = 0;
    for (url, says) in refused.iter().chain(long.iter()) {
        for (method, path, body) in [
            (
                Method::POST,
                "/v1/webhooks".to_string(),
                json!({"url": url, "events": ["*"]}),
            ),
            (
                Method::PATCH,
                format!("/v1/webhooks/{id}"),
                json!({"url": url}),
            ),
        ] {
            rows += 1;
            let (s, v) = app.call(method.clone(), &path, Some(body)).await;
            let message = v["error"]["message"].as_str().unwrap_or_default();
            f.check(
                refusal(s, &v) == (422, "invalid_url".into(), "url".into()) && message.contains(says),
                || format!("{method} {path} {url:?}: want 422 invalid_url saying {says:?}, got {s} {v}"),
            );
        }
    }
    f.finish(rows);
    // What is accepted is stored as written (up to case, default ports and IDNA).
    for (url, stored) in [
        (
            "https://Example.COM:443/Hook?a=1",
            "https://example.com/Hook?a=1",
        ),
        ("https://b\u{fc}cher.de/x", "https://xn--bcher-kva.de/x"),
        ("https://example.com/a%20b", "https://example.com/a%20b"),
    ] {
        let v = app.create(json!({"url": url, "events": ["*"]})).await;
        assert_eq!(v["url"], stored, "{url}");
    }
}

/// The first and last address of every row of the special-purpose table, as a URL literal, is
/// refused with the row's reason in the message; `allow_targets` exempts exactly what it lists.
#[tokio::test]
async fn every_special_purpose_block_is_refused_with_its_reason() {
    let app = spawn_app().await;
    let mut f = Failures::default();
    let mut rows = 0;
    for row in SPECIAL_PURPOSE {
        let cidr = IpCidr::parse(row.cidr).unwrap();
        let first = cidr.network();
        let last = match first {
            std::net::IpAddr::V4(n) => {
                let host = u32::MAX
                    .checked_shr(u32::from(cidr.prefix_len()))
                    .unwrap_or(0);
                std::net::IpAddr::V4((u32::from(n) | host).into())
            }
            std::net::IpAddr::V6(n) => {
                let host = u128::MAX
                    .checked_shr(u32::from(cidr.prefix_len()))
                    .unwrap_or(0);
                std::net::IpAddr::V6((u128::from(n) | host).into())
            }
        };
        for ip in [first, last] {
            let Some(refused) = hookline_core::url_policy::refusal(ip) else {
                // Mapped and NAT64 rows judge the embedded address: ::ffff:0.0.0.0 is refused
                // (0/8), ::ffff:255.255.255.255 too (broadcast); a public one would pass.
                f.check(false, || format!("{ip} (in {}) is not refused", row.cidr));
                continue;
            };
            let host = match ip {
                std::net::IpAddr::V4(a) => a.to_string(),
                std::net::IpAddr::V6(a) => format!("[{a}]"),
            };
            rows += 1;
            let (s, v) = app
                .call(
                    Method::POST,
                    "/v1/webhooks",
                    Some(json!({"url": format!("https://{host}/h"), "events": ["*"]})),
                )
                .await;
            let message = v["error"]["message"].as_str().unwrap_or_default();
            f.check(
                refusal(s, &v) == (422, "invalid_url".into(), "url".into())
                    && message.contains(refused.block.why),
                || {
                    format!(
                        "{host}: want 422 naming {:?}, got {s} {v}",
                        refused.block.why
                    )
                },
            );
        }
    }
    f.finish(rows);
    // Public neighbours pass.
    for url in [
        "https://168.63.129.17/",
        "https://192.31.197.1/",
        "https://[2620:4f:8001::1]/",
    ] {
        let (s, v) = app
            .call(Method::POST, "/v1/webhooks", Some(hook(url)))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{url}: {v}");
    }
    // The allowlist is the only exemption, and exempts only what it lists.
    let open = spawn_app_with(&[("allow_targets", "168.63.129.16/32,2002::/16".into())]).await;
    for (url, want) in [
        ("https://168.63.129.16/", StatusCode::CREATED),
        ("https://[2002:7f00:1::1]/", StatusCode::CREATED),
        ("https://169.254.169.254/", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, v) = open
            .call(Method::POST, "/v1/webhooks", Some(hook(url)))
            .await;
        assert_eq!(s, want, "{url}: {v}");
    }
}

// ---- emails and header values ------------------------------------------------------------------

#[tokio::test]
async fn emails_beyond_rfc_5321_limits_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let domain253 = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "e".repeat(61)
    );
    let cases = [
        (format!("{}@example.com", "l".repeat(64)), true),
        (format!("{}@example.com", "l".repeat(65)), false),
        (format!("j@{}.com", "d".repeat(63)), true),
        (format!("j@{}.com", "d".repeat(64)), false),
        (format!("j@{domain253}"), true),
        (format!("j@{domain253}x"), false),
        ("j@example..com".to_string(), false),
    ];
    for (email, ok) in cases {
        for (body, field) in [
            (json!({"primary_email": email}), "primary_email"),
            (
                json!({"first_name": "J", "emails": [{"label": "W", "value": email}]}),
                "emails[0].value",
            ),
        ] {
            let (s, v) = app.call(Method::POST, "/v1/contacts", Some(body)).await;
            if ok {
                assert_eq!(s, StatusCode::CREATED, "{email}: {v}");
            } else {
                assert_eq!(
                    refusal(s, &v),
                    (422, "invalid".into(), field.into()),
                    "{email}: {v}"
                );
            }
        }
    }
}

#[tokio::test]
async fn custom_header_values_must_be_visible_ascii() {
    let app = spawn_app().await;
    let refused = [
        ("caf\u{e9}", "invalid_header"),
        ("\u{a0}x", "invalid_header"),
        (" padded", "invalid_header"),
        ("padded ", "invalid_header"),
        ("a\tb", "control_character"),
        ("a\u{7f}", "control_character"),
        ("x\u{85}", "control_character"),
    ];
    for (value, code) in refused {
        let (s, v) = app
            .call(Method::POST, "/v1/webhooks", Some(json!({"url": "https://example.com/", "events": ["*"], "headers": {"X-Custom": value}})))
            .await;
        assert_eq!(
            refusal(s, &v),
            (422, code.into(), "headers.X-Custom".into()),
            "{value:?}: {v}"
        );
    }
    let (s, v) = app
        .call(Method::POST, "/v1/webhooks", Some(json!({"url": "https://example.com/", "events": ["*"], "headers": {"Authorization": "Bearer a.b-c_d~e+f/g=", "X-Sym": "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

// ---- query parameters --------------------------------------------------------------------------

/// Every route of the OpenAPI document, with real ids: an unknown parameter is a 400 naming it,
/// before anything happens (a DELETE with one deletes nothing); on routes that take parameters, a
/// repeated one is refused too, and a documented one is accepted.
#[tokio::test]
async fn unknown_or_repeated_query_parameters_are_refused_on_every_route() {
    // Loopback only: were a refusal missed, a test send would go nowhere but here.
    let app = spawn_app_with(&local_receivers()).await;
    let webhook = app.create(hook("http://127.0.0.1:9/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, published) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": {"id": "c1"}})),
        )
        .await;
    let event = published["id"].as_str().unwrap().to_string();
    let delivery = published["delivery_ids"][0].as_str().unwrap().to_string();
    let (_, doc) = app.call(Method::GET, "/v1/openapi.json", None).await;
    let mut f = Failures::default();
    let mut rows = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template.replace(
            "{id}",
            if template.starts_with("/v1/webhooks") {
                &webhook
            } else if template.starts_with("/v1/events") {
                &event
            } else if template.starts_with("/v1/deliveries") {
                &delivery
            } else {
                "r1"
            },
        );
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            rows += 1;
            let (s, v) = app
                .call(method.clone(), &format!("{path}?stauts=failed"), None)
                .await;
            f.check(
                refusal(s, &v) == (400, "invalid_query".into(), "stauts".into()),
                || format!("{method} {path}?stauts: {s} {v}"),
            );
            if let Some(p) = params.iter().find(|p| !matches!(**p, "limit" | "cursor")) {
                rows += 1;
                let (s, v) = app
                    .call(method.clone(), &format!("{path}?{p}=a&{p}=b"), None)
                    .await;
                f.check(
                    refusal(s, &v) == (400, "invalid_query".into(), p.to_string()),
                    || format!("{method} {path}?{p}&{p}: {s} {v}"),
                );
            }
            if params.contains(&"limit") {
                rows += 1;
                let (s, v) = app
                    .call(method.clone(), &format!("{path}?limit=5"), None)
                    .await;
                f.check(s == StatusCode::OK, || {
                    format!("{method} {path}?limit=5: {s} {v}")
                });
            }
        }
    }
    assert!(rows > 60, "{rows} rows: the document lists every route");
    f.finish(rows);
    // Refused before the handler ran: the DELETEs above deleted nothing.
    let (s, _) = app
        .call(Method::GET, &format!("/v1/webhooks/{webhook}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // The error names what the route takes.
    let (_, v) = app
        .call(Method::GET, "/v1/deliveries?stauts=failed", None)
        .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("status"),
        "{v}"
    );
    // A control character or a bad percent-encoding in a value is refused, naming the parameter.
    for q in ["search=a%00b", "search=%zz", "status=%ff", "search=%C2%85"] {
        let (s, v) = app
            .call(Method::GET, &format!("/v1/deliveries?{q}"), None)
            .await;
        let name = q.split('=').next().unwrap();
        assert_eq!(
            refusal(s, &v),
            (400, "invalid_query".into(), name.into()),
            "{q}: {v}"
        );
    }
}

// ---- Idempotency-Key ---------------------------------------------------------------------------

/// Every creating POST: the same key and body answer the first answer again (marked replayed,
/// nothing created twice); the same key with another body is 422; a key over 255 characters 400.
#[tokio::test]
async fn every_creating_post_honours_idempotency_keys() {
    let app = spawn_app_with(&local_receivers()).await;
    let webhook = app.create(hook("http://127.0.0.1:9/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, published) = app
        .call(
            Method::POST,
            "/v1/events",
            Some(json!({"event_type": "contact.created", "data": {"id": "c1"}})),
        )
        .await;
    let delivery = published["delivery_ids"][0].as_str().unwrap().to_string();
    let since = "2000-01-01T00:00:00Z";
    let routes: Vec<(String, Value, Value, u16)> = vec![
        (
            "/v1/webhooks".into(),
            hook("http://127.0.0.1:9/b"),
            hook("http://127.0.0.1:9/c"),
            201,
        ),
        (
            "/v1/events".into(),
            json!({"event_type": "task.created", "data": {"id": "t1"}}),
            json!({"event_type": "task.created", "data": {"id": "t2"}}),
            202,
        ),
        (
            "/v1/contacts".into(),
            json!({"first_name": "Ann"}),
            json!({"first_name": "Bob"}),
            201,
        ),
        (
            "/v1/organizations".into(),
            json!({"name": "Org"}),
            json!({"name": "Other"}),
            201,
        ),
        (
            "/v1/deals".into(),
            json!({"name": "D", "stage": "lead"}),
            json!({"name": "E", "stage": "lead"}),
            201,
        ),
        (
            "/v1/services".into(),
            json!({"name": "S"}),
            json!({"name": "T"}),
            201,
        ),
        (
            "/v1/tasks".into(),
            json!({"title": "T"}),
            json!({"title": "U"}),
            201,
        ),
        (
            "/v1/contacts/import".into(),
            json!([{"first_name": "Imp"}]),
            json!([{"first_name": "Other"}]),
            200,
        ),
        (
            "/v1/contacts/bulk-delete".into(),
            json!({"ids": ["x1"]}),
            json!({"ids": ["x2"]}),
            200,
        ),
        (
            format!("/v1/deliveries/{delivery}/resend"),
            Value::Null,
            Value::Null,
            202,
        ),
        (
            format!("/v1/webhooks/{webhook}/replay"),
            json!({"since": since, "status": ["pending"]}),
            json!({"since": since, "status": ["failed"]}),
            202,
        ),
    ];
    for (i, (path, body, other, status)) in routes.into_iter().enumerate() {
        let key = format!("key-{path}");
        let body = (!body.is_null()).then_some(&body);
        let (s1, h1, first) = app
            .send(Method::POST, &path, &[("idempotency-key", &key)], body)
            .await;
        assert_eq!(s1.as_u16(), status, "{path}: {first}");
        assert!(h1.get("idempotent-replayed").is_none(), "{path}");
        let (s2, h2, again) = app
            .send(Method::POST, &path, &[("idempotency-key", &key)], body)
            .await;
        assert_eq!(s2.as_u16(), status, "{path}: {again}");
        assert_eq!(
            h2.get("idempotent-replayed").map(|v| v.to_str().unwrap()),
            Some("true"),
            "{path}"
        );
        // The first answer again: the same resource, nothing created twice.
        assert_eq!(first["id"], again["id"], "{path}");
        assert_eq!(first["data"]["id"], again["data"]["id"], "{path}");
        assert_eq!(first["rows"], again["rows"], "{path}");
        assert_eq!(first["count"], again["count"], "{path}");
        if !other.is_null() {
            let (s, _, v) = app
                .send(
                    Method::POST,
                    &path,
                    &[("idempotency-key", &key)],
                    Some(&other),
                )
                .await;
            assert_eq!(
                refusal(s, &v),
                (
                    422,
                    "idempotency_key_reused".into(),
                    "Idempotency-Key".into()
                ),
                "{path}: {v}"
            );
        } else {
            // Resend: the key belongs to this delivery; another delivery's resend is another request.
            let (s, _, v) = app
                .send(
                    Method::POST,
                    &format!("/v1/deliveries/{}/resend", first["id"].as_str().unwrap()),
                    &[("idempotency-key", &key)],
                    None,
                )
                .await;
            assert_eq!(
                refusal(s, &v),
                (
                    422,
                    "idempotency_key_reused".into(),
                    "Idempotency-Key".into()
                ),
                "{path}: {v}"
            );
        }
        let long = "k".repeat(256);
        let (s, _, v) = app
            .send(Method::POST, &path, &[("idempotency-key", &long)], body)
            .await;
        assert_eq!(
            refusal(s, &v),
            (400, "invalid_header".into(), "Idempotency-Key".into()),
            "{path}: {v}"
        );
        let ok = format!("{i:03}{}", "k".repeat(252));
        let (s, _, v) = app
            .send(Method::POST, &path, &[("idempotency-key", &ok)], body)
            .await;
        assert_eq!(s.as_u16(), status, "{path} with a 255-character key: {v}");
    }
    // Created once per key: b (key) + c never + 255-char key once = a, b, and the 255 one.
    let (_, v) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{v}");
    let (_, v) = app.call(Method::GET, "/v1/contacts?search=Ann", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = app.call(Method::GET, "/v1/contacts?search=Imp", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
}

/// A request that fails gives its key back: fixed and sent again with the same key, it runs.
#[tokio::test]
async fn a_failed_request_does_not_use_up_its_idempotency_key() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "retry-me")];
    let (s, _, v) = app
        .send(
            Method::POST,
            "/v1/webhooks",
            &key,
            Some(&hook("https:/example.com/")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _, v) = app
        .send(
            Method::POST,
            "/v1/webhooks",
            &key,
            Some(&hook("https://example.com/")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Keys are per tenant.
    let other = app.other_tenant_key("other").await;
    let resp = app
        .client
        .post(format!("{}/v1/webhooks", app.base))
        .bearer_auth(&other)
        .header("idempotency-key", "retry-me")
        .json(&hook("https://example.com/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(resp.headers().get("idempotent-replayed").is_none());
}

// ---- header limits -----------------------------------------------------------------------------

#[tokio::test]
async fn too_many_or_too_large_request_headers_get_431() {
    let app = spawn_app().await;
    let with_headers = |n: usize, len: usize| {
        let mut req = app
            .client
            .get(format!("{}/v1/webhooks", app.base))
            .bearer_auth(&app.key);
        for i in 0..n {
            req = req.header(
                HeaderName::try_from(format!("x-extra-{i}")).unwrap(),
                HeaderValue::from_str(&"v".repeat(len)).unwrap(),
            );
        }
        req
    };
    // reqwest adds a few of its own (host, accept, authorization): 40 more are fine, 70 are not.
    let resp = with_headers(40, 10).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = with_headers(70, 1).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "headers_too_large", "{v}");
    // Size: 12 KiB in one header is fine, 17 KiB is not.
    let resp = with_headers(1, 12 * 1024).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = with_headers(1, 17 * 1024).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Everywhere: the console and the probes too.
    for path in ["/", "/healthz", "/v1/event-types"] {
        let mut req = app.client.get(format!("{}{path}", app.base));
        for i in 0..70 {
            req = req.header(HeaderName::try_from(format!("x-extra-{i}")).unwrap(), "v");
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{path}"
        );
    }
}

// ---- property tests: arbitrary input never answers 5xx -----------------------------------------

/// Cases per field. Deterministic (a fixed seed), so a failure reproduces; the failing input is
/// printed whole.
const CASES: usize = 48;

/// Arbitrary strings, biased towards the troublesome: control characters, NUL, surrogate-free
/// Unicode of every plane, URL punctuation, very long runs.
fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a-z%/:@.\\[\\]\\\\ ]{0,40}",
        "(https?|HTTPS|ftp)?:?/{0,4}[a-z0-9.\\-\\[\\]:@%\\\\]{0,40}(/[ -~]{0,20})?",
        "[\\u{0}-\\u{10ffff}]{0,12}",
        ".{200,400}",
    ]
    .boxed()
}

fn cases(strategy: &BoxedStrategy<String>, seed: u8) -> Vec<String> {
    let mut runner = TestRunner::new_with_rng(
        PropConfig::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
    );
    (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Arbitrary strings in every field of every writing route, in query values and in path ids:
/// never a 5xx, always the error shape, on either store. (No route that sends is among them: an
/// arbitrary string may be a valid public URL, and tests talk to loopback only.)
#[tokio::test]
async fn arbitrary_strings_in_any_field_never_answer_5xx() {
    let app = spawn_app().await;
    let webhook = app.create(hook("https://example.com/a")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let strategy = nasty_string();
    type Build = Box<dyn Fn(&str) -> (Method, String, Option<Value>)>;
    let w = webhook.clone();
    #[rustfmt::skip]
    let fields: Vec<(&str, Build)> = vec![
        ("webhook url", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": s, "events": ["*"]}))))),
        ("webhook name", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": ["*"], "name": s}))))),
        ("webhook description", Box::new(move |s| (Method::PATCH, format!("/v1/webhooks/{w}"), Some(json!({"description": s}))))),
        ("webhook event", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": [s]}))))),
        ("header name", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": ["*"], "headers": {s: "v"}}))))),
        ("header value", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": ["*"], "headers": {"X-A": s}}))))),
        ("secret", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": ["*"], "secret": s}))))),
        ("retry schedule", Box::new(|s| (Method::POST, "/v1/webhooks".into(), Some(json!({"url": "https://example.com/", "events": ["*"], "retry_schedule": [s]}))))),
        ("event type", Box::new(|s| (Method::POST, "/v1/events".into(), Some(json!({"event_type": s, "data": {"id": "x"}}))))),
        ("event data value", Box::new(|s| (Method::POST, "/v1/events".into(), Some(json!({"event_type": "contact.created", "data": {"id": s, "v": s}}))))),
        ("event data key", Box::new(|s| (Method::POST, "/v1/events".into(), Some(json!({"event_type": "task.created", "data": {s: s}}))))),
        ("event source", Box::new(|s| (Method::POST, "/v1/events".into(), Some(json!({"event_type": "task.created", "data": {"id": "t"}, "source": s, "source_id": s, "entity_id": s}))))),
        ("occurred_at", Box::new(|s| (Method::POST, "/v1/events".into(), Some(json!({"event_type": "task.created", "data": {"id": "t"}, "occurred_at": s}))))),
        ("contact fields", Box::new(|s| (Method::POST, "/v1/contacts".into(), Some(json!({"first_name": s, "notes": s, "primary_email": s, "websites": [{"label": s, "value": s}]}))))),
        ("record id", Box::new(|s| (Method::POST, "/v1/tasks".into(), Some(json!({"id": s, "title": s}))))),
        ("free field", Box::new(|s| (Method::POST, "/v1/deals".into(), Some(json!({"name": "D", "stage": s, s: {s: [s]}}))))),
        ("replay since", Box::new(move |s| (Method::POST, format!("/v1/webhooks/{webhook}/replay"), Some(json!({"since": s, "status": s}))))),
        ("list query", Box::new(|s| (Method::GET, format!("/v1/deliveries?search={}&event_type={}", enc(s), enc(s)), None))),
        ("record query", Box::new(|s| (Method::GET, format!("/v1/contacts?search={}&tag={}&updated_since={}&cursor={}", enc(s), enc(s), enc(s), enc(s)), None))),
        ("query name", Box::new(|s| (Method::GET, format!("/v1/webhooks?{}=1", enc(s)), None))),
        ("path id", Box::new(|s| (Method::GET, format!("/v1/contacts/{}", enc(s)), None))),
    ];
    let mut f = Failures::default();
    let mut rows = 0;
    for (i, (name, build)) in fields.iter().enumerate() {
        for s in cases(&strategy, i as u8) {
            rows += 1;
            let (method, path, body) = build(&s);
            let (status, v) = app.call(method.clone(), &path, body).await;
            f.check(
                !status.is_server_error()
                    && (status.is_success() || v["error"]["code"].is_string()),
                || format!("{name}: {s:?} → {method} {path}: {status} {v}"),
            );
        }
    }
    // Header values: what HTTP can carry (visible ASCII, space, tab) in the actor and the key.
    let header_safe = "[\\t -~]{0,300}".boxed();
    for (i, value) in cases(&header_safe, 99).into_iter().enumerate() {
        rows += 1;
        let body = json!({"event_type": "task.created", "data": {"id": format!("h{i}")}});
        let (status, _, v) = app
            .send(
                Method::POST,
                "/v1/events",
                &[("x-actor-id", &value), ("idempotency-key", &value)],
                Some(&body),
            )
            .await;
        f.check(!status.is_server_error(), || {
            format!("headers {value:?}: {status} {v}")
        });
    }
    f.finish(rows);
}

/// Percent-encodes a query component or path segment completely (every byte not alphanumeric).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Ids in paths that aren't UTF-8 once decoded, or hold control characters: a 4xx in the error
/// shape, whichever kind of id the route takes.
#[tokio::test]
async fn malformed_path_ids_answer_in_the_error_shape() {
    let app = spawn_app().await;
    for id in ["%FF", "%C0%AF", "a%00b", "%0A", "%E2%80%8B", "..%2F..%2Fx"] {
        for path in [
            format!("/v1/contacts/{id}"),
            format!("/v1/deals/{id}"),
            format!("/v1/webhooks/{id}"),
            format!("/v1/deliveries/{id}"),
            format!("/v1/events/{id}"),
        ] {
            for method in [Method::GET, Method::DELETE] {
                let resp = app
                    .client
                    .request(method.clone(), format!("{}{path}", app.base))
                    .bearer_auth(&app.key)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let text = resp.text().await.unwrap();
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{method} {path}: {status} {text}"));
                assert!(status.is_client_error(), "{method} {path}: {status} {v}");
                assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
            }
        }
    }
}

#[tokio::test]
async fn a_webhooks_credentials_stay_out_of_its_idempotency_fingerprint() {
    let app = spawn_app().await;
    let post = |secret: &str, auth: &str| {
        let body = json!({"url": "https://hooks.example.com/x", "events": ["contact.created"],
                          "secret": secret, "headers": {"Authorization": auth}});
        app.client
            .post(format!("{}/v1/webhooks", app.base))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", "hook-1")
            .json(&body)
            .send()
    };
    let first = post("first-secret-value-000001", "Bearer one")
        .await
        .unwrap();
    let status = first.status();
    let first: Value = first.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // Only the credentials differ: the same request as far as the fingerprint knows.
    let again = post("other-secret-value-000002", "Bearer two")
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
}
