//! What both backends write the same way, written once: the column lists whose SQL text is the same
//! in both dialects, the webhook insert/update statements, LIKE patterns, the text stored as a
//! delivery's last error, the status an attempt result leaves, the rows a resend or replay copies,
//! the backlog's overdue age, the parsing of stored enum columns, the schema version check, the
//! session lookup (with its portal grant) and how a webhook joins a grant's list. The hourly stats
//! live in `stats.rs`.
//!
//! Only what is identical lives here; the dialects differ in placeholders (`?1` / `$1`), types and
//! batching, so each backend keeps its own statements around these pieces.

use crate::error::{Result, StoreError};
use crate::model::{Attempt, Backlog, CancelReason, DeliveryStatus, NextState};
use hookline_core::ids::{DeliveryId, WebhookId};
use hookline_core::time::Timestamp;
use hookline_core::webhook::{Format, Ordering};

pub(crate) const KEY_COLS: &str =
    "id, tenant_id, name, prefix, key_hash, default_user_id, created_at, \
    scope, expires_at, last_used_at, revoked_at";

/// Every webhook column; `id` and `tenant_id` first, since a full update selects the row by them and
/// sets the rest (see [`update_webhook_sql`]).
pub(crate) const WEBHOOK_COLS: &str = "id, tenant_id, name, description, url, events, secret, previous_secret, \
    previous_secret_expires_at, enabled, disabled_reason, format, headers, retry_schedule, rate_limit, \
    ordering, consecutive_failures, failing_since, created_at, updated_at, last_attempt_at, filter";

pub(crate) const EVENT_COLS: &str =
    "id, tenant_id, event_type, occurred_at, source, source_id, actor_id, entity_type, \
    entity_id, data, changes, batch, created_at";

/// A delivery with its webhook's URL: selected `FROM deliveries d JOIN webhooks w`.
pub(crate) const DELIVERY_COLS: &str = "d.id, d.tenant_id, d.webhook_id, d.event_id, d.event_type, d.status, \
    d.attempt_count, d.next_attempt_at, d.item_index, d.resent_from, d.last_status_code, d.last_error, \
    d.created_at, d.updated_at, w.url, d.format, COALESCE(d.message_id, d.id), d.cancel_reason";

pub(crate) const ATTEMPT_COLS: &str = "id, delivery_id, attempt_number, started_at, url, status_code, error_kind, \
    error_message, dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms, request_headers, response_headers, \
    response_body, response_truncated";

pub(crate) const RECORD_COLS: &str = "tenant_id, entity_type, id, version, data";

pub(crate) const SESSION_COLS: &str =
    "id_hash, tenant_id, key_id, grant_id, csrf, created_at, last_seen_at, expires_at";

pub(crate) const GRANT_COLS: &str =
    "id, tenant_id, webhook_ids, capabilities, code_hash, created_at, expires_at, revoked_at";

/// A session (columns of [`SESSION_COLS`]) followed by its grant's ([`GRANT_COLS`], all NULL for a
/// console session) and its API key's ([`KEY_COLS`], all NULL for a portal session), found by
/// `id_hash` = `param`. A portal session is found only while its grant exists for the same tenant
/// and is not revoked; a console session's key comes as stored, revoked or not (the service judges
/// it like any presented key).
pub(crate) fn console_session_sql(param: &str) -> String {
    format!(
        "SELECT {}, {}, {} FROM console_sessions s
         LEFT JOIN portal_grants g ON g.id = s.grant_id AND g.tenant_id = s.tenant_id
         LEFT JOIN api_keys k ON k.id = s.key_id AND k.tenant_id = s.tenant_id
         WHERE s.id_hash = {param}
           AND (s.grant_id IS NULL OR (g.id IS NOT NULL AND g.revoked_at IS NULL))",
        prefixed("s", SESSION_COLS),
        prefixed("g", GRANT_COLS),
        prefixed("k", KEY_COLS)
    )
}

/// Where the key's columns start in a [`console_session_sql`] row.
pub(crate) const SESSION_KEY_AT: usize = 16;

