//! Folder use cases: create (by path, `mkdir -p`, or parent + name), read, list, update and
//! rename, move, delete (into the trash, or for good), restore, summary. Every change that spans
//! rows is one transaction.

mod summary;
mod tree;
mod views;

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use summary::{FolderSummary, TypeSummary};
pub use tree::Deleted;
use views::views;
pub use views::{FolderView, PathEntry, SchedulePauseView};

use super::access::{
    ensure_unsynced, folder_for, require, require_removable, require_role, usable_source, usable_sources,
};
use super::audit;
use super::trash::Trash;
use super::{Metadata, Page, Rfc3339, ServiceError, conflict_as, decode_position, field, now, page_token};
use crate::blobs::Buckets;
use crate::config::MANAGED_BUCKET;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role, check_user_name};
use crate::domain::folder::{self, Folder, FolderName, FolderOrder, FolderPath, SyncBinding, Visibility};
use crate::domain::page::SortKey;
use crate::domain::page::page_size;
use crate::domain::schedule::CronSchedule;
use crate::store::Db;
use crate::store::clauses::Reader;
use crate::store::folders::{self as rows, FolderQuery, FolderRecord};
use crate::store::items as item_rows;
use crate::store::stars::{self, Starred};
use crate::store::{Store, TreeLock, to_micros};

/// Folder use cases.
#[derive(Clone)]
pub struct FolderService {
    store: Store,
    trash: Trash,
    buckets: Buckets,
    /// `sync.min_schedule_interval_seconds`.
    min_schedule_interval: u64,
}

/// A request to create a folder: either `path`, or `name` with an optional `parent_id`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFolder {
    /// Absolute path such as `/a/b/c`.
    pub path: Option<String>,
    /// With `path`: create missing parents like `mkdir -p`.
    #[serde(default)]
    pub create_parents: bool,
    /// With `name`: the folder to create it in (the root when absent).
    pub parent_id: Option<Uuid>,
    /// With `parent_id`: the new folder's name.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// A JSON object kept for the client.
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Metadata>,
    /// Lifetime of the items in the folder, in seconds (1 to 100 years).
    #[schema(minimum = 1, maximum = 3_153_600_000_i64)]
    pub ttl_seconds: Option<i64>,
    /// `private` (default) or `public`.
    pub visibility: Option<Visibility>,
    /// Cron expression (5 fields, or 6 with seconds first; UTC) on which to sync the folder.
    pub sync_schedule: Option<String>,
    /// Make it a synced folder mirroring this bucket prefix.
    pub sync: Option<SyncBinding>,
    /// When the folder and everything in it expire (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Rfc3339>,
}

/// Changes to a folder; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderPatch {
    /// A new name: renames the folder and moves the paths of its whole subtree.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Replaces the client metadata.
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Metadata>,
    /// New TTL in seconds, which also gives the folder's items their new expiry; `null` removes it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3_153_600_000_i64)]
    pub ttl_seconds: Option<Option<i64>>,
    /// When the folder and everything in it expire (RFC 3339); `null` removes it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Rfc3339>>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New sync schedule (cron); `null` removes it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    pub sync_schedule: Option<Option<String>>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListFolders {
    /// List inside this folder; the root when absent.
    pub parent_id: Option<Uuid>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Sort column.
    pub order_by: FolderOrder,
    /// Descending order.
    pub desc: bool,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
    /// All descendants instead of the children.
    pub recursive: bool,
    /// Only folders of this owner.
    pub owner: Option<String>,
    /// Only folders of this visibility.
    pub visibility: Option<Visibility>,
    /// Only folders you starred (`true`).
    pub starred: bool,
    /// A shelf instead of a folder's contents.
    pub shelf: Option<Shelf>,
}

/// The folders a user keeps coming back to, listed with the same paging as every folder list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// Your own top-level folders.
    Home,
    /// The folders granted to you (directly or through a group) that are not yours.
    Shared,
    /// The folders you starred, anywhere.
    Starred,
}

