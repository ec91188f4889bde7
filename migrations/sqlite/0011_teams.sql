-- Teams: groups of users; roles granted on folders (with their subtrees) to users and groups;
-- configured buckets granted to users and groups under a key prefix; and what each user starred.
--
-- A grant names its principal by kind (`user` or `group`) and name (the user name, or the
-- group's id).
CREATE TABLE user_group (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE group_member (
    group_id    TEXT NOT NULL REFERENCES user_group (id),
    user_name   TEXT NOT NULL REFERENCES app_user (name),
    is_manager  INTEGER NOT NULL DEFAULT 0,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_name)
);
CREATE INDEX group_member_by_user ON group_member (user_name, group_id);
CREATE TABLE folder_grant (
    folder_id       TEXT NOT NULL REFERENCES folder (id),
    principal_kind  TEXT NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal       TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'manager')),
    granted_by      TEXT NOT NULL,
    granted_at      INTEGER NOT NULL,
    PRIMARY KEY (folder_id, principal_kind, principal)
);
CREATE INDEX folder_grant_by_principal ON folder_grant (principal_kind, principal);
CREATE TABLE bucket_grant (
    bucket          TEXT NOT NULL,
    principal_kind  TEXT NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal       TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    granted_by      TEXT NOT NULL,
    granted_at      INTEGER NOT NULL,
    PRIMARY KEY (bucket, principal_kind, principal, prefix)
);
CREATE INDEX bucket_grant_by_principal ON bucket_grant (principal_kind, principal);

-- One owner per tree: a folder belongs to the owner of its top-level folder (who is a manager
-- of all of it). Folders an admin made inside someone's tree join that tree.
UPDATE folder SET owner = (
    SELECT t.owner FROM folder t
    WHERE t.path = substr(folder.path, 1, instr(substr(folder.path, 2), '/'))
)
WHERE trashed_at IS NULL AND parent_id IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM folder t
    WHERE t.path = substr(folder.path, 1, instr(substr(folder.path, 2), '/'))
  );

-- Stars: what each user marked (a folder or an item), for the starred view and `starred` in
-- answers. Rows of deleted things are left out by joins with the live rows.
CREATE TABLE star (
    user_name    TEXT NOT NULL,
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('folder', 'item')),
    target_id    TEXT NOT NULL,
    starred_at   INTEGER NOT NULL,
    PRIMARY KEY (user_name, target_kind, target_id)
);
