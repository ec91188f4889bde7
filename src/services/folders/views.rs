//! How folders look to clients: the view of a folder (with its path to the root) and how
//! records become views.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::caller::{Caller, Role};
use crate::domain::folder::FolderPath;
use crate::domain::folder::{SyncBinding, Visibility};
use crate::services::ServiceError;
use crate::store::Db;
use crate::store::folders::{self as rows, FolderRecord};
use crate::store::stars::{self, Starred};

/// One step of a folder's path from the root.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PathEntry {
    /// The ancestor's id.
    pub id: Uuid,
    /// The ancestor's name.
    pub name: String,
}

/// A folder as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FolderView {
    /// Stable identifier.
    pub id: Uuid,
    /// Its own name.
    pub name: String,
    /// Its absolute path.
    pub path: String,
    /// The containing folder; `null` at the root, or when you may not see it.
    pub parent_id: Option<Uuid>,
    /// Its ancestors, root first (itself excluded; those you may not see left out).
    pub path_to_root: Vec<PathEntry>,
    /// Free text.
    pub description: String,
    /// The client's JSON object.
    #[schema(value_type = Object)]
    pub client_metadata: serde_json::Map<String, serde_json::Value>,
    /// The user that created it.
    pub owner: String,
    /// `private`, `internal` (every signed-in user views it) or `public`.
    pub visibility: Visibility,
    /// Lifetime of its items in seconds, if any.
    pub ttl_seconds: Option<i64>,
    /// Cron expression on which it is synced, if any.
    pub sync_schedule: Option<String>,
    /// The bucket prefix it mirrors, when it is a synced folder.
    pub sync: Option<SyncBinding>,
    /// Set when its schedule paused itself after syncs failed `sync.pause_schedule_after_failures`
    /// times in a row; setting `sync_schedule` again (or a sync that succeeds) resumes it.
    pub schedule_paused: Option<SchedulePauseView>,
    /// When it expires with everything in it (RFC 3339), if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Items directly inside.
    pub item_count: i64,
    /// Folders directly inside.
    pub subfolder_count: i64,
    /// Your role on it: `viewer`, `editor` or `manager` (its owner and admins are managers).
    pub my_role: Role,
    /// Whether you starred it.
    pub starred: bool,
}

/// Why and since when a folder's sync schedule is paused.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SchedulePauseView {
    /// When it paused (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The message of the last failed sync.
    pub reason: String,
}

/// Turns records into client views, looking up every ancestor for `path_to_root` in one query
/// (an ancestor the caller may not see is left out of it).
pub(crate) async fn views(
    conn: &mut dyn Db,
    caller: &Caller,
    records: Vec<FolderRecord>,
) -> Result<Vec<FolderView>, ServiceError> {
    let mut ancestors: Vec<FolderPath> = records.iter().flat_map(|r| r.folder.path.ancestors()).collect();
    ancestors.sort();
    ancestors.dedup();
    let ids: BTreeMap<String, Uuid> = rows::by_paths(conn, &ancestors)
        .await?
        .into_iter()
        .filter(|r| caller.role_on(&r.folder).is_some())
        .map(|r| (r.folder.path.as_str().to_owned(), r.folder.id))
        .collect();
    let listed: Vec<Uuid> = records.iter().map(|r| r.folder.id).collect();
    let starred = stars::among(conn, &caller.name, Starred::Folder, &listed).await?;
    Ok(records
        .into_iter()
        .map(|record| {
            let folder = record.folder;
            let my_role = caller.role_on(&folder).unwrap_or(Role::Viewer);
            let path_to_root = folder
                .path
                .ancestors()
                .into_iter()
                .filter_map(|p| {
                    ids.get(p.as_str()).map(|id| PathEntry {
                        id: *id,
                        name: p.name().to_owned(),
                    })
                })
                .collect();
            FolderView {
                id: folder.id,
                name: folder.name,
                path: folder.path.to_string(),
                parent_id: folder
                    .path
                    .parent()
                    .filter(|parent| ids.contains_key(parent.as_str()))
                    .and(folder.parent_id),
                path_to_root,
                description: folder.description,
                client_metadata: folder.client_metadata,
                owner: folder.owner,
                visibility: folder.visibility,
                ttl_seconds: folder.ttl_seconds,
                sync_schedule: folder.sync_schedule,
                sync: folder.sync,
                schedule_paused: folder.schedule_paused.map(|pause| SchedulePauseView {
                    since: pause.since,
                    reason: pause.reason,
                }),
                expires_at: folder.expires_at,
                created_at: folder.created_at,
                updated_at: folder.updated_at,
                item_count: record.item_count,
                subfolder_count: record.subfolder_count,
                my_role,
                starred: starred.contains(&folder.id),
            }
        })
        .collect())
}