/// Body of `POST /v1/folders/{id}/restore` and `POST /v1/items/{id}/restore`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Restore into this folder instead of where it was.
    pub target_parent_id: Option<Uuid>,
}

impl FolderService {
    /// Checks a sync binding names a configured bucket (not `managed`) that `caller` may use,
    /// and a valid prefix.
    fn checked_binding(&self, caller: &Caller, binding: SyncBinding) -> Result<SyncBinding, ServiceError> {
        let binding = binding.normalized().map_err(field("sync.prefix"))?;
        if binding.bucket == MANAGED_BUCKET {
            return Err(ServiceError::Invalid(
                "sync.bucket: `managed` holds uploads and cannot be synced; name a configured bucket".into(),
            ));
        }
        if usable_source(&self.buckets, caller, &binding.bucket, &binding.prefix).is_some() {
            return Ok(binding);
        }
        let known: Vec<String> = usable_sources(&self.buckets, caller)
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        if known.contains(&binding.bucket) {
            let granted: Vec<&str> = caller
                .bucket_grants
                .iter()
                .filter(|g| g.bucket == binding.bucket)
                .map(|g| g.prefix.as_str())
                .collect();
            return Err(ServiceError::Invalid(format!(
                "sync.prefix: `{}` is not granted to you in bucket `{}`; you may use keys starting with [{}]",
                binding.prefix,
                binding.bucket,
                granted.join(", ")
            )));
        }
        Err(ServiceError::Invalid(format!(
            "sync.bucket: no bucket named `{}` is configured for you; you may use: [{}]",
            binding.bucket,
            known.join(", ")
        )))
    }
}

/// Builds a new folder record in `parent`: owned by the parent's owner (one owner per tree),
/// or by `caller` at the root.
fn new_folder(caller: &Caller, parent: Option<&Folder>, path: FolderPath) -> Folder {
    let now = now();
    Folder {
        id: Uuid::now_v7(),
        parent_id: parent.map(|p| p.id),
        name: path.name().to_owned(),
        path,
        description: String::new(),
        client_metadata: Metadata::new(),
        owner: parent.map_or_else(|| caller.name.clone(), |p| p.owner.clone()),
        visibility: Visibility::Private,
        ttl_seconds: None,
        sync_schedule: None,
        sync: None,
        expires_at: None,
        schedule_paused: None,
        created_at: now,
        updated_at: now,
    }
}

impl FolderService {
    /// Wraps the store, the trash (deletes go there, or through it for good) and the buckets
    /// (synced folders must name a configured one); sync schedules may fire at most every
    /// `min_schedule_interval` seconds.
    pub fn new(store: Store, trash: Trash, buckets: Buckets, min_schedule_interval: u64) -> Self {
        Self {
            store,
            trash,
            buckets,
            min_schedule_interval,
        }
    }

    /// Validates a cron expression for a folder's `sync_schedule`, returning it as written
    /// (trimmed).
    fn checked_schedule(&self, text: &str) -> Result<String, ServiceError> {
        let schedule = CronSchedule::parse(text)
            .and_then(|s| s.at_most_every(self.min_schedule_interval))
            .map_err(field("sync_schedule"))?;
        Ok(schedule.as_str().to_owned())
    }

