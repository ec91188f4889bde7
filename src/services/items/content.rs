//! Downloads: which object a download of an item serves (its rendition or its original), the
//! stream of one object held to what the catalog records, and tar archives of many items built
//! on the fly.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use async_compression::tokio::write::GzipEncoder;
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};
use uuid::Uuid;

use super::{ItemService, check_batch, id_list};
use crate::blobs::expected::Expected;
use crate::blobs::{BlobError, ByteStream};
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::Caller;
use crate::domain::fingerprint::Fingerprint;
use crate::domain::item::{Frame, Item, next_free_alternative, portable_file_name, split_extension};
use crate::services::ServiceError;
use crate::services::access::visible_items;

/// Bytes buffered between the archive writer and the response.
const ARCHIVE_PIPE_BYTES: usize = 256 * 1024;

/// Objects checked at once before an archive starts.
const CHECK_CONCURRENCY: usize = 16;

/// The object a download of an item serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The bucket that holds it.
    pub bucket: String,
    /// Its key there.
    pub object_key: String,
    /// Bytes.
    pub size: i64,
    /// blake3, lowercase hex.
    pub checksum: Option<String>,
    /// Its MIME type.
    pub mime_type: String,
    /// The object's fingerprint at the last sync (the source object of a synced item).
    pub fingerprint: Option<Fingerprint>,
    /// The file name a download answers: the title (a rendition's ends in `.mp4`).
    pub file_name: String,
}

