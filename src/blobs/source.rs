//! Read-only access to a configured bucket, for sync and import: list (in key order, streaming,
//! with per-entry errors), and read an object once to hash it and sniff its head. Local
//! directories use the native walker and std::fs (object_store's LocalFileSystem follows
//! symlinks out of the root, lists in readdir order and ends a whole listing at the first bad
//! entry); S3, GCS and Azure use object_store. Nothing here ever writes or deletes.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::sync::{Semaphore, mpsc};

use super::counted::count;
use super::expected::{Expected, Recheck, exactly};
use super::file_hash::hash_file;
use super::listing::{Hashed, ListEntry};
use super::remote::{addresses, get_remote, hash_object, meta_fingerprint, open_remote, remote_error, signed_url};
use super::walk::{file_fingerprint, walk, walk_keys};
use super::{Answering, BlobError, ByteStream};
use crate::config::BucketSettings;
use crate::domain::fingerprint::Fingerprint;

/// How many chunks of listing entries wait between the lister and the sync.
const LIST_BUFFER: usize = 8;
/// Entries a listing hands over at once.
const LIST_CHUNK: usize = 256;

enum Backend {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        /// Signs URLs for tools that read over HTTP (ffprobe), with the key prefix the bucket's
        /// URL names (the signer sees the whole bucket).
        signer: Option<(Arc<dyn Signer>, String)>,
    },
}

/// How long a signed URL handed to ffprobe stays valid.
const SIGNED_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A configured bucket, opened for reading.
pub struct Source {
    name: String,
    url: String,
    backend: Backend,
    addresses: Vec<url::Url>,
    allow: Vec<String>,
}

impl Source {
    /// Opens bucket `name` as configured. Credentials come from the environment variables the
    /// configuration names; a missing variable is an error that names it.
    pub fn open(name: &str, settings: &BucketSettings) -> Result<Self, BlobError> {
        let url = url::Url::parse(&settings.url)
            .map_err(|e| BlobError::Unsupported(format!("buckets.{name}: bad url: {e}")))?;
        let (backend, addresses) = if url.scheme() == "file" {
            (
                Backend::Local(PathBuf::from(url.path())),
                addresses(&url, settings, &[]),
            )
        } else {
            let opened = open_remote(name, settings)?;
            let backend = Backend::Remote {
                store: opened.store,
                signer: opened.signer,
            };
            (backend, opened.addresses)
        };
        Ok(Self {
            name: name.to_owned(),
            url: settings.url.clone(),
            backend,
            addresses,
            allow: settings.allow.clone(),
        })
    }

    /// The users besides the admins who may use this bucket (`buckets.NAME.allow`).
    pub fn allowed_users(&self) -> &[String] {
        &self.allow
    }

