//! Golden-file tests of the four wire formats, the catalog × format matrix, and the
//! JavaScript-identical JSON writer checked against a real `node`.
//!
//! Golden files live in `tests/golden/`: `<format>_<case>.jsonl` holds the exact body bytes of
//! each delivery the event needs, one per line (a body never contains a raw newline), and
//! `<format>_created.headers.txt` the headers of the first one. Bytes are compared exactly.
//! After an intended change, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p hookline-core --test formats` and review the diff.

use hookline_core::catalog::{self, CATALOG};
use hookline_core::formats::{self, AttemptMeta, EventFields, SigningKeys};
use hookline_core::ids::{DeliveryId, EventId};
use hookline_core::jsjson::to_js_json;
use hookline_core::time;
use hookline_core::webhook::Format;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use uuid::Uuid;

const DELIVERY_ID: DeliveryId =
    DeliveryId(Uuid::from_u128(0x0196_d3a1_7c2e_7b4a_9f10_2c3d_4e5f_6a7b));
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the golden file `name`, or rewrites it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if want != actual {
        panic!(
            "{name} differs from its golden file (run with UPDATE_GOLDEN=1 to accept)\n--- golden\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(actual)
        );
    }
}

/// A contact in the ConnectMachine contact schema, with text and numbers that exercise the
/// JavaScript JSON rules.
fn contact() -> Value {
    json!({
        "id": "0196d3a0-0000-7000-8000-000000000001",
        "first_name": "Zoë",
        "last_name": "Ångström-Nakamura 中村",
        "company": "Example \"Corp\" AG",
        "job_title": "Product Manager",
        "label": "Work",
        "notes": "Met at event\nfollow up: 🚀 </script> \u{2028} tab\there \u{1}",
        "primary_email": "zoe@example.com",
        "primary_phone": "+15550101010",
        "emails": [{"label": "Work", "value": "zoe@example.com"}],
        "phones": [{"label": "Mobile", "value": "+15550101010"}],
        "websites": [{"label": "Company", "value": "https://example.com/a/b"}],
        "socials": [{"linkedin_url": "https://linkedin.com/in/zoe"}, {"github_url": "https://github.com/zoe"}],
        "custom": [{"label": "CRM Owner", "value": "Sales"}, {"label": "Score", "value": 0.1}],
        "address": {"formatted": "123 Market Street, San Francisco, CA, USA, 94105", "raw": {"10": "suite", "2": "floor", "zip": "94105"}},
        "where_we_met": {"formatted": "Moscone Center, San Francisco, CA, USA", "raw": {}},
        "tags": [{"name": "Conference", "type": "event"}],
        "notetaker_sessions": [{
            "session_id": "s_1", "title": "Meeting note",
            "summary_url": "https://example.com/s/1", "audio_url": "https://example.com/a/1",
            "created_at": "2026-05-15T10:00:00Z", "updated_at": "2026-05-15T10:05:00Z"
        }],
        "owner_id": "u_17",
        "lifetime_value": 12345678901234567890u64,
        "ratios": [1.0, -0.0, 1e21, 1e-7, 5e-324, 0.30000000000000004],
        "created_at": "2026-05-15T10:00:00.000Z",
        "updated_at": "2026-05-15T10:05:00.000Z"
    })
}

fn small_contact(n: u32, first: &str) -> Value {
    json!({
        "id": format!("0196d3a0-0000-7000-8000-00000000000{n}"),
        "first_name": first,
        "last_name": "Import",
        "primary_email": format!("import{n}@example.com"),
        "emails": [{"label": "Work", "value": format!("import{n}@example.com")}],
        "tags": [],
        "created_at": "2026-05-15T10:29:59.500Z",
        "updated_at": "2026-05-15T10:29:59.500Z"
    })
}

