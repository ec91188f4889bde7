//! Job use cases: submit (job row + queue push), read, list, long-poll, cancel, and run an
//! attempt with retries. The queue itself (apalis) sits behind the [`Enqueue`] port.

pub mod context;
pub mod events;
pub mod noop;
pub mod pauses;
pub mod relay;
pub mod retention;
pub mod selection;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::access::{folder_roles, job_role, role_on_job, visible_job};
use super::{Page, ServiceError, decode_number_position, field, page_token};
use crate::domain::caller::{Caller, Role};
use crate::domain::job::{Job, JobKind, JobStatus};
use crate::domain::page::{SortKey, page_size};
use crate::store::Db;
use crate::store::jobs::{self as rows, Cancelled, NewJob};
use crate::store::pauses as pause_rows;
use crate::store::{Store, StoreError, to_micros};
use context::{JobContext, JobFailure};
use events::JobEvents;
pub use selection::{JobSelection, ListJobs};

/// The longest a client may wait on a job in one request.
pub const MAX_WAIT_SECONDS: u64 = 600;
/// The longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
/// The user name recorded on jobs the scheduler submits.
pub const SCHEDULER: &str = "scheduler";

/// Runs one kind of job. Implementations check `ctx.checkpoint()` between units.
pub trait Runner: Send + Sync {
    /// Runs an attempt; returns the kind's result.
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>>;

    /// Runs once a job has ended for good (DONE, ERROR or CANCELLED), with its final record:
    /// bookkeeping beside the job, such as a folder's run of failed syncs. Nothing by default.
    fn finished<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Why a job could not be queued: the queue's own error (this layer does not know the queue's
/// types).
pub type EnqueueError = Box<dyn std::error::Error + Send + Sync>;

/// The job queue as the use cases see it.
pub trait Enqueue: Send + Sync {
    /// Queues `job` of `kind`. Pushing the same job twice must be harmless.
    fn enqueue(&self, job: Uuid, kind: JobKind) -> BoxFuture<'_, Result<(), EnqueueError>>;

    /// How many workers of `kind`'s queue, in any process, reported alive lately.
    fn workers_alive(&self, kind: JobKind) -> BoxFuture<'_, Result<u64, EnqueueError>>;
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts a job gets before it ends in ERROR.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
        self.backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_backoff)
    }
}

/// A job to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// What it does.
    pub kind: JobKind,
    /// The folder it works on.
    pub folder_id: Option<Uuid>,
    /// Its parameters (a JSON object).
    pub params: serde_json::Value,
    /// Same key from the same user: the same job instead of a second one.
    pub idempotency_key: Option<String>,
    /// The job this one retries: a second retry of it answers the first one instead.
    pub retry_of: Option<Uuid>,
}

/// What a submission produced.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// False when an existing job was returned (same idempotency key, a sync already active, or
    /// the earlier retry of the same job).
    pub created: bool,
}

/// A job as a caller sees it: the record, and the caller's role on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// Your role on it: your role on its folder; its submitter is at least an `editor` (may
    /// cancel it), admins are `manager`s.
    pub my_role: Role,
}

/// Job use cases.
#[derive(Clone)]
pub struct JobService {
    store: Store,
    events: Arc<JobEvents>,
    queue: Arc<dyn Enqueue>,
    retry: RetryPolicy,
    pauses: Arc<pauses::Pauses>,
    shutdown: CancellationToken,
}

/// What starting an attempt found.
enum Start {
    /// The attempt started: the job as it is now.
    Started(Box<Job>),
    /// The job is finished (or gone): nothing to run.
    Finished,
    /// Its kind is paused: it waits until resumed.
    Paused(JobKind),
    /// Its kind was resumed while it was refused: try again.
    Again,
}

/// The ordering job pages use.
const JOB_ORDER: &str = "created_at:desc";

