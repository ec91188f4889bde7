//! The TTL sweep (job kind EXPIRY): deletes or trashes (config `expiry.action`) the items and
//! folders whose time is up, then purges the trash past its retention.
//!
//! It works in transactions of at most `expiry.batch_size` items, removing managed objects after
//! each commit. Every claim re-checks `expires_at <= now` on the rows as they are when it runs
//! (see [`crate::store::expiry`]), so a TTL extended after the sweep started keeps its item, and
//! sweeps running at once on several workers split the rows between them: nothing is deleted
//! twice and none of them fails for the other.

use std::collections::HashSet;

use futures::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use super::jobs::Runner;
use super::jobs::context::{JobContext, JobFailure};
use super::trash::Trash;
use crate::config::ExpiryAction;
use crate::domain::webhook::{EventKind, ItemCause};
use crate::store::usage::Ledger;
use crate::store::webhooks as webhook_rows;
use crate::store::{Store, TreeLock, expiry as rows, now_micros, trash as trash_rows};

/// What a sweep did: the result of an EXPIRY job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SweepResult {
    /// Items that expired (themselves, or with an expired folder), deleted or trashed.
    pub items_expired: u64,
    /// Folders that expired (themselves, or inside an expired folder), deleted or trashed.
    pub folders_expired: u64,
    /// Objects removed from the managed bucket.
    pub objects_deleted: u64,
    /// Trash entries (what one delete put there) purged after their retention.
    pub trash_purged: u64,
}

/// The TTL sweep.
#[derive(Clone)]
pub struct ExpiryService {
    store: Store,
    trash: Trash,
    action: ExpiryAction,
    batch: i64,
}

impl ExpiryService {
    /// The sweep over `store`, doing `action` with what expired, `batch` items per transaction.
    pub fn new(store: Store, trash: Trash, action: ExpiryAction, batch: u32) -> Self {
        Self {
            store,
            trash,
            action,
            batch: i64::from(batch.max(1)),
        }
    }

    /// Runs one sweep, reporting progress (one unit per item or folder) on `ctx`.
    pub async fn sweep(&self, ctx: &mut JobContext) -> Result<SweepResult, JobFailure> {
        let mut result = SweepResult::default();
        self.expire_items(ctx, &mut result).await?;
        self.expire_folders(ctx, &mut result).await?;
        self.purge_trash(ctx, &mut result).await?;
        Ok(result)
    }

    /// Records `n` finished units and the result so far, then stops if the job was cancelled.
    async fn step(&self, ctx: &mut JobContext, n: u64, result: &SweepResult) -> Result<(), JobFailure> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        ctx.add_pending(n);
        ctx.done(n);
        ctx.set_result(serde_json::to_value(result).unwrap_or_default());
        ctx.checkpoint().await
    }

    /// Deletes or trashes expired items, a batch per transaction, until none is left.
    async fn expire_items(&self, ctx: &mut JobContext, result: &mut SweepResult) -> Result<(), JobFailure> {
        loop {
            let now = now_micros();
            let mut tx = self.store.write_tree(TreeLock::Shared).await?;
            let expired = match self.action {
                ExpiryAction::Delete => rows::delete_expired_items(&mut tx, now, self.batch).await?,
                ExpiryAction::Trash => {
                    rows::trash_expired_items(&mut tx, now, self.trash.purge_at(now), self.batch).await?
                }
            };
            let mut ledger = Ledger::default();
            ledger.release(&mut tx, &expired.usage).await?;
            ledger.settle(&mut tx).await?;
            webhook_rows::record_deleted(&mut tx, &expired.objects, expired.deleted, ItemCause::Expiry).await?;
            tx.commit().await?;
            let taken = expired.items;
            if expired.deleted {
                result.objects_deleted += self.trash.remove_objects(expired.objects).await;
            }
            result.items_expired += taken;
            self.step(ctx, taken, result).await?;
            if (taken as i64) < self.batch {
                return Ok(());
            }
        }
    }

    /// Deletes or trashes expired folders with their subtrees, one folder per transaction (its
    /// items then go in batches).
    async fn expire_folders(&self, ctx: &mut JobContext, result: &mut SweepResult) -> Result<(), JobFailure> {
        loop {
            let now = now_micros();
            let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
            let Some((id, path)) = rows::next_expired_folder(&mut tx, now).await? else {
                return Ok(());
            };
            let purge_at = match self.action {
                ExpiryAction::Delete => now,
                ExpiryAction::Trash => self.trash.purge_at(now),
            };
            if self.action == ExpiryAction::Trash {
                webhook_rows::record_subtree_items(&mut tx, EventKind::ItemDeleted, ItemCause::Expiry, &path).await?;
            }
            let ledger = Ledger::before_subtree(&mut tx, id).await?;
            let counts = trash_rows::trash_folder(&mut tx, id, &path, now, purge_at).await?;
            ledger.after_subtree(&mut tx, id).await?;
            tx.commit().await?;
            result.folders_expired += counts.folders;
            result.items_expired += counts.items;
            if self.action == ExpiryAction::Delete {
                let purged = self
                    .trash
                    .purge_unit_in_batches(id, purge_at, self.batch, ItemCause::Expiry)
                    .await?;
                result.objects_deleted += purged.objects;
            }
            self.step(ctx, counts.folders + counts.items, result).await?;
        }
    }

    /// Purges the trash entries whose time in the trash is over: items a batch per transaction,
    /// then folders with everything their delete took along.
    async fn purge_trash(&self, ctx: &mut JobContext, result: &mut SweepResult) -> Result<(), JobFailure> {
        loop {
            let mut tx = self.store.write().await?;
            let objects = trash_rows::purge_due_items(&mut tx, now_micros(), self.batch).await?;
            webhook_rows::record_deleted(&mut tx, &objects, true, ItemCause::TrashPurge).await?;
            tx.commit().await?;
            let taken = objects.len() as u64;
            result.trash_purged += taken;
            result.objects_deleted += self.trash.remove_objects(objects).await;
            self.step(ctx, taken, result).await?;
            if (taken as i64) < self.batch {
                break;
            }
        }
        let mut tried: HashSet<Uuid> = HashSet::new();
        loop {
            let due = {
                let mut conn = self.store.read().await?;
                trash_rows::due_folder_units(&mut conn, now_micros(), self.batch).await?
            };
            let fresh: Vec<(Uuid, i64)> = due.into_iter().filter(|(unit, _)| tried.insert(*unit)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for (unit, purge_at) in fresh {
                let purged = self
                    .trash
                    .purge_unit_in_batches(unit, purge_at, self.batch, ItemCause::TrashPurge)
                    .await?;
                if purged.rows.folders > 0 {
                    result.trash_purged += 1;
                }
                result.objects_deleted += purged.objects;
                self.step(ctx, purged.rows.folders + purged.rows.items, result).await?;
            }
        }
    }
}

impl Runner for ExpiryService {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(async move {
            let result = self.sweep(ctx).await?;
            serde_json::to_value(result).map_err(|e| JobFailure::Fatal(e.to_string()))
        })
    }
}
