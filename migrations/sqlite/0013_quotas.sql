-- Quotas and usage. A folder may carry a quota over its subtree (bytes and/or items); every
-- folder that does holds the live usage of its subtree next to it. Every user who owns folders
-- holds the live usage of their trees, and may carry a byte quota set by an admin. "Live" is an
-- item neither trashed nor a tombstone. Counters change in the transaction that changes the
-- items (store/usage.rs); a recount checks them.
CREATE TABLE folder_quota (
    folder_id   TEXT PRIMARY KEY REFERENCES folder (id),
    max_bytes   INTEGER CHECK (max_bytes >= 0),
    max_items   INTEGER CHECK (max_items >= 0),
    used_bytes  INTEGER NOT NULL DEFAULT 0,
    used_items  INTEGER NOT NULL DEFAULT 0,
    CHECK (max_bytes IS NOT NULL OR max_items IS NOT NULL)
);
CREATE TABLE user_usage (
    user_name   TEXT NOT NULL PRIMARY KEY,
    max_bytes   INTEGER CHECK (max_bytes >= 0),
    used_bytes  INTEGER NOT NULL DEFAULT 0,
    used_items  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO user_usage (user_name, used_bytes, used_items)
SELECT f.owner, COALESCE(SUM(i.size), 0), COUNT(i.id)
FROM folder f JOIN item i ON i.folder_id = f.id
WHERE f.trashed_at IS NULL AND i.trashed_at IS NULL AND i.is_tombstone = 0
GROUP BY f.owner;
