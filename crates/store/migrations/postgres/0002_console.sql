-- Hookline schema, version 2 (PostgreSQL). Mirrors migrations/sqlite/0002_console.sql.

ALTER TABLE webhooks ADD COLUMN last_attempt_at TIMESTAMPTZ;

CREATE TABLE portal_grants (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    webhook_ids   TEXT,
    capabilities  TEXT NOT NULL,
    code_hash     TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX portal_grants_tenant ON portal_grants(tenant_id);
CREATE UNIQUE INDEX portal_grants_code ON portal_grants(code_hash) WHERE code_hash IS NOT NULL;

CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_id        UUID,
    grant_id      UUID REFERENCES portal_grants(id) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_grant ON console_sessions(grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE webhook_hours (
    webhook_id  UUID NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    hour        TIMESTAMPTZ NOT NULL,
    delivered   BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    latency_0  BIGINT NOT NULL DEFAULT 0,
    latency_1  BIGINT NOT NULL DEFAULT 0,
    latency_2  BIGINT NOT NULL DEFAULT 0,
    latency_3  BIGINT NOT NULL DEFAULT 0,
    latency_4  BIGINT NOT NULL DEFAULT 0,
    latency_5  BIGINT NOT NULL DEFAULT 0,
    latency_6  BIGINT NOT NULL DEFAULT 0,
    latency_7  BIGINT NOT NULL DEFAULT 0,
    latency_8  BIGINT NOT NULL DEFAULT 0,
    latency_9  BIGINT NOT NULL DEFAULT 0,
    latency_10 BIGINT NOT NULL DEFAULT 0,
    latency_11 BIGINT NOT NULL DEFAULT 0,
    latency_12 BIGINT NOT NULL DEFAULT 0,
    latency_13 BIGINT NOT NULL DEFAULT 0,
    latency_14 BIGINT NOT NULL DEFAULT 0,
    latency_15 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, hour)
);
CREATE INDEX webhook_hours_hour ON webhook_hours(hour);
