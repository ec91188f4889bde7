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
use crate::domain::caller::{Caller, KeyScope, Role};
use crate::domain::folder::{Folder, FolderPath};
use crate::domain::import::Unit;
use crate::domain::item::Item;
use crate::domain::job::Job;
use crate::store::Db;
use crate::store::folders::{self as folder_rows, FolderRecord};
use crate::store::items as item_rows;
use crate::store::jobs as job_rows;
use crate::store::sync as sync_rows;

/// The configured bucket `name` (not `managed`), when `caller` may use its keys under `prefix`.
pub fn usable_source(buckets: &Buckets, caller: &Caller, name: &str, prefix: &str) -> Option<Arc<Source>> {
    buckets
        .source(name)
        .filter(|source| caller.may_use_bucket(source.name(), source.allowed_users(), Some(prefix)))
}

/// Every configured bucket (not `managed`) that `caller` may use, in whole or under a granted
/// prefix.
pub fn usable_sources(buckets: &Buckets, caller: &Caller) -> Vec<Arc<Source>> {
    buckets
        .sources()
        .filter(|source| caller.may_use_bucket(source.name(), source.allowed_users(), None))
        .cloned()
        .collect()
}

/// The bucket and key of object URL `url`, among the buckets and prefixes `caller` may use.
pub fn locate_usable(buckets: &Buckets, caller: &Caller, url: &str) -> Result<(Arc<Source>, ObjectKey), BlobError> {
    let (source, key) = buckets.locate_among(url, |source| {
        caller.may_use_bucket(source.name(), source.allowed_users(), None)
    })?;
    if caller.may_use_bucket(source.name(), source.allowed_users(), Some(key.as_str())) {
        return Ok((source, key));
    }
    let granted: Vec<&str> = caller
        .bucket_grants
        .iter()
        .filter(|g| g.bucket == source.name())
        .map(|g| g.prefix.as_str())
        .collect();
    Err(BlobError::InvalidKey(format!(
        "`{url}` lies outside what you may use of bucket `{}`: keys starting with [{}]",
        source.name(),
        granted.join(", ")
    )))
}

/// Returns the folder when `caller` has `need` on it; hides it (404) when the caller may not see it.
pub fn require(
    caller: &Caller,
    record: Option<FolderRecord>,
    need: Role,
    what: &dyn std::fmt::Display,
) -> Result<FolderRecord, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("folder {what} not found"));
    let record = record.ok_or_else(not_found)?;
    require_role(caller, &record.folder, need).map_err(|e| match e {
        ServiceError::NotFound(_) => not_found(),
        other => other,
    })?;
    Ok(record)
}

/// The caller's role on `folder` when it is at least `need` (404 when hidden, 403 when weaker).
pub fn require_role(caller: &Caller, folder: &Folder, need: Role) -> Result<Role, ServiceError> {
    match caller.role_on(folder) {
        None => Err(ServiceError::NotFound(format!("folder {} not found", folder.id))),
        Some(role) if role < need => Err(lacks_role(folder, role, need)),
        Some(role) => Ok(role),
    }
}

/// The 403 for a folder the caller may see with `role` but not act on, which needs `need`.
fn lacks_role(folder: &Folder, role: Role, need: Role) -> ServiceError {
    ServiceError::Forbidden(format!(
        "you are {} {role} of folder {}; this needs the {need} role: ask its owner ({}) or one of its managers",
        article(role),
        folder.path,
        folder.owner
    ))
}

/// "a" or "an", before a role's name.
fn article(role: Role) -> &'static str {
    match role {
        Role::Editor => "an",
        Role::Viewer | Role::Manager => "a",
    }
}

/// Like [`require`], for a folder that may be in the trash. Grants do not reach into the trash:
/// they follow live paths, and a trashed folder's path may belong to another folder by now. A
/// trashed folder's owner and admins are its managers; editors and managers of the live folder
/// it was in keep that role on it (they may restore or purge it); to anyone else it is missing.
pub async fn require_any(
    conn: &mut dyn Db,
    caller: &Caller,
    record: Option<FolderRecord>,
    need: Role,
    what: &(dyn std::fmt::Display + Sync),
) -> Result<FolderRecord, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("folder {what} not found"));
    let record = record.ok_or_else(not_found)?;
    if record.trash.is_none() {
        return require(caller, Some(record), need, what);
    }
    match trashed_role(conn, caller, &record.folder).await? {
        None => Err(not_found()),
        Some(role) if role < need => Err(lacks_role(&record.folder, role, need)),
        Some(_) => Ok(record),
    }
}

/// The caller's role on `folder`, which is in the trash (see [`require_any`]).
async fn trashed_role(conn: &mut dyn Db, caller: &Caller, folder: &Folder) -> Result<Option<Role>, ServiceError> {
    if caller.is_admin || folder.owner == caller.name {
        return Ok(Some(Role::Manager));
    }
    let parent = match folder.parent_id {
        Some(parent) => folder_rows::by_id(conn, parent).await?,
        None => None,
    };
    Ok(parent
        .and_then(|p| caller.role_on(&p.folder))
        .filter(|role| *role >= Role::Editor))
}

/// The folder of `record`, live or in the trash, when `caller` may take it out of where it is:
/// delete or purge it, restore it from the trash (a live one: see [`require_removable`]; a
/// trashed one: its owner, admins and editors of the live folder it was in). 404 when it is
/// hidden or missing.
pub async fn require_removable_record(
    conn: &mut dyn Db,
    caller: &Caller,
    record: Option<FolderRecord>,
    what: &(dyn std::fmt::Display + Sync),
) -> Result<FolderRecord, ServiceError> {
    let record = require_any(conn, caller, record, Role::Viewer, what).await?;
    if record.trash.is_none() {
        require_removable(conn, caller, &record.folder).await?;
    } else if trashed_role(conn, caller, &record.folder).await? < Some(Role::Editor) {
        return Err(ServiceError::NotFound(format!("folder {what} not found")));
    }
    Ok(record)
}