    /// Creates a folder; a folder already at its path is a conflict.
    pub async fn create(&self, caller: &Caller, req: NewFolder) -> Result<FolderView, ServiceError> {
        let ttl_seconds = folder::ttl_seconds(req.ttl_seconds).map_err(field("ttl_seconds"))?;
        let sync_schedule = req
            .sync_schedule
            .as_deref()
            .map(|s| self.checked_schedule(s))
            .transpose()?;
        let sync = req
            .sync
            .map(|binding| self.checked_binding(caller, binding))
            .transpose()?;
        if sync_schedule.is_some() && sync.is_none() {
            return Err(not_synced_schedule());
        }
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let (parent, path) = if let Some(path) = &req.path {
            if req.name.is_some() || req.parent_id.is_some() {
                return Err(ServiceError::Invalid(
                    "give either `path`, or `name` with an optional `parent_id`, not both".into(),
                ));
            }
            let path = FolderPath::parse(path).map_err(field("path"))?;
            let parent = match path.parent() {
                Some(parent_path) => Some(
                    self.parent_for_create(&mut tx, caller, &parent_path, req.create_parents)
                        .await?,
                ),
                None => None,
            };
            (parent, path)
        } else if let Some(name) = &req.name {
            let name = FolderName::parse(name).map_err(field("name"))?;
            let parent = match req.parent_id {
                Some(id) => Some(folder_for(&mut tx, caller, id, Role::Editor).await?),
                None => None,
            };
            let path = FolderPath::join(parent.as_ref().map(|p| &p.path), &name).map_err(field("name"))?;
            (parent, path)
        } else {
            return Err(ServiceError::Invalid(
                "give `path`, or `name` with an optional `parent_id`".into(),
            ));
        };
        ensure_unsynced(&mut tx, &path, false, "creating a folder").await?;
        if let Some(visibility) = req.visibility.filter(|v| *v != Visibility::Private)
            && let Some(parent) = parent.as_ref().filter(|p| caller.role_on(p) < Some(Role::Manager))
        {
            // Visibility is the managers' to give, here as on a change.
            return Err(ServiceError::Forbidden(format!(
                "a new folder inside {} may be `{}` only by a manager of it; create it private, or ask its owner ({}) or one of its managers",
                parent.path,
                visibility.as_str(),
                parent.owner
            )));
        }
        let mut folder = new_folder(caller, parent.as_ref(), path);
        folder.description = req.description.unwrap_or_default();
        folder.client_metadata = req.client_metadata.unwrap_or_default();
        folder.ttl_seconds = ttl_seconds;
        folder.visibility = req.visibility.unwrap_or_default();
        folder.sync_schedule = sync_schedule;
        folder.sync = sync;
        folder.expires_at = req.expires_at.map(|t| t.0);
        rows::insert(&mut tx, &folder)
            .await
            .map_err(conflict_as(format!("a folder already exists at {}", folder.path)))?;
        tx.commit().await?;
        let record = FolderRecord {
            folder,
            subfolder_count: 0,
            item_count: 0,
            trash: None,
        };
        let mut conn = self.store.read().await?;
        Ok(views(&mut conn, caller, vec![record]).await?.remove(0))
    }

    /// The folder to create a child of `parent_path` in, creating missing ancestors when allowed.
    async fn parent_for_create(
        &self,
        conn: &mut dyn Db,
        caller: &Caller,
        parent_path: &FolderPath,
        create_parents: bool,
    ) -> Result<Folder, ServiceError> {
        let missing = || {
            ServiceError::NotFound(format!(
                "parent folder {parent_path} does not exist; create it first or pass \"create_parents\": true"
            ))
        };
        if let Some(found) = rows::by_path(conn, parent_path).await? {
            // A parent the caller may not see answers as a missing one.
            if caller.role_on(&found.folder).is_none() {
                return Err(missing());
            }
            return Ok(require(caller, Some(found), Role::Editor, parent_path)?.folder);
        }
        if !create_parents {
            return Err(missing());
        }
        let mut parent: Option<Folder> = None;
        for path in parent_path.ancestors().into_iter().chain([parent_path.clone()]) {
            if let Some(found) = rows::by_path(conn, &path).await? {
                parent = Some(require(caller, Some(found), Role::Viewer, &path)?.folder);
                continue;
            }
            if let Some(above) = &parent {
                require_role(caller, above, Role::Editor)?;
            }
            rows::insert_if_absent(conn, &new_folder(caller, parent.as_ref(), path.clone())).await?;
            // Read it back: a concurrent request may have created it first.
            parent = Some(require(caller, rows::by_path(conn, &path).await?, Role::Viewer, &path)?.folder);
        }
        let parent = parent.ok_or_else(|| ServiceError::Internal("mkdir -p produced no parent".into()))?;
        require_role(caller, &parent, Role::Editor)?;
        Ok(parent)
    }

