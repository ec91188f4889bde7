//! `ApiError`: every failure the API returns, as `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::services::ServiceError;
use crate::store::StoreError;
use crate::telemetry::ErrorChain;

/// An error response: a status, a stable code and a message that says what to change.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request's id (also in the `X-Request-Id` header and the server's log lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// A 413 with `message`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
    }

    /// A 404 for a route that does not exist.
    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(m) => Self::bad_request(m),
            ServiceError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", m),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", m),
            ServiceError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "CONFLICT", m),
            ServiceError::Stale(m) => Self::new(StatusCode::CONFLICT, "STALE", m),
            ServiceError::TooLarge(m) => Self::too_large(m),
            ServiceError::Unavailable(error) => unavailable(&error),
            ServiceError::Store(StoreError::NotFound) => Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"),
            ServiceError::Store(error @ StoreError::Conflict(_)) => Self::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("the change clashes with existing data: {}", error.database_message()),
            ),
            ServiceError::Store(StoreError::QuotaExceeded(refusal)) => {
                let reader = super::reader::current();
                let told = refusal.told_to(reader.as_ref().map(|(name, admin)| (name.as_str(), *admin)));
                Self::new(StatusCode::CONFLICT, "QUOTA_EXCEEDED", told)
            }
            ServiceError::Store(error) if error.is_unavailable() => unavailable(&error),
            error @ (ServiceError::Store(_) | ServiceError::Failed { .. } | ServiceError::Internal(_)) => {
                tracing::error!(error = %ErrorChain(&error), "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "internal error; the server log has the details",
                )
            }
        }
    }
}

/// The 503 for a database that is unavailable or busy.
fn unavailable(error: &StoreError) -> ApiError {
    tracing::warn!(error = %ErrorChain(error), "database unavailable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the database is unavailable or busy; retry shortly",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                request_id: super::request_id::current(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}
