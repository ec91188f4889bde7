//! `/v1/trash`: what deletes put in the trash. Restoring is `POST /v1/folders/{id}/restore` and
//! `POST /v1/items/{id}/restore`; purging is `DELETE …?permanent=true`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::StrictQuery;
use crate::services::Page;
use crate::services::trash::TrashEntry;

/// Query of `GET /v1/trash`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrashListParams {
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// List what you deleted from your folders (admins: everything), newest first: each folder with
/// its subtree, or item, one entry, until the sweep purges it.
#[utoipa::path(get, path = "/trash", tag = "trash", params(TrashListParams), responses(
    (status = 200, body = Page<TrashEntry>), (status = 400, body = ErrorBody),
))]
pub async fn list_trash(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<TrashListParams>,
) -> Result<Json<Page<TrashEntry>>, ApiError> {
    Ok(Json(
        state
            .services
            .trash
            .list(&caller, q.page_size, q.page_token.as_deref())
            .await?,
    ))
}
