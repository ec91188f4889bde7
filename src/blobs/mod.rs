//! Buckets: where item content lives. One [`Bucket`] trait for the `managed` bucket that holds
//! uploads, with two backends: a local `file://` directory ([`local::LocalBucket`]) and a cloud
//! store ([`cloud::CloudBucket`]: S3, GCS, Azure). Configured buckets that sync and import read
//! are [`source::Source`]s, which never write.

pub mod cloud;
mod counted;
pub mod expected;
mod file_hash;
pub mod listing;
pub mod local;
pub mod parts;
mod remote;
pub mod source;
pub mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
pub use object_store::signer::Method;

use crate::config::{MANAGED_BUCKET, Settings};

/// The longest object key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A stream of content chunks.
pub type ByteStream<'a> = BoxStream<'a, std::io::Result<Bytes>>;

/// Why a bucket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No object at this key.
    #[error("object `{0}` does not exist")]
    NotFound(String),
    /// The key breaks the key rules.
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The content stream handed to `write` failed (the client went away, or sent too much).
    #[error("the content stream failed: {0}")]
    Body(#[source] std::io::Error),
    /// The bucket's storage failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bucket is configured in a way this build cannot serve.
    #[error("{0}")]
    Unsupported(String),
    /// The object is no longer the one the catalog recorded (see [`expected`]).
    #[error("{0}")]
    Changed(String),
    /// The store refused a request as the client's fault (a 4xx answer), in its own words.
    #[error("the store refused: {0}")]
    Refused(String),
}

impl BlobError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlobError {
        let context = context.into();
        move |source| BlobError::Io { context, source }
    }
}

/// A validated object key: `/`-separated segments, none empty, `.` or `..`, no NUL, no leading
/// `/`, at most [`MAX_KEY_BYTES`]. Keys never name anything outside their bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `key`.
    pub fn parse(key: &str) -> Result<Self, BlobError> {
        let bad = |why: &str| BlobError::InvalidKey(format!("`{}`: {why}", key.escape_debug()));
        if key.is_empty() {
            return Err(bad("empty"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(bad(&format!("longer than {MAX_KEY_BYTES} bytes")));
        }
        if key.contains('\0') {
            return Err(bad("contains NUL"));
        }
        if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(bad("has an empty, `.` or `..` segment (or a leading or trailing `/`)"));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a completed write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes stored.
    pub size: u64,
    /// blake3 of the content, lowercase hex.
    pub checksum: String,
}

/// One object found by [`Bucket::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: ObjectKey,
    /// When it was last written.
    pub modified: SystemTime,
}

/// The response headers a signed GET URL asks the store to answer with (S3 and GCS honour
/// them; Azure answers the object's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answering {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
}

/// The outcome label of a bucket operation's result: `ok`, `not_found` or `error`.
pub fn outcome<T>(result: &Result<T, BlobError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(BlobError::NotFound(_)) => "not_found",
        Err(_) => "error",
    }
}

/// A place objects live: write (streamed, all-or-nothing), read (whole or a byte range), delete.
#[async_trait::async_trait]
pub trait Bucket: Send + Sync + 'static {
    /// The configured name, e.g. `managed`.
    fn name(&self) -> &str;

    /// Stores `body` at `key`, computing its size and blake3 on the way. The object appears only
    /// once the whole body is stored; when the body fails, or this future is dropped midway,
    /// nothing is left behind.
    async fn write<'a>(&self, key: &ObjectKey, body: ByteStream<'a>) -> Result<Written, BlobError>;

    /// Streams the object, or the bytes `range` of it.
    async fn read(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream<'static>, BlobError>;

    /// Removes the object; removing one that does not exist succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError>;

    /// Moves the object at `from` to the fresh key `to` (a server-side copy and a delete on a
    /// cloud store); `NotFound` when there is nothing at `from`.
    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), BlobError>;

    /// Every object last written before `before`, in no particular order.
    fn list_older_than(&self, before: SystemTime) -> BoxStream<'static, Result<Listed, BlobError>>;

    /// Removes what interrupted writes left behind before `before`; answers how many.
    async fn remove_incomplete_writes(&self, before: SystemTime) -> Result<u64, BlobError>;

    /// The object as a local file, for tools that need a path (ffprobe); `None` for remote backends.
    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf>;

    /// A URL of the store itself that lets its holder do `method` on the object without
    /// credentials, for `lifetime`, answering with `answering` where the store can; `None` when
    /// the store cannot sign (a local directory).
    async fn signed_url(
        &self,
        method: Method,
        key: &ObjectKey,
        lifetime: Duration,
        answering: &Answering,
    ) -> Result<Option<url::Url>, BlobError>;

    /// Multipart uploads a client sends straight to the store through presigned part URLs;
    /// `None` where the store cannot presign them (a local directory takes any size in one PUT
    /// through the daemon).
    fn parts(&self) -> Option<&parts::StoreParts>;
}

