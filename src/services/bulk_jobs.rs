//! Bulk actions on jobs for operators: cancel, retry, or delete the records of every job a
//! selection matches (`POST /v1/jobs/bulk`), each answering how many jobs it matched and
//! touched and why it left the others; `dry_run` counts without changing anything. A caller acts
//! only on jobs they may see, cancels and retries only those they may change (as one at a time
//! would), and only admins delete records (finished jobs only, audited).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{folder_roles, require_admin, role_on_job};
use super::audit;
use super::jobs::{JobSelection, JobService};
use super::retries::{RetryService, not_retryable};
use super::{ServiceError, now};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::job::Job;
use crate::store::{Store, jobs as job_rows, to_micros};

/// Jobs read (and acted on) per round.
const ROUND: u32 = 500;
/// Job ids an answer lists per reason it skipped jobs.
const EXAMPLES: usize = 10;

/// What a bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Cancel pending and running jobs.
    Cancel,
    /// Retry finished jobs that did not fully succeed (each as `POST /v1/jobs/{id}/retry`).
    Retry,
    /// Delete the records of finished jobs (admins).
    Delete,
}

/// Body of `POST /v1/jobs/bulk`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// What to do.
    pub action: BulkAction,
    /// To which jobs; at least one field.
    pub filter: JobSelection,
    /// Count what would be done, and do nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Jobs left alone for one reason.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Skipped {
    /// Why.
    pub reason: String,
    /// How many jobs.
    pub jobs: u64,
    /// Some of them.
    pub example_job_ids: Vec<Uuid>,
}

/// What a bulk action did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// The action.
    pub action: BulkAction,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Jobs the filter matched among those you may see.
    pub matched: u64,
    /// Jobs cancelled, retried or deleted (that would be, with `dry_run`).
    pub touched: u64,
    /// The matched jobs left alone, by reason.
    pub skipped: Vec<Skipped>,
    /// Why it stopped before the end (the database failed); `null` when it went through.
    pub stopped: Option<String>,
}

/// The tally of a bulk action as it goes.
#[derive(Default)]
struct Tally {
    matched: u64,
    touched: u64,
    skipped: BTreeMap<String, (u64, Vec<Uuid>)>,
    stopped: Option<String>,
}

impl Tally {
    fn skip(&mut self, job: Uuid, reason: String) {
        let (count, examples) = self.skipped.entry(reason).or_default();
        *count += 1;
        if examples.len() < EXAMPLES {
            examples.push(job);
        }
    }

    fn outcome(self, action: BulkAction, dry_run: bool) -> BulkOutcome {
        BulkOutcome {
            action,
            dry_run,
            matched: self.matched,
            touched: self.touched,
            skipped: self
                .skipped
                .into_iter()
                .map(|(reason, (jobs, example_job_ids))| Skipped {
                    reason,
                    jobs,
                    example_job_ids,
                })
                .collect(),
            stopped: self.stopped,
        }
    }
}

/// Bulk actions on jobs.
#[derive(Clone)]
pub struct BulkJobService {
    store: Store,
    jobs: JobService,
    retries: RetryService,
}

impl BulkJobService {
    /// Acts through the job and retry services.
    pub fn new(store: Store, jobs: JobService, retries: RetryService) -> Self {
        Self { store, jobs, retries }
    }

