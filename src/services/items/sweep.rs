//! The sweep of the managed bucket: leftovers of interrupted writes, and objects no item points
//! at (a crash between a commit and its object clean-up leaves them).

use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};

use super::ItemService;
use crate::background::Periodic;
use crate::blobs::ObjectKey;
use crate::services::{Context, ServiceError};
use crate::store::items as rows;

/// Objects younger than this are never swept: they may belong to an upload still committing.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// How often the orphan sweep runs after the one at start-up.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// Keys asked about per query while sweeping orphans.
const SWEEP_BATCH: usize = 500;

/// The most orphan keys one sweep holds in memory (and removes).
const SWEEP_MAX_HELD: usize = 100_000;

/// Above this many orphans, the sweep checks they are not most of the bucket.
pub const ORPHAN_ALARM: usize = 100;

/// The share of a bucket's objects that may be orphans before the sweep refuses to act.
pub const MAX_ORPHAN_SHARE: f64 = 0.1;

/// What a sweep of the managed bucket removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Leftovers of interrupted writes.
    pub incomplete_writes: u64,
    /// Objects no item points at.
    pub orphans: u64,
}

impl ItemService {
    /// Removes from the managed bucket what interrupted writes left and every object no item
    /// points at, both only when last written more than `grace` ago (younger ones may belong to
    /// an upload still committing).
    ///
    /// Orphans are rare (a crash between a commit and its object clean-up). When more than
    /// [`MAX_ORPHAN_SHARE`] of the old objects (and over [`ORPHAN_ALARM`] of them) have no row,
    /// the bucket most likely belongs to another catalog (`database.url` changed while `data_dir`
    /// stayed): nothing is deleted, and the sweep fails with an error saying so.
    pub async fn sweep_orphans(&self, grace: Duration) -> Result<Swept, ServiceError> {
        let before = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let bucket = self.buckets.managed();
        let incomplete_writes = bucket.remove_incomplete_writes(before).await.context("orphan sweep")?;
        let mut unreferenced: Vec<ObjectKey> = Vec::new();
        let (mut seen, mut orphans) = (0usize, 0usize);
        let mut listed = bucket.list_older_than(before).try_chunks(SWEEP_BATCH);
        while let Some(batch) = listed.next().await {
            let batch = batch.map_err(|e| e.1).context("orphan sweep")?;
            seen += batch.len();
            let keys: Vec<String> = batch.iter().map(|l| l.key.to_string()).collect();
            let mut conn = self.store.read().await?;
            let referenced = rows::referenced_keys(&mut conn, bucket.name(), &keys, true).await?;
            drop(conn);
            for key in batch.into_iter().map(|l| l.key) {
                if !referenced.contains(key.as_str()) {
                    orphans += 1;
                    // Held in memory until the share is known; the rest waits for the next sweep.
                    if unreferenced.len() < SWEEP_MAX_HELD {
                        unreferenced.push(key);
                    }
                }
            }
        }
        if orphans > ORPHAN_ALARM && orphans as f64 > seen as f64 * MAX_ORPHAN_SHARE {
            return Err(ServiceError::Internal(format!(
                "orphan sweep refused: {orphans} of {seen} objects in bucket {} have no item; the bucket looks like it belongs to another catalog (was database.url changed?); nothing was deleted",
                bucket.name()
            )));
        }
        for key in &unreferenced {
            tracing::info!(%key, "removing an orphaned object");
            bucket.delete(key).await.context("orphan sweep")?;
        }
        Ok(Swept {
            incomplete_writes,
            orphans: unreferenced.len() as u64,
        })
    }
}

/// The orphan sweep as a background loop (see [`crate::background::every`]): each round removes
/// expired direct uploads ([`ItemService::sweep_expired_uploads`]), runs
/// [`ItemService::sweep_orphans`] with [`ORPHAN_GRACE`] and logs what it removed.
pub struct OrphanSweep {
    items: ItemService,
}

impl OrphanSweep {
    /// Sweeps the managed bucket of `items`.
    pub fn new(items: ItemService) -> Self {
        Self { items }
    }
}

impl Periodic for OrphanSweep {
    async fn round(&mut self) {
        match self.items.sweep_expired_uploads().await {
            Ok(0) => {}
            Ok(sessions) => tracing::info!(sessions, "removed expired direct uploads"),
            Err(error) => tracing::warn!(%error, "the sweep of expired direct uploads failed; it runs again later"),
        }
        match self.items.sweep_orphans(ORPHAN_GRACE).await {
            Ok(swept) if swept.orphans + swept.incomplete_writes > 0 => tracing::info!(
                orphans = swept.orphans,
                incomplete_writes = swept.incomplete_writes,
                "swept the managed bucket"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the orphan sweep failed; it runs again later"),
        }
    }
}
