//! `GET /metrics` (the Prometheus text format) and the middleware that counts every request by
//! route template, method and status.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::job::JobKind;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::NoQuery;
use crate::services::ServiceError;
use crate::store::{from_micros, jobs};

/// Counts the request once it is answered, under its route template (`unmatched` for none).
pub async fn count_request(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::metrics::http_request(route, method.as_str(), response.status().as_u16(), started.elapsed());
    response
}

/// The process's metrics in the Prometheus text format, for `metrics.token` (`Authorization:
/// Bearer TOKEN`) or an admin's API key.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, content_type = "text/plain", body = String,
        description = "the metrics, in the Prometheus text exposition format 0.0.4"),
    (status = 400, body = ErrorBody, description = "a query parameter was given; this route takes none"),
    (status = 401, body = ErrorBody, description = "no token, or an unknown one"),
    (status = 403, body = ErrorBody, description = "an API key of a user who is not an admin"),
))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap, _: NoQuery) -> Result<Response, ApiError> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ServiceError::Unauthorized(
                "GET /metrics needs `Authorization: Bearer TOKEN`: the configured metrics.token or an admin's API key"
                    .into(),
            )
        })?;
    let by_token = state
        .metrics_token
        .as_deref()
        .is_some_and(|token| constant_time_eq(token.as_bytes(), bearer.as_bytes()));
    if !by_token {
        let caller = state.services.keys.authenticate(bearer).await?;
        crate::services::access::require_admin(&caller, "read the metrics (or give metrics.token)")?;
    }
    record_now(&state).await?;
    let mut response = crate::metrics::recorder().render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Sets the gauges read from the database and the pool: jobs waiting and running per kind, the
/// age of the oldest waiting one, the pool's connections.
async fn record_now(state: &AppState) -> Result<(), ServiceError> {
    let store = &state.services.store;
    let counts = {
        let mut conn = store.read().await?;
        jobs::active_counts(&mut conn).await?
    };
    let now = time::OffsetDateTime::now_utc();
    for kind in JobKind::ALL {
        let active = counts.get(&kind).copied().unwrap_or_default();
        let oldest = active
            .oldest_pending_at
            .map_or(Duration::ZERO, |since| (now - from_micros(since)).unsigned_abs());
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        crate::metrics::jobs_now(kind.as_str(), count(active.pending), count(active.running), oldest);
    }
    let (in_use, idle) = store.pool_connections();
    crate::metrics::db_connections(in_use, idle);
    Ok(())
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
