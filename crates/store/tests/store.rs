//! Behavioural suite for [`Store`] implementations. Every test takes a fresh store from a factory so
//! the same suite can run against each backend.

use hookline_core::api_key::KeyScope;
use hookline_core::ids::{ApiKeyId, AttemptId, EventId, LeaseToken, TenantId, WebhookId};
use hookline_core::retry::{DisablePolicy, RetrySchedule};
use hookline_core::sealing::{EncryptionKey, Keyring};
use hookline_core::stats::{hour_of, BUCKETS};
use hookline_core::time;
use hookline_core::time::Timestamp;
use hookline_core::webhook::{Format, Ordering};
use hookline_store::{
    ApiKey, Attempt, AttemptResult, CancelOutcome, CancelReason, ClaimRequest, ConsoleSession,
    Delivery, DeliveryFilter, DeliveryStatus, Event, FoundSession, NextState, Page, PortalGrant,
    PublishOutcome, RecordFilter, RecordPlan, RecordRow, ReplayFilter, Reseal, SqliteStore, Store,
    StoreError, Synchronous, Webhook, WebhookFilter, WebhookHour,
};
use std::collections::BTreeMap;
use std::sync::Arc;

// PostgreSQL over TLS, on a cluster of its own (tests/pg_tls/mod.rs).
mod pg_tls;

struct Fixture {
    store: Arc<dyn Store>,
    /// The key the store seals webhook secrets under (a fresh random one per fixture).
    key: EncryptionKey,
    _dir: Option<tempfile::TempDir>,
    _db: Option<hookline_store::testing::TestDatabase>,
}

async fn sqlite_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate();
    let store = SqliteStore::open(dir.path().join("t.db"), 2, Synchronous::Normal)
        .unwrap()
        .with_keyring(Arc::new(Keyring::new(key.clone(), vec![])));
    store.migrate().await.unwrap();
    Fixture {
        store: Arc::new(store),
        key,
        _dir: Some(dir),
        _db: None,
    }
}

/// A fresh PostgreSQL database, or `None` when PostgreSQL tests are skipped here.
async fn postgres_store() -> Option<Fixture> {
    let db = hookline_store::testing::TestDatabase::create().await?;
    let key = EncryptionKey::generate();
    let store = hookline_store::PostgresStore::connect(&db.url, 8)
        .await
        .unwrap()
        .with_keyring(Arc::new(Keyring::new(key.clone(), vec![])));
    store.migrate().await.unwrap();
    Some(Fixture {
        store: Arc::new(store),
        key,
        _dir: None,
        _db: Some(db),
    })
}

fn webhook(tenant: TenantId, name: &str) -> Webhook {
    let now = time::now();
    Webhook {
        id: WebhookId::new(),
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
        format: Format::RecordCentred,
        headers: BTreeMap::from([("X-A".into(), "1".into())]),
        retry_schedule: Some(RetrySchedule::parse_list("30s,1h").unwrap()),
        rate_limit: Some(7),
        ordering: Ordering::PerRecord,
        consecutive_failures: 3,
        failing_since: Some(now),
        created_at: now,
        updated_at: now,
        last_attempt_at: Some(now),
        filter: None,
    }
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::sqlite_store().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(f) = super::postgres_store().await {
                        super::$test(f).await;
                    }
                }
            )*
        }
    };
}

suite!(
    migrate_is_idempotent,
    tenants_are_unique_by_name,
    api_keys_are_found_by_prefix,
    api_keys_are_listed_touched_and_revoked_with_their_sessions,
    concurrent_revocations_cant_both_pass_the_check,
    webhooks_round_trip_every_field,
    webhooks_are_scoped_by_tenant,
    list_pages_newest_first,
    concurrent_writes_all_commit_and_a_failing_one_spoils_none,
    publish_fans_out_to_matching_enabled_webhooks_in_one_transaction,
    filters_decide_which_subscribers_get_a_delivery,
    one_object_formats_get_a_delivery_per_object,
    idempotency_keys_replay_or_refuse,
    idempotency_key_claims_answer_release_and_stay_per_tenant,
    claims_respect_per_webhook_quotas_and_leases,
    results_need_the_current_lease,
    ordering_holds_later_events_of_a_record,
    replay_and_resend_copy_deliveries,
    retention_prunes_finished_rows_and_keeps_live_ones,
    record_writes_are_atomic_versioned_and_scoped,
    webhook_edits_see_the_latest_row_and_keep_health,
    reclaimed_leases_count_against_the_per_webhook_quota,
    release_gives_leases_back_due_now,
    claims_rotate_webhooks_by_round,
    backlog_counts_by_status_and_ages_the_oldest_due,
    console_sessions_are_found_touched_deleted_and_pruned,
    portal_codes_redeem_once_and_revocation_ends_sessions,
    webhooks_join_the_lists_of_their_grants,
    attempts_are_counted_per_webhook_and_hour,
    hourly_stats_follow_test_sends_retention_and_deletes,
    attempts_holding_nul_bytes_are_stored,
    claims_alternate_between_tenants_and_cap_each,
    a_publish_over_the_delivery_limit_writes_nothing,
    replay_jobs_copy_in_steps_resume_after_a_takeover_and_cancel,
    import_job_steps_write_records_and_move_the_job_together,
    secrets_and_header_values_are_stored_sealed,
    rows_in_clear_are_sealed_by_migrate,
    rotation_reseals_under_the_new_key_and_old_rows_stay_readable,
    a_wrong_key_stops_migrate_naming_the_key_and_never_reads_garbage,
    a_delivery_whose_node_dies_every_time_fails_with_abandoned_attempts,
    operational_events_announce_failing_recovered_and_exhausted,
    an_exhausted_operational_delivery_announces_nothing,
    deleting_a_webhook_cancels_its_queue_and_keeps_its_log,
    disabling_a_webhook_cancels_its_queue_for_good,
    a_410_cancels_the_queue_as_endpoint_gone,
    a_claimed_delivery_of_a_disabled_webhook_is_cancelled_not_retried,
    a_queued_delivery_is_cancelled_by_hand,
    erasure_steps_drop_rewrite_and_renumber_and_a_late_result_stores_nothing,
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
        id: ApiKeyId::new(),
        tenant_id: t.id,
        name: "ci".into(),
        prefix: "hk_abcdefgh".into(),
        key_hash: "h1".into(),
        default_user_id: Some("u_1".into()),
        created_at: time::now(),
        scope: KeyScope::Read,
        expires_at: Some(time::now() + chrono::Duration::days(1)),
        last_used_at: None,
        revoked_at: None,
    };
    f.store.insert_api_key(&key).await.unwrap();
    let found = f.store.api_keys_by_prefix("hk_abcdefgh").await.unwrap();
    // Every field comes back as written (timestamps at millisecond precision).
    assert_eq!(found, vec![key.clone()]);
    assert!(f
        .store
        .api_keys_by_prefix("hk_zzzzzzzz")
        .await
        .unwrap()
        .is_empty());
    // The same hash twice is refused: a key maps to one row.
    let dup = ApiKey {
        id: ApiKeyId::new(),
        ..key
    };
    assert!(matches!(
        f.store.insert_api_key(&dup).await,
        Err(StoreError::Conflict(_))
    ));
}

fn api_key(tenant: TenantId, prefix: &str, scope: KeyScope) -> ApiKey {
    ApiKey {
        id: ApiKeyId::new(),
        tenant_id: tenant,
        name: format!("key {prefix}"),
        prefix: prefix.into(),
        key_hash: format!("hash-{prefix}"),
        default_user_id: None,
        created_at: time::now(),
        scope,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A revocation check that wants another unrevoked full key beside the one revoked.
fn another_full_key() -> hookline_store::KeyRevokeCheck {
    Box::new(|target: &ApiKey, all: &[ApiKey]| {
        if all
            .iter()
            .any(|k| k.id != target.id && k.scope == KeyScope::Full && k.revoked_at.is_none())
        {
            Ok(())
        } else {
            Err("last full key".into())
        }
    })
}

async fn api_keys_are_listed_touched_and_revoked_with_their_sessions(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let b = f.store.create_tenant("b").await.unwrap();
    let k1 = api_key(a.id, "hk_11111111", KeyScope::Full);
    let k2 = api_key(a.id, "hk_22222222", KeyScope::Read);
    let k3 = api_key(a.id, "hk_33333333", KeyScope::Full);
    let kb = api_key(b.id, "hk_bbbbbbbb", KeyScope::Full);
    for k in [&k1, &k2, &k3, &kb] {
        f.store.insert_api_key(k).await.unwrap();
    }
    // Newest first, paged by id, one tenant only.
    let page = |before, limit| Page { before, limit };
    let ids = |v: Vec<ApiKey>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(f.store.list_api_keys(a.id, page(None, 10)).await.unwrap()),
        [k3.id, k2.id, k1.id]
    );
    assert_eq!(
        ids(f
            .store
            .list_api_keys(a.id, page(Some(k3.id.0), 1))
            .await
            .unwrap()),
        [k2.id]
    );
    assert_eq!(
        ids(f.store.list_api_keys(b.id, page(None, 10)).await.unwrap()),
        [kb.id]
    );

    // Use is recorded, and never moves back.
    let t1 = time::now();
    let t0 = t1 - chrono::Duration::minutes(5);
    f.store.touch_api_key(k1.id, t1).await.unwrap();
    f.store.touch_api_key(k1.id, t0).await.unwrap();
    f.store.touch_api_key(ApiKeyId::new(), t1).await.unwrap();
    let listed = f.store.list_api_keys(a.id, page(None, 10)).await.unwrap();
    assert_eq!(listed[2].last_used_at, Some(t1));
    assert_eq!(listed[1].last_used_at, None);

    // A console session comes back with the key it was signed in with.
    let s = ConsoleSession {
        key_id: Some(k3.id),
        ..session(a.id, "with-k3", None)
    };
    f.store.insert_console_session(&s).await.unwrap();
    let found = f.store.console_session("with-k3").await.unwrap().unwrap();
    assert_eq!(found.key.as_ref().map(|k| k.id), Some(k3.id));
    assert_eq!(found.key.unwrap().scope, KeyScope::Full);

    // The check sees the key and all its tenant's keys; a refusal changes nothing.
    let now = time::now();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let saw = seen.clone();
    let refuse: hookline_store::KeyRevokeCheck = Box::new(move |target, all| {
        saw.lock()
            .unwrap()
            .extend(std::iter::once(target.id).chain(all.iter().map(|k| k.id)));
        Err("no".into())
    });
    assert!(matches!(
        f.store.revoke_api_key(a.id, k3.id, now, refuse).await,
        Err(StoreError::Rejected(_))
    ));
    let mut saw = seen.lock().unwrap().clone();
    assert_eq!(saw.remove(0), k3.id);
    saw.sort();
    assert_eq!(saw, [k1.id, k2.id, k3.id]);
    assert!(f.store.console_session("with-k3").await.unwrap().is_some());

    // Another tenant's key, or none at all, is not found.
    assert_eq!(
        f.store
            .revoke_api_key(b.id, k3.id, now, another_full_key())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        f.store
            .revoke_api_key(a.id, ApiKeyId::new(), now, another_full_key())
            .await
            .unwrap(),
        None
    );

    // Revoked: its sessions end, and it no longer authenticates by prefix.
    let revoked = f
        .store
        .revoke_api_key(a.id, k3.id, now, another_full_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    assert_eq!(f.store.console_session("with-k3").await.unwrap(), None);
    assert!(f
        .store
        .api_keys_by_prefix("hk_33333333")
        .await
        .unwrap()
        .is_empty());
    // Listed still, with the time it was revoked.
    let listed = f.store.list_api_keys(a.id, page(None, 10)).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(now));

    // Revoking it again answers it unchanged without asking the check.
    let never: hookline_store::KeyRevokeCheck = Box::new(|_, _| panic!("not asked"));
    let again = f
        .store
        .revoke_api_key(a.id, k3.id, now + chrono::Duration::hours(1), never)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(now));

    // k1 is now the only full key: the check refuses it.
    assert!(matches!(
        f.store
            .revoke_api_key(a.id, k1.id, now, another_full_key())
            .await,
        Err(StoreError::Rejected(_))
    ));
    assert_eq!(
        f.store
            .api_keys_by_prefix("hk_11111111")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn concurrent_revocations_cant_both_pass_the_check(f: Fixture) {
    // Two full keys revoked at the same time, each allowed only while the other stands: whatever
    // the interleaving, exactly one revocation goes through.
    for round in 0..5 {
        let t = f.store.create_tenant(&format!("t{round}")).await.unwrap();
        let k1 = api_key(t.id, &format!("hk_a{round:07}"), KeyScope::Full);
        let k2 = api_key(t.id, &format!("hk_b{round:07}"), KeyScope::Full);
        f.store.insert_api_key(&k1).await.unwrap();
        f.store.insert_api_key(&k2).await.unwrap();
        let now = time::now();
        let (r1, r2) = tokio::join!(
            f.store.revoke_api_key(t.id, k1.id, now, another_full_key()),
            f.store.revoke_api_key(t.id, k2.id, now, another_full_key()),
        );
        let ok = [&r1, &r2]
            .iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        let refused = [&r1, &r2]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Rejected(_))))
            .count();
        assert_eq!((ok, refused), (1, 1), "round {round}: {r1:?} {r2:?}");
        let live = f
            .store
            .list_api_keys(
                t.id,
                Page {
                    before: None,
                    limit: 10,
                },
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .count();
        assert_eq!(live, 1);
    }
}

