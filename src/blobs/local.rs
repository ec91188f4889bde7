//! The `file://` backend: a directory whose files are the objects, keyed by their relative path.
//!
//! Writes go to a temp file in `ROOT/.stowage-tmp/` on a blocking thread (hashing with blake3 as
//! they go) and are renamed into place only when the whole body arrived, so a reader never sees
//! half an object. Nothing outside the root is read, written or deleted: keys cannot hold `..`,
//! and paths are checked after resolving symlinks.

use std::io::{SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::ReaderStream;

use super::{Answering, BlobError, Bucket, ByteStream, Listed, Method, ObjectKey, Written};

/// The directory inside the root that holds writes in progress; no key may start with it.
pub const TMP_DIR: &str = ".stowage-tmp";
/// Bytes gathered before one write + hash step on the blocking thread.
const WRITE_CHUNK: usize = 1 << 20;
/// Chunks queued between the request and the blocking writer.
const WRITE_QUEUE: usize = 4;
/// Bytes per read from disk.
const READ_CHUNK: usize = 256 << 10;

/// A bucket in a local directory.
pub struct LocalBucket {
    name: String,
    root: PathBuf,
    tmp: PathBuf,
    /// Names this process's writes in progress (`TMP_DIR/OWNER-….part`).
    owner: String,
    /// Locked for as long as this bucket is open, so other processes know `owner` is alive.
    _owner_lock: std::fs::File,
}

enum Msg {
    Chunk(Bytes),
    Finish(oneshot::Sender<Written>),
}

impl LocalBucket {
    /// Opens (creating when missing) the directory `dir` as bucket `name`.
    pub fn open(name: &str, dir: &str) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(BlobError::io(format!("cannot create bucket directory {dir}")))?;
        let root = std::fs::canonicalize(dir).map_err(BlobError::io(format!("cannot resolve {dir}")))?;
        let tmp = root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(BlobError::io(format!("cannot create {}", tmp.display())))?;
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let owner_lock = lock_owner(&tmp, &owner)?;
        let removed = remove_unowned_writes(&tmp, &owner);
        if removed > 0 {
            tracing::info!(bucket = name, removed, "removed what interrupted uploads had left");
        }
        Ok(Self {
            name: name.to_owned(),
            root,
            tmp,
            owner,
            _owner_lock: owner_lock,
        })
    }

    /// The file that holds `key`.
    fn path_for(&self, key: &ObjectKey) -> Result<PathBuf, BlobError> {
        if key.as_str().split('/').next() == Some(TMP_DIR) {
            return Err(BlobError::InvalidKey(format!("`{key}`: {TMP_DIR}/ is reserved")));
        }
        Ok(self.root.join(key.as_str()))
    }
}

/// Creates and locks `TMP/OWNER.lock`, which stays locked while the process lives. It is
/// locked under another name first and renamed into place, so no other process ever sees the
/// file of a live owner unlocked.
fn lock_owner(tmp: &Path, owner: &str) -> Result<std::fs::File, BlobError> {
    let locking = tmp.join(format!("{owner}.locking"));
    let file =
        std::fs::File::create(&locking).map_err(BlobError::io(format!("cannot create {}", locking.display())))?;
    file.try_lock()
        .map_err(|e| BlobError::io(format!("cannot lock {}", locking.display()))(std::io::Error::other(e)))?;
    let lock = tmp.join(format!("{owner}.lock"));
    std::fs::rename(&locking, &lock).map_err(BlobError::io(format!("cannot create {}", lock.display())))?;
    Ok(file)
}

/// Removes the temp files of writes that no live process can own (their owner's lock file is
/// not locked any more: the process was killed), and those of owners that left no lock file.
/// Answers how many writes were removed.
fn remove_unowned_writes(tmp: &Path, own: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else { return 0 };
    let names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    let mut alive = std::collections::HashSet::from([own.to_owned()]);
    for owner in names.iter().filter_map(|name| name.strip_suffix(".lock")) {
        let path = tmp.join(format!("{owner}.lock"));
        let Ok(file) = std::fs::File::open(&path) else { continue };
        match file.try_lock() {
            // Nobody holds it: its process is gone. Removing it while holding the lock is safe:
            // a live process never unlocks its own.
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => {
                alive.insert(owner.to_owned());
            }
        }
    }
    let mut removed = 0;
    for name in names.iter().filter(|name| name.ends_with(".part")) {
        let owner = name.split_once('-').map_or("", |(owner, _)| owner);
        if !alive.contains(owner) && std::fs::remove_file(tmp.join(name)).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for LocalBucket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.tmp.join(format!("{}.lock", self.owner)));
    }
}

