//! Item use cases: upload (streamed to the managed bucket, with a conflict strategy), read,
//! update, list, move, delete (into the trash, or for good), restore, download one or many (the
//! re-encoded rendition of a video by default, or the original), and the sweep of orphaned
//! objects.
//!
//! Catalog rows and bucket objects change in a fixed order so that a row never points at
//! nothing: an upload stores its object before the row commits; a delete removes objects only
//! after the row is gone. A crash in between leaves an object without a row, which
//! [`ItemService::sweep_orphans`] removes later.

mod content;
mod direct;
mod export;
mod signed_urls;
mod sweep;
mod upload;
mod views;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use content::{Served, served};
pub use direct::{CompleteUpload, CompletedPart, NewUpload, PartUrl, UploadSessionView};
pub use export::{CSV_COLUMNS, Export, ExportFormat, ExportItems};
pub use signed_urls::{SignedUrl, UrlSigner};
pub use sweep::{MAX_ORPHAN_SHARE, ORPHAN_ALARM, ORPHAN_GRACE, OrphanSweep, SWEEP_INTERVAL, Swept};
pub use upload::{Staged, UploadOptions, UploadOutcome};
pub use views::{ItemView, MediaView, OriginalView};

use super::access::{changeable_folder, ensure_unsynced, folder_for, folder_roles, require_any, require_item};
use super::audit;
use super::objects::{objects_of, remove_managed_objects};
use super::trash::Trash;
use super::{Metadata, Page, Rfc3339, ServiceError, conflict_as, decode_position, detached, field, now, page_token};
use crate::blobs::Buckets;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::folder::Folder;
use crate::domain::item::{Item, ItemOrder, ItemType, client_title, expiry_for, next_free_alternative};
use crate::domain::page::SortKey;
use crate::domain::page::page_size;
use crate::domain::webhook::{EventKind, ItemCause};
use crate::store::Db;
use crate::store::clauses::Reader;
use crate::store::folders as folder_rows;
use crate::store::item_pages::{self as pages, ItemQuery, Listed};
use crate::store::items as rows;
use crate::store::stars::{self, Starred};
use crate::store::trash as trash_rows;
use crate::store::usage::Ledger;
use crate::store::webhooks::{self as webhook_rows, ItemEvent};
use crate::store::{Store, TreeLock, from_micros, to_micros};

/// The most item ids one move, delete or download request may name.
pub const MAX_BATCH: usize = 1000;
/// How many times an upload looks for a free title before giving up.
const MAX_TITLE_ATTEMPTS: usize = 100;

