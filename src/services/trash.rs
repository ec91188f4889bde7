//! The trash: what a delete put there (a folder with its subtree, or an item), listed for its
//! owner, and purged for good, at once (`?permanent=true`) or by the sweep once past
//! `trash.retention_seconds`. Restoring lives with the folder and item use cases.
//!
//! A purge removes catalog rows first and managed objects after the change commits, as every
//! delete does; objects in users' buckets are never touched.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::objects::remove_managed_objects;
use super::{Page, ServiceError, decode_number_position, field, page_token};
use crate::blobs::Buckets;
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::{Caller, Role};
use crate::domain::item::ItemType;
use crate::domain::page::SortKey;
use crate::domain::page::page_size;
use crate::domain::webhook::ItemCause;
use crate::store::Db;
use crate::store::clauses::Reader;
use crate::store::trash::{self as rows, Counts, ItemObjects};
use crate::store::webhooks as webhook_rows;
use crate::store::{Store, TreeLock, now_micros, to_micros};

/// The ordering trash pages use.
const TRASH_ORDER: &str = "trashed_at:desc";

/// What a trash entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TrashKind {
    /// A folder, with everything it held when it was deleted.
    Folder,
    /// An item deleted on its own.
    Item,
}

/// One thing in the trash: what one delete put there.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrashEntry {
    /// A folder (with its subtree) or an item.
    pub kind: TrashKind,
    /// Its id: restore it with `POST /v1/folders/{id}/restore` or `POST /v1/items/{id}/restore`.
    pub id: Uuid,
    /// The folder's name or the item's title.
    pub name: String,
    /// Where it was: the folder's path, or the item's folder path and title.
    pub path: String,
    /// The folder it was in; `null` for a folder at the root.
    pub parent_id: Option<Uuid>,
    /// The item's type (items only).
    pub item_type: Option<ItemType>,
    /// The item's size in bytes (items only).
    pub size: Option<i64>,
    /// When it was deleted (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub trashed_at: OffsetDateTime,
    /// When the sweep removes it for good (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub purge_at: OffsetDateTime,
}

/// What purging removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Catalog rows removed.
    pub rows: Counts,
    /// Objects removed from the managed bucket.
    pub objects: u64,
}

/// The trash: its retention, the list, and purges.
#[derive(Clone)]
pub struct Trash {
    store: Store,
    buckets: Buckets,
    retention: Duration,
}

/// The `(bucket, key)` pairs of deleted item rows: each source object and rendition.
pub(crate) fn object_pairs(objects: Vec<ItemObjects>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(objects.len());
    for object in objects {
        pairs.push((object.bucket, object.object_key));
        if let Some(key) = object.encoded_key {
            pairs.push((MANAGED_BUCKET.to_owned(), key));
        }
    }
    pairs
}

impl From<rows::TrashRow> for TrashEntry {
    fn from(row: rows::TrashRow) -> Self {
        TrashEntry {
            kind: if row.is_folder {
                TrashKind::Folder
            } else {
                TrashKind::Item
            },
            id: row.id,
            path: if row.is_folder {
                row.path
            } else {
                format!("{}/{}", row.path, row.name)
            },
            name: row.name,
            parent_id: row.parent_id,
            item_type: row.item_type.as_deref().and_then(|t| ItemType::parse(t).ok()),
            size: row.size,
            trashed_at: row.trashed_at,
            purge_at: row.purge_at,
        }
    }
}

impl Trash {
    /// The trash over `store`; trashed things are purged `retention` after their delete.
    pub fn new(store: Store, buckets: Buckets, retention: Duration) -> Self {
        Self {
            store,
            buckets,
            retention,
        }
    }

    /// When something trashed at `now` (microseconds) is purged.
    pub fn purge_at(&self, now: i64) -> i64 {
        let retention = i64::try_from(self.retention.as_micros()).unwrap_or(i64::MAX);
        now.saturating_add(retention)
    }

    /// Removes the managed objects among `objects` (after the rows are gone); answers how many.
    pub async fn remove_objects(&self, objects: Vec<ItemObjects>) -> u64 {
        remove_managed_objects(&self.buckets, object_pairs(objects)).await
    }

    /// One page of the trash units the caller may restore (admins: all): those from folders
    /// of trees it owns or edits by a grant, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        size: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<TrashEntry>, ServiceError> {
        let limit = page_size(size).map_err(field("page_size"))?;
        let after = token
            .map(|token| decode_number_position(token, TRASH_ORDER))
            .transpose()?;
        let reader = Reader::with_role(caller, Role::Editor);
        let mut conn = self.store.read().await?;
        let rows = rows::list(&mut conn, reader.as_ref(), after, limit + 1).await?;
        let token_of =
            |last: &rows::TrashRow| page_token(TRASH_ORDER, &SortKey::Int(to_micros(last.trashed_at)), last.id);
        Ok(Page::of(rows, limit, token_of, TrashEntry::from))
    }

    /// Inside `tx`: removes trash unit `unit` (due at `purge_at`), a folder deleted for good,
    /// with all it holds, in one go (webhooks are told its items went with their folder).
    /// Answers the rows removed and the objects to remove once `tx` commits.
    pub(crate) async fn purge_unit_now(
        &self,
        tx: &mut dyn Db,
        unit: Uuid,
        purge_at: i64,
    ) -> Result<(Counts, Vec<ItemObjects>), ServiceError> {
        rows::absorb_nested_units(tx, unit, purge_at).await?;
        let objects = rows::purge_unit_items(tx, unit, None).await?;
        webhook_rows::record_deleted(tx, &objects, true, ItemCause::Folder).await?;
        let folders = rows::delete_unit_folders(tx, unit).await?;
        let counts = Counts {
            folders,
            items: objects.len() as u64,
        };
        Ok((counts, objects))
    }

    /// Removes trash unit `unit` (due at `purge_at`) for good in transactions of at most `batch`
    /// items, objects after each commit, telling webhooks its items went for `cause`. Safe
    /// beside another purge of the same unit: the rows are split between them and the folders
    /// go with whichever deletes the last item.
    pub(crate) async fn purge_unit_in_batches(
        &self,
        unit: Uuid,
        purge_at: i64,
        batch: i64,
        cause: ItemCause,
    ) -> Result<Purged, ServiceError> {
        let mut purged = Purged::default();
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        rows::absorb_nested_units(&mut tx, unit, purge_at).await?;
        tx.commit().await?;
        loop {
            let mut tx = self.store.write().await?;
            let objects = rows::purge_unit_items(&mut tx, unit, Some(batch)).await?;
            webhook_rows::record_deleted(&mut tx, &objects, true, cause).await?;
            tx.commit().await?;
            let taken = objects.len();
            purged.rows.items += taken as u64;
            purged.objects += self.remove_objects(objects).await;
            if (taken as i64) < batch {
                break;
            }
        }
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        if rows::unit_is_empty(&mut tx, unit).await? {
            purged.rows.folders = rows::delete_unit_folders(&mut tx, unit).await?;
        }
        tx.commit().await?;
        Ok(purged)
    }

    /// The current time and when something trashed now is purged, in microseconds.
    pub(crate) fn now_and_purge_at(&self) -> (i64, i64) {
        let now = now_micros();
        (now, self.purge_at(now))
    }
}
