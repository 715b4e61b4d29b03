-- Durable background jobs (replays): processed in short chunks by whichever node holds the job's
-- lease, so a big replay never holds a transaction for long, survives a restart, and can be
-- cancelled.
CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    params       JSONB NOT NULL,
    total        BIGINT,
    done         BIGINT NOT NULL DEFAULT 0,
    cursor       UUID,
    position     BIGINT NOT NULL DEFAULT 0,
    result       JSONB,
    error        TEXT,
    lease_owner  UUID,
    lease_until  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX jobs_tenant ON jobs(tenant_id, id);
CREATE INDEX jobs_open ON jobs(id) WHERE status IN ('queued', 'running');

-- A job's input, one row per item (an import's contacts), read a step at a time.
CREATE TABLE job_items (
    job_id    UUID NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    item      JSONB NOT NULL,
    PRIMARY KEY (job_id, position)
);
