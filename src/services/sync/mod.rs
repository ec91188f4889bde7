//! Bucket sync: a synced folder mirrors every object under its bucket prefix. A sync lists the
//! bucket (streaming, in key order) beside the catalog (in key order), reads only what the
//! fingerprints say may have changed, and applies creates, updates, tombstones and restores in
//! bounded transactions. It never writes to or deletes from the bucket, and tombstones only
//! after a listing that completed, within `max_tombstone_ratio`.

mod runner;
mod stages;
mod tally;
mod writer;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use runner::SyncRunner;

use super::access::require;
use super::jobs::{JobService, Submission, Submitted};
use super::{Context, ServiceError};
use crate::domain::caller::{Caller, Role};
use crate::domain::job::{Job, JobKind};
use crate::store::{Store, folders as folder_rows};

/// The share of a folder's live items a sync may tombstone unless told otherwise.
pub const DEFAULT_MAX_TOMBSTONE_RATIO: f64 = 0.5;
/// Below this many live items the ratio guard does not apply.
pub const RATIO_GUARD_FROM: i64 = 100;

/// Options of one sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncOptions {
    /// Read and hash every object, not only those whose fingerprint changed (catches an edit
    /// that kept size and modification time).
    #[serde(default)]
    pub force_rehash: bool,
    /// Compute the same result and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The largest share (0-1) of the folder's live items this sync may tombstone when it has
    /// more than 100 (default 0.5). Pass 1.0 to accept a mass deletion.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub max_tombstone_ratio: Option<f64>,
}

/// The parameters a SYNC job carries: the options, the touched keys of an incremental sync,
/// and (ignored here) when a schedule fired it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncParams {
    /// See [`SyncOptions::force_rehash`].
    #[serde(default)]
    pub force_rehash: bool,
    /// See [`SyncOptions::dry_run`].
    #[serde(default)]
    pub dry_run: bool,
    /// See [`SyncOptions::max_tombstone_ratio`].
    pub max_tombstone_ratio: Option<f64>,
    /// Only these keys (and what lies below those that are directories): an incremental sync
    /// of what a watcher saw change. All keys when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// Counts a sync reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncResult {
    /// Objects the listing found.
    pub listed: u64,
    /// New items.
    pub created: u64,
    /// Items whose content changed.
    pub updated: u64,
    /// Items whose content is the same (fingerprint equal, or same checksum).
    pub unchanged: u64,
    /// Items whose object is gone.
    pub tombstoned: u64,
    /// Tombstoned items whose object is back.
    pub restored: u64,
    /// Bytes read to hash.
    pub bytes_hashed: u64,
    /// Entries skipped on purpose (symlinks out of the root…).
    pub skipped: u64,
    /// Objects that could not be read or recorded (see the job's `errors`).
    pub errors: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// Submits syncs.
#[derive(Clone)]
pub struct SyncService {
    store: Store,
    jobs: JobService,
}

impl SyncService {
    /// Wraps the store and the job service.
    pub fn new(store: Store, jobs: JobService) -> Self {
        Self { store, jobs }
    }

    /// Queues a sync of synced folder `folder_id`; while one is pending or running, that one is
    /// returned instead.
    pub async fn submit(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        options: SyncOptions,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, ServiceError> {
        if let Some(ratio) = options.max_tombstone_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(ServiceError::Invalid(format!(
                "max_tombstone_ratio must be between 0 and 1, got {ratio}"
            )));
        }
        let params = serde_json::to_value(&options).context("cannot encode the job parameters")?;
        self.submit_params(caller, folder_id, params, idempotency_key, None)
            .await
    }

    /// Retries SYNC job `job`: a new sync of its folder with the same parameters. What the
    /// failed one changed stays; the new one touches only what is still different.
    pub async fn retry(&self, caller: &Caller, job: &Job) -> Result<Submitted, ServiceError> {
        let folder_id = job
            .folder_id
            .ok_or_else(|| ServiceError::Internal(format!("sync job {} has no folder", job.id)))?;
        self.submit_params(caller, folder_id, job.params.clone(), None, Some(job.id))
            .await
    }

    /// Queues a sync of synced folder `folder_id` with job parameters `params`, if `caller` may.
    async fn submit_params(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        params: serde_json::Value,
        idempotency_key: Option<String>,
        retry_of: Option<Uuid>,
    ) -> Result<Submitted, ServiceError> {
        let mut conn = self.store.read().await?;
        let folder = require(
            caller,
            folder_rows::by_id(&mut conn, folder_id).await?,
            Role::Editor,
            &folder_id,
        )?
        .folder;
        if folder.sync.is_none() {
            return Err(ServiceError::Conflict(format!(
                "folder {} is not a synced folder; create one with \"sync\": {{\"bucket\": NAME, \"prefix\": PREFIX}}",
                folder.path
            )));
        }
        let submission = Submission {
            kind: JobKind::Sync,
            folder_id: Some(folder_id),
            params,
            idempotency_key,
            retry_of,
        };
        self.jobs.submit(&caller.name, submission).await
    }
}
