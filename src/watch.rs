//! Watches local buckets configured with `watch = true`: file system events are debounced and
//! turned into incremental syncs of just the touched keys, for every synced folder over the
//! bucket. The scheduled full syncs still catch whatever events miss (a watcher can drop events
//! under load, and sees nothing while the process is down).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::background::{self, FirstRound, Periodic};
use crate::config::Settings;
use crate::domain::job::JobKind;
use crate::services::Services;
use crate::services::jobs::Submission;
use crate::services::sync::SyncParams;
use crate::store::sync as rows;

/// Quiet time after the last event before the touched keys are synced.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often pending keys are looked at.
const TICK: Duration = Duration::from_millis(100);
/// The user name recorded on the syncs the watcher submits.
pub const WATCHER: &str = "watcher";

/// Starts a watcher for every watched local bucket; each runs until `shutdown`.
pub fn start(
    services: &Services,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    settings
        .buckets
        .iter()
        .filter(|(_, bucket)| bucket.watch)
        .filter_map(|(name, bucket)| {
            bucket
                .url
                .strip_prefix("file://")
                .map(|root| (name.clone(), PathBuf::from(root)))
        })
        .map(|(name, root)| {
            let own = own_files(settings);
            tokio::spawn(watch_bucket(services.clone(), name, root, own, shutdown.clone()))
        })
        .collect()
}

/// The directories stowage itself writes to (the data directory with the SQLite catalog, the
/// managed bucket): changes there are never a reason to sync, even inside a watched bucket.
fn own_files(settings: &Settings) -> Vec<PathBuf> {
    let managed = settings
        .buckets
        .get(crate::config::MANAGED_BUCKET)
        .and_then(|b| b.url.strip_prefix("file://"))
        .map(PathBuf::from);
    [Some(settings.data_dir.clone()), managed]
        .into_iter()
        .flatten()
        .map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir))
        .collect()
}

/// The paths of `event` whose objects may have changed: creations, writes (and the close after
/// them), renames, removals and attribute changes, outside stowage's `own` directories.
/// Opening, reading and closing a file unchanged (a sync reading the bucket does all three) and
/// access-time updates change nothing.
fn changed_paths(event: notify::Event, own: &[PathBuf]) -> Vec<PathBuf> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
    let changes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
    };
    if !changes {
        return Vec::new();
    }
    event
        .paths
        .into_iter()
        .filter(|path| !own.iter().any(|dir| path.starts_with(dir)))
        .collect()
}

/// The key of `path` inside `root`, when it is inside and named in UTF-8.
fn key_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let key = relative.to_str()?.trim_matches('/').to_owned();
    (!key.is_empty()).then_some(key)
}

async fn watch_bucket(
    services: Services,
    bucket: String,
    root: PathBuf,
    own: Vec<PathBuf>,
    shutdown: CancellationToken,
) {
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let (tx, events) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in changed_paths(event, &own) {
                let _ = tx.send(path);
            }
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::error!(%bucket, error = %e, "cannot watch the bucket; scheduled syncs still run");
            return;
        }
    };
    if let Err(e) = watcher.watch(&root, RecursiveMode::Recursive) {
        tracing::error!(%bucket, error = %e, "cannot watch the bucket; scheduled syncs still run");
        return;
    }
    tracing::info!(%bucket, root = %root.display(), "watching for changes");
    let changes = Changes {
        services,
        bucket,
        root,
        events,
        pending: BTreeSet::new(),
        last_event: Instant::now(),
    };
    background::every(changes, TICK, FirstRound::AfterPeriod, shutdown).await;
    // The watcher stops watching when dropped, here, after the loop.
    drop(watcher);
}

/// What a watcher saw change and has not synced yet.
struct Changes {
    services: Services,
    bucket: String,
    root: PathBuf,
    events: mpsc::UnboundedReceiver<PathBuf>,
    /// Keys touched since the last submission.
    pending: BTreeSet<String>,
    last_event: Instant,
}

impl Periodic for Changes {
    /// Takes in the paths the events named; once they have been quiet for [`DEBOUNCE`],
    /// submits syncs of the touched keys.
    async fn round(&mut self) {
        while let Ok(path) = self.events.try_recv() {
            if let Some(key) = key_of(&self.root, &path) {
                self.pending.insert(key);
                self.last_event = Instant::now();
            }
        }
        if !self.pending.is_empty() && self.last_event.elapsed() >= DEBOUNCE {
            let keys = std::mem::take(&mut self.pending);
            self.pending = submit(&self.services, &self.bucket, keys).await;
        }
    }
}

/// Submits an incremental sync of `keys` to every synced folder over `bucket`; returns the keys
/// that must wait (a sync of their folder is already pending or running, or the submission
/// failed), to be tried again on a later tick.
async fn submit(services: &Services, bucket: &str, keys: BTreeSet<String>) -> BTreeSet<String> {
    let folders = match services.store.read().await {
        Ok(mut conn) => rows::synced_folders_of(&mut conn, bucket).await,
        Err(e) => Err(e),
    };
    let folders = match folders {
        Ok(folders) => folders,
        Err(e) => {
            tracing::warn!(%bucket, error = %e, "could not find the folders a change belongs to");
            return keys;
        }
    };
    let mut waiting = BTreeSet::new();
    for (folder, prefix) in folders {
        let touched: Vec<String> = keys.iter().filter(|k| k.starts_with(&prefix)).cloned().collect();
        if touched.is_empty() {
            continue;
        }
        let params = SyncParams {
            paths: Some(touched.clone()),
            ..SyncParams::default()
        };
        let submission = Submission {
            kind: JobKind::Sync,
            folder_id: Some(folder),
            params: serde_json::to_value(params).unwrap_or_default(),
            idempotency_key: None,
            retry_of: None,
        };
        match services.jobs.submit(WATCHER, submission).await {
            Ok(submitted) if submitted.created => {}
            Ok(_) => waiting.extend(touched),
            Err(e) => {
                tracing::warn!(%folder, error = %e, "could not submit a sync for changed files");
                waiting.extend(touched);
            }
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind};
    use notify::{Event, EventKind};

    use super::*;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_outside_stowages_own_files_count() {
        let own = [PathBuf::from("/bucket/.stowage")];
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(changed_paths(event(kind, "/bucket/a.txt"), &own).is_empty(), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert_eq!(
                changed_paths(event(kind, "/bucket/a.txt"), &own),
                [PathBuf::from("/bucket/a.txt")],
                "{kind:?}"
            );
            assert!(
                changed_paths(event(kind, "/bucket/.stowage/stowage.db-wal"), &own).is_empty(),
                "the catalog's own files: {kind:?}"
            );
        }
    }
}
