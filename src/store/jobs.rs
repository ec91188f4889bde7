//! Job rows: submit, read, list, and the status changes workers and the API make. Every change
//! bumps `version` and, on PostgreSQL, sends `NOTIFY stowage_job, 'ID:VERSION'` so waiters in
//! other processes wake up.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::clauses::{Reader, push_readable_by};
use super::rows::{corrupt, parse_id, parse_object};
use super::sql::Sql;
use super::{Db, Dialect, StoreError, from_micros, now_micros};
use crate::domain::job::{Job, JobKind, JobStatus, Progress, UnitError};

/// The channel job changes are announced on (PostgreSQL).
pub const CHANNEL: &str = "stowage_job";

const COLUMNS: &str = "id, kind, status, folder_id, params, units_pending, units_done, units_error, units_cancelled, \
     result, errors, message, attempts, max_attempts, cancel_requested, version, created_by, idempotency_key, \
     retry_of, created_at, updated_at, started_at, finished_at";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    status: String,
    folder_id: Option<String>,
    params: String,
    units_pending: i64,
    units_done: i64,
    units_error: i64,
    units_cancelled: i64,
    result: Option<String>,
    errors: String,
    message: Option<String>,
    attempts: i64,
    max_attempts: i64,
    cancel_requested: i64,
    version: i64,
    created_by: String,
    idempotency_key: Option<String>,
    retry_of: Option<String>,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            id: parse_id(&row.id)?,
            kind: JobKind::parse(&row.kind).map_err(|e| corrupt("kind", e))?,
            status: JobStatus::parse(&row.status).map_err(|e| corrupt("status", e))?,
            folder_id: row.folder_id.as_deref().map(parse_id).transpose()?,
            params: serde_json::Value::Object(parse_object(&row.params)?),
            progress: Progress {
                units_pending: row.units_pending,
                units_done: row.units_done,
                units_error: row.units_error,
                units_cancelled: row.units_cancelled,
            },
            result: row
                .result
                .as_deref()
                .map(|r| serde_json::from_str(r).map_err(|e| corrupt("result", e)))
                .transpose()?,
            errors: serde_json::from_str(&row.errors).map_err(|e| corrupt("errors", e))?,
            message: row.message,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            cancel_requested: row.cancel_requested != 0,
            version: row.version,
            created_by: row.created_by,
            idempotency_key: row.idempotency_key,
            retry_of: row.retry_of.as_deref().map(parse_id).transpose()?,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            started_at: row.started_at.map(from_micros),
            finished_at: row.finished_at.map(from_micros),
        })
    }
}

async fn fetch_optional(db: &mut dyn Db, sql: Sql) -> Result<Option<Job>, StoreError> {
    sql.build_as::<JobRow>()
        .fetch_optional(db.conn())
        .await?
        .map(Job::try_from)
        .transpose()
}

/// Announces a new version of a job to other processes (PostgreSQL only; SQLite waiters rely
/// on the in-process hub and the fallback re-check).
async fn announce(db: &mut dyn Db, id: Uuid, version: i64) -> Result<(), StoreError> {
    if db.dialect() == Dialect::Postgres {
        let mut sql = Sql::new("SELECT 1 AS sent FROM (SELECT pg_notify(");
        sql.bind(CHANNEL.to_owned())
            .push(", ")
            .bind(format!("{id}:{version}"))
            .push(")) AS n");
        sql.build().execute(db.conn()).await?;
    }
    Ok(())
}

