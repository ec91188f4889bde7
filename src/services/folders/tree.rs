//! Changes to the folder tree: moving a folder with its subtree, deleting it (into the trash,
//! or for good) and restoring it. Each holds the tree exclusively for its transaction.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{FolderService, FolderView};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::folder::{Folder, FolderName, FolderPath};
use crate::domain::webhook::{EventKind, ItemCause};
use crate::services::access::{ensure_unsynced, folder_for, require, require_removable, require_removable_record};
use crate::services::audit;
use crate::services::quotas::ensure_nested;
use crate::services::{ServiceError, conflict_as, detached, field, now};
use crate::store::Db;
use crate::store::folders as rows;
use crate::store::trash::{self as trash_rows, stored_path};
use crate::store::usage::Ledger;
use crate::store::webhooks as webhook_rows;
use crate::store::{TreeLock, from_micros, to_micros};

/// What a delete removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Deleted {
    /// Folders removed, the one named included.
    pub folders_deleted: u64,
    /// Items removed.
    pub items_deleted: u64,
    /// True when they went to the trash (restorable until purged); false when deleted for good.
    pub trashed: bool,
}

impl FolderService {
    /// Moves a folder (and its subtree) into `parent_id`, or to the root when `None`.
    pub async fn move_to(
        &self,
        caller: &Caller,
        id: Uuid,
        parent_id: Option<Uuid>,
    ) -> Result<FolderView, ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        let folder = folder_for(&mut tx, caller, id, Role::Viewer).await?;
        require_removable(&mut tx, caller, &folder).await?;
        if parent_id.is_none() && folder.parent_id.is_some() && !(caller.is_admin || folder.owner == caller.name) {
            // A folder at the root starts a tree of its owner's; moving it there would hide it
            // from whoever moved it, or give them someone else's files.
            return Err(ServiceError::Forbidden(format!(
                "only the owner of {} ({}) or an admin can move it to the root",
                folder.path, folder.owner
            )));
        }
        let target = match parent_id {
            Some(target_id) => {
                Some(require(caller, rows::by_id(&mut tx, target_id).await?, Role::Editor, &target_id)?.folder)
            }
            None => None,
        };
        if let Some(target) = &target {
            ensure_same_owner_or_owner(caller, &folder, target)?;
        }
        ensure_unsynced(&mut tx, &folder.path, folder.sync.is_none(), "moving a folder").await?;
        if let Some(target) = &target {
            ensure_unsynced(&mut tx, &target.path, true, "moving a folder into it").await?;
        }
        if let Some(target) = &target
            && target.path.is_within(&folder.path)
        {
            return Err(ServiceError::Invalid(format!(
                "parent_id: cannot move {} into its own subtree ({})",
                folder.path, target.path
            )));
        }
        let name = FolderName::stored(&folder.name);
        let new_path = FolderPath::join(target.as_ref().map(|t| &t.path), &name).map_err(field("parent_id"))?;
        let ledger = Ledger::before_subtree(&mut tx, id).await?;
        if new_path != folder.path {
            relocate(&mut tx, id, &folder.path, &new_path, parent_id, now()).await?;
        }
        if let Some(target) = &target {
            record_owner_change(&mut tx, caller, &folder, &new_path, &target.owner).await?;
        }
        ensure_nested(&mut tx, id, &new_path).await?;
        ledger.after_subtree(&mut tx, id).await?;
        tx.commit().await?;
        self.get(caller, id).await
    }

    /// Deletes a folder: moves it with its whole subtree into the trash, or with `permanent`
    /// removes it for good (and, after the catalog change commits, the managed objects of the
    /// items inside). A folder that is not empty needs `recursive`. With `permanent`, a folder
    /// already in the trash is purged with everything its delete took along.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        recursive: bool,
        permanent: bool,
    ) -> Result<Deleted, ServiceError> {
        let (this, caller) = (self.clone(), caller.clone());
        detached(async move {
            let mut tx = this.store.write_tree(TreeLock::Exclusive).await?;
            let record = rows::by_id_any(&mut tx, id).await?;
            let record =
                require_removable_record(&mut tx, &caller, record.filter(|r| permanent || r.trash.is_none()), &id)
                    .await?;
            let folder = record.folder;
            if record.trash.is_none() {
                ensure_unsynced(&mut tx, &folder.path, folder.sync.is_none(), "deleting a folder").await?;
            }
            let (now, purge_at) = this.trash.now_and_purge_at();
            let (unit, due) = match record.trash {
                Some(mark) if mark.unit != id => {
                    return Err(ServiceError::Conflict(format!(
                        "folder {} went to the trash with folder {}; purge that one, or restore this one first",
                        folder.path, mark.unit
                    )));
                }
                Some(mark) => (id, to_micros(mark.purge_at)),
                None => {
                    if !recursive && !rows::is_empty(&mut tx, id).await? {
                        return Err(ServiceError::Conflict(format!(
                            "folder {} is not empty; pass recursive=true to delete it with everything inside",
                            folder.path
                        )));
                    }
                    let due = if permanent { now } else { purge_at };
                    if !permanent {
                        // Deleted for good, they are told of by the purge below.
                        webhook_rows::record_subtree_items(
                            &mut tx,
                            EventKind::ItemDeleted,
                            ItemCause::Folder,
                            &folder.path,
                        )
                        .await?;
                    }
                    let ledger = Ledger::before_subtree(&mut tx, id).await?;
                    let trashed = trash_rows::trash_folder(&mut tx, id, &folder.path, now, due).await?;
                    ledger.after_subtree(&mut tx, id).await?;
                    if !permanent {
                        tx.commit().await?;
                        return Ok(Deleted {
                            folders_deleted: trashed.folders,
                            items_deleted: trashed.items,
                            trashed: true,
                        });
                    }
                    (id, due)
                }
            };
            let (removed, objects) = this.trash.purge_unit_now(&mut tx, unit, due).await?;
            // Recorded in the folder it was in (when there was one), whose managers can still
            // read it once this folder is gone.
            let event = AuditEvent::by(&caller, AuditAction::FolderDelete, id, from_micros(now))
                .in_folder(folder.parent_id.unwrap_or(id))
                .with_detail(serde_json::json!({
                    "path": folder.path.as_str(),
                    "folders": removed.folders,
                    "items": removed.items,
                    "from_trash": record.trash.is_some(),
                }));
            audit::record(&mut tx, &event).await?;
            tx.commit().await?;
            this.trash.remove_objects(objects).await;
            Ok(Deleted {
                folders_deleted: removed.folders,
                items_deleted: removed.items,
                trashed: false,
            })
        })
        .await
    }

    /// Brings a trashed folder back with what its delete took along: below the folder it was in
    /// (as that folder is now), or below `target_parent_id`. 409 when that folder is itself in
    /// the trash (and no target is given) or a live folder took the path meanwhile.
    pub async fn restore(&self, caller: &Caller, id: Uuid, target: Option<Uuid>) -> Result<FolderView, ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        let record = rows::by_id_any(&mut tx, id).await?;
        let record = require_removable_record(&mut tx, caller, record, &id).await?;
        let folder = record.folder;
        let mark = record
            .trash
            .ok_or_else(|| ServiceError::Conflict(format!("folder {} is not in the trash", folder.path)))?;
        let (now, _) = self.trash.now_and_purge_at();
        if to_micros(mark.purge_at) <= now {
            return Err(ServiceError::Conflict(format!(
                "folder {} is past its time in the trash and is being purged; it cannot be restored",
                folder.path
            )));
        }
        let parent = match target.or(folder.parent_id) {
            Some(parent_id) => {
                // A folder the caller may not see counts as gone.
                let found = rows::by_id(&mut tx, parent_id)
                    .await?
                    .filter(|f| caller.role_on(&f.folder).is_some());
                if found.is_none() && target.is_none() {
                    return Err(ServiceError::Conflict(format!(
                        "folder {} was in a folder that is in the trash or gone; restore that one first, or give target_parent_id",
                        folder.path
                    )));
                }
                Some(require(caller, found, Role::Editor, &parent_id)?.folder)
            }
            None => None,
        };
        if let Some(parent) = &parent {
            ensure_same_owner_or_owner(caller, &folder, parent)?;
            ensure_unsynced(&mut tx, &parent.path, true, "restoring a folder into it").await?;
        }
        let name = FolderName::stored(&folder.name);
        let new_path = FolderPath::join(parent.as_ref().map(|p| &p.path), &name).map_err(field("target_parent_id"))?;
        let new_owner = parent
            .as_ref()
            .map_or_else(|| folder.owner.clone(), |p| p.owner.clone());
        let ledger = Ledger::before_subtree(&mut tx, id).await?;
        trash_rows::restore_folder(
            &mut tx,
            mark.unit,
            id,
            &stored_path(mark.unit, &folder.path),
            &new_path,
            parent.map(|p| p.id),
            now,
        )
        .await
        .map_err(conflict_as(format!(
            "a folder already exists at {new_path}; move or rename it, or restore into another folder with target_parent_id"
        )))?;
        // Folders trashed before trees had one owner may come back with several: one again.
        record_owner_change(&mut tx, caller, &folder, &new_path, &new_owner).await?;
        webhook_rows::record_subtree_items(&mut tx, EventKind::ItemCreated, ItemCause::Restore, &new_path).await?;
        // No nesting check: its quota cannot be changed in the trash, so a quota above lowered
        // meanwhile would keep it there. Both apply once it is back.
        ledger.after_subtree(&mut tx, id).await?;
        tx.commit().await?;
        self.get(caller, id).await
    }
}

