//! Quotas and usage: folder quotas (set by the folder's managers), users' byte quotas (set by
//! admins), what each holds, and the recount that checks the counters. The counting itself
//! happens where items change, through `store::usage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{folder_for, require_admin, require_role};
use super::audit;
use super::users::require_user;
use super::{ServiceError, field, now};
use crate::background::Periodic;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role, check_user_name};
use crate::domain::folder::{Folder, FolderPath};
use crate::domain::quota::{Quota, Usage};
use crate::store::tallies::{self, ItemCountDrift};
use crate::store::usage::{self, Drift};
use crate::store::{Db, Store, TreeLock};

/// A folder's quota and what its subtree holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FolderQuotaView {
    /// The folder.
    pub folder_id: Uuid,
    /// Its path.
    pub path: String,
    /// Its limits.
    pub quota: Quota,
    /// What the live items of its subtree hold.
    pub usage: Usage,
}

/// What a user's trees hold, and their byte quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserUsageView {
    /// The user.
    pub user: String,
    /// The most bytes the live items of their trees may hold; `null` for no limit.
    pub max_bytes: Option<i64>,
    /// What the live items of the trees they own hold.
    pub usage: Usage,
}

/// Body of `PUT /v1/users/{name}/quota`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuota {
    /// The most bytes the live items of the user's trees may hold.
    #[schema(minimum = 0)]
    pub max_bytes: i64,
}

/// A counter the recount found wrong (and corrected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DriftView {
    /// Whose counter: `folder /path` or `user name`.
    pub holder: String,
    /// What the counter said.
    pub counted: Usage,
    /// What the items hold (what the counter says now).
    pub actual: Usage,
}

/// A folder's count of the items directly inside it that the recount found wrong (and corrected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemCountDriftView {
    /// The folder.
    pub folder_id: Uuid,
    /// Its path.
    pub path: String,
    /// What its `item_count` said.
    pub counted: i64,
    /// How many items it holds (what `item_count` says now).
    pub actual: i64,
}

impl From<ItemCountDrift> for ItemCountDriftView {
    fn from(drift: ItemCountDrift) -> Self {
        Self {
            folder_id: drift.folder_id,
            path: drift.path,
            counted: drift.counted,
            actual: drift.actual,
        }
    }
}

/// What a recount found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecountView {
    /// The usage counters that were wrong, corrected; empty when all were right.
    pub drifted: Vec<DriftView>,
    /// The folders whose `item_count` was wrong, corrected; empty when all were right.
    pub item_counts_drifted: Vec<ItemCountDriftView>,
}

impl From<Drift> for DriftView {
    fn from(drift: Drift) -> Self {
        Self {
            holder: drift.holder.to_string(),
            counted: drift.counted,
            actual: drift.actual,
        }
    }
}

/// Quota and usage use cases.
#[derive(Clone)]
pub struct QuotaService {
    store: Store,
}

