//! The scheduler: turns cron schedules into jobs (each folder's `sync_schedule`, and the TTL
//! sweep's `expiry.schedule`). Every process with workers runs it; each fire time is submitted
//! with a deterministic idempotency key, so with any number of processes every scheduled run is
//! recorded exactly once. Fire times missed while no process was running are not replayed: the
//! next one runs as usual.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::domain::job::JobKind;
use crate::domain::schedule::CronSchedule;
use crate::services::jobs::{JobService, SCHEDULER, Submission};
use crate::store::{Store, folders};

/// How often schedules are evaluated.
const TICK: Duration = Duration::from_secs(1);

/// Submits a SYNC job for every fire time of every folder's `sync_schedule`, and an EXPIRY job
/// for every fire time of `expiry`, until shutdown.
pub async fn run(store: Store, jobs: JobService, expiry: Option<CronSchedule>, shutdown: CancellationToken) {
    let mut checked_until = Utc::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.cancelled() => return,
        }
        let now = Utc::now();
        for fire in expiry.iter().flat_map(|s| s.fire_times(checked_until, now)) {
            let submission = Submission {
                kind: JobKind::Expiry,
                folder_id: None,
                params: serde_json::json!({ "scheduled_at": fire.to_rfc3339() }),
                idempotency_key: Some(format!("expiry:{}", fire.timestamp())),
            };
            if let Err(e) = jobs.submit(SCHEDULER, submission).await {
                tracing::warn!(error = %e, "could not submit a scheduled expiry sweep");
            }
        }
        let scheduled = match store.read().await {
            Ok(mut conn) => folders::with_sync_schedule(&mut conn).await,
            Err(e) => Err(e),
        };
        let scheduled = match scheduled {
            Ok(scheduled) => scheduled,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler could not read folder schedules");
                continue;
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
            for fire in schedule.fire_times(checked_until, now) {
                let submission = Submission {
                    kind: JobKind::Sync,
                    folder_id: Some(folder),
                    params: serde_json::json!({ "scheduled_at": fire.to_rfc3339() }),
                    idempotency_key: Some(format!("sync:{folder}:{}", fire.timestamp())),
                };
                if let Err(e) = jobs.submit(SCHEDULER, submission).await {
                    tracing::warn!(%folder, error = %e, "could not submit a scheduled sync");
                }
            }
        }
        checked_until = now;
    }
}