struct Case {
    name: &'static str,
    event_type: &'static str,
    data: Value,
    changes: Option<Value>,
    batch: Option<Value>,
    source: Option<&'static str>,
    source_id: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let mut updated = contact();
    updated["job_title"] = json!("Head of Product");
    vec![
        Case {
            name: "created",
            event_type: "contact.created",
            data: contact(),
            changes: None,
            batch: None,
            source: None,
            source_id: None,
        },
        Case {
            name: "updated",
            event_type: "contact.updated",
            data: updated,
            changes: Some(json!({
                "job_title": {"previous": "Product Manager", "current": "Head of Product"},
                "tags": {"previous": [], "current": [{"name": "Conference", "type": "event"}]}
            })),
            batch: None,
            source: Some("api"),
            source_id: Some("req_9"),
        },
        Case {
            name: "deleted",
            event_type: "contact.deleted",
            data: json!({"ids": ["0196d3a0-0000-7000-8000-000000000001", "0196d3a0-0000-7000-8000-000000000002"]}),
            changes: None,
            batch: None,
            source: None,
            source_id: None,
        },
        Case {
            name: "import_batch",
            event_type: "contact.created",
            data: json!([small_contact(3, "Ada"), small_contact(4, "Émile")]),
            changes: None,
            batch: Some(json!({"index": 2, "count": 2, "max_size": 100})),
            source: Some("contact_import"),
            source_id: Some("0196d3a0-1111-7000-8000-000000000042"),
        },
        Case {
            name: "message_received",
            event_type: "message.received",
            data: json!({
                "id": "msg_1", "conversation_id": "conv_1", "channel": "whatsapp",
                "from": "+15550101010", "text": "Hola 👋 ¿qué tal?", "attachments": [],
                "received_at": "2026-05-15T10:29:58.000Z"
            }),
            changes: None,
            batch: None,
            source: None,
            source_id: None,
        },
        Case {
            name: "deal_stage_changed",
            event_type: "deal.stage.changed",
            data: json!({"id": "deal_7", "name": "Renewal 2027", "stage": "won", "owner_id": "u_17", "amount": 12500.5}),
            changes: Some(json!({"stage": {"previous": "negotiation", "current": "won"}})),
            batch: None,
            source: Some("api"),
            source_id: None,
        },
    ]
}

fn view<'a>(c: &'a Case) -> EventFields<'a> {
    EventFields {
        id: EventId(Uuid::from_u128(0x0196_d3a1_0000_7000_8000_0000_0000_0001)),
        event_type: c.event_type,
        occurred_at: time::parse("2026-05-15T10:30:00.000Z").unwrap(),
        source: c.source,
        source_id: c.source_id,
        actor_id: Some("u_17"),
        tenant: "acme",
        entity_id: c.data.get("id").and_then(Value::as_str),
        data: &c.data,
        changes: c.changes.as_ref(),
        batch: c.batch.as_ref(),
    }
}

/// The bodies of every delivery one event needs for a webhook of `format`.
fn bodies(format: Format, ev: &EventFields) -> Vec<Vec<u8>> {
    let n = formats::deliveries_needed(format, ev);
    (0..n)
        .map(|i| {
            let item = (!formats::carries_batches(format)).then_some(i);
            formats::render_body(format, ev, DELIVERY_ID, item)
        })
        .collect()
}

fn jsonl(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in bodies {
        assert!(!b.contains(&b'\n'), "a body must not contain a raw newline");
        out.extend_from_slice(b);
        out.push(b'\n');
    }
    out
}

fn can_carry(format: Format, event_type: &str) -> bool {
    format.renderable().is_none_or(|r| r.contains(&event_type))
}

#[test]
fn golden_bodies_of_every_format() {
    for format in Format::ALL {
        for case in cases() {
            if !can_carry(format, case.event_type) {
                continue;
            }
            let ev = view(&case);
            let all = bodies(format, &ev);
            golden(
                &format!("{}_{}.jsonl", format.as_str(), case.name),
                &jsonl(&all),
            );
        }
    }
}

#[test]
fn golden_headers_of_every_format() {
    let case = &cases()[0];
    let ev = view(case);
    let custom = [("X-Team".to_string(), "crm".to_string())].into();
    for format in Format::ALL {
        let body = formats::render_body(format, &ev, DELIVERY_ID, Some(0));
        let meta = AttemptMeta {
            brand: "ConnectMachine",
            format,
            event_type: case.event_type,
            message_id: DELIVERY_ID,
            attempt_time: time::parse("2026-05-15T10:30:01.250Z").unwrap(),
        };
        let keys = SigningKeys {
            current: SECRET,
            previous: None,
        };
        let headers = formats::delivery_headers(meta, keys, &body, &custom);
        let text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        golden(
            &format!("{}_created.headers.txt", format.as_str()),
            text.as_bytes(),
        );
        // The signatures in the golden file verify with the receiver crate.
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).unwrap().1.as_str();
        hookline_verify::verify_hex(SECRET, &body, get("X-Webhook-Signature")).unwrap();
        let std_headers = hookline_verify::StandardHeaders {
            id: get("webhook-id"),
            timestamp: get("webhook-timestamp"),
            signature: get("webhook-signature"),
        };
        let ts: i64 = std_headers.timestamp.parse().unwrap();
        hookline_verify::verify_standard(SECRET, &std_headers, &body, ts, 300).unwrap();
    }
}

