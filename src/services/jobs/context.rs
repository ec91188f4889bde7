//! What a job runner sees: its job, its parameters, and a way to report progress and unit
//! errors and to notice cancellation and shutdown at unit boundaries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{JobEvents, Subscription};
use crate::domain::job::{Job, MAX_UNIT_ERRORS, Progress, UnitError};
use crate::services::ServiceError;
use crate::store::{Store, StoreError, jobs};
use crate::telemetry::ErrorChain;

/// How often progress is written while a job runs (and so how stale a long poll can be).
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Why a run stopped short of success.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Worth another attempt (a timeout, an unreachable bucket…).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (bad parameters…).
    #[error("{0}")]
    Fatal(String),
    /// A cancel was asked for; what finished is kept.
    #[error("cancelled")]
    Cancelled,
    /// The process is shutting down; the job resumes on the next start.
    #[error("interrupted by shutdown")]
    Shutdown,
}

impl From<ServiceError> for JobFailure {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Store(err) => err.into(),
            ServiceError::Unavailable(_) | ServiceError::Failed { .. } | ServiceError::Internal(_) => {
                JobFailure::Retryable(ErrorChain(&err).to_string())
            }
            other => JobFailure::Fatal(other.to_string()),
        }
    }
}

/// A store error ends the attempt: retryable unless the store said the change itself is wrong
/// (its row is gone, or it breaks a uniqueness rule).
impl From<StoreError> for JobFailure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => JobFailure::Fatal("not found".into()),
            StoreError::Conflict(_) => JobFailure::Fatal(format!(
                "the change clashes with existing data: {}",
                err.database_message()
            )),
            StoreError::QuotaExceeded(refusal) => JobFailure::Fatal(refusal.told_to(None)),
            other => JobFailure::Retryable(ErrorChain(&other).to_string()),
        }
    }
}

/// A running attempt of one job.
pub struct JobContext {
    job: Job,
    store: Store,
    events: Arc<JobEvents>,
    changes: Subscription,
    shutdown: CancellationToken,
    progress: Progress,
    errors: Vec<UnitError>,
    result: Option<serde_json::Value>,
    last_flush: Instant,
    /// A progress write going on in the background (see [`checkpoint`](Self::checkpoint)).
    writing: Option<JoinHandle<Result<Option<jobs::Changed>, StoreError>>>,
}

impl JobContext {
    /// A context for an attempt of `job` that just started.
    pub(super) fn new(job: Job, store: Store, events: &Arc<JobEvents>, shutdown: CancellationToken) -> Self {
        let changes = events.subscribe(job.id);
        Self {
            job,
            store,
            events: Arc::clone(events),
            changes,
            shutdown,
            progress: Progress::default(),
            errors: Vec::new(),
            result: None,
            last_flush: Instant::now(),
            writing: None,
        }
    }