/// Moves folder `id` with its subtree from `from` to `to` (below `parent`), as of `at` (409 when
/// a folder is there), and tells webhooks of every item below its new path.
pub(super) async fn relocate(
    tx: &mut dyn Db,
    id: Uuid,
    from: &FolderPath,
    to: &FolderPath,
    parent: Option<Uuid>,
    at: time::OffsetDateTime,
) -> Result<(), ServiceError> {
    rows::relocate(tx, id, from, to, parent, at)
        .await
        .map_err(conflict_as(format!("a folder already exists at {to}")))?;
    webhook_rows::record_subtree_items(tx, EventKind::ItemUpdated, ItemCause::Folder, to).await?;
    Ok(())
}

/// Refuses (403) to put `folder` into `target` of another owner's tree, unless the caller is the
/// folder's owner or an admin: a folder changes hands only by its owner's doing.
fn ensure_same_owner_or_owner(caller: &Caller, folder: &Folder, target: &Folder) -> Result<(), ServiceError> {
    if target.owner == folder.owner || caller.is_admin || caller.name == folder.owner {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "{} belongs to {} and {} to {}: putting it there would give it to {}, which only its owner or an admin can do",
        folder.path, folder.owner, target.path, target.owner, target.owner
    )))
}

/// Gives the subtree now at `path` (`folder`, moved or restored there) to `owner`, and records
/// in the audit log when that changed the folder's owner.
async fn record_owner_change(
    tx: &mut dyn Db,
    caller: &Caller,
    folder: &Folder,
    path: &FolderPath,
    owner: &str,
) -> Result<(), ServiceError> {
    rows::set_tree_owner(tx, path, owner).await?;
    if folder.owner != owner {
        let event = AuditEvent::by(caller, AuditAction::FolderOwner, folder.id, now())
            .in_folder(folder.id)
            .with_detail(serde_json::json!({ "path": path.as_str(), "from": folder.owner, "to": owner }));
        audit::record(tx, &event).await?;
    }
    Ok(())
}
