-- Each folder keeps the count of items directly inside it (not trashed; tombstones included),
-- so that reading a folder does not count its items (a COUNT over a folder of a million items
-- took tens of milliseconds on every folder read, including the access check of every item
-- listing).
--
-- Triggers on `item` record each statement's changes as rows of `folder_item_count_change`
-- (one per folder the statement changed), in the statement's transaction. They never update
-- the folder's row: that would hold its lock from the item write to the commit, and writers that
-- lock items first and the folder second (a folder PATCH that sets its items' expiry, a move)
-- deadlock with writers that go the other way (an import that inserts, then updates an item
-- they hold): reproduced with two psql sessions before this design. A folder's count is
-- `item_count` plus its pending changes; a background round folds the changes into
-- `item_count` (store::folders::fold_item_counts), and the usage recount checks the sums.
ALTER TABLE folder ADD COLUMN item_count BIGINT NOT NULL DEFAULT 0;
CREATE TABLE folder_item_count_change (
    folder_id TEXT NOT NULL,
    change    BIGINT NOT NULL
);
CREATE INDEX folder_item_count_change_folder ON folder_item_count_change (folder_id);

-- No item changes between the count and the triggers.
LOCK TABLE item IN SHARE ROW EXCLUSIVE MODE;
UPDATE folder SET item_count = (SELECT COUNT(*) FROM item i WHERE i.folder_id = folder.id AND i.trashed_at IS NULL);

CREATE FUNCTION stowage_item_count_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO folder_item_count_change (folder_id, change)
        SELECT folder_id, COUNT(*) FROM inserted_items WHERE trashed_at IS NULL GROUP BY folder_id;
    RETURN NULL;
END $$;

CREATE FUNCTION stowage_item_count_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO folder_item_count_change (folder_id, change)
        SELECT folder_id, -COUNT(*) FROM deleted_items WHERE trashed_at IS NULL GROUP BY folder_id;
    RETURN NULL;
END $$;

CREATE FUNCTION stowage_item_count_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO folder_item_count_change (folder_id, change)
        SELECT folder_id, SUM(n) FROM (
            SELECT folder_id, -1 AS n FROM old_items WHERE trashed_at IS NULL
            UNION ALL
            SELECT folder_id, 1 AS n FROM new_items WHERE trashed_at IS NULL
        ) moves GROUP BY folder_id HAVING SUM(n) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER item_count_on_insert AFTER INSERT ON item
    REFERENCING NEW TABLE AS inserted_items
    FOR EACH STATEMENT EXECUTE FUNCTION stowage_item_count_on_insert();
CREATE TRIGGER item_count_on_delete AFTER DELETE ON item
    REFERENCING OLD TABLE AS deleted_items
    FOR EACH STATEMENT EXECUTE FUNCTION stowage_item_count_on_delete();
CREATE TRIGGER item_count_on_update AFTER UPDATE ON item
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION stowage_item_count_on_update();