/// Fails unless `path`, with symlinks resolved, lies inside `root`.
fn ensure_inside(root: &Path, path: &Path, key: &ObjectKey) -> Result<(), BlobError> {
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(root) => Ok(()),
        Ok(_) => Err(BlobError::InvalidKey(format!("`{key}` resolves outside the bucket"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(key.to_string())),
        Err(e) => Err(BlobError::io(format!("cannot resolve `{key}`"))(e)),
    }
}

/// The blocking half of a write: appends and hashes chunks, then syncs and renames on `Finish`.
/// When the channel closes without `Finish`, or anything fails, the temp file is removed.
fn write_blocking(
    mut rx: mpsc::Receiver<Msg>,
    root: &Path,
    tmp: &Path,
    dest: &Path,
    key: &ObjectKey,
) -> Result<(), BlobError> {
    let result = (|| {
        let mut file = std::fs::File::create(tmp).map_err(BlobError::io(format!("cannot create {}", tmp.display())))?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Msg::Chunk(chunk)) => {
                    file.write_all(&chunk)
                        .map_err(BlobError::io(format!("cannot write {}", tmp.display())))?;
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                }
                Some(Msg::Finish(reply)) => {
                    file.sync_data()
                        .map_err(BlobError::io(format!("cannot sync {}", tmp.display())))?;
                    drop(file);
                    let parent = dest.parent().unwrap_or(root);
                    std::fs::create_dir_all(parent)
                        .map_err(BlobError::io(format!("cannot create {}", parent.display())))?;
                    ensure_inside(root, parent, key)?;
                    std::fs::rename(tmp, dest)
                        .map_err(BlobError::io(format!("cannot move the upload to {}", dest.display())))?;
                    let written = Written {
                        size,
                        checksum: hasher.finalize().to_hex().to_string(),
                    };
                    if reply.send(written).is_err() {
                        // The writer gave up after all: take the object back.
                        let _ = std::fs::remove_file(dest);
                    }
                    return Ok(());
                }
                None => return Err(BlobError::Body(std::io::Error::other("the write was abandoned"))),
            }
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[async_trait::async_trait]
impl Bucket for LocalBucket {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write<'a>(&self, key: &ObjectKey, mut body: ByteStream<'a>) -> Result<Written, BlobError> {
        let dest = self.path_for(key)?;
        let tmp = self
            .tmp
            .join(format!("{}-{}.part", self.owner, uuid::Uuid::new_v4().simple()));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (root, owned_key) = (self.root.clone(), key.clone());
        let writer = tokio::task::spawn_blocking(move || write_blocking(rx, &root, &tmp, &dest, &owned_key));
        let outcome = async {
            let mut buf = BytesMut::new();
            while let Some(chunk) = body.next().await {
                buf.extend_from_slice(&chunk.map_err(BlobError::Body)?);
                if buf.len() >= WRITE_CHUNK && tx.send(Msg::Chunk(buf.split().freeze())).await.is_err() {
                    return Ok(None);
                }
            }
            if !buf.is_empty() && tx.send(Msg::Chunk(buf.freeze())).await.is_err() {
                return Ok(None);
            }
            let (reply, answer) = oneshot::channel();
            if tx.send(Msg::Finish(reply)).await.is_err() {
                return Ok(None);
            }
            Ok(answer.await.ok())
        }
        .await;
        drop(tx);
        let joined = writer
            .await
            .map_err(|e| BlobError::io("the writer thread failed")(std::io::Error::other(e)));
        match (outcome, joined) {
            (Ok(Some(written)), _) => Ok(written),
            (Err(body_error), _) => Err(body_error),
            (Ok(None), Ok(Err(write_error)) | Err(write_error)) => Err(write_error),
            (Ok(None), Ok(Ok(()))) => Err(BlobError::io("the writer stopped early")(std::io::Error::other(
                "no result from the writer thread",
            ))),
        }
    }

    async fn read(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream<'static>, BlobError> {
        let path = self.path_for(key)?;
        let (root, owned_key) = (self.root.clone(), key.clone());
        let file = tokio::task::spawn_blocking(move || {
            ensure_inside(&root, &path, &owned_key)?;
            std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::NotFound(owned_key.to_string()),
                _ => BlobError::io(format!("cannot open `{owned_key}`"))(e),
            })
        })
        .await
        .map_err(|e| BlobError::io("the reader thread failed")(std::io::Error::other(e)))??;
        stream_file(file, key.as_str(), range).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        let (root, owned_key) = (self.root.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let parent = path.parent().unwrap_or(&root);
            match ensure_inside(&root, parent, &owned_key) {
                Err(BlobError::NotFound(_)) => return Ok(()),
                other => other?,
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(BlobError::io(format!("cannot delete `{owned_key}`"))(e))
                }
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| BlobError::io("the delete thread failed")(std::io::Error::other(e)))?
    }

    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), BlobError> {
        let (source, dest) = (self.path_for(from)?, self.path_for(to)?);
        let (root, from, to) = (self.root.clone(), from.clone(), to.clone());
        tokio::task::spawn_blocking(move || {
            ensure_inside(&root, &source, &from)?;
            let parent = dest.parent().unwrap_or(&root);
            std::fs::create_dir_all(parent).map_err(BlobError::io(format!("cannot create {}", parent.display())))?;
            ensure_inside(&root, parent, &to)?;
            std::fs::rename(&source, &dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::NotFound(from.to_string()),
                _ => BlobError::io(format!("cannot move `{from}` to `{to}`"))(e),
            })
        })
        .await
        .map_err(|e| BlobError::io("the move thread failed")(std::io::Error::other(e)))?
    }

    fn list_older_than(&self, before: SystemTime) -> BoxStream<'static, Result<Listed, BlobError>> {
        let (tx, rx) = mpsc::channel(1024);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let walk = walkdir::WalkDir::new(&root)
                .min_depth(1)
                .into_iter()
                .filter_entry(|e| e.depth() != 1 || e.file_name() != TMP_DIR);
            for entry in walk {
                let listed = match entry {
                    Err(e) => Err(BlobError::io(format!("cannot list {}", root.display()))(e.into())),
                    Ok(entry) if !entry.file_type().is_file() => continue,
                    Ok(entry) => {
                        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
                        let key = entry
                            .path()
                            .strip_prefix(&root)
                            .ok()
                            .and_then(Path::to_str)
                            .and_then(|k| ObjectKey::parse(k).ok());
                        match (key, modified) {
                            (Some(key), Some(modified)) if modified < before => Ok(Listed { key, modified }),
                            _ => continue,
                        }
                    }
                };
                if tx.blocking_send(listed).is_err() {
                    return;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|next| (next, rx)) }).boxed()
    }

    async fn remove_incomplete_writes(&self, before: SystemTime) -> Result<u64, BlobError> {
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let entries = std::fs::read_dir(&tmp).map_err(BlobError::io(format!("cannot list {}", tmp.display())))?;
            for entry in entries.flatten() {
                if !entry.file_name().to_string_lossy().ends_with(".part") {
                    continue; // owners' lock files
                }
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < before);
                if stale && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| BlobError::io("the cleanup thread failed")(std::io::Error::other(e)))?
    }

    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        self.path_for(key).ok()
    }

    /// A directory cannot sign: the daemon serves its own signed URLs for it.
    async fn signed_url(
        &self,
        _: Method,
        _: &ObjectKey,
        _: Duration,
        _: &Answering,
    ) -> Result<Option<url::Url>, BlobError> {
        Ok(None)
    }

    /// The daemon's own PUT takes a file of any size into a directory.
    fn parts(&self) -> Option<&super::parts::StoreParts> {
        None
    }
}

