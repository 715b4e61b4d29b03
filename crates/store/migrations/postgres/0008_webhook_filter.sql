-- A webhook's payload filter (`hookline_core::filter`), as the user wrote it; NULL = every event
-- it subscribes to. Parsed when fan-out reads the subscribers, so no parsed form is stored.
ALTER TABLE webhooks ADD COLUMN filter TEXT;
