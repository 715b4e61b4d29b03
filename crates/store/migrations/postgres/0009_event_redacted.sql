-- log_redact: the values an event's redacted fields held, sealed, kept only while a delivery
-- of it may still be sent (see store/src/redacted.rs).
ALTER TABLE events ADD COLUMN redacted TEXT;
