//! A writable bucket that counts its operations (`stowage_bucket_operations_total`, with their
//! latency) and otherwise does exactly what the bucket it wraps does.

use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::BoxStream;

use super::{Answering, BlobError, Bucket, ByteStream, Listed, Method, ObjectKey, Written, outcome};

/// `inner`, counted under `backend` (`file`, `s3`, `gs`, `az`).
pub struct Counted<B> {
    /// The bucket.
    pub inner: B,
    /// Its backend kind, for the metric's label.
    pub backend: &'static str,
}

/// Counts `result` of `operation` on a bucket of `backend`, begun at `started`, and hands it
/// back.
pub fn count<T>(
    backend: &str,
    operation: &'static str,
    started: Instant,
    result: Result<T, BlobError>,
) -> Result<T, BlobError> {
    crate::metrics::bucket_operation(backend, operation, outcome(&result), started.elapsed());
    result
}

#[async_trait::async_trait]
impl<B: Bucket> Bucket for Counted<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn write<'a>(&self, key: &ObjectKey, body: ByteStream<'a>) -> Result<Written, BlobError> {
        let started = Instant::now();
        let written = self.inner.write(key, body).await;
        count(self.backend, "write", started, written)
    }

    async fn read(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream<'static>, BlobError> {
        let started = Instant::now();
        let opened = self.inner.read(key, range).await;
        count(self.backend, "read", started, opened)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), BlobError> {
        let started = Instant::now();
        let deleted = self.inner.delete(key).await;
        count(self.backend, "delete", started, deleted)
    }

    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), BlobError> {
        let started = Instant::now();
        let renamed = self.inner.rename(from, to).await;
        count(self.backend, "rename", started, renamed)
    }

    fn list_older_than(&self, before: SystemTime) -> BoxStream<'static, Result<Listed, BlobError>> {
        self.inner.list_older_than(before)
    }

    async fn remove_incomplete_writes(&self, before: SystemTime) -> Result<u64, BlobError> {
        self.inner.remove_incomplete_writes(before).await
    }

    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        self.inner.local_path(key)
    }

    async fn signed_url(
        &self,
        method: Method,
        key: &ObjectKey,
        lifetime: Duration,
        answering: &Answering,
    ) -> Result<Option<url::Url>, BlobError> {
        self.inner.signed_url(method, key, lifetime, answering).await
    }

    fn parts(&self) -> Option<&super::parts::StoreParts> {
        self.inner.parts()
    }
}