async fn webhooks_round_trip_every_field(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let mut w = webhook(t.id, "one");
    w.filter = Some(r#""vip" in data.tags[*].name && data['é'] != "ü""#.into());
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
    want.last_attempt_at = want
        .last_attempt_at
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
    changed.last_attempt_at = None;
    changed.filter = None;
    assert!(replace_webhook(&f, &changed).await);
    assert_eq!(
        f.store.get_webhook(t.id, w.id).await.unwrap().unwrap(),
        changed
    );

    assert!(f.store.delete_webhook(t.id, w.id).await.unwrap());
    assert!(!f.store.delete_webhook(t.id, w.id).await.unwrap());
    assert_eq!(f.store.get_webhook(t.id, w.id).await.unwrap(), None);
    assert!(!replace_webhook(&f, &changed).await);
}

/// Overwrites every stored setting of `w`'s webhook (found by its tenant and id) with `w`'s, the way
/// an API edit does; false when there is no such webhook.
async fn replace_webhook(f: &Fixture, w: &Webhook) -> bool {
    let new = w.clone();
    f.store
        .modify_webhook(
            w.tenant_id,
            w.id,
            Box::new(move |stored| {
                *stored = new;
                Ok(())
            }),
        )
        .await
        .unwrap()
        .is_some()
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
            WebhookFilter::default(),
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
    assert!(!replace_webhook(&f, &stolen).await);
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
            WebhookFilter::default(),
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
            WebhookFilter::default(),
            Page {
                before: Some(ids[2].into()),
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

fn event(tenant: TenantId, event_type: &str, data: serde_json::Value) -> Event {
    let now = time::now();
    Event {
        id: EventId::new(),
        tenant_id: tenant,
        event_type: event_type.into(),
        occurred_at: now,
        source: None,
        source_id: None,
        actor_id: None,
        entity_type: None,
        entity_id: data.get("id").and_then(|v| v.as_str()).map(str::to_string),
        data,
        changes: None,
        batch: None,
        created_at: now,
    }
}

fn hook_for(tenant: TenantId, events: &[&str], format: Format, enabled: bool) -> Webhook {
    let mut w = webhook(tenant, "w");
    w.events = events.iter().map(|e| e.to_string()).collect();
    w.format = format;
    w.enabled = enabled;
    w.ordering = Ordering::None;
    w.consecutive_failures = 0;
    w.failing_since = None;
    w.last_attempt_at = None;
    w
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

fn claim_req(limit: usize, per_webhook: usize) -> ClaimRequest {
    ClaimRequest {
        lease: LEASE,
        limit,
        per_webhook,
        per_tenant: usize::MAX,
        busy: Default::default(),
        busy_tenants: Default::default(),
        known_events: Default::default(),
        round: 0,
        default_max_attempts: hookline_core::retry::RetrySchedule::recommended().max_attempts(),
    }
}

fn result(
    d: &hookline_store::ClaimedDelivery,
    next: NextState,
    status: Option<u16>,
) -> AttemptResult {
    AttemptResult {
        delivery_id: d.id,
        webhook_id: d.webhook_id,
        lease_token: d.lease_token,
        attempt: Attempt {
            id: AttemptId::new(),
            delivery_id: d.id,
            attempt_number: d.attempt_number,
            started_at: time::now(),
            url: "https://example.com/h".into(),
            status_code: status,
            error_kind: None,
            error_message: None,
            dns_ms: None,
            connect_ms: Some(1.0),
            tls_ms: None,
            ttfb_ms: Some(2.0),
            total_ms: 3.0,
            request_headers: vec![("X-Webhook-Event".into(), "contact.created".into())],
            response_headers: vec![],
            response_body: Some("ok".into()),
            response_truncated: false,
        },
        next,
    }
}

/// Publishes one `contact.created` with only an id.
async fn publish_contact(f: &Fixture, tenant: TenantId, id: impl Into<String>) {
    let id: String = id.into();
    published(
        f,
        tenant,
        vec![event(
            tenant,
            "contact.created",
            serde_json::json!({"id": id}),
        )],
    )
    .await;
}

async fn published(
    f: &Fixture,
    tenant: TenantId,
    events: Vec<Event>,
) -> Vec<hookline_store::Published> {
    match f
        .store
        .publish(tenant, events, None, usize::MAX)
        .await
        .unwrap()
    {
        PublishOutcome::Published(p) => p,
        other => panic!("{other:?}"),
    }
}

async fn publish_fans_out_to_matching_enabled_webhooks_in_one_transaction(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let other = f.store.create_tenant("other").await.unwrap();
    let contacts = hook_for(t.id, &["contact.*"], Format::Envelope, true);
    let all = hook_for(t.id, &["*"], Format::Envelope, true);
    let off = hook_for(t.id, &["*"], Format::Envelope, false);
    let theirs = hook_for(other.id, &["*"], Format::Envelope, true);
    for w in [&contacts, &all, &off, &theirs] {
        f.store.insert_webhook(w).await.unwrap();
    }
    let p = published(
        &f,
        t.id,
        vec![
            event(t.id, "contact.created", serde_json::json!({"id": "c1"})),
            event(t.id, "deal.created", serde_json::json!({"id": "d1"})),
        ],
    )
    .await;
    assert_eq!(p[0].delivery_ids.len(), 2);
    assert_eq!(p[1].delivery_ids.len(), 1);
    let listed = f
        .store
        .list_deliveries(
            t.id,
            DeliveryFilter::default(),
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.webhook_id != off.id));
    // An event that fails to insert takes its deliveries with it.
    let dup = event(t.id, "contact.created", serde_json::json!({"id": "c2"}));
    let again = Event { id: p[0].id, ..dup };
    assert!(f
        .store
        .publish(t.id, vec![again], None, usize::MAX)
        .await
        .is_err());
    let listed = f
        .store
        .list_deliveries(
            t.id,
            DeliveryFilter::default(),
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
}

async fn filters_decide_which_subscribers_get_a_delivery(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let filtered = |filter: &str| {
        let mut w = hook_for(t.id, &["*"], Format::Envelope, true);
        w.filter = Some(filter.into());
        w
    };
    let vip = filtered(r#""vip" in data.tags[*].name"#);
    let big_reassigned = filtered("changes.owner_id != null && data.amount >= 1000");
    let by_envelope = filtered(
        r#"type == "deal.updated" && actor == "u1" && source == "api" && occurred_at >= "2000-01-01""#,
    );
    // Stored behind the service's back: it no longer parses, so it gets nothing, and the publish
    // still succeeds for everyone else.
    let broken = filtered("data.stage ==");
    let unfiltered = hook_for(t.id, &["*"], Format::Envelope, true);
    for w in [&vip, &big_reassigned, &by_envelope, &broken, &unfiltered] {
        f.store.insert_webhook(w).await.unwrap();
    }
    let mut deal = event(
        t.id,
        "deal.updated",
        serde_json::json!({"id": "d1", "amount": 1500, "tags": [{"name": "new"}, {"name": "vip"}]}),
    );
    deal.actor_id = Some("u1".into());
    deal.source = Some("api".into());
    deal.changes = Some(serde_json::json!({"owner_id": {"previous": "a", "current": "b"}}));
    let mut small = event(
        t.id,
        "deal.updated",
        serde_json::json!({"id": "d2", "amount": 10}),
    );
    small.changes = deal.changes.clone();
    let contact = event(
        t.id,
        "contact.created",
        serde_json::json!({"id": "c1", "tags": "vip"}),
    );
    let who = |p: &hookline_store::Published, listed: &[hookline_store::Delivery]| {
        let mut ids: Vec<WebhookId> = listed
            .iter()
            .filter(|d| p.delivery_ids.contains(&d.id))
            .map(|d| d.webhook_id)
            .collect();
        ids.sort();
        ids
    };
    // The limit counts only the deliveries filters let through.
    let p = match f
        .store
        .publish(t.id, vec![deal, small, contact], None, 6)
        .await
        .unwrap()
    {
        PublishOutcome::Published(p) => p,
        other => panic!("{other:?}"),
    };
    let listed = f
        .store
        .list_deliveries(
            t.id,
            DeliveryFilter::default(),
            Page {
                before: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 6);
    let mut want = vec![vip.id, big_reassigned.id, by_envelope.id, unfiltered.id];
    want.sort();
    assert_eq!(who(&p[0], &listed), want);
    assert_eq!(who(&p[1], &listed), [unfiltered.id]);
    assert_eq!(who(&p[2], &listed), [unfiltered.id]);
    assert!(listed.iter().all(|d| d.webhook_id != broken.id));
}

async fn one_object_formats_get_a_delivery_per_object(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Envelope, true))
        .await
        .unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Flat, true))
        .await
        .unwrap();
    let batch = serde_json::json!([{"id": "a"}, {"id": "b"}, {"id": "c"}]);
    let p = published(&f, t.id, vec![event(t.id, "contact.created", batch)]).await;
    assert_eq!(p[0].delivery_ids.len(), 4, "1 batched + 3 single");
    let claim = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    let mut items: Vec<_> = claim.deliveries.iter().map(|d| d.item_index).collect();
    items.sort();
    assert_eq!(items, [None, Some(0), Some(1), Some(2)]);
}

async fn idempotency_keys_replay_or_refuse(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let key = Some(("k".to_string(), "hash-1".to_string()));
    let first = f
        .store
        .publish(
            t.id,
            vec![event(t.id, "task.created", serde_json::json!({"id": "t"}))],
            key.clone(),
            usize::MAX,
        )
        .await
        .unwrap();
    let PublishOutcome::Published(p) = first else {
        panic!()
    };
    let again = f
        .store
        .publish(
            t.id,
            vec![event(t.id, "task.created", serde_json::json!({"id": "t"}))],
            key,
            usize::MAX,
        )
        .await
        .unwrap();
    assert_eq!(again, PublishOutcome::Replayed(p));
    let other = f
        .store
        .publish(
            t.id,
            vec![event(t.id, "task.created", serde_json::json!({"id": "u"}))],
            Some(("k".into(), "hash-2".into())),
            usize::MAX,
        )
        .await
        .unwrap();
    assert_eq!(other, PublishOutcome::KeyReused);
    assert_eq!(
        f.store
            .list_events(
                t.id,
                None,
                Page {
                    before: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    // Keys are per tenant.
    let u = f.store.create_tenant("u").await.unwrap();
    let theirs = f
        .store
        .publish(
            u.id,
            vec![event(u.id, "task.created", serde_json::json!({"id": "t"}))],
            Some(("k".into(), "hash-2".into())),
            usize::MAX,
        )
        .await
        .unwrap();
    assert!(matches!(theirs, PublishOutcome::Published(_)));
}

async fn idempotency_key_claims_answer_release_and_stay_per_tenant(f: Fixture) {
    use hookline_store::KeyClaim;
    let t = f.store.create_tenant("acme").await.unwrap();
    let s = &f.store;
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h1").await.unwrap(),
        KeyClaim::Claimed
    );
    // Held and unanswered: the same request waits, another one is refused.
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h1").await.unwrap(),
        KeyClaim::InProgress
    );
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h2").await.unwrap(),
        KeyClaim::Reused
    );
    // Released (the request failed): free again, for any request.
    s.release_idempotency_key(t.id, "k").await.unwrap();
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h2").await.unwrap(),
        KeyClaim::Claimed
    );
    s.complete_idempotency_key(t.id, "k", r#"{"id":"w1"}"#)
        .await
        .unwrap();
    // Answered: the answer, again and again; releasing doesn't drop an answered key.
    s.release_idempotency_key(t.id, "k").await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            s.claim_idempotency_key(t.id, "k", "h2").await.unwrap(),
            KeyClaim::Answered(r#"{"id":"w1"}"#.into())
        );
    }
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h1").await.unwrap(),
        KeyClaim::Reused
    );
    // Keys are per tenant, and publish's keys share the namespace.
    let u = f.store.create_tenant("u").await.unwrap();
    assert_eq!(
        s.claim_idempotency_key(u.id, "k", "h1").await.unwrap(),
        KeyClaim::Claimed
    );
    let published = s
        .publish(
            t.id,
            vec![event(t.id, "task.created", serde_json::json!({"id": "t"}))],
            Some(("k".into(), "h3".into())),
            usize::MAX,
        )
        .await
        .unwrap();
    assert_eq!(published, PublishOutcome::KeyReused);
    // Of many concurrent claims of one free key, exactly one wins.
    let claims =
        futures_util::future::join_all((0..8).map(|_| s.claim_idempotency_key(t.id, "race", "h")))
            .await;
    let won = claims
        .iter()
        .filter(|c| matches!(c, Ok(KeyClaim::Claimed)))
        .count();
    assert_eq!(won, 1, "{claims:?}");
    assert!(claims
        .iter()
        .all(|c| matches!(c, Ok(KeyClaim::Claimed | KeyClaim::InProgress))));
    // Pruned with publish's keys.
    s.prune(time::now(), time::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        s.claim_idempotency_key(t.id, "k", "h1").await.unwrap(),
        KeyClaim::Claimed
    );
}

async fn claims_respect_per_webhook_quotas_and_leases(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let a = hook_for(t.id, &["*"], Format::Envelope, true);
    let b = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&a).await.unwrap();
    f.store.insert_webhook(&b).await.unwrap();
    for i in 0..10 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    let mut req = claim_req(100, 3);
    req.busy.insert(a.id, 2);
    let claim = f.store.claim_due(req.clone()).await.unwrap();
    let for_a = claim
        .deliveries
        .iter()
        .filter(|d| d.webhook_id == a.id)
        .count();
    let for_b = claim
        .deliveries
        .iter()
        .filter(|d| d.webhook_id == b.id)
        .count();
    assert_eq!((for_a, for_b), (1, 3));
    assert!(claim.deliveries.iter().all(|d| d.attempt_number == 1));
    assert_eq!(claim.webhooks.len(), 2);
    assert_eq!(claim.tenants[&t.id], "acme");
    // Leased work isn't claimed again until the lease expires.
    let again = claim_req(100, 100);
    let second = f.store.claim_due(again.clone()).await.unwrap();
    assert_eq!(second.deliveries.len(), 20 - 4);
    assert_eq!(
        f.store
            .claim_due(again.clone())
            .await
            .unwrap()
            .deliveries
            .len(),
        0
    );
    f.store.travel(secs(61)).await.unwrap();
    assert_eq!(f.store.claim_due(again).await.unwrap().deliveries.len(), 20);
    // A global limit caps the batch.
    assert!(f.store.next_due_in().await.unwrap().is_some());
}

