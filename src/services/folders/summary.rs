//! What a folder holds: counts and sizes by item type, directly or in its whole subtree.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::FolderService;
use crate::domain::caller::{Caller, Role};
use crate::services::ServiceError;
use crate::services::access::folder_for;
use crate::services::quotas::{FolderQuotaView, quota_view};
use crate::store::folders as rows;

/// Counts of one item type.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TypeSummary {
    /// Items of the type, tombstones included.
    pub count: i64,
    /// Of those, tombstones.
    pub tombstones: i64,
    /// Bytes of the live ones.
    pub size: i64,
}

/// What a folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FolderSummary {
    /// The folder.
    pub folder_id: Uuid,
    /// Whether the counts cover the whole subtree.
    pub recursive: bool,
    /// Subfolders (direct, or all descendants when recursive).
    pub subfolder_count: i64,
    /// Items, tombstones included.
    pub item_count: i64,
    /// Tombstoned items.
    pub tombstone_count: i64,
    /// Bytes of live items.
    pub total_size: i64,
    /// Counts by item type.
    pub by_type: BTreeMap<String, TypeSummary>,
    /// The folder's quota with what its whole subtree holds; `null` when it has none.
    pub quota: Option<FolderQuotaView>,
}

impl FolderService {
    /// Counts what a folder holds, directly or in its whole subtree.
    pub async fn summary(&self, caller: &Caller, id: Uuid, recursive: bool) -> Result<FolderSummary, ServiceError> {
        let mut conn = self.store.read().await?;
        let folder = folder_for(&mut conn, caller, id, Role::Viewer).await?;
        let summary = rows::summary(&mut conn, id, &folder.path, recursive).await?;
        let by_type: BTreeMap<String, TypeSummary> = summary
            .by_type
            .into_iter()
            .map(|t| {
                let counts = TypeSummary {
                    count: t.items,
                    tombstones: t.tombstones,
                    size: t.bytes,
                };
                (t.item_type, counts)
            })
            .collect();
        Ok(FolderSummary {
            folder_id: id,
            recursive,
            subfolder_count: summary.subfolders,
            item_count: by_type.values().map(|t| t.count).sum(),
            tombstone_count: by_type.values().map(|t| t.tombstones).sum(),
            total_size: by_type.values().map(|t| t.size).sum(),
            by_type,
            quota: quota_view(&mut conn, &folder).await?,
        })
    }
}
