//! `/v1/keys`: make a key (yours; admins for anyone), list your keys, revoke one at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, StrictQuery};
use crate::services::Page;
use crate::services::keys::{CreatedKey, KeyView, NewKeyRequest};

/// Query of `GET /v1/keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyListParams {
    /// Whose keys (admins); yours when absent.
    pub user: Option<String>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// Make an API key, shown once in the answer: for yourself, or (admins) for `user`.
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = NewKeyRequest, responses(
    (status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such user"),
))]
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let key = state.services.keys.create(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// List your keys (admins: `user`'s), newest first, without their secrets; revoked keys are gone.
#[utoipa::path(get, path = "/keys", tag = "keys", params(KeyListParams), responses(
    (status = 200, body = Page<KeyView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such user"),
))]
pub async fn list_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<KeyListParams>,
) -> Result<Json<Page<KeyView>>, ApiError> {
    let keys = &state.services.keys;
    Ok(Json(
        keys.list(&caller, q.user.as_deref(), q.page_size, q.page_token.as_deref())
            .await?,
    ))
}

/// Revoke a key at once: the next request with it is 401, on every server of the deployment.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", params(("id" = Uuid, Path)), responses(
    (status = 204, description = "revoked"), (status = 404, body = ErrorBody),
))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<StatusCode, ApiError> {
    state.services.keys.revoke(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
