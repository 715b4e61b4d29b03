-- API keys with a lifecycle: a scope (`full` may do everything, `read` only reads), an optional
-- expiry, and when the key last authenticated a request (written at most once a minute per key and
-- node, so the request path gains no write per call). Existing keys keep full access and no expiry.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full' CHECK (scope IN ('full', 'read'));
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at TEXT;

-- A tenant's keys, newest first (the listing and the last-full-key check).
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);
-- The browser sessions signed in with a key (ended when it is revoked).
CREATE INDEX console_sessions_key ON console_sessions(key_id) WHERE key_id IS NOT NULL;