impl QuotaService {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Folder `id`'s quota and usage (viewers); 404 when it has no quota.
    pub async fn folder_quota(&self, caller: &Caller, id: Uuid) -> Result<FolderQuotaView, ServiceError> {
        let mut conn = self.store.read().await?;
        let folder = folder_for(&mut conn, caller, id, Role::Viewer).await?;
        quota_view(&mut conn, &folder)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("folder {} has no quota", folder.path)))
    }

    /// Sets folder `id`'s quota (managers). It must fit inside the quotas above the folder and
    /// hold the ones below it; its usage starts from a count of the subtree. It may be set below
    /// what the subtree holds already: nothing is removed, and nothing more is added.
    pub async fn set_folder_quota(
        &self,
        caller: &Caller,
        id: Uuid,
        quota: Quota,
    ) -> Result<FolderQuotaView, ServiceError> {
        let quota = quota.checked().map_err(field("quota"))?;
        // Exclusive: no write adds to the subtree between the count and the commit.
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        let folder = folder_for(&mut tx, caller, id, Role::Viewer).await?;
        require_role(caller, &folder, Role::Manager)?;
        let (above, below) = usage::quotas_around(&mut tx, folder.path.as_str()).await?;
        for (path, outer) in &above {
            if let Some((name, inner, limit)) = quota.exceeding(outer) {
                return Err(ServiceError::Invalid(format!(
                    "{name}: {inner} exceeds the quota of {path} above it ({limit}); a subfolder's quota cannot exceed an ancestor's"
                )));
            }
        }
        for (path, inner) in &below {
            if let Some((name, limit, own)) = inner.exceeding(&quota) {
                return Err(ServiceError::Invalid(format!(
                    "{name}: {own} is below the quota of {path} inside it ({limit}); lower that one first"
                )));
            }
        }
        let previous = usage::folder_quota(&mut tx, id).await?.map(|(quota, _)| quota);
        let used = usage::set_folder_quota(&mut tx, id, folder.path.as_str(), quota).await?;
        let event = AuditEvent::by(caller, AuditAction::FolderQuota, id, now())
            .in_folder(id)
            .with_detail(serde_json::json!({ "path": folder.path.as_str(), "from": previous, "to": quota }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(FolderQuotaView {
            folder_id: id,
            path: folder.path.as_str().to_owned(),
            quota,
            usage: used,
        })
    }

    /// Removes folder `id`'s quota (managers). Removing a quota the folder does not have changes
    /// nothing and succeeds (a DELETE may be repeated).
    pub async fn remove_folder_quota(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        // Exclusive: no write is between finding the quota and counting on it.
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        let folder = folder_for(&mut tx, caller, id, Role::Viewer).await?;
        require_role(caller, &folder, Role::Manager)?;
        let previous = usage::folder_quota(&mut tx, id).await?.map(|(quota, _)| quota);
        if !usage::remove_folder_quota(&mut tx, id).await? {
            return Ok(());
        }
        let event = AuditEvent::by(caller, AuditAction::FolderQuota, id, now())
            .in_folder(id)
            .with_detail(serde_json::json!({ "path": folder.path.as_str(), "from": previous, "to": null }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What `user`'s trees hold (the caller's when `None`); other users' need an admin.
    pub async fn usage(&self, caller: &Caller, user: Option<&str>) -> Result<UserUsageView, ServiceError> {
        let user = user.unwrap_or(&caller.name);
        check_user_name(user).map_err(field("user"))?;
        if user != caller.name {
            require_admin(caller, "see another user's usage (leave `user` out to see your own)")?;
        }
        let mut conn = self.store.read().await?;
        require_user(&mut conn, user).await?;
        let (max_bytes, usage) = usage::user_usage(&mut conn, user).await?;
        Ok(UserUsageView {
            user: user.to_owned(),
            max_bytes,
            usage,
        })
    }

    /// Sets (or with `None` removes) `user`'s byte quota (admins). Like a folder quota, it may
    /// be set below what they hold. Removing a quota they do not have changes nothing.
    pub async fn set_user_quota(
        &self,
        caller: &Caller,
        user: &str,
        max_bytes: Option<i64>,
    ) -> Result<UserUsageView, ServiceError> {
        require_admin(caller, "set a user's quota")?;
        check_user_name(user).map_err(field("name"))?;
        if max_bytes.is_some_and(|b| b < 0) {
            return Err(ServiceError::Invalid("max_bytes: must be 0 or more".into()));
        }
        let mut tx = self.store.write().await?;
        require_user(&mut tx, user).await?;
        let (previous, _) = usage::user_usage(&mut tx, user).await?;
        if previous != max_bytes {
            usage::set_user_quota(&mut tx, user, max_bytes).await?;
            let event = AuditEvent::by(caller, AuditAction::UserQuota, user, now())
                .with_detail(serde_json::json!({ "from": previous, "to": max_bytes }));
            audit::record(&mut tx, &event).await?;
        }
        let (max_bytes, usage) = usage::user_usage(&mut tx, user).await?;
        tx.commit().await?;
        Ok(UserUsageView {
            user: user.to_owned(),
            max_bytes,
            usage,
        })
    }

    /// Recounts every counter from the items and corrects the ones that drifted (admins).
    pub async fn recount(&self, caller: &Caller) -> Result<RecountView, ServiceError> {
        require_admin(caller, "recount usage")?;
        let (usage, item_counts) = self.recount_all().await?;
        Ok(RecountView {
            drifted: usage.into_iter().map(DriftView::from).collect(),
            item_counts_drifted: item_counts.into_iter().map(ItemCountDriftView::from).collect(),
        })
    }

    /// Recounts every counter (usage, and what each folder holds) in one transaction that
    /// holds the folder tree alone, so that no write is half counted.
    async fn recount_all(&self) -> Result<(Vec<Drift>, Vec<ItemCountDrift>), ServiceError> {
        let mut tx = self.store.write_tree(TreeLock::Exclusive).await?;
        let drifts = usage::recount_all(&mut tx).await?;
        let item_counts = tallies::recount(&mut tx).await?;
        tx.commit().await?;
        for drift in &drifts {
            tracing::warn!(holder = %drift.holder, counted = %drift.counted, actual = %drift.actual, "usage counter drifted; corrected");
        }
        for drift in &item_counts {
            tracing::warn!(folder = %drift.path, counted = drift.counted, actual = drift.actual, "folder item count drifted; corrected");
        }
        Ok((drifts, item_counts))
    }
}

/// The quota of `folder` with its usage, if it has one.
pub async fn quota_view(conn: &mut dyn Db, folder: &Folder) -> Result<Option<FolderQuotaView>, ServiceError> {
    Ok(usage::folder_quota(conn, folder.id)
        .await?
        .map(|(quota, usage)| FolderQuotaView {
            folder_id: folder.id,
            path: folder.path.as_str().to_owned(),
            quota,
            usage,
        }))
}

/// Refuses (409) to leave folder `id`, now at `path` after a move or a restore, with a quota at
/// or below it that exceeds a quota above it: a subfolder's quota cannot exceed an ancestor's.
pub async fn ensure_nested(conn: &mut dyn Db, id: Uuid, path: &FolderPath) -> Result<(), ServiceError> {
    let (above, mut inside) = usage::quotas_around(conn, path.as_str()).await?;
    if let Some((own, _)) = usage::folder_quota(conn, id).await? {
        inside.push((path.as_str().to_owned(), own));
    }
    for (inner_path, inner) in &inside {
        for (outer_path, outer) in &above {
            if let Some((name, inner_limit, outer_limit)) = inner.exceeding(outer) {
                return Err(ServiceError::Conflict(format!(
                    "the quota of {inner_path} ({name} {inner_limit}) would exceed the quota of {outer_path} above it ({outer_limit}); lower it first"
                )));
            }
        }
    }
    Ok(())
}

/// How often [`TallyFold`] runs.
pub const TALLY_FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Adds the changes that PostgreSQL's triggers recorded into the folders' kept tallies
/// (`store::tallies::fold`), so that a folder's read sums few of them.
pub struct TallyFold(pub Store);

impl Periodic for TallyFold {
    async fn round(&mut self) {
        let folded = match self.0.read().await {
            Ok(mut conn) => tallies::fold(&mut conn).await,
            Err(error) => Err(error),
        };
        if let Err(error) = folded {
            tracing::warn!(%error, "could not fold the folders' tally changes; trying again later");
        }
    }
}

/// How often [`UsageRecount`] runs.
pub const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The daily recount: checks every counter against the items and corrects (and logs) the ones
/// that drifted.
pub struct UsageRecount(pub QuotaService);

impl Periodic for UsageRecount {
    async fn round(&mut self) {
        if let Err(error) = self.0.recount_all().await {
            tracing::warn!(%error, "could not recount usage; trying again later");
        }
    }
}