    /// The URL prefixes (each ending in `/`) under which object URLs name this bucket's objects:
    /// its configured URL, and the https forms its store answers at.
    pub fn addresses(&self) -> &[url::Url] {
        &self.addresses
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured URL (it holds no secrets).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend kind: `file`, `s3`, `gs` or `az`.
    pub fn kind(&self) -> &str {
        super::backend_label(&self.url)
    }

    /// The object as a local file (local buckets only), for tools that need a path.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(root) => Some(root.join(key)),
            Backend::Remote { .. } => None,
        }
    }

    /// Lists every object whose key starts with `prefix` (empty, or ending in `/`), in key
    /// order, into a bounded channel, a chunk of entries at a time (one hand-over between tasks
    /// per chunk, not per object); the lister stops when the receiver is dropped.
    pub fn list(&self, prefix: &str) -> mpsc::Receiver<Vec<ListEntry>> {
        let (tx, rx) = mpsc::channel(LIST_BUFFER);
        let prefix = prefix.to_owned();
        match &self.backend {
            Backend::Local(root) => {
                let dir = root.join(&prefix);
                tokio::task::spawn_blocking(move || {
                    let (started, mut failed) = (Instant::now(), false);
                    let mut chunk = Vec::with_capacity(LIST_CHUNK);
                    walk(&dir, &prefix, |entry| {
                        failed |= matches!(entry, ListEntry::Unreadable { .. });
                        chunk.push(entry);
                        chunk.len() < LIST_CHUNK
                            || tx
                                .blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(LIST_CHUNK)))
                                .is_ok()
                    });
                    if !chunk.is_empty() {
                        let _ = tx.blocking_send(chunk);
                    }
                    count_listing("file", started, failed);
                });
            }
            Backend::Remote { store, .. } => {
                let store = Arc::clone(store);
                let backend = self.kind().to_owned();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let location = Path::from(prefix.trim_end_matches('/'));
                    let mut listing = store
                        .list((!prefix.is_empty()).then_some(&location))
                        .ready_chunks(LIST_CHUNK);
                    while let Some(next) = listing.next().await {
                        let mut chunk = Vec::with_capacity(next.len());
                        let mut failed = false;
                        for meta in next {
                            match meta {
                                Ok(meta) => chunk.push(ListEntry::Object {
                                    fingerprint: meta_fingerprint(&meta),
                                    key: meta.location.to_string(),
                                }),
                                Err(e) => {
                                    chunk.push(ListEntry::Unreadable {
                                        key: prefix.clone(),
                                        message: e.to_string(),
                                    });
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if tx.send(chunk).await.is_err() || failed {
                            count_listing(&backend, started, failed);
                            return;
                        }
                    }
                    count_listing(&backend, started, false);
                });
            }
        }
        rx
    }

    /// Lists only `keys` (and everything below those that are directories), in key order, as
    /// one chunk; a key that no longer exists yields nothing. Local buckets only (they are the
    /// ones watched).
    pub fn list_keys(&self, keys: Vec<String>) -> mpsc::Receiver<Vec<ListEntry>> {
        let (tx, rx) = mpsc::channel(1);
        match &self.backend {
            Backend::Local(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.blocking_send(walk_keys(&root, &keys));
                });
            }
            Backend::Remote { .. } => {
                let _ = tx.try_send(vec![ListEntry::Unreadable {
                    key: String::new(),
                    message: "listing chosen keys is only supported for local buckets".into(),
                }]);
            }
        }
        rx
    }

    /// Reads every object of `keys` once, answering in their order: blake3 of the whole content,
    /// the bytes hashed, and what `inspect` makes of the key, the object's first `head_bytes` and
    /// its size (a local file's as the file system gives it before reading; a remote object's as
    /// streamed, after reading it all). A local bucket reads them one after another in a single
    /// blocking task, holding one of `permits` (a thread hand-over per object cost more than
    /// hashing a small file); a remote one reads them concurrently, each holding a permit while
    /// it is read.
    pub async fn hash_many<T, F>(
        &self,
        keys: Vec<String>,
        head_bytes: usize,
        permits: &Semaphore,
        inspect: F,
    ) -> Vec<Result<Hashed<T>, BlobError>>
    where
        T: Send + 'static,
        F: Fn(&str, &[u8], u64) -> T + Send + Sync + 'static,
    {
        if keys.is_empty() {
            return Vec::new();
        }
        match &self.backend {
            Backend::Local(root) => {
                // The semaphore is never closed; were it, reading without a permit is harmless.
                let _permit = permits.acquire().await.ok();
                let root = root.clone();
                let keys_count = keys.len();
                tokio::task::spawn_blocking(move || {
                    keys.iter()
                        .map(|key| {
                            let started = Instant::now();
                            // A panic inspecting one file's bytes fails that file, not its chunk.
                            let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                hash_file(&root.join(key), head_bytes, |head, size| inspect(key, head, size))
                            }))
                            .map_err(|_| BlobError::Unsupported(format!("reading `{key}` panicked")))
                            .and_then(|hashed| hashed.map_err(BlobError::io(format!("cannot read `{key}`"))));
                            count("file", "read", started, hashed)
                        })
                        .collect()
                })
                .await
                .unwrap_or_else(|e| {
                    (0..keys_count)
                        .map(|_| Err(BlobError::Unsupported(format!("hashing task failed: {e}"))))
                        .collect()
                })
            }
            Backend::Remote { store, .. } => {
                let inspect = &inspect;
                let backend = self.kind();
                let reads = keys.iter().map(|key| async move {
                    let _permit = permits.acquire().await.ok();
                    let started = Instant::now();
                    let hashed =
                        hash_object(store.as_ref(), key, head_bytes, |head, size| inspect(key, head, size)).await;
                    count(backend, "read", started, hashed)
                });
                futures::future::join_all(reads).await
            }
        }
    }

    /// Looks object `key` up without reading it: its fingerprint (size, modification time, ETag).
    /// In a local bucket the file must be a regular file inside the root once every symlink on
    /// its path is followed; anything else is [`BlobError::InvalidKey`].
    pub async fn head(&self, key: &str) -> Result<Fingerprint, BlobError> {
        let started = Instant::now();
        let found = async {
            match &self.backend {
                Backend::Local(root) => {
                    let (root, key) = (root.clone(), key.to_owned());
                    tokio::task::spawn_blocking(move || local_file(&root, &key).map(|(_, fingerprint)| fingerprint))
                        .await
                        .map_err(|e| BlobError::Unsupported(format!("lookup task failed: {e}")))?
                }
                Backend::Remote { store, .. } => {
                    let meta = store.head(&Path::from(key)).await.map_err(|e| remote_error(key, e))?;
                    Ok(meta_fingerprint(&meta))
                }
            }
        }
        .await;
        count(self.kind(), "head", started, found)
    }

    /// Streams object `key`, whole or the bytes `range` of it (a range past the end is cut
    /// short, as HTTP does).
    pub async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream<'static>, BlobError> {
        let started = Instant::now();
        let opened = async {
            match &self.backend {
                Backend::Local(root) => {
                    let (root, owned) = (root.clone(), key.to_owned());
                    let file = tokio::task::spawn_blocking(move || {
                        let (path, _) = local_file(&root, &owned)?;
                        std::fs::File::open(&path).map_err(BlobError::io(format!("cannot open `{owned}`")))
                    })
                    .await
                    .map_err(|e| BlobError::Unsupported(format!("lookup task failed: {e}")))??;
                    super::local::stream_file(file, key, range).await
                }
                Backend::Remote { store, .. } => {
                    let got = get_remote(store.as_ref(), key, range).await?;
                    Ok(got.into_stream().map_err(std::io::Error::other).boxed())
                }
            }
        }
        .await;
        count(self.kind(), "read", started, opened)
    }

    /// Streams object `key` like [`read`](Self::read), but only while it is the object the
    /// catalog recorded (`expected`); see [`super::expected`].
    pub async fn read_expected(
        &self,
        key: &str,
        expected: &Expected,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream<'static>, BlobError> {
        let started = Instant::now();
        let opened = async {
            let want = expected.length_of(range.as_ref());
            match &self.backend {
                Backend::Local(root) => {
                    let (root, owned) = (root.clone(), key.to_owned());
                    let (file, opened) = tokio::task::spawn_blocking(move || open_local(&root, &owned))
                        .await
                        .map_err(|e| BlobError::Unsupported(format!("lookup task failed: {e}")))??;
                    expected.check(key, &opened, true)?;
                    let watched = file
                        .try_clone()
                        .map_err(BlobError::io(format!("cannot open `{key}`")))?;
                    let recheck: Recheck = Box::new(move || match watched.metadata() {
                        Ok(meta) if file_fingerprint(&meta) == opened => Ok(()),
                        Ok(_) => Err("it was modified".into()),
                        Err(e) => Err(format!("cannot stat it: {e}")),
                    });
                    let body = super::local::stream_file(file, key, range).await?;
                    Ok(exactly(body, want, key, Some(recheck)))
                }
                Backend::Remote { store, .. } => {
                    let got = get_remote(store.as_ref(), key, range).await?;
                    expected.check(key, &meta_fingerprint(&got.meta), false)?;
                    let body = got.into_stream().map_err(std::io::Error::other).boxed();
                    Ok(exactly(body, want, key, None))
                }
            }
        }
        .await;
        count(self.kind(), "read", started, opened)
    }

    /// Checks, without reading it, that object `key` is still the object the catalog recorded.
    pub async fn check_expected(&self, key: &str, expected: &Expected) -> Result<(), BlobError> {
        let current = self.head(key).await?;
        expected.check(key, &current, matches!(self.backend, Backend::Local(_)))
    }

    /// Looks object `key` up and reads its first `limit` bytes (fewer when it is shorter): one
    /// ranged request to a cloud store (its answer carries the object's metadata), one open
    /// file locally (resolved as [`head`](Self::head) does).
    pub async fn head_and_start(&self, key: &str, limit: usize) -> Result<(Fingerprint, Vec<u8>), BlobError> {
        let started = Instant::now();
        let first_bytes = async {
            let (fingerprint, stream) = match &self.backend {
                Backend::Local(root) => {
                    let (root, owned) = (root.clone(), key.to_owned());
                    let (file, fingerprint) = tokio::task::spawn_blocking(move || {
                        let (path, fingerprint) = local_file(&root, &owned)?;
                        let file =
                            std::fs::File::open(&path).map_err(BlobError::io(format!("cannot open `{owned}`")))?;
                        Ok::<_, BlobError>((file, fingerprint))
                    })
                    .await
                    .map_err(|e| BlobError::Unsupported(format!("lookup task failed: {e}")))??;
                    let stream = super::local::stream_file(file, key, Some(0..limit as u64)).await?;
                    (fingerprint, stream)
                }
                Backend::Remote { store, .. } => {
                    let location = Path::from(key);
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(0..limit.max(1) as u64)),
                        ..GetOptions::default()
                    };
                    let got = match store.get_opts(&location, options).await {
                        Ok(got) => got,
                        // An empty object has no byte 0 to range over (416): it is all head.
                        Err(object_store::Error::Generic { .. }) | Err(object_store::Error::NotSupported { .. }) => {
                            let fingerprint = self.head(key).await?;
                            if fingerprint.size == 0 {
                                return Ok((fingerprint, Vec::new()));
                            }
                            return Err(BlobError::Unsupported(format!("cannot read the start of `{key}`")));
                        }
                        Err(e) => return Err(remote_error(key, e)),
                    };
                    (
                        meta_fingerprint(&got.meta),
                        got.into_stream().map_err(std::io::Error::other).boxed(),
                    )
                }
            };
            let mut stream = stream;
            let mut start = Vec::with_capacity(limit.min(usize::try_from(fingerprint.size).unwrap_or(limit)));
            while start.len() < limit
                && let Some(chunk) = stream.next().await
            {
                let chunk = chunk.map_err(BlobError::io(format!("cannot read `{key}`")))?;
                let take = (limit - start.len()).min(chunk.len());
                start.extend_from_slice(&chunk[..take]);
            }
            Ok((fingerprint, start))
        }
        .await;
        count(self.kind(), "read", started, first_bytes)
    }

    /// Where a tool that reads files or HTTP URLs (ffprobe) finds object `key`: the local file,
    /// or a signed URL valid for a few minutes; `None` when the store cannot sign.
    pub async fn media_location(&self, key: &str) -> Option<String> {
        match &self.backend {
            Backend::Local(root) => Some(root.join(key).to_string_lossy().into_owned()),
            Backend::Remote { .. } => match self.signed_url(key, SIGNED_URL_LIFETIME, &Answering::default()).await {
                Ok(url) => url.map(String::from),
                Err(e) => {
                    tracing::debug!(bucket = %self.name, key, error = %e, "cannot sign a URL for ffprobe");
                    None
                }
            },
        }
    }

    /// A URL that reads object `key` without credentials for `lifetime`, answering with
    /// `answering` where the store can; `None` for a local directory, which cannot sign.
    pub async fn signed_url(
        &self,
        key: &str,
        lifetime: std::time::Duration,
        answering: &Answering,
    ) -> Result<Option<url::Url>, BlobError> {
        match &self.backend {
            Backend::Remote {
                signer: Some((signer, root)),
                ..
            } => signed_url(signer.as_ref(), root, Method::GET, key, lifetime, answering)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Checks the bucket can be listed (the first object, if any).
    pub async fn check(&self) -> Result<(), BlobError> {
        let mut listing = self.list("");
        match listing.recv().await.and_then(|chunk| chunk.into_iter().next()) {
            Some(ListEntry::Unreadable { message, .. }) => Err(BlobError::Unsupported(message)),
            _ => Ok(()),
        }
    }
}

/// Counts a listing of a bucket of `backend`, begun at `started`, that ended (whole, or
/// stopped by its reader) or `failed`.
fn count_listing(backend: &str, started: Instant, failed: bool) {
    let outcome = if failed { "error" } else { "ok" };
    crate::metrics::bucket_operation(backend, "list", outcome, started.elapsed());
}

/// Resolves `key` in the local bucket at `root`: the file (every symlink followed) and its
/// fingerprint. The resolved file must be a regular file inside the root.
fn local_file(root: &FsPath, key: &str) -> Result<(PathBuf, Fingerprint), BlobError> {
    let canonical_root =
        std::fs::canonicalize(root).map_err(BlobError::io(format!("cannot open {}", root.display())))?;
    let path = match std::fs::canonicalize(canonical_root.join(key)) {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound(key.to_owned())),
        Err(e) => return Err(BlobError::io(format!("cannot open `{key}`"))(e)),
    };
    if !path.starts_with(&canonical_root) {
        return Err(BlobError::InvalidKey(format!(
            "`{key}` is a symlink to a file outside the bucket; it is not read"
        )));
    }
    let meta = std::fs::metadata(&path).map_err(BlobError::io(format!("cannot stat `{key}`")))?;
    if !meta.is_file() {
        return Err(BlobError::InvalidKey(format!("`{key}` is a directory, not an object")));
    }
    Ok((path, file_fingerprint(&meta)))
}

