//! The writing side of a sync: batches of changes go to a task of their own, which applies each
//! in one write transaction (creating the folders new objects need) while the run gathers the
//! next, and counts what it committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::fingerprint::Fingerprint;
use crate::domain::folder::{Folder, FolderName, FolderPath};
use crate::domain::item::Item;
use crate::domain::quota::QuotaExceeded;
use crate::domain::webhook::EventKind;
use crate::services::jobs::context::JobFailure;
use crate::services::now;
use crate::store::Db;
use crate::store::usage::Ledger;
use crate::store::{Store, StoreError, TreeLock, folders as folder_rows, sync as rows, webhooks as webhook_rows};

/// One change to apply.
pub(super) enum Action {
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
        /// The object's key.
        key: String,
        fingerprint: Fingerprint,
        restored: bool,
    },
}

impl Action {
    /// The key of the object the change is for.
    fn key(&self) -> &str {
        match self {
            Action::Create { row, .. } => row.key(),
            Action::Content { item, .. } => &item.object_key,
            Action::Refresh { key, .. } => key,
        }
    }

    /// What the change adds to the count of committed changes.
    fn counted(&self) -> Applied {
        let mut applied = Applied {
            actions: 1,
            ..Applied::default()
        };
        match self {
            Action::Create { .. } => applied.created = 1,
            Action::Content { restored, .. } => {
                applied.updated = 1;
                applied.restored = u64::from(*restored);
            }
            Action::Refresh { restored: true, .. } => applied.restored = 1,
            Action::Refresh { restored: false, .. } => applied.unchanged = 1,
        }
        applied
    }
}

/// The stage that applies changes: batches go to a task of its own, which writes each in one
/// transaction (or only counts it, on a dry run) while the run gathers the next. What it
/// committed is counted until the run takes it ([`Writer::take_committed`]).
pub(super) struct Writer {
    batches: Option<mpsc::Sender<Vec<Action>>>,
    task: tokio::task::JoinHandle<Result<(), JobFailure>>,
    /// What the task has committed and the run has not reported yet.
    committed: Arc<Mutex<Applied>>,
}

/// What committed batches changed: how many changes, and the counts of the result they add to.
#[derive(Default)]
pub(super) struct Applied {
    /// Changes applied (or counted, on a dry run).
    pub(super) actions: i64,
    /// New items.
    pub(super) created: u64,
    /// Items with new content.
    pub(super) updated: u64,
    /// Tombstones whose object is back.
    pub(super) restored: u64,
    /// Items whose checksum was the known one (only their fingerprint was refreshed).
    pub(super) unchanged: u64,
    /// Changes a quota refused, by object key, with the refusal.
    pub(super) refused: Vec<(String, String)>,
}

impl Applied {
    /// Adds `other`'s counts to `self`'s.
    fn add(&mut self, other: &Applied) {
        self.actions += other.actions;
        self.created += other.created;
        self.updated += other.updated;
        self.restored += other.restored;
        self.unchanged += other.unchanged;
        self.refused.extend(other.refused.iter().cloned());
    }
}

