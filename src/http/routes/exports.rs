//! `GET /v1/folders/{id}/items/export`: every item of a folder (or its subtree) in one
//! streamed NDJSON or CSV answer.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::content::header_value;
use crate::domain::item::{ItemType, content_disposition};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, StrictQuery};
use crate::services::items::{ExportFormat, ExportItems};

/// Query of `GET /v1/folders/{id}/items/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Items of the whole subtree (the folders below you may read), not only the folder's own.
    pub recursive: Option<bool>,
    /// `ndjson` (default: one JSON object per line, as `GET /v1/items/{id}` answers, plus
    /// `path`) or `csv` (a header line, then a row per item).
    pub format: Option<ExportFormat>,
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    /// Comma-separated types, e.g. `IMAGE,VIDEO`.
    pub item_types: Option<String>,
    /// Only tombstones (`true`) or only live items (`false`).
    pub is_tombstone: Option<bool>,
}

/// Export every item of a folder (or of its subtree) in one streamed answer, from one snapshot
/// of the catalog: folders in path order, each folder's items by title. An answer cut off by a
/// failure part way ends without its last chunk, so a client sees it incomplete.
#[utoipa::path(get, path = "/folders/{id}/items/export", tag = "items", params(("id" = Uuid, Path), ExportParams), responses(
    (status = 200, description = "NDJSON or CSV (as `format` asks), one item per line", content(
        (String = "application/x-ndjson"), (String = "text/csv; charset=utf-8"),
    )),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn export_items(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(folder_id): IdPath,
    StrictQuery(q): StrictQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let item_types = ItemType::parse_list(q.item_types.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("query parameter `item_types`: {e}")))?;
    let format = q.format.unwrap_or_default();
    let req = ExportItems {
        recursive: q.recursive.unwrap_or(false),
        format,
        search: q.search,
        item_types,
        is_tombstone: q.is_tombstone,
    };
    let export = state.services.items.export(&caller, folder_id, req).await?;
    let file = format!("{}.{}", export.folder.name, format.extension());
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
        (
            CONTENT_DISPOSITION,
            header_value(&content_disposition("attachment", &file)),
        ),
    ];
    Ok((headers, Body::from_stream(export.body)).into_response())
}