/// A local object opened for a checked read: the file, and its fingerprint when opened.
fn open_local(root: &FsPath, key: &str) -> Result<(std::fs::File, Fingerprint), BlobError> {
    let (path, _) = local_file(root, key)?;
    let file = std::fs::File::open(&path).map_err(BlobError::io(format!("cannot open `{key}`")))?;
    let meta = file.metadata().map_err(BlobError::io(format!("cannot stat `{key}`")))?;
    Ok((file, file_fingerprint(&meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_inspecting_one_file_fails_that_file_only() {
        let dir = tempfile::tempdir().expect("tmp");
        for name in ["a", "b", "c"] {
            std::fs::write(dir.path().join(name), name).expect("write");
        }
        let settings = BucketSettings::at(format!("file://{}", dir.path().display()));
        let source = Source::open("local", &settings).expect("open");
        let permits = Semaphore::new(1);
        let keys = ["a", "b", "c"].map(String::from).to_vec();
        let hashed = source
            .hash_many(keys, 16, &permits, |key, head, _| {
                assert_ne!(key, "b", "inspecting b panics");
                head.to_vec()
            })
            .await;
        let inspected: Vec<_> = hashed
            .iter()
            .map(|h| h.as_ref().ok().map(|h| h.inspected.clone()))
            .collect();
        assert_eq!(inspected, [Some(b"a".to_vec()), None, Some(b"c".to_vec())]);
        let message = hashed[1].as_ref().err().map(ToString::to_string).unwrap_or_default();
        assert!(message.contains("reading `b` panicked"), "{message}");
    }
}