/// `cols` qualified by a table alias: `a.x, a.y`.
pub(crate) fn prefixed(alias: &str, cols: &str) -> String {
    cols.split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A grant's webhook list with `webhook_id` added, or `None` when nothing changes: a grant without
/// a list sees every webhook already, and one already listed stays listed once.
pub(crate) fn grant_with_webhook(
    list: Option<Vec<WebhookId>>,
    webhook_id: WebhookId,
) -> Option<Vec<WebhookId>> {
    let mut list = list?;
    if list.contains(&webhook_id) {
        return None;
    }
    list.push(webhook_id);
    Some(list)
}

/// The statuses retention may delete (the terminal ones): a delivery still pending, retrying or
/// delivering is never pruned, nor its attempts, nor its event. The same SQL text on both backends
/// (and the predicate of the partial index `deliveries_finished`).
pub(crate) const PRUNABLE_STATUS: &str = "('delivered', 'failed', 'cancelled')";

/// A webhook that exists: not soft-deleted. Every read of webhooks by a tenant (get, list, modify,
/// a grant's list) adds it, so a deleted webhook answers 404 while its deliveries stay readable.
pub(crate) const NOT_DELETED: &str = "deleted_at IS NULL";

/// The reason a delivery of the webhook `w` is cancelled with when `w` may no longer send: deleted,
/// gone (410), or otherwise disabled. One expression, so every path that cancels for a webhook's
/// sake (delete, disable, auto-disable, the dispatcher's re-check) names the same reason.
const WEBHOOK_CANCEL_REASON: &str =
    "(SELECT CASE WHEN w.deleted_at IS NOT NULL THEN 'webhook_deleted'
        WHEN w.disabled_reason = 'endpoint_gone' THEN 'endpoint_gone' ELSE 'webhook_disabled' END
      FROM webhooks w WHERE w.id = deliveries.webhook_id)";

/// Cancels the queued (pending, retrying) deliveries of the webhook `{webhook}` when that webhook
/// is disabled or deleted (a no-op for an enabled one), with the reason the webhook's state gives;
/// `{now}` is the time. A delivery being delivered is left to its node: the dispatcher's re-check
/// cancels it before sending ([`cancel_claimed_sql`]), and a result that would retry it is
/// cancelled by this same statement after it is recorded.
pub(crate) fn cancel_queued_sql(webhook: &str, now: &str) -> String {
    format!(
        "UPDATE deliveries SET status = 'cancelled', cancel_reason = {WEBHOOK_CANCEL_REASON},
           next_attempt_at = NULL, updated_at = {now}
         WHERE webhook_id = {webhook} AND status IN ('pending', 'retrying')
           AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = {webhook}
                       AND (NOT w.enabled OR w.deleted_at IS NOT NULL))"
    )
}

/// Cancels the delivery `{id}` still leased to `{token}` because its webhook may no longer send
/// (the dispatcher's re-check found it disabled or deleted after the claim).
pub(crate) fn cancel_claimed_sql(id: &str, token: &str, now: &str) -> String {
    format!(
        "UPDATE deliveries SET status = 'cancelled', cancel_reason = {WEBHOOK_CANCEL_REASON},
           next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = {now}
         WHERE id = {id} AND lease_owner = {token} AND status = 'delivering'
           AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id
                       AND (NOT w.enabled OR w.deleted_at IS NOT NULL))"
    )
}

/// Cancels one queued delivery of a tenant by hand (reason `manual`).
pub(crate) fn cancel_one_sql(tenant: &str, id: &str, now: &str) -> String {
    format!(
        "UPDATE deliveries SET status = 'cancelled', cancel_reason = 'manual',
           next_attempt_at = NULL, updated_at = {now}
         WHERE tenant_id = {tenant} AND id = {id} AND status IN ('pending', 'retrying')"
    )
}

/// Whether the webhook `{id}` may send now: enabled and not deleted.
pub(crate) fn webhook_live_sql(id: &str) -> String {
    format!("SELECT enabled AND deleted_at IS NULL FROM webhooks WHERE id = {id}")
}

/// One chunk of retention per table, children before parents: `{before}` is the cutoff, `{limit}`
/// the chunk size, `{terminal}` [`PRUNABLE_STATUS`]. Each deletes by primary key through a bounded
/// subquery (neither dialect has `DELETE … LIMIT`). Attempts go by when they started, deliveries by
/// when they last changed (when they became terminal), events by when they were stored and only
/// once no delivery of theirs is left, whatever its status.
pub(crate) const PRUNE_ATTEMPTS: &str = "DELETE FROM attempts WHERE id IN (
       SELECT a.id FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE a.started_at < {before} AND d.status IN {terminal} LIMIT {limit})";
