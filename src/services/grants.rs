//! Grants: roles on folders given to users and groups by the folders' managers, and the use of
//! configured buckets under a prefix given by admins. Each change is audited in its transaction;
//! the next request of anyone it reaches sees it (grants are read per request).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{folder_for, require_admin};
use super::groups::for_change as group_for_change;
use super::{ServiceError, audit, field, now};
use crate::blobs::Buckets;
use crate::config::MANAGED_BUCKET;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::folder::{SyncBinding, Visibility};
use crate::domain::team::Principal;
use crate::store::folders as folder_rows;
use crate::store::teams::{self, BucketGrantRecord, FolderGrantRecord};
use crate::store::{Db, Store, TreeLock, users};

/// Body of `PUT /v1/folders/{id}/grants`: exactly one of `user` and `group`, and the role.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderGrantChange {
    /// The user to grant the role to.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub user: Option<String>,
    /// The group (by id) to grant the role to.
    pub group: Option<Uuid>,
    /// `viewer`, `editor` or `manager`; replaces the role the user or group had on this folder.
    pub role: Role,
}

/// Body of `PUT /v1/buckets/{name}/grants`: exactly one of `user` and `group`, and a prefix.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketGrantChange {
    /// The user to grant the bucket to.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub user: Option<String>,
    /// The group (by id) to grant the bucket to.
    pub group: Option<Uuid>,
    /// Only keys starting with this (`a/b/`; a missing final `/` is added); empty or absent: the
    /// whole bucket.
    #[serde(default)]
    pub prefix: String,
}

/// One grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GrantView {
    /// The user it is given to (`null` for a group).
    pub user: Option<String>,
    /// The group it is given to (`null` for a user).
    pub group: Option<Uuid>,
    /// That group's name.
    pub group_name: Option<String>,
    /// The role.
    pub role: Role,
    /// The folder it is on: this one, or an ancestor whose grant covers this one.
    pub folder_id: Uuid,
    /// That folder's path.
    pub path: String,
    /// True when it is on an ancestor.
    pub inherited: bool,
    /// Who gave it.
    pub granted_by: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

/// Who may do what with a folder: its owner, visibility and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FolderGrantsView {
    /// The folder.
    pub folder_id: Uuid,
    /// Its owner, a manager of it.
    pub owner: String,
    /// `private`, `internal` (every signed-in user views it) or `public`.
    pub visibility: Visibility,
    /// The grants on it and on the ancestors you may see, nearest folder first.
    pub grants: Vec<GrantView>,
}

/// One bucket grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BucketGrantView {
    /// The user it is given to (`null` for a group).
    pub user: Option<String>,
    /// The group it is given to (`null` for a user).
    pub group: Option<Uuid>,
    /// The key prefix it covers (empty: the whole bucket).
    pub prefix: String,
    /// Who gave it.
    pub granted_by: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

/// Who may use a configured bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BucketGrantsView {
    /// The bucket's name.
    pub bucket: String,
    /// The users its configuration allows (`buckets.NAME.allow`), for all of it.
    pub allowed_by_config: Vec<String>,
    /// The grants given through the API.
    pub grants: Vec<BucketGrantView>,
}

/// The `user` and `group` fields of a principal.
fn principal_fields(principal: &Principal) -> (Option<String>, Option<Uuid>) {
    match principal {
        Principal::User(name) => (Some(name.clone()), None),
        Principal::Group(id) => (None, Some(*id)),
    }
}

/// Grant use cases.
#[derive(Clone)]
pub struct GrantService {
    store: Store,
    buckets: Buckets,
}

impl GrantService {
    /// Wraps the store and the configured buckets.
    pub fn new(store: Store, buckets: Buckets) -> Self {
        Self { store, buckets }
    }

