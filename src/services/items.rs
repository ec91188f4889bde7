//! Item use cases: upload (streamed to the managed bucket, with a conflict strategy), read,
//! update, list, move, delete (into the trash, or for good), restore, download one or many (the
//! re-encoded rendition of a video by default, or the original), and the sweep of orphaned
//! objects.
//!
//! Catalog rows and bucket objects change in a fixed order so that a row never points at
//! nothing: an upload stores its object before the row commits; a delete removes objects only
//! after the row is gone. A crash in between leaves an object without a row, which
//! [`ItemService::sweep_orphans`] removes later.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_compression::tokio::write::GzipEncoder;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};
use utoipa::ToSchema;
use uuid::Uuid;

use super::folders::{Metadata, ensure_unsynced, now, read_only, require};
use super::probe::{self, HEAD_BYTES, Probed};
use super::trash::Trash;
use super::{Page, Rfc3339, ServiceError, conflict_as, decode_position, detached, field, page_token};
use crate::blobs::expected::Expected;
use crate::blobs::{BlobError, Bucket, Buckets, ByteStream, ObjectKey, Written};
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::{Access, Caller};
use crate::domain::fingerprint::Fingerprint;
use crate::domain::folder::Folder;
use crate::domain::item::{
    ConflictStrategy, Frame, Item, ItemOrder, ItemType, Media, client_title, expiry_for, next_free_alternative,
    portable_file_name, title_from_file_name,
};
use crate::domain::page::page_size;
use crate::store::folders as folder_rows;
use crate::store::items::{self as rows, ItemQuery};
use crate::store::sql::SortKey;
use crate::store::trash as trash_rows;
use crate::store::{Store, TreeLock, to_micros};

/// The most item ids one move, delete or download request may name.
pub const MAX_BATCH: usize = 1000;
/// How many times an upload looks for a free title before giving up.
const MAX_TITLE_ATTEMPTS: usize = 100;
/// Keys asked about per query while sweeping orphans.
const SWEEP_BATCH: usize = 500;
/// The most orphan keys one sweep holds in memory (and removes).
const SWEEP_MAX_HELD: usize = 100_000;
/// Above this many orphans, the sweep checks they are not most of the bucket.
pub const ORPHAN_ALARM: usize = 100;
/// The share of a bucket's objects that may be orphans before the sweep refuses to act.
pub const MAX_ORPHAN_SHARE: f64 = 0.1;
/// Bytes buffered between the archive writer and the response.
const ARCHIVE_PIPE_BYTES: usize = 256 * 1024;

/// Item use cases.
#[derive(Clone)]
pub struct ItemService {
    store: Store,
    buckets: Buckets,
    trash: Trash,
}

/// Media metadata as clients see it; a field is `null` when it does not apply or was not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct MediaView {
    /// Pixels across (images, video).
    pub width: Option<i64>,
    /// Pixels down (images, video).
    pub height: Option<i64>,
    /// Play time in seconds (audio, video).
    pub duration_seconds: Option<f64>,
    /// Frames per second (video).
    pub fps: Option<f64>,
    /// Codec name, e.g. `h264` (audio, video).
    pub codec: Option<String>,
    /// Samples per second (audio).
    pub sample_rate: Option<i64>,
    /// Channels (audio).
    pub channels: Option<i64>,
    /// Pages (PDF).
    pub page_count: Option<i64>,
    /// Size along each axis (NIfTI).
    pub dimensions: Option<Vec<i64>>,
}

impl From<&Media> for MediaView {
    fn from(media: &Media) -> Self {
        MediaView {
            width: media.width,
            height: media.height,
            duration_seconds: media.duration_us.map(|us| us as f64 / 1_000_000.0),
            fps: media.fps(),
            codec: media.codec.clone(),
            sample_rate: media.sample_rate,
            channels: media.channels,
            page_count: media.page_count,
            dimensions: media.dimensions.clone(),
        }
    }
}