#[test]
fn bodies_follow_each_source_document() {
    let all = cases();
    let created = view(&all[0]);
    let updated = view(&all[1]);
    let deleted = view(&all[2]);
    let batch = view(&all[3]);
    let parse = |b: Vec<u8>| -> Value { serde_json::from_slice(&b).unwrap() };

    // The ConnectMachine-style envelope: event_id = delivery id, plural names, contact_ids for
    // deletes.
    let e = parse(bodies(Format::Envelope, &batch).remove(0));
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "event_id",
            "occurred_at",
            "source",
            "source_id",
            "batch",
            "data"
        ]
    );
    assert_eq!(e["event_id"], DELIVERY_ID.to_string());
    assert_eq!(e["source"], "contact_import");
    assert_eq!(e["batch"], json!({"index": 2, "count": 2, "max_size": 100}));
    assert_eq!(e["data"]["event_type"], "contacts.created");
    assert_eq!(e["data"]["contacts"].as_array().unwrap().len(), 2);
    let e = parse(bodies(Format::Envelope, &created).remove(0));
    assert!(e.get("source").is_none() && e.get("batch").is_none());
    assert_eq!(e["data"]["contacts"][0]["first_name"], "Zoë");
    let e = parse(bodies(Format::Envelope, &updated).remove(0));
    assert_eq!(
        e["data"]["changes"]["job_title"]["current"],
        "Head of Product"
    );
    let e = parse(bodies(Format::Envelope, &deleted).remove(0));
    assert_eq!(e["data"]["event_type"], "contacts.deleted");
    assert_eq!(e["data"]["contact_ids"].as_array().unwrap().len(), 2);
    assert!(e["data"].get("contacts").is_none());

    // The flat format: {event, timestamp, data: {...object, organization_id}}, one object per
    // request.
    let f = bodies(Format::Flat, &batch);
    assert_eq!(f.len(), 2);
    let f1 = parse(f[1].clone());
    assert_eq!(f1["event"], "contact.created");
    assert_eq!(f1["data"]["first_name"], "Émile");
    assert_eq!(f1["data"]["organization_id"], "acme");
    assert!(time::parse(f1["timestamp"].as_str().unwrap()).is_some());

    // The record-centred format: {event, data: {userId, companyId, entityId, payload}, timestamp}.
    let n = parse(bodies(Format::RecordCentred, &updated).remove(0));
    let keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["event", "data", "timestamp"]);
    assert_eq!(n["data"]["userId"], "u_17");
    assert_eq!(n["data"]["companyId"], "acme");
    assert_eq!(n["data"]["entityId"], n["data"]["payload"]["contact"]["id"]);
    // It spells record fields and change keys in camelCase.
    assert_eq!(
        n["data"]["payload"]["changes"]["jobTitle"]["previous"],
        "Product Manager"
    );
    assert!(n["data"]["payload"]["contact"].get("firstName").is_some());
    assert!(n["data"]["payload"]["contact"].get("first_name").is_none());
    let d = bodies(Format::RecordCentred, &deleted);
    assert_eq!(d.len(), 2);
    let d1 = parse(d[1].clone());
    assert_eq!(
        d1["data"]["payload"],
        json!({"contactId": "0196d3a0-0000-7000-8000-000000000002"})
    );
    assert_eq!(d1["data"]["entityId"], d1["data"]["payload"]["contactId"]);

    // The contacts-list format: every field CloudCX's contact has, in its order, camelCase,
    // epoch-millis strings.
    let c = parse(bodies(Format::ContactsList, &created).remove(0));
    assert_eq!(c["event"], "ContactCreated");
    let contact = c["contacts"][0].as_object().unwrap();
    let contacts_list_fields = [
        "id",
        "firstName",
        "lastName",
        "avatarUrl",
        "email",
        "phoneNumber",
        "contactId",
        "owner",
        "ownerName",
        "leadStage",
        "tags",
        "notes",
        "companyName",
        "jobTitle",
        "priority",
        "ip",
        "countryRegion",
        "province",
        "city",
        "street",
        "zipCode",
        "language",
        "facebookUsername",
        "telegramUsername",
        "instagramUsername",
        "whatsappNumber",
        "subscribeEmail",
        "subscribeSMS",
        "subscribeWhatsapp",
        "lastChannel",
        "createdTime",
        "lastUpdatedTime",
        "lastSeenTime",
        "lastConnectedTime",
        "lastHeardFromTime",
        "customFields",
    ];
    let keys: Vec<&str> = contact.keys().map(String::as_str).collect();
    assert_eq!(keys, contacts_list_fields);
    assert_eq!(contact["firstName"], "Zoë");
    assert_eq!(contact["email"], "zoe@example.com");
    assert_eq!(contact["phoneNumber"], "+15550101010");
    assert_eq!(contact["owner"], "u_17");
    assert_eq!(contact["companyName"], "Example \"Corp\" AG");
    assert_eq!(contact["createdTime"], "1778839200000");
    assert_eq!(contact["lastUpdatedTime"], "1778839500000");
    assert_eq!(contact["customFields"][0]["label"], "CRM Owner");
    assert_eq!(contact["avatarUrl"], Value::Null);
    let c = parse(bodies(Format::ContactsList, &deleted).remove(0));
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["event", "ids"]);
    assert_eq!(c["event"], "ContactDeleted");
}