impl Writer {
    /// Starts the task; batches wait for it four deep.
    pub(super) fn spawn(store: Store, root: Folder, dry_run: bool) -> Self {
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
    pub(super) async fn send(&mut self, batch: Vec<Action>) -> bool {
        if batch.is_empty() {
            return true;
        }
        match &self.batches {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        }
    }

    /// What was committed since the last call, taken out of the count.
    pub(super) fn take_committed(&self) -> Applied {
        std::mem::take(&mut *self.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Waits until every batch handed over is written: what was committed since the last
    /// [`take_committed`](Self::take_committed), and the task's failure, if it had one.
    pub(super) async fn finish(mut self) -> (Applied, Result<(), JobFailure>) {
        self.batches = None;
        let outcome = (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(JobFailure::Retryable(format!("the sync's writer failed: {e}"))));
        (self.take_committed(), outcome)
    }

    /// Stops the task, abandoning the batch it is writing (its transaction rolls back): what it
    /// had committed since the last [`take_committed`](Self::take_committed).
    pub(super) async fn stop(mut self) -> Applied {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.take_committed()
    }
}

/// Applies a batch of changes in one transaction (or only counts them on a dry run). When a
/// quota refuses the batch, its changes are applied one by one, and the ones that do not fit are
/// counted as refused: the rest of the sync goes on.
async fn apply(
    store: &Store,
    root: &Folder,
    folders: &mut HashMap<String, Uuid>,
    batch: Vec<Action>,
    dry_run: bool,
) -> Result<Applied, JobFailure> {
    let mut applied = Applied::default();
    let counted = |batch: &[Action]| {
        let mut applied = Applied::default();
        batch.iter().for_each(|action| applied.add(&action.counted()));
        applied
    };
    if dry_run {
        return Ok(counted(&batch));
    }
    if write(store, root, folders, &batch).await?.is_ok() {
        return Ok(counted(&batch));
    }
    for action in batch {
        let one = std::slice::from_ref(&action);
        match write(store, root, folders, one).await? {
            Ok(()) => applied.add(&counted(one)),
            Err(refusal) => applied.refused.push((action.key().to_owned(), refusal.told_to(None))),
        }
    }
    Ok(applied)
}

/// Writes `batch` in one transaction, with the usage it moves; a quota's refusal rolls it back.
async fn write(
    store: &Store,
    root: &Folder,
    folders: &mut HashMap<String, Uuid>,
    batch: &[Action],
) -> Result<Result<(), QuotaExceeded>, JobFailure> {
    let mut made: HashMap<String, Uuid> = HashMap::new();
    let mut created: Vec<(Uuid, &rows::NewRow)> = Vec::new();
    let mut tx = store.write_tree(TreeLock::Shared).await?;
    ensure_root_in_place(&mut tx, root).await?;
    // What the batch's keys held before, and after: a new object, new content, a tombstone
    // brought back, or a row a killed sync had written already.
    let keys: Vec<&str> = batch.iter().map(Action::key).collect();
    let mut ledger = Ledger::default();
    let before = rows::usage_at(&mut tx, root.id, &keys).await?;
    ledger.release(&mut tx, &before).await?;
    for action in batch {
        match action {
            Action::Create { row, dirs } => {
                created.push((folder_for(&mut tx, root, dirs, folders, &mut made).await?, row));
            }
            Action::Content {
                id, item, fingerprint, ..
            } => rows::set_content(&mut tx, *id, item, fingerprint).await?,
            Action::Refresh { id, fingerprint, .. } => rows::refresh(&mut tx, *id, fingerprint).await?,
        }
    }
    rows::upsert_many(&mut tx, root.id, &created).await?;
    if webhook_rows::items_wanted(&mut tx).await? {
        let made: Vec<&str> = created.iter().map(|(_, row)| row.key()).collect();
        let changed: Vec<&str> = batch
            .iter()
            .filter(|a| matches!(a, Action::Content { .. }))
            .map(Action::key)
            .collect();
        webhook_rows::insert_synced_items(&mut tx, root.id, &made, EventKind::ItemCreated).await?;
        webhook_rows::insert_synced_items(&mut tx, root.id, &changed, EventKind::ItemUpdated).await?;
    }
    let after = rows::usage_at(&mut tx, root.id, &keys).await?;
    ledger.charge(&mut tx, &after).await?;
    match ledger.settle(&mut tx).await {
        Err(StoreError::QuotaExceeded(refusal)) => return Ok(Err(refusal)),
        settled => settled?,
    }
    tx.commit().await?;
    folders.extend(made);
    Ok(Ok(()))
}

/// Refuses to write a batch when the synced folder is no longer where the sync found it (renamed,
/// moved, trashed or given to another owner since): the batch's folders are found by path below
/// it. The tree lock the batch holds keeps it in place for the rest of the batch; a retry syncs
/// it where it is.
async fn ensure_root_in_place(conn: &mut dyn Db, root: &Folder) -> Result<(), JobFailure> {
    let now = folder_rows::by_id(conn, root.id).await?;
    match now {
        Some(record) if record.folder.path == root.path && record.folder.owner == root.owner => Ok(()),
        _ => Err(JobFailure::Retryable(format!(
            "the synced folder {} was renamed, moved or deleted while it synced; the next attempt syncs it where it is",
            root.path
        ))),
    }
}

/// The folder for an object in `dirs` below `root`, creating the missing ones (inside the
/// batch's transaction; `made` collects them until it commits).
async fn folder_for(
    conn: &mut dyn Db,
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
                folder_rows::insert_if_absent(conn, &folder).await?;
                let found = folder_rows::by_path(conn, &path).await?;
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