/// Runs an `UPDATE job … RETURNING version, status, cancel_requested`, announces the new
/// version and, when the job just finished, records its webhook events (in the same
/// transaction).
async fn change(db: &mut dyn Db, id: Uuid, mut sql: Sql) -> Result<Option<Changed>, StoreError> {
    sql.push(" RETURNING version, status, cancel_requested");
    let row: Option<(i64, String, i64)> = sql.build_as().fetch_optional(db.conn()).await?;
    match row {
        Some((version, status, cancel)) => {
            announce(db, id, version).await?;
            let status = JobStatus::parse(&status).map_err(|e| corrupt("status", e))?;
            // Only a change into DONE, ERROR or CANCELLED leaves it finished: tell webhooks.
            if status.is_terminal()
                && super::webhooks::jobs_wanted(db).await?
                && let Some(job) = by_id(db, id).await?
            {
                super::webhooks::job_finished(db, &job).await?;
            }
            Ok(Some(Changed {
                version,
                status,
                cancel_requested: cancel != 0,
            }))
        }
        None => Ok(None),
    }
}

/// What a change left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The new version.
    pub version: i64,
    /// The status after the change.
    pub status: JobStatus,
    /// Whether a cancel has been asked for.
    pub cancel_requested: bool,
}

/// Starts an `UPDATE job SET version = version + 1, updated_at = now, …`; the caller adds more
/// assignments, then the `WHERE` clause.
fn update(id: Uuid) -> (Sql, String) {
    let mut sql = Sql::new("UPDATE job SET version = version + 1, updated_at = ");
    sql.bind(now_micros());
    (sql, id.to_string())
}

/// Appends `WHERE id = … AND status IN (…)`, the statuses that may become `next`.
fn where_may_become(sql: &mut Sql, id: String, next: JobStatus) {
    sql.push(" WHERE id = ").bind(id).push(" AND status IN (");
    sql.bind_list(next.sources().into_iter().map(|s| s.as_str().to_owned()))
        .push(")");
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: Uuid,
    /// Its kind.
    pub kind: JobKind,
    /// Its folder, if any.
    pub folder_id: Option<Uuid>,
    /// Its parameters (a JSON object).
    pub params: serde_json::Value,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Who submits it.
    pub created_by: String,
    /// The submitter's idempotency key.
    pub idempotency_key: Option<String>,
    /// The job it retries.
    pub retry_of: Option<Uuid>,
}

/// Inserts a PENDING job. A clash with an idempotency key, an active sync of the same folder or
/// another retry of the same job is a `Conflict`.
pub async fn insert(db: &mut dyn Db, job: &NewJob) -> Result<(), StoreError> {
    let now = now_micros();
    let mut sql = Sql::new(
        "INSERT INTO job (id, kind, status, folder_id, params, max_attempts, created_by, idempotency_key, retry_of, created_at, updated_at) VALUES (",
    );
    sql.bind(job.id.to_string()).push(", ");
    sql.bind(job.kind.as_str().to_owned()).push(", ");
    sql.bind(JobStatus::Pending.as_str().to_owned()).push(", ");
    sql.bind(job.folder_id.map(|f| f.to_string())).push(", ");
    sql.bind(job.params.to_string()).push(", ");
    sql.bind(job.max_attempts).push(", ");
    sql.bind(job.created_by.clone()).push(", ");
    sql.bind(job.idempotency_key.clone()).push(", ");
    sql.bind(job.retry_of.map(|id| id.to_string())).push(", ");
    sql.bind(now).push(", ").bind(now).push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// The job with this id.
pub async fn by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM job WHERE id = "));
    sql.bind(id.to_string());
    fetch_optional(db, sql).await
}

/// The job `created_by` submitted under `key`.
pub async fn by_idempotency_key(db: &mut dyn Db, created_by: &str, key: &str) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM job WHERE created_by = "));
    sql.bind(created_by.to_owned())
        .push(" AND idempotency_key = ")
        .bind(key.to_owned());
    fetch_optional(db, sql).await
}

/// The job that retries job `id`, if any.
pub async fn retry_of(db: &mut dyn Db, id: Uuid) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM job WHERE retry_of = "));
    sql.bind(id.to_string());
    fetch_optional(db, sql).await
}

