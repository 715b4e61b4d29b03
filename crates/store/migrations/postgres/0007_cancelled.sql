-- Terminal status `cancelled` and why (`webhook_deleted`, `webhook_disabled`, `endpoint_gone`,
-- `manual`); NULL on every other status.
ALTER TABLE deliveries ADD COLUMN cancel_reason TEXT;

-- A deleted webhook is kept (disabled, hidden from every webhook read) so its log stays readable
-- until retention; NULL while it exists.
ALTER TABLE webhooks ADD COLUMN deleted_at TIMESTAMPTZ;

-- Queued deliveries of webhooks already disabled would otherwise wait forever: they end now,
-- as a disable does from this version on.
UPDATE deliveries
   SET status = 'cancelled',
       next_attempt_at = NULL,
       cancel_reason = CASE WHEN (SELECT w.disabled_reason FROM webhooks w WHERE w.id = deliveries.webhook_id)
                                 = 'endpoint_gone' THEN 'endpoint_gone' ELSE 'webhook_disabled' END
 WHERE status IN ('pending', 'retrying')
   AND webhook_id IN (SELECT id FROM webhooks WHERE NOT enabled);

-- Retention deletes terminal deliveries by age; cancelled is terminal too.
DROP INDEX deliveries_finished;
CREATE INDEX deliveries_finished ON deliveries(updated_at) WHERE status IN ('delivered', 'failed', 'cancelled');
