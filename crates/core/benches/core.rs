//! Micro-benchmarks of the per-delivery pure work: signing and rendering (`cargo bench -p hookline-core`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hookline_core::formats::{self, AttemptMeta, EventFields, SigningKeys};
use hookline_core::ids::{DeliveryId, EventId};
use hookline_core::webhook::Format;
use hookline_core::{signing, time};
use serde_json::json;
use std::hint::black_box;

fn contact() -> serde_json::Value {
    json!({
        "id": "0196d3a0-0000-7000-8000-000000000001", "first_name": "John", "last_name": "Doe",
        "company": "Example Corp", "job_title": "Product Manager", "label": "Work", "notes": "x".repeat(600),
        "primary_email": "john.doe@example.com", "primary_phone": "+15550101010",
        "emails": [{"label": "Work", "value": "john.doe@example.com"}],
        "phones": [{"label": "Mobile", "value": "+15550101010"}],
        "tags": [{"name": "Conference", "type": "event"}],
        "created_at": "2026-05-15T10:00:00.000Z", "updated_at": "2026-05-15T10:05:00.000Z"
    })
}

fn benches(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let mut g = c.benchmark_group("signing");
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("hex_hmac_1kb", |b| {
        b.iter(|| signing::hex_signature(black_box("whsec_secret"), black_box(&body)))
    });
    g.bench_function("standard_webhooks_1kb", |b| {
        b.iter(|| {
            signing::standard_signature(
                black_box("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "msg",
                1_700_000_000,
                black_box(&body),
            )
        })
    });
    g.finish();

    let data = contact();
    let ev = EventFields {
        id: EventId::default(),
        event_type: "contact.created",
        occurred_at: time::now(),
        source: Some("api"),
        source_id: None,
        actor_id: Some("u_1"),
        tenant: "acme",
        entity_id: Some("c1"),
        data: &data,
        changes: None,
        batch: None,
    };
    let mut g = c.benchmark_group("render");
    for f in Format::ALL {
        g.bench_function(f.as_str(), |b| {
            b.iter(|| {
                formats::render_body(black_box(f), black_box(&ev), DeliveryId::default(), Some(0))
            })
        });
    }
    g.bench_function("js_json_1kb", |b| {
        b.iter(|| hookline_core::jsjson::to_js_json(black_box(&data)))
    });
    let rendered = formats::render_body(Format::Envelope, &ev, DeliveryId::default(), None);
    g.bench_function("headers_and_both_signatures", |b| {
        let custom = Default::default();
        b.iter(|| {
            let meta = AttemptMeta {
                brand: "Hookline",
                format: Format::Envelope,
                event_type: "contact.created",
                message_id: DeliveryId::default(),
                attempt_time: time::now(),
            };
            formats::delivery_headers(
                meta,
                SigningKeys {
                    current: "whsec_secret",
                    previous: None,
                },
                black_box(&rendered),
                &custom,
            )
        })
    });
    // What reading a webhook costs since its secrets are stored encrypted: the store opens these
    // three values once per webhook per claim.
    let ring = hookline_core::sealing::Keyring::ephemeral();
    let sealed = [
        ring.seal(
            "whsec_MfKQ9r8GKYqrTQJ5X3xlv7c0f3tt2k8ZcNqJt5kLrWE=",
            "secret",
        ),
        ring.seal(
            "whsec_OLDsecretOLDsecretOLDsecretOLDsecret0000=",
            "previous_secret",
        ),
        ring.seal(r#"{"Authorization":"Bearer receiver-token"}"#, "headers"),
    ];
    g.bench_function("open_a_webhooks_three_sealed_columns", |b| {
        b.iter(|| {
            ring.open(black_box(&sealed[0]), "secret").unwrap();
            ring.open(black_box(&sealed[1]), "previous_secret").unwrap();
            ring.open(black_box(&sealed[2]), "headers").unwrap()
        })
    });
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
