//! `/v1/webhooks`: receivers told of events by signed POSTs (managers of a folder for its
//! subtree, admins for every folder), and each webhook's deliveries.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::PageParams;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, JsonBody, NoQuery, StrictQuery};
use crate::services::Page;
use crate::services::webhooks::{CreatedWebhook, DeliveryView, NewWebhook, WebhookChange, WebhookView};

/// Make a webhook: `events` of the subtree of `folder_id` (a folder you manage; without it,
/// every folder's: admins) go to `url` as signed POSTs. The answer carries the signing
/// `secret`, shown this once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook, responses(
    (status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody, description = "a URL that is not http(s), or on a private network; no events"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    JsonBody(req): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.services.webhooks.create(&caller, req).await?),
    ))
}

/// The webhooks you manage (admins: all), oldest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", responses((status = 200, body = Vec<WebhookView>)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    Ok(Json(state.services.webhooks.list(&caller).await?))
}

/// One webhook you manage.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)), responses(
    (status = 200, body = WebhookView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(state.services.webhooks.get(&caller, id).await?))
}

/// Change a webhook you manage: its URL, events, description, or `enabled` (re-enabling a
/// webhook disabled by failures forgets them).
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)), request_body = WebhookChange, responses(
    (status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "enabling a webhook that would stop at once: its folder is gone, or its maker may no longer be told"),
))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
    JsonBody(change): JsonBody<WebhookChange>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(state.services.webhooks.update(&caller, id, change).await?))
}

/// Delete a webhook you manage, with its deliveries.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
) -> Result<StatusCode, ApiError> {
    state.services.webhooks.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first, each with every attempt (when, the answer's status or
/// the error, how long it took).
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path), PageParams), responses(
    (status = 200, body = Page<DeliveryView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<PageParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let page = state
        .services
        .webhooks
        .deliveries(&caller, id, q.page_size, q.page_token)
        .await?;
    Ok(Json(page))
}
