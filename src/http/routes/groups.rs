//! `/v1/groups`: groups of users that folder and bucket grants can be given to.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, StrictQuery, parse_id};
use crate::services::Page;
use crate::services::groups::{GroupView, MemberChange, NewGroup};

/// Query of `GET /v1/groups`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupListParams {
    /// Only the groups you are in.
    pub mine: Option<bool>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// Make a group; you become its first manager.
#[utoipa::path(post, path = "/groups", tag = "groups", request_body = NewGroup, responses(
    (status = 201, body = GroupView), (status = 400, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "the name is taken"),
))]
pub async fn create_group(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.services.groups.create(&caller, req).await?),
    ))
}

/// List the groups by name (every group, so that folders can be shared with them; `mine=true`:
/// yours), with your standing in each.
#[utoipa::path(get, path = "/groups", tag = "groups", params(GroupListParams), responses(
    (status = 200, body = Page<GroupView>), (status = 400, body = ErrorBody),
))]
pub async fn list_groups(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<GroupListParams>,
) -> Result<Json<Page<GroupView>>, ApiError> {
    let groups = &state.services.groups;
    let page = groups
        .list(&caller, q.mine.unwrap_or(false), q.page_size, q.page_token.as_deref())
        .await?;
    Ok(Json(page))
}

/// One group; its members are shown to its members and admins.
#[utoipa::path(get, path = "/groups/{id}", tag = "groups", params(("id" = Uuid, Path)), responses(
    (status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_group(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(state.services.groups.get(&caller, id).await?))
}

/// Delete a group with its memberships and every grant given to it (its managers, admins).
#[utoipa::path(delete, path = "/groups/{id}", tag = "groups", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn delete_group(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<StatusCode, ApiError> {
    state.services.groups.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to a group (`{}` or `{"role": "member"}`), or change their standing
/// (`{"role": "manager"}`) (its managers, admins).
#[utoipa::path(put, path = "/groups/{id}/members/{user}", tag = "groups",
    params(("id" = Uuid, Path), ("user" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")),
    request_body = MemberChange, responses(
    (status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such group or user"),
    (status = 409, body = ErrorBody, description = "would leave the group without a manager"),
))]
pub async fn put_member(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, user)): Path<(String, String)>,
    _: NoQuery,
    JsonBody(change): JsonBody<MemberChange>,
) -> Result<Json<GroupView>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(
        state.services.groups.put_member(&caller, id, &user, change).await?,
    ))
}

/// Remove a user from a group (its managers, admins), or leave it yourself.
#[utoipa::path(delete, path = "/groups/{id}/members/{user}", tag = "groups",
    params(("id" = Uuid, Path), ("user" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "the last manager cannot leave"),
))]
pub async fn remove_member(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, user)): Path<(String, String)>,
    _: NoQuery,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    state.services.groups.remove_member(&caller, id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
