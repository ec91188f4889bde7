//! The SYNC job: reads the synced root and its bucket binding, runs the stages (listing,
//! catalog, diff, evaluation) into the writer, then settles what the listing could not see and
//! writes the tombstones, guarded by `max_tombstone_ratio`.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use uuid::Uuid;

use super::stages::{ListingReport, Outcome, channel_of, spawn_catalog, spawn_diff, spawn_evaluation, spawn_listing};
use super::tally::Tally;
use super::writer::{Action, Writer};
use super::{DEFAULT_MAX_TOMBSTONE_RATIO, RATIO_GUARD_FROM, SyncParams};
use crate::blobs::Buckets;
use crate::blobs::source::Source;
use crate::domain::folder::{Folder, SyncBinding};
use crate::domain::job::{Job, JobStatus};
use crate::domain::webhook::EventKind;
use crate::services::jobs::Runner;
use crate::services::jobs::context::{JobContext, JobFailure};
use crate::store::usage::Ledger;
use crate::store::{Store, StoreError, TreeLock, folders as folder_rows, sync as rows, webhooks as webhook_rows};

/// Changes applied per transaction.
const BATCH: usize = 2000;

/// Runs SYNC jobs.
pub struct SyncRunner {
    store: Store,
    buckets: Buckets,
    hash_concurrency: usize,
    pause_schedule_after: u32,
}

impl SyncRunner {
    /// A runner hashing at most `hash_concurrency` objects at once, pausing a folder's schedule
    /// after `pause_schedule_after` syncs of it ended in ERROR in a row.
    pub fn new(store: Store, buckets: Buckets, hash_concurrency: usize, pause_schedule_after: u32) -> Self {
        Self {
            store,
            buckets,
            hash_concurrency: hash_concurrency.max(1),
            pause_schedule_after: pause_schedule_after.max(1),
        }
    }

    /// Counts a finished sync into its folder's run of failures (see
    /// [`folder_rows::record_sync_outcome`]).
    async fn record_outcome(&self, job: &Job) -> Result<(), StoreError> {
        let Some(folder) = job.folder_id else { return Ok(()) };
        let outcome = match job.status {
            JobStatus::Done => Ok(()),
            JobStatus::Error => Err(job.message.as_deref().unwrap_or("the sync failed")),
            _ => return Ok(()),
        };
        let mut conn = self.store.read().await?;
        let now = crate::store::now_micros();
        if folder_rows::record_sync_outcome(&mut conn, folder, outcome, self.pause_schedule_after, now).await? {
            tracing::warn!(
                %folder,
                failures = self.pause_schedule_after,
                "the folder's sync schedule paused itself after syncs failed in a row; set sync_schedule again to resume it"
            );
        }
        Ok(())
    }
}

impl Runner for SyncRunner {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(self.sync(ctx))
    }

    fn finished<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.record_outcome(job).await {
                tracing::warn!(job = %job.id, error = %e, "could not record how a sync ended for its schedule");
            }
        })
    }
}

/// What a sync runs over: its root folder, the root's binding, and the bucket.
struct Target {
    root: Folder,
    binding: SyncBinding,
    source: Arc<Source>,
}