/// An item as clients see it. Its content fields (`bucket` to `checksum`, `media`) describe what
/// a download serves: for a re-encoded video the rendition, with the source under `original`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ItemView {
    /// Stable identifier.
    pub id: Uuid,
    /// The folder it is in.
    pub folder_id: Uuid,
    /// Its name, unique in the folder.
    pub title: String,
    /// The bucket that holds the content (`managed` for uploads and re-encoded renditions).
    pub bucket: String,
    /// The content's key inside the bucket.
    pub object_key: String,
    /// What the content is.
    pub item_type: ItemType,
    /// The content's MIME type.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// blake3 of the content, lowercase hex (what `b3sum` prints).
    pub checksum: Option<String>,
    /// The object is gone from its bucket; the row is a record of it.
    pub is_tombstone: bool,
    /// The client's JSON object.
    #[schema(value_type = Object)]
    pub client_metadata: Metadata,
    /// What was read from the content.
    pub media: MediaView,
    /// When the item expires (RFC 3339): its folder's TTL after creation, or its own time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the video was re-encoded (RFC 3339); `null` when it was not.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reencoded_at: Option<OffsetDateTime>,
    /// For a re-encoded video, the source object (`GET …/content?original=true`); else `null`.
    pub original: Option<OriginalView>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The objects of an image group, image sequence or DICOM series, in order (empty for other
    /// types). The content fields then describe the first frame, which a download serves.
    pub frames: Vec<Frame>,
}

/// The source object of a re-encoded video, never changed by the re-encode.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OriginalView {
    /// The bucket that holds it.
    pub bucket: String,
    /// Its key inside the bucket.
    pub object_key: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// blake3, lowercase hex.
    pub checksum: Option<String>,
    /// What was read from it.
    pub media: MediaView,
}

impl From<Item> for ItemView {
    fn from(item: Item) -> Self {
        let content = served(&item, false);
        let (media, reencoded_at, original) = match &item.encoded {
            Some(encoded) => (
                MediaView::from(&encoded.media),
                Some(encoded.encoded_at),
                Some(OriginalView {
                    bucket: item.bucket.clone(),
                    object_key: item.object_key.clone(),
                    mime_type: item.mime_type.clone(),
                    size: item.size,
                    checksum: item.checksum.clone(),
                    media: MediaView::from(&item.media),
                }),
            ),
            None => (MediaView::from(&item.media), None, None),
        };
        ItemView {
            id: item.id,
            folder_id: item.folder_id,
            title: item.title,
            bucket: content.bucket,
            object_key: content.object_key,
            item_type: item.item_type,
            mime_type: content.mime_type,
            size: content.size,
            checksum: content.checksum,
            is_tombstone: item.is_tombstone,
            client_metadata: item.client_metadata,
            media,
            expires_at: item.expires_at,
            reencoded_at,
            original,
            created_at: item.created_at,
            updated_at: item.updated_at,
            frames: item.frames,
        }
    }
}

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

/// What a download of `item` serves: its re-encoded rendition when it has one, unless
/// `original` asks for the source object; the first frame of a multi-object item.
pub fn served(item: &Item, original: bool) -> Served {
    if let Some(first) = item.frames.first() {
        return Served {
            bucket: first.bucket.clone(),
            object_key: first.object_key.clone(),
            size: first.size,
            checksum: None,
            mime_type: first.mime_type.clone(),
            fingerprint: None,
        };
    }
    match item.encoded.as_ref().filter(|_| !original) {
        Some(encoded) => Served {
            bucket: MANAGED_BUCKET.to_owned(),
            object_key: encoded.object_key.clone(),
            size: encoded.size,
            checksum: Some(encoded.checksum.clone()),
            mime_type: encoded.mime_type.clone(),
            fingerprint: None,
        },
        None => Served {
            bucket: item.bucket.clone(),
            object_key: item.object_key.clone(),
            size: item.size,
            checksum: item.checksum.clone(),
            mime_type: item.mime_type.clone(),
            fingerprint: item.fingerprint.clone(),
        },
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
        other => ServiceError::Internal(format!("cannot read {bucket}/{key}: {other}")),
    }
}

/// Objects checked at once before an archive starts.
const CHECK_CONCURRENCY: usize = 16;

