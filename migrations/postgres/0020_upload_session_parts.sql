-- A direct upload of a large file into a cloud managed bucket goes in parts: the store's
-- multipart upload id (empty on Azure, whose blocks need none) and the bytes of each part but
-- the last. Both NULL for a session that takes its file in one PUT.
ALTER TABLE upload_session ADD COLUMN upload_id TEXT;
ALTER TABLE upload_session ADD COLUMN part_bytes BIGINT;
