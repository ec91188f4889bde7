//! Items: upload (multipart, streamed), list, read, update, move, delete (into the trash or for
//! good), restore, download one (with `Range`) or many (a tar built on the fly), the re-encoded
//! rendition of a video by default or its original.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Extension, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::content::tar_response;
use crate::domain::item::{ConflictStrategy, ItemOrder, ItemType};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, OptionalJsonBody, StrictQuery};
use crate::services::Metadata;
use crate::services::folders::RestoreRequest;
use crate::services::items::{ItemPatch, ItemView, ItemsDeleted, ListItems, Moved, UploadOptions, UploadOutcome};
use crate::services::{Page, ServiceError};

/// How far past `server.max_upload_bytes` an upload is read (and thrown away) before the 413, so
/// that a client still sending hears the answer instead of a reset connection.
pub const UPLOAD_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// The largest file an upload may carry (`server.max_upload_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct UploadLimit(pub u64);

/// The longest text field of an upload form (`title`, `client_metadata`, `conflict_strategy`).
const MAX_FORM_FIELD_BYTES: usize = 64 * 1024;

/// The form of `POST /v1/folders/{id}/items` (`multipart/form-data`). Send the text fields
/// before `file` or after it, as you like.
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The content; its file name is the title unless `title` is given.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// The item's title in the folder.
    pub title: Option<String>,
    /// A JSON object kept with the item, as text.
    pub client_metadata: Option<String>,
    /// `error` (default, 409 on a taken title), `skip`, `new` or `replace`.
    pub conflict_strategy: Option<ConflictStrategy>,
}

/// Query of `GET /v1/folders/{id}/items`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemListParams {
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    /// Comma-separated types, e.g. `IMAGE,VIDEO`.
    pub item_types: Option<String>,
    /// Only tombstones (`true`) or only live items (`false`).
    pub is_tombstone: Option<bool>,
    /// `title` (default), `created_at` or `size`.
    pub order_by: Option<ItemOrder>,
    /// Descending order.
    pub desc: Option<bool>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Items of the whole subtree, not only the folder's own.
    pub recursive: Option<bool>,
    /// Only items you starred.
    pub starred: Option<bool>,
    /// Give each item a `signed_url` of its content (valid `signed_urls.default_seconds`), as
    /// `GET /v1/items/{id}/url` would.
    pub signed_urls: Option<bool>,
}

/// Body of `POST /v1/folders/{id}/items/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveItems {
    /// Items directly inside the folder of the path (at most 1000).
    #[schema(min_items = 1, max_items = 1000)]
    pub item_ids: Vec<Uuid>,
    /// Where they go.
    pub target_folder_id: Uuid,
}

/// Body of `POST /v1/folders/{id}/items/delete` and `POST /v1/items/download`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemIds {
    /// The items (at most 1000).
    #[schema(min_items = 1, max_items = 1000)]
    pub item_ids: Vec<Uuid>,
}

/// Query of `POST /v1/items/download`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// Compress the tar with gzip.
    pub gzip: Option<bool>,
    /// The source objects of re-encoded videos instead of their renditions.
    pub original: Option<bool>,
}

/// Query of item deletes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemDeleteParams {
    /// Delete for good at once instead of moving into the trash (also purges an item already in the trash).
    pub permanent: Option<bool>,
}

/// A multipart failure as the client should hear it.
fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the upload is over the size limit (server.max_upload_bytes)")
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", err.body_text()))
    }
}

/// Reads a short text field of the form.
async fn form_text(mut field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_FORM_FIELD_BYTES {
            return Err(ApiError::bad_request(format!(
                "form field `{name}` is over {MAX_FORM_FIELD_BYTES} bytes"
            )));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("form field `{name}` must be UTF-8 text")))
}

