//! Uploads, in two halves: the file streams into a new object of the managed bucket first
//! ([`ItemService::stage`]), then the row commits under its title with the conflict strategy
//! ([`ItemService::commit`]). The object is removed again when the row does not commit.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;
use uuid::Uuid;

use super::{ItemService, ItemView, MAX_TITLE_ATTEMPTS, insert_under_free_title};
use crate::blobs::{BlobError, Bucket, ByteStream, Method, ObjectKey, Written};
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::{Caller, Role};
use crate::domain::item::{ConflictStrategy, Item, ItemType, client_title, expiry_for, title_from_file_name};
use crate::domain::quota::Usage;
use crate::domain::webhook::EventKind;
use crate::services::access::{changeable_folder, require_role};
use crate::services::objects::{new_object_key, objects_of, remove_managed_objects, remove_object};
use crate::services::probe::{self, HEAD_BYTES, Probed};
use crate::services::{Metadata, ServiceError, detached, field, now};
use crate::store::TreeLock;
use crate::store::items as rows;
use crate::store::usage::{self, Ledger};
use crate::store::webhooks::{self as webhook_rows, ItemEvent};

/// How long the URL a media probe reads a cloud object by stays valid.
const PROBE_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The form fields of an upload besides the file.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// The title; the file name when absent.
    pub title: Option<String>,
    /// A JSON object kept for the client.
    pub client_metadata: Option<Metadata>,
    /// What to do when the title is taken.
    pub conflict_strategy: ConflictStrategy,
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// A new item was created.
    Created,
    /// `skip`: the item that already had the title, unchanged.
    Existing,
    /// `replace`: the item that had the title now holds the new content.
    Replaced,
}

/// An uploaded object that has no row yet. Dropping it without [`ItemService::commit`] deletes
/// the object.
pub struct Staged {
    pub(super) folder_id: Uuid,
    pub(super) file_name: Option<String>,
    pub(super) object: StagedObject,
    pub(super) written: Written,
    pub(super) probed: Probed,
}

/// An object that is removed again unless kept.
pub(super) struct StagedObject {
    pub(super) bucket: Arc<dyn Bucket>,
    pub(super) key: Option<ObjectKey>,
}

impl StagedObject {
    /// The row now points at the object: keep it.
    fn keep(mut self) {
        self.key = None;
    }

    /// Removes the object now.
    pub(super) async fn discard(mut self) {
        if let Some(key) = self.key.take() {
            remove_object(self.bucket.as_ref(), &key).await;
        }
    }
}

impl Drop for StagedObject {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let bucket = self.bucket.clone();
            runtime.spawn(async move { remove_object(bucket.as_ref(), &key).await });
        }
    }
}

/// Maps a failed write to what the client should hear.
pub(super) fn upload_failed(err: BlobError) -> ServiceError {
    match err {
        BlobError::Body(e) if e.kind() == std::io::ErrorKind::FileTooLarge => ServiceError::TooLarge(format!(
            "the upload is over the size limit (server.max_upload_bytes): {e}"
        )),
        BlobError::Body(e) => ServiceError::Invalid(format!("the upload was cut off before the file ended: {e}")),
        other => ServiceError::Failed {
            context: "cannot store the upload".into(),
            source: Box::new(other),
        },
    }
}

/// Reads up to `limit` bytes from the start of `reader`.
async fn read_head(mut reader: impl AsyncRead + Unpin, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(limit.min(HEAD_BYTES));
    (&mut reader).take(limit as u64).read_to_end(&mut head).await?;
    Ok(head)
}

impl ItemService {
    /// First half of an upload: checks the caller may add to the folder, streams `body` into a
    /// new object of the managed bucket (size and blake3 computed on the way) and reads its type
    /// and media metadata. The object is removed again unless [`commit`](Self::commit) keeps it.
    pub async fn stage(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        file_name: Option<String>,
        body: ByteStream<'_>,
    ) -> Result<Staged, ServiceError> {
        {
            let mut conn = self.store.read().await?;
            changeable_folder(&mut conn, caller, folder_id, "uploading").await?;
        }
        let bucket = self.buckets.managed();
        let key = new_object_key();
        let receiving = crate::metrics::InFlight::upload();
        let written = bucket.write(&key, body).await.map_err(upload_failed)?;
        drop(receiving);
        crate::metrics::upload_received(written.size);
        let object = StagedObject {
            bucket: bucket.clone(),
            key: Some(key.clone()),
        };
        let head = match bucket.read(&key, Some(0..HEAD_BYTES as u64)).await {
            Ok(stream) => read_head(StreamReader::new(stream), HEAD_BYTES).await.ok(),
            Err(_) => None,
        }
        .ok_or_else(|| ServiceError::Internal(format!("cannot read back the object {key} just stored")))?;
        let hint = file_name.as_deref().map(title_from_file_name).unwrap_or_default();
        let probed = probe_stored(bucket.as_ref(), &key, &head, hint, written.size).await;
        Ok(Staged {
            folder_id,
            file_name,
            object,
            written,
            probed,
        })
    }