/// Item use cases.
#[derive(Clone)]
pub struct ItemService {
    store: Store,
    buckets: Buckets,
    trash: Trash,
    signer: UrlSigner,
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
    /// Only items you starred.
    pub starred: bool,
    /// Give each item a signed URL of its content (`signed_url`); the daemon's own URLs start
    /// with this address.
    pub signed_urls: Option<String>,
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

/// Checks a batch of ids: 1 to [`MAX_BATCH`] of them, duplicates dropped, order kept.
pub fn check_batch(ids: Vec<Uuid>) -> Result<Vec<Uuid>, ServiceError> {
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

/// Inserts `item` under its title or, when that is taken in its folder, the first free
/// `title (N).ext`; `item.title` ends as the title it got.
pub async fn insert_under_free_title(conn: &mut dyn Db, item: &mut Item) -> Result<(), ServiceError> {
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
pub fn id_list(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
}

impl ItemService {
    /// Wraps the store, the buckets and the trash.
    pub fn new(store: Store, buckets: Buckets, trash: Trash, signer: UrlSigner) -> Self {
        Self {
            store,
            buckets,
            trash,
            signer,
        }
    }

    /// The item with this id.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<ItemView, ServiceError> {
        let mut conn = self.store.read().await?;
        let (item, _, role) = require_item(&mut conn, caller, id, Role::Viewer).await?;
        let mut view = [ItemView::new(item, role)];
        Self::mark_starred(&mut conn, caller, &mut view).await?;
        let [view] = view;
        Ok(view)
    }

    /// Stars item `id` for the caller (`on`), or takes the star off; anyone who sees it may.
    pub async fn star(&self, caller: &Caller, id: Uuid, on: bool) -> Result<ItemView, ServiceError> {
        let mut tx = self.store.write().await?;
        require_item(&mut tx, caller, id, Role::Viewer).await?;
        if on {
            stars::put(&mut tx, &caller.name, Starred::Item, id, now()).await?;
        } else {
            stars::delete(&mut tx, &caller.name, Starred::Item, id).await?;
        }
        tx.commit().await?;
        self.get(caller, id).await
    }

    /// The item with this id, for reading its content; a tombstone has none (404).
    pub async fn readable(&self, caller: &Caller, id: Uuid) -> Result<Item, ServiceError> {
        let mut conn = self.store.read().await?;
        let (item, _, _) = require_item(&mut conn, caller, id, Role::Viewer).await?;
        if item.is_tombstone {
            return Err(ServiceError::NotFound(format!(
                "item {id} is a tombstone: its object no longer exists in bucket {}",
                item.bucket
            )));
        }
        Ok(item)
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
        let (mut item, folder, role) = require_item(&mut tx, caller, id, Role::Editor).await?;
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
            // It expired, was deleted or moved away while this change waited for it.
            return Err(ServiceError::NotFound(format!("item {id} not found")));
        }
        webhook_rows::record_items(&mut tx, &[ItemEvent::of(EventKind::ItemUpdated, &item)]).await?;
        tx.commit().await?;
        let mut view = [ItemView::new(item, role)];
        let mut conn = self.store.read().await?;
        Self::mark_starred(&mut conn, caller, &mut view).await?;
        let [view] = view;
        Ok(view)
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
        let folder = folder_for(&mut conn, caller, folder_id, Role::Viewer).await?;
        let query = ItemQuery {
            folder_id,
            subtree: req.recursive.then(|| folder.path.clone()),
            visible_to: Reader::of(caller),
            search: req.search.filter(|s| !s.is_empty()),
            item_types: req.item_types,
            is_tombstone: req.is_tombstone,
            starred_by: req.starred.then(|| caller.name.clone()),
            stars_of: Some(caller.name.clone()),
            order: req.order_by,
            desc: req.desc,
            after,
            limit: limit + 1,
        };
        let items = pages::list(&mut conn, &query).await?;
        let token_of = |last: &Listed| {
            let last = &last.item;
            let key = match req.order_by {
                ItemOrder::Title => SortKey::Text(last.title.clone()),
                ItemOrder::CreatedAt => SortKey::Int(to_micros(last.created_at)),
                ItemOrder::Size => SortKey::Int(last.size),
            };
            page_token(&order, &key, last.id)
        };
        let page = Page::of(items, limit, token_of, |listed| listed);
        let roles = match req.recursive {
            true => folder_roles(&mut conn, caller, page.items.iter().map(|l| l.item.folder_id)).await?,
            false => BTreeMap::from([(folder_id, caller.role_on(&folder))]),
        };
        drop(conn);
        let mut urls = match &req.signed_urls {
            Some(base) => self.signed_urls(page.items.iter().map(|l| &l.item), base).await?,
            None => Vec::new(),
        }
        .into_iter();
        Ok(page.map(|Listed { item, starred }| {
            let role = roles.get(&item.folder_id).copied().flatten().unwrap_or(Role::Viewer);
            let mut view = ItemView::new(item, role);
            view.starred = starred;
            view.signed_url = urls.next().flatten();
            view
        }))
    }

    /// Sets `starred` on the views of the items the caller starred.
    pub(crate) async fn mark_starred(
        conn: &mut dyn Db,
        caller: &Caller,
        views: &mut [ItemView],
    ) -> Result<(), ServiceError> {
        let ids: Vec<Uuid> = views.iter().map(|v| v.id).collect();
        let starred = stars::among(conn, &caller.name, Starred::Item, &ids).await?;
        for view in views {
            view.starred = starred.contains(&view.id);
        }
        Ok(())
    }

    /// Inside a write transaction: the items `ids` that must all be direct children of `folder`
    /// (404 naming those that are not: in that folder they do not exist).
    async fn children(conn: &mut dyn Db, folder: &Folder, ids: &[Uuid]) -> Result<Vec<Item>, ServiceError> {
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
            let ledger = Ledger::before_items(&mut tx, &ids).await?;
            let moved = rows::move_to(&mut tx, &ids, target.id, target.ttl_seconds, now())
                .await
                .map_err(conflict_as(format!(
                    "a title in {} was taken meanwhile; retry",
                    target.path
                )))?;
            ledger.after_items(&mut tx, &ids).await?;
            let events: Vec<ItemEvent> = items
                .iter()
                .map(|item| ItemEvent {
                    folder_id: target.id,
                    ..ItemEvent::of(EventKind::ItemUpdated, item)
                })
                .collect();
            webhook_rows::record_items(&mut tx, &events).await?;
            tx.commit().await?;
            Ok(Moved { moved })
        })
        .await
    }

    /// Inside a write transaction: moves `items` into the trash, or with `permanent` deletes
    /// them (their managed objects are removed once the transaction commits).
    async fn discard(
        &self,
        caller: &Caller,
        mut tx: crate::store::Tx,
        items: Vec<Item>,
        permanent: bool,
    ) -> Result<ItemsDeleted, ServiceError> {
        let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
        let (now, purge_at) = self.trash.now_and_purge_at();
        let events: Vec<ItemEvent> = items
            .iter()
            .map(|item| ItemEvent {
                permanent,
                ..ItemEvent::of(EventKind::ItemDeleted, item)
            })
            .collect();
        webhook_rows::record_items(&mut tx, &events).await?;
        let ledger = Ledger::before_items(&mut tx, &ids).await?;
        if !permanent {
            let deleted = trash_rows::trash_items(&mut tx, &ids, now, purge_at).await?;
            ledger.after_items(&mut tx, &ids).await?;
            tx.commit().await?;
            return Ok(ItemsDeleted { deleted, trashed: true });
        }
        let deleted = rows::delete(&mut tx, &ids).await?;
        ledger.after_items(&mut tx, &ids).await?;
        for item in &items {
            let event = AuditEvent::by(caller, AuditAction::ItemDelete, item.id, from_micros(now))
                .in_folder(item.folder_id)
                .with_detail(serde_json::json!({ "title": item.title, "size": item.size }));
            audit::record(&mut tx, &event).await?;
        }
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
            this.discard(&caller, tx, items, permanent).await
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
            if folder.trash.is_none() {
                // (A trashed folder's shown path may belong to another folder by now.)
                ensure_unsynced(&mut tx, &folder.folder.path, true, "deleting items").await?;
            }
            this.discard(&caller, tx, vec![item], permanent).await
        })
        .await
    }

    /// The item `id`, live or (with `trashed`) in the trash, that `caller` may change, with its
    /// folder (live or trashed) and its place in the trash.
    async fn require_any_item(
        &self,
        conn: &mut dyn Db,
        caller: &Caller,
        id: Uuid,
        trashed: bool,
    ) -> Result<(Item, folder_rows::FolderRecord, Option<crate::store::rows::TrashMark>), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("item {id} not found"));
        let (item, mark) = rows::by_id_any(conn, id)
            .await?
            .filter(|(_, mark)| trashed || mark.is_none())
            .ok_or_else(not_found)?;
        let folder = folder_rows::by_id_any(conn, item.folder_id).await?;
        let folder = require_any(conn, caller, folder, Role::Editor, &id)
            .await
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
            Some(target) => changeable_folder(&mut tx, caller, target, "restoring an item into it").await?,
            None if folder.trash.is_none() => folder.folder,
            None => {
                return Err(ServiceError::Conflict(format!(
                    "item {id} was in folder {}, which is in the trash; restore the folder, or give target_parent_id",
                    folder.folder.path
                )));
            }
        };
        let ledger = Ledger::before_items(&mut tx, &[id]).await?;
        trash_rows::restore_item(&mut tx, id, into.id, into.ttl_seconds, now)
            .await
            .map_err(conflict_as(format!(
                "an item titled `{}` already exists in {}; rename it, or restore into another folder with target_parent_id",
                item.title, into.path
            )))?;
        ledger.after_items(&mut tx, &[id]).await?;
        let event = ItemEvent {
            folder_id: into.id,
            cause: Some(ItemCause::Restore),
            ..ItemEvent::of(EventKind::ItemCreated, &item)
        };
        webhook_rows::record_items(&mut tx, &[event]).await?;
        tx.commit().await?;
        self.get(caller, id).await
    }
}
