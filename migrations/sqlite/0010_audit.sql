-- The audit log: who (user, and the key they used) did what (keys made and revoked, users
-- recorded or promoted, visibility changes, permanent deletes and purges) to what, when. An event is written
-- in the transaction of the change it records, so neither exists without the other. Events older
-- than audit.retention_seconds are removed hourly.
CREATE TABLE audit_event (
    id          TEXT PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    key_id      TEXT,
    action      TEXT NOT NULL,
    target_id   TEXT,
    folder_id   TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_event_by_time ON audit_event (at, id);
CREATE INDEX audit_event_by_folder ON audit_event (folder_id, at, id);