    /// The job being run.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's parameters as `T`; unusable parameters fail the job for good.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, JobFailure> {
        serde_json::from_value(self.job.params.clone())
            .map_err(|e| JobFailure::Fatal(format!("job parameters are not usable: {e}")))
    }

    /// Starts from what earlier attempts did, for a kind that keeps its units' outcomes across
    /// restarts (imports).
    pub fn resume(&mut self, progress: Progress, errors: Vec<UnitError>) {
        self.progress = progress;
        self.errors = errors;
    }

    /// `n` more units are known to be waiting.
    pub fn add_pending(&mut self, n: i64) {
        self.progress.units_pending += n;
    }

    /// `n` pending units finished.
    pub fn done(&mut self, n: i64) {
        self.progress.units_pending = (self.progress.units_pending - n).max(0);
        self.progress.units_done += n;
    }

    /// One pending unit failed.
    pub fn failed(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.progress.units_pending = (self.progress.units_pending - 1).max(0);
        self.progress.units_error += 1;
        if self.errors.len() < MAX_UNIT_ERRORS {
            self.errors.push(UnitError {
                object: object.into(),
                message: message.into(),
            });
        }
    }

    /// Records the kind's result so far; kept also when the job is cancelled or fails.
    pub fn set_result(&mut self, result: serde_json::Value) {
        self.result = Some(result);
    }

    /// Call between units: writes progress now and then, and stops the run when the job was
    /// cancelled or the process is shutting down.
    ///
    /// The periodic write goes on in the background and its answer is taken at a later
    /// checkpoint: on SQLite it may wait for the write lock another transaction holds (the
    /// job's own batch, often), and a runner waiting with it stalled its whole pipeline. News of
    /// the job (a cancel request) is answered at once. A write still going on when the attempt
    /// ends finds the job no longer RUNNING and changes nothing.
    pub async fn checkpoint(&mut self) -> Result<(), JobFailure> {
        if self.shutdown.is_cancelled() {
            return Err(JobFailure::Shutdown);
        }
        if let Some(writing) = self.writing.take_if(|w| w.is_finished()) {
            let written = writing
                .await
                .map_err(|e| JobFailure::Retryable(format!("writing progress failed: {e}")))?;
            self.take_answer(written)?;
        }
        if self.changes.has_news() {
            return self.flush().await;
        }
        if self.writing.is_none() && self.last_flush.elapsed() >= FLUSH_EVERY {
            self.last_flush = Instant::now();
            let (store, id, progress, errors) = (self.store.clone(), self.job.id, self.progress, self.errors.clone());
            self.writing = Some(tokio::spawn(async move {
                save_progress(&store, id, progress, &errors).await
            }));
        }
        Ok(())
    }

    /// Waits until the job may have changed (a cancel request arrived, say) or the process
    /// begins to shut down; call [`checkpoint`](Self::checkpoint) next. Lets a runner whose
    /// units take long notice a cancel while one runs, without writing to the store meanwhile.
    pub async fn interrupted(&mut self) {
        tokio::select! {
            () = self.changes.news() => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Writes progress now (after a background write still going on); a cancel request (or
    /// the job leaving RUNNING) ends the run.
    pub async fn flush(&mut self) -> Result<(), JobFailure> {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await; // superseded by the write below
        }
        self.last_flush = Instant::now();
        let written = save_progress(&self.store, self.job.id, self.progress, &self.errors).await;
        self.take_answer(written)
    }

    /// Takes in what a progress write answered: news of the job for its watchers, and a cancel
    /// request (or the job leaving RUNNING) as the end of the run.
    fn take_answer(&mut self, written: Result<Option<jobs::Changed>, StoreError>) -> Result<(), JobFailure> {
        let changed = written.map_err(|e| JobFailure::Retryable(e.to_string()))?;
        if let Some(c) = &changed {
            self.events.publish(self.job.id, c.version);
            // Our own write is no news to us; a cancel that landed meanwhile still is.
            self.changes.seen_up_to(c.version);
        }
        match changed {
            Some(c) if !c.cancel_requested => Ok(()),
            _ => Err(JobFailure::Cancelled),
        }
    }

    /// How many units failed, when every unit the attempt finished failed (and there was one).
    pub(super) fn every_unit_failed(&self) -> Option<i64> {
        let p = &self.progress;
        (p.units_error > 0 && p.units_done == 0 && p.units_pending == 0).then_some(p.units_error)
    }

    /// How the attempt ended, for the record.
    pub(super) fn outcome(self, status: crate::domain::job::JobStatus, message: Option<String>) -> jobs::Outcome {
        let mut progress = self.progress;
        if status == crate::domain::job::JobStatus::Cancelled {
            progress.units_cancelled += progress.units_pending;
            progress.units_pending = 0;
        }
        jobs::Outcome {
            status,
            progress,
            errors: self.errors,
            result: self.result,
            message,
        }
    }
}

/// Writes job `id`'s progress and unit errors; what changed, as [`jobs::save_progress`] answers.
async fn save_progress(
    store: &Store,
    id: uuid::Uuid,
    progress: Progress,
    errors: &[UnitError],
) -> Result<Option<jobs::Changed>, StoreError> {
    // A write of its own, in this process's turn at SQLite's write lock (store/turns.rs), so a
    // long stream of other writes cannot keep it waiting.
    let mut tx = store.write().await?;
    let changed = jobs::save_progress(&mut tx, id, &progress, errors).await?;
    tx.commit().await?;
    Ok(changed)
}