/// The sync of `folder_id` that is pending or running, if any.
pub async fn active_sync(db: &mut dyn Db, folder_id: Uuid) -> Result<Option<Job>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM job WHERE kind = 'SYNC' AND status IN ('PENDING', 'RUNNING') AND folder_id = "
    ));
    sql.bind(folder_id.to_string());
    fetch_optional(db, sql).await
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only jobs on this folder.
    pub folder_id: Option<Uuid>,
    /// Only jobs submitted at or after this time (microseconds).
    pub created_from: Option<i64>,
    /// Only jobs submitted before this time (microseconds).
    pub created_until: Option<i64>,
    /// Only jobs this reader submitted or whose folder they may read; all when `None` (admins).
    pub visible_to: Option<Reader>,
    /// Start after this (created_at micros, id), newest first.
    pub before: Option<(i64, Uuid)>,
    /// Most rows.
    pub limit: u32,
}

/// One page of jobs, newest first.
pub async fn list(db: &mut dyn Db, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM job j WHERE 1 = 1"));
    if let Some(kind) = filter.kind {
        sql.push(" AND j.kind = ").bind(kind.as_str().to_owned());
    }
    if let Some(status) = filter.status {
        sql.push(" AND j.status = ").bind(status.as_str().to_owned());
    }
    if let Some(folder) = filter.folder_id {
        sql.push(" AND j.folder_id = ").bind(folder.to_string());
    }
    if let Some(from) = filter.created_from {
        sql.push(" AND j.created_at >= ").bind(from);
    }
    if let Some(until) = filter.created_until {
        sql.push(" AND j.created_at < ").bind(until);
    }
    if let Some(reader) = &filter.visible_to {
        sql.push(" AND (j.created_by = ").bind(reader.user.clone());
        sql.push(" OR j.folder_id IN (SELECT f.id FROM folder f WHERE f.trashed_at IS NULL AND ");
        push_readable_by(&mut sql, reader);
        sql.push("))");
    }
    if let Some((created_at, id)) = filter.before {
        sql.push(" AND (j.created_at < ").bind(created_at);
        sql.push(" OR (j.created_at = ")
            .bind(created_at)
            .push(" AND j.id < ")
            .bind(id.to_string())
            .push("))");
    }
    sql.push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
        .bind(i64::from(filter.limit));
    let rows = sql.build_as::<JobRow>().fetch_all(db.conn()).await?;
    rows.into_iter().map(Job::try_from).collect()
}

/// Starts an attempt: PENDING (or RUNNING, when a worker died mid-attempt) becomes RUNNING and
/// `attempts` grows by one. `None` when the job is finished or unknown, or its kind is paused
/// (checked in the same statement, so no worker starts a job after a pause committed).
pub async fn start_attempt(db: &mut dyn Db, id: Uuid) -> Result<Option<Job>, StoreError> {
    let (mut sql, id_text) = update(id);
    let now = now_micros();
    sql.push(", status = 'RUNNING', attempts = attempts + 1, message = NULL, started_at = COALESCE(started_at, ")
        .bind(now);
    sql.push(") WHERE id = ")
        .bind(id_text)
        .push(" AND status IN ('PENDING', 'RUNNING')")
        .push(" AND NOT EXISTS (SELECT 1 FROM job_kind_pause p WHERE p.kind = job.kind)");
    if change(db, id, sql).await?.is_none() {
        return Ok(None);
    }
    by_id(db, id).await
}

/// Writes a running job's progress and unit errors; returns the change, `None` when the job is
/// no longer RUNNING (cancelled while pending, or finished elsewhere).
pub async fn save_progress(
    db: &mut dyn Db,
    id: Uuid,
    progress: &Progress,
    errors: &[UnitError],
) -> Result<Option<Changed>, StoreError> {
    let (mut sql, id_text) = update(id);
    push_progress(&mut sql, progress, errors);
    sql.push(" WHERE id = ").bind(id_text).push(" AND status = 'RUNNING'");
    change(db, id, sql).await
}