pub(crate) const PRUNE_DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN (
       SELECT id FROM deliveries WHERE status IN {terminal} AND updated_at < {before} LIMIT {limit})";
pub(crate) const PRUNE_EVENTS: &str = "DELETE FROM events WHERE id IN (
       SELECT e.id FROM events e WHERE e.created_at < {before}
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT {limit})";

/// A `PRUNE_*` statement in a dialect's placeholders.
pub(crate) fn prune_sql(template: &str, before: &str, limit: &str) -> String {
    template
        .replace("{terminal}", PRUNABLE_STATUS)
        .replace("{before}", before)
        .replace("{limit}", limit)
}

/// How many rows one prune statement deletes at most: small enough to keep each write short (the
/// SQLite writer stays responsive, PostgreSQL holds few locks at once).
pub(crate) const PRUNE_CHUNK: u64 = 5000;

/// Placeholder `i` (1-based) of a dialect: `?` for SQLite, `$` for PostgreSQL.
fn placeholder(sigil: char, i: usize) -> String {
    format!("{sigil}{i}")
}

/// `INSERT INTO webhooks` of every column, bound in [`WEBHOOK_COLS`] order.
pub(crate) fn insert_webhook_sql(sigil: char) -> String {
    let n = WEBHOOK_COLS.split(',').count();
    let values = (1..=n)
        .map(|i| placeholder(sigil, i))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES ({values})")
}

/// `UPDATE webhooks` of every settings column, bound in [`WEBHOOK_COLS`] order: the first two values
/// (id, tenant) select the row, so another tenant's webhook can't be overwritten.
pub(crate) fn update_webhook_sql(sigil: char) -> String {
    let sets = WEBHOOK_COLS
        .split(',')
        .map(str::trim)
        .enumerate()
        .skip(2)
        .map(|(i, col)| format!("{col} = {}", placeholder(sigil, i + 1)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE webhooks SET {sets} WHERE id = {} AND tenant_id = {}",
        placeholder(sigil, 1),
        placeholder(sigil, 2)
    )
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The LIKE pattern of a search box: the term anywhere, taken literally.
pub(crate) fn contains(search: Option<&str>) -> Option<String> {
    search.map(|s| format!("%{}%", escape_like(s)))
}

/// Makes an attempt's text storable on both backends, whatever the receiver sent. PostgreSQL's
/// `text` refuses NUL (a gzip or binary response body holds them), and one refused row used to fail
/// its whole batch; SQLite would take it, but both must store the same thing. NUL becomes U+FFFD,
/// the character the sender already puts where a body isn't valid UTF-8.
pub(crate) fn storable_attempt(a: &mut Attempt) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    clean(&mut a.url);
    for s in [
        &mut a.error_kind,
        &mut a.error_message,
        &mut a.response_body,
    ]
    .into_iter()
    .flatten()
    {
        clean(s);
    }
    for (name, value) in a
        .request_headers
        .iter_mut()
        .chain(a.response_headers.iter_mut())
    {
        clean(name);
        clean(value);
    }
}

/// The text a delivery keeps as its last error: `kind: message`, or the kind alone.
pub(crate) fn last_error(a: &Attempt) -> Option<String> {
    a.error_kind.as_ref().map(|k| match &a.error_message {
        Some(m) => format!("{k}: {m}"),
        None => k.clone(),
    })
}

/// `error_kind` of the attempt a claim records for a try whose lease ran out before its node
/// recorded a result (the node died mid-attempt): it counts toward the schedule like any failure.
pub const ABANDONED: &str = "abandoned";
/// `error_kind` of a result that arrived after its lease was taken over by another claim: kept in
/// the log (with the receiver's status code, if any) but it changes neither the delivery nor the
/// webhook's streak, since the new lease holder's result is the one that counts.
pub const STALE: &str = "stale";

/// Turns a result whose lease was taken over into the stale attempt the log keeps.
pub(crate) fn mark_stale(a: &mut Attempt) {
    let was = last_error(a);
    a.error_kind = Some(STALE.into());
    a.error_message = Some(match was {
        Some(e) => format!("result arrived after the lease was taken over (it was: {e})"),
        None => "result arrived after the lease was taken over".into(),
    });
}

/// The message of an [`ABANDONED`] attempt.
pub const ABANDONED_MESSAGE: &str =
    "the lease ran out before the sending node recorded a result (the node stopped mid-attempt)";

/// The attempt a claim logs for a try whose node stopped before recording it ([`ABANDONED`]).
pub(crate) fn abandoned_attempt(
    delivery_id: DeliveryId,
    attempt_number: u32,
    started_at: Timestamp,
    url: &str,
) -> Attempt {
    Attempt {
        id: hookline_core::ids::AttemptId::new(),
        delivery_id,
        attempt_number,
        url: url.to_string(),
        error_kind: Some(ABANDONED.into()),
        error_message: Some(ABANDONED_MESSAGE.into()),
        ..Attempt::blank(started_at)
    }
}

/// The status an attempt's result leaves its delivery in, and how long until it is due again.
pub(crate) fn outcome(next: NextState) -> (DeliveryStatus, Option<std::time::Duration>) {
    match next {
        NextState::Delivered => (DeliveryStatus::Delivered, None),
        NextState::RetryAfter(wait) => (DeliveryStatus::Retrying, Some(wait)),
        NextState::Failed => (DeliveryStatus::Failed, None),
    }
}

/// A wait in whole milliseconds, as the databases take it (saturating).
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// One delivery a resend or replay makes: a fresh id, and the delivery it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryCopy {
    pub id: DeliveryId,
    pub resent_from: DeliveryId,
}

