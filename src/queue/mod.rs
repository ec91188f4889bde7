//! apalis wiring: one queue per job kind in the catalog's database (apalis-sqlite or
//! apalis-postgres), the worker processes that drain them, and the scheduler.
//!
//! A queue task carries only the stowage job id (a small, versioned payload); everything else
//! lives in the `job` table. The task id is the job's UUIDv7 read as a ULID, so a job maps to
//! exactly one task and can be re-queued idempotently.

pub mod scheduler;
pub mod workers;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{FetchById, ListWorkers, Status, TaskBuilder, TaskId, TaskSink};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use uuid::Uuid;

use crate::config::{DatabaseSettings, JobsSettings};
use crate::domain::job::JobKind;
use crate::services::jobs::{Enqueue, EnqueueError};

/// The queue payload: which job to run. `v` is the payload version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    /// The stowage job id.
    pub job: Uuid,
    /// Payload format version (1).
    pub v: u8,
}

/// Attempts apalis itself allows a task: only crashes and shutdowns consume them, since
/// stowage retries failed attempts inside the handler and ends crash loops with its own count.
const QUEUE_MAX_ATTEMPTS: usize = 10_000;

/// Why the queue could not be opened or used: what was being done, and the error of the
/// database or apalis underneath.
#[derive(Debug, thiserror::Error)]
#[error("job queue: {what}: {source}")]
pub struct QueueError {
    /// What was being done.
    what: &'static str,
    /// Why it failed.
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl QueueError {
    /// Wraps an error of doing `what`.
    fn of<E: std::error::Error + Send + Sync + 'static>(what: &'static str) -> impl FnOnce(E) -> QueueError {
        move |source| QueueError {
            what,
            source: Box::new(source),
        }
    }
}

/// The queue storage of the catalog's database.
#[derive(Clone)]
pub enum QueueDb {
    /// apalis-sqlite on the embedded database file.
    Sqlite(SqlitePool),
    /// apalis-postgres on the scale-out database.
    Postgres(PgPool),
}

/// Pushes jobs onto their kind's queue and opens storages for workers.
#[derive(Clone)]
pub struct Queue {
    db: QueueDb,
    settings: JobsSettings,
    /// Per kind (indexed by [`JobKind`]'s discriminant), what tells this process's worker that
    /// a task was just pushed here.
    pushed: Arc<[watch::Sender<()>; JobKind::ALL.len()]>,
}

/// Where a job's queue task stands, for the reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// The queue holds no task for the job.
    Missing,
    /// A worker takes it, holds it, or takes it again: pending and free, failed with attempts
    /// left, or queued or running (a dead worker's are re-queued by apalis itself).
    Live,
    /// A task no worker will take again while its job waits: finished, killed, failed with no
    /// attempts left, or pending but still locked. Says what it is, for the log.
    Stranded(String),
}

impl TaskState {
    fn of(task: &apalis::prelude::ExecutionContext) -> Self {
        let status = task.status();
        let attempts_left = task.max_attempts().is_none_or(|max| task.attempt() < max);
        let live = match status {
            Status::Queued | Status::Running => true,
            Status::Pending => task.lock_by().is_none(),
            Status::Failed => attempts_left,
            // Done, Killed, and whatever later versions add.
            _ => false,
        };
        if live {
            TaskState::Live
        } else {
            TaskState::Stranded(format!(
                "{status:?}, attempt {} of {:?}, locked by {:?}",
                task.attempt(),
                task.max_attempts(),
                task.lock_by()
            ))
        }
    }
}

/// The task id of job `id`.
pub fn task_id(id: Uuid) -> TaskId {
    TaskId::from_ulid(ulid::Ulid::from_bytes(id.into_bytes()))
}

/// The apalis queue name of a kind.
pub fn queue_name(kind: JobKind) -> String {
    format!("stowage.{}", kind.as_str().to_lowercase())
}

