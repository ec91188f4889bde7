//! `/v1/folders/{id}/grants` and `/v1/buckets/{name}/grants`: roles on folders given by their
//! managers, and the use of configured buckets given by admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::domain::team::Principal;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, StrictQuery};
use crate::services::grants::{BucketGrantChange, BucketGrantsView, FolderGrantChange, FolderGrantsView};

/// Query of `DELETE /v1/folders/{id}/grants`: whose grant to take back.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Grantee {
    /// The user (give this or `group`).
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub user: Option<String>,
    /// The group's id (give this or `user`).
    pub group: Option<Uuid>,
}

impl Grantee {
    fn principal(&self) -> Result<Principal, ApiError> {
        Principal::named(self.user.as_deref(), self.group).map_err(|e| ApiError::bad_request(format!("user: {e}")))
    }
}

/// Query of `DELETE /v1/buckets/{name}/grants`: whose grant, under which prefix.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BucketGrantee {
    /// The user (give this or `group`).
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub user: Option<String>,
    /// The group's id (give this or `user`).
    pub group: Option<Uuid>,
    /// The prefix the grant covers (default: empty, the whole bucket).
    pub prefix: Option<String>,
}

/// Who may do what with a folder: its owner, visibility, and the grants on it and its ancestors
/// (its managers).
#[utoipa::path(get, path = "/folders/{id}/grants", tag = "grants", params(("id" = Uuid, Path)), responses(
    (status = 200, body = FolderGrantsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn folder_grants(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<FolderGrantsView>, ApiError> {
    Ok(Json(state.services.grants.folder_grants(&caller, id).await?))
}

/// Give a user or a group a role on a folder and everything below it, replacing the role they
/// had on it (its managers). The strongest role that applies wins.
#[utoipa::path(put, path = "/folders/{id}/grants", tag = "grants", params(("id" = Uuid, Path)),
    request_body = FolderGrantChange, responses(
    (status = 200, body = FolderGrantsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such folder, user or group"),
))]
pub async fn grant_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
    JsonBody(change): JsonBody<FolderGrantChange>,
) -> Result<Json<FolderGrantsView>, ApiError> {
    Ok(Json(state.services.grants.grant_folder(&caller, id, change).await?))
}

/// Take back the role a user or group has on this folder (its managers); grants on ancestors
/// stay.
#[utoipa::path(delete, path = "/folders/{id}/grants", tag = "grants", params(("id" = Uuid, Path), Grantee), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such folder, or no such grant on it"),
))]
pub async fn revoke_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<Grantee>,
) -> Result<StatusCode, ApiError> {
    state.services.grants.revoke_folder(&caller, id, q.principal()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who may use a configured bucket: its configuration's allow list and the grants (admins).
#[utoipa::path(get, path = "/buckets/{name}/grants", tag = "grants", params(("name" = String, Path)), responses(
    (status = 200, body = BucketGrantsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn bucket_grants(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    _: NoQuery,
) -> Result<Json<BucketGrantsView>, ApiError> {
    Ok(Json(state.services.grants.bucket_grants(&caller, &name).await?))
}

/// Let a user or a group use a configured bucket, whole or under a prefix (admins): sync
/// folders over it, import from it, reference its objects.
#[utoipa::path(put, path = "/buckets/{name}/grants", tag = "grants", params(("name" = String, Path)),
    request_body = BucketGrantChange, responses(
    (status = 200, body = BucketGrantsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such bucket, user or group"),
))]
pub async fn grant_bucket(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    _: NoQuery,
    JsonBody(change): JsonBody<BucketGrantChange>,
) -> Result<Json<BucketGrantsView>, ApiError> {
    Ok(Json(state.services.grants.grant_bucket(&caller, &name, change).await?))
}

/// Take back a user's or group's use of a bucket under a prefix (admins).
#[utoipa::path(delete, path = "/buckets/{name}/grants", tag = "grants", params(("name" = String, Path), BucketGrantee),
    responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn revoke_bucket(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    StrictQuery(q): StrictQuery<BucketGrantee>,
) -> Result<StatusCode, ApiError> {
    let principal = Grantee {
        user: q.user,
        group: q.group,
    }
    .principal()?;
    let grants = &state.services.grants;
    grants
        .revoke_bucket(&caller, &name, principal, q.prefix.unwrap_or_default())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
