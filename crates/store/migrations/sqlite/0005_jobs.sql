-- Durable background jobs (replays): processed in short chunks by whichever node holds the job's
-- lease, so a big replay never holds the writer for long, survives a restart, and can be cancelled.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,               -- replay
    status       TEXT NOT NULL,               -- queued | running | succeeded | failed | cancelled
    params       TEXT NOT NULL,               -- JSON, by kind
    total        INTEGER,                     -- items the job expects to process, when known
    done         INTEGER NOT NULL DEFAULT 0,  -- items processed
    cursor       TEXT,                        -- replay: the last original copied (next starts after)
    position     INTEGER NOT NULL DEFAULT 0,  -- import: the next item to process
    result       TEXT,                        -- JSON: what the job found (import: counts, errors)
    error        TEXT,
    lease_owner  TEXT,
    lease_until  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_tenant ON jobs(tenant_id, id);
CREATE INDEX jobs_open ON jobs(id) WHERE status IN ('queued', 'running');

-- A job's input, one row per item (an import's contacts), read a step at a time.
CREATE TABLE job_items (
    job_id    TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    item      TEXT NOT NULL,                 -- JSON
    PRIMARY KEY (job_id, position)
);
