-- Finished jobs are removed once past `jobs.retention_seconds`: found by when they finished.
CREATE INDEX job_finished ON job (finished_at) WHERE finished_at IS NOT NULL;
