//! Access decisions, in one place: which folders and items a caller may see or change, which
//! configured buckets they may use (sync folders over, import from, reference objects in), and
//! which changes a synced folder refuses. Something the caller may not see is answered exactly
//! like something that does not exist, so nobody learns that it exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::ServiceError;
use crate::blobs::source::Source;
use crate::blobs::{BlobError, Buckets, ObjectKey};
use crate::domain::caller::{Access, Caller, KeyScope};
use crate::domain::folder::{Folder, FolderPath};
use crate::domain::import::Unit;
use crate::domain::item::Item;
use crate::domain::job::Job;
use crate::store::Db;
use crate::store::folders::{self as folder_rows, FolderRecord};
use crate::store::items as item_rows;
use crate::store::jobs as job_rows;
use crate::store::sync as sync_rows;

/// The configured bucket `name` (not `managed`), when `caller` may use it.
pub fn usable_source(buckets: &Buckets, caller: &Caller, name: &str) -> Option<Arc<Source>> {
    buckets
        .source(name)
        .filter(|source| caller.may_use_bucket(source.allowed_users()))
}

/// Every configured bucket (not `managed`) that `caller` may use, by name.
pub fn usable_sources(buckets: &Buckets, caller: &Caller) -> Vec<Arc<Source>> {
    buckets
        .sources()
        .filter(|source| caller.may_use_bucket(source.allowed_users()))
        .cloned()
        .collect()
}

/// The bucket and key of object URL `url`, among the buckets `caller` may use.
pub fn locate_usable(buckets: &Buckets, caller: &Caller, url: &str) -> Result<(Arc<Source>, ObjectKey), BlobError> {
    buckets.locate_among(url, |source| caller.may_use_bucket(source.allowed_users()))
}

/// Returns the folder when `caller` has `need` on it; hides it (404) when the caller may not see it.
pub fn require(
    caller: &Caller,
    record: Option<FolderRecord>,
    need: Access,
    what: &dyn std::fmt::Display,
) -> Result<FolderRecord, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("folder {what} not found"));
    let record = record.ok_or_else(not_found)?;
    match caller.access_to(&record.folder) {
        Access::None => Err(not_found()),
        Access::Read if need == Access::Write => Err(read_only(&record.folder)),
        _ => Ok(record),
    }
}

/// The 403 for a folder the caller may read but not change.
pub fn read_only(folder: &Folder) -> ServiceError {
    ServiceError::Forbidden(format!(
        "folder {} belongs to {}; only its owner or an admin can change it",
        folder.path, folder.owner
    ))
}

/// Refuses a structural change (`what`) at `path` when it lies inside a synced folder (with
/// `include_self`, also when `path` is a synced folder itself): a synced folder's layout belongs
/// to its bucket.
pub async fn ensure_unsynced(
    conn: &mut dyn Db,
    path: &FolderPath,
    include_self: bool,
    what: &str,
) -> Result<(), ServiceError> {
    let mut paths: Vec<String> = path.ancestors().iter().map(|p| p.as_str().to_owned()).collect();
    if include_self {
        paths.push(path.as_str().to_owned());
    }
    match sync_rows::synced_root_among(conn, &paths).await? {
        Some((_, bucket)) => Err(ServiceError::Conflict(format!(
            "{path} is inside a folder that mirrors bucket `{bucket}`: its structure belongs to the bucket, so {what} is not possible there; change the bucket and sync instead"
        ))),
        None => Ok(()),
    }
}

/// The folder `id` when `caller` has `need` on it (404 when hidden or missing, 403 when read-only).
pub async fn folder_for(conn: &mut dyn Db, caller: &Caller, id: Uuid, need: Access) -> Result<Folder, ServiceError> {
    Ok(require(caller, folder_rows::by_id(conn, id).await?, need, &id)?.folder)
}

/// The folder `id` when `caller` may change its contents and it is not part of a synced folder
/// (whose contents belong to its bucket); `what` names the refused change.
pub async fn changeable_folder(
    conn: &mut dyn Db,
    caller: &Caller,
    id: Uuid,
    what: &str,
) -> Result<Folder, ServiceError> {
    let folder = folder_for(conn, caller, id, Access::Write).await?;
    ensure_unsynced(conn, &folder.path, true, what).await?;
    Ok(folder)
}

/// The live items among `ids` that `caller` may see, each with the caller's access to its folder
/// (in no particular order; the others are left out).
pub async fn visible_items(
    conn: &mut dyn Db,
    caller: &Caller,
    ids: &[Uuid],
) -> Result<Vec<(Item, Access)>, ServiceError> {
    let found = item_rows::by_ids(conn, ids).await?;
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

/// The item with `need` access for `caller`, with its folder; 404 when it does not exist or
/// the caller may not see it.
pub async fn require_item(
    conn: &mut dyn Db,
    caller: &Caller,
    id: Uuid,
    need: Access,
) -> Result<(Item, Folder), ServiceError> {
    let not_found = || ServiceError::NotFound(format!("item {id} not found"));
    let item = item_rows::by_id(conn, id).await?.ok_or_else(not_found)?;
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

/// Loads a job the caller may see (`need` = Write to change it).
pub async fn visible_job(conn: &mut dyn Db, caller: &Caller, id: Uuid, need: Access) -> Result<Job, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("job {id} not found"));
    let job = job_rows::by_id(conn, id).await?.ok_or_else(not_found)?;
    if caller.is_admin || job.created_by == caller.name {
        return Ok(job);
    }
    let access = match job.folder_id {
        Some(folder) => folder_rows::by_id(conn, folder)
            .await?
            .map_or(Access::None, |f| caller.access_to(&f.folder)),
        None => Access::None,
    };
    match access {
        Access::None => Err(not_found()),
        Access::Read if need == Access::Write => Err(ServiceError::Forbidden(format!(
            "job {id} belongs to {}; only its submitter, the folder's owner or an admin can change it",
            job.created_by
        ))),
        _ => Ok(job),
    }
}

/// Refuses the units when one names an object in a configured bucket that `caller` may not use
/// (`buckets.NAME.allow`), with the same message as for a bucket that is not configured. URLs
/// in no configured bucket at all are left to fail their unit when the job runs, as for admins.
pub fn usable_urls(buckets: &Buckets, caller: &Caller, units: &[Unit]) -> Result<(), ServiceError> {
    if caller.is_admin {
        return Ok(());
    }
    for unit in units {
        for url in &unit.urls {
            if buckets.locate(url).is_ok()
                && let Err(e) = locate_usable(buckets, caller, url)
            {
                return Err(ServiceError::Invalid(format!("{}: {e}", unit.path)));
            }
        }
    }
    Ok(())
}

/// Refuses (403) a caller who is not an admin; `what` names the action, e.g. "run the expiry sweep".
pub fn require_admin(caller: &Caller, what: &str) -> Result<(), ServiceError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!("only admins can {what}")))
    }
}

/// Refuses (403) a change made with a key of scope `read`.
pub fn require_write_scope(caller: &Caller) -> Result<(), ServiceError> {
    match caller.scope {
        KeyScope::Write => Ok(()),
        KeyScope::Read => Err(ServiceError::Forbidden(
            "this API key may only read (scope `read`); use a key with scope `write` to change anything".into(),
        )),
    }
}
