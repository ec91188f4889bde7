//! `/v1/folders`: create, look up, list, update, move, delete (into the trash or for good),
//! restore and summarize folders.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::folder::{FolderOrder, Visibility};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, IdempotencyKey, JsonBody, NoQuery, OptionalJsonBody, StrictQuery};
use crate::http::routes::jobs::submitted;
use crate::services::folders::{
    Deleted, FolderPatch, FolderSummary, FolderView, ListFolders, NewFolder, RestoreRequest,
};
use crate::services::jobs::JobView;
use crate::services::sync::SyncOptions;
use crate::services::{Page, ServiceError};

/// Query of `GET /v1/folders`: `path` alone looks up one folder; the rest lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FolderListParams {
    /// Look up the one folder at this path (no other parameter allowed).
    pub path: Option<String>,
    /// List inside this folder; the root when absent.
    pub parent_id: Option<Uuid>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// `name` (default) or `created_at`.
    pub order_by: Option<FolderOrder>,
    /// Descending order.
    pub desc: Option<bool>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// All descendants instead of the children.
    pub recursive: Option<bool>,
    /// Only folders of this owner.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub owner: Option<String>,
    /// Only folders of this visibility.
    pub visibility: Option<Visibility>,
    /// Only folders you starred.
    pub starred: Option<bool>,
}

/// The answer of `GET /v1/folders`: one folder for `path`, else a page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FolderListAnswer {
    /// The folder at `path`.
    One(Box<FolderView>),
    /// A page of folders.
    Page(Page<FolderView>),
}

/// Query of `DELETE /v1/folders/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Delete a non-empty folder with everything inside.
    pub recursive: Option<bool>,
    /// Delete for good at once instead of moving into the trash (also purges a folder already in the trash).
    pub permanent: Option<bool>,
}

/// Query of `GET /v1/folders/{id}/summary`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// Count the whole subtree, not only the direct contents.
    pub recursive: Option<bool>,
}

/// Body of `POST /v1/folders/{id}/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFolder {
    /// The new parent; `null` moves the folder to the root.
    #[serde(default, deserialize_with = "crate::services::nullable")]
    #[schema(value_type = Option<Uuid>, required)]
    pub parent_id: Option<Option<Uuid>>,
}

/// Create a folder by `path` (optionally with `create_parents`) or by `parent_id` + `name`.
#[utoipa::path(post, path = "/folders", tag = "folders", request_body = NewFolder, responses(
    (status = 201, body = FolderView),
    (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "parent missing"), (status = 409, body = ErrorBody, description = "path taken"),
))]
pub async fn create_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<NewFolder>,
) -> Result<(StatusCode, Json<FolderView>), ApiError> {
    let folder = state.services.folders.create(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(folder)))
}

/// List the folders inside a folder (or the root), or look one up by `path`.
#[utoipa::path(get, path = "/folders", tag = "folders", params(FolderListParams), responses(
    (status = 200, body = FolderListAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn list_folders(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<FolderListParams>,
) -> Result<Json<FolderListAnswer>, ApiError> {
    let folders = &state.services.folders;
    if let Some(path) = &q.path {
        let listing = q.parent_id.is_some()
            || q.search.is_some()
            || q.order_by.is_some()
            || q.desc.is_some()
            || q.page_size.is_some()
            || q.page_token.is_some()
            || q.recursive.is_some()
            || q.owner.is_some()
            || q.visibility.is_some()
            || q.starred.is_some();
        if listing {
            return Err(ApiError::bad_request(
                "`path` looks up one folder and cannot be combined with listing parameters",
            ));
        }
        return Ok(Json(FolderListAnswer::One(Box::new(
            folders.get_by_path(&caller, path).await?,
        ))));
    }
    let req = ListFolders {
        parent_id: q.parent_id,
        search: q.search,
        order_by: q.order_by.unwrap_or_default(),
        desc: q.desc.unwrap_or(false),
        page_size: q.page_size,
        page_token: q.page_token,
        recursive: q.recursive.unwrap_or(false),
        owner: q.owner,
        visibility: q.visibility,
        starred: q.starred.unwrap_or(false),
        shelf: None,
    };
    Ok(Json(FolderListAnswer::Page(folders.list(&caller, req).await?)))
}

/// One folder.
#[utoipa::path(get, path = "/folders/{id}", tag = "folders", params(("id" = Uuid, Path)), responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
) -> Result<Json<FolderView>, ApiError> {
    Ok(Json(state.services.folders.get(&caller, id).await?))
}

