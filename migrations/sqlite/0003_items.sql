-- Items: media metadata, the case-folded title for search, one index behind every list order,
-- and unique titles per folder.
--
-- Conflict strategies under concurrency rest on the unique index item_folder_title_unique:
-- an upload inserts with `ON CONFLICT (folder_id, title) DO NOTHING` and, when nothing was
-- inserted, applies its strategy (409, the existing item, the next free `name (N).ext`, or an
-- in-place replace) and retries. The database arbitrates, so two concurrent uploads of one title
-- can never both win, on SQLite (one writer at a time) and PostgreSQL (the second insert waits for
-- the first to commit, then sees the conflict) alike, without a lock that would serialize every
-- upload of the whole catalog. Later changes (trash, synced folders unique by object key) may
-- narrow it to a partial index.

ALTER TABLE item ADD COLUMN title_folded TEXT NOT NULL DEFAULT '';
-- Pixels, images and video.
ALTER TABLE item ADD COLUMN width INTEGER;
ALTER TABLE item ADD COLUMN height INTEGER;
-- Microseconds, audio and video.
ALTER TABLE item ADD COLUMN duration_us INTEGER;
-- Frames per second as ffprobe gives it, a rational such as `30000/1001`.
ALTER TABLE item ADD COLUMN frame_rate TEXT;
ALTER TABLE item ADD COLUMN codec TEXT;
ALTER TABLE item ADD COLUMN sample_rate INTEGER;
ALTER TABLE item ADD COLUMN channels INTEGER;
ALTER TABLE item ADD COLUMN page_count INTEGER;
-- NIfTI dimensions, a JSON array of sizes.
ALTER TABLE item ADD COLUMN dimensions TEXT;

UPDATE item SET title_folded = lower(title);

CREATE UNIQUE INDEX item_folder_title_unique ON item (folder_id, title);
CREATE INDEX item_folder_created ON item (folder_id, created_at, id);
CREATE INDEX item_folder_size ON item (folder_id, size, id);
-- The orphan sweep asks which object keys of a bucket have a row.
CREATE INDEX item_bucket_key ON item (bucket, object_key);
