-- Each folder keeps the count of items directly inside it (not trashed; tombstones included),
-- changed in the same transaction as the items by these triggers, so that reading a folder does
-- not count its items (a COUNT over a folder of a million items took tens of milliseconds on
-- every folder read, including the access check of every item listing). The usage recount
-- (POST /v1/usage/recount, and daily) checks the counts against the items.
ALTER TABLE folder ADD COLUMN item_count INTEGER NOT NULL DEFAULT 0;
UPDATE folder SET item_count = (SELECT COUNT(*) FROM item i WHERE i.folder_id = folder.id AND i.trashed_at IS NULL);

CREATE TRIGGER item_count_on_insert AFTER INSERT ON item WHEN NEW.trashed_at IS NULL
BEGIN
    UPDATE folder SET item_count = item_count + 1 WHERE id = NEW.folder_id;
END;

CREATE TRIGGER item_count_on_delete AFTER DELETE ON item WHEN OLD.trashed_at IS NULL
BEGIN
    UPDATE folder SET item_count = item_count - 1 WHERE id = OLD.folder_id;
END;

CREATE TRIGGER item_count_on_update AFTER UPDATE OF folder_id, trashed_at ON item
WHEN OLD.folder_id IS NOT NEW.folder_id OR (OLD.trashed_at IS NULL) IS NOT (NEW.trashed_at IS NULL)
BEGIN
    UPDATE folder SET item_count = item_count - 1 WHERE id = OLD.folder_id AND OLD.trashed_at IS NULL;
    UPDATE folder SET item_count = item_count + 1 WHERE id = NEW.folder_id AND NEW.trashed_at IS NULL;
END;
