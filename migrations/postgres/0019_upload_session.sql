-- Uploads that go straight into the managed bucket: a client PUTs the file to a signed URL,
-- then completes the session, which makes the item. A session names the object its file goes
-- to; the orphan sweep leaves that object alone while the session is open, and the expired
-- sessions are removed with their objects.
CREATE TABLE upload_session (
    id TEXT PRIMARY KEY,
    folder_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    title TEXT NOT NULL,
    size BIGINT NOT NULL,
    conflict_strategy TEXT NOT NULL,
    client_metadata TEXT,
    object_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX upload_session_expires ON upload_session (expires_at);