    /// The folder with this id.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<FolderView, ServiceError> {
        let mut conn = self.store.read().await?;
        let record = require(caller, rows::by_id(&mut conn, id).await?, Role::Viewer, &id)?;
        Ok(views(&mut conn, caller, vec![record]).await?.remove(0))
    }

    /// The folder at this path.
    pub async fn get_by_path(&self, caller: &Caller, path: &str) -> Result<FolderView, ServiceError> {
        let path = FolderPath::parse(path).map_err(field("path"))?;
        let mut conn = self.store.read().await?;
        let record = require(caller, rows::by_path(&mut conn, &path).await?, Role::Viewer, &path)?;
        Ok(views(&mut conn, caller, vec![record]).await?.remove(0))
    }

    /// Stars folder `id` for the caller (`on`), or takes the star off; anyone who sees it may.
    pub async fn star(&self, caller: &Caller, id: Uuid, on: bool) -> Result<FolderView, ServiceError> {
        let mut tx = self.store.write().await?;
        folder_for(&mut tx, caller, id, Role::Viewer).await?;
        if on {
            stars::put(&mut tx, &caller.name, Starred::Folder, id, now()).await?;
        } else {
            stars::delete(&mut tx, &caller.name, Starred::Folder, id).await?;
        }
        tx.commit().await?;
        self.get(caller, id).await
    }

    /// One page of the folders inside a folder (or the root) that the caller may see.
    pub async fn list(&self, caller: &Caller, req: ListFolders) -> Result<Page<FolderView>, ServiceError> {
        let limit = page_size(req.page_size).map_err(field("page_size"))?;
        if let Some(owner) = &req.owner {
            check_user_name(owner).map_err(field("owner"))?;
        }
        let order = format!("{}:{}", req.order_by.as_str(), if req.desc { "desc" } else { "asc" });
        let after = match &req.page_token {
            Some(token) => Some(decode_position(token, &order, req.order_by == FolderOrder::Name)?),
            None => None,
        };
        let mut conn = self.store.read().await?;
        let parent = match req.parent_id {
            Some(id) => Some(folder_for(&mut conn, caller, id, Role::Viewer).await?),
            None => None,
        };
        let mut query = FolderQuery {
            parent: parent.as_ref().map(|p| p.path.clone()),
            parent_id: req.parent_id,
            recursive: req.recursive,
            visible_to: Reader::of(caller),
            search: req.search.filter(|s| !s.is_empty()),
            owner: req.owner,
            not_owner: None,
            visibility: req.visibility,
            starred_by: req.starred.then(|| caller.name.clone()),
            granted_to: None,
            order: req.order_by,
            desc: req.desc,
            after,
            limit: limit + 1,
        };
        match req.shelf {
            Some(Shelf::Home) => query.owner = Some(caller.name.clone()),
            Some(Shelf::Shared) => {
                (query.recursive, query.granted_to) = (true, Some(caller.name.clone()));
                query.not_owner = Some(caller.name.clone());
            }
            Some(Shelf::Starred) => (query.recursive, query.starred_by) = (true, Some(caller.name.clone())),
            None => {}
        }
        let records = rows::list(&mut conn, &query).await?;
        let page = Page::of(
            records,
            limit,
            |last| position_token(&order, req.order_by, &last.folder),
            |r| r,
        );
        Ok(Page {
            items: views(&mut conn, caller, page.items).await?,
            next_page_token: page.next_page_token,
        })
    }

    /// Changes a folder's attributes; a new name renames it and its whole subtree's paths.
    pub async fn update(&self, caller: &Caller, id: Uuid, patch: FolderPatch) -> Result<FolderView, ServiceError> {
        let new_name = patch
            .name
            .as_deref()
            .map(FolderName::parse)
            .transpose()
            .map_err(field("name"))?;
        let ttl_seconds = patch
            .ttl_seconds
            .map(folder::ttl_seconds)
            .transpose()
            .map_err(field("ttl_seconds"))?;
        let sync_schedule = match patch.sync_schedule {
            Some(schedule) => Some(schedule.as_deref().map(|s| self.checked_schedule(s)).transpose()?),
            None => None,
        };
        let lock = if new_name.is_some() {
            TreeLock::Exclusive
        } else {
            TreeLock::Shared
        };
        let mut tx = self.store.write_tree(lock).await?;
        let mut folder = folder_for(&mut tx, caller, id, Role::Viewer).await?;
        // The strongest need first, so that a refusal names what the change needs.
        if new_name.as_ref().is_some_and(|n| n.as_str() != folder.name) || patch.expires_at.is_some() {
            // A rename or an expiry takes the folder out of where it is.
            require_removable(&mut tx, caller, &folder).await?;
        }
        if patch.visibility.is_some_and(|v| v != folder.visibility) {
            require_role(caller, &folder, Role::Manager)?;
        }
        require_role(caller, &folder, Role::Editor)?;
        folder.updated_at = now();
        if let Some(description) = patch.description {
            folder.description = description;
        }
        if let Some(metadata) = patch.client_metadata {
            folder.client_metadata = metadata;
        }
        if let Some(ttl) = ttl_seconds {
            folder.ttl_seconds = ttl;
            item_rows::apply_folder_ttl(&mut tx, id, ttl).await?;
        }
        if let Some(expires_at) = patch.expires_at {
            folder.expires_at = expires_at.map(|t| t.0);
        }
        if let Some(visibility) = patch.visibility.filter(|v| *v != folder.visibility) {
            let event = AuditEvent::by(caller, AuditAction::FolderVisibility, id, folder.updated_at)
                .in_folder(id)
                .with_detail(serde_json::json!({
                    "path": folder.path.as_str(),
                    "from": folder.visibility,
                    "to": visibility,
                }));
            audit::record(&mut tx, &event).await?;
            folder.visibility = visibility;
        }
        if let Some(schedule) = &sync_schedule {
            if schedule.is_some() && folder.sync.is_none() {
                return Err(not_synced_schedule());
            }
            folder.sync_schedule = schedule.clone();
        }
        rows::update_attributes(&mut tx, &folder).await?;
        if sync_schedule.is_some() {
            // Setting the schedule again (or removing it) is how a paused one is resumed.
            rows::resume_schedule(&mut tx, id).await?;
        }
        if let Some(name) = new_name.filter(|n| n.as_str() != folder.name) {
            ensure_unsynced(&mut tx, &folder.path, folder.sync.is_none(), "renaming a folder").await?;
            let new_path = FolderPath::join(folder.path.parent().as_ref(), &name).map_err(field("name"))?;
            tree::relocate(
                &mut tx,
                id,
                &folder.path,
                &new_path,
                folder.parent_id,
                folder.updated_at,
            )
            .await?;
        }
        tx.commit().await?;
        self.get(caller, id).await
    }
}

/// The 400 for a schedule on a folder that mirrors no bucket.
fn not_synced_schedule() -> ServiceError {
    ServiceError::Invalid(
        "sync_schedule: only a synced folder (created with \"sync\": {\"bucket\": …}) can have a sync schedule".into(),
    )
}

/// The page token that continues after `last`.
fn position_token(order: &str, order_by: FolderOrder, last: &Folder) -> String {
    let key = match order_by {
        FolderOrder::Name => SortKey::Text(last.name.clone()),
        FolderOrder::CreatedAt => SortKey::Int(to_micros(last.created_at)),
    };
    page_token(order, &key, last.id)
}
