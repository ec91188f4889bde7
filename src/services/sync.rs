//! Bucket sync: a synced folder mirrors every object under its bucket prefix. A sync lists the
//! bucket (streaming, in key order) beside the catalog (in key order), reads only what the
//! fingerprints say may have changed, and applies creates, updates, tombstones and restores in
//! bounded transactions. It never writes to or deletes from the bucket, and tombstones only
//! after a listing that completed, within `max_tombstone_ratio`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ServiceError;
use super::folders::{now, require};
use super::jobs::context::{JobContext, JobFailure};
use super::jobs::{JobService, Runner, Submission, Submitted};
use super::probe::{HEAD_BYTES, Probed, Whole, complete, examine};
use crate::blobs::source::{Hashed, ListEntry, Source};
use crate::blobs::{BlobError, Buckets};
use crate::domain::caller::{Access, Caller};
use crate::domain::diff::{Known, Listed, Step, diff};
use crate::domain::fingerprint::Fingerprint;
use crate::domain::folder::{Folder, FolderName, FolderPath};
use crate::domain::item::{Item, check_title};
use crate::domain::job::{Job, JobKind, JobStatus};
use crate::store::{Store, StoreError, TreeLock, folders as folder_rows, sync as rows};

/// The share of a folder's live items a sync may tombstone unless told otherwise.
pub const DEFAULT_MAX_TOMBSTONE_RATIO: f64 = 0.5;
/// Below this many live items the ratio guard does not apply.
pub const RATIO_GUARD_FROM: i64 = 100;
/// Changes applied per transaction.
const BATCH: usize = 2000;
/// Catalog rows read per query.
const CATALOG_PAGE: u32 = 1000;
/// Chunks buffered between the stages of a sync.
const STAGE_BUFFER: usize = 8;
/// Diff steps handed on at once (one hand-over between tasks per chunk, not per object).
const STEP_CHUNK: usize = 256;

/// Options of one sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncOptions {
    /// Read and hash every object, not only those whose fingerprint changed (catches an edit
    /// that kept size and modification time).
    #[serde(default)]
    pub force_rehash: bool,
    /// Compute the same result and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The largest share (0-1) of the folder's live items this sync may tombstone when it has
    /// more than 100 (default 0.5). Pass 1.0 to accept a mass deletion.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub max_tombstone_ratio: Option<f64>,
}

/// The parameters a SYNC job carries: the options, the touched keys of an incremental sync,
/// and (ignored here) when a schedule fired it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncParams {
    /// See [`SyncOptions::force_rehash`].
    #[serde(default)]
    pub force_rehash: bool,
    /// See [`SyncOptions::dry_run`].
    #[serde(default)]
    pub dry_run: bool,
    /// See [`SyncOptions::max_tombstone_ratio`].
    pub max_tombstone_ratio: Option<f64>,
    /// Only these keys (and what lies below those that are directories): an incremental sync
    /// of what a watcher saw change. All keys when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// Counts a sync reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncResult {
    /// Objects the listing found.
    pub listed: u64,
    /// New items.
    pub created: u64,
    /// Items whose content changed.
    pub updated: u64,
    /// Items whose content is the same (fingerprint equal, or same checksum).
    pub unchanged: u64,
    /// Items whose object is gone.
    pub tombstoned: u64,
    /// Tombstoned items whose object is back.
    pub restored: u64,
    /// Bytes read to hash.
    pub bytes_hashed: u64,
    /// Entries skipped on purpose (symlinks out of the root…).
    pub skipped: u64,
    /// Objects that could not be read or recorded (see the job's `errors`).
    pub errors: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// Submits syncs.
#[derive(Clone)]
pub struct SyncService {
    store: Store,
    jobs: JobService,
}

impl SyncService {
    /// Wraps the store and the job service.
    pub fn new(store: Store, jobs: JobService) -> Self {
        Self { store, jobs }
    }

