-- Each folder keeps the count of items directly inside it (not trashed; tombstones included),
-- changed in the same transaction as the items by these triggers, so that reading a folder does
-- not count its items (a COUNT over a folder of a million items took tens of milliseconds on
-- every folder read, including the access check of every item listing). The usage recount
-- (POST /v1/usage/recount, and daily) checks the counts against the items.
--
-- The triggers run once per statement over its transition tables: one counter update per
-- folder a statement touched, not one per row (a row trigger would write a new version of the
-- folder's row for every item of a sync batch). Folders are locked in id order, so that two
-- statements changing the same folders cannot deadlock on them, and FOR NO KEY UPDATE, which
-- the share lock an item's foreign key check holds on its folder does not block (FOR UPDATE
-- would: two uploads into one folder deadlocked).
ALTER TABLE folder ADD COLUMN item_count BIGINT NOT NULL DEFAULT 0;
UPDATE folder SET item_count = (SELECT COUNT(*) FROM item i WHERE i.folder_id = folder.id AND i.trashed_at IS NULL);

-- Adds `change` to the count of each folder in `changes` (folder_id, change).
CREATE FUNCTION stowage_add_item_counts(changes JSONB) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM folder f
        WHERE f.id IN (SELECT c->>0 FROM jsonb_array_elements(changes) c)
        ORDER BY f.id FOR NO KEY UPDATE;
    UPDATE folder f SET item_count = f.item_count + (c->>1)::BIGINT
        FROM jsonb_array_elements(changes) c
        WHERE f.id = c->>0;
END $$;

CREATE FUNCTION stowage_item_count_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stowage_add_item_counts(COALESCE(jsonb_agg(jsonb_build_array(folder_id, n)), '[]'))
        FROM (SELECT folder_id, COUNT(*) AS n FROM inserted_items WHERE trashed_at IS NULL GROUP BY folder_id) c;
    RETURN NULL;
END $$;

CREATE FUNCTION stowage_item_count_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stowage_add_item_counts(COALESCE(jsonb_agg(jsonb_build_array(folder_id, -n)), '[]'))
        FROM (SELECT folder_id, COUNT(*) AS n FROM deleted_items WHERE trashed_at IS NULL GROUP BY folder_id) c;
    RETURN NULL;
END $$;

CREATE FUNCTION stowage_item_count_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stowage_add_item_counts(COALESCE(jsonb_agg(jsonb_build_array(folder_id, n)), '[]'))
        FROM (
            SELECT folder_id, SUM(n) AS n FROM (
                SELECT folder_id, -1 AS n FROM old_items WHERE trashed_at IS NULL
                UNION ALL
                SELECT folder_id, 1 AS n FROM new_items WHERE trashed_at IS NULL
            ) moves GROUP BY folder_id HAVING SUM(n) <> 0
        ) c;
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