impl Served {
    /// What the catalog records of the object, which a download holds it to.
    pub fn expected(&self) -> Expected {
        Expected {
            size: u64::try_from(self.size).unwrap_or_default(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// What a download of `item` serves: its rendition (a re-encoded video, the video made of an
/// image sequence) when it has one, unless `original` asks for the source; the first frame of
/// a multi-object item.
pub fn served(item: &Item, original: bool) -> Served {
    match item.encoded.as_ref().filter(|_| !original) {
        Some(encoded) => Served {
            bucket: MANAGED_BUCKET.to_owned(),
            object_key: encoded.object_key.clone(),
            size: encoded.size,
            checksum: Some(encoded.checksum.clone()),
            mime_type: encoded.mime_type.clone(),
            fingerprint: None,
            file_name: format!("{}.mp4", split_extension(&item.title).0),
        },
        None => match item.frames.first() {
            Some(first) => frame_content(first, item.title.clone()),
            None => Served {
                bucket: item.bucket.clone(),
                object_key: item.object_key.clone(),
                size: item.size,
                checksum: item.checksum.clone(),
                mime_type: item.mime_type.clone(),
                fingerprint: item.fingerprint.clone(),
                file_name: item.title.clone(),
            },
        },
    }
}

/// The objects of a multi-object item (an image group's images, a DICOM series' files) as a
/// download of them all serves them, in order, each named `NNNN_NAME` (its place, from 0000,
/// and its object's file name) so that the names sort as the frames do.
pub fn served_frames(item: &Item) -> Vec<(String, Served)> {
    item.frames
        .iter()
        .enumerate()
        .map(|(index, frame)| {
            let file = frame.object_key.rsplit('/').next().unwrap_or(&frame.object_key);
            let name = format!("{index:04}_{}", portable_file_name(file));
            (name.clone(), frame_content(frame, name))
        })
        .collect()
}

/// What a download of one frame serves, under `file_name`.
fn frame_content(frame: &Frame, file_name: String) -> Served {
    Served {
        bucket: frame.bucket.clone(),
        object_key: frame.object_key.clone(),
        size: frame.size,
        checksum: None,
        mime_type: frame.mime_type.clone(),
        fingerprint: None,
        file_name,
    }
}

/// The answer for an object that cannot be served: gone (404), changed since the catalog
/// recorded it or no longer a file inside its bucket (409 `STALE`: a sync of its folder records
/// what it is now), or a failure of the bucket (500).
fn unreadable(content: &Served, error: BlobError) -> ServiceError {
    let (bucket, key) = (&content.bucket, &content.object_key);
    match error {
        BlobError::NotFound(_) => ServiceError::NotFound(format!(
            "object {key} of bucket {bucket} is gone; a sync of its folder will record it as a tombstone"
        )),
        BlobError::Changed(why) | BlobError::InvalidKey(why) => ServiceError::Stale(format!(
            "the object of this item in bucket {bucket} is not what the catalog records ({why}); sync its folder to record it as it is now, then download again"
        )),
        other => ServiceError::Failed {
            context: format!("cannot read {bucket}/{key}"),
            source: Box::new(other),
        },
    }
}

impl ItemService {
    /// Streams `content` (what [`served`] picked for a [`readable`](Self::readable) item), whole
    /// or a byte range, only while its object is the one the catalog records: one that changed
    /// since is a 409 `STALE`, one that changes while streamed cuts the stream off.
    pub async fn read_content(
        &self,
        content: &Served,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream<'static>, ServiceError> {
        self.buckets
            .read_expected(&content.bucket, &content.object_key, &content.expected(), range)
            .await
            .map_err(|e| unreadable(content, e))
    }

    /// Checks, without reading them, that the objects of `contents` are what the catalog
    /// records (a few at a time); the first that is not answers as [`read_content`](Self::read_content) would.
    async fn check_contents(&self, contents: Vec<Served>) -> Result<(), ServiceError> {
        let checks = contents.into_iter().map(|content| {
            let buckets = self.buckets.clone();
            async move {
                buckets
                    .check_expected(&content.bucket, &content.object_key, &content.expected())
                    .await
                    .map_err(|e| unreadable(&content, e))
            }
        });
        futures::stream::iter(checks)
            .buffer_unordered(CHECK_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Streams a tar (gzip-compressed when `gzip`) of the items, built on the fly. Each entry is
    /// named by the item's title (a rendition's ending in `.mp4`), made unique inside the archive as uploads are (`name (1).ext`),
    /// and holds what a download serves (the source objects with `original`); an image group,
    /// image sequence (without its video, or with `original`) or DICOM series is a directory of
    /// that name holding all its frames ([`served_frames`]).
    pub async fn archive(
        &self,
        caller: &Caller,
        ids: Vec<Uuid>,
        gzip: bool,
        original: bool,
    ) -> Result<ByteStream<'static>, ServiceError> {
        let ids = check_batch(ids)?;
        let mut conn = self.store.read().await?;
        let found = visible_items(&mut conn, caller, &ids).await?;
        drop(conn);
        let mut by_id: BTreeMap<Uuid, Item> = found.into_iter().map(|(i, _)| (i.id, i)).collect();
        let missing: Vec<Uuid> = ids.iter().copied().filter(|id| !by_id.contains_key(id)).collect();
        if !missing.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "items not found: {}",
                id_list(&missing)
            )));
        }
        let tombstones: Vec<Uuid> = by_id.values().filter(|i| i.is_tombstone).map(|i| i.id).collect();
        if !tombstones.is_empty() {
            return Err(ServiceError::Invalid(format!(
                "item_ids: these items are tombstones with no content: {}; leave them out",
                id_list(&tombstones)
            )));
        }
        let mut used: HashSet<String> = HashSet::new();
        let mut entries = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(item) = by_id.remove(id) else { continue };
            // One file (named as its download is: a rendition ends in `.mp4`), or a directory
            // of frames named by the title.
            let single =
                (item.frames.is_empty() || (item.encoded.is_some() && !original)).then(|| served(&item, original));
            let portable = portable_file_name(single.as_ref().map_or(&item.title, |content| &content.file_name));
            let mut name = portable.clone();
            if used.contains(&name) {
                name = next_free_alternative(&portable, used.iter().map(String::as_str));
            }
            used.insert(name.clone());
            if let Some(content) = single {
                entries.push((name, content, item.updated_at));
                continue;
            }
            // A multi-object item is a directory of its frames.
            for (frame, content) in served_frames(&item) {
                entries.push((format!("{name}/{frame}"), content, item.updated_at));
            }
        }
        self.check_contents(entries.iter().map(|(_, content, _)| content.clone()).collect())
            .await?;
        let (writer, reader) = tokio::io::duplex(ARCHIVE_PIPE_BYTES);
        let this = self.clone();
        let task = tokio::spawn(async move {
            let result = if gzip {
                let mut encoder = this.write_tar(GzipEncoder::new(writer), entries).await?;
                encoder.shutdown().await
            } else {
                this.write_tar(writer, entries).await?.shutdown().await
            };
            if let Err(error) = &result {
                tracing::warn!(%error, "an archive download stopped midway");
            }
            result
        });
        // After the archive's last byte, surface a failure of the writer as a stream error, so
        // the response is cut off instead of ending like a complete archive.
        let outcome = futures::stream::once(async move {
            match task.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Err(e)),
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        })
        .filter_map(futures::future::ready);
        Ok(ReaderStream::with_capacity(reader, ARCHIVE_PIPE_BYTES)
            .chain(outcome)
            .boxed())
    }

    /// Writes the entries as a tar into `out` and answers `out`.
    async fn write_tar<W: AsyncWrite + Unpin + Send + Sync + 'static>(
        &self,
        out: W,
        entries: Vec<(String, Served, OffsetDateTime)>,
    ) -> std::io::Result<W> {
        let mut builder = tokio_tar::Builder::new(out);
        for (name, content, updated_at) in entries {
            let body = self.read_content(&content, None).await.map_err(std::io::Error::other)?;
            let mut header = tokio_tar::Header::new_gnu();
            header.set_entry_type(tokio_tar::EntryType::Regular);
            header.set_size(u64::try_from(content.size).unwrap_or_default());
            header.set_mode(0o644);
            header.set_mtime(u64::try_from(updated_at.unix_timestamp()).unwrap_or_default());
            builder.append_data(&mut header, &name, StreamReader::new(body)).await?;
        }
        builder.into_inner().await
    }
}
