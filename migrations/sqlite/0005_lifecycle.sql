-- The item lifecycle: the trash (with restore and purge), TTL expiry, and re-encoded renditions
-- of videos.
--
-- Trash. Deleting a folder or item marks it instead of removing it: `trashed_at` is set on it and
-- on everything live inside it, `trash_unit` names what the user deleted (the folder or item
-- itself; rows a folder carried into the trash name that folder), and `purge_at` is when the
-- expiry sweep removes the unit for good. Trashed rows vanish from every list, lookup and count.
--
-- Folder paths stay unique over all rows, trashed ones included, so the UNIQUE constraint on
-- `path` stays as it is: trashing rewrites the paths of the trashed subtree to
-- `UNIT:/original/path`. No live path (they all start with `/`) can equal one, no live subtree
-- range (`/a/` up to `/a0`) covers one, and each trash unit has its own prefix, so a folder
-- trashed twice at the same path never clashes with itself. Restoring rewrites the prefix back
-- (below the folder's parent as it is now, or below another one); a live folder that took the
-- path meanwhile makes the restore a conflict.
--
-- Titles stay unique per folder among live items only: the unique index becomes partial, so a
-- trashed item does not block a new upload with its title (restoring it then is a conflict).
-- Inserts name the index with `ON CONFLICT (folder_id, title) WHERE trashed_at IS NULL`.

ALTER TABLE folder ADD COLUMN trashed_at INTEGER;
ALTER TABLE folder ADD COLUMN trash_unit TEXT;
ALTER TABLE folder ADD COLUMN purge_at INTEGER;
-- The folder and its whole subtree expire at this time.
ALTER TABLE folder ADD COLUMN expires_at INTEGER;

ALTER TABLE item ADD COLUMN trashed_at INTEGER;
ALTER TABLE item ADD COLUMN trash_unit TEXT;
ALTER TABLE item ADD COLUMN purge_at INTEGER;
-- When the item expires: created_at + its folder's ttl_seconds, or its own time when
-- expires_own = 1 (set on the item itself; changes of the folder's TTL leave it alone).
ALTER TABLE item ADD COLUMN expires_at INTEGER;
ALTER TABLE item ADD COLUMN expires_own INTEGER NOT NULL DEFAULT 0;
-- Re-encode: the browser-playable rendition in the managed bucket and what ffprobe read from it
-- (media as a JSON object); the source object (bucket, object_key, size, checksum) is untouched.
ALTER TABLE item ADD COLUMN encoded_key TEXT;
ALTER TABLE item ADD COLUMN encoded_size INTEGER;
ALTER TABLE item ADD COLUMN encoded_checksum TEXT;
ALTER TABLE item ADD COLUMN encoded_mime_type TEXT;
ALTER TABLE item ADD COLUMN encoded_media TEXT;
ALTER TABLE item ADD COLUMN encoded_at INTEGER;

UPDATE item SET expires_at = created_at + (SELECT f.ttl_seconds FROM folder f WHERE f.id = item.folder_id) * 1000000
WHERE folder_id IN (SELECT id FROM folder WHERE ttl_seconds IS NOT NULL);

DROP INDEX item_folder_title_unique;
CREATE UNIQUE INDEX item_folder_title_unique ON item (folder_id, title) WHERE trashed_at IS NULL;
-- The sweep's questions: what expired, which trash units are due, what a unit holds.
CREATE INDEX item_expires ON item (expires_at) WHERE expires_at IS NOT NULL AND trashed_at IS NULL;
CREATE INDEX folder_expires ON folder (expires_at) WHERE expires_at IS NOT NULL AND trashed_at IS NULL;
CREATE INDEX item_purge ON item (purge_at) WHERE purge_at IS NOT NULL;
CREATE INDEX folder_purge ON folder (purge_at) WHERE purge_at IS NOT NULL;
CREATE INDEX item_trash_unit ON item (trash_unit) WHERE trash_unit IS NOT NULL;
CREATE INDEX folder_trash_unit ON folder (trash_unit) WHERE trash_unit IS NOT NULL;
-- The trash list, newest first.
CREATE INDEX item_trashed ON item (trashed_at, id) WHERE trashed_at IS NOT NULL;
CREATE INDEX folder_trashed ON folder (trashed_at, id) WHERE trashed_at IS NOT NULL;
-- The orphan sweep asks which managed keys a rendition holds.
CREATE INDEX item_encoded_key ON item (encoded_key) WHERE encoded_key IS NOT NULL;
