//! `/v1/jobs`: list, read (with long polling), cancel and retry jobs, one or in bulk; submit no-op jobs, re-encodes
//! (`/v1/reencode`) and TTL sweeps (`/v1/expiry`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::domain::caller::Caller;
use crate::domain::job::{JobKind, JobStatus};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, IdempotencyKey, JsonBody, NoQuery, StrictQuery};
use crate::services::access::require_admin;
use crate::services::bulk_jobs::{BulkOutcome, BulkRequest};
use crate::services::jobs::noop::NoopParams;
use crate::services::jobs::{JobSelection, JobView, ListJobs, Submission, Submitted};
use crate::services::reencode::ReencodeRequest;
use crate::services::{Context, Page, Rfc3339};

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only jobs on this folder.
    pub folder_id: Option<Uuid>,
    /// Only jobs submitted at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub submitted_after: Option<Rfc3339>,
    /// Only jobs submitted before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub submitted_before: Option<Rfc3339>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// Query of `GET /v1/jobs/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobGetParams {
    /// Wait up to this many seconds (at most 600) for the job to finish or change.
    #[param(minimum = 0, maximum = 600)]
    pub wait_seconds: Option<u64>,
    /// With `wait_seconds`: return as soon as the job's version is newer than this (default:
    /// its current version).
    pub since_version: Option<u64>,
}

/// The answer to a submission: 202 for a new job, 200 for an existing one (same
/// `Idempotency-Key`, or a sync of the folder already pending or running).
pub async fn submitted(
    state: &AppState,
    caller: &Caller,
    submitted: Submitted,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let (view, created) = state.services.jobs.shown(caller, submitted).await?;
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

/// List the jobs you submitted or that work on folders you can read, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobListParams), responses(
    (status = 200, body = Page<JobView>), (status = 400, body = ErrorBody),
))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<JobListParams>,
) -> Result<Json<Page<JobView>>, ApiError> {
    let req = ListJobs {
        selection: JobSelection {
            kind: q.kind,
            status: q.status,
            folder_id: q.folder_id,
            submitted_after: q.submitted_after,
            submitted_before: q.submitted_before,
        },
        page_size: q.page_size,
        page_token: q.page_token,
    };
    Ok(Json(state.services.jobs.list(&caller, req).await?))
}

/// One job. With `wait_seconds` it long-polls: it answers at once when the job is finished or
/// newer than `since_version`, else when it changes or the wait runs out.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), JobGetParams), responses(
    (status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<JobGetParams>,
) -> Result<Json<JobView>, ApiError> {
    let jobs = &state.services.jobs;
    let job = match q.wait_seconds {
        Some(seconds) => {
            let since = q.since_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            jobs.wait(&caller, id, since, Duration::from_secs(seconds)).await?
        }
        // Without a wait there is nothing to wait past: since_version changes nothing.
        None => jobs.get(&caller, id).await?,
    };
    Ok(Json(job))
}

/// Cancel a job: a pending one never starts; a running one stops at its next unit and ends
/// CANCELLED with what it finished kept.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path)), responses(
    (status = 200, body = JobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "already finished"),
))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.services.jobs.cancel(&caller, id).await?))
}

/// Retry a job that did not fully succeed (ERROR, CANCELLED, or DONE with failed units): a new
/// job, submitted by you under today's access rules, whose `retry_of` names this one. Imports and
/// re-encodes carry over only the units that did not succeed; a sync runs again. A job is
/// retried once: asking again answers that retry (200).
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs", params(("id" = Uuid, Path)), responses(
    (status = 202, body = JobView, description = "the new job"),
    (status = 200, body = JobView, description = "the job was already retried: that retry"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "not finished, or nothing left to retry"),
))]
pub async fn retry_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = state.services.retries.retry(&caller, id).await?;
    submitted(&state, &caller, job).await
}

/// Cancel, retry, or delete the records of every job a filter matches, newest first: you act on
/// the jobs you may see, cancel and retry those you may change, and only admins delete records
/// (of finished jobs). The answer counts the jobs matched and touched and says why it left the
/// others; with `dry_run` nothing changes.
#[utoipa::path(post, path = "/jobs/bulk", tag = "jobs", request_body = BulkRequest, responses(
    (status = 200, body = BulkOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
))]
pub async fn bulk_jobs(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    Ok(Json(state.services.bulk_jobs.run(&caller, req).await?))
}

/// Submit a no-op job that sleeps through its units (admins): checks the queue end to end.
#[utoipa::path(post, path = "/jobs/noop", tag = "jobs", request_body = NoopParams,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "same key from the same user: the same job")),
    responses(
        (status = 202, body = JobView), (status = 200, body = JobView, description = "existing job for this Idempotency-Key"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn submit_noop(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(params): JsonBody<NoopParams>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    require_admin(&caller, "submit NOOP jobs")?;
    params.validate().map_err(ApiError::bad_request)?;
    let params = serde_json::to_value(&params).context("cannot encode the job parameters")?;
    let submission = Submission {
        kind: JobKind::Noop,
        folder_id: None,
        params,
        idempotency_key,
        retry_of: None,
    };
    let job = state.services.jobs.submit(&caller.name, submission).await?;
    submitted(&state, &caller, job).await
}

/// Re-encode videos so every browser plays them: H.264 + AAC in MP4 with faststart (a remux when
/// they already are, unless `force_full_reencoding`). Downloads then serve the rendition.
#[utoipa::path(post, path = "/reencode", tag = "jobs", request_body = ReencodeRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "same key from the same user: the same job")),
    responses(
        (status = 202, body = JobView), (status = 200, body = JobView, description = "existing job for this Idempotency-Key"),
        (status = 400, body = ErrorBody, description = "names the items that are not videos you can change"),
    ))]
pub async fn submit_reencode(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(req): JsonBody<ReencodeRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = state.services.reencode.submit(&caller, req, idempotency_key).await?;
    submitted(&state, &caller, job).await
}

/// Run the TTL sweep now (admins): deletes or trashes what expired and purges the trash past its
/// retention, as `expiry.schedule` does.
#[utoipa::path(post, path = "/expiry", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "same key from the same user: the same job")),
    responses(
        (status = 202, body = JobView), (status = 200, body = JobView, description = "existing job for this Idempotency-Key"),
        (status = 403, body = ErrorBody),
    ))]
pub async fn submit_expiry(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdempotencyKey(idempotency_key): IdempotencyKey,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    require_admin(&caller, "run the expiry sweep")?;
    let submission = Submission {
        kind: JobKind::Expiry,
        folder_id: None,
        params: serde_json::json!({}),
        idempotency_key,
        retry_of: None,
    };
    let job = state.services.jobs.submit(&caller.name, submission).await?;
    submitted(&state, &caller, job).await
}