/// How long the queue's statements wait for SQLite's write lock at least. apalis stops a
/// worker on the first error of a fetch or heartbeat, and a stopped worker drops the jobs it
/// was running (they run again from their last checkpoint, an attempt spent): a writer that
/// kept the lock past `database.busy_timeout_ms` (another process's long transaction, a
/// backup) cost every running job an attempt. Waiting longer only delays the queue.
const QUEUE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Queue {
    /// Opens the queue's own pool on the catalog's database and applies apalis's migrations
    /// (kept in apalis's own history, apart from the catalog's).
    pub async fn connect(db: &DatabaseSettings, settings: &JobsSettings) -> Result<Self, QueueError> {
        let db = if db.url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(&db.url)
                .map_err(QueueError::of("bad database.url"))?
                .create_if_missing(true)
                .busy_timeout(Duration::from_millis(db.busy_timeout_ms).max(QUEUE_BUSY_TIMEOUT));
            let pool = SqlitePoolOptions::new()
                .max_connections(db.max_connections.max(2))
                .connect_with(options)
                .await
                .map_err(QueueError::of("cannot connect"))?;
            crate::store::retry_while_locked("the job queue's migrations", || SqliteStorage::setup(&pool))
                .await
                .map_err(QueueError::of("cannot apply its migrations"))?;
            QueueDb::Sqlite(pool)
        } else {
            let options = PgConnectOptions::from_str(&db.url).map_err(QueueError::of("bad database.url"))?;
            let pool = PgPoolOptions::new()
                .max_connections(db.max_connections.max(2))
                .connect_with(options)
                .await
                .map_err(QueueError::of("cannot connect"))?;
            PostgresStorage::setup(&pool)
                .await
                .map_err(QueueError::of("cannot apply its migrations"))?;
            QueueDb::Postgres(pool)
        };
        Ok(Self {
            db,
            settings: settings.clone(),
            pushed: Arc::new(JobKind::ALL.map(|_| watch::Sender::new(()))),
        })
    }

    /// A stream that yields each time this process pushes a task of `kind`: a worker polls on
    /// it as well as on its interval, so a job submitted here starts at once rather than at
    /// the next poll (up to `poll_interval_ms` later), unless it lands while a fetch is already
    /// under way. Pushes from other processes still wait for the interval (or, on PostgreSQL,
    /// its NOTIFY). The stream ends only when every clone of this queue is gone (a worker holds
    /// one): an ended stream would keep apalis's combined strategy from reaching the interval.
    pub fn pushes(&self, kind: JobKind) -> WatchStream<()> {
        WatchStream::from_changes(self.pushed[kind as usize].subscribe())
    }

    /// The database the queue lives in.
    pub fn db(&self) -> &QueueDb {
        &self.db
    }

    /// The job settings the queue was opened with.
    pub fn settings(&self) -> &JobsSettings {
        &self.settings
    }

    /// apalis-sqlite settings for `kind`'s queue.
    pub fn sqlite_config(&self, kind: JobKind) -> apalis_sqlite::Config {
        apalis_sqlite::Config::default()
            .queue(queue_name(kind))
            .heartbeat_interval(Duration::from_secs(self.settings.heartbeat_seconds.max(1)))
            .missed_heartbeats(self.settings.missed_heartbeats.max(1) as usize)
            .batch_size(self.concurrency(kind))
    }

    /// apalis-postgres settings for `kind`'s queue.
    pub fn postgres_config(&self, kind: JobKind) -> apalis_postgres::Config {
        apalis_postgres::Config::default()
            .queue(queue_name(kind))
            .heartbeat_interval(Duration::from_secs(self.settings.heartbeat_seconds.max(1)))
            .missed_heartbeats(self.settings.missed_heartbeats.max(1) as usize)
            .batch_size(self.concurrency(kind))
    }

    /// Jobs of `kind` one process runs at once.
    pub fn concurrency(&self, kind: JobKind) -> usize {
        let c = &self.settings.concurrency;
        match kind {
            JobKind::Sync => c.sync,
            JobKind::Import => c.import,
            JobKind::Reencode => c.reencode,
            JobKind::Expiry => c.expiry,
            JobKind::Noop => c.noop,
        }
        .max(1)
    }

    /// What the queue holds for `job`, as far as a worker taking it goes.
    pub async fn task_state(&self, job: Uuid, kind: JobKind) -> Result<TaskState, QueueError> {
        let id = task_id(job);
        let found = match &self.db {
            QueueDb::Sqlite(pool) => {
                let mut storage = SqliteStorage::<JobTask>::new(pool).with_config(self.sqlite_config(kind));
                let task = storage.fetch_by_id(&id).await;
                task.map_err(QueueError::of("cannot look up a task"))?
                    .map(|task| Arc::clone(task.ctx()))
            }
            QueueDb::Postgres(pool) => {
                let mut storage = PostgresStorage::<JobTask>::new(pool).with_config(self.postgres_config(kind));
                let task = storage.fetch_by_id(&id).await;
                task.map_err(QueueError::of("cannot look up a task"))?
                    .map(|task| Arc::clone(task.ctx()))
            }
        };
        Ok(found.map_or(TaskState::Missing, |ctx| TaskState::of(&ctx)))
    }

    /// Makes `job`'s task one a worker takes again (pending, unlocked, due now): for a task
    /// that [`TaskState::Stranded`] says no worker will take. apalis has no call for it, so
    /// this updates its table (the columns of apalis-sqlite's and apalis-postgres's 1.0
    /// schemas).
    pub async fn release_task(&self, job: Uuid) -> Result<(), QueueError> {
        let id = task_id(job).to_string();
        match &self.db {
            QueueDb::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL, \
                     run_at = strftime('%s', 'now') WHERE id = ?1",
                )
                .bind(id)
                .execute(pool)
                .await
                .map_err(QueueError::of("cannot release a task"))?;
            }
            QueueDb::Postgres(pool) => {
                sqlx::query(
                    "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL, \
                     run_at = now() WHERE id = $1",
                )
                .bind(id)
                .execute(pool)
                .await
                .map_err(QueueError::of("cannot release a task"))?;
            }
        }
        Ok(())
    }

    /// Workers of `kind`'s queue whose last heartbeat is recent enough that no other worker
    /// would take their jobs over yet (`heartbeat_seconds × missed_heartbeats`).
    pub async fn live_workers(&self, kind: JobKind) -> Result<u64, QueueError> {
        let workers = match &self.db {
            QueueDb::Sqlite(pool) => SqliteStorage::<JobTask>::new(pool)
                .with_config(self.sqlite_config(kind))
                .list_workers()
                .await
                .map_err(QueueError::of("cannot list workers"))?,
            QueueDb::Postgres(pool) => PostgresStorage::<JobTask>::new(pool)
                .with_config(self.postgres_config(kind))
                .list_workers()
                .await
                .map_err(QueueError::of("cannot list workers"))?,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let window = self.settings.heartbeat_seconds.max(1) * u64::from(self.settings.missed_heartbeats.max(1));
        Ok(workers
            .iter()
            .filter(|w| now.saturating_sub(w.last_heartbeat) <= window)
            .count() as u64)
    }

    async fn push(&self, job: Uuid, kind: JobKind) -> Result<(), QueueError> {
        let task = TaskBuilder::new(JobTask { job, v: 1 })
            .task_id(task_id(job))
            .max_attempts(QUEUE_MAX_ATTEMPTS)
            .build();
        match &self.db {
            QueueDb::Sqlite(pool) => {
                let mut storage = SqliteStorage::<JobTask>::new(pool).with_config(self.sqlite_config(kind));
                storage
                    .push_task(task)
                    .await
                    .map_err(QueueError::of("cannot push a task"))?;
            }
            QueueDb::Postgres(pool) => {
                let mut storage = PostgresStorage::<JobTask>::new(pool).with_config(self.postgres_config(kind));
                storage
                    .push_task(task)
                    .await
                    .map_err(QueueError::of("cannot push a task"))?;
            }
        }
        self.pushed[kind as usize].send_replace(());
        Ok(())
    }

    /// Closes the queue's connections.
    pub async fn close(&self) {
        match &self.db {
            QueueDb::Sqlite(pool) => pool.close().await,
            QueueDb::Postgres(pool) => pool.close().await,
        }
    }
}

impl Enqueue for Queue {
    fn enqueue(&self, job: Uuid, kind: JobKind) -> BoxFuture<'_, Result<(), EnqueueError>> {
        Box::pin(async move { Ok(self.push(job, kind).await?) })
    }

    fn workers_alive(&self, kind: JobKind) -> BoxFuture<'_, Result<u64, EnqueueError>> {
        Box::pin(async move { Ok(self.live_workers(kind).await?) })
    }
}
