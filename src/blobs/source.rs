//! Read-only access to a configured bucket, for sync and import: list (in key order, streaming,
//! with per-entry errors), and read an object once to hash it and sniff its head. Local
//! directories use the native walker and std::fs (object_store's LocalFileSystem follows
//! symlinks out of the root, lists in readdir order and ends a whole listing at the first bad
//! entry); S3, GCS and Azure use object_store. Nothing here ever writes or deletes.

use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

use super::BlobError;
use super::walk::{walk, walk_keys};
use crate::config::BucketSettings;
use crate::domain::fingerprint::Fingerprint;

/// How many listing entries wait between the lister and the sync.
const LIST_BUFFER: usize = 1024;
/// Files at least this large are hashed memory-mapped on all cores.
const MMAP_HASH_FROM: u64 = 4 * 1024 * 1024;

/// One result of a listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An object.
    Object {
        /// Its full key in the bucket.
        key: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// Something under `key` (a key prefix ending in `/`, or one key) could not be listed; the
    /// catalog below it must be left alone.
    Unreadable {
        /// The key or key prefix.
        key: String,
        /// Why.
        message: String,
    },
    /// An entry that is deliberately not an object (a symlink out of the root…).
    Skipped {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl ListEntry {
    /// The key (or key prefix) the entry is about.
    pub fn key(&self) -> &str {
        match self {
            ListEntry::Object { key, .. } | ListEntry::Unreadable { key, .. } | ListEntry::Skipped { key, .. } => key,
        }
    }
}

/// An object read once: its checksum, size and first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// blake3, lowercase hex.
    pub checksum: String,
    /// Bytes read.
    pub size: u64,
    /// The first bytes (up to `head_bytes`), for type detection.
    pub head: Vec<u8>,
}

enum Backend {
    Local(PathBuf),
    Remote(Arc<dyn ObjectStore>),
}

/// A configured bucket, opened for reading.
pub struct Source {
    name: String,
    url: String,
    backend: Backend,
}

impl Source {
    /// Opens bucket `name` as configured. Credentials come from the environment variables the
    /// configuration names; a missing variable is an error that names it.
    pub fn open(name: &str, settings: &BucketSettings) -> Result<Self, BlobError> {
        let unsupported = |m: String| BlobError::Unsupported(format!("buckets.{name}: {m}"));
        let url = url::Url::parse(&settings.url).map_err(|e| unsupported(format!("bad url: {e}")))?;
        let backend = if url.scheme() == "file" {
            Backend::Local(PathBuf::from(url.path()))
        } else {
            let mut options: Vec<(String, String)> = settings.options.clone().into_iter().collect();
            for (option, variable) in &settings.credentials_env {
                let value = std::env::var(variable).map_err(|_| {
                    unsupported(format!(
                        "credentials_env.{option}: environment variable {variable} is not set"
                    ))
                })?;
                options.push((option.clone(), value));
            }
            Backend::Remote(remote_store(&url, settings, &options).map_err(unsupported)?)
        };
        Ok(Self {
            name: name.to_owned(),
            url: settings.url.clone(),
            backend,
        })
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
        self.url.split(':').next().unwrap_or_default()
    }

    /// The object as a local file (local buckets only), for tools that need a path.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(root) => Some(root.join(key)),
            Backend::Remote(_) => None,
        }
    }

    /// Lists every object whose key starts with `prefix` (empty, or ending in `/`), in key
    /// order, into a bounded channel; the lister stops when the receiver is dropped.
    pub fn list(&self, prefix: &str) -> mpsc::Receiver<ListEntry> {
        let (tx, rx) = mpsc::channel(LIST_BUFFER);
        let prefix = prefix.to_owned();
        match &self.backend {
            Backend::Local(root) => {
                let dir = root.join(&prefix);
                tokio::task::spawn_blocking(move || walk(&dir, &prefix, |entry| tx.blocking_send(entry).is_ok()));
            }
            Backend::Remote(store) => {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let location = Path::from(prefix.trim_end_matches('/'));
                    let mut listing = store.list((!prefix.is_empty()).then_some(&location));
                    while let Some(next) = listing.next().await {
                        let entry = match next {
                            Ok(meta) => ListEntry::Object {
                                key: meta.location.to_string(),
                                fingerprint: Fingerprint {
                                    size: meta.size,
                                    modified_micros: meta.last_modified.timestamp_micros().into(),
                                    etag: meta.e_tag,
                                    version: meta.version,
                                },
                            },
                            Err(e) => ListEntry::Unreadable {
                                key: prefix.clone(),
                                message: e.to_string(),
                            },
                        };
                        let failed = matches!(entry, ListEntry::Unreadable { .. });
                        if tx.send(entry).await.is_err() || failed {
                            return;
                        }
                    }
                });
            }
        }
        rx
    }

    /// Lists only `keys` (and everything below those that are directories), in key order; a
    /// key that no longer exists yields nothing. Local buckets only (they are the ones watched).
    pub fn list_keys(&self, keys: Vec<String>) -> mpsc::Receiver<ListEntry> {
        let (tx, rx) = mpsc::channel(LIST_BUFFER);
        match &self.backend {
            Backend::Local(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    for entry in walk_keys(&root, &keys) {
                        if tx.blocking_send(entry).is_err() {
                            return;
                        }
                    }
                });
            }
            Backend::Remote(_) => {
                let _ = tx.try_send(ListEntry::Unreadable {
                    key: String::new(),
                    message: "listing chosen keys is only supported for local buckets".into(),
                });
            }
        }
        rx
    }

    /// Reads object `key` once: blake3 of the whole content, its size, and its first `head_bytes`.
    pub async fn hash(&self, key: &str, head_bytes: usize) -> Result<Hashed, BlobError> {
        match &self.backend {
            Backend::Local(root) => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || hash_file(&path, head_bytes))
                    .await
                    .map_err(|e| BlobError::Unsupported(format!("hashing task failed: {e}")))?
                    .map_err(BlobError::io(format!("cannot read `{key}`")))
            }
            Backend::Remote(store) => {
                let got = store.get(&Path::from(key)).await.map_err(|e| remote_error(key, e))?;
                let mut stream = got.into_stream();
                let mut hasher = blake3::Hasher::new();
                let mut head = Vec::new();
                let mut size = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| remote_error(key, e))?;
                    if head.len() < head_bytes {
                        let take = (head_bytes - head.len()).min(chunk.len());
                        head.extend_from_slice(&chunk[..take]);
                    }
                    size += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                Ok(Hashed {
                    checksum: hasher.finalize().to_hex().to_string(),
                    size,
                    head,
                })
            }
        }
    }

    /// Checks the bucket can be listed (the first object, if any).
    pub async fn check(&self) -> Result<(), BlobError> {
        let mut listing = self.list("");
        match listing.recv().await {
            Some(ListEntry::Unreadable { message, .. }) => Err(BlobError::Unsupported(message)),
            _ => Ok(()),
        }
    }
}

