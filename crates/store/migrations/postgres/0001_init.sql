-- Hookline schema, version 1 (PostgreSQL). Mirrors migrations/sqlite/0001_init.sql.
-- JSON documents are stored as text so their key order survives (jsonb would reorder keys, and
-- receivers see bodies in the order the record was written).

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    default_user_id TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);

CREATE TABLE webhooks (
    id                          UUID PRIMARY KEY,
    tenant_id                   UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    url                         TEXT NOT NULL,
    events                      TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  TIMESTAMPTZ,
    enabled                     BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason             TEXT,
    format                      TEXT NOT NULL DEFAULT 'envelope',
    headers                     TEXT NOT NULL DEFAULT '{}',
    retry_schedule              TEXT,
    rate_limit                  INTEGER,
    ordering                    TEXT NOT NULL DEFAULT 'none',
    consecutive_failures        BIGINT NOT NULL DEFAULT 0,
    failing_since               TIMESTAMPTZ,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id, id);

CREATE TABLE events (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type   TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    source       TEXT,
    source_id    TEXT,
    actor_id     TEXT,
    entity_type  TEXT,
    entity_id    TEXT,
    data         TEXT NOT NULL,
    changes      TEXT,
    batch        TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, id);

CREATE TABLE idempotency_keys (
    tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE deliveries (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    webhook_id       UUID NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         UUID NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    lease_owner      UUID,
    lease_until      TIMESTAMPTZ,
    format           TEXT NOT NULL DEFAULT 'envelope', -- rendering fixed at fan-out
    item_index       BIGINT,
    ordering_key     TEXT,
    resent_from      UUID,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_due_webhook ON deliveries(webhook_id, next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_lease_owner ON deliveries(lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_ordering ON deliveries(webhook_id, ordering_key, id) WHERE ordering_key IS NOT NULL;

CREATE TABLE attempts (
    id                 UUID PRIMARY KEY,
    delivery_id        UUID NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    tenant_id          UUID NOT NULL,
    attempt_number     INTEGER NOT NULL,
    started_at         TIMESTAMPTZ NOT NULL,
    url                TEXT NOT NULL,
    status_code        INTEGER,
    error_kind         TEXT,
    error_message      TEXT,
    dns_ms             DOUBLE PRECISION,
    connect_ms         DOUBLE PRECISION,
    tls_ms             DOUBLE PRECISION,
    ttfb_ms            DOUBLE PRECISION,
    total_ms           DOUBLE PRECISION NOT NULL,
    request_headers    TEXT NOT NULL DEFAULT '[]',
    response_headers   TEXT,
    response_body      TEXT,
    response_truncated BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, attempt_number);
CREATE INDEX attempts_started ON attempts(started_at);

CREATE TABLE entities (
    tenant_id    UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    entity_type  TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 1,
    data         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, id)
);
CREATE INDEX entities_updated ON entities(tenant_id, entity_type, updated_at);
