-- Hookline schema, version 1 (SQLite).
-- Ids are UUIDv7 text (time-ordered, so `ORDER BY id` is creation order and ids serve as cursors).
-- Timestamps are RFC 3339 UTC text with milliseconds, which sorts correctly as text.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    default_user_id TEXT,
    created_at      TEXT NOT NULL,
    revoked_at      TEXT
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);

CREATE TABLE webhooks (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    url                         TEXT NOT NULL,
    events                      TEXT NOT NULL,          -- JSON array of native names / patterns
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,                   -- still signs during rotation grace
    previous_secret_expires_at  TEXT,
    enabled                     INTEGER NOT NULL DEFAULT 1,
    disabled_reason             TEXT,
    format                      TEXT NOT NULL DEFAULT 'envelope',
    headers                     TEXT NOT NULL DEFAULT '{}',
    retry_schedule              TEXT,                   -- JSON array; NULL = deployment default
    rate_limit                  INTEGER,                -- deliveries per second; NULL = none
    ordering                    TEXT NOT NULL DEFAULT 'none',
    consecutive_failures        INTEGER NOT NULL DEFAULT 0,
    failing_since               TEXT,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id, id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    occurred_at      TEXT NOT NULL,
    source           TEXT,
    source_id        TEXT,
    actor_id         TEXT,
    entity_type      TEXT,
    entity_id        TEXT,
    data             TEXT NOT NULL,      -- JSON
    changes          TEXT,               -- JSON {field: {previous, current}}
    batch            TEXT,               -- JSON {index, count, max_size}
    created_at       TEXT NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, id);

-- Idempotency-Key of publish requests: the first answer is replayed for the same key and body.
CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- One row per (event, webhook): the outbox. Its id is the delivery id receivers see.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,      -- copied from the event for filtering
    status           TEXT NOT NULL,      -- pending | delivering | retrying | delivered | failed
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,               -- due time while pending/retrying
    lease_owner      TEXT,
    lease_until      TEXT,
    format           TEXT NOT NULL DEFAULT 'envelope', -- rendering fixed at fan-out
    item_index       INTEGER,            -- which object of a batch event, for one-object formats
    ordering_key     TEXT,               -- entity id when the webhook asks for ordering
    resent_from      TEXT,               -- original delivery of a resend/replay
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_due_webhook ON deliveries(webhook_id, next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_leased ON deliveries(webhook_id, lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_ordering ON deliveries(webhook_id, ordering_key, id) WHERE ordering_key IS NOT NULL;

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    attempt_number   INTEGER NOT NULL,
    started_at       TEXT NOT NULL,
    url              TEXT NOT NULL,
    status_code      INTEGER,
    error_kind       TEXT,               -- timeout | connect | dns | tls | blocked_destination | ...
    error_message    TEXT,
    dns_ms           REAL,
    connect_ms       REAL,
    tls_ms           REAL,
    ttfb_ms          REAL,
    total_ms         REAL,
    request_headers  TEXT NOT NULL DEFAULT '{}',
    response_headers TEXT,
    response_body    TEXT,               -- at most 4096 bytes
    response_truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, attempt_number);
CREATE INDEX attempts_started ON attempts(started_at);

-- CRM records Hookline keeps so each write can be compared with the last version (what changed).
CREATE TABLE entities (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    entity_type  TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1,
    data         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, id)
);
