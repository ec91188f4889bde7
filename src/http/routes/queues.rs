//! `/v1/queues`: each job kind's queue for operators (admins), and pausing and resuming a kind.

use axum::Json;
use axum::extract::{Path, State};

use crate::domain::caller::Caller;
use crate::domain::job::JobKind;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::NoQuery;
use crate::services::ServiceError;
use crate::services::queues::QueueView;

/// The kind a path names, in any case (`sync` or `SYNC`).
fn kind_of(name: &str) -> Result<JobKind, ApiError> {
    JobKind::parse(&name.to_uppercase())
        .map_err(|e| ServiceError::NotFound(format!("no job kind `{name}`: {e}")).into())
}

/// Every job kind's queue (admins): paused or not, jobs pending and running, the age of the
/// oldest pending job, and the workers alive in any process.
#[utoipa::path(get, path = "/queues", tag = "jobs", responses(
    (status = 200, body = Vec<QueueView>), (status = 403, body = ErrorBody),
))]
pub async fn list_queues(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    Ok(Json(state.services.queues.list(&caller).await?))
}

/// Pause a job kind (admins): no worker, in any process, starts a job of it until it is
/// resumed, across restarts; running jobs finish and new ones wait as PENDING.
#[utoipa::path(post, path = "/queues/{kind}/pause", tag = "jobs",
    params(("kind" = String, Path, description = "SYNC, IMPORT, REENCODE, EXPIRY or NOOP (any case)")),
    responses((status = 200, body = QueueView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause_queue(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(kind): Path<String>,
    _: NoQuery,
) -> Result<Json<QueueView>, ApiError> {
    set_paused(&state, &caller, &kind, true).await
}

/// Resume a paused job kind (admins): its pending jobs start again.
#[utoipa::path(post, path = "/queues/{kind}/resume", tag = "jobs",
    params(("kind" = String, Path, description = "SYNC, IMPORT, REENCODE, EXPIRY or NOOP (any case)")),
    responses((status = 200, body = QueueView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume_queue(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(kind): Path<String>,
    _: NoQuery,
) -> Result<Json<QueueView>, ApiError> {
    set_paused(&state, &caller, &kind, false).await
}

/// Pauses or resumes the kind named `kind` (any case; 404 for none such).
async fn set_paused(state: &AppState, caller: &Caller, kind: &str, paused: bool) -> Result<Json<QueueView>, ApiError> {
    let kind = kind_of(kind)?;
    Ok(Json(state.services.queues.set_paused(caller, kind, paused).await?))
}
