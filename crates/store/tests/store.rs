//! Behavioural suite for [`Store`] implementations. Every test takes a fresh store from a factory so
//! the same suite can run against each backend.

use hookline_core::retry::RetrySchedule;
use hookline_core::webhook::{Format, Ordering};
use hookline_core::{ids, time};
use hookline_store::{ApiKey, Page, SqliteStore, Store, StoreError, Synchronous, Webhook};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

struct Fixture {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), 2, Synchronous::Normal).unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: dir,
    }
}

fn webhook(tenant: Uuid, name: &str) -> Webhook {
    let now = time::now();
    Webhook {
        id: ids::new_id(),
        tenant_id: tenant,
        name: name.into(),
        description: "d".into(),
        url: "https://example.com/h".into(),
        events: vec!["contact.*".into(), "deal.created".into()],
        secret: "whsec_abc".into(),
        previous_secret: Some("old".into()),
        previous_secret_expires_at: Some(now),
        enabled: true,
        disabled_reason: None,
        format: Format::Entity,
        headers: BTreeMap::from([("X-A".into(), "1".into())]),
        retry_schedule: Some(RetrySchedule::parse_list("30s,1h").unwrap()),
        rate_limit: Some(7),
        ordering: Ordering::Entity,
        consecutive_failures: 3,
        failing_since: Some(now),
        created_at: now,
        updated_at: now,
    }
}

macro_rules! suite {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::$backend().await).await;
                }
            )*
        }
    };
}

suite!(sqlite:
    migrate_is_idempotent,
    tenants_are_unique_by_name,
    api_keys_are_found_by_prefix,
    webhooks_round_trip_every_field,
    webhooks_are_scoped_by_tenant,
    list_pages_newest_first,
    concurrent_writes_all_commit_and_a_failing_one_spoils_none,
);

async fn migrate_is_idempotent(f: Fixture) {
    f.store.migrate().await.unwrap();
    f.store.migrate().await.unwrap();
    f.store.ping().await.unwrap();
}

async fn tenants_are_unique_by_name(f: Fixture) {
    assert_eq!(f.store.count_tenants().await.unwrap(), 0);
    let t = f.store.create_tenant("acme").await.unwrap();
    assert_eq!(f.store.tenant_by_name("acme").await.unwrap(), Some(t));
    assert!(matches!(
        f.store.create_tenant("acme").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.store.tenant_by_name("nobody").await.unwrap(), None);
    assert_eq!(f.store.count_tenants().await.unwrap(), 1);
}

async fn api_keys_are_found_by_prefix(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let key = ApiKey {
        id: ids::new_id(),
        tenant_id: t.id,
        name: "ci".into(),
        prefix: "hk_abcdefgh".into(),
        key_hash: "h1".into(),
        default_user_id: Some("u_1".into()),
        created_at: time::now(),
    };
    f.store.insert_api_key(&key).await.unwrap();
    let found = f.store.api_keys_by_prefix("hk_abcdefgh").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tenant_id, t.id);
    assert_eq!(found[0].default_user_id.as_deref(), Some("u_1"));
    assert!(f
        .store
        .api_keys_by_prefix("hk_zzzzzzzz")
        .await
        .unwrap()
        .is_empty());
    // The same hash twice is refused: a key maps to one row.
    let dup = ApiKey {
        id: ids::new_id(),
        ..key
    };
    assert!(matches!(
        f.store.insert_api_key(&dup).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn webhooks_round_trip_every_field(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = webhook(t.id, "one");
    f.store.insert_webhook(&w).await.unwrap();
    let got = f.store.get_webhook(t.id, w.id).await.unwrap().unwrap();
    // Timestamps are stored at millisecond precision.
    let mut want = w.clone();
    for ts in [&mut want.created_at, &mut want.updated_at] {
        *ts = time::parse(&time::format(ts)).unwrap();
    }
    want.previous_secret_expires_at = want
        .previous_secret_expires_at
        .map(|t| time::parse(&time::format(&t)).unwrap());
    want.failing_since = want
        .failing_since
        .map(|t| time::parse(&time::format(&t)).unwrap());
    assert_eq!(got, want);

    let mut changed = got.clone();
    changed.name = "renamed".into();
    changed.retry_schedule = None;
    changed.rate_limit = None;
    changed.previous_secret = None;
    changed.previous_secret_expires_at = None;
    changed.enabled = false;
    changed.disabled_reason = Some("failing".into());
    assert!(f.store.update_webhook(&changed).await.unwrap());
    assert_eq!(
        f.store.get_webhook(t.id, w.id).await.unwrap().unwrap(),
        changed
    );

    assert!(f.store.delete_webhook(t.id, w.id).await.unwrap());
    assert!(!f.store.delete_webhook(t.id, w.id).await.unwrap());
    assert_eq!(f.store.get_webhook(t.id, w.id).await.unwrap(), None);
    assert!(!f.store.update_webhook(&changed).await.unwrap());
}

async fn webhooks_are_scoped_by_tenant(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let b = f.store.create_tenant("b").await.unwrap();
    let w = webhook(a.id, "a's");
    f.store.insert_webhook(&w).await.unwrap();
    assert_eq!(f.store.get_webhook(b.id, w.id).await.unwrap(), None);
    assert!(f
        .store
        .list_webhooks(
            b.id,
            Page {
                before: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty());
    let mut stolen = w.clone();
    stolen.tenant_id = b.id;
    stolen.name = "stolen".into();
    assert!(!f.store.update_webhook(&stolen).await.unwrap());
    assert!(!f.store.delete_webhook(b.id, w.id).await.unwrap());
    assert_eq!(
        f.store.get_webhook(a.id, w.id).await.unwrap().unwrap().name,
        "a's"
    );
}

async fn list_pages_newest_first(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let w = webhook(t.id, &format!("w{i}"));
        ids.push(w.id);
        f.store.insert_webhook(&w).await.unwrap();
    }
    ids.reverse();
    let first = f
        .store
        .list_webhooks(
            t.id,
            Page {
                before: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.iter().map(|w| w.id).collect::<Vec<_>>(), ids[..3]);
    let rest = f
        .store
        .list_webhooks(
            t.id,
            Page {
                before: Some(ids[2]),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|w| w.id).collect::<Vec<_>>(), ids[3..]);
}

async fn concurrent_writes_all_commit_and_a_failing_one_spoils_none(f: Fixture) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = f.store.clone();
        // Every tenth name repeats an earlier one and must fail alone.
        let name = if i % 10 == 9 {
            format!("t{}", i - 1)
        } else {
            format!("t{i}")
        };
        tasks.push(tokio::spawn(
            async move { store.create_tenant(&name).await },
        ));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, conflicts), (180, 20));
    assert_eq!(f.store.count_tenants().await.unwrap(), 180);
}
