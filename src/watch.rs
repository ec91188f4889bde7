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
        .map(|(name, root)| tokio::spawn(watch_bucket(services.clone(), name, root, shutdown.clone())))
        .collect()
}

/// The key of `path` inside `root`, when it is inside and named in UTF-8.
fn key_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let key = relative.to_str()?.trim_matches('/').to_owned();
    (!key.is_empty()).then_some(key)
}

async fn watch_bucket(services: Services, bucket: String, root: PathBuf, shutdown: CancellationToken) {
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let (tx, mut events) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
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
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut last_event = Instant::now();
    loop {
        tokio::select! {
            Some(path) = events.recv() => {
                if let Some(key) = key_of(&root, &path) {
                    pending.insert(key);
                    last_event = Instant::now();
                }
            }
            () = tokio::time::sleep(TICK) => {
                if !pending.is_empty() && last_event.elapsed() >= DEBOUNCE {
                    pending = submit(&services, &bucket, pending).await;
                }
            }
            () = shutdown.cancelled() => return,
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