/// The copies of `originals`, in their order. New ids come from Rust (UUIDv7), so copies made
/// together are listed in the order of what they copy.
pub(crate) fn copies(originals: impl IntoIterator<Item = DeliveryId>) -> Vec<DeliveryCopy> {
    originals
        .into_iter()
        .map(|resent_from| DeliveryCopy {
            id: DeliveryId::new(),
            resent_from,
        })
        .collect()
}

/// The `INSERT … SELECT` that copies a delivery `d` (found by `from`, which must name it `d`): same
/// event, webhook, format, object and ordering key, due at `due` (the store's clock) and stamped
/// `now` as a new pending delivery that
/// remembers what it was resent from. The copy keeps the receiver-facing id of the chain's first
/// delivery (`message_id`; NULL on a fresh delivery, meaning its own id), never the intermediate's,
/// so a receiver that deduplicates sees every resend and replay as the message it already knows.
pub(crate) fn copy_delivery_sql(new_id: &str, due: &str, now: &str, from: &str) -> String {
    format!(
        "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempt_count,
           next_attempt_at, item_index, format, ordering_key, resent_from, message_id, created_at,
           updated_at)
         SELECT {new_id}, d.tenant_id, d.webhook_id, d.event_id, d.event_type, 'pending', 0, {due},
           d.item_index, d.format, d.ordering_key, d.id, COALESCE(d.message_id, d.id), {now}, {now}
         {from}"
    )
}

/// Stored `format` column.
pub(crate) fn parse_format(s: &str) -> std::result::Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("bad format {s}"))
}

/// Stored `ordering` column.
pub(crate) fn parse_ordering(s: &str) -> std::result::Result<Ordering, String> {
    Ordering::parse(s).ok_or_else(|| format!("bad ordering {s}"))
}

/// Stored `cancel_reason` column.
pub(crate) fn parse_cancel_reason(
    s: Option<String>,
) -> std::result::Result<Option<CancelReason>, String> {
    s.map(|s| CancelReason::parse(&s).ok_or_else(|| format!("bad cancel reason {s}")))
        .transpose()
}

/// Stored `status` column.
pub(crate) fn parse_status(s: &str) -> std::result::Result<DeliveryStatus, String> {
    DeliveryStatus::parse(s).ok_or_else(|| format!("bad status {s}"))
}

/// The backlog as of `now`, from per-status counts (as stored) and the earliest due time of any
/// waiting delivery (what `next_due_at` answers): only a time at or before `now` is overdue.
/// Counting queries of [`crate::Store::backlog`], the same text on both backends. Each matches the
/// `WHERE` of a partial index (`deliveries_due`, `deliveries_leased`) so the count walks only the
/// queued rows; [`TERMINAL_COUNTS`] is the one that scans.
pub(crate) const QUEUED_COUNTS: &str =
    "SELECT status, COUNT(*) FROM deliveries WHERE status IN ('pending', 'retrying') GROUP BY status";
