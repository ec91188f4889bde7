//! `/v1/users`: who may hold keys (admins record and list them), and `/v1/users/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::PageParams;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{JsonBody, NoQuery, StrictQuery};
use crate::services::Page;
use crate::services::users::{Me, NewUser, UserView};

/// Record a user (admins). Give them a key with `POST /v1/keys` and `"user"`.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser, responses(
    (status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "the name is taken"),
))]
pub async fn create_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.services.users.create(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// List the users in name order (admins).
#[utoipa::path(get, path = "/users", tag = "users", params(PageParams), responses(
    (status = 200, body = Page<UserView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
))]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<PageParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    Ok(Json(
        state
            .services
            .users
            .list(&caller, q.page_size, q.page_token.as_deref())
            .await?,
    ))
}

/// Who you are: your user, and the key this request came with.
#[utoipa::path(get, path = "/users/me", tag = "users", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, Auth(caller): Auth, _: NoQuery) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.services.users.me(&caller).await?))
}