#[test]
fn contacts_list_fills_missing_fields_with_null_and_reads_extras() {
    let sparse = json!({"id": "c1", "emails": [{"label": "Home", "value": "h@x.com"}], "lead_stage": "Contact", "subscribe_sms": true});
    let c = formats::camel_contact(&sparse);
    assert_eq!(c["email"], "h@x.com");
    assert_eq!(c["leadStage"], "Contact");
    assert_eq!(c["subscribeSMS"], true);
    assert_eq!(c["firstName"], Value::Null);
    assert_eq!(c["createdTime"], Value::Null);
    assert_eq!(c["customFields"], json!([]));
    assert_eq!(c.as_object().unwrap().len(), 36);
}

#[test]
fn every_catalog_event_renders_in_every_format_that_carries_it() {
    let mut rendered = 0;
    for format in Format::ALL {
        for entry in CATALOG {
            let native = entry.name;
            if !can_carry(format, native) {
                continue;
            }
            let data = catalog::sample_data(native);
            let ev = EventFields {
                id: EventId::default(),
                event_type: native,
                occurred_at: time::parse("2026-05-15T10:30:00Z").unwrap(),
                source: Some("test"),
                source_id: None,
                actor_id: Some("u_1"),
                tenant: "acme",
                entity_id: data.get("id").and_then(Value::as_str),
                data: &data,
                changes: None,
                batch: None,
            };
            let spelled = format.event_name(native);
            for body in bodies(format, &ev) {
                let v: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{} {native}: invalid JSON: {e}", format.as_str()));
                let name = match format {
                    Format::Envelope => &v["data"]["event_type"],
                    _ => &v["event"],
                };
                assert_eq!(name, &json!(spelled), "{} {native}", format.as_str());
                // The body is already in JavaScript's form: re-serializing changes nothing.
                assert_eq!(to_js_json(&v), body, "{} {native}", format.as_str());
                rendered += 1;
            }
            let headers = formats::delivery_headers(
                AttemptMeta {
                    brand: "Hookline",
                    format,
                    event_type: native,
                    message_id: DeliveryId::default(),
                    attempt_time: ev.occurred_at,
                },
                SigningKeys {
                    current: "s",
                    previous: None,
                },
                b"{}",
                &Default::default(),
            );
            for h in ["X-Hookline-Event", "X-Webhook-Event"] {
                let got = headers.iter().find(|(k, _)| k == h).map(|(_, v)| v);
                assert_eq!(got, Some(&spelled), "{} {native} {h}", format.as_str());
            }
        }
    }
    // 33 catalog events in three formats (operational ones too) + 3 contact events in
    // contacts-list.
    assert_eq!(rendered, 33 * 3 + 3);
    assert_eq!(
        Format::Envelope.event_name("delivery.exhausted"),
        "deliveries.exhausted"
    );
    assert!(!Format::ContactsList.carries("webhook.failing"));
    assert_eq!(
        Format::Envelope.event_name("deal.stage.changed"),
        "deals.stage.changed"
    );
    assert_eq!(
        Format::Flat.event_name("meeting.recording.completed"),
        "zoom.recording.completed"
    );
    assert_eq!(
        Format::ContactsList.event_name("contact.updated"),
        "ContactUpdated"
    );
}

// ---------------------------------------------------------------------------------------------
// JavaScript JSON, checked against node.

/// Runs `JSON.stringify(JSON.parse(s))` in node for each input; `None` when node is missing.
fn node_roundtrip(inputs: &[String]) -> Option<Vec<String>> {
    let script = "let s='';process.stdin.setEncoding('utf8');process.stdin.on('data',d=>s+=d);\
        process.stdin.on('end',()=>{const ins=JSON.parse(s);\
        process.stdout.write(JSON.stringify(ins.map(t=>JSON.stringify(JSON.parse(t)))));});";
    let mut child = match Command::new("node")
        .args(["-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("NOTICE: skipping the node comparison: can't run `node` ({e})");
            return None;
        }
    };
    let input = serde_json::to_vec(inputs).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "node failed: {:?}", out.status);
    Some(serde_json::from_slice(&out.stdout).expect("node printed a JSON array of strings"))
}

