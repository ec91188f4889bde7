-- Users and the lifecycle of their API keys.
--
-- Users become records: a key belongs to a user. Every name that had a key, or owns a folder,
-- becomes a user, an admin when any of its keys was. A key's own is_admin stays as its cap: a
-- request has admin rights when its user is an admin and its key may use them, so a name's
-- non-admin keys stay non-admin.
CREATE TABLE app_user (
    name        TEXT PRIMARY KEY,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
INSERT INTO app_user (name, is_admin, created_at)
    SELECT name, MAX(is_admin), MIN(created_at) FROM api_key GROUP BY name;
INSERT INTO app_user (name, is_admin, created_at)
    SELECT owner, 0, MIN(created_at) FROM folder
    WHERE owner NOT IN (SELECT name FROM app_user)
    GROUP BY owner;

-- A key's label, what it may do (read: only reads; write: all its user may do), the first
-- characters of its secret (to tell keys apart; empty for keys made before), when it stops
-- working, when it was last used (kept to the minute) and when it was revoked.
ALTER TABLE api_key ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE api_key ADD COLUMN scope TEXT NOT NULL DEFAULT 'write';
ALTER TABLE api_key ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_key ADD COLUMN expires_at INTEGER;
ALTER TABLE api_key ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_key ADD COLUMN revoked_at INTEGER;
CREATE INDEX api_key_by_user ON api_key (name, created_at);
