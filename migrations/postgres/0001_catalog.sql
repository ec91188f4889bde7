-- The catalog: API keys, folders and items. Ids are UUID text, times are microseconds since
-- the Unix epoch, JSON is text, flags are 0/1 integers (the types SQLite and PostgreSQL share).
-- Names and paths sort by bytes (COLLATE "C"), as in SQLite, so keyset pages and path-prefix
-- ranges behave the same on both.

CREATE TABLE api_key (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    is_admin    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE folder (
    id               TEXT PRIMARY KEY,
    parent_id        TEXT REFERENCES folder (id),
    name             TEXT COLLATE "C" NOT NULL,
    -- The name lowercased by the server (Unicode-aware), for case-insensitive search.
    name_folded      TEXT NOT NULL,
    path             TEXT COLLATE "C" NOT NULL UNIQUE,
    description      TEXT NOT NULL DEFAULT '',
    client_metadata  TEXT NOT NULL DEFAULT '{}',
    owner            TEXT NOT NULL,
    visibility       TEXT NOT NULL DEFAULT 'private',
    ttl_seconds      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX folder_parent_name ON folder (parent_id, name, id);
CREATE INDEX folder_parent_created ON folder (parent_id, created_at, id);
CREATE INDEX folder_name ON folder (name, id);
CREATE INDEX folder_created ON folder (created_at, id);

CREATE TABLE item (
    id               TEXT PRIMARY KEY,
    folder_id        TEXT NOT NULL REFERENCES folder (id),
    title            TEXT COLLATE "C" NOT NULL,
    bucket           TEXT NOT NULL,
    object_key       TEXT COLLATE "C" NOT NULL,
    item_type        TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    size             BIGINT NOT NULL,
    checksum         TEXT,
    is_tombstone     BIGINT NOT NULL DEFAULT 0,
    client_metadata  TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX item_folder_title ON item (folder_id, title, id);
