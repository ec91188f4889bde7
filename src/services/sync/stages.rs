//! The reading side of a sync, as stages joined by bounded channels: the bucket listing (checked
//! for key order), the catalog of the synced root (a page at a time), their diff (on a blocking
//! thread), and the evaluation of each step (reading, hashing and probing the objects that may
//! have changed) into [`Outcome`]s for the run.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use super::writer::Action;
use crate::blobs::BlobError;
use crate::blobs::listing::{Hashed, ListEntry};
use crate::blobs::source::Source;
use crate::domain::diff::{Known, Listed, Step, diff};
use crate::domain::folder::FolderName;
use crate::domain::item::{Item, check_title};
use crate::services::now;
use crate::services::probe::{HEAD_BYTES, Probed, Whole, as_pair_image, complete, examine};
use crate::store::{Store, sync as rows};

/// Catalog rows read per query.
const CATALOG_PAGE: u32 = 1000;
/// Chunks buffered between the stages of a sync.
const STAGE_BUFFER: usize = 8;
/// Diff steps handed on at once (one hand-over between tasks per chunk, not per object).
const STEP_CHUNK: usize = 256;

/// What the listing stage learned besides the objects.
#[derive(Debug, Default)]
pub(super) struct ListingReport {
    /// Key prefixes (or keys) that could not be listed: nothing below them is tombstoned.
    pub(super) unreadable: Vec<(String, String)>,
    /// Set when the listing as a whole failed: nothing is tombstoned at all.
    pub(super) failed: Option<String>,
    /// Objects listed.
    pub(super) listed: u64,
    /// Entries skipped on purpose.
    pub(super) skipped: u64,
}

/// What one diff step turned into.
pub(super) enum Outcome {
    Unchanged,
    Tombstone(Uuid, String),
    Act(Box<Action>, u64),
    Failed(String, String, u64),
    /// A chunk of steps was lost (its task panicked): the run must not go on as if complete.
    Broken(String),
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

/// Streams the bucket listing into `Listed` entries, checking key order and noting what could
/// not be listed.
pub(super) fn spawn_listing(
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
pub(super) fn spawn_catalog(store: Store, root: Uuid) -> mpsc::Receiver<Vec<Known>> {
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
            if tx.send(page).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A channel already holding `rows` (a catalog small enough to read at once).
pub(super) fn channel_of(rows: Vec<Known>) -> mpsc::Receiver<Vec<Known>> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(rows);
    rx
}

/// Merges the two key-ordered streams on a blocking thread (the diff is a plain iterator),
/// handing its steps on in chunks.
pub(super) fn spawn_diff(
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
pub(super) fn spawn_evaluation(
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
                key: listed.key,
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
    let probed = as_pair_image(source, &listed.key, hashed.size, probed).await;
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