impl SyncRunner {
    async fn sync(&self, ctx: &mut JobContext) -> Result<serde_json::Value, JobFailure> {
        let params: SyncParams = ctx.params()?;
        let Target { root, binding, source } = self.target(ctx).await?;
        let live_before = {
            let mut conn = self.store.read().await?;
            rows::live_count(&mut conn, root.id).await?
        };

        let report = Arc::new(Mutex::new(ListingReport::default()));
        let (entries, known) = match &params.paths {
            None => (source.list(&binding.prefix), spawn_catalog(self.store.clone(), root.id)),
            Some(paths) => {
                let keys: Vec<String> = paths
                    .iter()
                    .filter(|k| k.starts_with(&binding.prefix))
                    .cloned()
                    .collect();
                let known = {
                    let mut conn = self.store.read().await?;
                    rows::known_touching(&mut conn, root.id, &keys).await?
                };
                (source.list_keys(keys), channel_of(known))
            }
        };
        let listed = spawn_listing(entries, &binding.prefix, Arc::clone(&report));
        let steps = spawn_diff(listed, known, params.force_rehash);
        let outcomes = spawn_evaluation(steps, source, binding.prefix.clone(), root.id, self.hash_concurrency);

        let mut tally = Tally::new(params.dry_run);
        let writer = Writer::spawn(self.store.clone(), root.clone(), params.dry_run);
        let mut tombstones = apply_outcomes(ctx, &mut tally, outcomes, writer).await?;

        let report = std::mem::take(&mut *report.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        tally.listing(ctx, &report);
        tally.record(ctx);
        if let Some(failure) = report.failed {
            return Err(JobFailure::Retryable(format!(
                "listing bucket `{}` failed: {failure}; nothing was tombstoned",
                binding.bucket
            )));
        }
        tombstones.retain(|(_, key)| {
            !report
                .unreadable
                .iter()
                .any(|(prefix, _)| key.starts_with(prefix.as_str()))
        });
        let ratio = params.max_tombstone_ratio.unwrap_or(DEFAULT_MAX_TOMBSTONE_RATIO);
        let count = tombstones.len() as i64;
        if live_before > RATIO_GUARD_FROM && count as f64 > ratio * live_before as f64 {
            return Err(JobFailure::Fatal(format!(
                "this sync would tombstone {count} of {live_before} live items ({:.0}%), more than max_tombstone_ratio {ratio}; \
                 nothing was tombstoned. If the objects really are gone, sync again with \"max_tombstone_ratio\": 1.0",
                100.0 * count as f64 / live_before as f64
            )));
        }
        self.write_tombstones(ctx, &mut tally, root.id, &tombstones, params.dry_run)
            .await?;
        Ok(tally.json())
    }

    /// The job's synced root, its binding, and the bucket it names (configured in this process).
    async fn target(&self, ctx: &JobContext) -> Result<Target, JobFailure> {
        let root_id = ctx
            .job()
            .folder_id
            .ok_or_else(|| JobFailure::Fatal("a sync job needs a folder".into()))?;
        let root = {
            let mut conn = self.store.read().await?;
            folder_rows::by_id(&mut conn, root_id).await?
        }
        .ok_or_else(|| JobFailure::Fatal(format!("folder {root_id} no longer exists")))?
        .folder;
        let binding = root
            .sync
            .clone()
            .ok_or_else(|| JobFailure::Fatal(format!("folder {} is not a synced folder", root.path)))?;
        let source = self.buckets.source(&binding.bucket).ok_or_else(|| {
            JobFailure::Fatal(format!(
                "bucket `{}` is not configured in the process that ran this job; every process that runs jobs (stowage serve, each stowage worker) needs the same [buckets] configuration as the API",
                binding.bucket
            ))
        })?;
        Ok(Target { root, binding, source })
    }

    /// Writes the tombstones a batch at a time (only counts them on a dry run).
    async fn write_tombstones(
        &self,
        ctx: &mut JobContext,
        tally: &mut Tally,
        root: Uuid,
        tombstones: &[(Uuid, String)],
        dry_run: bool,
    ) -> Result<(), JobFailure> {
        for chunk in tombstones.chunks(BATCH) {
            tally.tombstoning(ctx, chunk.len());
            if !dry_run {
                let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let mut tx = self.store.write_tree(TreeLock::Shared).await?;
                let ledger = Ledger::before_items(&mut tx, &ids).await?;
                rows::tombstone(&mut tx, &ids).await?;
                ledger.after_items(&mut tx, &ids).await?;
                if webhook_rows::items_wanted(&mut tx).await? {
                    let keys: Vec<&str> = chunk.iter().map(|(_, key)| key.as_str()).collect();
                    webhook_rows::insert_synced_items(&mut tx, root, &keys, EventKind::ItemTombstoned).await?;
                }
                tx.commit().await?;
            }
            tally.tombstoned(ctx, chunk.len());
            ctx.checkpoint().await?;
        }
        Ok(())
    }
}

/// Feeds the evaluation's outcomes to the writer in batches, counting them, until both are
/// through; answers the tombstones the diff found (written only after the whole listing).
async fn apply_outcomes(
    ctx: &mut JobContext,
    tally: &mut Tally,
    mut outcomes: tokio::sync::mpsc::Receiver<Vec<Outcome>>,
    mut writer: Writer,
) -> Result<Vec<(Uuid, String)>, JobFailure> {
    let mut tombstones: Vec<(Uuid, String)> = Vec::new();
    let mut batch: Vec<Action> = Vec::new();
    while let Some(chunk) = outcomes.recv().await {
        for outcome in chunk {
            match outcome {
                Outcome::Unchanged => tally.unchanged(ctx),
                Outcome::Tombstone(id, key) => tombstones.push((id, key)),
                Outcome::Broken(message) => {
                    tally.committed(ctx, writer.stop().await);
                    return Err(tally.stopped(ctx, JobFailure::Retryable(message)));
                }
                Outcome::Failed(key, message, hashed) => tally.failed(ctx, key, message, hashed),
                Outcome::Act(action, hashed) => {
                    tally.queued(ctx, hashed);
                    batch.push(*action);
                    if batch.len() >= BATCH && !writer.send(std::mem::take(&mut batch)).await {
                        let (applied, outcome) = writer.finish().await;
                        tally.committed(ctx, applied);
                        let failure = outcome
                            .err()
                            .unwrap_or_else(|| JobFailure::Retryable("the sync's writer stopped".into()));
                        return Err(tally.stopped(ctx, failure));
                    }
                }
            }
        }
        tally.committed(ctx, writer.take_committed());
        // The result is recorded when the run stops, not per object (building it for every
        // object was a measurable share of a no-change re-sync).
        if let Err(failure) = ctx.checkpoint().await {
            tally.committed(ctx, writer.stop().await);
            return Err(tally.stopped(ctx, failure));
        }
    }
    // A writer that stopped early answers its failure from `finish`.
    let _ = writer.send(batch).await;
    let (applied, outcome) = writer.finish().await;
    tally.committed(ctx, applied);
    outcome.map_err(|failure| tally.stopped(ctx, failure))?;
    Ok(tombstones)
}
