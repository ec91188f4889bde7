//! Bearer-key authentication for every `/v1` route.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use crate::domain::caller::Caller;
use crate::services::ServiceError;
use crate::services::access::require_write_scope;

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
    if !only_reads(&req) {
        require_write_scope(&caller)?;
    }
    let reader = (caller.name.clone(), caller.is_admin);
    req.extensions_mut().insert(caller);
    Ok(super::reader::answering(reader, next.run(req)).await)
}

/// The routes that take a POST but only read: a tar of items, a bucket check.
const READING_POSTS: [&str; 2] = ["/v1/items/download", "/v1/buckets/{name}/check"];

/// Whether `req` only reads (so a key of scope `read` may make it).
fn only_reads(req: &Request) -> bool {
    match *req.method() {
        Method::GET | Method::HEAD => true,
        Method::POST => req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|route| READING_POSTS.contains(&route.as_str())),
        _ => false,
    }
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