/// Reads and discards what is left of a refused upload (up to the body limit's slack).
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// Upload a file into a folder (multipart, streamed to the managed bucket).
#[utoipa::path(post, path = "/folders/{id}/items", tag = "items", params(("id" = Uuid, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, body = ItemView, description = "created"),
    (status = 200, body = ItemView, description = "`skip`: the existing item; `replace`: the replaced item"),
    (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "title taken (strategy `error`)"),
    (status = 413, body = ErrorBody, description = "over server.max_upload_bytes"),
))]
pub async fn upload_item(
    State(state): State<AppState>,
    Extension(UploadLimit(limit)): Extension<UploadLimit>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(folder_id): IdPath,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<ItemView>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::bad_request(format!(
            "send the upload as multipart/form-data with a `file` part: {}",
            rejection.body_text()
        ))
    })?;
    let items = &state.services.items;
    let mut options = UploadOptions::default();
    let mut staged = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if staged.is_some() => {
                return Err(ApiError::bad_request("give exactly one `file` part per upload"));
            }
            "file" => {
                let file_name = field.file_name().map(str::to_owned);
                let mut received = 0u64;
                let body = field.map(move |chunk| {
                    let chunk = chunk.map_err(|e| {
                        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            std::io::ErrorKind::FileTooLarge
                        } else {
                            std::io::ErrorKind::InvalidData
                        };
                        std::io::Error::new(kind, e.body_text())
                    })?;
                    received += chunk.len() as u64;
                    if received > limit {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::FileTooLarge,
                            format!("the file is over {limit} bytes"),
                        ));
                    }
                    Ok(chunk)
                });
                match items.stage(&caller, folder_id, file_name, Box::pin(body)).await {
                    Ok(done) => staged = Some(done),
                    Err(too_large @ ServiceError::TooLarge(_)) => {
                        drain(&mut multipart).await;
                        return Err(too_large.into());
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            "title" => options.title = Some(form_text(field, "title").await?),
            "client_metadata" => {
                let text = form_text(field, "client_metadata").await?;
                // An empty field is a field left out, as browsers send empty inputs.
                if !text.trim().is_empty() {
                    let metadata: Metadata = serde_json::from_str(&text).map_err(|e| {
                        ApiError::bad_request(format!("form field `client_metadata` must be a JSON object: {e}"))
                    })?;
                    options.client_metadata = Some(metadata);
                }
            }
            "conflict_strategy" => {
                let text = form_text(field, "conflict_strategy").await?;
                options.conflict_strategy = ConflictStrategy::parse(text.trim())
                    .map_err(|e| ApiError::bad_request(format!("form field `conflict_strategy`: {e}")))?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field `{other}`; expected `file`, `title`, `client_metadata` or `conflict_strategy`"
                )));
            }
        }
    }
    let staged = staged.ok_or_else(|| ApiError::bad_request("the form has no `file` part; add the file to upload"))?;
    let (item, outcome) = items.commit(&caller, staged, options).await?;
    let status = match outcome {
        UploadOutcome::Created => StatusCode::CREATED,
        UploadOutcome::Existing | UploadOutcome::Replaced => StatusCode::OK,
    };
    Ok((status, Json(item)))
}

/// List the items of a folder (or of its whole subtree).
#[utoipa::path(get, path = "/folders/{id}/items", tag = "items", params(("id" = Uuid, Path), ItemListParams), responses(
    (status = 200, body = Page<ItemView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn list_items(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(folder_id): IdPath,
    StrictQuery(q): StrictQuery<ItemListParams>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Page<ItemView>>, ApiError> {
    let item_types = ItemType::parse_list(q.item_types.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("query parameter `item_types`: {e}")))?;
    let req = ListItems {
        search: q.search,
        item_types,
        is_tombstone: q.is_tombstone,
        order_by: q.order_by.unwrap_or_default(),
        desc: q.desc.unwrap_or(false),
        page_size: q.page_size,
        page_token: q.page_token,
        recursive: q.recursive.unwrap_or(false),
        starred: q.starred.unwrap_or(false),
        signed_urls: q
            .signed_urls
            .unwrap_or(false)
            .then(|| super::signed::request_base(&headers)),
    };
    Ok(Json(state.services.items.list(&caller, folder_id, req).await?))
}

/// Move items of this folder into another folder, all or none.
#[utoipa::path(post, path = "/folders/{id}/items/move", tag = "items", params(("id" = Uuid, Path)), request_body = MoveItems, responses(
    (status = 200, body = Moved), (status = 400, body = ErrorBody, description = "an item is not directly inside the folder"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a title is taken in the target"),
))]
pub async fn move_items(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(folder_id): IdPath,
    JsonBody(body): JsonBody<MoveItems>,
) -> Result<Json<Moved>, ApiError> {
    let moved = state
        .services
        .items
        .move_items(&caller, folder_id, body.item_ids, body.target_folder_id)
        .await?;
    Ok(Json(moved))
}

