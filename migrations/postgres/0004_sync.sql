-- Synced folders: a folder bound to a bucket prefix mirrors every object under it. Its items
-- (in it and in the subfolders that mirror the keys' layout) carry the synced root and the
-- fingerprint seen at the last sync, and are unique by object key per synced root, so a sync
-- that is killed and run again can never create an item twice.

ALTER TABLE folder ADD COLUMN sync_bucket TEXT;
ALTER TABLE folder ADD COLUMN sync_prefix TEXT;
ALTER TABLE item ADD COLUMN sync_root_id TEXT;
ALTER TABLE item ADD COLUMN fingerprint TEXT;
CREATE UNIQUE INDEX item_sync_key ON item (sync_root_id, object_key) WHERE sync_root_id IS NOT NULL;