/// Checks `caller` may remove the live `folder` from where it is (delete, rename, move it away,
/// expire it): managers of the folder, and editors of the folder it is in. 404 when it is hidden.
pub async fn require_removable(conn: &mut dyn Db, caller: &Caller, folder: &Folder) -> Result<(), ServiceError> {
    let role = caller
        .role_on(folder)
        .ok_or_else(|| ServiceError::NotFound(format!("folder {} not found", folder.id)))?;
    if role >= Role::Manager {
        return Ok(());
    }
    let parent_role = match folder.parent_id {
        Some(parent) => folder_rows::by_id(conn, parent)
            .await?
            .and_then(|p| caller.role_on(&p.folder)),
        None => None,
    };
    if parent_role.is_some_and(|r| r >= Role::Editor) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "you are {} {role} of folder {}; deleting, renaming, moving or expiring it needs the manager role on it or the editor role on the folder it is in: ask its owner ({}) or one of its managers",
        article(role),
        folder.path,
        folder.owner
    )))
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

/// The folder `id` when `caller` has `need` on it (404 when hidden or missing, 403 when the
/// caller's role is weaker).
pub async fn folder_for(conn: &mut dyn Db, caller: &Caller, id: Uuid, need: Role) -> Result<Folder, ServiceError> {
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
    let folder = folder_for(conn, caller, id, Role::Editor).await?;
    ensure_unsynced(conn, &folder.path, true, what).await?;
    Ok(folder)
}

/// The live items among `ids` that `caller` may see, each with the caller's role on it (in no
/// particular order; the others are left out).
pub async fn visible_items(
    conn: &mut dyn Db,
    caller: &Caller,
    ids: &[Uuid],
) -> Result<Vec<(Item, Role)>, ServiceError> {
    let found = item_rows::by_ids(conn, ids).await?;
    let roles = folder_roles(conn, caller, found.iter().map(|i| i.folder_id)).await?;
    Ok(found
        .into_iter()
        .filter_map(|item| roles.get(&item.folder_id).copied().flatten().map(|role| (item, role)))
        .collect())
}

/// The caller's role on each of the live folders `ids` (`None`: hidden or missing), in one query.
pub async fn folder_roles(
    conn: &mut dyn Db,
    caller: &Caller,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<BTreeMap<Uuid, Option<Role>>, ServiceError> {
    let mut roles: BTreeMap<Uuid, Option<Role>> = ids.into_iter().map(|id| (id, None)).collect();
    let wanted: Vec<Uuid> = roles.keys().copied().collect();
    for record in folder_rows::by_ids(conn, &wanted).await? {
        roles.insert(record.folder.id, caller.role_on(&record.folder));
    }
    Ok(roles)
}

/// The item with `need` access for `caller`, with its folder and the caller's role; 404 when it
/// does not exist or the caller may not see it.
pub async fn require_item(
    conn: &mut dyn Db,
    caller: &Caller,
    id: Uuid,
    need: Role,
) -> Result<(Item, Folder, Role), ServiceError> {
    let not_found = || ServiceError::NotFound(format!("item {id} not found"));
    let item = item_rows::by_id(conn, id).await?.ok_or_else(not_found)?;
    let folder = folder_rows::by_id(conn, item.folder_id)
        .await?
        .ok_or_else(not_found)?
        .folder;
    let role = require_role(caller, &folder, need).map_err(|e| match e {
        ServiceError::NotFound(_) => not_found(),
        other => other,
    })?;
    Ok((item, folder, role))
}

/// Loads a job the caller may see (`need` = Editor to change it), with the caller's role on it:
/// the role on its folder; its submitter is at least an editor of it, admins are managers.
pub async fn visible_job(
    conn: &mut dyn Db,
    caller: &Caller,
    id: Uuid,
    need: Role,
) -> Result<(Job, Role), ServiceError> {
    let not_found = || ServiceError::NotFound(format!("job {id} not found"));
    let job = job_rows::by_id(conn, id).await?.ok_or_else(not_found)?;
    let role = job_role(conn, caller, &job).await?.ok_or_else(not_found)?;
    if role < need {
        return Err(ServiceError::Forbidden(format!(
            "job {id} was submitted by {}; changing it needs the {need} role on its folder, or being its submitter",
            job.created_by
        )));
    }
    Ok((job, role))
}

/// The caller's role on `job` (see [`visible_job`]); `None` when it is hidden.
pub async fn job_role(conn: &mut dyn Db, caller: &Caller, job: &Job) -> Result<Option<Role>, ServiceError> {
    let on_folder = match job.folder_id {
        Some(folder) if !caller.is_admin => folder_rows::by_id(conn, folder)
            .await?
            .and_then(|f| caller.role_on(&f.folder)),
        _ => None,
    };
    Ok(role_on_job(caller, job, on_folder))
}

/// The rule of a caller's role on `job`, given their role on its folder: admins are managers,
/// its submitter is at least an editor (may cancel it), others have their role on the folder.
pub fn role_on_job(caller: &Caller, job: &Job, on_folder: Option<Role>) -> Option<Role> {
    if caller.is_admin {
        return Some(Role::Manager);
    }
    let as_submitter = (job.created_by == caller.name).then_some(Role::Editor);
    on_folder.max(as_submitter)
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