/// Delete items of this folder, all or none: into the trash, or for good with `permanent=true`
/// (then their content is removed from the managed bucket).
#[utoipa::path(post, path = "/folders/{id}/items/delete", tag = "items", params(("id" = Uuid, Path), ItemDeleteParams), request_body = ItemIds, responses(
    (status = 200, body = ItemsDeleted), (status = 400, body = ErrorBody, description = "an item is not directly inside the folder"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn delete_items(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ItemDeleteParams>,
    IdPath(folder_id): IdPath,
    JsonBody(body): JsonBody<ItemIds>,
) -> Result<Json<ItemsDeleted>, ApiError> {
    Ok(Json(
        state
            .services
            .items
            .delete_items(&caller, folder_id, body.item_ids, q.permanent.unwrap_or(false))
            .await?,
    ))
}

/// One item.
#[utoipa::path(get, path = "/items/{id}", tag = "items", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ItemView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
) -> Result<Json<ItemView>, ApiError> {
    Ok(Json(state.services.items.get(&caller, id).await?))
}

/// Change an item's title or client metadata.
#[utoipa::path(patch, path = "/items/{id}", tag = "items", params(("id" = Uuid, Path)), request_body = ItemPatch, responses(
    (status = 200, body = ItemView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "title taken"),
))]
pub async fn update_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    JsonBody(patch): JsonBody<ItemPatch>,
) -> Result<Json<ItemView>, ApiError> {
    Ok(Json(state.services.items.update(&caller, id, patch).await?))
}

/// Delete one item: into the trash, or for good with `permanent=true` (then its content is
/// removed from the managed bucket).
#[utoipa::path(delete, path = "/items/{id}", tag = "items", params(("id" = Uuid, Path), ItemDeleteParams), responses(
    (status = 200, body = ItemsDeleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn delete_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ItemDeleteParams>,
    IdPath(id): IdPath,
) -> Result<Json<ItemsDeleted>, ApiError> {
    Ok(Json(
        state
            .services
            .items
            .delete(&caller, id, q.permanent.unwrap_or(false))
            .await?,
    ))
}

/// Bring an item back from the trash: into the folder it was in, or into `target_parent_id`.
#[utoipa::path(post, path = "/items/{id}/restore", tag = "trash", params(("id" = Uuid, Path)), request_body(content = RestoreRequest, description = "optional"), responses(
    (status = 200, body = ItemView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "the title is taken, its folder is in the trash, or it is not in the trash"),
))]
pub async fn restore_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    IdPath(id): IdPath,
    OptionalJsonBody(body): OptionalJsonBody<RestoreRequest>,
) -> Result<Json<ItemView>, ApiError> {
    Ok(Json(
        state.services.items.restore(&caller, id, body.target_parent_id).await?,
    ))
}

/// Download many items as one tar (gzip with `?gzip=true`), streamed as it is built.
#[utoipa::path(post, path = "/items/download", tag = "items", params(DownloadParams), request_body = ItemIds, responses(
    (status = 200, description = "a tar (or tar.gz) with one entry per item, named by title (an image group or DICOM series: a directory of its frames)", content_type = "application/x-tar"),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "names the items not found"),
))]
pub async fn download_items(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<DownloadParams>,
    JsonBody(body): JsonBody<ItemIds>,
) -> Result<Response, ApiError> {
    let gzip = q.gzip.unwrap_or(false);
    let stream = state
        .services
        .items
        .archive(&caller, body.item_ids, gzip, q.original.unwrap_or(false))
        .await?;
    Ok(tar_response(stream, gzip, "items"))
}
