//! `/v1/folders/{id}/quota`, `/v1/users/{name}/quota` and `/v1/usage`: quotas on folders (their
//! managers) and on users (admins), what they hold, and the recount that checks the counters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::quota::Quota;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, StrictQuery};
use crate::services::quotas::{FolderQuotaView, RecountView, UserQuota, UserUsageView};

/// Query of `GET /v1/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Whose usage (admins); the caller's when absent.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub user: Option<String>,
}

/// A folder's quota and what its subtree holds (anyone who may see the folder); 404 when it
/// has none.
#[utoipa::path(get, path = "/folders/{id}/quota", tag = "quotas", params(("id" = Uuid, Path)), responses(
    (status = 200, body = FolderQuotaView), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such folder, or it has no quota"),
))]
pub async fn folder_quota(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<FolderQuotaView>, ApiError> {
    Ok(Json(state.services.quotas.folder_quota(&caller, id).await?))
}

/// Set a folder's quota over its subtree (its managers): `max_bytes`, `max_items` or both (the
/// whole quota is replaced: a limit left out is removed). It
/// cannot exceed a quota above the folder nor go below one inside it; it may be below what the
/// subtree holds (nothing more can be added then). Uploads, moves in, restores, import units and
/// synced objects past it are refused with `QUOTA_EXCEEDED`.
#[utoipa::path(put, path = "/folders/{id}/quota", tag = "quotas", params(("id" = Uuid, Path)),
    request_body = Quota, responses(
    (status = 200, body = FolderQuotaView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn set_folder_quota(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
    JsonBody(quota): JsonBody<Quota>,
) -> Result<Json<FolderQuotaView>, ApiError> {
    Ok(Json(state.services.quotas.set_folder_quota(&caller, id, quota).await?))
}

/// Remove a folder's quota (its managers); removing none changes nothing.
#[utoipa::path(delete, path = "/folders/{id}/quota", tag = "quotas", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such folder"),
))]
pub async fn remove_folder_quota(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<StatusCode, ApiError> {
    state.services.quotas.remove_folder_quota(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's byte quota over the trees they own (admins).
#[utoipa::path(put, path = "/users/{name}/quota", tag = "quotas",
    params(("name" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")),
    request_body = UserQuota, responses(
    (status = 200, body = UserUsageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such user"),
))]
pub async fn set_user_quota(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    _: NoQuery,
    JsonBody(quota): JsonBody<UserQuota>,
) -> Result<Json<UserUsageView>, ApiError> {
    Ok(Json(
        state
            .services
            .quotas
            .set_user_quota(&caller, &name, Some(quota.max_bytes))
            .await?,
    ))
}

/// Remove a user's byte quota (admins); removing none changes nothing.
#[utoipa::path(delete, path = "/users/{name}/quota", tag = "quotas",
    params(("name" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")),
    responses(
    (status = 200, body = UserUsageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such user"),
))]
pub async fn remove_user_quota(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    _: NoQuery,
) -> Result<Json<UserUsageView>, ApiError> {
    Ok(Json(state.services.quotas.set_user_quota(&caller, &name, None).await?))
}

/// What the trees a user owns hold, with their byte quota: the caller's, or with `user` another
/// user's (admins).
#[utoipa::path(get, path = "/usage", tag = "quotas", params(UsageParams), responses(
    (status = 200, body = UserUsageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such user"),
))]
pub async fn usage(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(params): StrictQuery<UsageParams>,
) -> Result<Json<UserUsageView>, ApiError> {
    Ok(Json(
        state.services.quotas.usage(&caller, params.user.as_deref()).await?,
    ))
}

/// Recount every usage counter from the items, correct the ones that drifted and list them
/// (admins). A daily recount does the same on its own.
#[utoipa::path(post, path = "/usage/recount", tag = "quotas", responses(
    (status = 200, body = RecountView), (status = 403, body = ErrorBody),
))]
pub async fn recount(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
) -> Result<Json<RecountView>, ApiError> {
    Ok(Json(state.services.quotas.recount(&caller).await?))
}