    /// Runs `req` for `caller` over the matching jobs, newest first, a round at a time.
    pub async fn run(&self, caller: &Caller, req: BulkRequest) -> Result<BulkOutcome, ServiceError> {
        if req.filter.is_empty() {
            return Err(ServiceError::Invalid(
                "filter: name at least one of kind, status, folder_id, submitted_after, submitted_before".into(),
            ));
        }
        if req.action == BulkAction::Delete {
            require_admin(caller, "delete job records")?;
        }
        let mut tally = Tally::default();
        let mut after = None;
        loop {
            match self.round(caller, &req, &mut after, &mut tally).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::ErrorChain(&error), "a bulk job action stopped early");
                    tally.stopped = Some(
                        "stopped early: the database failed or was unavailable; what is counted here was done, run it again to go on"
                            .into(),
                    );
                    break;
                }
            }
        }
        Ok(tally.outcome(req.action, req.dry_run))
    }

    /// One round: the next jobs after `after` (moved past them), each decided on and acted on;
    /// answers whether more may follow.
    async fn round(
        &self,
        caller: &Caller,
        req: &BulkRequest,
        after: &mut Option<(i64, Uuid)>,
        tally: &mut Tally,
    ) -> Result<bool, ServiceError> {
        let (page, roles) = {
            let mut conn = self.store.read().await?;
            let page = job_rows::list(&mut conn, &req.filter.filter(caller, *after, ROUND)).await?;
            let roles = folder_roles(&mut conn, caller, page.iter().filter_map(|j| j.folder_id)).await?;
            (page, roles)
        };
        let Some(last) = page.last() else { return Ok(false) };
        *after = Some((to_micros(last.created_at), last.id));
        let full = page.len() == ROUND as usize;
        let mut deletable = Vec::new();
        for job in page {
            tally.matched += 1;
            let on_folder = job.folder_id.and_then(|f| roles.get(&f).copied().flatten());
            let role = role_on_job(caller, &job, on_folder).unwrap_or(Role::Viewer);
            match self.act(caller, req, &job, role).await? {
                Verdict::Touch if req.action == BulkAction::Delete && !req.dry_run => deletable.push(job.id),
                Verdict::Touch => tally.touched += 1,
                Verdict::Skip(reason) => tally.skip(job.id, reason),
            }
        }
        tally.touched += self.delete(caller, &req.filter, &deletable).await?;
        Ok(full)
    }

    /// Decides on one job and, unless a dry run (or a delete, done per round), acts on it.
    async fn act(&self, caller: &Caller, req: &BulkRequest, job: &Job, role: Role) -> Result<Verdict, ServiceError> {
        if req.action != BulkAction::Delete && role < Role::Editor {
            return Ok(Verdict::Skip(
                "you may only read it (changing a job needs the editor role on its folder, or being its submitter)"
                    .into(),
            ));
        }
        match req.action {
            BulkAction::Cancel if job.status.is_terminal() => Ok(Verdict::Skip("already finished".into())),
            BulkAction::Cancel if req.dry_run => Ok(Verdict::Touch),
            BulkAction::Cancel => match self.jobs.cancel_unchecked(job.id).await {
                Ok(_) => Ok(Verdict::Touch),
                // Finished between the read and the cancel.
                Err(ServiceError::Conflict(_)) => Ok(Verdict::Skip("already finished".into())),
                Err(e) => Err(e),
            },
            BulkAction::Retry => {
                if let Some(why) = not_retryable(job) {
                    return Ok(Verdict::Skip(why.replace(&job.id.to_string(), "the job")));
                }
                if self.retries.earlier_retry(job.id).await?.is_some() {
                    return Ok(Verdict::Skip("already retried".into()));
                }
                if req.dry_run {
                    return Ok(Verdict::Touch);
                }
                match self.retries.retry_job(caller, job).await {
                    Ok(submitted) if submitted.created => Ok(Verdict::Touch),
                    Ok(_) => Ok(Verdict::Skip("already retried".into())),
                    Err(ServiceError::Store(e)) => Err(ServiceError::Store(e)),
                    Err(refused) => Ok(Verdict::Skip(
                        refused.to_string().replace(&job.id.to_string(), "the job"),
                    )),
                }
            }
            BulkAction::Delete if !job.status.is_terminal() => {
                Ok(Verdict::Skip("not finished (cancel it first)".into()))
            }
            BulkAction::Delete => Ok(Verdict::Touch),
        }
    }

    /// Deletes the records of finished jobs `ids` in one audited transaction; answers how many.
    async fn delete(&self, caller: &Caller, filter: &JobSelection, ids: &[Uuid]) -> Result<u64, ServiceError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.write().await?;
        let deleted = job_rows::delete(&mut tx, ids).await?;
        let event = AuditEvent::by(caller, AuditAction::JobsDelete, format!("{deleted} jobs"), now())
            .with_detail(serde_json::json!({ "deleted": deleted, "filter": filter_detail(filter) }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// What a bulk action does with one job.
enum Verdict {
    /// It acts on it (or would, in a dry run).
    Touch,
    /// It leaves it, for this reason.
    Skip(String),
}

/// The selection as the audit log records it.
fn filter_detail(filter: &JobSelection) -> serde_json::Value {
    serde_json::json!({
        "kind": filter.kind.map(|k| k.as_str()),
        "status": filter.status.map(|s| s.as_str()),
        "folder_id": filter.folder_id,
        "submitted_after": filter.submitted_after.map(|t| super::rfc3339(t.0)),
        "submitted_before": filter.submitted_before.map(|t| super::rfc3339(t.0)),
    })
}