/// Change a folder's name, description, client metadata, TTL or visibility.
#[utoipa::path(patch, path = "/folders/{id}", tag = "folders", params(("id" = Uuid, Path)), request_body = FolderPatch, responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
pub async fn update_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    JsonBody(patch): JsonBody<FolderPatch>,
) -> Result<Json<FolderView>, ApiError> {
    Ok(Json(state.services.folders.update(&caller, id, patch).await?))
}

/// Delete a folder with its subtree: into the trash, or for good with `permanent=true`; a
/// non-empty one needs `recursive=true`.
#[utoipa::path(delete, path = "/folders/{id}", tag = "folders", params(("id" = Uuid, Path), DeleteParams), responses(
    (status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "not empty, or (permanent) trashed with a folder above it"),
))]
pub async fn delete_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<DeleteParams>,
) -> Result<Json<Deleted>, ApiError> {
    Ok(Json(
        state
            .services
            .folders
            .delete(&caller, id, q.recursive.unwrap_or(false), q.permanent.unwrap_or(false))
            .await?,
    ))
}

/// Bring a folder back from the trash with what its delete took along: where it was, or into
/// `target_parent_id`.
#[utoipa::path(post, path = "/folders/{id}/restore", tag = "trash", params(("id" = Uuid, Path)), request_body(content = RestoreRequest, description = "optional"), responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "the path is taken, the folder it was in is in the trash, or it is not in the trash"),
))]
pub async fn restore_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    OptionalJsonBody(body): OptionalJsonBody<RestoreRequest>,
) -> Result<Json<FolderView>, ApiError> {
    Ok(Json(
        state
            .services
            .folders
            .restore(&caller, id, body.target_parent_id)
            .await?,
    ))
}

/// Move a folder with its subtree under another folder, or to the root.
#[utoipa::path(post, path = "/folders/{id}/move", tag = "folders", params(("id" = Uuid, Path)), request_body = MoveFolder, responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody, description = "into its own subtree"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
pub async fn move_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<MoveFolder>,
) -> Result<Json<FolderView>, ApiError> {
    let parent_id = body.parent_id.ok_or_else(|| {
        ServiceError::Invalid("parent_id: required; give the new parent's id, or null for the root".into())
    })?;
    Ok(Json(state.services.folders.move_to(&caller, id, parent_id).await?))
}

/// Count subfolders, items by type, tombstones and bytes in a folder.
#[utoipa::path(get, path = "/folders/{id}/summary", tag = "folders", params(("id" = Uuid, Path), SummaryParams), responses(
    (status = 200, body = FolderSummary), (status = 404, body = ErrorBody),
))]
pub async fn folder_summary(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<SummaryParams>,
) -> Result<Json<FolderSummary>, ApiError> {
    Ok(Json(
        state
            .services
            .folders
            .summary(&caller, id, q.recursive.unwrap_or(false))
            .await?,
    ))
}

/// Sync a synced folder with its bucket: a SYNC job (202), or the one already pending or
/// running for the folder (200).
#[utoipa::path(post, path = "/folders/{id}/sync", tag = "folders", params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "same key from the same user: the same job")),
    request_body = SyncOptions, responses(
        (status = 202, body = JobView), (status = 200, body = JobView, description = "a sync of this folder is already pending or running"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not a synced folder"),
    ))]
pub async fn sync_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJsonBody(options): OptionalJsonBody<SyncOptions>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = state.services.sync.submit(&caller, id, options, key).await?;
    submitted(&state, &caller, job).await
}
