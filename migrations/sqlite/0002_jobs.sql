-- Jobs: the record every client sees (the queue keeps its own tables), and folder schedules.

ALTER TABLE folder ADD COLUMN sync_schedule TEXT;
CREATE INDEX folder_sync_schedule ON folder (sync_schedule) WHERE sync_schedule IS NOT NULL;

CREATE TABLE job (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    folder_id         TEXT,
    params            TEXT NOT NULL DEFAULT '{}',
    units_pending     INTEGER NOT NULL DEFAULT 0,
    units_done        INTEGER NOT NULL DEFAULT 0,
    units_error       INTEGER NOT NULL DEFAULT 0,
    units_cancelled   INTEGER NOT NULL DEFAULT 0,
    result            TEXT,
    errors            TEXT NOT NULL DEFAULT '[]',
    message           TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    version           INTEGER NOT NULL DEFAULT 1,
    created_by        TEXT NOT NULL,
    idempotency_key   TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
-- The same key from the same user names the same job.
CREATE UNIQUE INDEX job_idempotency ON job (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- One sync per folder at a time: a second one while one is pending or running is refused here.
CREATE UNIQUE INDEX job_one_active_sync ON job (folder_id) WHERE kind = 'SYNC' AND status IN ('PENDING', 'RUNNING');
CREATE INDEX job_created ON job (created_at, id);
CREATE INDEX job_status ON job (status, created_at);
CREATE INDEX job_folder ON job (folder_id, created_at);
