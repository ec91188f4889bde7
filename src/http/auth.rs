//! Bearer-key authentication for every `/v1` route.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use crate::domain::caller::Caller;
use crate::services::ServiceError;

/// Checks `Authorization: Bearer KEY` and records the caller for the handlers.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ServiceError::Unauthorized("missing `Authorization: Bearer KEY` header".into()))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::Unauthorized("the Authorization header must be `Bearer KEY`".into()))?;
    let caller = state.services.keys.authenticate(key).await?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The authenticated caller of a `/v1` handler.
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| ServiceError::Unauthorized("missing `Authorization: Bearer KEY` header".into()).into())
    }
}