fn remote_error(key: &str, err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
        other => BlobError::Io {
            context: format!("cannot read `{key}`"),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// Hashes a local file: memory-mapped on all cores when large, streamed otherwise.
fn hash_file(path: &FsPath, head_bytes: usize) -> std::io::Result<Hashed> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = vec![0; head_bytes];
    let mut filled = 0;
    while filled < head_bytes {
        match file.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    let size = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    if size >= MMAP_HASH_FROM {
        hasher.update_mmap_rayon(path)?;
    } else {
        hasher.update(&head);
        hasher.update_reader(&mut file)?;
    }
    Ok(Hashed {
        checksum: hasher.finalize().to_hex().to_string(),
        size,
        head,
    })
}

/// Builds an object_store client for an `s3://`, `gs://` or `az://` URL.
fn remote_store(
    url: &url::Url,
    settings: &BucketSettings,
    options: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, String> {
    let bucket = url.host_str().unwrap_or_default();
    let root = url.path().trim_matches('/');
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            b = b.with_region(settings.region.clone().unwrap_or_else(|| "us-east-1".into()));
            if let Some(endpoint) = &settings.endpoint {
                b = b.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
            }
            b = b.with_allow_http(settings.allow_http);
            for (k, v) in options {
                b = b.with_config(
                    object_store::aws::AmazonS3ConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                    v,
                );
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
            for (k, v) in options {
                b = b.with_config(
                    object_store::gcp::GoogleConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                    v,
                );
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "az" => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(bucket);
            if let Some(endpoint) = &settings.endpoint {
                b = b.with_endpoint(endpoint.clone());
            }
            b = b.with_allow_http(settings.allow_http);
            for (k, v) in options {
                b = b.with_config(
                    object_store::azure::AzureConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                    v,
                );
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("scheme `{other}` is not supported")),
    };
    Ok(if root.is_empty() {
        store
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, root))
    })
}
