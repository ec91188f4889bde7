-- The order webhooks read events in: `pos`, given once an event's transaction has committed (by
-- the deliverer, one process at a time), so an event that commits late cannot land behind a
-- cursor that already moved past it. On SQLite writers take turns, so commit order is `seq`
-- order and `pos` copies it; the column keeps one code path for both databases.
ALTER TABLE webhook_event ADD COLUMN pos BIGINT;
UPDATE webhook_event SET pos = seq;
CREATE UNIQUE INDEX webhook_event_pos ON webhook_event (pos);
CREATE INDEX webhook_event_unordered ON webhook_event (seq) WHERE pos IS NULL;
