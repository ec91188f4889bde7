//! Worker processes: one supervised apalis worker per job kind that has a runner, each a thin
//! adapter that hands the job id to `JobService::execute`, plus a reconciler that re-queues
//! pending jobs whose queue task went missing (a crash between recording a job and queueing it)
//! or was left where no worker takes it.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{JobTask, Queue, QueueDb, TaskState};
use crate::background::{self, FirstRound, Periodic};
use crate::domain::job::JobKind;
use crate::services::jobs::{Interrupted, JobService, Runner};
use crate::store::{Store, jobs, now_micros};

/// How long a failed worker waits before it starts again under a new name.
const RESTART_DELAY: Duration = Duration::from_secs(2);
/// How often the reconciler looks for pending jobs without a queue task.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How old a pending job must be before the reconciler considers it lost.
const RECONCILE_AFTER: Duration = Duration::from_secs(30);

/// What each handler invocation needs.
struct HandlerState {
    jobs: JobService,
    runner: Arc<dyn Runner>,
    running: TaskTracker,
}

/// Runs one queue task: the job it names, through its kind's runner.
async fn handle(task: JobTask, state: Data<Arc<HandlerState>>) -> Result<(), BoxDynError> {
    let _running = state.running.token();
    tracing::debug!(job = %task.job, "queue task received");
    let executed = state.jobs.execute(task.job, state.runner.as_ref()).await;
    match &executed {
        Ok(()) => {}
        Err(error @ Interrupted::Shutdown { .. }) => tracing::info!(job = %task.job, %error),
        Err(error) => {
            tracing::warn!(job = %task.job, %error, "job stopped before it ended; the queue hands it out again")
        }
    }
    executed.map_err(Into::into)
}

/// The running workers of this process.
pub struct Workers {
    tasks: JoinSet<()>,
    running: TaskTracker,
    grace: Duration,
}

/// A unique worker name: host, kind and a fresh ULID (apalis refuses or mishandles reused names).
fn worker_name(kind: JobKind) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "stowage".into());
    format!("{host}-{}-{}", kind.as_str().to_lowercase(), ulid::Ulid::generate())
}

/// Builds and runs a worker on `$storage` until shutdown; evaluates to its result.
///
/// A paused kind does not pause the apalis worker: `JobService::execute` refuses to start a job
/// of a paused kind (in the statement that would start it) and holds it until resumed. Pausing
/// the worker itself stopped polling its backend stream, and a fetch caught inside its
/// transaction kept SQLite's write lock until the resume: every other write of the process
/// waited out its busy timeout (503s and a second process that could not start, in CI).
macro_rules! drive_worker {
    ($storage:expr, $concurrency:expr, $state:expr, $shutdown:expr, $kind:expr) => {{
        let shutdown = $shutdown.clone();
        WorkerBuilder::new(worker_name($kind))
            .backend($storage)
            .concurrency($concurrency)
            .data(Arc::clone($state))
            .build(handle)
            .run_with_ctx(move |ctx| {
                let shutdown = shutdown.clone();
                async move { stop_on_shutdown(ctx, &shutdown).await }
            })
            .await
    }};
}

/// Stops a worker at `shutdown` (it then drains its jobs).
async fn stop_on_shutdown(worker: WorkerContext, shutdown: &CancellationToken) -> Result<(), WorkerError> {
    shutdown.cancelled().await;
    // Stopping a worker that never started fails; the shutdown signal stops it then.
    worker.stop().ok();
    Ok(())
}

/// When a worker for `kind` fetches: as soon as this process pushed one of its tasks, and
/// every `poll` otherwise (tasks pushed by other processes, retries, recovered orphans).
fn wakeups(queue: &Queue, kind: JobKind, poll: Duration) -> Strategy {
    Strategy::new().stream(queue.pushes(kind)).interval(poll)
}

/// Keeps a worker for `kind` running until shutdown, restarting it under a new name when a
/// backend error stops it.
async fn supervise(queue: Queue, kind: JobKind, state: Arc<HandlerState>, shutdown: CancellationToken) {
    let name = format!("{} queue worker", kind.as_str());
    background::restarting(&name, RESTART_DELAY, shutdown, |shutdown| {
        let (queue, state) = (queue.clone(), Arc::clone(&state));
        async move { run_worker(&queue, kind, &state, &shutdown).await }
    })
    .await;
}

