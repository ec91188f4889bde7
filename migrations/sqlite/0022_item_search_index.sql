-- Indexes for the list filters that few items pass, so that a list with them reads the items that
-- pass instead of the whole subtree (issue 20: at 10,000,000 items `search=0999`, which matched
-- nothing, took 2.6 s and `is_tombstone=true` 2.1 s).
--
-- A substring of the title: an FTS5 table with the trigram tokenizer over `title_folded`, its
-- rows keyed by the item's rowid and its text read from `item` (external content), kept in step
-- by the triggers below in the same transaction as the item. A search of three characters or
-- more asks it for the rowids whose title holds the search as a phrase of trigrams, which is the
-- substring (store::item_pages); shorter ones scan as before.
CREATE VIRTUAL TABLE item_title_search USING fts5(
    title_folded,
    content = 'item',
    content_rowid = 'rowid',
    tokenize = 'trigram',
    -- No per-row token counts (for ranking, unused): one write less per item.
    columnsize = 0
);
INSERT INTO item_title_search (item_title_search) VALUES ('rebuild');

CREATE TRIGGER item_title_search_on_insert AFTER INSERT ON item
BEGIN
    INSERT INTO item_title_search (rowid, title_folded) VALUES (NEW.rowid, NEW.title_folded);
END;

CREATE TRIGGER item_title_search_on_delete AFTER DELETE ON item
BEGIN
    INSERT INTO item_title_search (item_title_search, rowid, title_folded) VALUES ('delete', OLD.rowid, OLD.title_folded);
END;

CREATE TRIGGER item_title_search_on_update AFTER UPDATE OF title_folded ON item
WHEN OLD.title_folded IS NOT NEW.title_folded
BEGIN
    INSERT INTO item_title_search (item_title_search, rowid, title_folded) VALUES ('delete', OLD.rowid, OLD.title_folded);
    INSERT INTO item_title_search (rowid, title_folded) VALUES (NEW.rowid, NEW.title_folded);
END;

-- Tombstones: the live tombstones of each folder, by title.
CREATE INDEX item_folder_tombstones ON item (folder_id, title, id) WHERE is_tombstone = 1 AND trashed_at IS NULL;
