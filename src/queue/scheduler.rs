//! The scheduler: turns cron schedules into jobs (each folder's `sync_schedule`, and the TTL
//! sweep's `expiry.schedule`). Every process with workers runs it; each fire time is submitted
//! with a deterministic idempotency key, so with any number of processes every scheduled run is
//! recorded exactly once. Fire times missed while no process was running are not replayed: the
//! next one runs as usual.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::background::{self, FirstRound, Periodic};
use crate::domain::job::JobKind;
use crate::domain::schedule::CronSchedule;
use crate::services::jobs::{JobService, SCHEDULER, Submission};
use crate::store::{Store, folders};

/// How often schedules are evaluated.
const TICK: Duration = Duration::from_secs(1);

/// Submits a SYNC job for every fire time of every folder's `sync_schedule`, and an EXPIRY job
/// for every fire time of `expiry`, until shutdown.
pub async fn run(store: Store, jobs: JobService, expiry: Option<CronSchedule>, shutdown: CancellationToken) {
    let scheduler = Scheduler {
        store,
        jobs,
        expiry,
        checked_until: Utc::now(),
    };
    background::every(scheduler, TICK, FirstRound::AfterPeriod, shutdown).await;
}

/// The schedules, and the time up to which their fire times were submitted.
struct Scheduler {
    store: Store,
    jobs: JobService,
    expiry: Option<CronSchedule>,
    checked_until: DateTime<Utc>,
}

impl Periodic for Scheduler {
    async fn round(&mut self) {
        let now = Utc::now();
        self.submit_expiry(now).await;
        if self.submit_syncs(now).await {
            self.checked_until = now;
        }
    }
}

impl Scheduler {
    /// Submits the expiry sweeps that fell due since the last round.
    async fn submit_expiry(&self, now: DateTime<Utc>) {
        for fire in self.expiry.iter().flat_map(|s| s.fire_times(self.checked_until, now)) {
            let submission = Submission {
                kind: JobKind::Expiry,
                folder_id: None,
                params: serde_json::json!({ "scheduled_at": fire.to_rfc3339() }),
                idempotency_key: Some(format!("expiry:{}", fire.timestamp())),
                retry_of: None,
            };
            if let Err(e) = self.jobs.submit(SCHEDULER, submission).await {
                tracing::warn!(error = %e, "could not submit a scheduled expiry sweep");
            }
        }
    }

    /// Submits the folder syncs that fell due since the last round; false when the schedules
    /// could not be read (the next round looks at the same stretch of time again).
    async fn submit_syncs(&self, now: DateTime<Utc>) -> bool {
        let scheduled = match self.store.read().await {
            Ok(mut conn) => folders::with_sync_schedule(&mut conn).await,
            Err(e) => Err(e),
        };
        let scheduled = match scheduled {
            Ok(scheduled) => scheduled,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler could not read folder schedules");
                return false;
            }
        };
        for (folder, expression) in scheduled {
            let schedule = match CronSchedule::parse(&expression) {
                Ok(schedule) => schedule,
                Err(e) => {
                    tracing::warn!(%folder, error = %e, "skipping an unusable sync_schedule");
                    continue;
                }
            };
            for fire in schedule.fire_times(self.checked_until, now) {
                let submission = Submission {
                    kind: JobKind::Sync,
                    folder_id: Some(folder),
                    params: serde_json::json!({ "scheduled_at": fire.to_rfc3339() }),
                    idempotency_key: Some(format!("sync:{folder}:{}", fire.timestamp())),
                    retry_of: None,
                };
                if let Err(e) = self.jobs.submit(SCHEDULER, submission).await {
                    tracing::warn!(%folder, error = %e, "could not submit a scheduled sync");
                }
            }
        }
        true
    }
}
