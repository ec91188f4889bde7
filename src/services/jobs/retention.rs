//! The hourly removal of finished jobs' records past `jobs.retention_seconds` (with an import's
//! units), as a background loop (see `background.rs`).

use std::time::Duration;

use crate::background::Periodic;
use crate::services::remove_older_than;
use crate::store::{Store, StoreError, jobs as rows};

/// How often [`JobRetention`] runs.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Jobs removed per transaction.
const BATCH: i64 = 1000;

/// Removes the records of jobs that finished longer than `retention` ago.
pub struct JobRetention {
    /// The catalog.
    pub store: Store,
    /// How long a finished job's record is kept.
    pub retention: Duration,
}

impl JobRetention {
    /// One removal; answers how many jobs went.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        remove_older_than(&self.store, self.retention, BATCH, |db, before, limit| {
            Box::pin(rows::delete_finished_before(db, before, limit))
        })
        .await
    }
}

impl Periodic for JobRetention {
    async fn round(&mut self) {
        match self.run_once().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed the records of jobs finished past their retention"),
            Err(error) => tracing::warn!(%error, "could not remove old job records; trying again later"),
        }
    }
}
