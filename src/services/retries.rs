//! Retrying a job that did not fully succeed (`POST /v1/jobs/{id}/retry`): a new job that names
//! the one it retries in `retry_of`, submitted by the caller under today's rules (their access
//! now, not the original submitter's). Imports and re-encodes carry over only the units that
//! did not succeed; a sync runs again over its folder (it only touches what is still
//! different). A job is retried at most once: asking again answers the first retry, so a
//! retry that failed is retried through its own id.

use uuid::Uuid;

use super::ServiceError;
use super::access::{job_role, require_admin, visible_job};
use super::imports::ImportService;
use super::jobs::{JobService, Submission, Submitted};
use super::reencode::ReencodeService;
use super::sync::SyncService;
use crate::domain::caller::{Caller, Role};
use crate::domain::job::{Job, JobKind, JobStatus};
use crate::store::{Store, jobs as job_rows};

/// Retries jobs of every kind.
#[derive(Clone)]
pub struct RetryService {
    store: Store,
    jobs: JobService,
    sync: SyncService,
    imports: ImportService,
    reencode: ReencodeService,
}

/// Why `job` cannot be retried, if it cannot: it has not finished, or it finished with nothing
/// left to do.
pub fn not_retryable(job: &Job) -> Option<String> {
    match job.status {
        JobStatus::Pending | JobStatus::Running => Some(format!(
            "job {} is {}; only a finished job that did not fully succeed (ERROR, CANCELLED, or DONE with failed units) can be retried",
            job.id,
            job.status.as_str()
        )),
        JobStatus::Done if job.progress.units_error == 0 => Some(format!(
            "job {} finished DONE with no failed unit; there is nothing to retry",
            job.id
        )),
        _ => None,
    }
}

impl RetryService {
    /// Retries through the services that submit each kind.
    pub fn new(
        store: Store,
        jobs: JobService,
        sync: SyncService,
        imports: ImportService,
        reencode: ReencodeService,
    ) -> Self {
        Self {
            store,
            jobs,
            sync,
            imports,
            reencode,
        }
    }

    /// Retries job `id` for `caller`, who must be able to change it (its submitter, an editor
    /// of its folder, an admin) and to submit its kind today. `created` is false when the job
    /// was already retried: the answer is that retry.
    pub async fn retry(&self, caller: &Caller, id: Uuid) -> Result<Submitted, ServiceError> {
        let mut conn = self.store.read().await?;
        let job = visible_job(&mut conn, caller, id, Role::Editor).await?.0;
        if let Some(earlier) = job_rows::retry_of(&mut conn, id).await? {
            // Shown only to those who may see it (someone else may have retried it).
            if job_role(&mut conn, caller, &earlier).await?.is_none() {
                return Err(ServiceError::Conflict(format!("job {id} was already retried")));
            }
            return Ok(Submitted {
                job: earlier,
                created: false,
            });
        }
        drop(conn);
        self.retry_job(caller, &job).await
    }

    /// The job that already retries job `id`, if any.
    pub async fn earlier_retry(&self, id: Uuid) -> Result<Option<Job>, ServiceError> {
        let mut conn = self.store.read().await?;
        Ok(job_rows::retry_of(&mut conn, id).await?)
    }

    /// Retries `job`, which `caller` may change and which has no retry yet.
    pub async fn retry_job(&self, caller: &Caller, job: &Job) -> Result<Submitted, ServiceError> {
        if let Some(why) = not_retryable(job) {
            return Err(ServiceError::Conflict(why));
        }
        match job.kind {
            JobKind::Sync => self.sync.retry(caller, job).await,
            JobKind::Import => self.imports.retry(caller, job).await,
            JobKind::Reencode => self.reencode.retry(caller, job).await,
            JobKind::Expiry | JobKind::Noop => {
                require_admin(caller, &format!("retry {} jobs", job.kind.as_str()))?;
                let submission = Submission {
                    kind: job.kind,
                    folder_id: job.folder_id,
                    params: job.params.clone(),
                    idempotency_key: None,
                    retry_of: Some(job.id),
                };
                self.jobs.submit(&caller.name, submission).await
            }
        }
    }
}