fn push_progress(sql: &mut Sql, progress: &Progress, errors: &[UnitError]) {
    sql.push(", units_pending = ").bind(progress.units_pending);
    sql.push(", units_done = ").bind(progress.units_done);
    sql.push(", units_error = ").bind(progress.units_error);
    sql.push(", units_cancelled = ").bind(progress.units_cancelled);
    sql.push(", errors = ")
        .bind(serde_json::to_string(errors).unwrap_or_else(|_| "[]".into()));
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// DONE, ERROR, CANCELLED, or PENDING to retry later.
    pub status: JobStatus,
    /// The final progress.
    pub progress: Progress,
    /// The unit errors.
    pub errors: Vec<UnitError>,
    /// The kind's result (for DONE, and what was done for CANCELLED or ERROR).
    pub result: Option<serde_json::Value>,
    /// The failure message (ERROR, or why a retry is pending).
    pub message: Option<String>,
}

/// Ends a RUNNING attempt with `outcome`; false when the job was not RUNNING (someone else
/// finished it), so a job completes at most once.
pub async fn end_attempt(db: &mut dyn Db, id: Uuid, outcome: &Outcome) -> Result<bool, StoreError> {
    let (mut sql, id_text) = update(id);
    sql.push(", status = ").bind(outcome.status.as_str().to_owned());
    push_progress(&mut sql, &outcome.progress, &outcome.errors);
    sql.push(", result = ")
        .bind(outcome.result.as_ref().map(serde_json::Value::to_string));
    sql.push(", message = ").bind(outcome.message.clone());
    if outcome.status.is_terminal() {
        sql.push(", finished_at = ").bind(now_micros());
    }
    where_may_become(&mut sql, id_text, outcome.status);
    sql.push(" AND status = 'RUNNING'");
    Ok(change(db, id, sql).await?.is_some())
}

/// Ends a job that cannot run at all (its attempts are used up, or its parameters are unusable).
pub async fn fail(db: &mut dyn Db, id: Uuid, message: &str) -> Result<bool, StoreError> {
    let (mut sql, id_text) = update(id);
    sql.push(", status = 'ERROR', message = ").bind(message.to_owned());
    sql.push(", finished_at = ").bind(now_micros());
    sql.push(" WHERE id = ")
        .bind(id_text)
        .push(" AND status IN ('PENDING', 'RUNNING')");
    Ok(change(db, id, sql).await?.is_some())
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was pending and is now CANCELLED; it will never start.
    Now,
    /// It is running and will stop at its next unit boundary.
    Requested,
    /// It had already finished with this status.
    AlreadyFinished(JobStatus),
}

/// Cancels a pending job at once, or asks a running one to stop.
pub async fn cancel(db: &mut dyn Db, id: Uuid) -> Result<Cancelled, StoreError> {
    let (mut sql, id_text) = update(id);
    sql.push(", status = 'CANCELLED', cancel_requested = 1, finished_at = ")
        .bind(now_micros());
    sql.push(", units_cancelled = units_cancelled + units_pending, units_pending = 0");
    sql.push(" WHERE id = ")
        .bind(id_text.clone())
        .push(" AND status = 'PENDING'");
    if change(db, id, sql).await?.is_some() {
        return Ok(Cancelled::Now);
    }
    let (mut sql, _) = update(id);
    sql.push(", cancel_requested = 1 WHERE id = ")
        .bind(id_text)
        .push(" AND status = 'RUNNING'");
    if change(db, id, sql).await?.is_some() {
        return Ok(Cancelled::Requested);
    }
    match by_id(db, id).await? {
        Some(job) => Ok(Cancelled::AlreadyFinished(job.status)),
        None => Err(StoreError::NotFound),
    }
}

