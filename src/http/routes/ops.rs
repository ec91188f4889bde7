//! Operational routes outside `/v1`: liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::NoQuery;
use crate::services::ServiceError;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when healthy.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 400, body = ErrorBody, description = "a query parameter was given; this route takes none"),
))]
pub async fn healthz(_: NoQuery) -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process is up and its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 400, body = ErrorBody, description = "a query parameter was given; this route takes none"),
    (status = 503, body = ErrorBody, description = "the database is unreachable"),
))]
pub async fn readyz(State(state): State<AppState>, _: NoQuery) -> Result<Json<Health>, ApiError> {
    state.services.store.ping().await.map_err(ServiceError::Unavailable)?;
    Ok(Json(Health { status: "ok" }))
}
