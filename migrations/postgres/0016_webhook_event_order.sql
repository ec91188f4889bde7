-- The order webhooks read events in: `pos`, given once an event's transaction has committed (by
-- the deliverer, one process at a time, from its own sequence). `seq` is handed out when a row is
-- inserted, and transactions commit in another order: an event with a lower `seq` could commit
-- after a cursor had moved past it, and never be delivered.
ALTER TABLE webhook_event ADD COLUMN pos BIGINT;
UPDATE webhook_event SET pos = seq;
CREATE UNIQUE INDEX webhook_event_pos ON webhook_event (pos);
CREATE SEQUENCE webhook_event_pos_seq;
SELECT setval('webhook_event_pos_seq', COALESCE((SELECT MAX(seq) FROM webhook_event), 0) + 1, false);
CREATE INDEX webhook_event_unordered ON webhook_event (seq) WHERE pos IS NULL;
