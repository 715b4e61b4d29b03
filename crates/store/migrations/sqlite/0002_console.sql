-- Hookline schema, version 2 (SQLite): browser sessions of the console and the embedded portal,
-- portal grants, per-hour delivery statistics, and when each webhook was last attempted.

ALTER TABLE webhooks ADD COLUMN last_attempt_at TEXT;

-- What a CRM grants one of its customers through an embedded portal. The one-time code in the
-- portal URL is kept only as its SHA-256, and cleared once redeemed.
CREATE TABLE portal_grants (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    webhook_ids   TEXT,                   -- JSON array of webhook ids; NULL = all of the tenant's
    capabilities  TEXT NOT NULL,          -- JSON array: view, manage, reveal_secret, resend
    code_hash     TEXT,                   -- NULL once redeemed
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX portal_grants_tenant ON portal_grants(tenant_id);
CREATE UNIQUE INDEX portal_grants_code ON portal_grants(code_hash) WHERE code_hash IS NOT NULL;

-- Signed-in browsers: the console (from an API key) or a portal (from a grant). Only the SHA-256 of
-- the cookie's token is kept. Revoking a grant deletes its sessions.
CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_id        TEXT,                   -- console sessions: the API key signed in with
    grant_id      TEXT REFERENCES portal_grants(id) ON DELETE CASCADE, -- portal sessions
    csrf          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX console_sessions_grant ON console_sessions(grant_id) WHERE grant_id IS NOT NULL;

-- Attempts per webhook and hour (UTC, truncated): delivered and failed counts and the attempts per
-- latency bucket (hookline_core::stats::LATENCY_BUCKETS_MS; latency_15 is the open bucket). Written
-- in the transaction that records the attempts; upserts add to the counts.
CREATE TABLE webhook_hours (
    webhook_id  TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    hour        TEXT NOT NULL,
    delivered   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    latency_0  INTEGER NOT NULL DEFAULT 0,
    latency_1  INTEGER NOT NULL DEFAULT 0,
    latency_2  INTEGER NOT NULL DEFAULT 0,
    latency_3  INTEGER NOT NULL DEFAULT 0,
    latency_4  INTEGER NOT NULL DEFAULT 0,
    latency_5  INTEGER NOT NULL DEFAULT 0,
    latency_6  INTEGER NOT NULL DEFAULT 0,
    latency_7  INTEGER NOT NULL DEFAULT 0,
    latency_8  INTEGER NOT NULL DEFAULT 0,
    latency_9  INTEGER NOT NULL DEFAULT 0,
    latency_10 INTEGER NOT NULL DEFAULT 0,
    latency_11 INTEGER NOT NULL DEFAULT 0,
    latency_12 INTEGER NOT NULL DEFAULT 0,
    latency_13 INTEGER NOT NULL DEFAULT 0,
    latency_14 INTEGER NOT NULL DEFAULT 0,
    latency_15 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, hour)
);
CREATE INDEX webhook_hours_hour ON webhook_hours(hour);