    /// The grants on folder `id` and its ancestors (its managers).
    pub async fn folder_grants(&self, caller: &Caller, id: Uuid) -> Result<FolderGrantsView, ServiceError> {
        let mut conn = self.store.read().await?;
        let folder = folder_for(&mut conn, caller, id, Role::Manager).await?;
        // The ancestors the caller may see, nearest first: grants on hidden ones stay hidden.
        let mut ancestors = folder_rows::by_paths(&mut conn, &folder.path.ancestors()).await?;
        ancestors.retain(|a| caller.role_on(&a.folder).is_some());
        ancestors.sort_by(|a, b| b.folder.path.cmp(&a.folder.path));
        let mut on: Vec<(Uuid, String)> = vec![(folder.id, folder.path.to_string())];
        on.extend(ancestors.into_iter().map(|a| (a.folder.id, a.folder.path.to_string())));
        let mut grants = Vec::new();
        for (folder_id, path) in on {
            for record in teams::folder_grants(&mut conn, folder_id).await? {
                grants.push(grant_view(record, folder_id, &path, folder_id != folder.id));
            }
        }
        Ok(FolderGrantsView {
            folder_id: folder.id,
            owner: folder.owner,
            visibility: folder.visibility,
            grants,
        })
    }

    /// Gives a user or group a role on folder `id` and its subtree (its managers). 404 for an
    /// unknown user or group.
    pub async fn grant_folder(
        &self,
        caller: &Caller,
        id: Uuid,
        change: FolderGrantChange,
    ) -> Result<FolderGrantsView, ServiceError> {
        let principal = Principal::named(change.user.as_deref(), change.group).map_err(field("user"))?;
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = folder_for(&mut tx, caller, id, Role::Manager).await?;
        if principal == Principal::User(folder.owner.clone()) {
            return Err(ServiceError::Invalid(format!(
                "user: {} owns {} and is its manager already; grant a role to someone else",
                folder.owner, folder.path
            )));
        }
        ensure_principal(&mut tx, &principal).await?;
        let at = now();
        if teams::put_folder_grant(&mut tx, id, &principal, change.role, &caller.name, at).await? {
            let event = AuditEvent::by(caller, AuditAction::FolderGrant, id, at)
                .in_folder(id)
                .with_detail(serde_json::json!({
                    "path": folder.path.as_str(),
                    principal.kind(): principal.name(),
                    "role": change.role,
                }));
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.folder_grants(caller, id).await
    }

    /// Takes back the role a user or group had on folder `id` itself (its managers). 404 when it
    /// had none there.
    pub async fn revoke_folder(&self, caller: &Caller, id: Uuid, principal: Principal) -> Result<(), ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = folder_for(&mut tx, caller, id, Role::Manager).await?;
        if !teams::delete_folder_grant(&mut tx, id, &principal).await? {
            return Err(ServiceError::NotFound(format!(
                "{} `{}` has no grant on folder {} itself; a role it has there comes from an ancestor (GET /v1/folders/{id}/grants shows which)",
                principal.kind(),
                principal.name(),
                folder.path
            )));
        }
        let event = AuditEvent::by(caller, AuditAction::FolderRevoke, id, now())
            .in_folder(id)
            .with_detail(serde_json::json!({ "path": folder.path.as_str(), principal.kind(): principal.name() }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Who may use configured bucket `name` (admins).
    pub async fn bucket_grants(&self, caller: &Caller, name: &str) -> Result<BucketGrantsView, ServiceError> {
        require_admin(caller, "see who may use a bucket")?;
        let allowed_by_config = self.configured(name)?;
        let mut conn = self.store.read().await?;
        let grants = teams::bucket_grants(&mut conn, name)
            .await?
            .into_iter()
            .map(bucket_grant_view)
            .collect();
        Ok(BucketGrantsView {
            bucket: name.to_owned(),
            allowed_by_config,
            grants,
        })
    }

    /// Lets a user or group use configured bucket `name` under a prefix (admins): sync folders
    /// over it, import from it and reference its objects.
    pub async fn grant_bucket(
        &self,
        caller: &Caller,
        name: &str,
        change: BucketGrantChange,
    ) -> Result<BucketGrantsView, ServiceError> {
        require_admin(caller, "grant the use of a bucket")?;
        self.configured(name)?;
        let principal = Principal::named(change.user.as_deref(), change.group).map_err(field("user"))?;
        let prefix = checked_prefix(name, change.prefix)?;
        let mut tx = self.store.write().await?;
        ensure_principal(&mut tx, &principal).await?;
        let at = now();
        if teams::put_bucket_grant(&mut tx, name, &principal, &prefix, &caller.name, at).await? {
            let event = AuditEvent::by(caller, AuditAction::BucketGrant, name, at)
                .with_detail(serde_json::json!({ principal.kind(): principal.name(), "prefix": prefix }));
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.bucket_grants(caller, name).await
    }

    /// Takes back a user's or group's use of bucket `name` under `prefix` (admins).
    pub async fn revoke_bucket(
        &self,
        caller: &Caller,
        name: &str,
        principal: Principal,
        prefix: String,
    ) -> Result<(), ServiceError> {
        require_admin(caller, "take back the use of a bucket")?;
        self.configured(name)?;
        let prefix = checked_prefix(name, prefix)?;
        let mut tx = self.store.write().await?;
        if !teams::delete_bucket_grant(&mut tx, name, &principal, &prefix).await? {
            return Err(ServiceError::NotFound(format!(
                "{} `{}` has no grant on bucket `{name}` under prefix `{prefix}`",
                principal.kind(),
                principal.name()
            )));
        }
        let event = AuditEvent::by(caller, AuditAction::BucketRevoke, name, now())
            .with_detail(serde_json::json!({ principal.kind(): principal.name(), "prefix": prefix }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The configuration's allow list of bucket `name`; 404 when no such bucket is configured.
    fn configured(&self, name: &str) -> Result<Vec<String>, ServiceError> {
        if name == MANAGED_BUCKET {
            return Err(ServiceError::NotFound(
                "bucket `managed` holds uploads; only configured buckets can be granted".into(),
            ));
        }
        self.buckets
            .source(name)
            .map(|source| source.allowed_users().to_vec())
            .ok_or_else(|| ServiceError::NotFound(format!("no bucket named `{name}` is configured")))
    }
}

/// A prefix in the form sync bindings use (`a/b/`, or empty).
fn checked_prefix(bucket: &str, prefix: String) -> Result<String, ServiceError> {
    let binding = SyncBinding {
        bucket: bucket.to_owned(),
        prefix,
    };
    Ok(binding.normalized().map_err(field("prefix"))?.prefix)
}

/// 404 when `principal` names no recorded user or group.
async fn ensure_principal(conn: &mut dyn Db, principal: &Principal) -> Result<(), ServiceError> {
    match principal {
        Principal::User(name) => match users::by_name(conn, name).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::NotFound(format!("user: no user named `{name}`"))),
        },
        // Locked, so that a group being deleted meanwhile cannot leave this grant behind.
        Principal::Group(id) => group_for_change(conn, *id).await.map(|_| ()),
    }
}

fn grant_view(record: FolderGrantRecord, folder_id: Uuid, path: &str, inherited: bool) -> GrantView {
    let (user, group) = principal_fields(&record.principal);
    GrantView {
        user,
        group,
        group_name: record.group_name,
        role: record.role,
        folder_id,
        path: path.to_owned(),
        inherited,
        granted_by: record.granted_by,
        granted_at: record.granted_at,
    }
}

fn bucket_grant_view(record: BucketGrantRecord) -> BucketGrantView {
    let (user, group) = principal_fields(&record.principal);
    BucketGrantView {
        user,
        group,
        prefix: record.prefix,
        granted_by: record.granted_by,
        granted_at: record.granted_at,
    }
}
