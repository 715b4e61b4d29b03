-- The id a receiver deduplicates on: the first delivery of a chain of resends and replays. NULL
-- means "the delivery's own id" (every fresh delivery), so fan-out writes nothing new; a copy
-- stores its chain's first id. Reads take COALESCE(message_id, id).
ALTER TABLE deliveries ADD COLUMN message_id UUID;

-- Copies made before this migration: follow resent_from back to the first delivery still stored
-- (a chain whose first delivery is gone starts at its oldest remaining copy).
WITH RECURSIVE chain(id, root) AS (
    SELECT d.id, d.id FROM deliveries d
     WHERE d.resent_from IS NULL
        OR NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.id = d.resent_from)
    UNION ALL
    SELECT d.id, c.root FROM deliveries d JOIN chain c ON d.resent_from = c.id
)
UPDATE deliveries d SET message_id = c.root FROM chain c
 WHERE c.id = d.id AND d.resent_from IS NOT NULL;

-- Retention deletes terminal deliveries by age, a chunk at a time.
CREATE INDEX deliveries_finished ON deliveries(updated_at) WHERE status IN ('delivered', 'failed');

-- Retention deletes old events that have no deliveries left, a chunk at a time.
CREATE INDEX events_created ON events(created_at);
