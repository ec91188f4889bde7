//! Stars of things deleted for good: removed by an hourly sweep ([`StarCleanup`]) rather than by
//! every statement that deletes folders or items.

use std::time::Duration;

use crate::background::Periodic;
use crate::store::{Store, StoreError, stars};

/// How often [`StarCleanup`] runs.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// Removes the stars of folders and items that no longer exist.
pub struct StarCleanup(pub Store);

impl StarCleanup {
    /// One cleanup; answers how many stars it removed.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let mut tx = self.0.write().await?;
        let removed = stars::forget_gone(&mut tx).await?;
        tx.commit().await?;
        Ok(removed)
    }
}

impl Periodic for StarCleanup {
    async fn round(&mut self) {
        match self.run_once().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed the stars of things deleted for good"),
            Err(error) => tracing::warn!(%error, "could not remove stale stars; trying again later"),
        }
    }
}
