//! The claim query against a SQLite backlog (`cargo bench -p hookline-store`): claim 100 due
//! deliveries out of 100,000 and give them back, so every iteration sees the same backlog.

use criterion::{criterion_group, criterion_main, Criterion};
use hookline_core::ids::{EventId, WebhookId};
use hookline_core::retry::RetrySchedule;
use hookline_core::time;
use hookline_core::webhook::{Format, Ordering};
use hookline_store::{ClaimRequest, Event, SqliteStore, Store, Synchronous, Webhook};
use std::collections::BTreeMap;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bench.db"), 2, Synchronous::Normal)
        .unwrap()
        .with_keyring(std::sync::Arc::new(
            hookline_core::sealing::Keyring::ephemeral(),
        ));
    rt.block_on(async {
        store.migrate().await.unwrap();
        let t = store.create_tenant("bench").await.unwrap();
        for i in 0..4 {
            let now = time::now();
            store
                .insert_webhook(&Webhook {
                    id: WebhookId::new(),
                    tenant_id: t.id,
                    name: format!("w{i}"),
                    description: String::new(),
                    url: "https://example.com/h".into(),
                    events: vec!["*".into()],
                    secret: "s".into(),
                    previous_secret: None,
                    previous_secret_expires_at: None,
                    enabled: true,
                    disabled_reason: None,
                    format: Format::Envelope,
                    headers: BTreeMap::new(),
                    retry_schedule: Some(RetrySchedule(vec![])),
                    rate_limit: None,
                    ordering: Ordering::None,
                    consecutive_failures: 0,
                    failing_since: None,
                    created_at: now,
                    updated_at: now,
                    last_attempt_at: None,
                    filter: None,
                })
                .await
                .unwrap();
        }
        for chunk in 0..25 {
            let events: Vec<Event> = (0..1000)
                .map(|i| {
                    let now = time::now();
                    Event {
                        id: EventId::new(),
                        tenant_id: t.id,
                        event_type: "contact.created".into(),
                        occurred_at: now,
                        source: None,
                        source_id: None,
                        actor_id: None,
                        entity_type: None,
                        entity_id: None,
                        data: serde_json::json!({"id": format!("c{chunk}-{i}"), "first_name": "x"}),
                        changes: None,
                        batch: None,
                        created_at: now,
                    }
                })
                .collect();
            store.publish(t.id, events, None, usize::MAX).await.unwrap();
        }
    });
    c.bench_function("claim_100_of_100k_and_release", |b| {
        b.iter(|| {
            rt.block_on(async {
                let claim = store
                    .claim_due(ClaimRequest {
                        lease: std::time::Duration::from_secs(60),
                        limit: 100,
                        per_webhook: 25,
                        per_tenant: usize::MAX,
                        busy: Default::default(),
                        busy_tenants: Default::default(),
                        known_events: Default::default(),
                        round: 0,
                        default_max_attempts: 4,
                    })
                    .await
                    .unwrap();
                assert_eq!(claim.deliveries.len(), 100);
                store
                    .release(
                        claim
                            .deliveries
                            .iter()
                            .map(|d| (d.id, d.lease_token))
                            .collect(),
                    )
                    .await
                    .unwrap();
            })
        })
    });
}

criterion_group!(claim, benches);
criterion_main!(claim);
