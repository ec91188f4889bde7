//! Signed URLs: `GET /v1/items/{id}/url` hands one out; `GET /o/{token}` serves the daemon's own
//! (objects in `file://` buckets) to anyone holding one, without an API key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::content::serve;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, NoQuery, StrictQuery};
use crate::services::items::SignedUrl;

/// Query of `GET /v1/items/{id}/url`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignedUrlParams {
    /// How long the URL works, in seconds: 1 to `signed_urls.max_seconds` (default
    /// `signed_urls.default_seconds`, one hour).
    #[param(minimum = 1)]
    pub expires_in: Option<u64>,
    /// For a re-encoded video, the source object instead of the rendition.
    pub original: Option<bool>,
}

/// The address this request reached the daemon at (`http://` and its `Host`), which the
/// daemon's own URLs start with unless `signed_urls.base_url` says otherwise.
pub fn request_base(headers: &HeaderMap) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// A URL that reads the item's content without an API key until it expires: the bucket's own
/// presigned URL (S3, GCS, Azure), or one this daemon serves (`/o/…`) for local buckets. It keeps
/// working until then even if your access is taken away.
#[utoipa::path(get, path = "/items/{id}/url", tag = "items", params(("id" = Uuid, Path), SignedUrlParams), responses(
    (status = 200, body = SignedUrl), (status = 400, body = ErrorBody, description = "`expires_in` out of bounds"),
    (status = 404, body = ErrorBody),
))]
pub async fn item_url(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<SignedUrlParams>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Json<SignedUrl>, ApiError> {
    let base = request_base(&headers);
    let original = q.original.unwrap_or(false);
    let url = state
        .services
        .items
        .signed_url(&caller, id, original, q.expires_in, &base)
        .await?;
    Ok(Json(url))
}

/// The content a signed URL of this daemon grants, as `GET /v1/items/{id}/content` answers it
/// (`ETag`, one `Range`), to anyone holding the URL: no API key. 403 for an expired, altered or
/// foreign URL.
#[utoipa::path(get, path = "/o/{token}", tag = "items", security(()), operation_id = "signed_object", params(("token" = String, Path),
    ("Range" = Option<String>, Header, description = "one range, e.g. `bytes=0-1023`")), responses(
    (status = 200, description = "the whole content", content_type = "*/*"),
    (status = 206, description = "the requested range", content_type = "*/*"),
    (status = 304, description = "`If-None-Match` matches the ETag"),
    (status = 403, body = ErrorBody, description = "expired, altered or not signed here"),
    (status = 404, body = ErrorBody, description = "the content is gone"),
    (status = 416, body = ErrorBody),
))]
pub async fn signed_object_get(
    State(state): State<AppState>,
    _: NoQuery,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let items = &state.services.items;
    let content = items.open_signed(&token).await?;
    serve(items, &content, &headers).await
}

/// The file of a direct upload into a local bucket (`POST /v1/folders/{id}/uploads` answers
/// this URL): exactly the bytes the session announced, no API key. 403 for an expired, altered
/// or foreign URL; 400 for a body of another length.
#[utoipa::path(put, path = "/o/{token}", tag = "items", security(()), params(("token" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses(
    (status = 200, body = Received), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
))]
pub async fn signed_object_put(
    State(state): State<AppState>,
    _: NoQuery,
    Path(token): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Received>, ApiError> {
    let stream = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let written = state.services.items.receive_upload(&token, Box::pin(stream)).await?;
    Ok(Json(Received {
        size: written.size,
        checksum: written.checksum,
    }))
}

/// What the PUT of a direct upload stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Received {
    /// Bytes stored.
    pub size: u64,
    /// Their blake3, lowercase hex.
    pub checksum: String,
}