/// The metric label of the backend a bucket URL names: `file`, `s3`, `gs` or `az`.
pub fn backend_label(url: &str) -> &'static str {
    crate::config::BUCKET_SCHEMES
        .into_iter()
        .find(|scheme| url.strip_prefix(scheme).is_some_and(|rest| rest.starts_with("://")))
        .unwrap_or("other")
}

/// The buckets a process can reach, by name.
#[derive(Clone)]
pub struct Buckets {
    managed: Arc<dyn Bucket>,
    by_name: BTreeMap<String, Arc<dyn Bucket>>,
    sources: BTreeMap<String, Arc<source::Source>>,
    managed_url: String,
}

impl Buckets {
    /// Opens the managed bucket (a local directory or a cloud store) and every other configured
    /// bucket as a [`source::Source`] (read only: opening them creates nothing in them).
    pub fn open(settings: &Settings) -> Result<Self, BlobError> {
        let config = settings
            .buckets
            .get(MANAGED_BUCKET)
            .ok_or_else(|| BlobError::Unsupported(format!("no `{MANAGED_BUCKET}` bucket is configured")))?;
        let managed: Arc<dyn Bucket> = match config.url.strip_prefix("file://") {
            Some(dir) => Arc::new(counted::Counted {
                inner: local::LocalBucket::open(MANAGED_BUCKET, dir)?,
                backend: "file",
            }),
            None => Arc::new(counted::Counted {
                inner: cloud::CloudBucket::open(MANAGED_BUCKET, config)?,
                backend: backend_label(&config.url),
            }),
        };
        let by_name = BTreeMap::from([(MANAGED_BUCKET.to_owned(), managed.clone())]);
        let mut sources = BTreeMap::new();
        for (name, config) in settings
            .buckets
            .iter()
            .filter(|(name, _)| name.as_str() != MANAGED_BUCKET)
        {
            sources.insert(name.clone(), Arc::new(source::Source::open(name, config)?));
        }
        Ok(Self {
            managed,
            by_name,
            sources,
            managed_url: config.url.clone(),
        })
    }

