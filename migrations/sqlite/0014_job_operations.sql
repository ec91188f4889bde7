-- A retry is a new job naming the one it retries; a job is retried at most once (a second
-- request answers the first retry).
ALTER TABLE job ADD COLUMN retry_of TEXT;
CREATE UNIQUE INDEX job_retry_of ON job (retry_of) WHERE retry_of IS NOT NULL;

-- Job kinds an admin paused: no worker starts a job of a paused kind until it is resumed.
CREATE TABLE job_kind_pause (
    kind TEXT PRIMARY KEY,
    paused_at BIGINT NOT NULL,
    paused_by TEXT NOT NULL
);
