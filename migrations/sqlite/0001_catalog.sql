-- The catalog: API keys, folders and items. Ids are UUID text, times are microseconds since
-- the Unix epoch, JSON is text, flags are 0/1 integers (the types SQLite and PostgreSQL share).

CREATE TABLE api_key (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE folder (
    id               TEXT PRIMARY KEY,
    parent_id        TEXT REFERENCES folder (id),
    name             TEXT NOT NULL,
    -- The name lowercased by the server (Unicode-aware), for case-insensitive search.
    name_folded      TEXT NOT NULL,
    path             TEXT NOT NULL UNIQUE,
    description      TEXT NOT NULL DEFAULT '',
    client_metadata  TEXT NOT NULL DEFAULT '{}',
    owner            TEXT NOT NULL,
    visibility       TEXT NOT NULL DEFAULT 'private',
    ttl_seconds      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX folder_parent_name ON folder (parent_id, name, id);
CREATE INDEX folder_parent_created ON folder (parent_id, created_at, id);
CREATE INDEX folder_name ON folder (name, id);
CREATE INDEX folder_created ON folder (created_at, id);

CREATE TABLE item (
    id               TEXT PRIMARY KEY,
    folder_id        TEXT NOT NULL REFERENCES folder (id),
    title            TEXT NOT NULL,
    bucket           TEXT NOT NULL,
    object_key       TEXT NOT NULL,
    item_type        TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    size             INTEGER NOT NULL,
    checksum         TEXT,
    is_tombstone     INTEGER NOT NULL DEFAULT 0,
    client_metadata  TEXT NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX item_folder_title ON item (folder_id, title, id);
