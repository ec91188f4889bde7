//! The managed bucket on S3, GCS or Azure (through object_store).
//!
//! A write gathers the body's first [`PART_BYTES`]: a body that ends there is stored with one
//! PUT; a longer one becomes a multipart upload of [`PART_BYTES`] parts with at most
//! [`PARTS_IN_FLIGHT`] of them sent at once, so an upload holds at most
//! `(PARTS_IN_FLIGHT + 1) × PART_BYTES` in memory whatever its size. blake3 is computed on the
//! way. The object appears only when the upload completes: a body that fails, or a write that is
//! dropped midway, aborts the multipart upload (its parts are removed by the store).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::parts::StoreParts;
use super::remote::{get_remote, open_remote, signed_url};
use super::{Answering, BlobError, Bucket, ByteStream, Listed, ObjectKey, Written};
use crate::config::BucketSettings;

/// The size of one part of a multipart upload (S3 wants at least 5 MiB for all but the last;
/// with at most 10,000 parts an object may be 80 GiB).
pub const PART_BYTES: usize = 8 << 20;
/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A writable bucket in a cloud store.
pub struct CloudBucket {
    name: String,
    store: Arc<dyn ObjectStore>,
    signer: Option<(Arc<dyn Signer>, String)>,
    parts: StoreParts,
}

impl CloudBucket {
    /// Opens bucket `name` at its `s3://`, `gs://` or `az://` URL. Credentials come from the
    /// environment variables its `credentials_env` names.
    pub fn open(name: &str, settings: &BucketSettings) -> Result<Self, BlobError> {
        let opened = open_remote(name, settings)?;
        Ok(Self {
            name: name.to_owned(),
            store: opened.store,
            signer: opened.signer,
            parts: opened.parts,
        })
    }

    fn failed(&self, doing: &str, key: &ObjectKey) -> impl FnOnce(object_store::Error) -> BlobError {
        let context = format!("cannot {doing} `{key}` in bucket {}", self.name);
        move |e| BlobError::Io {
            context,
            source: std::io::Error::other(e),
        }
    }
}

/// A multipart upload that is aborted when dropped before it finished.
struct Upload(Option<WriteMultipart>);

impl Upload {
    fn writer(&mut self) -> &mut WriteMultipart {
        self.0
            .as_mut()
            .expect("an upload is used only until it finishes or aborts")
    }

    async fn abort(mut self) {
        if let Some(writer) = self.0.take()
            && let Err(error) = writer.abort().await
        {
            tracing::warn!(%error, "cannot abort a multipart upload; the bucket's lifecycle rule removes its parts");
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(Upload(Some(writer)).abort());
        }
    }
}

#[async_trait::async_trait]
impl Bucket for CloudBucket {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write<'a>(&self, key: &ObjectKey, mut body: ByteStream<'a>) -> Result<Written, BlobError> {
        let path = Path::from(key.as_str());
        let mut hasher = blake3::Hasher::new();
        let mut first: Vec<Bytes> = Vec::new();
        let mut first_len = 0;
        while first_len < PART_BYTES {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(BlobError::Body)?;
                    hasher.update(&chunk);
                    first_len += chunk.len();
                    first.push(chunk);
                }
                None => {
                    let payload = PutPayload::from_iter(first);
                    self.store
                        .put(&path, payload)
                        .await
                        .map_err(self.failed("store", key))?;
                    return Ok(written(&hasher));
                }
            }
        }
        let started = self
            .store
            .put_multipart(&path)
            .await
            .map_err(self.failed("start an upload of", key))?;
        let mut upload = Upload(Some(WriteMultipart::new_with_chunk_size(started, PART_BYTES)));
        for chunk in first {
            upload.writer().put(chunk);
        }
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    upload.abort().await;
                    return Err(BlobError::Body(e));
                }
            };
            hasher.update(&chunk);
            if let Err(e) = upload.writer().wait_for_capacity(PARTS_IN_FLIGHT).await {
                upload.abort().await;
                return Err(self.failed("store a part of", key)(e));
            }
            upload.writer().put(chunk);
        }
        let writer = upload.0.take().expect("the upload is still open");
        // `finish` aborts the upload itself when a part or the completion fails.
        writer
            .finish()
            .await
            .map_err(self.failed("complete the upload of", key))?;
        Ok(written(&hasher))
    }

    async fn read(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream<'static>, BlobError> {
        let got = get_remote(self.store.as_ref(), key.as_str(), range).await?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", key)(e)),
        }
    }

    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), BlobError> {
        match self
            .store
            .rename(&Path::from(from.as_str()), &Path::from(to.as_str()))
            .await
        {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(from.to_string())),
            Err(e) => Err(self.failed("move", from)(e)),
        }
    }

    fn list_older_than(&self, before: SystemTime) -> BoxStream<'static, Result<Listed, BlobError>> {
        let name = self.name.clone();
        self.store
            .list(None)
            .map_err(move |e| BlobError::Io {
                context: format!("cannot list bucket {name}"),
                source: std::io::Error::other(e),
            })
            .try_filter_map(move |meta| async move {
                let modified = SystemTime::from(meta.last_modified);
                if modified >= before {
                    return Ok(None);
                }
                // Keys this daemon writes are always valid; anything else is not ours to sweep.
                Ok(ObjectKey::parse(meta.location.as_ref())
                    .ok()
                    .map(|key| Listed { key, modified }))
            })
            .boxed()
    }

    /// object_store cannot list unfinished multipart uploads: a process killed mid-upload leaves
    /// parts that the bucket's own lifecycle rule removes (README: "Cloud buckets"). Answers 0.
    async fn remove_incomplete_writes(&self, _before: SystemTime) -> Result<u64, BlobError> {
        Ok(0)
    }

    fn local_path(&self, _key: &ObjectKey) -> Option<PathBuf> {
        None
    }

    async fn signed_url(
        &self,
        method: Method,
        key: &ObjectKey,
        lifetime: Duration,
        answering: &Answering,
    ) -> Result<Option<url::Url>, BlobError> {
        match &self.signer {
            Some((signer, root)) => signed_url(signer.as_ref(), root, method, key.as_str(), lifetime, answering)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    fn parts(&self) -> Option<&StoreParts> {
        Some(&self.parts)
    }
}

fn written(hasher: &blake3::Hasher) -> Written {
    Written {
        size: hasher.count(),
        checksum: hasher.finalize().to_hex().to_string(),
    }
}