    /// Queues a sync of synced folder `folder_id`; while one is pending or running, that one is
    /// returned instead.
    pub async fn submit(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        options: SyncOptions,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, ServiceError> {
        if let Some(ratio) = options.max_tombstone_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(ServiceError::Invalid(format!(
                "max_tombstone_ratio must be between 0 and 1, got {ratio}"
            )));
        }
        let mut conn = self.store.read().await?;
        let folder = require(
            caller,
            folder_rows::by_id(&mut conn, folder_id).await?,
            Access::Write,
            &folder_id,
        )?
        .folder;
        if folder.sync.is_none() {
            return Err(ServiceError::Conflict(format!(
                "folder {} is not a synced folder; create one with \"sync\": {{\"bucket\": NAME, \"prefix\": PREFIX}}",
                folder.path
            )));
        }
        let params = serde_json::to_value(&options).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let submission = Submission {
            kind: JobKind::Sync,
            folder_id: Some(folder_id),
            params,
            idempotency_key,
        };
        self.jobs.submit(&caller.name, submission).await
    }
}

/// What the listing stage learned besides the objects.
#[derive(Debug, Default)]
struct ListingReport {
    /// Key prefixes (or keys) that could not be listed: nothing below them is tombstoned.
    unreadable: Vec<(String, String)>,
    /// Set when the listing as a whole failed: nothing is tombstoned at all.
    failed: Option<String>,
    listed: u64,
    skipped: u64,
}

/// One change to apply.
enum Action {
    Create {
        row: rows::NewRow,
        /// The folders from the synced root down to the item.
        dirs: Vec<FolderName>,
    },
    Content {
        id: Uuid,
        item: Box<Item>,
        fingerprint: Fingerprint,
        restored: bool,
    },
    Refresh {
        id: Uuid,
        fingerprint: Fingerprint,
        restored: bool,
    },
}

/// What one diff step turned into.
enum Outcome {
    Unchanged,
    Tombstone(Uuid, String),
    Act(Box<Action>, u64),
    Failed(String, String, u64),
    /// A chunk of steps was lost (its task panicked): the run must not go on as if complete.
    Broken(String),
}

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
        let now = crate::store::to_micros(now());
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