pub(crate) const LEASED_COUNT: &str =
    "SELECT 'delivering', COUNT(*) FROM deliveries WHERE status = 'delivering'";
pub(crate) const TERMINAL_COUNTS: &str =
    "SELECT status, COUNT(*) FROM deliveries WHERE status IN ('delivered', 'failed', 'cancelled') GROUP BY status";

/// The queries [`crate::Store::backlog`] runs.
pub(crate) fn backlog_queries(terminal: bool) -> &'static [&'static str] {
    if terminal {
        &[QUEUED_COUNTS, LEASED_COUNT, TERMINAL_COUNTS]
    } else {
        &[QUEUED_COUNTS, LEASED_COUNT]
    }
}

/// The backlog from the per-status counts and how long until the earliest waiting delivery is due
/// on the store's clock (negative: overdue by that much).
pub(crate) fn backlog(
    counts: impl IntoIterator<Item = (String, u64)>,
    due_in: Option<chrono::Duration>,
) -> Result<Backlog> {
    Ok(Backlog {
        counts: counts
            .into_iter()
            .map(|(status, n)| Ok((parse_status(&status).map_err(StoreError::Internal)?, n)))
            .collect::<Result<_>>()?,
        oldest_due_age: due_in
            .filter(|d| *d <= chrono::Duration::zero())
            .map(|d| (-d).to_std().unwrap_or_default()),
    })
}

/// Refuses a database migrated by a newer Hookline: this binary would misread its rows.
pub(crate) fn check_schema_version(current: i64, known: usize) -> Result<()> {
    if current > known as i64 {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this binary knows ({known}); upgrade Hookline"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(contains(Some("a_b")).as_deref(), Some(r"%a\_b%"));
        assert_eq!(contains(None), None);
    }

    #[test]
    fn webhook_statements_bind_in_column_order() {
        let update = update_webhook_sql('$');
        assert!(update.starts_with("UPDATE webhooks SET name = $3, description = $4,"));
        assert!(update
            .ends_with("last_attempt_at = $21, filter = $22 WHERE id = $1 AND tenant_id = $2"));
        let insert = insert_webhook_sql('?');
        assert!(insert.ends_with("?21, ?22)"));
    }

    #[test]
    fn session_lookups_qualify_every_column() {
        let sql = console_session_sql("?1");
        assert!(sql.starts_with("SELECT s.id_hash, s.tenant_id,"));
        assert!(sql.contains("s.expires_at, g.id, g.tenant_id,"));
        assert!(sql.contains("WHERE s.id_hash = ?1"));
    }

    #[test]
    fn grants_list_a_webhook_once() {
        let (a, b) = (
            WebhookId(uuid::Uuid::from_u128(1)),
            WebhookId(uuid::Uuid::from_u128(2)),
        );
        assert_eq!(grant_with_webhook(None, a), None);
        assert_eq!(grant_with_webhook(Some(vec![a]), a), None);
        assert_eq!(grant_with_webhook(Some(vec![a]), b), Some(vec![a, b]));
        assert_eq!(grant_with_webhook(Some(vec![]), b), Some(vec![b]));
    }

    #[test]
    fn copies_get_fresh_ordered_ids() {
        let originals = [
            DeliveryId(uuid::Uuid::from_u128(9)),
            DeliveryId(uuid::Uuid::from_u128(3)),
        ];
        let c = copies(originals);
        assert_eq!(
            c.iter().map(|c| c.resent_from).collect::<Vec<_>>(),
            originals
        );
        assert!(c[0].id < c[1].id);
        assert!(!originals.contains(&c[0].id));
    }

    #[test]
    fn last_error_joins_kind_and_message() {
        let mut a = Attempt::blank(hookline_core::time::now());
        a.error_message = Some("ignored without a kind".into());
        assert_eq!(last_error(&a), None);
        a.error_kind = Some("timeout".into());
        assert_eq!(
            last_error(&a).as_deref(),
            Some("timeout: ignored without a kind")
        );
        a.error_message = None;
        assert_eq!(last_error(&a).as_deref(), Some("timeout"));
    }
}
