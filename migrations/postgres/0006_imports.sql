-- Imports: register objects already in configured buckets from a JSON spec, without copying them.
--
-- A submitted spec is split into units (one object, or the ordered frames of an image group or
-- DICOM series), each a row of import_unit keyed by (job, position) and holding the unit as
-- validated JSON. The IMPORT job works through the pending rows in position order; each batch
-- inserts its items and marks its units done (with the item id) or failed (with the error and
-- what to do about it) in one transaction. A job killed at any point resumes with the units
-- still pending, so no unit ever creates two items, and the rows stay as the record of what
-- each unit became.
--
-- Image groups, image sequences and DICOM series are one item over several objects: their
-- frames, in order, are a JSON array in item.frames; bucket and object_key name the first frame.

ALTER TABLE item ADD COLUMN frames TEXT;

CREATE TABLE import_unit (
    job_id    TEXT NOT NULL,
    position  BIGINT NOT NULL,
    -- The unit as validated (domain::import::Unit as JSON).
    spec      TEXT NOT NULL,
    -- 0 pending, 1 created, 2 skipped (already imported), 3 metadata updated, 4 failed.
    state     BIGINT NOT NULL DEFAULT 0,
    item_id   TEXT,
    title     TEXT,
    error     TEXT,
    action    TEXT,
    PRIMARY KEY (job_id, position)
);
-- skip_duplicate_urls asks whether a folder already holds an item of an object.
CREATE INDEX item_folder_object ON item (folder_id, object_key) WHERE trashed_at IS NULL;