/// Splits `key` (below `prefix`) into the folder names leading to it and its title.
fn layout(prefix: &str, key: &str) -> Result<(Vec<FolderName>, String), String> {
    let relative = key
        .strip_prefix(prefix)
        .ok_or_else(|| format!("`{key}` is outside the prefix `{prefix}`"))?;
    let mut segments: Vec<&str> = relative.split('/').collect();
    let title = segments.pop().unwrap_or_default().to_owned();
    check_title(&title).map_err(|e| format!("cannot name an item after `{key}`: {e}"))?;
    let dirs = segments
        .into_iter()
        .map(|s| FolderName::from_bucket(s).map_err(|e| format!("cannot make a folder for `{key}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((dirs, title))
}

impl SyncRunner {
    async fn sync(&self, ctx: &mut JobContext) -> Result<serde_json::Value, JobFailure> {
        let params: SyncParams = ctx.params()?;
        let root_id = ctx
            .job()
            .folder_id
            .ok_or_else(|| JobFailure::Fatal("a sync job needs a folder".into()))?;
        let root = {
            let mut conn = self.store.read().await.map_err(ServiceError::from)?;
            folder_rows::by_id(&mut conn, root_id)
                .await
                .map_err(ServiceError::from)?
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
        let live_before = {
            let mut conn = self.store.read().await.map_err(ServiceError::from)?;
            rows::live_count(&mut conn, root_id).await.map_err(ServiceError::from)?
        };

        let report = Arc::new(Mutex::new(ListingReport::default()));
        let (entries, known) = match &params.paths {
            None => (source.list(&binding.prefix), spawn_catalog(self.store.clone(), root_id)),
            Some(paths) => {
                let keys: Vec<String> = paths
                    .iter()
                    .filter(|k| k.starts_with(&binding.prefix))
                    .cloned()
                    .collect();
                let known = {
                    let mut conn = self.store.read().await.map_err(ServiceError::from)?;
                    rows::known_touching(&mut conn, self.store.dialect(), root_id, &keys)
                        .await
                        .map_err(ServiceError::from)?
                };
                (source.list_keys(keys), channel_of(known))
            }
        };
        let listed = spawn_listing(entries, &binding.prefix, Arc::clone(&report));
        let steps = spawn_diff(listed, known, params.force_rehash);
        let mut outcomes = spawn_evaluation(steps, source, binding.prefix.clone(), root_id, self.hash_concurrency);

        let mut result = SyncResult {
            dry_run: params.dry_run,
            ..SyncResult::default()
        };
        let mut tombstones: Vec<(Uuid, String)> = Vec::new();
        let mut batch: Vec<Action> = Vec::new();
        let mut writer = Writer::spawn(self.store.clone(), root.clone(), params.dry_run);
        while let Some(chunk) = outcomes.recv().await {
            for outcome in chunk {
                match outcome {
                    Outcome::Unchanged => {
                        result.unchanged += 1;
                        ctx.add_pending(1);
                        ctx.done(1);
                    }
                    Outcome::Tombstone(id, key) => tombstones.push((id, key)),
                    Outcome::Broken(message) => {
                        writer.stop(ctx, &mut result).await;
                        return Err(stopped(ctx, result, JobFailure::Retryable(message)));
                    }
                    Outcome::Failed(key, message, hashed) => {
                        result.errors += 1;
                        result.bytes_hashed += hashed;
                        ctx.add_pending(1);
                        ctx.failed(key, message);
                    }
                    Outcome::Act(action, hashed) => {
                        result.bytes_hashed += hashed;
                        ctx.add_pending(1);
                        batch.push(*action);
                        if batch.len() >= BATCH && !writer.send(std::mem::take(&mut batch)).await {
                            let failure = match writer.finish(ctx, &mut result).await {
                                Err(failure) => failure,
                                Ok(()) => JobFailure::Retryable("the sync's writer stopped".into()),
                            };
                            return Err(stopped(ctx, result, failure));
                        }
                    }
                }
            }
            writer.report(ctx, &mut result);
            // The result is recorded when the run stops, not per object (building it for
            // every object was a measurable share of a no-change re-sync).
            if let Err(failure) = ctx.checkpoint().await {
                writer.stop(ctx, &mut result).await;
                return Err(stopped(ctx, result, failure));
            }
        }
        // A writer that stopped early answers its failure from `finish`.
        let _ = writer.send(batch).await;
        writer
            .finish(ctx, &mut result)
            .await
            .map_err(|failure| stopped(ctx, result, failure))?;

        let (failed, unreadable, listed_count, skipped) = {
            let report = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                report.failed.clone(),
                report.unreadable.clone(),
                report.listed,
                report.skipped,
            )
        };
        result.listed = listed_count;
        result.skipped = skipped;
        for (key, message) in &unreadable {
            result.errors += 1;
            ctx.add_pending(1);
            ctx.failed(key.clone(), message.clone());
        }
        ctx.set_result(serde_json::to_value(result).unwrap_or_default());
        if let Some(failure) = failed {
            return Err(JobFailure::Retryable(format!(
                "listing bucket `{}` failed: {failure}; nothing was tombstoned",
                binding.bucket
            )));
        }
        tombstones.retain(|(_, key)| !unreadable.iter().any(|(prefix, _)| key.starts_with(prefix.as_str())));
        let ratio = params.max_tombstone_ratio.unwrap_or(DEFAULT_MAX_TOMBSTONE_RATIO);
        let count = tombstones.len() as i64;
        if live_before > RATIO_GUARD_FROM && count as f64 > ratio * live_before as f64 {
            return Err(JobFailure::Fatal(format!(
                "this sync would tombstone {count} of {live_before} live items ({:.0}%), more than max_tombstone_ratio {ratio}; \
                 nothing was tombstoned. If the objects really are gone, sync again with \"max_tombstone_ratio\": 1.0",
                100.0 * count as f64 / live_before as f64
            )));
        }
        for chunk in tombstones.chunks(BATCH) {
            ctx.add_pending(chunk.len() as i64);
            if !params.dry_run {
                let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let mut tx = self.store.write().await.map_err(ServiceError::from)?;
                rows::tombstone(&mut tx, &ids).await.map_err(ServiceError::from)?;
                tx.commit().await.map_err(ServiceError::from)?;
            }
            result.tombstoned += chunk.len() as u64;
            ctx.done(chunk.len() as i64);
            ctx.checkpoint().await?;
        }
        Ok(serde_json::to_value(result).unwrap_or_default())
    }
}

/// Records `result` as what the run did before it stopped, and passes `failure` on.
fn stopped(ctx: &mut JobContext, result: SyncResult, failure: JobFailure) -> JobFailure {
    ctx.set_result(serde_json::to_value(result).unwrap_or_default());
    failure
}

/// The stage that applies changes: batches go to a task of its own, which writes each in one
/// transaction (or only counts it, on a dry run) while the run gathers the next. What it
/// committed reaches the job's progress and result through [`Writer::report`].
struct Writer {
    batches: Option<mpsc::Sender<Vec<Action>>>,
    task: tokio::task::JoinHandle<Result<(), JobFailure>>,
    /// What the task has committed and the run has not reported yet.
    committed: Arc<Mutex<Applied>>,
}

/// What committed batches changed: how many changes, and the counts of the result they add to.
#[derive(Default)]
struct Applied {
    actions: i64,
    created: u64,
    updated: u64,
    restored: u64,
    unchanged: u64,
}

impl Applied {
    /// Adds `other`'s counts to `self`'s.
    fn add(&mut self, other: &Applied) {
        self.actions += other.actions;
        self.created += other.created;
        self.updated += other.updated;
        self.restored += other.restored;
        self.unchanged += other.unchanged;
    }
}

impl Writer {
    /// Starts the task; batches wait for it four deep.
    fn spawn(store: Store, root: Folder, dry_run: bool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<Action>>(4);
        let committed = Arc::new(Mutex::new(Applied::default()));
        let shared = Arc::clone(&committed);
        let task = tokio::spawn(async move {
            let mut folders = HashMap::new();
            // Each batch is one write transaction; the store's turns keep the stream of them
            // from starving other writers (store/turns.rs).
            while let Some(batch) = rx.recv().await {
                let applied = apply(&store, &root, &mut folders, batch, dry_run).await?;
                shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .add(&applied);
            }
            Ok(())
        });
        Self {
            batches: Some(tx),
            task,
            committed,
        }
    }

    /// Hands a batch over; false when the task has stopped (see [`finish`](Self::finish)).
    async fn send(&mut self, batch: Vec<Action>) -> bool {
        if batch.is_empty() {
            return true;
        }
        match &self.batches {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        }
    }

    /// Moves what was committed since the last report into the job's progress and `result`.
    fn report(&self, ctx: &mut JobContext, result: &mut SyncResult) {
        let applied = std::mem::take(&mut *self.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        ctx.done(applied.actions);
        result.created += applied.created;
        result.updated += applied.updated;
        result.restored += applied.restored;
        result.unchanged += applied.unchanged;
    }

    /// Waits until every batch handed over is written; the task's failure, if it had one.
    async fn finish(mut self, ctx: &mut JobContext, result: &mut SyncResult) -> Result<(), JobFailure> {
        self.batches = None;
        let outcome = (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(JobFailure::Retryable(format!("the sync's writer failed: {e}"))));
        self.report(ctx, result);
        outcome
    }

    /// Stops the task, abandoning the batch it is writing (its transaction rolls back), and
    /// reports what it had committed.
    async fn stop(mut self, ctx: &mut JobContext, result: &mut SyncResult) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.report(ctx, result);
    }
}

/// Applies a batch of changes in one transaction (or only counts them on a dry run).
async fn apply(
    store: &Store,
    root: &Folder,
    folders: &mut HashMap<String, Uuid>,
    batch: Vec<Action>,
    dry_run: bool,
) -> Result<Applied, JobFailure> {
    let mut applied = Applied {
        actions: batch.len() as i64,
        ..Applied::default()
    };
    let mut made: HashMap<String, Uuid> = HashMap::new();
    let mut created: Vec<(Uuid, rows::NewRow)> = Vec::new();
    let mut tx = if dry_run {
        None
    } else {
        Some(store.write_tree(TreeLock::Shared).await.map_err(ServiceError::from)?)
    };
    for action in batch {
        match action {
            Action::Create { row, dirs } => {
                applied.created += 1;
                if let Some(tx) = tx.as_mut() {
                    created.push((folder_for(tx, root, &dirs, folders, &mut made).await?, row));
                }
            }
            Action::Content {
                id,
                item,
                fingerprint,
                restored,
            } => {
                applied.updated += 1;
                applied.restored += u64::from(restored);
                if let Some(tx) = tx.as_mut() {
                    rows::set_content(tx, id, &item, &fingerprint)
                        .await
                        .map_err(ServiceError::from)?;
                }
            }
            Action::Refresh {
                id,
                fingerprint,
                restored,
            } => {
                if restored {
                    applied.restored += 1;
                } else {
                    applied.unchanged += 1;
                }
                if let Some(tx) = tx.as_mut() {
                    rows::refresh(tx, id, &fingerprint).await.map_err(ServiceError::from)?;
                }
            }
        }
    }
    if let Some(mut tx) = tx {
        rows::upsert_many(&mut tx, store.dialect(), root.id, &created)
            .await
            .map_err(ServiceError::from)?;
        tx.commit().await.map_err(ServiceError::from)?;
    }
    folders.extend(made);
    Ok(applied)
}

/// The folder for an object in `dirs` below `root`, creating the missing ones (inside the
/// batch's transaction; `made` collects them until it commits).
async fn folder_for(
    conn: &mut sqlx::AnyConnection,
    root: &Folder,
    dirs: &[FolderName],
    known: &HashMap<String, Uuid>,
    made: &mut HashMap<String, Uuid>,
) -> Result<Uuid, JobFailure> {
    let mut parent = (root.id, root.path.clone());
    for dir in dirs {
        let path = FolderPath::join(Some(&parent.1), dir).map_err(|e| JobFailure::Fatal(e.to_string()))?;
        let id = match known.get(path.as_str()).or_else(|| made.get(path.as_str())) {
            Some(id) => *id,
            None => {
                let at = now();
                let folder = Folder {
                    id: Uuid::now_v7(),
                    parent_id: Some(parent.0),
                    name: dir.as_str().to_owned(),
                    path: path.clone(),
                    description: String::new(),
                    client_metadata: serde_json::Map::new(),
                    owner: root.owner.clone(),
                    visibility: root.visibility,
                    ttl_seconds: None,
                    sync_schedule: None,
                    sync: None,
                    expires_at: None,
                    schedule_paused: None,
                    created_at: at,
                    updated_at: at,
                };
                folder_rows::insert_if_absent(conn, &folder)
                    .await
                    .map_err(ServiceError::from)?;
                let found = folder_rows::by_path(conn, &path).await.map_err(ServiceError::from)?;
                let id = found
                    .map(|f| f.folder.id)
                    .ok_or_else(|| JobFailure::Retryable(format!("folder {path} vanished")))?;
                made.insert(path.as_str().to_owned(), id);
                id
            }
        };
        parent = (id, path);
    }
    Ok(parent.0)
}

/// Streams the bucket listing into `Listed` entries, checking key order and noting what could
/// not be listed.
fn spawn_listing(
    mut entries: mpsc::Receiver<Vec<ListEntry>>,
    prefix: &str,
    report: Arc<Mutex<ListingReport>>,
) -> mpsc::Receiver<Vec<Listed>> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    let prefix = prefix.to_owned();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        while let Some(chunk) = entries.recv().await {
            let mut listed = Vec::with_capacity(chunk.len());
            {
                let mut report = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for entry in chunk {
                    match entry {
                        ListEntry::Object { key, fingerprint } => {
                            if last.as_deref().is_some_and(|prev| prev.as_bytes() >= key.as_bytes()) {
                                report.failed = Some(format!("the listing came out of key order at `{key}`"));
                                return;
                            }
                            report.listed += 1;
                            last = Some(key.clone());
                            listed.push(Listed { key, fingerprint });
                        }
                        ListEntry::Unreadable { key, message } if key == prefix => {
                            report.failed = Some(message);
                            return;
                        }
                        ListEntry::Unreadable { key, message } => report.unreadable.push((key, message)),
                        ListEntry::Skipped { .. } => report.skipped += 1,
                    }
                }
            }
            if tx.send(listed).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Streams the synced root's catalog in key order, a page at a time.
fn spawn_catalog(store: Store, root: Uuid) -> mpsc::Receiver<Vec<Known>> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let page = match store.read().await {
                Ok(mut conn) => {
                    rows::known_page(&mut conn, store.dialect(), root, after.as_deref(), CATALOG_PAGE).await
                }
                Err(e) => Err(e),
            };
            let page = match page {
                Ok(page) if !page.is_empty() => page,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "sync could not read the catalog");
                    return;
                }
            };
            after = page.last().map(|k| k.key.clone());
            if tx.send(page).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A channel already holding `rows` (a catalog small enough to read at once).
fn channel_of(rows: Vec<Known>) -> mpsc::Receiver<Vec<Known>> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(rows);
    rx
}

/// Merges the two key-ordered streams on a blocking thread (the diff is a plain iterator),
/// handing its steps on in chunks.
fn spawn_diff(
    mut listed: mpsc::Receiver<Vec<Listed>>,
    mut known: mpsc::Receiver<Vec<Known>>,
    force_rehash: bool,
) -> mpsc::Receiver<Vec<Step>> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    tokio::task::spawn_blocking(move || {
        let listed = std::iter::from_fn(|| listed.blocking_recv()).flatten();
        let known = std::iter::from_fn(|| known.blocking_recv()).flatten();
        let mut steps = diff(listed, known, force_rehash).peekable();
        while steps.peek().is_some() {
            let chunk: Vec<Step> = steps.by_ref().take(STEP_CHUNK).collect();
            if tx.blocking_send(chunk).is_err() {
                return;
            }
        }
    });
    rx
}

