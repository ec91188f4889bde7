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
use tokio::sync::mpsc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ServiceError;
use super::folders::{now, require};
use super::jobs::context::{JobContext, JobFailure};
use super::jobs::{JobService, Runner, Submission, Submitted};
use super::probe::{HEAD_BYTES, Whole, probe};
use crate::blobs::Buckets;
use crate::blobs::source::{Hashed, ListEntry, Source};
use crate::domain::caller::{Access, Caller};
use crate::domain::diff::{Known, Listed, Step, diff};
use crate::domain::fingerprint::Fingerprint;
use crate::domain::folder::{Folder, FolderName, FolderPath};
use crate::domain::item::{Item, check_title};
use crate::domain::job::JobKind;
use crate::store::{Store, TreeLock, folders as folder_rows, sync as rows};

/// The share of a folder's live items a sync may tombstone unless told otherwise.
pub const DEFAULT_MAX_TOMBSTONE_RATIO: f64 = 0.5;
/// Below this many live items the ratio guard does not apply.
pub const RATIO_GUARD_FROM: i64 = 100;
/// Changes applied per transaction.
const BATCH: usize = 500;
/// Catalog rows read per query.
const CATALOG_PAGE: u32 = 1000;
/// Entries buffered between the stages of a sync.
const STAGE_BUFFER: usize = 1024;

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
            return Err(ServiceError::Invalid(format!(
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
        item: Item,
        fingerprint: Fingerprint,
        /// The folders from the synced root down to the item.
        dirs: Vec<FolderName>,
    },
    Content {
        id: Uuid,
        item: Item,
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
}

/// Runs SYNC jobs.
pub struct SyncRunner {
    store: Store,
    buckets: Buckets,
    hash_concurrency: usize,
}

impl SyncRunner {
    /// A runner hashing at most `hash_concurrency` objects at once.
    pub fn new(store: Store, buckets: Buckets, hash_concurrency: usize) -> Self {
        Self {
            store,
            buckets,
            hash_concurrency: hash_concurrency.max(1),
        }
    }
}

impl Runner for SyncRunner {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(self.sync(ctx))
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
        .map(|s| FolderName::parse(s).map_err(|e| format!("cannot make a folder for `{key}`: {e}")))
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
            JobFailure::Fatal(format!("bucket `{}` is not configured in this process", binding.bucket))
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
                    rows::known_touching(&mut conn, root_id, &keys)
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
        let mut folders: HashMap<String, Uuid> = HashMap::new();
        while let Some(outcome) = outcomes.recv().await {
            match outcome {
                Outcome::Unchanged => {
                    result.unchanged += 1;
                    ctx.add_pending(1);
                    ctx.done(1);
                }
                Outcome::Tombstone(id, key) => tombstones.push((id, key)),
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
                    if batch.len() >= BATCH {
                        let before = result;
                        self.apply(
                            &root,
                            &mut folders,
                            std::mem::take(&mut batch),
                            &mut result,
                            params.dry_run,
                            ctx,
                        )
                        .await
                        .map_err(|failure| stopped(ctx, before, failure))?;
                    }
                }
            }
            // The result is recorded when the run stops, not per object (building it for
            // every object was a measurable share of a no-change re-sync).
            ctx.checkpoint()
                .await
                .map_err(|failure| stopped(ctx, result, failure))?;
        }
        let before = result;
        self.apply(&root, &mut folders, batch, &mut result, params.dry_run, ctx)
            .await
            .map_err(|failure| stopped(ctx, before, failure))?;

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

    /// Applies a batch of changes in one transaction (or only counts them on a dry run).
    async fn apply(
        &self,
        root: &Folder,
        folders: &mut HashMap<String, Uuid>,
        batch: Vec<Action>,
        result: &mut SyncResult,
        dry_run: bool,
        ctx: &mut JobContext,
    ) -> Result<(), JobFailure> {
        if batch.is_empty() {
            return Ok(());
        }
        let size = batch.len() as i64;
        let mut made: HashMap<String, Uuid> = HashMap::new();
        let mut created: Vec<(Item, Fingerprint)> = Vec::new();
        let mut tx = if dry_run {
            None
        } else {
            Some(
                self.store
                    .write_tree(TreeLock::Shared)
                    .await
                    .map_err(ServiceError::from)?,
            )
        };
        for action in batch {
            match action {
                Action::Create {
                    mut item,
                    fingerprint,
                    dirs,
                } => {
                    result.created += 1;
                    if let Some(tx) = tx.as_mut() {
                        item.folder_id = folder_for(tx, root, &dirs, folders, &mut made).await?;
                        created.push((item, fingerprint));
                    }
                }
                Action::Content {
                    id,
                    item,
                    fingerprint,
                    restored,
                } => {
                    result.updated += 1;
                    result.restored += u64::from(restored);
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
                        result.restored += 1;
                    } else {
                        result.unchanged += 1;
                    }
                    if let Some(tx) = tx.as_mut() {
                        rows::refresh(tx, id, &fingerprint).await.map_err(ServiceError::from)?;
                    }
                }
            }
        }
        if let Some(mut tx) = tx {
            for chunk in created.chunks(rows::UPSERT_ROWS) {
                rows::upsert_many(&mut tx, root.id, chunk)
                    .await
                    .map_err(ServiceError::from)?;
            }
            tx.commit().await.map_err(ServiceError::from)?;
        }
        folders.extend(made);
        ctx.done(size);
        Ok(())
    }
}