/// The `(bucket, key)` pairs of the objects an item holds: its source and its rendition.
pub(crate) fn objects_of(item: &Item) -> Vec<(String, String)> {
    let mut pairs = vec![(item.bucket.clone(), item.object_key.clone())];
    if let Some(encoded) = &item.encoded {
        pairs.push((MANAGED_BUCKET.to_owned(), encoded.object_key.clone()));
    }
    pairs
}

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

/// Changes to an item; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// A new title, unique in the folder.
    #[schema(min_length = 1, max_length = 255)]
    pub title: Option<String>,
    /// Replaces the client metadata.
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Metadata>,
    /// The item's own expiry (RFC 3339), which its folder's TTL then leaves alone; `null` makes it
    /// follow its folder's TTL again.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Rfc3339>>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListItems {
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    /// Only these types; all when empty.
    pub item_types: Vec<ItemType>,
    /// Only tombstones (`true`) or only live items (`false`).
    pub is_tombstone: Option<bool>,
    /// Sort column.
    pub order_by: ItemOrder,
    /// Descending order.
    pub desc: bool,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
    /// The whole subtree instead of the folder's own items.
    pub recursive: bool,
}

/// The answer of a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Moved {
    /// Items now in the target folder.
    pub moved: u64,
}

/// The answer of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemsDeleted {
    /// Items removed.
    pub deleted: u64,
    /// True when they went to the trash (restorable until purged); false when deleted for good.
    pub trashed: bool,
}

/// What a sweep of the managed bucket removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Leftovers of interrupted writes.
    pub incomplete_writes: u64,
    /// Objects no item points at.
    pub orphans: u64,
}

/// An uploaded object that has no row yet. Dropping it without [`ItemService::commit`] deletes
/// the object.
pub struct Staged {
    folder_id: Uuid,
    file_name: Option<String>,
    object: StagedObject,
    written: Written,
    probed: Probed,
}

/// An object that is removed again unless kept.
struct StagedObject {
    bucket: Arc<dyn Bucket>,
    key: Option<ObjectKey>,
}

impl StagedObject {
    /// The row now points at the object: keep it.
    fn keep(mut self) {
        self.key = None;
    }

    /// Removes the object now.
    async fn discard(mut self) {
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

/// Deletes one object, logging (not failing on) errors: what is left is an orphan the sweep
/// removes later. True when the object is gone.
pub(crate) async fn remove_object(bucket: &dyn Bucket, key: &ObjectKey) -> bool {
    match bucket.delete(key).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(bucket = bucket.name(), %key, %error, "cannot delete an object; the orphan sweep will retry");
            false
        }
    }
}

/// Deletes the managed objects among `(bucket, key)` pairs; other buckets are never written.
/// Answers how many managed objects it removed (or found already gone).
pub(crate) async fn remove_managed_objects(
    buckets: &Buckets,
    objects: impl IntoIterator<Item = (String, String)>,
) -> u64 {
    let managed = buckets.managed();
    let mut removed = 0;
    for (bucket, key) in objects {
        if bucket != MANAGED_BUCKET {
            continue;
        }
        match ObjectKey::parse(&key) {
            Ok(key) => {
                if remove_object(managed.as_ref(), &key).await {
                    removed += 1;
                }
            }
            Err(error) => tracing::warn!(%key, %error, "an item held an invalid object key"),
        }
    }
    removed
}

/// A fresh key for a managed object: a random UUID under a two-hex-digit shard directory.
pub(crate) fn new_object_key() -> ObjectKey {
    let id = Uuid::new_v4().simple().to_string();
    // A UUID's hex form always makes a valid key.
    ObjectKey::parse(&format!("{}/{id}", &id[..2])).unwrap_or_else(|_| unreachable!("uuid keys are valid"))
}