    /// Second half of an upload: creates the item under its title, applying the conflict
    /// strategy when the title is taken. Runs to the end even if the caller stops waiting.
    pub async fn commit(
        &self,
        caller: &Caller,
        staged: Staged,
        options: UploadOptions,
    ) -> Result<(ItemView, UploadOutcome), ServiceError> {
        let title = options
            .title
            .clone()
            .or_else(|| staged.file_name.as_deref().map(|f| title_from_file_name(f).to_owned()))
            .ok_or_else(|| {
                ServiceError::Invalid("title: give a `title` field, or a file name in the `file` part".into())
            })?;
        let title = client_title(&title).map_err(field("title"))?;
        let now = now();
        let object_key = staged.object.key.as_ref().map(ToString::to_string).unwrap_or_default();
        let item = Item {
            item_type: staged.probed.item_type,
            mime_type: staged.probed.mime_type.clone(),
            size: i64::try_from(staged.written.size).unwrap_or(i64::MAX),
            checksum: Some(staged.written.checksum.clone()),
            client_metadata: options.client_metadata.unwrap_or_default(),
            media: staged.probed.media.clone(),
            ..Item::new(staged.folder_id, title, MANAGED_BUCKET.into(), object_key, now)
        };
        let (this, caller, object) = (self.clone(), caller.clone(), staged.object);
        detached(async move {
            match this.insert_upload(&caller, item, options.conflict_strategy).await {
                Ok((item, UploadOutcome::Existing, _)) => {
                    object.discard().await;
                    Ok((item, UploadOutcome::Existing))
                }
                Ok((item, outcome, replaced)) => {
                    object.keep();
                    if let Some(old) = replaced {
                        remove_managed_objects(&this.buckets, objects_of(&old)).await;
                    }
                    Ok((item, outcome))
                }
                Err(e) => {
                    object.discard().await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Inserts the upload's row, resolving a title clash by `strategy`. Answers the row, how it
    /// ended, and for `replace` the row as it was before.
    async fn insert_upload(
        &self,
        caller: &Caller,
        mut item: Item,
        strategy: ConflictStrategy,
    ) -> Result<(ItemView, UploadOutcome, Option<Item>), ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = changeable_folder(&mut tx, caller, item.folder_id, "uploading").await?;
        let role = require_role(caller, &folder, Role::Editor)?;
        item.expires_at = expiry_for(item.created_at, folder.ttl_seconds);
        let wanted = item.title.clone();
        for _ in 0..MAX_TITLE_ATTEMPTS {
            if rows::insert_if_title_free(&mut tx, &item).await? {
                usage::admit(&mut tx, item.folder_id, Usage::item(item.size)).await?;
                webhook_rows::record_items(&mut tx, &[ItemEvent::of(EventKind::ItemCreated, &item)]).await?;
                tx.commit().await?;
                return Ok((ItemView::new(item, role), UploadOutcome::Created, None));
            }
            match strategy {
                ConflictStrategy::Error => return Err(title_taken(&item.title, &folder.path)),
                ConflictStrategy::Skip => {
                    if let Some(existing) = rows::by_title(&mut tx, item.folder_id, &item.title).await? {
                        let mut view = [ItemView::new(existing, role)];
                        Self::mark_starred(&mut tx, caller, &mut view).await?;
                        let [view] = view;
                        return Ok((view, UploadOutcome::Existing, None));
                    }
                }
                ConflictStrategy::New => {
                    insert_under_free_title(&mut tx, &mut item).await?;
                    usage::admit(&mut tx, item.folder_id, Usage::item(item.size)).await?;
                    webhook_rows::record_items(&mut tx, &[ItemEvent::of(EventKind::ItemCreated, &item)]).await?;
                    tx.commit().await?;
                    return Ok((ItemView::new(item, role), UploadOutcome::Created, None));
                }
                ConflictStrategy::Replace => {
                    if let Some(old) = rows::by_title(&mut tx, item.folder_id, &item.title).await? {
                        let ledger = Ledger::before_items(&mut tx, &[old.id]).await?;
                        let replaced = rows::replace_content(&mut tx, old.id, &item).await?;
                        ledger.after_items(&mut tx, &[old.id]).await?;
                        if !replaced {
                            // Trashed meanwhile: its title is free again.
                            continue;
                        }
                        let replaced = rows::by_id(&mut tx, old.id)
                            .await?
                            .ok_or_else(|| ServiceError::Internal("the replaced item vanished".into()))?;
                        webhook_rows::record_items(&mut tx, &[ItemEvent::of(EventKind::ItemUpdated, &replaced)])
                            .await?;
                        let mut view = [ItemView::new(replaced, role)];
                        Self::mark_starred(&mut tx, caller, &mut view).await?;
                        tx.commit().await?;
                        let [view] = view;
                        return Ok((view, UploadOutcome::Replaced, Some(old)));
                    }
                }
            }
        }
        Err(ServiceError::Conflict(format!(
            "no free title for `{wanted}` in {} after {MAX_TITLE_ATTEMPTS} attempts; retry",
            folder.path
        )))
    }
}

/// Types object `key` of `bucket` (`size` bytes, starting with `head`; `hint` its title) and
/// reads its media metadata, copying it from a cloud bucket to a temp file only when a reader
/// needs a file (see [`probe::needs_local_file`]).
pub(super) async fn probe_stored(bucket: &dyn Bucket, key: &ObjectKey, head: &[u8], hint: &str, size: u64) -> Probed {
    let examined = probe::examine(head, hint, size);
    let copy = match bucket.local_path(key) {
        None if probe::needs_local_file(&examined, size) => local_copy(bucket, key).await,
        _ => None,
    };
    let whole = match (&copy, bucket.local_path(key)) {
        (Some(copy), _) => probe::Whole::File(copy.to_path_buf()),
        (None, Some(path)) => probe::Whole::File(path),
        // Only ffprobe reads through a URL: sign one for audio and video alone.
        (None, None) if matches!(examined.item_type, ItemType::Video | ItemType::Audio) => {
            signed_for_probe(bucket, key).await
        }
        (None, None) => probe::Whole::Unreachable,
    };
    probe::complete(examined, size, whole).await
}

/// A short-lived signed URL of object `key` of a cloud `bucket`, for ffprobe.
async fn signed_for_probe(bucket: &dyn Bucket, key: &ObjectKey) -> probe::Whole {
    match bucket
        .signed_url(Method::GET, key, PROBE_URL_LIFETIME, &Default::default())
        .await
    {
        Ok(Some(url)) => probe::Whole::Url(url.to_string()),
        Ok(None) => probe::Whole::Unreachable,
        Err(error) => {
            tracing::debug!(%key, %error, "cannot sign a URL for the media probe");
            probe::Whole::Unreachable
        }
    }
}

/// A copy of object `key` of a cloud `bucket` in a temp file (removed when dropped), for the
/// readers that need a file; `None` when it cannot be made (the item is then typed from its head).
async fn local_copy(bucket: &dyn Bucket, key: &ObjectKey) -> Option<tempfile::TempPath> {
    let copy = async {
        let path = tempfile::NamedTempFile::new()?.into_temp_path();
        let body = bucket.read(key, None).await.map_err(std::io::Error::other)?;
        let mut file = tokio::fs::File::create(&path).await?;
        tokio::io::copy(&mut StreamReader::new(body), &mut file).await?;
        Ok::<_, std::io::Error>(path)
    };
    copy.await
        .inspect_err(|error| tracing::warn!(%key, %error, "cannot copy an upload to a local file to read its media"))
        .ok()
}

/// The answer to an upload (`conflict_strategy` `error`) whose title is taken in the folder at
/// `path`.
pub(super) fn title_taken(title: &str, path: &impl std::fmt::Display) -> ServiceError {
    ServiceError::Conflict(format!(
        "an item titled `{title}` already exists in {path}; upload with conflict_strategy new, skip or replace, or choose another title"
    ))
}