impl JobService {
    /// Builds the service. `shutdown` ends long polls and running attempts; `pauses` holds
    /// back jobs of paused kinds.
    pub fn new(
        store: Store,
        events: Arc<JobEvents>,
        queue: Arc<dyn Enqueue>,
        retry: RetryPolicy,
        pauses: Arc<pauses::Pauses>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            events,
            queue,
            retry,
            pauses,
            shutdown,
        }
    }

    /// The paused kinds as this process knows them.
    pub fn pauses(&self) -> &Arc<pauses::Pauses> {
        &self.pauses
    }

    /// The change notification hub.
    pub fn events(&self) -> &Arc<JobEvents> {
        &self.events
    }

    /// Records a job and queues it. A repeated idempotency key, or a sync of a folder that
    /// already has one pending or running, returns the existing job.
    pub async fn submit(&self, created_by: &str, submission: Submission) -> Result<Submitted, ServiceError> {
        self.submit_as(Uuid::now_v7(), created_by, submission).await
    }

    /// The job a submission would return instead of making a new one (same idempotency key,
    /// or an active sync of the folder), if any.
    pub async fn find_existing(&self, created_by: &str, submission: &Submission) -> Result<Option<Job>, ServiceError> {
        let mut conn = self.store.read().await?;
        self.existing(&mut conn, created_by, submission).await
    }

    /// [`submit`](Self::submit) with the job id chosen by the caller (who recorded data keyed by
    /// it first); `created` is false when an existing job was returned instead.
    pub async fn submit_as(
        &self,
        id: Uuid,
        created_by: &str,
        submission: Submission,
    ) -> Result<Submitted, ServiceError> {
        if let Some(key) = &submission.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES)
        {
            return Err(ServiceError::Invalid(format!(
                "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} bytes, got {}",
                key.len()
            )));
        }
        if let Some(existing) = self.find_existing(created_by, &submission).await? {
            return Ok(Submitted {
                job: existing,
                created: false,
            });
        }
        let job = NewJob {
            id,
            kind: submission.kind,
            folder_id: submission.folder_id,
            params: submission.params.clone(),
            max_attempts: i64::from(self.retry.max_attempts),
            created_by: created_by.to_owned(),
            idempotency_key: submission.idempotency_key.clone(),
            retry_of: submission.retry_of,
        };
        // In a write transaction, so it takes this process's turn at SQLite's write lock
        // rather than wait out the busy timeout against the writers that hold it (holding no
        // read connection while it waits: the writer ahead may need one).
        let inserted = async {
            let mut tx = self.store.write().await?;
            rows::insert(&mut tx, &job).await?;
            tx.commit().await
        };
        match inserted.await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Lost a race with an identical submission: answer with the winner.
                let existing = self.find_existing(created_by, &submission).await?;
                return existing.map(|job| Submitted { job, created: false }).ok_or_else(|| {
                    ServiceError::Conflict("a conflicting job was submitted at the same time; retry".into())
                });
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.queue.enqueue(job.id, job.kind).await {
            // The job row is the truth: the reconciler re-queues pending jobs whose task is missing.
            tracing::warn!(job = %job.id, error = %e, "could not queue the job now; it will be re-queued");
        }
        self.events.publish(job.id, 1);
        let mut conn = self.store.read().await?;
        let created = rows::by_id(&mut conn, job.id)
            .await?
            .ok_or_else(|| ServiceError::Internal("submitted job vanished".into()))?;
        Ok(Submitted {
            job: created,
            created: true,
        })
    }

    async fn existing(
        &self,
        conn: &mut dyn Db,
        created_by: &str,
        submission: &Submission,
    ) -> Result<Option<Job>, ServiceError> {
        if let Some(retried) = submission.retry_of
            && let Some(job) = rows::retry_of(conn, retried).await?
        {
            return Ok(Some(job));
        }
        if let Some(key) = &submission.idempotency_key
            && let Some(job) = rows::by_idempotency_key(conn, created_by, key).await?
        {
            return Ok(Some(job));
        }
        if submission.kind == JobKind::Sync
            && let Some(folder) = submission.folder_id
            && let Some(active) = rows::active_sync(conn, folder).await?
        {
            if submission.retry_of.is_some() {
                // Not this job's retry: the folder's next sync takes what the failed one missed.
                return Err(ServiceError::Conflict(format!(
                    "the folder already has a sync {} (job {}); it takes what the failed one missed, so there is nothing to retry",
                    active.status.as_str().to_lowercase(),
                    active.id
                )));
            }
            return Ok(Some(active));
        }
        Ok(None)
    }

    /// One job.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<JobView, ServiceError> {
        let mut conn = self.store.read().await?;
        let (job, my_role) = visible_job(&mut conn, caller, id, Role::Viewer).await?;
        Ok(JobView { job, my_role })
    }

    /// How a job `caller` just submitted (or was handed back) looks to them, with whether it is new.
    pub async fn shown(&self, caller: &Caller, submitted: Submitted) -> Result<(JobView, bool), ServiceError> {
        let mut conn = self.store.read().await?;
        let my_role = job_role(&mut conn, caller, &submitted.job)
            .await?
            .unwrap_or(Role::Editor);
        Ok((
            JobView {
                job: submitted.job,
                my_role,
            },
            submitted.created,
        ))
    }

    /// The job once it is finished or its version passes `since_version` (default: its current
    /// version), or after `wait` at the latest, or at shutdown: its state then.
    pub async fn wait(
        &self,
        caller: &Caller,
        id: Uuid,
        since_version: Option<i64>,
        wait: Duration,
    ) -> Result<JobView, ServiceError> {
        if wait > Duration::from_secs(MAX_WAIT_SECONDS) {
            return Err(ServiceError::Invalid(format!(
                "wait_seconds must be at most {MAX_WAIT_SECONDS}"
            )));
        }
        // Subscribe before reading, so a change between the read and the wait is not missed.
        let mut changes = self.events.subscribe(id);
        let shown = self.get(caller, id).await?;
        let baseline = since_version.unwrap_or(shown.job.version);
        if shown.job.status.is_terminal() || shown.job.version > baseline || wait.is_zero() {
            return Ok(shown);
        }
        let _waiting = crate::metrics::InFlight::long_poll();
        tokio::select! {
            () = changes.changed_past(baseline) => {}
            () = tokio::time::sleep(wait) => {}
            () = self.shutdown.cancelled() => {}
        }
        self.get(caller, id).await
    }

    /// Cancels a pending job (it never starts) or asks a running one to stop at its next unit.
    pub async fn cancel(&self, caller: &Caller, id: Uuid) -> Result<JobView, ServiceError> {
        let my_role = {
            let mut conn = self.store.read().await?;
            visible_job(&mut conn, caller, id, Role::Editor).await?.1
        };
        let job = self.cancel_unchecked(id).await?;
        Ok(JobView { job, my_role })
    }

    /// Cancels job `id` (the caller's right to was checked) and wakes its waiters; 409 when it
    /// already finished.
    pub async fn cancel_unchecked(&self, id: Uuid) -> Result<Job, ServiceError> {
        let mut tx = self.store.write().await?;
        let cancelled = rows::cancel(&mut tx, id).await?;
        if let Cancelled::AlreadyFinished(status) = cancelled {
            return Err(ServiceError::Conflict(format!(
                "job {id} already finished ({})",
                status.as_str()
            )));
        }
        let job = rows::by_id(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("job {id} not found")))?;
        tx.commit().await?;
        self.events.publish(id, job.version);
        if matches!(cancelled, Cancelled::Now) {
            // Cancelled before it started: no worker will see it end, so it is counted here.
            let result = job.result.clone().unwrap_or_default();
            crate::metrics::job_finished(job.kind.as_str(), job.status.as_str(), &result);
        }
        Ok(job)
    }

    /// One page of the jobs the caller may see, newest first.
    pub async fn list(&self, caller: &Caller, req: ListJobs) -> Result<Page<JobView>, ServiceError> {
        let limit = page_size(req.page_size).map_err(field("page_size"))?;
        let before = req
            .page_token
            .as_deref()
            .map(|token| decode_number_position(token, JOB_ORDER))
            .transpose()?;
        let filter = req.selection.filter(caller, before, limit + 1);
        let mut conn = self.store.read().await?;
        let jobs = rows::list(&mut conn, &filter).await?;
        let token_of = |last: &Job| page_token(JOB_ORDER, &SortKey::Int(to_micros(last.created_at)), last.id);
        let page = Page::of(jobs, limit, token_of, |job| job);
        let roles = folder_roles(&mut conn, caller, page.items.iter().filter_map(|j| j.folder_id)).await?;
        Ok(page.map(|job| {
            let on_folder = job.folder_id.and_then(|f| roles.get(&f).copied().flatten());
            let my_role = role_on_job(caller, &job, on_folder).unwrap_or(Role::Viewer);
            JobView { job, my_role }
        }))
    }

    /// Runs job `id` with `runner` until it is DONE, ERROR or CANCELLED, retrying failed attempts
    /// with backoff. Returns `Err` only when shutdown interrupted it: the job is PENDING again
    /// and must be delivered again later.
    pub async fn execute(&self, id: Uuid, runner: &dyn Runner) -> Result<(), Interrupted> {
        loop {
            let job = match self.start_attempt(id).await? {
                Start::Started(job) => *job,
                Start::Finished => return Ok(()),
                Start::Again => continue,
                Start::Paused(kind) => {
                    // Fetched just before this process heard of the pause: hold it until resumed.
                    self.pauses.set_one(kind, true);
                    if !self.pauses.until_resumed(kind, &self.shutdown).await {
                        return Err(Interrupted::Shutdown {
                            when: "while its kind was paused",
                        });
                    }
                    continue;
                }
            };
            if job.attempts > job.max_attempts {
                let message = format!(
                    "gave up after {} attempts; the worker stopped during the last ones",
                    job.max_attempts
                );
                self.give_up(id, &message).await?;
                return self.finished(id, runner).await;
            }
            let attempt = job.attempts;
            let max_attempts = job.max_attempts;
            let (kind, folder) = (job.kind.as_str(), job.folder_id);
            tracing::info!(job = %id, kind, folder = ?folder, attempt, "job attempt started");
            let queued = (attempt == 1).then(|| (time::OffsetDateTime::now_utc() - job.created_at).unsigned_abs());
            crate::metrics::job_attempt_started(kind, queued);
            let started = std::time::Instant::now();
            let mut ctx = JobContext::new(job, self.store.clone(), &self.events, self.shutdown.clone());
            let ran = runner.run(&mut ctx).await;
            let (outcome, retry) = match ran {
                Ok(result) => {
                    ctx.set_result(result);
                    match ctx.every_unit_failed() {
                        // Nothing was done: not a success, whatever the runner went on past.
                        Some(failed) => {
                            let message = format!("every unit failed ({failed}); the job's errors say why for each");
                            (ctx.outcome(JobStatus::Error, Some(message)), false)
                        }
                        None => (ctx.outcome(JobStatus::Done, None), false),
                    }
                }
                Err(JobFailure::Cancelled) => (ctx.outcome(JobStatus::Cancelled, None), false),
                Err(JobFailure::Shutdown) => {
                    let outcome = ctx.outcome(
                        JobStatus::Pending,
                        Some("interrupted by shutdown; it resumes on the next start".into()),
                    );
                    self.end_attempt(id, &outcome).await?;
                    return Err(Interrupted::Shutdown {
                        when: "during an attempt",
                    });
                }
                Err(JobFailure::Fatal(message)) => (ctx.outcome(JobStatus::Error, Some(message)), false),
                Err(JobFailure::Retryable(message)) if attempt < max_attempts => {
                    let wait = self.retry.delay_after(attempt);
                    let note = format!(
                        "attempt {attempt} of {max_attempts} failed: {message}; retrying in {}s",
                        wait.as_secs_f32()
                    );
                    (ctx.outcome(JobStatus::Pending, Some(note)), true)
                }
                Err(JobFailure::Retryable(message)) => (
                    ctx.outcome(
                        JobStatus::Error,
                        Some(format!("failed after {attempt} attempts: {message}")),
                    ),
                    false,
                ),
            };
            self.end_attempt(id, &outcome).await?;
            crate::metrics::job_attempt_ended(kind, outcome.status.as_str(), started.elapsed(), retry);
            tracing::info!(
                job = %id,
                kind,
                folder = ?folder,
                attempt,
                outcome = outcome.status.as_str(),
                duration_ms = started.elapsed().as_millis() as u64,
                message = outcome.message.as_deref().unwrap_or_default(),
                "job attempt ended"
            );
            if !retry {
                return self.finished(id, runner).await;
            }
            self.back_off(id, self.retry.delay_after(attempt)).await?;
        }
    }

    /// Hands the final record of job `id` to its runner's [`Runner::finished`].
    async fn finished(&self, id: Uuid, runner: &dyn Runner) -> Result<(), Interrupted> {
        let job = {
            let mut conn = self.store.read().await?;
            rows::by_id(&mut conn, id).await?
        };
        if let Some(job) = job.filter(|j| j.status.is_terminal()) {
            let result = job.result.clone().unwrap_or_default();
            crate::metrics::job_finished(job.kind.as_str(), job.status.as_str(), &result);
            runner.finished(&job).await;
        }
        Ok(())
    }

    // A job's own state changes are write transactions, so on SQLite they take this process's
    // turn at the write lock (store/turns.rs) instead of waiting on the busy handler behind a
    // stream of other writes; waiters hear of a change once it is committed.

    async fn start_attempt(&self, id: Uuid) -> Result<Start, Interrupted> {
        let mut tx = self.store.write().await?;
        let started = rows::start_attempt(&mut tx, id).await?;
        let start = match started {
            Some(job) => Start::Started(Box::new(job)),
            None => match rows::by_id(&mut tx, id).await? {
                Some(job) if !job.status.is_terminal() => {
                    if pause_rows::is_paused(&mut tx, job.kind).await? {
                        Start::Paused(job.kind)
                    } else {
                        // Resumed between the refused start and this read (PostgreSQL reads
                        // each statement afresh): start it now.
                        Start::Again
                    }
                }
                _ => Start::Finished,
            },
        };
        tx.commit().await?;
        if let Start::Started(job) = &start {
            self.events.publish(id, job.version);
        }
        Ok(start)
    }

    /// Ends the running attempt of `id` with `outcome` and wakes this process's waiters.
    async fn end_attempt(&self, id: Uuid, outcome: &rows::Outcome) -> Result<(), Interrupted> {
        let mut tx = self.store.write().await?;
        rows::end_attempt(&mut tx, id, outcome).await?;
        self.commit_and_publish(tx, id).await
    }

    /// Ends `id` in ERROR with `message` without running it.
    async fn give_up(&self, id: Uuid, message: &str) -> Result<(), Interrupted> {
        let mut tx = self.store.write().await?;
        rows::fail(&mut tx, id, message).await?;
        self.commit_and_publish(tx, id).await
    }

    /// Commits `tx`, then tells this process's waiters of job `id`'s version.
    async fn commit_and_publish(&self, mut tx: crate::store::Tx, id: Uuid) -> Result<(), Interrupted> {
        let versions = rows::versions(&mut tx, &[id]).await?;
        tx.commit().await?;
        for (job, version) in versions {
            self.events.publish(job, version);
        }
        Ok(())
    }

    /// Waits out the backoff before the next attempt; ends early when the job is cancelled
    /// meanwhile (the next attempt then finds it finished) or on shutdown.
    async fn back_off(&self, id: Uuid, wait: Duration) -> Result<(), Interrupted> {
        let mut changes = self.events.subscribe(id);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let version = {
                let mut conn = self.store.read().await?;
                match rows::by_id(&mut conn, id).await? {
                    Some(job) if job.status == JobStatus::Pending => job.version,
                    _ => return Ok(()),
                }
            };
            tokio::select! {
                () = changes.changed_past(version) => {}
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                () = self.shutdown.cancelled() => return Err(Interrupted::Shutdown { when: "during retry backoff" }),
            }
        }
    }
}

/// The job was interrupted and must run again later (the queue delivers it again).
#[derive(Debug, thiserror::Error)]
pub enum Interrupted {
    /// The process is shutting down; `when` says what the job was doing.
    #[error("job interrupted by shutdown {when}")]
    Shutdown {
        /// What the job was doing, e.g. "during retry backoff".
        when: &'static str,
    },
    /// The job's own record could not be read or written.
    #[error("job interrupted: {0}")]
    Store(#[from] StoreError),
}