/// The live items among `ids` that `caller` may see, each with the caller's access to its folder
/// (in no particular order; the others are left out).
pub(crate) async fn visible_items(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    ids: &[Uuid],
) -> Result<Vec<(Item, Access)>, ServiceError> {
    let found = rows::by_ids(conn, ids).await?;
    let mut folders: BTreeMap<Uuid, Access> = BTreeMap::new();
    for folder_id in found.iter().map(|i| i.folder_id) {
        if let std::collections::btree_map::Entry::Vacant(slot) = folders.entry(folder_id) {
            let folder = folder_rows::by_id(conn, folder_id).await?;
            slot.insert(folder.map_or(Access::None, |f| caller.access_to(&f.folder)));
        }
    }
    Ok(found
        .into_iter()
        .filter_map(|item| {
            let access = folders.get(&item.folder_id).copied().unwrap_or(Access::None);
            (access != Access::None).then_some((item, access))
        })
        .collect())
}

/// Checks a batch of ids: 1 to [`MAX_BATCH`] of them, duplicates dropped, order kept.
pub(crate) fn check_batch(ids: Vec<Uuid>) -> Result<Vec<Uuid>, ServiceError> {
    if ids.is_empty() {
        return Err(ServiceError::Invalid("item_ids: give at least one item id".into()));
    }
    if ids.len() > MAX_BATCH {
        return Err(ServiceError::Invalid(format!(
            "item_ids: at most {MAX_BATCH} ids per request, got {}; split the request",
            ids.len()
        )));
    }
    let mut seen = HashSet::new();
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

/// The folder `id` when `caller` has `need` on it (404 when hidden or missing, 403 when read-only).
async fn folder_for(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: Uuid,
    need: Access,
) -> Result<Folder, ServiceError> {
    Ok(require(caller, folder_rows::by_id(conn, id).await?, need, &id)?.folder)
}

/// The folder `id` when `caller` may change its contents and it is not part of a synced folder
/// (whose contents belong to its bucket); `what` names the refused change.
pub(crate) async fn changeable_folder(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: Uuid,
    what: &str,
) -> Result<Folder, ServiceError> {
    let folder = folder_for(conn, caller, id, Access::Write).await?;
    ensure_unsynced(conn, &folder.path, true, what).await?;
    Ok(folder)
}

/// Inserts `item` under its title or, when that is taken in its folder, the first free
/// `title (N).ext`; `item.title` ends as the title it got.
pub(crate) async fn insert_under_free_title(
    conn: &mut sqlx::AnyConnection,
    item: &mut Item,
) -> Result<(), ServiceError> {
    let wanted = item.title.clone();
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..MAX_TITLE_ATTEMPTS {
        if rows::insert_if_title_free(conn, item).await? {
            return Ok(());
        }
        tried.push(item.title.clone());
        let taken = rows::alternative_titles(conn, item.folder_id, &wanted).await?;
        item.title = next_free_alternative(&wanted, taken.iter().chain(&tried).map(String::as_str));
    }
    Err(ServiceError::Conflict(format!(
        "no free title for `{wanted}` after {MAX_TITLE_ATTEMPTS} attempts; retry"
    )))
}

/// Joins ids for a message.
pub(crate) fn id_list(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
}

/// Maps a failed write to what the client should hear.
fn upload_failed(err: BlobError) -> ServiceError {
    match err {
        BlobError::Body(e) if e.kind() == std::io::ErrorKind::FileTooLarge => ServiceError::TooLarge(format!(
            "the upload is over the size limit (server.max_upload_bytes): {e}"
        )),
        BlobError::Body(e) => ServiceError::Invalid(format!("the upload was cut off before the file ended: {e}")),
        other => ServiceError::Internal(format!("cannot store the upload: {other}")),
    }
}

/// Reads up to `limit` bytes from the start of `reader`.
async fn read_head(mut reader: impl AsyncRead + Unpin, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(limit.min(HEAD_BYTES));
    (&mut reader).take(limit as u64).read_to_end(&mut head).await?;
    Ok(head)
}

impl ItemService {
    /// Wraps the store, the buckets and the trash.
    pub fn new(store: Store, buckets: Buckets, trash: Trash) -> Self {
        Self { store, buckets, trash }
    }

    /// The item with `need` access for `caller`, with its folder; 404 when it does not exist or
    /// the caller may not see it.
    async fn require_item(
        &self,
        conn: &mut sqlx::AnyConnection,
        caller: &Caller,
        id: Uuid,
        need: Access,
    ) -> Result<(Item, Folder), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("item {id} not found"));
        let item = rows::by_id(conn, id).await?.ok_or_else(not_found)?;
        let folder = folder_rows::by_id(conn, item.folder_id)
            .await?
            .ok_or_else(not_found)?
            .folder;
        match caller.access_to(&folder) {
            Access::None => Err(not_found()),
            Access::Read if need == Access::Write => Err(read_only(&folder)),
            _ => Ok((item, folder)),
        }
    }

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
        let written = bucket.write(&key, body).await.map_err(upload_failed)?;
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
        let probed = probe::probe(&head, hint, written.size, probe::Whole::file(bucket.local_path(&key))).await;
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
                    Ok((item.into(), UploadOutcome::Existing))
                }
                Ok((item, outcome, replaced)) => {
                    object.keep();
                    if let Some(old) = replaced {
                        remove_managed_objects(&this.buckets, objects_of(&old)).await;
                    }
                    Ok((item.into(), outcome))
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
    ) -> Result<(Item, UploadOutcome, Option<Item>), ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = changeable_folder(&mut tx, caller, item.folder_id, "uploading").await?;
        item.expires_at = expiry_for(item.created_at, folder.ttl_seconds);
        let wanted = item.title.clone();
        for _ in 0..MAX_TITLE_ATTEMPTS {
            if rows::insert_if_title_free(&mut tx, &item).await? {
                tx.commit().await?;
                return Ok((item, UploadOutcome::Created, None));
            }
            match strategy {
                ConflictStrategy::Error => {
                    return Err(ServiceError::Conflict(format!(
                        "an item titled `{}` already exists in {}; upload with conflict_strategy new, skip or replace, or choose another title",
                        item.title, folder.path
                    )));
                }
                ConflictStrategy::Skip => {
                    if let Some(existing) = rows::by_title(&mut tx, item.folder_id, &item.title).await? {
                        return Ok((existing, UploadOutcome::Existing, None));
                    }
                }
                ConflictStrategy::New => {
                    insert_under_free_title(&mut tx, &mut item).await?;
                    tx.commit().await?;
                    return Ok((item, UploadOutcome::Created, None));
                }
                ConflictStrategy::Replace => {
                    if let Some(old) = rows::by_title(&mut tx, item.folder_id, &item.title).await? {
                        rows::replace_content(&mut tx, old.id, &item).await?;
                        let replaced = rows::by_id(&mut tx, old.id)
                            .await?
                            .ok_or_else(|| ServiceError::Internal("the replaced item vanished".into()))?;
                        tx.commit().await?;
                        return Ok((replaced, UploadOutcome::Replaced, Some(old)));
                    }
                }
            }
        }
        Err(ServiceError::Conflict(format!(
            "no free title for `{wanted}` in {} after {MAX_TITLE_ATTEMPTS} attempts; retry",
            folder.path
        )))
    }

    /// The item with this id.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<ItemView, ServiceError> {
        let mut conn = self.store.read().await?;
        Ok(self.require_item(&mut conn, caller, id, Access::Read).await?.0.into())
    }

    /// The item with this id, for reading its content; a tombstone has none (404).
    pub async fn readable(&self, caller: &Caller, id: Uuid) -> Result<Item, ServiceError> {
        let mut conn = self.store.read().await?;
        let (item, _) = self.require_item(&mut conn, caller, id, Access::Read).await?;
        if item.is_tombstone {
            return Err(ServiceError::NotFound(format!(
                "item {id} is a tombstone: its object no longer exists in bucket {}",
                item.bucket
            )));
        }
        Ok(item)
    }

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

    /// Changes an item's title or client metadata.
    pub async fn update(&self, caller: &Caller, id: Uuid, mut patch: ItemPatch) -> Result<ItemView, ServiceError> {
        patch.title = patch
            .title
            .as_deref()
            .map(client_title)
            .transpose()
            .map_err(field("title"))?;
        let mut tx = self.store.write().await?;
        let (mut item, folder) = self.require_item(&mut tx, caller, id, Access::Write).await?;
        if let Some(title) = patch.title.filter(|t| *t != item.title) {
            ensure_unsynced(&mut tx, &folder.path, true, "renaming an item").await?;
            item.title = title;
        }
        if let Some(metadata) = patch.client_metadata {
            item.client_metadata = metadata;
        }
        match patch.expires_at {
            Some(Some(at)) => (item.expires_at, item.expires_own) = (Some(at.0), true),
            Some(None) => {
                (item.expires_at, item.expires_own) = (expiry_for(item.created_at, folder.ttl_seconds), false)
            }
            None => {}
        }
        item.updated_at = now();
        let updated = rows::update_attributes(&mut tx, &item)
            .await
            .map_err(conflict_as(format!(
                "an item titled `{}` already exists in {}; choose another title",
                item.title, folder.path
            )))?;
        if !updated {
            // It expired (or was deleted) while this change waited for it.
            return Err(ServiceError::NotFound(format!("item {id} not found")));
        }
        tx.commit().await?;
        Ok(item.into())
    }

    /// One page of the items in a folder (or, with `recursive`, its whole subtree).
    pub async fn list(&self, caller: &Caller, folder_id: Uuid, req: ListItems) -> Result<Page<ItemView>, ServiceError> {
        let limit = page_size(req.page_size).map_err(field("page_size"))?;
        let order = format!("{}:{}", req.order_by.as_str(), if req.desc { "desc" } else { "asc" });
        let after = match &req.page_token {
            Some(token) => Some(decode_position(token, &order, req.order_by == ItemOrder::Title)?),
            None => None,
        };
        let mut conn = self.store.read().await?;
        let folder = folder_for(&mut conn, caller, folder_id, Access::Read).await?;
        let query = ItemQuery {
            folder_id,
            subtree: req.recursive.then_some(folder.path),
            visible_to: (!caller.is_admin).then(|| caller.name.clone()),
            search: req.search.filter(|s| !s.is_empty()),
            item_types: req.item_types,
            is_tombstone: req.is_tombstone,
            order: req.order_by,
            desc: req.desc,
            after,
            limit: limit + 1,
        };
        let mut items = rows::list(&mut conn, &query).await?;
        let next_page_token = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|last| {
                let key = match req.order_by {
                    ItemOrder::Title => SortKey::Text(last.title.clone()),
                    ItemOrder::CreatedAt => SortKey::Int(to_micros(last.created_at)),
                    ItemOrder::Size => SortKey::Int(last.size),
                };
                page_token(&order, &key, last.id)
            })
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(ItemView::from).collect(),
            next_page_token,
        })
    }

    /// Inside a write transaction: the items `ids` that must all be direct children of `folder`
    /// (404 naming those that are not: in that folder they do not exist).
    async fn children(
        conn: &mut sqlx::AnyConnection,
        folder: &Folder,
        ids: &[Uuid],
    ) -> Result<Vec<Item>, ServiceError> {
        let items = rows::by_ids(conn, ids).await?;
        let inside: HashSet<Uuid> = items
            .iter()
            .filter(|i| i.folder_id == folder.id)
            .map(|i| i.id)
            .collect();
        let strangers: Vec<Uuid> = ids.iter().copied().filter(|id| !inside.contains(id)).collect();
        if !strangers.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "item_ids: not items of folder {}: {}; name only items directly inside it",
                folder.path,
                id_list(&strangers)
            )));
        }
        Ok(items)
    }

    /// Moves items of folder `folder_id` into `target_id`, all or none.
    pub async fn move_items(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        ids: Vec<Uuid>,
        target_id: Uuid,
    ) -> Result<Moved, ServiceError> {
        let ids = check_batch(ids)?;
        let (this, caller) = (self.clone(), caller.clone());
        detached(async move {
            let mut tx = this.store.write_tree(TreeLock::Shared).await?;
            let folder = changeable_folder(&mut tx, &caller, folder_id, "moving items").await?;
            let target = changeable_folder(&mut tx, &caller, target_id, "moving items").await?;
            let items = Self::children(&mut tx, &folder, &ids).await?;
            if target.id == folder.id {
                return Ok(Moved { moved: 0 });
            }
            let titles: Vec<String> = items.iter().map(|i| i.title.clone()).collect();
            let taken = rows::taken_titles(&mut tx, target.id, &titles).await?;
            if !taken.is_empty() {
                return Err(ServiceError::Conflict(format!(
                    "{} already holds items titled {}; rename or delete them first",
                    target.path,
                    taken.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                )));
            }
            let moved = rows::move_to(&mut tx, &ids, target.id, target.ttl_seconds, now())
                .await
                .map_err(conflict_as(format!(
                    "a title in {} was taken meanwhile; retry",
                    target.path
                )))?;
            tx.commit().await?;
            Ok(Moved { moved })
        })
        .await
    }

    /// Inside a write transaction: moves `items` into the trash, or with `permanent` deletes
    /// them (their managed objects are removed once the transaction commits).
    async fn discard(
        &self,
        mut tx: crate::store::Tx,
        items: Vec<Item>,
        permanent: bool,
    ) -> Result<ItemsDeleted, ServiceError> {
        let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
        if !permanent {
            let (now, purge_at) = self.trash.now_and_purge_at();
            let deleted = trash_rows::trash_items(&mut tx, &ids, now, purge_at).await?;
            tx.commit().await?;
            return Ok(ItemsDeleted { deleted, trashed: true });
        }
        let deleted = rows::delete(&mut tx, &ids).await?;
        tx.commit().await?;
        remove_managed_objects(&self.buckets, items.iter().flat_map(objects_of)).await;
        Ok(ItemsDeleted {
            deleted,
            trashed: false,
        })
    }

    /// Deletes items of folder `folder_id`, all or none: into the trash, or with `permanent` for
    /// good (their managed objects go after the catalog change commits).
    pub async fn delete_items(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        ids: Vec<Uuid>,
        permanent: bool,
    ) -> Result<ItemsDeleted, ServiceError> {
        let ids = check_batch(ids)?;
        let (this, caller) = (self.clone(), caller.clone());
        detached(async move {
            let mut tx = this.store.write_tree(TreeLock::Shared).await?;
            let folder = changeable_folder(&mut tx, &caller, folder_id, "deleting items").await?;
            let items = Self::children(&mut tx, &folder, &ids).await?;
            this.discard(tx, items, permanent).await
        })
        .await
    }

    /// Deletes one item: into the trash, or with `permanent` for good (its managed objects go
    /// after the catalog change commits). With `permanent`, an item already in the trash is
    /// purged.
    pub async fn delete(&self, caller: &Caller, id: Uuid, permanent: bool) -> Result<ItemsDeleted, ServiceError> {
        let (this, caller) = (self.clone(), caller.clone());
        detached(async move {
            let mut tx = this.store.write_tree(TreeLock::Shared).await?;
            let (item, folder, _) = this.require_any_item(&mut tx, &caller, id, permanent).await?;
            ensure_unsynced(&mut tx, &folder.folder.path, true, "deleting items").await?;
            this.discard(tx, vec![item], permanent).await
        })
        .await
    }

    /// The item `id`, live or (with `trashed`) in the trash, that `caller` may change, with its
    /// folder (live or trashed) and its place in the trash.
    async fn require_any_item(
        &self,
        conn: &mut sqlx::AnyConnection,
        caller: &Caller,
        id: Uuid,
        trashed: bool,
    ) -> Result<(Item, folder_rows::FolderRecord, Option<trash_rows::TrashMark>), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("item {id} not found"));
        let (item, mark) = rows::by_id_any(conn, id)
            .await?
            .filter(|(_, mark)| trashed || mark.is_none())
            .ok_or_else(not_found)?;
        let folder = require(
            caller,
            folder_rows::by_id_any(conn, item.folder_id).await?,
            Access::Write,
            &id,
        )
        .map_err(|e| match e {
            ServiceError::NotFound(_) => not_found(),
            other => other,
        })?;
        Ok((item, folder, mark))
    }

    /// Brings a trashed item back into the folder it was in, or into `target_folder_id`. 409 when
    /// its folder is in the trash too (and no target is given) or its title was taken meanwhile.
    pub async fn restore(&self, caller: &Caller, id: Uuid, target: Option<Uuid>) -> Result<ItemView, ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let (item, folder, mark) = self.require_any_item(&mut tx, caller, id, true).await?;
        let mark = mark.ok_or_else(|| ServiceError::Conflict(format!("item {id} is not in the trash")))?;
        let (now, _) = self.trash.now_and_purge_at();
        if to_micros(mark.purge_at) <= now {
            return Err(ServiceError::Conflict(format!(
                "item {id} is past its time in the trash and is being purged; it cannot be restored"
            )));
        }
        let into = match target {
            Some(target) => folder_for(&mut tx, caller, target, Access::Write).await?,
            None if folder.trash.is_none() => folder.folder,
            None => {
                return Err(ServiceError::Conflict(format!(
                    "item {id} was in folder {}, which is in the trash; restore the folder, or give target_parent_id",
                    folder.folder.path
                )));
            }
        };
        trash_rows::restore_item(&mut tx, id, into.id, into.ttl_seconds, now)
            .await
            .map_err(conflict_as(format!(
                "an item titled `{}` already exists in {}; rename it, or restore into another folder with target_parent_id",
                item.title, into.path
            )))?;
        tx.commit().await?;
        self.get(caller, id).await
    }

    /// Streams a tar (gzip-compressed when `gzip`) of the items, built on the fly. Each entry is
    /// named by the item's title, made unique inside the archive as uploads are (`name (1).ext`),
    /// and holds what a download serves (the source objects with `original`).
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
            let portable = portable_file_name(&item.title);
            let mut name = portable.clone();
            if used.contains(&name) {
                name = next_free_alternative(&portable, used.iter().map(String::as_str));
            }
            used.insert(name.clone());
            entries.push((name, served(&item, original), item.updated_at));
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

    /// Removes from the managed bucket what interrupted writes left and every object no item
    /// points at, both only when last written more than `grace` ago (younger ones may belong to
    /// an upload still committing).
    ///
    /// Orphans are rare (a crash between a commit and its object clean-up). When more than
    /// [`MAX_ORPHAN_SHARE`] of the old objects (and over [`ORPHAN_ALARM`] of them) have no row,
    /// the bucket most likely belongs to another catalog (`database.url` changed while `data_dir`
    /// stayed): nothing is deleted, and the sweep fails with an error saying so.
    pub async fn sweep_orphans(&self, grace: Duration) -> Result<Swept, ServiceError> {
        let before = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let bucket = self.buckets.managed();
        let blob = |e: BlobError| ServiceError::Internal(format!("orphan sweep: {e}"));
        let incomplete_writes = bucket.remove_incomplete_writes(before).await.map_err(blob)?;
        let mut unreferenced: Vec<ObjectKey> = Vec::new();
        let (mut seen, mut orphans) = (0usize, 0usize);
        let mut listed = bucket.list_older_than(before).try_chunks(SWEEP_BATCH);
        while let Some(batch) = listed.next().await {
            let batch = batch.map_err(|e| blob(e.1))?;
            seen += batch.len();
            let keys: Vec<String> = batch.iter().map(|l| l.key.to_string()).collect();
            let mut conn = self.store.read().await?;
            let referenced = rows::referenced_keys(&mut conn, bucket.name(), &keys, true).await?;
            drop(conn);
            for key in batch.into_iter().map(|l| l.key) {
                if !referenced.contains(key.as_str()) {
                    orphans += 1;
                    // Held in memory until the share is known; the rest waits for the next sweep.
                    if unreferenced.len() < SWEEP_MAX_HELD {
                        unreferenced.push(key);
                    }
                }
            }
        }
        if orphans > ORPHAN_ALARM && orphans as f64 > seen as f64 * MAX_ORPHAN_SHARE {
            return Err(ServiceError::Internal(format!(
                "orphan sweep refused: {orphans} of {seen} objects in bucket {} have no item; the bucket looks like it belongs to another catalog (was database.url changed?); nothing was deleted",
                bucket.name()
            )));
        }
        for key in &unreferenced {
            tracing::info!(%key, "removing an orphaned object");
            bucket.delete(key).await.map_err(blob)?;
        }
        Ok(Swept {
            incomplete_writes,
            orphans: unreferenced.len() as u64,
        })
    }
}
