//! Direct uploads: open a session, PUT the file to its URL (the bucket's, or this daemon's
//! `/o/…`), complete it into an item, or abort it.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};

use super::items::UploadLimit;
use super::signed::request_base;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, OptionalJsonBody};
use crate::services::items::{CompleteUpload, ItemView, NewUpload, UploadOutcome, UploadSessionView};

/// Open a direct upload into the folder: the answer's `url` takes the file's exact bytes (PUT,
/// no API key, with the answer's `headers`) straight into the bucket, or, for a file larger
/// than `signed_urls.upload_part_bytes` into a cloud bucket, each of its `parts` its own URL;
/// then complete it.
#[utoipa::path(post, path = "/folders/{id}/uploads", tag = "items", params(("id" = Uuid, Path)), request_body = NewUpload, responses(
    (status = 201, body = UploadSessionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a synced folder"),
    (status = 413, body = ErrorBody, description = "over server.max_upload_bytes"),
))]
pub async fn start_upload(
    State(state): State<AppState>,
    Extension(UploadLimit(limit)): Extension<UploadLimit>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(folder_id): IdPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewUpload>,
) -> Result<(StatusCode, Json<UploadSessionView>), ApiError> {
    let base = request_base(&headers);
    let session = state
        .services
        .items
        .start_upload(&caller, folder_id, body, limit, &base)
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Complete a direct upload: the uploaded file (assembled from its parts, with the ETags the
/// body names) is read once (size, blake3, type, media) and becomes an item, with the session's
/// conflict strategy (201 new, 200 skip or replace). The session ends; a file of another size
/// than announced is removed (400).
#[utoipa::path(post, path = "/uploads/{id}/complete", tag = "items", params(("id" = Uuid, Path)), request_body(content = Option<CompleteUpload>), responses(
    (status = 201, body = ItemView), (status = 200, body = ItemView, description = "`skip` or `replace`"),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "nothing uploaded yet, or the title is taken"),
))]
pub async fn complete_upload(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    OptionalJsonBody(done): OptionalJsonBody<CompleteUpload>,
) -> Result<(StatusCode, Json<ItemView>), ApiError> {
    let (item, outcome) = state.services.items.complete_upload(&caller, id, done).await?;
    let status = match outcome {
        UploadOutcome::Created => StatusCode::CREATED,
        UploadOutcome::Existing | UploadOutcome::Replaced => StatusCode::OK,
    };
    Ok((status, Json(item)))
}

/// Abort a direct upload, removing what was uploaded to it.
#[utoipa::path(delete, path = "/uploads/{id}", tag = "items", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 404, body = ErrorBody),
))]
pub async fn abort_upload(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    state.services.items.abort_upload(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