/// Turns the diff's chunks of steps into chunks of outcomes, in a task of its own (reading goes
/// on while a batch of changes is being written), several chunks at once and at most
/// `concurrency` objects read at once.
fn spawn_evaluation(
    mut steps: mpsc::Receiver<Vec<Step>>,
    source: Arc<Source>,
    prefix: String,
    root: Uuid,
    concurrency: usize,
) -> mpsc::Receiver<Vec<Outcome>> {
    let (tx, rx) = mpsc::channel(4 * STAGE_BUFFER);
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(concurrency));
        // Each chunk is a task of its own, so that typing and probing run on every core.
        let chunks = futures::stream::poll_fn(move |cx| steps.poll_recv(cx))
            .map(|chunk| {
                let (source, prefix, permits) = (Arc::clone(&source), prefix.clone(), Arc::clone(&permits));
                tokio::spawn(async move { evaluate(&source, &prefix, root, chunk, &permits, concurrency).await })
            })
            .buffer_unordered(concurrency);
        futures::pin_mut!(chunks);
        while let Some(evaluated) = chunks.next().await {
            let outcomes = evaluated
                .unwrap_or_else(|e| vec![Outcome::Broken(format!("evaluating a chunk of objects failed: {e}"))]);
            if tx.send(outcomes).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A step whose object must be read before it can be judged.
struct Read {
    listed: Listed,
    known: Option<Known>,
    restoring: bool,
    dirs: Vec<FolderName>,
    title: String,
}

/// Turns a chunk of diff steps into outcomes, reading the objects the steps need and probing the
/// changed ones, `concurrency` at a time.
async fn evaluate(
    source: &Source,
    prefix: &str,
    root: Uuid,
    steps: Vec<Step>,
    permits: &Semaphore,
    concurrency: usize,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut reads = Vec::new();
    for step in steps {
        let (listed, known, restoring) = match step {
            Step::Unchanged(_) => {
                outcomes.push(Outcome::Unchanged);
                continue;
            }
            Step::Tombstone(known) => {
                outcomes.push(Outcome::Tombstone(known.id, known.key));
                continue;
            }
            Step::Create(listed) => (listed, None, false),
            Step::Check(listed, known) => (listed, Some(known), false),
            Step::Restore(listed, known) => (listed, Some(known), true),
        };
        match layout(prefix, &listed.key) {
            Ok((dirs, title)) => reads.push(Read {
                listed,
                known,
                restoring,
                dirs,
                title,
            }),
            Err(message) => outcomes.push(Outcome::Failed(listed.key, message, 0)),
        }
    }
    // A chunk's objects are read together (one blocking task for a local bucket, see
    // [`Source::hash_many`]), each typed from its start as it is read: a local file's head is
    // never kept. An object whose checksum then turns out unchanged was typed for nothing, which
    // costs a microsecond or so. The title is the key's last segment, as `layout` made it (a
    // synced prefix is empty or ends in `/`).
    let keys = reads.iter().map(|read| read.listed.key.clone()).collect();
    let hashed = source
        .hash_many(keys, HEAD_BYTES, permits, |key, head, size| {
            examine(head, key.rsplit('/').next().unwrap_or(key), size)
        })
        .await;
    let judged = futures::stream::iter(reads.into_iter().zip(hashed))
        .map(|(read, hashed)| judge(source, root, read, hashed))
        .buffer_unordered(concurrency);
    futures::pin_mut!(judged);
    while let Some(outcome) = judged.next().await {
        outcomes.push(outcome);
    }
    outcomes
}

/// Turns a read object into a change: a refreshed fingerprint when its checksum is the known
/// one, otherwise new content, typed (as its start was read) and probed.
async fn judge(source: &Source, root: Uuid, read: Read, hashed: Result<Hashed<Probed>, BlobError>) -> Outcome {
    let Read {
        listed,
        known,
        restoring,
        dirs,
        title,
    } = read;
    let hashed = match hashed {
        Ok(hashed) => hashed,
        Err(e) => return Outcome::Failed(listed.key, e.to_string(), 0),
    };
    let read = hashed.size;
    if let Some(known) = &known
        && known.checksum.as_deref() == Some(hashed.checksum.as_str())
    {
        return Outcome::Act(
            Box::new(Action::Refresh {
                id: known.id,
                fingerprint: listed.fingerprint,
                restored: restoring,
            }),
            read,
        );
    }
    let probed = complete(
        hashed.inspected,
        hashed.size,
        Whole::file(source.local_path(&listed.key)),
    )
    .await;
    let at = now();
    let item = Item {
        item_type: probed.item_type,
        mime_type: probed.mime_type,
        size: i64::try_from(hashed.size).unwrap_or(i64::MAX),
        checksum: Some(hashed.checksum),
        media: probed.media,
        ..Item::new(root, title, source.name().to_owned(), listed.key, at)
    };
    let action = match known {
        Some(known) => Action::Content {
            id: known.id,
            item: Box::new(item),
            fingerprint: listed.fingerprint,
            restored: restoring,
        },
        None => Action::Create {
            row: rows::NewRow::encode(&item, &listed.fingerprint),
            dirs,
        },
    };
    Outcome::Act(Box::new(action), read)
}