    /// The bucket with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Bucket>> {
        self.by_name.get(name).cloned()
    }

    /// A configured bucket (other than `managed`), opened for reading by sync and import.
    pub fn source(&self, name: &str) -> Option<Arc<source::Source>> {
        self.sources.get(name).cloned()
    }

    /// Every configured bucket other than `managed`, by name.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<source::Source>> {
        self.sources.values()
    }

    /// The managed bucket's URL.
    pub fn managed_url(&self) -> String {
        self.managed_url.clone()
    }

    /// The bucket that holds uploads.
    pub fn managed(&self) -> Arc<dyn Bucket> {
        self.managed.clone()
    }

    /// Streams object `key` of bucket `bucket` (the managed one or a configured source), whole
    /// or the bytes `range` of it.
    pub async fn read(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream<'static>, BlobError> {
        if let Some(source) = self.sources.get(bucket) {
            return source.read(key, range).await;
        }
        let managed = self
            .by_name
            .get(bucket)
            .ok_or_else(|| {
                BlobError::Unsupported(format!(
                    "bucket `{bucket}` is not configured in this process; every process (stowage serve, each stowage worker) needs the same [buckets] configuration"
                ))
            })?;
        managed.read(&ObjectKey::parse(key)?, range).await
    }

    /// Streams object `key` of bucket `bucket` like [`read`](Self::read), but only while it is
    /// the object the catalog recorded: see [`expected`].
    pub async fn read_expected(
        &self,
        bucket: &str,
        key: &str,
        expected: &expected::Expected,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream<'static>, BlobError> {
        if let Some(source) = self.sources.get(bucket) {
            return source.read_expected(key, expected, range).await;
        }
        // Managed objects are never rewritten in place (each upload has a key of its own):
        // only their length is held to the record.
        let want = expected.length_of(range.as_ref());
        let body = self.read(bucket, key, range).await?;
        Ok(expected::exactly(body, want, key, None))
    }

    /// Checks, without reading it, that object `key` of bucket `bucket` is still the object
    /// the catalog recorded (managed objects are taken as recorded).
    pub async fn check_expected(
        &self,
        bucket: &str,
        key: &str,
        expected: &expected::Expected,
    ) -> Result<(), BlobError> {
        match self.sources.get(bucket) {
            Some(source) => source.check_expected(key, expected).await,
            None => Ok(()),
        }
    }

    /// A URL of the store that holds object `key` of bucket `bucket` (the managed one or a
    /// configured source) that reads it without credentials for `lifetime`, answering with
    /// `answering` where the store can; `None` for a local directory, which cannot sign.
    pub async fn signed_url(
        &self,
        bucket: &str,
        key: &str,
        lifetime: Duration,
        answering: &Answering,
    ) -> Result<Option<url::Url>, BlobError> {
        if let Some(source) = self.sources.get(bucket) {
            return source.signed_url(key, lifetime, answering).await;
        }
        match self.by_name.get(bucket) {
            Some(bucket) => {
                bucket
                    .signed_url(Method::GET, &ObjectKey::parse(key)?, lifetime, answering)
                    .await
            }
            None => Err(BlobError::Unsupported(format!(
                "bucket `{bucket}` is not configured in this process"
            ))),
        }
    }

    /// Object `key` of bucket `bucket` as a local file, when the bucket is a local directory.
    pub fn local_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        if let Some(source) = self.sources.get(bucket) {
            return source.local_path(key);
        }
        self.by_name.get(bucket)?.local_path(&ObjectKey::parse(key).ok()?)
    }

    /// The configured bucket and key an object URL names (`s3://bucket/key`,
    /// `https://ACCOUNT.blob.core.windows.net/container/key`, `file:///dir/key`…): the bucket
    /// whose address is the longest prefix of the URL. A URL in no configured bucket, or in the
    /// managed one, is refused with a message saying so; nothing is read either way.
    pub fn locate(&self, object_url: &str) -> Result<(Arc<source::Source>, ObjectKey), BlobError> {
        self.locate_among(object_url, |_| true)
    }

    /// [`locate`](Self::locate) among the buckets `usable` accepts only: the others are treated,
    /// and named in messages, as if they were not configured.
    pub fn locate_among(
        &self,
        object_url: &str,
        usable: impl Fn(&source::Source) -> bool,
    ) -> Result<(Arc<source::Source>, ObjectKey), BlobError> {
        let url = url::Url::parse(object_url)
            .map_err(|e| BlobError::InvalidKey(format!("`{object_url}` is not a URL: {e}")))?;
        let found = self
            .sources
            .values()
            .filter(|source| usable(source))
            .flat_map(|source| source.addresses().iter().map(move |address| (source, address)))
            .filter(|(_, address)| url.as_str().starts_with(address.as_str()))
            .max_by_key(|(_, address)| address.as_str().len());
        let Some((source, address)) = found else {
            let managed = url::Url::parse(&format!("{}/", self.managed_url.trim_end_matches('/')));
            if managed.is_ok_and(|m| url.as_str().starts_with(m.as_str())) {
                return Err(BlobError::Unsupported(format!(
                    "`{object_url}` is in the managed bucket, which holds uploads; import objects from a bucket of your own"
                )));
            }
            let configured: Vec<String> = self
                .sources
                .values()
                .filter(|source| usable(source))
                .map(|s| s.name().to_owned())
                .collect();
            return Err(BlobError::Unsupported(format!(
                "`{object_url}` is not inside any configured bucket you may use ({}; GET /v1/buckets lists them)",
                if configured.is_empty() {
                    "there is none".to_owned()
                } else {
                    configured.join(", ")
                }
            )));
        };
        let encoded = &url.as_str()[address.as_str().len()..];
        let key = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| BlobError::InvalidKey(format!("`{object_url}`: the key is not valid UTF-8")))?;
        Ok((Arc::clone(source), ObjectKey::parse(&key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(ObjectKey::parse("ab/cd/file.png").is_ok());
        assert!(ObjectKey::parse("a b/ünï").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a/../b", "..", "./a", "a\0b"] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ObjectKey::parse(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    /// Buckets: managed in `dir`, `data` at `dir/data`, `deep` at `dir/data/deep`, an S3
    /// bucket with a prefix at a custom endpoint, and an Azure container with its account.
    fn configured(dir: &std::path::Path) -> Buckets {
        use crate::config::BucketSettings;
        let mut settings = Settings {
            data_dir: dir.to_path_buf(),
            ..Settings::default()
        };
        settings.buckets.insert(
            "data".into(),
            BucketSettings::at(format!("file://{}/data", dir.display())),
        );
        settings.buckets.insert(
            "deep".into(),
            BucketSettings::at(format!("file://{}/data/deep", dir.display())),
        );
        let mut s3 = BucketSettings::at("s3://lake/raw");
        s3.endpoint = Some("http://127.0.0.1:9000".into());
        s3.allow_http = true;
        s3.options.insert("access_key_id".into(), "k".into());
        s3.options.insert("secret_access_key".into(), "s".into());
        settings.buckets.insert("lake".into(), s3);
        let mut az = BucketSettings::at("az://box");
        az.options.insert("account_name".into(), "acct".into());
        az.options.insert("access_key".into(), "a2V5".into());
        settings.buckets.insert("blobs".into(), az);
        Buckets::open(&settings.completed().expect("settings")).expect("buckets")
    }

    #[test]
    fn object_urls_map_onto_the_bucket_with_the_longest_matching_address() {
        let dir = tempfile::tempdir().expect("tmp");
        let buckets = configured(dir.path());
        let at = |url: &str| {
            buckets
                .locate(url)
                .map(|(source, key)| (source.name().to_owned(), key.to_string()))
                .map_err(|e| e.to_string())
        };
        let root = dir.path().display();
        assert_eq!(
            at(&format!("file://{root}/data/a/b.png")),
            Ok(("data".into(), "a/b.png".into()))
        );
        assert_eq!(
            at(&format!("file://{root}/data/deep/c.png")),
            Ok(("deep".into(), "c.png".into()))
        );
        assert_eq!(at("s3://lake/raw/x%20y.jpg"), Ok(("lake".into(), "x y.jpg".into())));
        assert_eq!(
            at("http://127.0.0.1:9000/lake/raw/p/q.jpg"),
            Ok(("lake".into(), "p/q.jpg".into()))
        );
        assert_eq!(
            at("https://lake.s3.amazonaws.com/raw/q.jpg"),
            Ok(("lake".into(), "q.jpg".into()))
        );
        assert_eq!(at("az://box/v.mp4"), Ok(("blobs".into(), "v.mp4".into())));
        assert_eq!(
            at("https://acct.blob.core.windows.net/box/d/v.mp4"),
            Ok(("blobs".into(), "d/v.mp4".into()))
        );
        for outside in [
            "s3://lake/other/x.jpg",
            "s3://lake/rawx/x.jpg",
            "https://other.blob.core.windows.net/box/v.mp4",
            "gs://lake/raw/x.jpg",
        ] {
            assert!(
                at(outside).is_err_and(|e| e.contains("not inside any configured bucket")),
                "{outside}"
            );
        }
        let managed = format!("file://{root}/objects/ab/cd");
        assert!(at(&managed).is_err_and(|e| e.contains("managed bucket")));
        assert!(
            at(&format!("file://{root}/data/a//b.png")).is_err(),
            "empty segments are no key"
        );
    }
}