async fn results_need_the_current_lease(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "c").await;
    let req = claim_req(10, 10);
    let stale = f
        .store
        .claim_due(req.clone())
        .await
        .unwrap()
        .deliveries
        .remove(0);
    f.store.travel(secs(61)).await.unwrap();
    let fresh = f.store.claim_due(req).await.unwrap().deliveries.remove(0);
    assert_eq!(fresh.id, stale.id);
    let applied = f
        .store
        .record_attempts(
            vec![
                result(&stale, NextState::Delivered, Some(200)),
                result(&fresh, NextState::RetryAfter(secs(30)), Some(503)),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(applied, [false, true]);
    // The takeover counted the first try as abandoned: the fresh claim is attempt 2.
    assert_eq!((stale.attempt_number, fresh.attempt_number), (1, 2));
    let (d, attempts) = f.store.get_delivery(t.id, fresh.id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Retrying);
    assert_eq!(d.attempt_count, 2);
    assert_eq!(d.last_status_code, Some(503));
    // Three rows: the abandoned try, the stale result (kept with its answer), the fresh one.
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let kind = |k: &str| {
        attempts
            .iter()
            .find(|a| a.error_kind.as_deref() == Some(k))
            .unwrap_or_else(|| panic!("no {k} attempt in {attempts:?}"))
    };
    assert_eq!(kind("abandoned").attempt_number, 1);
    assert_eq!(kind("abandoned").status_code, None);
    assert_eq!(kind("stale").attempt_number, 1);
    assert_eq!(kind("stale").status_code, Some(200));
    assert!(kind("stale")
        .error_message
        .as_deref()
        .unwrap()
        .contains("taken over"));
    let current = attempts.iter().find(|a| a.error_kind.is_none()).unwrap();
    assert_eq!(
        (current.attempt_number, current.status_code),
        (2, Some(503))
    );
    assert_eq!(current.request_headers[0].0, "X-Webhook-Event");
    // Neither the abandoned try nor the stale result moves the receiver's failure streak.
    let stored = f.store.get_webhook(t.id, w.id).await.unwrap().unwrap();
    assert_eq!(stored.consecutive_failures, 1);
    assert!(stored.failing_since.is_some());
    // Release gives leased work back, due now.
    let req = claim_req(10, 10);
    assert!(
        f.store
            .claim_due(req.clone())
            .await
            .unwrap()
            .deliveries
            .is_empty(),
        "not due yet"
    );
    f.store.travel(secs(31)).await.unwrap();
    let c = f
        .store
        .claim_due(req.clone())
        .await
        .unwrap()
        .deliveries
        .remove(0);
    assert_eq!(c.attempt_number, 3);
    f.store.release(vec![(c.id, c.lease_token)]).await.unwrap();
    let again = f.store.claim_due(req).await.unwrap();
    assert_eq!(again.deliveries.len(), 1);
}

async fn attempts_holding_nul_bytes_are_stored(f: Fixture) {
    // PostgreSQL's text refuses NUL: a gzip or binary response body used to fail the whole batch.
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 2);
    let mut poisoned = result(&claim.deliveries[0], NextState::Delivered, Some(200));
    poisoned.attempt.response_body = Some("\u{1f}\u{8b}\0\0binary".into());
    poisoned.attempt.response_headers = vec![("x-odd\0".into(), "a\0b".into())];
    poisoned.attempt.error_message = Some("nul \0 here".into());
    let clean = result(&claim.deliveries[1], NextState::Delivered, Some(200));
    let applied = f
        .store
        .record_attempts(vec![poisoned.clone(), clean], Default::default())
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    let (d, attempts) = f
        .store
        .get_delivery(t.id, poisoned.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    let a = &attempts[0];
    assert_eq!(
        a.response_body.as_deref(),
        Some("\u{1f}\u{8b}\u{FFFD}\u{FFFD}binary")
    );
    assert_eq!(
        a.response_headers,
        [("x-odd\u{FFFD}".to_string(), "a\u{FFFD}b".to_string())]
    );
    assert_eq!(a.error_message.as_deref(), Some("nul \u{FFFD} here"));
}

async fn claims_alternate_between_tenants_and_cap_each(f: Fixture) {
    let noisy = f.store.create_tenant("noisy").await.unwrap();
    let calm = f.store.create_tenant("calm").await.unwrap();
    let mut noisy_hooks = Vec::new();
    for _ in 0..5 {
        let w = hook_for(noisy.id, &["*"], Format::Envelope, true);
        f.store.insert_webhook(&w).await.unwrap();
        noisy_hooks.push(w.id);
    }
    let calm_hook = hook_for(calm.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&calm_hook).await.unwrap();
    for i in 0..4 {
        publish_contact(&f, noisy.id, format!("n{i}")).await;
        publish_contact(&f, calm.id, format!("c{i}")).await;
    }
    let count = |claim: &hookline_store::Claim, tenant: TenantId| {
        claim
            .deliveries
            .iter()
            .filter(|d| d.tenant_id == tenant)
            .count()
    };
    // The noisy tenant may have 6 in flight and already has 2: it gets 4 of its 20, the calm one
    // all of its 4, whatever the order.
    let mut req = claim_req(100, 10);
    req.per_tenant = 6;
    req.busy_tenants.insert(noisy.id, 2);
    let claim = f.store.claim_due(req.clone()).await.unwrap();
    assert_eq!((count(&claim, noisy.id), count(&claim, calm.id)), (4, 4));
    f.store
        .release(
            claim
                .deliveries
                .iter()
                .map(|d| (d.id, d.lease_token))
                .collect(),
        )
        .await
        .unwrap();
    let release = |claim: hookline_store::Claim| {
        let store = f.store.clone();
        async move {
            store
                .release(
                    claim
                        .deliveries
                        .iter()
                        .map(|d| (d.id, d.lease_token))
                        .collect(),
                )
                .await
                .unwrap()
        }
    };
    // A tenant at its cap, and a webhook at its cap, are left out altogether.
    let mut req = claim_req(100, 10);
    req.per_tenant = 6;
    req.busy_tenants.insert(noisy.id, 6);
    let claim = f.store.claim_due(req).await.unwrap();
    assert_eq!((count(&claim, noisy.id), count(&claim, calm.id)), (0, 4));
    release(claim).await;
    let mut req = claim_req(100, 3);
    req.busy.insert(calm_hook.id, 3);
    let claim = f.store.claim_due(req).await.unwrap();
    assert_eq!((count(&claim, noisy.id), count(&claim, calm.id)), (15, 0));
    release(claim).await;
    // A scarce claim (room for 4) alternates: whichever tenant goes first this round, the other
    // goes first the next.
    let mut firsts = Vec::new();
    for round in 0..2 {
        let mut req = claim_req(4, 10);
        req.round = round;
        let claim = f.store.claim_due(req).await.unwrap();
        assert_eq!(claim.deliveries.len(), 4);
        firsts.push(claim.deliveries[0].tenant_id);
        f.store
            .release(
                claim
                    .deliveries
                    .iter()
                    .map(|d| (d.id, d.lease_token))
                    .collect(),
            )
            .await
            .unwrap();
    }
    assert_ne!(firsts[0], firsts[1], "{firsts:?}");
}

async fn a_publish_over_the_delivery_limit_writes_nothing(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    for _ in 0..3 {
        let w = hook_for(t.id, &["*"], Format::Envelope, true);
        f.store.insert_webhook(&w).await.unwrap();
    }
    let events = || {
        vec![
            event(t.id, "contact.created", serde_json::json!({"id": "a"})),
            event(t.id, "contact.created", serde_json::json!({"id": "b"})),
        ]
    };
    // 2 events x 3 webhooks = 6 deliveries.
    let err = f.store.publish(t.id, events(), None, 5).await.unwrap_err();
    assert!(
        matches!(
            err,
            hookline_store::StoreError::TooManyDeliveries { limit: 5, .. }
        ),
        "{err:?}"
    );
    assert!(f
        .store
        .list_events(
            t.id,
            None,
            Page {
                before: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty());
    match f.store.publish(t.id, events(), None, 6).await.unwrap() {
        PublishOutcome::Published(p) => assert_eq!(p.len(), 2),
        other => panic!("{other:?}"),
    }
}

async fn replay_jobs_copy_in_steps_resume_after_a_takeover_and_cancel(f: Fixture) {
    use hookline_core::ids::JobId;
    use hookline_store::{JobStatus, ReplayJob};
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    for i in 0..25 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    let count = |f: &Fixture| {
        let store = f.store.clone();
        async move {
            store
                .list_deliveries(
                    t.id,
                    DeliveryFilter::default(),
                    Page {
                        before: None,
                        limit: 500,
                    },
                )
                .await
                .unwrap()
                .len()
        }
    };
    // Pending deliveries are replayed; the job's own copies are pending too and must not be.
    let filter = || ReplayFilter {
        since: time::now() - chrono::Duration::hours(1),
        until: None,
        statuses: vec![DeliveryStatus::Pending],
    };
    let lease = LEASE;
    let job = f
        .store
        .insert_replay_job(JobId::new(), t.id, ReplayJob::new(w.id, filter()), 25)
        .await
        .unwrap();
    assert_eq!(
        (job.status, job.total, job.done),
        (JobStatus::Queued, Some(25), 0)
    );
    let a = LeaseToken::new();
    let held = f.store.claim_job(a, lease).await.unwrap().unwrap();
    assert_eq!((held.id, held.status), (job.id, JobStatus::Running));
    // Nobody else gets it while the lease holds.
    assert!(f
        .store
        .claim_job(LeaseToken::new(), lease)
        .await
        .unwrap()
        .is_none());
    let step = f.store.replay_step(job.id, a, lease, 10).await.unwrap();
    assert_eq!((step.status, step.done), (JobStatus::Running, 10));
    // The node dies; after the lease another takes over and goes on from the cursor.
    f.store.travel(secs(61)).await.unwrap();
    let later = LEASE;
    let b = LeaseToken::new();
    let taken = f.store.claim_job(b, later).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.done), (job.id, 10));
    // The old holder's late step is refused and copies nothing.
    let stale = f.store.replay_step(job.id, a, lease, 10).await.unwrap();
    assert_eq!(stale.done, 10);
    assert_eq!(count(&f).await, 35);
    let step = f.store.replay_step(job.id, b, later, 10).await.unwrap();
    assert_eq!((step.status, step.done), (JobStatus::Running, 20));
    let step = f.store.replay_step(job.id, b, later, 10).await.unwrap();
    assert_eq!((step.status, step.done), (JobStatus::Succeeded, 25));
    assert!(step.finished_at.is_some());
    assert_eq!(count(&f).await, 50);
    // A finished job does nothing more.
    let again = f.store.replay_step(job.id, b, later, 10).await.unwrap();
    assert_eq!((again.status, again.done), (JobStatus::Succeeded, 25));
    assert_eq!(count(&f).await, 50);

    // A cancelled job is never taken, and cancelling a finished one changes nothing.
    let queued = f
        .store
        .insert_replay_job(JobId::new(), t.id, ReplayJob::new(w.id, filter()), 50)
        .await
        .unwrap();
    let cancelled = f.store.cancel_job(t.id, queued.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(f
        .store
        .claim_job(LeaseToken::new(), later)
        .await
        .unwrap()
        .is_none());
    let finished = f.store.cancel_job(t.id, job.id).await.unwrap().unwrap();
    assert_eq!(finished.status, JobStatus::Succeeded);
    // Scoped by tenant.
    let other = f.store.create_tenant("other").await.unwrap();
    assert!(f.store.get_job(other.id, job.id).await.unwrap().is_none());
    assert!(f
        .store
        .cancel_job(other.id, job.id)
        .await
        .unwrap()
        .is_none());
    let listed = f
        .store
        .list_jobs(
            t.id,
            None,
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [queued.id, job.id]
    );
}

async fn import_job_steps_write_records_and_move_the_job_together(f: Fixture) {
    use hookline_core::ids::JobId;
    use hookline_store::{JobAdvance, JobStatus};
    let t = f.store.create_tenant("acme").await.unwrap();
    let items: Vec<serde_json::Value> = (1..=3)
        .map(|i| serde_json::json!({"row": i, "contact": {"id": format!("c{i}")}}))
        .collect();
    let job = f
        .store
        .insert_import_job(
            JobId::new(),
            t.id,
            serde_json::json!({"import_id": "i1"}),
            serde_json::json!({"failed": 1}),
            items.clone(),
        )
        .await
        .unwrap();
    assert_eq!((job.total, job.position), (Some(3), 0));
    assert_eq!(job.result, Some(serde_json::json!({"failed": 1})));
    let lease = LEASE;
    let a = LeaseToken::new();
    f.store.claim_job(a, lease).await.unwrap().unwrap();
    assert_eq!(f.store.job_items(job.id, 0, 2).await.unwrap(), items[..2]);
    let write = |ids: Vec<&str>, token: LeaseToken, position: u64, finished: bool| {
        let ids: Vec<String> = ids.into_iter().map(String::from).collect();
        let upserts = ids
            .iter()
            .map(|id| (id.clone(), serde_json::json!({"id": id})))
            .collect();
        let step = JobAdvance {
            id: job.id,
            token,
            lease,
            position,
            done: ids.len() as u64,
            result: serde_json::json!({"created": position}),
            finished,
        };
        let plan: hookline_store::PlanFn = Box::new(move |_| {
            Ok(RecordPlan {
                upserts,
                deletes: vec![],
                events: vec![],
                max_deliveries: usize::MAX,
                job: Some(step),
            })
        });
        let store = f.store.clone();
        async move { store.mutate_records(t.id, "contact", ids, plan).await }
    };
    write(vec!["c1", "c2"], a, 2, false).await.unwrap();
    let now_job = f.store.get_job(t.id, job.id).await.unwrap().unwrap();
    assert_eq!((now_job.position, now_job.done), (2, 2));
    assert_eq!(now_job.result, Some(serde_json::json!({"created": 2})));
    assert_eq!(f.store.job_items(job.id, 2, 10).await.unwrap(), items[2..]);
    // A step under a lease the job no longer has writes nothing.
    let err = write(vec!["c3"], LeaseToken::new(), 3, true)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(f
        .store
        .get_record(t.id, "contact", "c3")
        .await
        .unwrap()
        .is_none());
    write(vec!["c3"], a, 3, true).await.unwrap();
    let finished = f.store.get_job(t.id, job.id).await.unwrap().unwrap();
    assert_eq!((finished.status, finished.done), (JobStatus::Succeeded, 3));
    assert!(f
        .store
        .get_record(t.id, "contact", "c3")
        .await
        .unwrap()
        .is_some());
}

async fn ordering_holds_later_events_of_a_record(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let mut w = hook_for(t.id, &["*"], Format::Envelope, true);
    w.ordering = Ordering::PerRecord;
    f.store.insert_webhook(&w).await.unwrap();
    for n in 0..3 {
        published(
            &f,
            t.id,
            vec![event(
                t.id,
                "contact.updated",
                serde_json::json!({"id": "same", "n": n}),
            )],
        )
        .await;
    }
    published(
        &f,
        t.id,
        vec![event(
            t.id,
            "contact.updated",
            serde_json::json!({"id": "other"}),
        )],
    )
    .await;
    let claim = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 2, "the head of each entity only");
    let head = claim
        .deliveries
        .iter()
        .find(|d| claim.events[&d.event_id].data["id"] == "same")
        .unwrap();
    assert_eq!(claim.events[&head.event_id].data["n"], 0);
    f.store
        .record_attempts(
            vec![result(head, NextState::Delivered, Some(200))],
            Default::default(),
        )
        .await
        .unwrap();
    let next = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    assert_eq!(next.deliveries.len(), 1);
    assert_eq!(next.events[&next.deliveries[0].event_id].data["n"], 1);
}

async fn replay_and_resend_copy_deliveries(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    let since = time::now() - chrono::Duration::seconds(5);
    for i in 0..4 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    let claim = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    let results = claim
        .deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| {
            result(
                d,
                if i < 3 {
                    NextState::Failed
                } else {
                    NextState::Delivered
                },
                Some(if i < 3 { 400 } else { 200 }),
            )
        })
        .collect();
    f.store
        .record_attempts(results, Default::default())
        .await
        .unwrap();
    let filter = ReplayFilter {
        since,
        until: None,
        statuses: vec![DeliveryStatus::Failed],
    };
    assert_eq!(
        f.store
            .replay(t.id, w.id, filter.clone(), true)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        f.store
            .replay(t.id, w.id, filter.clone(), false)
            .await
            .unwrap(),
        3
    );
    let other = f.store.create_tenant("other").await.unwrap();
    assert_eq!(
        f.store.replay(other.id, w.id, filter, false).await.unwrap(),
        0
    );
    let original = claim.deliveries[0].id;
    let copy = f.store.resend(t.id, original).await.unwrap().unwrap();
    let (d, _) = f.store.get_delivery(t.id, copy).await.unwrap().unwrap();
    assert_eq!(d.resent_from, Some(original));
    assert_eq!(
        d.message_id, original,
        "a copy is the same message to the receiver"
    );
    assert_eq!(d.status, DeliveryStatus::Pending);
    // A copy of a copy names the copy as its record's origin, and the first delivery as the message.
    let again = f.store.resend(t.id, copy).await.unwrap().unwrap();
    let (d, _) = f.store.get_delivery(t.id, again).await.unwrap().unwrap();
    assert_eq!((d.resent_from, d.message_id), (Some(copy), original));
    let (d, _) = f.store.get_delivery(t.id, original).await.unwrap().unwrap();
    assert_eq!(
        d.message_id, original,
        "a fresh delivery is its own message"
    );
    assert_eq!(f.store.resend(other.id, original).await.unwrap(), None);
    // The original lists its resends and replays (newest first: the two resends, then the replay
    // above); another tenant sees none.
    let second = f.store.resend(t.id, original).await.unwrap().unwrap();
    let resends: Vec<_> = f
        .store
        .resends_of(t.id, original)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(resends.len(), 3);
    assert_eq!(resends[..2], [second, copy]);
    assert!(f
        .store
        .resends_of(other.id, original)
        .await
        .unwrap()
        .is_empty());
    let pending = f
        .store
        .list_deliveries(
            t.id,
            DeliveryFilter {
                status: Some(DeliveryStatus::Pending),
                ..Default::default()
            },
            Page {
                before: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 6);
}

async fn retention_prunes_finished_rows_and_keeps_live_ones(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Envelope, true))
        .await
        .unwrap();
    // Three deliveries that end delivered, failed and retrying.
    for i in 0..3 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    let [delivered, failed, retrying] = [0, 1, 2].map(|i| claim.deliveries[i].clone());
    f.store
        .record_attempts(
            vec![
                result(&delivered, NextState::Delivered, Some(200)),
                result(&failed, NextState::Failed, Some(400)),
                result(&retrying, NextState::RetryAfter(secs(86_400)), Some(503)),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    // One delivery in flight (claimed, no result), one pending, and a pending resend of the
    // delivered one: its event keeps a live delivery while the delivered original goes.
    publish_contact(&f, t.id, "c3").await;
    let in_flight = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries[0]
        .clone();
    publish_contact(&f, t.id, "c4").await;
    let resent = f.store.resend(t.id, delivered.id).await.unwrap().unwrap();
    let pending = f
        .store
        .list_deliveries(
            t.id,
            DeliveryFilter {
                status: Some(DeliveryStatus::Pending),
                ..Default::default()
            },
            Page {
                before: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id != resent)
        .unwrap();

    // Nothing is older than a cutoff in the past: everything stays.
    let now = time::now();
    let none = f
        .store
        .prune(now - chrono::Duration::days(30), now)
        .await
        .unwrap();
    assert_eq!(none, hookline_store::Pruned::default());

    // With every row older than the cutoff, only what finished goes: the delivered and failed
    // deliveries with their attempts, the failed one's event (it has nothing left) and the
    // `delivery.exhausted` event its failure published (no webhook subscribes to it). The
    // delivered one's event stays for its pending resend.
    let cutoff = time::now() + chrono::Duration::seconds(1);
    let pruned = f.store.prune(cutoff, now).await.unwrap();
    assert_eq!(
        pruned,
        hookline_store::Pruned {
            attempts: 2,
            deliveries: 2,
            events: 2
        }
    );
    for gone in [delivered.id, failed.id] {
        assert!(f.store.get_delivery(t.id, gone).await.unwrap().is_none());
    }
    let (d, attempts) = f
        .store
        .get_delivery(t.id, retrying.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status, attempts.len()),
        (DeliveryStatus::Retrying, 1),
        "a retrying delivery keeps its attempts"
    );
    for live in [in_flight.id, pending.id, resent] {
        assert!(f.store.get_delivery(t.id, live).await.unwrap().is_some());
    }
    assert!(f
        .store
        .get_event(t.id, failed.event_id)
        .await
        .unwrap()
        .is_none());
    for kept in [
        delivered.event_id,
        retrying.event_id,
        in_flight.event_id,
        pending.event_id,
    ] {
        assert!(
            f.store.get_event(t.id, kept).await.unwrap().is_some(),
            "an event with a live delivery stays"
        );
    }
    let backlog = f.store.backlog(true).await.unwrap();
    assert_eq!(backlog.count(DeliveryStatus::Delivered), 0);
    assert_eq!(backlog.count(DeliveryStatus::Failed), 0);
    assert_eq!(backlog.count(DeliveryStatus::Pending), 2);

    // A second pass finds nothing more.
    assert_eq!(
        f.store.prune(cutoff, now).await.unwrap(),
        hookline_store::Pruned::default()
    );
}

async fn record_writes_are_atomic_versioned_and_scoped(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let other = f.store.create_tenant("other").await.unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["contact.*"], Format::Envelope, true))
        .await
        .unwrap();
    let upsert = |id: &str, doc: serde_json::Value, ev: Event| -> hookline_store::PlanFn {
        let id = id.to_string();
        Box::new(move |rows: Vec<Option<RecordRow>>| {
            assert_eq!(rows.len(), 1);
            Ok(RecordPlan {
                upserts: vec![(id, doc)],
                deletes: vec![],
                events: vec![ev],
                max_deliveries: usize::MAX,
                job: None,
            })
        })
    };
    let doc = serde_json::json!({"id": "c1", "first_name": "A", "tags": [{"name": "vip"}], "updated_at": "2026-01-01T00:00:00.000Z"});
    let (published, written) = f
        .store
        .mutate_records(
            t.id,
            "contact",
            vec!["c1".into()],
            upsert(
                "c1",
                doc.clone(),
                event(t.id, "contact.created", doc.clone()),
            ),
        )
        .await
        .unwrap();
    assert_eq!(published[0].delivery_ids.len(), 1);
    assert_eq!(written[0].version, 1);
    let doc2 = serde_json::json!({"id": "c1", "first_name": "B"});
    let (_, written) = f
        .store
        .mutate_records(
            t.id,
            "contact",
            vec!["c1".into()],
            upsert(
                "c1",
                doc2.clone(),
                event(t.id, "contact.updated", doc2.clone()),
            ),
        )
        .await
        .unwrap();
    assert_eq!(written[0].version, 2);
    assert_eq!(
        f.store
            .get_record(t.id, "contact", "c1")
            .await
            .unwrap()
            .unwrap()
            .data,
        doc2
    );
    assert_eq!(
        f.store.get_record(other.id, "contact", "c1").await.unwrap(),
        None
    );
    // A refusing plan writes nothing, and its error comes back as it was.
    let refuse: hookline_store::PlanFn = Box::new(|rows| {
        assert_eq!(rows[0].as_ref().unwrap().version, 2);
        Err("no thanks".into())
    });
    match f
        .store
        .mutate_records(t.id, "contact", vec!["c1".into()], refuse)
        .await
    {
        Err(StoreError::Rejected(e)) => assert_eq!(e.to_string(), "no thanks"),
        other => panic!("{other:?}"),
    }
    // An event that can't be written undoes the record write too.
    let (_, _) = f
        .store
        .mutate_records(
            t.id,
            "contact",
            vec!["c2".into()],
            upsert(
                "c2",
                serde_json::json!({"id": "c2", "first_name": "Z", "tags": [{"name": "vip"}]}),
                event(t.id, "contact.created", serde_json::json!({})),
            ),
        )
        .await
        .unwrap();
    let dup = event(t.id, "contact.created", serde_json::json!({}));
    let dup2 = Event {
        id: dup.id,
        ..event(t.id, "contact.created", serde_json::json!({}))
    };
    let bad: hookline_store::PlanFn = Box::new(move |_| {
        Ok(RecordPlan {
            upserts: vec![("c3".into(), serde_json::json!({"id": "c3"}))],
            deletes: vec![],
            events: vec![dup, dup2],
            max_deliveries: usize::MAX,
            job: None,
        })
    });
    assert!(f
        .store
        .mutate_records(t.id, "contact", vec!["c3".into()], bad)
        .await
        .is_err());
    assert_eq!(
        f.store.get_record(t.id, "contact", "c3").await.unwrap(),
        None
    );
    let by_tag = f
        .store
        .list_records(
            t.id,
            "contact",
            RecordFilter {
                tag: Some("vip".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        by_tag.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c2"]
    );
    let search = f
        .store
        .list_records(
            t.id,
            "contact",
            RecordFilter {
                search: Some("b".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(search.len(), 1);
    let del: hookline_store::PlanFn = Box::new(|_| {
        Ok(RecordPlan {
            upserts: vec![],
            deletes: vec!["c1".into(), "c2".into()],
            events: vec![],
            max_deliveries: usize::MAX,
            job: None,
        })
    });
    f.store
        .mutate_records(t.id, "contact", vec!["c1".into(), "c2".into()], del)
        .await
        .unwrap();
    assert!(f
        .store
        .list_records(t.id, "contact", RecordFilter::default(), None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn webhook_edits_see_the_latest_row_and_keep_health(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "c").await;
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    // The worker disables the webhook after a load of the row the API already read...
    let policy = hookline_core::retry::DisablePolicy {
        max_consecutive_failures: 1,
        ..Default::default()
    };
    f.store
        .record_attempts(
            vec![result(&claim.deliveries[0], NextState::Failed, Some(500))],
            policy,
        )
        .await
        .unwrap();
    // ...and an edit made afterwards works on the disabled row, not on a stale copy.
    let edited = f
        .store
        .modify_webhook(
            t.id,
            w.id,
            Box::new(|w| {
                w.name = "renamed".into();
                Ok(())
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.name, "renamed");
    assert!(!edited.enabled);
    assert_eq!(edited.consecutive_failures, 1);
    assert!(edited.last_attempt_at.is_some());
    assert_eq!(
        f.store.get_webhook(t.id, w.id).await.unwrap().unwrap(),
        edited
    );
    // A refusing edit writes nothing.
    let refused = f.store.modify_webhook(
        t.id,
        w.id,
        Box::new(|w| {
            w.name = "never".into();
            Err("no".into())
        }),
    );
    assert!(matches!(refused.await, Err(StoreError::Rejected(_))));
    assert_eq!(
        f.store.get_webhook(t.id, w.id).await.unwrap().unwrap().name,
        "renamed"
    );
    let other = f.store.create_tenant("other").await.unwrap();
    assert!(f
        .store
        .modify_webhook(other.id, w.id, Box::new(|_| Ok(())))
        .await
        .unwrap()
        .is_none());
}

async fn reclaimed_leases_count_against_the_per_webhook_quota(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Envelope, true))
        .await
        .unwrap();
    for i in 0..10 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    // A node takes six and dies; four stay due.
    assert_eq!(
        f.store
            .claim_due(claim_req(6, 100))
            .await
            .unwrap()
            .deliveries
            .len(),
        6
    );
    let later = claim_req(100, 4);
    f.store.travel(secs(61)).await.unwrap();
    // Another node may have four in flight for this webhook: expired and due together.
    assert_eq!(
        f.store
            .claim_due(later.clone())
            .await
            .unwrap()
            .deliveries
            .len(),
        4
    );
    assert_eq!(f.store.claim_due(later).await.unwrap().deliveries.len(), 4);
}

async fn release_gives_leases_back_due_now(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Envelope, true))
        .await
        .unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 2);
    let (a, b) = (&claim.deliveries[0], &claim.deliveries[1]);
    // Nothing to give back is fine (a node that had nothing in flight).
    f.store.release(vec![]).await.unwrap();
    // A token that doesn't hold the lease changes nothing.
    f.store
        .release(vec![(a.id, a.lease_token), (b.id, LeaseToken::new())])
        .await
        .unwrap();
    let status = |id| {
        let store = f.store.clone();
        async move { store.get_delivery(t.id, id).await.unwrap().unwrap().0 }
    };
    let released = status(a.id).await;
    assert_eq!(released.status, DeliveryStatus::Pending);
    assert_eq!(released.attempt_count, 0);
    assert!(released.next_attempt_at.unwrap() <= time::now());
    assert_eq!(status(b.id).await.status, DeliveryStatus::Delivering);
    // Due now: the next claim takes it again, and only it.
    let again = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(again.deliveries.len(), 1);
    assert_eq!(again.deliveries[0].id, a.id);
    assert_eq!(again.deliveries[0].attempt_number, 1);
    // A delivery attempted before goes back as retrying and keeps its attempt count.
    f.store
        .record_attempts(
            vec![result(b, NextState::RetryAfter(secs(0)), Some(503))],
            Default::default(),
        )
        .await
        .unwrap();
    let b2 = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries
        .remove(0);
    assert_eq!((b2.id, b2.attempt_number), (b.id, 2));
    f.store
        .release(vec![(b2.id, b2.lease_token)])
        .await
        .unwrap();
    let released = status(b.id).await;
    assert_eq!(released.status, DeliveryStatus::Retrying);
    assert_eq!(released.attempt_count, 1);
    // A released lease is no longer held: its result changes nothing.
    let applied = f
        .store
        .record_attempts(
            vec![result(&b2, NextState::Delivered, Some(200))],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(applied, [false]);
}

async fn claims_rotate_webhooks_by_round(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let mut hooks = Vec::new();
    for _ in 0..3 {
        let w = hook_for(t.id, &["*"], Format::Envelope, true);
        f.store.insert_webhook(&w).await.unwrap();
        hooks.push(w.id);
    }
    hooks.sort();
    // One event: one delivery due for each webhook.
    publish_contact(&f, t.id, "c").await;
    // With room for one delivery, round r serves the webhook at r (mod 3) in id order first, the
    // same on every backend.
    for round in 0..6u64 {
        let mut req = claim_req(1, 10);
        req.round = round;
        let claim = f.store.claim_due(req).await.unwrap();
        assert_eq!(claim.deliveries.len(), 1, "round {round}");
        let d = &claim.deliveries[0];
        assert_eq!(d.webhook_id, hooks[round as usize % 3], "round {round}");
        f.store.release(vec![(d.id, d.lease_token)]).await.unwrap();
    }
}

async fn backlog_counts_by_status_and_ages_the_oldest_due(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let empty = f.store.backlog(true).await.unwrap();
    assert_eq!(empty.count(DeliveryStatus::Pending), 0);
    assert_eq!(empty.oldest_due_age, None);
    f.store
        .insert_webhook(&hook_for(t.id, &["*"], Format::Envelope, true))
        .await
        .unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    f.store.travel(secs(10)).await.unwrap();
    let b = f.store.backlog(true).await.unwrap();
    assert_eq!(b.count(DeliveryStatus::Pending), 2);
    let age = b.oldest_due_age.unwrap();
    assert!(age >= secs(10) && age < secs(60), "{age:?}");
    // Leased deliveries wait again only once their lease has run out: not due, no age.
    let req = claim_req(10, 10);
    assert_eq!(
        f.store
            .claim_due(req.clone())
            .await
            .unwrap()
            .deliveries
            .len(),
        2
    );
    let b = f.store.backlog(true).await.unwrap();
    assert_eq!(
        (
            b.count(DeliveryStatus::Delivering),
            b.count(DeliveryStatus::Pending)
        ),
        (2, 0)
    );
    assert_eq!(b.oldest_due_age, None);
    let wait = f.store.next_due_in().await.unwrap().unwrap();
    assert!(wait > secs(50) && wait <= LEASE, "{wait:?}");
    f.store.travel(LEASE + secs(5)).await.unwrap();
    let age = f.store.backlog(true).await.unwrap().oldest_due_age.unwrap();
    assert!(age >= secs(5), "{age:?}");
    assert_eq!(f.store.next_due_in().await.unwrap(), Some(secs(0)));
}

fn session(tenant: TenantId, hash: &str, grant_id: Option<uuid::Uuid>) -> ConsoleSession {
    let now = time::now();
    ConsoleSession {
        id_hash: hash.into(),
        tenant_id: tenant,
        key_id: grant_id.is_none().then(ApiKeyId::new),
        grant_id,
        csrf: format!("csrf-{hash}"),
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(8),
    }
}

fn grant(tenant: TenantId, code_hash: &str, webhook_ids: Option<Vec<WebhookId>>) -> PortalGrant {
    let now = time::now();
    PortalGrant {
        id: hookline_core::ids::new_id(),
        tenant_id: tenant,
        webhook_ids,
        capabilities: vec!["view".into(), "resend".into()],
        code_hash: Some(code_hash.into()),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        revoked_at: None,
    }
}

async fn console_sessions_are_found_touched_deleted_and_pruned(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let s = session(t.id, "h1", None);
    f.store.insert_console_session(&s).await.unwrap();
    assert_eq!(
        f.store.console_session("h1").await.unwrap(),
        Some(FoundSession {
            session: s.clone(),
            grant: None,
            key: None
        })
    );
    assert_eq!(f.store.console_session("nope").await.unwrap(), None);
    // The same hash twice is refused.
    assert!(matches!(
        f.store.insert_console_session(&s).await,
        Err(StoreError::Conflict(_))
    ));

    // Activity moves last_seen_at forward, never back; unknown sessions are ignored.
    let later = s.last_seen_at + chrono::Duration::minutes(5);
    f.store.touch_console_session("h1", later).await.unwrap();
    f.store
        .touch_console_session("h1", s.last_seen_at)
        .await
        .unwrap();
    f.store.touch_console_session("nope", later).await.unwrap();
    let got = f
        .store
        .console_session("h1")
        .await
        .unwrap()
        .unwrap()
        .session;
    assert_eq!(got.last_seen_at, later);
    assert_eq!(got.expires_at, s.expires_at);

    // Pruning takes sessions past their expiry or idle too long, and nothing else.
    let now = time::now();
    let expired = ConsoleSession {
        expires_at: now - chrono::Duration::seconds(1),
        ..session(t.id, "expired", None)
    };
    let idle = ConsoleSession {
        last_seen_at: now - chrono::Duration::hours(2),
        ..session(t.id, "idle", None)
    };
    f.store.insert_console_session(&expired).await.unwrap();
    f.store.insert_console_session(&idle).await.unwrap();
    assert_eq!(
        f.store
            .prune_console_sessions(now, now - chrono::Duration::hours(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(f.store.console_session("expired").await.unwrap(), None);
    assert_eq!(f.store.console_session("idle").await.unwrap(), None);
    assert!(f.store.console_session("h1").await.unwrap().is_some());
    assert_eq!(
        f.store
            .prune_console_sessions(now, now - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );

    f.store.delete_console_session("h1").await.unwrap();
    f.store.delete_console_session("h1").await.unwrap();
    assert_eq!(f.store.console_session("h1").await.unwrap(), None);
}

async fn portal_codes_redeem_once_and_revocation_ends_sessions(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let b = f.store.create_tenant("b").await.unwrap();
    let g1 = grant(a.id, "c1", None);
    let g2 = grant(a.id, "c2", Some(vec![]));
    let g3 = PortalGrant {
        expires_at: time::now() - chrono::Duration::seconds(1),
        ..grant(a.id, "c3", None)
    };
    let gb = grant(b.id, "cb", None);
    for g in [&g1, &g2, &g3, &gb] {
        f.store.insert_portal_grant(g).await.unwrap();
    }
    // A code hash is unique.
    assert!(matches!(
        f.store.insert_portal_grant(&grant(a.id, "c1", None)).await,
        Err(StoreError::Conflict(_))
    ));

    // A code works once, only before it expires.
    let now = time::now();
    let redeemed = f
        .store
        .redeem_portal_code("c1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        redeemed,
        PortalGrant {
            code_hash: None,
            ..g1.clone()
        }
    );
    assert_eq!(f.store.redeem_portal_code("c1", now).await.unwrap(), None);
    assert_eq!(f.store.redeem_portal_code("c3", now).await.unwrap(), None);
    assert_eq!(f.store.redeem_portal_code("nope", now).await.unwrap(), None);

    // A portal session comes back with its grant.
    f.store
        .insert_console_session(&session(a.id, "s1", Some(g1.id)))
        .await
        .unwrap();
    f.store
        .insert_console_session(&session(a.id, "s2", Some(g2.id)))
        .await
        .unwrap();
    f.store
        .insert_console_session(&session(b.id, "sb", Some(gb.id)))
        .await
        .unwrap();
    let found = f.store.console_session("s1").await.unwrap().unwrap();
    assert_eq!(found.session.grant_id, Some(g1.id));
    assert_eq!(found.session.key_id, None);
    assert_eq!(found.grant, Some(redeemed.clone()));
    assert_eq!(found.key, None);
    let found = f.store.console_session("s2").await.unwrap().unwrap();
    assert_eq!(found.grant.unwrap().webhook_ids, Some(vec![]));

    // Revoking one grant ends its sessions; another tenant can't revoke it.
    assert_eq!(
        f.store
            .revoke_portal_grants(b.id, Some(g1.id), now)
            .await
            .unwrap(),
        0
    );
    assert!(f.store.console_session("s1").await.unwrap().is_some());
    assert_eq!(
        f.store
            .revoke_portal_grants(a.id, Some(g1.id), now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(f.store.console_session("s1").await.unwrap(), None);
    assert_eq!(
        f.store
            .revoke_portal_grants(a.id, Some(g1.id), now)
            .await
            .unwrap(),
        0,
        "already revoked"
    );
    assert_eq!(
        f.store
            .revoke_portal_grants(a.id, Some(uuid::Uuid::now_v7()), now)
            .await
            .unwrap(),
        0
    );
    // A session of a revoked grant (say, made while the grant was being revoked) never comes back.
    f.store
        .insert_console_session(&session(a.id, "late", Some(g1.id)))
        .await
        .unwrap();
    assert_eq!(f.store.console_session("late").await.unwrap(), None);
    assert!(f.store.console_session("s2").await.unwrap().is_some());

    // Revoking all of a tenant's grants takes the unrevoked ones (g2, g3) and no other tenant's.
    assert_eq!(
        f.store.revoke_portal_grants(a.id, None, now).await.unwrap(),
        2
    );
    assert_eq!(f.store.console_session("s2").await.unwrap(), None);
    assert_eq!(f.store.redeem_portal_code("c2", now).await.unwrap(), None);
    assert_eq!(
        f.store.revoke_portal_grants(a.id, None, now).await.unwrap(),
        0
    );
    let g = f.store.console_session("sb").await.unwrap().unwrap().grant;
    assert_eq!(g.unwrap().revoked_at, None);
    assert_eq!(
        f.store
            .redeem_portal_code("cb", now)
            .await
            .unwrap()
            .unwrap()
            .id,
        gb.id
    );
}

async fn webhooks_join_the_lists_of_their_grants(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let b = f.store.create_tenant("b").await.unwrap();
    let (w1, w2, wb) = (webhook(a.id, "1"), webhook(a.id, "2"), webhook(b.id, "b"));
    for w in [&w1, &w2, &wb] {
        f.store.insert_webhook(w).await.unwrap();
    }
    let listed = grant(a.id, "c1", Some(vec![w1.id]));
    let all = grant(a.id, "c2", None);
    for (g, s) in [(&listed, "s1"), (&all, "s2")] {
        f.store.insert_portal_grant(g).await.unwrap();
        f.store
            .insert_console_session(&session(a.id, s, Some(g.id)))
            .await
            .unwrap();
    }
    let list_of = |s: &'static str| {
        let store = f.store.clone();
        async move {
            let g = store.console_session(s).await.unwrap().unwrap().grant;
            g.unwrap().webhook_ids
        }
    };
    f.store
        .add_webhook_to_grant(a.id, listed.id, w2.id)
        .await
        .unwrap();
    assert_eq!(list_of("s1").await, Some(vec![w1.id, w2.id]));
    // Listed once; another tenant's webhook, grant or caller changes nothing.
    f.store
        .add_webhook_to_grant(a.id, listed.id, w2.id)
        .await
        .unwrap();
    f.store
        .add_webhook_to_grant(a.id, listed.id, wb.id)
        .await
        .unwrap();
    f.store
        .add_webhook_to_grant(b.id, listed.id, wb.id)
        .await
        .unwrap();
    f.store
        .add_webhook_to_grant(a.id, uuid::Uuid::now_v7(), w1.id)
        .await
        .unwrap();
    assert_eq!(list_of("s1").await, Some(vec![w1.id, w2.id]));
    // A grant without a list sees everything already.
    f.store
        .add_webhook_to_grant(a.id, all.id, w2.id)
        .await
        .unwrap();
    assert_eq!(list_of("s2").await, None);
}

/// An attempt result for a claimed delivery, started at `started` and taking `ms`.
fn timed(
    d: &hookline_store::ClaimedDelivery,
    next: NextState,
    status: Option<u16>,
    started: Timestamp,
    ms: f64,
) -> AttemptResult {
    let mut r = result(d, next, status);
    r.attempt.started_at = started;
    r.attempt.total_ms = ms;
    r
}

/// Expected stats: `(webhook, hour, delivered, failed, [(bucket, attempts)])`.
fn hour(
    webhook_id: WebhookId,
    at: Timestamp,
    delivered: u64,
    failed: u64,
    buckets: &[(usize, u64)],
) -> WebhookHour {
    let mut stats = hookline_core::stats::HourStats::new(at);
    stats.delivered = delivered;
    stats.failed = failed;
    for (i, n) in buckets {
        stats.latency[*i] = *n;
    }
    WebhookHour { webhook_id, stats }
}

async fn attempts_are_counted_per_webhook_and_hour(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let mut hooks = [
        hook_for(a.id, &["*"], Format::Envelope, true),
        hook_for(a.id, &["*"], Format::Envelope, true),
    ];
    hooks.sort_by_key(|w| w.id);
    let [w1, w2] = &hooks;
    for w in &hooks {
        f.store.insert_webhook(w).await.unwrap();
    }
    for i in 0..3 {
        publish_contact(&f, a.id, format!("c{i}")).await;
    }
    let claim = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    let of = |w: &Webhook| -> Vec<&hookline_store::ClaimedDelivery> {
        claim
            .deliveries
            .iter()
            .filter(|d| d.webhook_id == w.id)
            .collect()
    };
    let (d1, d2) = (of(w1), of(w2));
    assert_eq!((d1.len(), d2.len()), (3, 3));
    let h1 = hour_of(time::now()) - chrono::Duration::hours(3);
    let h2 = h1 + chrono::Duration::hours(1);
    let min = |m: i64| chrono::Duration::minutes(m);
    let retry_at = secs(3600);
    // A result whose lease is not held (the delivery moved on) is not counted, in any hour.
    let mut stale = timed(
        d1[0],
        NextState::Delivered,
        Some(200),
        h1 - chrono::Duration::hours(5),
        1.0,
    );
    stale.lease_token = LeaseToken::new();
    let applied = f
        .store
        .record_attempts(
            vec![
                stale,
                timed(d1[0], NextState::Delivered, Some(200), h1 + min(10), 3.0),
                timed(
                    d1[1],
                    NextState::RetryAfter(retry_at),
                    Some(503),
                    h1 + min(20),
                    40.0,
                ),
                timed(d1[2], NextState::Failed, None, h2 + min(5), 1e9),
                timed(d2[0], NextState::Delivered, Some(204), h2, 7.0),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(applied, [false, true, true, true, true]);
    let want = vec![
        hour(w1.id, h1, 1, 1, &[(0, 1), (3, 1)]),
        hour(w1.id, h2, 0, 1, &[(BUCKETS - 1, 1)]),
        hour(w2.id, h2, 1, 0, &[(1, 1)]),
    ];
    let since = h1 - chrono::Duration::hours(10);
    let ids = vec![w2.id, w1.id];
    assert_eq!(
        f.store
            .webhook_hours(a.id, ids.clone(), since)
            .await
            .unwrap(),
        want
    );
    // A second batch adds to the stored hours: a 2xx counts as delivered even when retried.
    f.store
        .record_attempts(
            vec![
                timed(
                    d2[1],
                    NextState::RetryAfter(retry_at),
                    Some(200),
                    h2 + min(59),
                    30.0,
                ),
                timed(d2[2], NextState::Failed, Some(410), h2 + min(1), 7.5),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    let got = f
        .store
        .webhook_hours(a.id, ids.clone(), since)
        .await
        .unwrap();
    assert_eq!(got[2], hour(w2.id, h2, 2, 1, &[(1, 2), (3, 1)]));
    // From an hour on (an unaligned start includes its hour), only the listed webhooks.
    assert_eq!(
        f.store.webhook_hours(a.id, ids.clone(), h2).await.unwrap(),
        got[1..]
    );
    assert_eq!(
        f.store
            .webhook_hours(a.id, ids.clone(), h2 + min(30))
            .await
            .unwrap(),
        got[1..]
    );
    assert_eq!(
        f.store
            .webhook_hours(a.id, vec![w2.id], since)
            .await
            .unwrap(),
        got[2..]
    );
    assert!(f
        .store
        .webhook_hours(a.id, vec![], since)
        .await
        .unwrap()
        .is_empty());
    // Another tenant's ids answer nothing.
    let b = f.store.create_tenant("b").await.unwrap();
    assert!(f
        .store
        .webhook_hours(b.id, ids, since)
        .await
        .unwrap()
        .is_empty());
    // The latest applied attempt of each webhook, whatever the order of the batches.
    let last = |w: &Webhook| {
        let store = f.store.clone();
        let (t, id) = (w.tenant_id, w.id);
        async move {
            store
                .get_webhook(t, id)
                .await
                .unwrap()
                .unwrap()
                .last_attempt_at
        }
    };
    assert_eq!(last(w1).await, Some(h2 + min(5)));
    assert_eq!(last(w2).await, Some(h2 + min(59)));
}

async fn hourly_stats_follow_test_sends_retention_and_deletes(f: Fixture) {
    let a = f.store.create_tenant("a").await.unwrap();
    let w = hook_for(a.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    let h1 = hour_of(time::now()) - chrono::Duration::hours(3);
    let h2 = h1 + chrono::Duration::hours(1);
    // Test sends count like any attempt: delivered by status or by a 2xx answer.
    let send = |started: Timestamp, code: Option<u16>, ms: f64, status: DeliveryStatus| {
        let store = f.store.clone();
        let w = w.clone();
        async move {
            let e = event(
                w.tenant_id,
                "contact.created",
                serde_json::json!({"id": "t"}),
            );
            let attempt = Attempt {
                id: AttemptId::new(),
                delivery_id: hookline_core::ids::DeliveryId::new(),
                attempt_number: 1,
                started_at: started,
                url: w.url.clone(),
                status_code: code,
                error_kind: code.is_none().then(|| "timeout".to_string()),
                error_message: None,
                dns_ms: None,
                connect_ms: None,
                tls_ms: None,
                ttfb_ms: None,
                total_ms: ms,
                request_headers: vec![],
                response_headers: vec![],
                response_body: None,
                response_truncated: false,
            };
            store
                .insert_finished_delivery(e, w.id, Format::Envelope, attempt, status)
                .await
                .unwrap();
        }
    };
    let min = |m: i64| chrono::Duration::minutes(m);
    send(h2 + min(30), Some(200), 12.0, DeliveryStatus::Delivered).await;
    send(h1 + min(1), None, 20_000.0, DeliveryStatus::Failed).await;
    send(h2 + min(2), Some(500), 0.5, DeliveryStatus::Failed).await;
    let since = h1 - chrono::Duration::hours(1);
    assert_eq!(
        f.store
            .webhook_hours(a.id, vec![w.id], since)
            .await
            .unwrap(),
        vec![
            hour(w.id, h1, 0, 1, &[(12, 1)]),
            hour(w.id, h2, 1, 1, &[(0, 1), (2, 1)]),
        ]
    );
    assert_eq!(
        f.store
            .get_webhook(a.id, w.id)
            .await
            .unwrap()
            .unwrap()
            .last_attempt_at,
        Some(h2 + min(30))
    );

    // Retention drops the hours before the cutoff's hour, keeping that one whole.
    f.store
        .prune(h2 + min(10), time::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    let kept = f
        .store
        .webhook_hours(a.id, vec![w.id], since)
        .await
        .unwrap();
    assert_eq!(kept.iter().map(|h| h.stats.hour).collect::<Vec<_>>(), [h2]);

    // Deleting the webhook deletes its hours (its delivery log stays, see
    // `deleting_a_webhook_cancels_its_queue_and_keeps_its_log`).
    assert!(f.store.delete_webhook(a.id, w.id).await.unwrap());
    assert!(f
        .store
        .webhook_hours(a.id, vec![w.id], since)
        .await
        .unwrap()
        .is_empty());
}

// ---- secrets at rest ---------------------------------------------------------------------------

impl Fixture {
    /// Another store on the same database, holding `keyring` (not migrated).
    async fn reopen(&self, keyring: Keyring) -> Arc<dyn Store> {
        let keyring = Arc::new(keyring);
        match (&self._db, &self._dir) {
            (Some(db), _) => Arc::new(
                hookline_store::PostgresStore::connect(&db.url, 2)
                    .await
                    .unwrap()
                    .with_keyring(keyring),
            ),
            (None, Some(dir)) => Arc::new(
                SqliteStore::open(dir.path().join("t.db"), 1, Synchronous::Normal)
                    .unwrap()
                    .with_keyring(keyring),
            ),
            (None, None) => unreachable!("a fixture has a directory or a database"),
        }
    }

    /// Runs `sql`, whose text is the same in both dialects, on the database itself, bypassing the
    /// store and its keys; answers each row's columns as text.
    async fn raw(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match (&self._db, &self._dir) {
            (Some(db), _) => {
                let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let task = tokio::spawn(conn);
                let rows = client.simple_query(sql).await.unwrap();
                drop(client);
                let _ = task.await;
                rows.into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            }
            (None, Some(dir)) => {
                let c = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
                let mut stmt = c.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap()
            }
            (None, None) => unreachable!("a fixture has a directory or a database"),
        }
    }

    /// The sealed columns of every webhook as stored: secret, previous_secret, headers.
    async fn stored_secrets(&self) -> Vec<Vec<Option<String>>> {
        self.raw("SELECT secret, previous_secret, headers FROM webhooks ORDER BY id")
            .await
    }

    /// Everything the database holds, as text: the SQLite file and its WAL byte for byte, or every
    /// row of every PostgreSQL table.
    async fn everything_stored(&self) -> String {
        match (&self._db, &self._dir) {
            (Some(_), _) => {
                let tables = self
                    .raw("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    .await;
                let mut all = String::new();
                for t in tables {
                    let t = t[0].clone().unwrap();
                    for row in self.raw(&format!("SELECT x::text FROM {t} x")).await {
                        all.push_str(row[0].as_deref().unwrap_or_default());
                        all.push('\n');
                    }
                }
                all
            }
            (None, Some(dir)) => ["t.db", "t.db-wal"]
                .iter()
                .filter_map(|f| std::fs::read(dir.path().join(f)).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect(),
            (None, None) => unreachable!("a fixture has a directory or a database"),
        }
    }
}

/// Asserts every stored secret column is sealed under `key`.
fn all_sealed_under(rows: &[Vec<Option<String>>], key: &EncryptionKey) {
    let prefix = format!("enc:v1:{}:", key.id());
    assert!(!rows.is_empty());
    for row in rows {
        for v in row.iter().flatten() {
            assert!(v.starts_with(&prefix), "not sealed under {prefix}: {v}");
        }
    }
}

async fn secrets_and_header_values_are_stored_sealed(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let mut w = webhook(t.id, "sealed");
    w.secret = "whsec_CANARYsecret".into();
    w.previous_secret = Some("CANARYprevious".into());
    w.headers = BTreeMap::from([("Authorization".into(), "Bearer CANARYheader".into())]);
    f.store.insert_webhook(&w).await.unwrap();
    // An edit writes the row again, sealed again.
    let edited = f
        .store
        .modify_webhook(
            t.id,
            w.id,
            Box::new(|w| {
                w.headers
                    .insert("X-Api-Key".into(), "CANARYsecondheader".into());
                Ok(())
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.headers["X-Api-Key"], "CANARYsecondheader");
    // Read back in clear, by every path: get, list, and the dispatcher's claim.
    let back = f.store.get_webhook(t.id, w.id).await.unwrap().unwrap();
    assert_eq!(back.secret.expose(), "whsec_CANARYsecret");
    assert_eq!(
        back.previous_secret.as_ref().unwrap().expose(),
        "CANARYprevious"
    );
    assert_eq!(back.headers, edited.headers);
    let listed = f
        .store
        .list_webhooks(
            t.id,
            WebhookFilter::default(),
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![back.clone()]);
    publish_contact(&f, t.id, "c1").await;
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 1);
    assert_eq!(claim.webhooks[&w.id].secret.expose(), "whsec_CANARYsecret");
    assert_eq!(claim.webhooks[&w.id].headers, edited.headers);
    // The database itself holds none of it in clear.
    all_sealed_under(&f.stored_secrets().await, &f.key);
    let stored = f.everything_stored().await;
    assert!(stored.contains("sealed"), "the dump reads the webhook row");
    assert!(!stored.contains("CANARY"), "a secret is stored in clear");
}

async fn rows_in_clear_are_sealed_by_migrate(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let (w1, w2) = (webhook(t.id, "w1"), webhook(t.id, "w2"));
    f.store.insert_webhook(&w1).await.unwrap();
    f.store.insert_webhook(&w2).await.unwrap();
    // Rows as a Hookline before encryption wrote them.
    f.raw(
        r#"UPDATE webhooks SET secret = 'whsec_CLEARone', previous_secret = 'CLEARprev',
           headers = '{"X-Api-Key":"CLEARkey"}' WHERE name = 'w1'"#,
    )
    .await;
    assert!(
        f.everything_stored().await.contains("CLEARkey"),
        "the dump sees them"
    );
    // Readable as they are until sealed.
    let legacy = f.store.get_webhook(t.id, w1.id).await.unwrap().unwrap();
    assert_eq!(legacy.secret.expose(), "whsec_CLEARone");
    assert_eq!(legacy.headers["X-Api-Key"], "CLEARkey");
    let report = f.store.reseal(Reseal::Clear).await.unwrap();
    assert_eq!(report.webhooks, 1, "only the row in clear is rewritten");
    all_sealed_under(&f.stored_secrets().await, &f.key);
    // Half-sealed rows (one column in clear) are found too; `migrate` runs the same pass.
    f.raw("UPDATE webhooks SET headers = '{}' WHERE name = 'w2'")
        .await;
    f.store.migrate().await.unwrap();
    all_sealed_under(&f.stored_secrets().await, &f.key);
    assert!(!f.everything_stored().await.contains("CLEAR"));
    assert_eq!(f.store.reseal(Reseal::Clear).await.unwrap().webhooks, 0);
    let sealed = f.store.get_webhook(t.id, w1.id).await.unwrap().unwrap();
    assert_eq!(sealed.secret.expose(), "whsec_CLEARone");
    assert_eq!(sealed.previous_secret.unwrap().expose(), "CLEARprev");
    assert_eq!(sealed.headers, legacy.headers);
    let w2_back = f.store.get_webhook(t.id, w2.id).await.unwrap().unwrap();
    assert!(w2_back.headers.is_empty());
    assert_eq!(w2_back.secret, w2.secret);
}

async fn rotation_reseals_under_the_new_key_and_old_rows_stay_readable(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let hooks: Vec<Webhook> = (0..3).map(|i| webhook(t.id, &format!("w{i}"))).collect();
    for w in &hooks {
        f.store.insert_webhook(w).await.unwrap();
    }
    let new_key = EncryptionKey::generate();
    // During the rotation: the new key seals, the old one still opens.
    let rotating = f
        .reopen(Keyring::new(new_key.clone(), vec![f.key.clone()]))
        .await;
    rotating.migrate().await.unwrap();
    assert_eq!(
        rotating.get_webhook(t.id, hooks[0].id).await.unwrap(),
        Some(hooks[0].clone())
    );
    let report = rotating.reseal(Reseal::All).await.unwrap();
    assert_eq!(report.webhooks, 3);
    all_sealed_under(&f.stored_secrets().await, &new_key);
    assert_eq!(rotating.reseal(Reseal::All).await.unwrap().webhooks, 0);
    // Afterwards the old key can go.
    let after = f.reopen(Keyring::new(new_key.clone(), vec![])).await;
    after.migrate().await.unwrap();
    for w in &hooks {
        assert_eq!(
            after.get_webhook(t.id, w.id).await.unwrap().as_ref(),
            Some(w)
        );
    }
    // A node still on the old key alone can't read them and says which key it lacks.
    let err = f.store.get_webhook(t.id, hooks[0].id).await.unwrap_err();
    assert!(err.to_string().contains(new_key.id().as_str()), "{err}");
}

async fn a_wrong_key_stops_migrate_naming_the_key_and_never_reads_garbage(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = webhook(t.id, "w");
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "c1").await;
    let wrong = f
        .reopen(Keyring::new(EncryptionKey::generate(), vec![]))
        .await;
    let err = wrong.migrate().await.unwrap_err().to_string();
    assert!(err.contains("wrong encryption key"), "{err}");
    assert!(err.contains(f.key.id().as_str()), "{err}");
    // Every read of the secrets fails instead of handing out something to sign with.
    assert!(wrong.get_webhook(t.id, w.id).await.is_err());
    assert!(wrong
        .list_webhooks(
            t.id,
            WebhookFilter::default(),
            Page {
                before: None,
                limit: 10
            }
        )
        .await
        .is_err());
    assert!(wrong.reseal(Reseal::All).await.is_err());
    // A claim leaves out the webhook it can't open, so nothing of it is sent; its delivery waits
    // for its lease to run out.
    let claim = wrong.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 1);
    assert!(claim.webhooks.is_empty());
    // Nothing was rewritten: the right key still reads the webhook, and claims the delivery once
    // the lease has run out.
    all_sealed_under(&f.stored_secrets().await, &f.key);
    assert_eq!(
        f.store.get_webhook(t.id, w.id).await.unwrap(),
        Some(w.clone())
    );
    f.store.travel(secs(120)).await.unwrap();
    let claim = f.store.claim_due(claim_req(10, 10)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 1);
    assert_eq!(claim.webhooks[&w.id].secret, w.secret);
}

/// The deliveries of one webhook, oldest first, with their events.
async fn deliveries_of(
    f: &Fixture,
    tenant: TenantId,
    webhook: WebhookId,
) -> Vec<(Delivery, Event)> {
    let filter = DeliveryFilter {
        webhook_id: Some(webhook),
        ..Default::default()
    };
    let page = Page {
        before: None,
        limit: 100,
    };
    let mut out = Vec::new();
    for d in f.store.list_deliveries(tenant, filter, page).await.unwrap() {
        let e = f
            .store
            .get_event(tenant, d.event_id)
            .await
            .unwrap()
            .unwrap();
        out.push((d, e));
    }
    out.reverse();
    out
}

async fn a_delivery_whose_node_dies_every_time_fails_with_abandoned_attempts(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    // Two attempts: the first try and one retry.
    let mut w = hook_for(t.id, &["*"], Format::Envelope, true);
    w.retry_schedule = Some(RetrySchedule(vec![std::time::Duration::from_secs(1)]));
    f.store.insert_webhook(&w).await.unwrap();
    let watcher = hook_for(t.id, &["delivery.exhausted"], Format::Flat, true);
    f.store.insert_webhook(&watcher).await.unwrap();
    publish_contact(&f, t.id, "c").await;
    let first = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(first.len(), 1);
    // The node dies; another takes the lease over: the first try counts, the retry is attempt 2.
    let later = claim_req(10, 10);
    f.store.travel(secs(61)).await.unwrap();
    let second = f.store.claim_due(later.clone()).await.unwrap().deliveries;
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].id, second[0].attempt_number), (first[0].id, 2));
    // That node dies too: the schedule is used up, so the delivery fails instead of going out a
    // third time.
    let last = later;
    f.store.travel(secs(61)).await.unwrap();
    let third = f.store.claim_due(last.clone()).await.unwrap().deliveries;
    assert!(third.iter().all(|d| d.id != first[0].id), "{third:?}");
    let (d, attempts) = f
        .store
        .get_delivery(t.id, first[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempt_count, 2);
    assert!(d.last_error.as_deref().unwrap().starts_with("abandoned"));
    let mut numbers: Vec<(u32, Option<String>)> = attempts
        .iter()
        .map(|a| (a.attempt_number, a.error_kind.clone()))
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        [(1, Some("abandoned".into())), (2, Some("abandoned".into()))]
    );
    // The failure is announced to the webhook that subscribes to it.
    let got = deliveries_of(&f, t.id, watcher.id).await;
    assert_eq!(got.len(), 1);
    let data = &got[0].1.data;
    assert_eq!(got[0].1.event_type, "delivery.exhausted");
    assert_eq!(data["delivery_id"], first[0].id.to_string());
    assert_eq!(data["webhook_id"], w.id.to_string());
    assert_eq!(data["reason"], "retries_exhausted");
    assert_eq!(data["last_error_kind"], "abandoned");
    assert_eq!(data["attempts"], 2);
    assert!(deliveries_of(&f, t.id, w.id).await.len() == 1);
}

async fn operational_events_announce_failing_recovered_and_exhausted(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let ops = ["webhook.failing", "webhook.recovered", "delivery.exhausted"];
    // The failing webhook subscribes to the operational events too: it never gets its own.
    let mut events = vec!["contact.*"];
    events.extend(ops);
    let w = hook_for(t.id, &events, Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    let watcher = hook_for(t.id, &ops, Format::Flat, true);
    f.store.insert_webhook(&watcher).await.unwrap();
    let policy = DisablePolicy {
        max_consecutive_failures: 4,
        max_failing_for: std::time::Duration::from_secs(86_400 * 30),
    };
    for i in 0..3 {
        publish_contact(&f, t.id, format!("c{i}")).await;
    }
    let claimed = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(claimed.len(), 3);
    let retry_at = secs(1);
    let record = |r: AttemptResult| {
        let store = f.store.clone();
        async move {
            let applied = store.record_attempts(vec![r], policy).await.unwrap();
            assert_eq!(applied, [true]);
        }
    };
    let types = |got: &[(Delivery, Event)]| -> Vec<String> {
        got.iter().map(|(_, e)| e.event_type.clone()).collect()
    };
    // One failure: below half the threshold, nothing said.
    record(result(
        &claimed[0],
        NextState::RetryAfter(retry_at),
        Some(503),
    ))
    .await;
    assert!(deliveries_of(&f, t.id, watcher.id).await.is_empty());
    // The second reaches half (2 of 4): a warning. It was a 400, so the delivery also ends.
    record(result(&claimed[1], NextState::Failed, Some(400))).await;
    let got = deliveries_of(&f, t.id, watcher.id).await;
    assert_eq!(types(&got), ["delivery.exhausted", "webhook.failing"]);
    let exhausted = &got[0].1.data;
    assert_eq!(exhausted["delivery_id"], claimed[1].id.to_string());
    assert_eq!(exhausted["reason"], "not_retryable");
    assert_eq!(exhausted["last_status_code"], 400);
    assert_eq!(exhausted["event_type"], "contact.created");
    let failing = &got[1].1.data;
    assert_eq!(failing["id"], w.id.to_string());
    assert_eq!(failing["consecutive_failures"], 2);
    assert_eq!(failing["disable_after_failures"], 4);
    // A third failure in the same streak: no second warning (and not yet disabled).
    f.store.travel(secs(2)).await.unwrap();
    let again: Vec<_> = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .filter(|d| d.webhook_id == w.id)
        .collect();
    assert_eq!(again.len(), 1);
    record(result(
        &again[0],
        NextState::RetryAfter(retry_at),
        Some(500),
    ))
    .await;
    assert_eq!(deliveries_of(&f, t.id, watcher.id).await.len(), 2);
    // The first success after the failures: recovered, once.
    record(result(&claimed[2], NextState::Delivered, Some(200))).await;
    let got = deliveries_of(&f, t.id, watcher.id).await;
    assert_eq!(
        types(&got),
        ["delivery.exhausted", "webhook.failing", "webhook.recovered"]
    );
    assert_eq!(got[2].1.data["id"], w.id.to_string());
    assert!(got[2].1.data["failing_since"].is_string());
    let stored = f.store.get_webhook(t.id, w.id).await.unwrap().unwrap();
    assert!(stored.enabled);
    assert_eq!(stored.consecutive_failures, 0);
    // None of it reached the webhook it is about.
    let own = deliveries_of(&f, t.id, w.id).await;
    assert!(
        own.iter().all(|(_, e)| e.event_type == "contact.created"),
        "{own:?}"
    );
}

async fn an_exhausted_operational_delivery_announces_nothing(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    // Two webhooks that each watch the other's exhausted deliveries, and a source of failures.
    let a = hook_for(
        t.id,
        &["contact.*", "delivery.exhausted"],
        Format::Envelope,
        true,
    );
    let b = hook_for(t.id, &["delivery.exhausted"], Format::Envelope, true);
    f.store.insert_webhook(&a).await.unwrap();
    f.store.insert_webhook(&b).await.unwrap();
    publish_contact(&f, t.id, "c").await;
    let claimed = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(claimed.len(), 1);
    f.store
        .record_attempts(
            vec![result(&claimed[0], NextState::Failed, Some(404))],
            Default::default(),
        )
        .await
        .unwrap();
    // b hears about a's failure (a does not: it is about a).
    let to_b = deliveries_of(&f, t.id, b.id).await;
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0].1.event_type, "delivery.exhausted");
    // b fails that notice for good: no notice about the notice, to a or anyone.
    let notice = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].webhook_id, b.id);
    f.store
        .record_attempts(
            vec![result(&notice[0], NextState::Failed, Some(404))],
            Default::default(),
        )
        .await
        .unwrap();
    let to_a = deliveries_of(&f, t.id, a.id).await;
    assert!(
        to_a.iter().all(|(_, e)| e.event_type == "contact.created"),
        "{to_a:?}"
    );
    assert_eq!(deliveries_of(&f, t.id, b.id).await.len(), 1);
}

/// The statuses and cancel reasons of a webhook's deliveries, oldest first.
async fn states_of(
    f: &Fixture,
    tenant: TenantId,
    webhook: WebhookId,
) -> Vec<(DeliveryStatus, Option<CancelReason>)> {
    deliveries_of(f, tenant, webhook)
        .await
        .into_iter()
        .map(|(d, _)| (d.status, d.cancel_reason))
        .collect()
}

async fn deleting_a_webhook_cancels_its_queue_and_keeps_its_log(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    for id in ["a", "b", "c"] {
        publish_contact(&f, t.id, id).await;
    }
    // One delivered, one retrying, one still pending.
    let claimed = f
        .store
        .claim_due(claim_req(2, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(claimed.len(), 2);
    let retry_at = secs(30);
    f.store
        .record_attempts(
            vec![
                result(&claimed[0], NextState::Delivered, Some(200)),
                result(&claimed[1], NextState::RetryAfter(retry_at), Some(503)),
            ],
            Default::default(),
        )
        .await
        .unwrap();

    assert!(f.store.delete_webhook(t.id, w.id).await.unwrap());
    assert!(!f.store.delete_webhook(t.id, w.id).await.unwrap());
    // Gone from every webhook read of the tenant...
    assert_eq!(f.store.get_webhook(t.id, w.id).await.unwrap(), None);
    let all = f
        .store
        .list_webhooks(
            t.id,
            WebhookFilter::default(),
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(all.is_empty(), "{all:?}");
    assert!(f
        .store
        .modify_webhook(
            t.id,
            w.id,
            Box::new(|w| {
                w.enabled = true;
                Ok(())
            })
        )
        .await
        .unwrap()
        .is_none());
    assert!(!f.store.webhook_live(w.id).await.unwrap());
    // ...its queue is cancelled, what finished stays as it was, and the log stays readable.
    let states = states_of(&f, t.id, w.id).await;
    let mut sorted: Vec<_> = states.iter().map(|s| format!("{s:?}")).collect();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "(Cancelled, Some(WebhookDeleted))",
            "(Cancelled, Some(WebhookDeleted))",
            "(Delivered, None)",
        ]
    );
    let (d, attempts) = f
        .store
        .get_delivery(t.id, claimed[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Cancelled);
    assert_eq!(d.cancel_reason, Some(CancelReason::WebhookDeleted));
    assert_eq!(d.next_attempt_at, None);
    assert_eq!(d.url, w.url);
    assert!(attempts.iter().any(|a| a.status_code == Some(503)));
    // Nothing new reaches it and nothing of it is claimed.
    publish_contact(&f, t.id, "d").await;
    assert_eq!(states_of(&f, t.id, w.id).await.len(), 3);
    f.store.travel(secs(3600)).await.unwrap();
    assert!(f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries
        .is_empty());
    // Cancelled is terminal: retention prunes it with the rest.
    let future = time::now() + chrono::Duration::days(1);
    f.store.prune(future, future).await.unwrap();
    assert!(states_of(&f, t.id, w.id).await.is_empty());
}

async fn disabling_a_webhook_cancels_its_queue_for_good(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let set_enabled = |on: bool| {
        let store = f.store.clone();
        async move {
            store
                .modify_webhook(
                    t.id,
                    w.id,
                    Box::new(move |w| {
                        w.enabled = on;
                        if !on {
                            w.disabled_reason = Some("manual".into());
                        }
                        Ok(())
                    }),
                )
                .await
                .unwrap()
                .unwrap()
        }
    };
    // An edit that keeps it enabled leaves the queue alone.
    set_enabled(true).await;
    assert_eq!(
        states_of(&f, t.id, w.id).await,
        [
            (DeliveryStatus::Pending, None),
            (DeliveryStatus::Pending, None)
        ]
    );
    set_enabled(false).await;
    let cancelled = (
        DeliveryStatus::Cancelled,
        Some(CancelReason::WebhookDisabled),
    );
    assert_eq!(states_of(&f, t.id, w.id).await, [cancelled, cancelled]);
    // Enabling again doesn't bring them back (replay does).
    set_enabled(true).await;
    assert_eq!(states_of(&f, t.id, w.id).await, [cancelled, cancelled]);
    assert!(f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries
        .is_empty());
    let n = f
        .store
        .replay(
            t.id,
            w.id,
            ReplayFilter {
                since: time::now() - chrono::Duration::hours(1),
                until: None,
                statuses: vec![DeliveryStatus::Cancelled],
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
}

async fn a_410_cancels_the_queue_as_endpoint_gone(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let first = f
        .store
        .claim_due(claim_req(1, 10))
        .await
        .unwrap()
        .deliveries;
    f.store
        .record_attempts(
            vec![result(&first[0], NextState::Failed, Some(410))],
            Default::default(),
        )
        .await
        .unwrap();
    let w_now = f.store.get_webhook(t.id, w.id).await.unwrap().unwrap();
    assert!(!w_now.enabled);
    assert_eq!(w_now.disabled_reason.as_deref(), Some("endpoint_gone"));
    let states = states_of(&f, t.id, w.id).await;
    assert!(
        states.contains(&(DeliveryStatus::Cancelled, Some(CancelReason::EndpointGone))),
        "{states:?}"
    );
    assert!(
        states.contains(&(DeliveryStatus::Failed, None)),
        "{states:?}"
    );
}

async fn a_claimed_delivery_of_a_disabled_webhook_is_cancelled_not_retried(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let claimed = f
        .store
        .claim_due(claim_req(10, 10))
        .await
        .unwrap()
        .deliveries;
    assert_eq!(claimed.len(), 2);
    assert!(f.store.webhook_live(w.id).await.unwrap());
    // Nothing to cancel while the webhook may send.
    let lease = |d: &hookline_store::ClaimedDelivery| (d.id, d.lease_token);
    assert_eq!(
        f.store
            .cancel_claimed(vec![lease(&claimed[0])])
            .await
            .unwrap(),
        0
    );
    f.store
        .modify_webhook(
            t.id,
            w.id,
            Box::new(|w| {
                w.enabled = false;
                Ok(())
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!f.store.webhook_live(w.id).await.unwrap());
    assert!(!f.store.webhook_live(WebhookId::new()).await.unwrap());
    // Being delivered, they are left to their node: the re-check cancels one (a foreign token
    // changes nothing)...
    assert_eq!(
        f.store
            .cancel_claimed(vec![(claimed[0].id, LeaseToken::new())])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .cancel_claimed(vec![lease(&claimed[0])])
            .await
            .unwrap(),
        1
    );
    // ...and a result that would retry the other ends it instead.
    let retry_at = secs(30);
    let applied = f
        .store
        .record_attempts(
            vec![result(
                &claimed[1],
                NextState::RetryAfter(retry_at),
                Some(503),
            )],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    let (d, attempts) = f
        .store
        .get_delivery(t.id, claimed[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status, d.cancel_reason),
        (
            DeliveryStatus::Cancelled,
            Some(CancelReason::WebhookDisabled)
        )
    );
    assert_eq!(attempts.len(), 1, "the attempt made is logged");
    let (d0, attempts0) = f
        .store
        .get_delivery(t.id, claimed[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d0.status, DeliveryStatus::Cancelled);
    assert!(attempts0.is_empty(), "never sent: {attempts0:?}");
}

async fn a_queued_delivery_is_cancelled_by_hand(f: Fixture) {
    let t = f.store.create_tenant("acme").await.unwrap();
    let other = f.store.create_tenant("other").await.unwrap();
    let w = hook_for(t.id, &["*"], Format::Envelope, true);
    f.store.insert_webhook(&w).await.unwrap();
    publish_contact(&f, t.id, "a").await;
    publish_contact(&f, t.id, "b").await;
    let claimed = f
        .store
        .claim_due(claim_req(1, 10))
        .await
        .unwrap()
        .deliveries;
    let pending = deliveries_of(&f, t.id, w.id)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .find(|d| d.status == DeliveryStatus::Pending)
        .unwrap();
    assert_eq!(
        f.store.cancel_delivery(other.id, pending.id).await.unwrap(),
        CancelOutcome::NotFound
    );
    let CancelOutcome::Cancelled(d) = f.store.cancel_delivery(t.id, pending.id).await.unwrap()
    else {
        panic!("not cancelled")
    };
    assert_eq!(
        (d.status, d.cancel_reason, d.next_attempt_at),
        (DeliveryStatus::Cancelled, Some(CancelReason::Manual), None)
    );
    assert_eq!(
        f.store.cancel_delivery(t.id, pending.id).await.unwrap(),
        CancelOutcome::NotQueued(DeliveryStatus::Cancelled)
    );
    assert_eq!(
        f.store.cancel_delivery(t.id, claimed[0].id).await.unwrap(),
        CancelOutcome::NotQueued(DeliveryStatus::Delivering)
    );
    // Terminal: counted with the terminal statuses.
    let backlog = f.store.backlog(true).await.unwrap();
    assert_eq!(backlog.count(DeliveryStatus::Cancelled), 1);
}

async fn erasure_steps_drop_rewrite_and_renumber_and_a_late_result_stores_nothing(f: Fixture) {
    use hookline_core::ids::JobId;
    use hookline_store::{JobKind, JobStatus};
    let t = f.store.create_tenant("acme").await.unwrap();
    let other = f.store.create_tenant("other").await.unwrap();
    let batches = hook_for(t.id, &["contact.*"], Format::Envelope, true);
    let objects = hook_for(t.id, &["contact.*"], Format::Flat, true);
    let theirs = hook_for(other.id, &["*"], Format::Envelope, true);
    for w in [&batches, &objects, &theirs] {
        f.store.insert_webhook(w).await.unwrap();
    }
    // Three events about c_9 (more than one step of 2), a batch carrying it in the middle, an
    // event about another contact, and the same id at another tenant.
    for _ in 0..3 {
        publish_contact(&f, t.id, "c_9").await;
    }
    let batch = published(
        &f,
        t.id,
        vec![event(
            t.id,
            "contact.created",
            serde_json::json!([{"id": "c_1"}, {"id": "c_9", "first_name": "Nia"}, {"id": "c_2"}]),
        )],
    )
    .await;
    publish_contact(&f, t.id, "c_90").await;
    publish_contact(&f, other.id, "c_9").await;
    // One delivery of c_9 is out at a sender when the erasure runs.
    let claim = f.store.claim_due(claim_req(100, 100)).await.unwrap();
    let out = claim
        .deliveries
        .iter()
        .find(|d| {
            d.tenant_id == t.id && claim.events[&d.event_id].entity_id.as_deref() == Some("c_9")
        })
        .unwrap()
        .clone();

    let target = hookline_core::erasure::Target::parse("contact", "c_9").unwrap();
    let job = f
        .store
        .insert_erasure_job(JobId::new(), t.id, target)
        .await
        .unwrap();
    assert_eq!(job.kind, JobKind::Erasure);
    let a = LeaseToken::new();
    f.store.claim_job(a, LEASE).await.unwrap().unwrap();
    let step = f.store.erasure_step(job.id, a, LEASE, 2).await.unwrap();
    assert_eq!((step.status, step.done), (JobStatus::Running, 2));
    // Taken over after the lease: the old holder's step changes nothing.
    f.store.travel(secs(61)).await.unwrap();
    let b = LeaseToken::new();
    f.store.claim_job(b, LEASE).await.unwrap().unwrap();
    let stale = f.store.erasure_step(job.id, a, LEASE, 2).await.unwrap();
    assert_eq!(stale.done, 2);
    let mut step = stale;
    while step.status == JobStatus::Running {
        step = f.store.erasure_step(job.id, b, LEASE, 2).await.unwrap();
    }
    assert_eq!(step.status, JobStatus::Succeeded);
    let erased = hookline_store::Erased::from_result(step.result.as_ref());
    assert_eq!((erased.events_dropped, erased.events_rewritten), (3, 1));
    // 3 events × 2 webhooks, and the flat delivery of the batch's middle object.
    assert_eq!(erased.deliveries_removed, 7);

    // The batch keeps the others; its flat deliveries are 0 and 1 now, carrying c_1 and c_2.
    let e = f.store.get_event(t.id, batch[0].id).await.unwrap().unwrap();
    assert_eq!(e.data, serde_json::json!([{"id": "c_1"}, {"id": "c_2"}]));
    let ids = &batch[0].delivery_ids;
    let mut indexes = Vec::new();
    for id in ids {
        if let Some((d, _)) = f.store.get_delivery(t.id, *id).await.unwrap() {
            indexes.push(d.item_index);
        }
    }
    assert_eq!(indexes, [None, Some(0), Some(1)]);
    // The other contact, and c_9 at the other tenant, are untouched.
    let theirs_left = f
        .store
        .list_events(
            other.id,
            None,
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(theirs_left.len(), 1);

    // The result of the delivery that was out arrives: nothing of it is stored.
    let applied = f
        .store
        .record_attempts(
            vec![result(&out, NextState::Delivered, Some(200))],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(applied, [false]);
    assert!(f.store.get_delivery(t.id, out.id).await.unwrap().is_none());

    // A node that still holds the batch as it was before (revision 0) gets the new one with its
    // next claim of the batch's deliveries, never its old copy's positions.
    f.store.travel(secs(61)).await.unwrap();
    let mut req = claim_req(100, 100);
    req.known_events.insert(batch[0].id, 0);
    let again = f.store.claim_due(req).await.unwrap();
    assert!(again.deliveries.iter().any(|d| d.event_id == batch[0].id));
    assert_eq!(again.revisions.get(&batch[0].id), Some(&1));
    assert_eq!(
        again.events[&batch[0].id].data,
        serde_json::json!([{"id": "c_1"}, {"id": "c_2"}])
    );
    // Held at the current revision, it isn't read again.
    f.store.travel(secs(61)).await.unwrap();
    let mut req = claim_req(100, 100);
    req.known_events.insert(batch[0].id, 1);
    let held = f.store.claim_due(req).await.unwrap();
    assert!(held.deliveries.iter().any(|d| d.event_id == batch[0].id));
    assert!(!held.events.contains_key(&batch[0].id));
}
