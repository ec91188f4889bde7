//! `/v1/views/…` and the stars on folders and items: what each user keeps coming back to.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::caller::Caller;
use crate::domain::folder::FolderOrder;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, NoQuery, StrictQuery};
use crate::services::Page;
use crate::services::folders::{FolderView, ListFolders, Shelf};
use crate::services::items::ItemView;

/// Query of `GET /v1/views/{home,shared,starred}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShelfParams {
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
}

/// Lists `shelf` with the paging and order of folder lists.
async fn list_shelf(
    state: &AppState,
    caller: &Caller,
    shelf: Shelf,
    q: ShelfParams,
) -> Result<Json<Page<FolderView>>, ApiError> {
    let req = ListFolders {
        parent_id: None,
        search: q.search,
        order_by: q.order_by.unwrap_or_default(),
        desc: q.desc.unwrap_or(false),
        page_size: q.page_size,
        page_token: q.page_token,
        recursive: false,
        owner: None,
        visibility: None,
        starred: false,
        shelf: Some(shelf),
    };
    Ok(Json(state.services.folders.list(caller, req).await?))
}

/// Your own top-level folders.
#[utoipa::path(get, path = "/views/home", tag = "views", params(ShelfParams), responses(
    (status = 200, body = Page<FolderView>), (status = 400, body = ErrorBody),
))]
pub async fn home_view(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ShelfParams>,
) -> Result<Json<Page<FolderView>>, ApiError> {
    list_shelf(&state, &caller, Shelf::Home, q).await
}

/// The folders shared with you (granted to you or to a group you are in) that are not yours.
#[utoipa::path(get, path = "/views/shared", tag = "views", params(ShelfParams), responses(
    (status = 200, body = Page<FolderView>), (status = 400, body = ErrorBody),
))]
pub async fn shared_view(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ShelfParams>,
) -> Result<Json<Page<FolderView>>, ApiError> {
    list_shelf(&state, &caller, Shelf::Shared, q).await
}

/// The folders you starred, wherever they are (starred items: `GET /v1/folders/{id}/items?starred=true`).
#[utoipa::path(get, path = "/views/starred", tag = "views", params(ShelfParams), responses(
    (status = 200, body = Page<FolderView>), (status = 400, body = ErrorBody),
))]
pub async fn starred_view(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ShelfParams>,
) -> Result<Json<Page<FolderView>>, ApiError> {
    list_shelf(&state, &caller, Shelf::Starred, q).await
}

/// Star a folder (anyone who sees it); it shows in `GET /v1/views/starred`.
#[utoipa::path(put, path = "/folders/{id}/star", tag = "views", params(("id" = Uuid, Path)), responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn star_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<FolderView>, ApiError> {
    Ok(Json(state.services.folders.star(&caller, id, true).await?))
}

/// Take your star off a folder.
#[utoipa::path(delete, path = "/folders/{id}/star", tag = "views", params(("id" = Uuid, Path)), responses(
    (status = 200, body = FolderView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn unstar_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<FolderView>, ApiError> {
    Ok(Json(state.services.folders.star(&caller, id, false).await?))
}

/// Star an item (anyone who sees it); `GET /v1/folders/{id}/items?starred=true` lists them.
#[utoipa::path(put, path = "/items/{id}/star", tag = "views", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ItemView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn star_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<ItemView>, ApiError> {
    Ok(Json(state.services.items.star(&caller, id, true).await?))
}

/// Take your star off an item.
#[utoipa::path(delete, path = "/items/{id}/star", tag = "views", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ItemView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn unstar_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<ItemView>, ApiError> {
    Ok(Json(state.services.items.star(&caller, id, false).await?))
}