/// The current versions of these jobs (for the fallback re-check of waiters).
pub async fn versions(db: &mut dyn Db, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT id, version FROM job WHERE id IN (");
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    let rows: Vec<(String, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(|(id, v)| Ok((parse_id(&id)?, v))).collect()
}

/// Pending jobs of these kinds created before `created_before` (micros): candidates for a
/// re-push when their queue task went missing.
pub async fn pending_before(
    db: &mut dyn Db,
    kinds: &[JobKind],
    created_before: i64,
) -> Result<Vec<(Uuid, JobKind)>, StoreError> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT id, kind FROM job WHERE status = 'PENDING' AND created_at < ");
    sql.bind(created_before).push(" AND kind IN (");
    sql.bind_list(kinds.iter().map(|k| k.as_str().to_owned()))
        .push(") ORDER BY created_at LIMIT 1000");
    let rows: Vec<(String, String)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(id, kind)| Ok((parse_id(&id)?, JobKind::parse(&kind).map_err(|e| corrupt("kind", e))?)))
        .collect()
}

/// Listens for [`CHANNEL`] notifications on the PostgreSQL database at `url` and hands each
/// job's id and new version to `publish`; answers only when the connection fails.
pub async fn listen_for_changes(url: &str, mut publish: impl FnMut(Uuid, i64) + Send) -> Result<(), StoreError> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let note = listener.recv().await?;
        if let Some((id, version)) = note.payload().split_once(':')
            && let (Ok(id), Ok(version)) = (Uuid::parse_str(id), version.parse::<i64>())
        {
            publish(id, version);
        }
    }
}

/// Removes up to `limit` jobs that finished before `before` (microseconds), with an import's
/// units; answers how many jobs.
pub async fn delete_finished_before(db: &mut dyn Db, before: i64, limit: i64) -> Result<u64, StoreError> {
    let mut sql = Sql::new("SELECT id FROM job WHERE finished_at < ");
    sql.bind(before).push(" ORDER BY finished_at LIMIT ").bind(limit);
    sql.push(db.dialect().skip_locked());
    let ids: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = ids.iter().map(|(id,)| parse_id(id)).collect::<Result<_, _>>()?;
    delete(db, &ids).await
}

/// Removes the records of jobs `ids` that are finished, with an import's units; answers how
/// many jobs.
pub async fn delete(db: &mut dyn Db, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let finished = "('DONE', 'ERROR', 'CANCELLED')";
    let mut units = Sql::new("DELETE FROM import_unit WHERE job_id IN (SELECT id FROM job WHERE id IN (");
    units.bind_list(ids.iter().cloned());
    units.push(&format!(") AND status IN {finished})"));
    units.build().execute(db.conn()).await?;
    let mut jobs = Sql::new("DELETE FROM job WHERE id IN (");
    jobs.bind_list(ids).push(&format!(") AND status IN {finished}"));
    Ok(jobs.build().execute(db.conn()).await?.rows_affected())
}

/// The jobs of one kind waiting and running now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Active {
    /// PENDING jobs.
    pub pending: i64,
    /// RUNNING jobs.
    pub running: i64,
    /// When the oldest PENDING one was submitted (microseconds).
    pub oldest_pending_at: Option<i64>,
}

/// Jobs waiting and running now, per kind (a kind with none is absent).
pub async fn active_counts(db: &mut dyn Db) -> Result<BTreeMap<JobKind, Active>, StoreError> {
    let sql = Sql::new(
        "SELECT kind, status, COUNT(*), MIN(created_at) FROM job WHERE status IN ('PENDING', 'RUNNING') GROUP BY kind, status",
    );
    let rows: Vec<(String, String, i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    let mut active: BTreeMap<JobKind, Active> = BTreeMap::new();
    for (kind, status, count, oldest) in rows {
        let kind = JobKind::parse(&kind).map_err(|e| corrupt("job.kind", e))?;
        let entry = active.entry(kind).or_default();
        match JobStatus::parse(&status).map_err(|e| corrupt("job.status", e))? {
            JobStatus::Pending => {
                entry.pending = count;
                entry.oldest_pending_at = Some(oldest);
            }
            _ => entry.running = count,
        }
    }
    Ok(active)
}