/// Tricky documents: escapes, unicode, every number form, array-index keys, nesting.
fn corpus() -> Vec<String> {
    let mut docs: Vec<String> = [
        r#"{"a":1}"#,
        r#"{"s":"quote \" backslash \\ slash \/ controls \u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f del \u007f"}"#,
        r#"{"u":"é 漢字 😀 \ud83d\ude80 \u2028 \u2029 \ufeff \u00ad Ω"}"#,
        r#"{"n":[0,-0,1,-1,0.1,0.2,0.30000000000000004,1.0,1e0,1E2,1e+2,123.456,-123.456e-2]}"#,
        r#"{"n":[1e21,1e20,999999999999999999999,1e-7,1e-6,1.5e-7,0.000001,0.0000001,5e-324,2.2250738585072014e-308,1.7976931348623157e308]}"#,
        r#"{"big":[9007199254740991,9007199254740992,9007199254740993,-9007199254740993,12345678901234567890,18446744073709551615,18446744073709551616,-9223372036854775808,123456789012345678901234567890]}"#,
        r#"{"f":[4.35,0.1e1,100.0,1.25e-5,3.14159265358979,2.5e-8,7e22,1.7e308,4.9e-324,9.999999999999999e20]}"#,
        r#"{"b":1,"10":2,"2":3,"a":4,"01":5,"-1":6,"1.5":7,"0":8,"4294967294":9,"4294967295":10," 3":11,"1e3":12}"#,
        r#"{"nested":{"z":[{"9":1,"x":{"b":{"3":true,"a":null}}},[],{}],"1":"one"},"empty":"","arr":[[[]]]}"#,
        r#"[1,"two",{"3":3,"b":[true,false,null]}]"#,
        r#"{"dup":1,"dup":2,"other":3}"#,
        r#"{"__proto__":{"x":1},"constructor":"c","toString":"t"}"#,
        r#""just a string""#,
        "123",
        "  { \"spaced\" :\t[ 1 , 2 ]\n}  ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Random doubles from their bits (a fixed xorshift seed), and integers of every magnitude.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut floats = Vec::new();
    while floats.len() < 2000 {
        let f = f64::from_bits(next());
        if f.is_finite() {
            floats.push(serde_json::Number::from_f64(f).unwrap().to_string());
        }
    }
    docs.push(format!("[{}]", floats.join(",")));
    let mut ints = Vec::new();
    for _ in 0..500 {
        let bits = next() % 64;
        let v = next() >> (63 - bits);
        ints.push(if next() % 2 == 0 {
            v.to_string()
        } else {
            format!("-{}", v >> 1)
        });
    }
    docs.push(format!("[{}]", ints.join(",")));
    let mut decimals = Vec::new();
    for _ in 0..500 {
        let mantissa = next() % 10_000_000_000_000_000;
        let exp = (next() % 60) as i64 - 30;
        decimals.push(format!("{mantissa}e{exp}"));
    }
    docs.push(format!("[{}]", decimals.join(",")));
    docs
}

#[test]
fn js_json_matches_node_json_stringify() {
    let mut inputs = corpus();
    // Every golden body must be a fixed point of JSON.stringify(JSON.parse(body)) as well.
    for case in cases() {
        for format in Format::ALL {
            if can_carry(format, case.event_type) {
                for b in bodies(format, &view(&case)) {
                    inputs.push(String::from_utf8(b).unwrap());
                }
            }
        }
    }
    let Some(from_node) = node_roundtrip(&inputs) else {
        return;
    };
    assert_eq!(from_node.len(), inputs.len());
    let mut failures = Vec::new();
    for (input, want) in inputs.iter().zip(&from_node) {
        let v: Value = serde_json::from_str(input).unwrap();
        let ours = String::from_utf8(to_js_json(&v)).unwrap();
        if &ours != want {
            failures.push(format!("input: {input}\n node: {want}\n ours: {ours}"));
        }
    }
    // Our output is itself a fixed point in node.
    let ours: Vec<String> = inputs
        .iter()
        .map(|i| String::from_utf8(to_js_json(&serde_json::from_str(i).unwrap())).unwrap())
        .collect();
    let again = node_roundtrip(&ours).unwrap();
    for (o, a) in ours.iter().zip(&again) {
        if o != a {
            failures.push(format!("not a fixed point:\n ours: {o}\n node: {a}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