/// Streams an open file (object `key`), whole or the bytes `range` of it.
pub(super) async fn stream_file(
    file: std::fs::File,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<ByteStream<'static>, BlobError> {
    let mut file = tokio::fs::File::from_std(file);
    let (start, len) = match range {
        Some(r) => (r.start, r.end.saturating_sub(r.start)),
        None => (0, u64::MAX),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(BlobError::io(format!("cannot seek in `{key}`")))?;
    }
    Ok(ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::TryStreamExt;

    use super::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).expect("valid key")
    }

    fn chunks(parts: Vec<std::io::Result<Bytes>>) -> ByteStream<'static> {
        futures::stream::iter(parts).boxed()
    }

    async fn read_all(bucket: &LocalBucket, k: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let stream = bucket.read(&key(k), range).await.expect("read");
        let parts: Vec<Bytes> = stream.try_collect().await.expect("stream");
        parts.concat()
    }

    /// Every file below `dir` but the owners' lock files.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().ends_with(".lock"))
            .map(|e| e.path().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn writes_hash_and_read_back_with_ranges() {
        let dir = tempfile::tempdir().expect("tmp");
        let bucket = LocalBucket::open("t", dir.path().to_str().expect("utf8")).expect("open");
        let big = vec![7u8; WRITE_CHUNK * 2 + 5];
        let parts = vec![Ok(Bytes::from_static(b"hello ")), Ok(Bytes::from(big.clone()))];
        let written = bucket.write(&key("a/b/c.bin"), chunks(parts)).await.expect("write");
        let mut all = b"hello ".to_vec();
        all.extend_from_slice(&big);
        assert_eq!(written.size, all.len() as u64);
        assert_eq!(written.checksum, blake3::hash(&all).to_hex().to_string());
        assert_eq!(read_all(&bucket, "a/b/c.bin", None).await, all);
        assert_eq!(read_all(&bucket, "a/b/c.bin", Some(1..5)).await, b"ello");
        assert!(matches!(
            bucket.read(&key("nope"), None).await,
            Err(BlobError::NotFound(_))
        ));
        bucket.delete(&key("a/b/c.bin")).await.expect("delete");
        bucket.delete(&key("a/b/c.bin")).await.expect("deleting twice is fine");
        assert!(files_under(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_or_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let bucket = LocalBucket::open("t", dir.path().to_str().expect("utf8")).expect("open");
        let parts = vec![
            Ok(Bytes::from(vec![1u8; WRITE_CHUNK + 1])),
            Err(std::io::Error::other("client went away")),
        ];
        let err = bucket.write(&key("x"), chunks(parts)).await.expect_err("body failed");
        assert!(matches!(err, BlobError::Body(_)), "{err}");
        assert!(files_under(dir.path()).is_empty());

        // A write whose future is dropped midway.
        let pending = futures::stream::iter(vec![Ok(Bytes::from(vec![1u8; WRITE_CHUNK + 1]))])
            .chain(futures::stream::pending())
            .boxed();
        let y = key("y");
        let write = bucket.write(&y, pending);
        assert!(tokio::time::timeout(Duration::from_millis(200), write).await.is_err());
        for _ in 0..50 {
            if files_under(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(files_under(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn never_leaves_the_root() {
        let dir = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        let root = dir.path().join("bucket");
        let bucket = LocalBucket::open("t", root.to_str().expect("utf8")).expect("open");
        std::os::unix::fs::symlink(outside.path(), root.join("link")).expect("symlink");
        assert!(matches!(
            bucket.read(&key("link/secret"), None).await,
            Err(BlobError::InvalidKey(_))
        ));
        let body = chunks(vec![Ok(Bytes::from_static(b"x"))]);
        assert!(bucket.write(&key("link/new"), body).await.is_err());
        assert!(!outside.path().join("new").exists());
        bucket.delete(&key("link/secret")).await.expect_err("outside");
        assert!(outside.path().join("secret").exists());
        assert!(bucket.read(&key(".stowage-tmp/x"), None).await.is_err());
    }

    #[tokio::test]
    async fn opening_removes_the_writes_of_dead_owners_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().to_str().expect("utf8");
        let live = LocalBucket::open("t", path).expect("open");
        let writer = std::sync::Arc::new(LocalBucket::open("t", path).expect("open"));
        let pending = futures::stream::iter(vec![Ok(Bytes::from(vec![1u8; WRITE_CHUNK + 1]))])
            .chain(futures::stream::pending())
            .boxed();
        let write = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(&key("slow"), pending).await }
        });
        // A killed process left a lock nobody holds and a write of its own; an older version
        // left a write with no owner in its name.
        std::fs::write(live.tmp.join("dead.lock"), b"").expect("lock");
        std::fs::write(live.tmp.join("dead-1.part"), b"x").expect("part");
        std::fs::write(live.tmp.join("0123.part"), b"x").expect("part");
        std::fs::write(live.tmp.join(format!("{}-2.part", live.owner)), b"x").expect("part");
        let names = || {
            let mut names: Vec<String> = files_under(&live.tmp)
                .iter()
                .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                .collect();
            names.sort();
            names
        };
        for _ in 0..100 {
            if names().len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(names().len(), 4, "the slow write is under way: {:?}", names());
        let _restarted = LocalBucket::open("t", path).expect("open");
        let left = names();
        assert_eq!(left.len(), 2, "only the live owners' writes stay: {left:?}");
        assert!(left.contains(&format!("{}-2.part", live.owner)), "{left:?}");
        assert!(left.iter().any(|n| n.starts_with(&writer.owner)), "{left:?}");
        assert!(!live.tmp.join("dead.lock").exists());
        write.abort();
    }

    #[tokio::test]
    async fn lists_old_objects_and_sweeps_temp_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let bucket = LocalBucket::open("t", dir.path().to_str().expect("utf8")).expect("open");
        for k in ["a/1", "b/2"] {
            let body = chunks(vec![Ok(Bytes::from_static(b"x"))]);
            bucket.write(&key(k), body).await.expect("write");
        }
        std::fs::write(bucket.tmp.join(format!("{}-left.part", bucket.owner)), b"x").expect("temp");
        let later = SystemTime::now() + Duration::from_secs(1);
        let mut listed: Vec<String> = bucket
            .list_older_than(later)
            .map_ok(|l| l.key.to_string())
            .try_collect()
            .await
            .expect("list");
        listed.sort();
        assert_eq!(listed, ["a/1", "b/2"]);
        let earlier = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(bucket.list_older_than(earlier).count().await, 0);
        assert_eq!(bucket.remove_incomplete_writes(earlier).await.expect("sweep"), 0);
        assert_eq!(bucket.remove_incomplete_writes(later).await.expect("sweep"), 1);
    }
}