/// Records `result` as what the run did before it stopped, and passes `failure` on.
fn stopped(ctx: &mut JobContext, result: SyncResult, failure: JobFailure) -> JobFailure {
    ctx.set_result(serde_json::to_value(result).unwrap_or_default());
    failure
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
    mut entries: mpsc::Receiver<ListEntry>,
    prefix: &str,
    report: Arc<Mutex<ListingReport>>,
) -> mpsc::Receiver<Listed> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    let prefix = prefix.to_owned();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        let note = |change: &dyn Fn(&mut ListingReport)| {
            change(&mut report.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
        };
        while let Some(entry) = entries.recv().await {
            match entry {
                ListEntry::Object { key, fingerprint } => {
                    if last.as_deref().is_some_and(|prev| prev.as_bytes() >= key.as_bytes()) {
                        note(&|r| r.failed = Some(format!("the listing came out of key order at `{key}`")));
                        return;
                    }
                    note(&|r| r.listed += 1);
                    last = Some(key.clone());
                    if tx.send(Listed { key, fingerprint }).await.is_err() {
                        return;
                    }
                }
                ListEntry::Unreadable { key, message } if key == prefix => {
                    note(&|r| r.failed = Some(message.clone()));
                    return;
                }
                ListEntry::Unreadable { key, message } => note(&|r| r.unreadable.push((key.clone(), message.clone()))),
                ListEntry::Skipped { .. } => note(&|r| r.skipped += 1),
            }
        }
    });
    rx
}

/// Streams the synced root's catalog in key order, a page at a time.
fn spawn_catalog(store: Store, root: Uuid) -> mpsc::Receiver<Known> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let page = match store.read().await {
                Ok(mut conn) => rows::known_page(&mut conn, root, after.as_deref(), CATALOG_PAGE).await,
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
            for known in page {
                if tx.send(known).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// A channel already holding `rows` (a catalog small enough to read at once).
fn channel_of(rows: Vec<Known>) -> mpsc::Receiver<Known> {
    let (tx, rx) = mpsc::channel(rows.len().max(1));
    for row in rows {
        let _ = tx.try_send(row);
    }
    rx
}

/// Merges the two key-ordered streams on a blocking thread (the diff is a plain iterator).
fn spawn_diff(
    mut listed: mpsc::Receiver<Listed>,
    mut known: mpsc::Receiver<Known>,
    force_rehash: bool,
) -> mpsc::Receiver<Step> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    tokio::task::spawn_blocking(move || {
        let listed = std::iter::from_fn(|| listed.blocking_recv());
        let known = std::iter::from_fn(|| known.blocking_recv());
        for step in diff(listed, known, force_rehash) {
            if tx.blocking_send(step).is_err() {
                return;
            }
        }
    });
    rx
}

/// Turns the diff's steps into outcomes, reading up to `concurrency` objects at once, in a task
/// of its own: reading goes on while a batch of changes is being written.
fn spawn_evaluation(
    mut steps: mpsc::Receiver<Step>,
    source: Arc<Source>,
    prefix: String,
    root: Uuid,
    concurrency: usize,
) -> mpsc::Receiver<Outcome> {
    let (tx, rx) = mpsc::channel(STAGE_BUFFER);
    tokio::spawn(async move {
        let outcomes = futures::stream::poll_fn(move |cx| steps.poll_recv(cx))
            .map(|step| evaluate(Arc::clone(&source), prefix.clone(), root, step))
            .buffer_unordered(concurrency);
        futures::pin_mut!(outcomes);
        while let Some(outcome) = outcomes.next().await {
            if tx.send(outcome).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Turns a diff step into a change, reading the object when the step needs it.
async fn evaluate(source: Arc<Source>, prefix: String, root: Uuid, step: Step) -> Outcome {
    let (listed, known, restoring) = match step {
        Step::Unchanged(_) => return Outcome::Unchanged,
        Step::Tombstone(known) => return Outcome::Tombstone(known.id, known.key),
        Step::Create(listed) => (listed, None, false),
        Step::Check(listed, known) => (listed, Some(known), false),
        Step::Restore(listed, known) => (listed, Some(known), true),
    };
    let (dirs, title) = match layout(&prefix, &listed.key) {
        Ok(layout) => layout,
        Err(message) => return Outcome::Failed(listed.key, message, 0),
    };
    let hashed: Hashed = match source.hash(&listed.key, HEAD_BYTES).await {
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
    let probed = probe(
        &hashed.head,
        &title,
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
            item,
            fingerprint: listed.fingerprint,
            restored: restoring,
        },
        None => Action::Create {
            item,
            fingerprint: listed.fingerprint,
            dirs,
        },
    };
    Outcome::Act(Box::new(action), read)
}
