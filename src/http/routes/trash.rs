//! `/v1/trash`: what deletes put in the trash. Restoring is `POST /v1/folders/{id}/restore` and
//! `POST /v1/items/{id}/restore`; purging is `DELETE …?permanent=true`.

use axum::Json;
use axum::extract::State;

use super::PageParams;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::StrictQuery;
use crate::services::Page;
use crate::services::trash::TrashEntry;

/// List what you deleted from your folders (admins: everything), newest first: each folder with
/// its subtree, or item, one entry, until the sweep purges it.
#[utoipa::path(get, path = "/trash", tag = "trash", params(PageParams), responses(
    (status = 200, body = Page<TrashEntry>), (status = 400, body = ErrorBody),
))]
pub async fn list_trash(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<PageParams>,
) -> Result<Json<Page<TrashEntry>>, ApiError> {
    Ok(Json(
        state
            .services
            .trash
            .list(&caller, q.page_size, q.page_token.as_deref())
            .await?,
    ))
}
