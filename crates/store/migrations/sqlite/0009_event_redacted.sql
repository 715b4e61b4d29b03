-- log_redact: the values an event's redacted fields held, sealed, kept only while a delivery
-- of it may still be sent (see store/src/redacted.rs).
ALTER TABLE events ADD COLUMN redacted TEXT;

-- Bumped when the stored event is rewritten (an erasure taking an object out of a batch): a node
-- that keeps the event from an earlier claim must read it again (see ClaimRequest::known_events).
ALTER TABLE events ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
