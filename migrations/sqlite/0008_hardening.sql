-- Hardening: bounded TTLs, and schedules that pause themselves after failing runs.
--
-- ttl_seconds is bounded to 100 years (3,153,600,000 s) on every path now; earlier versions let
-- PATCH store larger ones, whose expiry (created_at + ttl * 10^6) overflowed into a REAL that no
-- later read could decode. Clamp both.
UPDATE folder SET ttl_seconds = 3153600000 WHERE ttl_seconds > 3153600000;
UPDATE item SET expires_at = created_at + 3153600000000000 WHERE typeof(expires_at) = 'real';

-- Syncs of the folder that ended in ERROR in a row; at sync.pause_schedule_after_failures the
-- schedule pauses (schedule_paused_at, why in schedule_paused_reason) until the schedule is set
-- again or a sync succeeds.
ALTER TABLE folder ADD COLUMN sync_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE folder ADD COLUMN schedule_paused_at INTEGER;
ALTER TABLE folder ADD COLUMN schedule_paused_reason TEXT;