/// Runs one worker for `kind` until shutdown (it then stops fetching and drains) or until a
/// backend error stops it.
async fn run_worker(
    queue: &Queue,
    kind: JobKind,
    state: &Arc<HandlerState>,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let poll = Duration::from_millis(queue.settings().poll_interval_ms.max(10));
    let concurrency = queue.concurrency(kind);
    match queue.db() {
        QueueDb::Sqlite(pool) => {
            let storage = SqliteStorage::<JobTask>::new(pool)
                .with_config(queue.sqlite_config(kind))
                .poll_with_strategy(wakeups(queue, kind, poll));
            drive_worker!(storage, concurrency, state, shutdown, kind)
        }
        QueueDb::Postgres(pool) => {
            let storage = PostgresStorage::<JobTask>::new(pool)
                .with_config(queue.postgres_config(kind))
                .with_pubsub()
                .poll_with_strategy(wakeups(queue, kind, poll));
            drive_worker!(storage, concurrency, state, shutdown, kind)
        }
    }
}

/// Re-queues pending jobs of some kinds whose queue task is missing or stranded, one look per
/// round.
struct Reconciler {
    queue: Queue,
    store: Store,
    kinds: Vec<JobKind>,
}

impl Periodic for Reconciler {
    async fn round(&mut self) {
        let cutoff = now_micros() - i64::try_from(RECONCILE_AFTER.as_micros()).unwrap_or(i64::MAX);
        let pending = match self.store.read().await {
            Ok(mut conn) => jobs::pending_before(&mut conn, &self.kinds, cutoff).await,
            Err(e) => Err(e),
        };
        let pending = match pending {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "reconciler could not list pending jobs");
                return;
            }
        };
        for (job, kind) in pending {
            match self.queue.task_state(job, kind).await {
                Ok(TaskState::Live) => {}
                Ok(TaskState::Missing) => {
                    tracing::warn!(%job, "pending job had no queue task; queueing it again");
                    if let Err(e) = crate::services::jobs::Enqueue::enqueue(&self.queue, job, kind).await {
                        tracing::warn!(%job, error = %e, "could not re-queue job");
                    }
                }
                Ok(TaskState::Stranded(task)) => {
                    tracing::warn!(%job, %task, "pending job's queue task was stranded; releasing it");
                    if let Err(e) = self.queue.release_task(job).await {
                        tracing::warn!(%job, error = %e, "could not release the job's queue task");
                    }
                }
                Err(e) => tracing::warn!(%job, error = %e, "could not look up the job's queue task"),
            }
        }
    }
}

impl Workers {
    /// Starts a supervised worker for every kind in `runners`, and the reconciler.
    pub fn start(
        queue: Queue,
        store: Store,
        jobs: JobService,
        runners: Vec<(JobKind, Arc<dyn Runner>)>,
        shutdown: CancellationToken,
    ) -> Self {
        let running = TaskTracker::new();
        let mut tasks = JoinSet::new();
        let kinds: Vec<JobKind> = runners.iter().map(|(kind, _)| *kind).collect();
        for (kind, runner) in runners {
            let state = Arc::new(HandlerState {
                jobs: jobs.clone(),
                runner,
                running: running.clone(),
            });
            tasks.spawn(supervise(queue.clone(), kind, state, shutdown.clone()));
        }
        let reconciler = Reconciler {
            queue: queue.clone(),
            store,
            kinds,
        };
        tasks.spawn(background::every(
            reconciler,
            RECONCILE_EVERY,
            FirstRound::AfterPeriod,
            shutdown,
        ));
        let grace = Duration::from_secs(queue.settings().shutdown_timeout_seconds);
        Self { tasks, running, grace }
    }

    /// After shutdown was signalled: waits for the workers to stop and for running jobs to
    /// reach a unit boundary, at most the configured grace period.
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.running.close();
        if tokio::time::timeout(self.grace, self.running.wait()).await.is_err() {
            tracing::warn!("jobs still running after the shutdown grace period; they resume on the next start");
        }
    }
}
