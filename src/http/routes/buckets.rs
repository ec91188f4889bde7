//! `/v1/buckets`: the configured buckets, and a check that one can be listed.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::MANAGED_BUCKET;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::NoQuery;
use crate::services::ServiceError;
use crate::services::access::require_admin;
use crate::services::access::usable_sources;

/// A configured bucket, without secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    /// Its name in the configuration.
    pub name: String,
    /// `file`, `s3`, `gs` or `az`.
    pub kind: String,
    /// Its URL (credentials are never part of it); shown to admins only (`null` for others).
    pub url: Option<String>,
    /// Whether it holds uploads (`managed`) rather than being synced or imported from.
    pub managed: bool,
}

/// The outcome of a bucket check.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketCheck {
    /// The bucket checked.
    pub name: String,
    /// Whether listing it works.
    pub ok: bool,
    /// What went wrong, when it did not.
    pub message: Option<String>,
}

/// The buckets the caller may use: the managed one (uploads) and the configured ones open to
/// them (every one for admins; `buckets.NAME.allow` for others). Only admins see URLs.
#[utoipa::path(get, path = "/buckets", tag = "buckets", responses((status = 200, body = Vec<BucketView>)))]
pub async fn list_buckets(State(state): State<AppState>, Auth(caller): Auth, _: NoQuery) -> Json<Vec<BucketView>> {
    let buckets = &state.services.buckets;
    let url = |url: String| caller.is_admin.then_some(url);
    let managed = BucketView {
        name: MANAGED_BUCKET.into(),
        kind: "file".into(),
        url: url(buckets.managed_url()),
        managed: true,
    };
    let others = usable_sources(buckets, &caller).into_iter().map(|s| BucketView {
        name: s.name().into(),
        kind: s.kind().into(),
        url: url(s.url().into()),
        managed: false,
    });
    Json(std::iter::once(managed).chain(others).collect())
}

/// Check that a bucket can be listed with the configured credentials (admins).
#[utoipa::path(post, path = "/buckets/{name}/check", tag = "buckets", params(("name" = String, Path)), responses(
    (status = 200, body = BucketCheck), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn check_bucket(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    _: NoQuery,
) -> Result<Json<BucketCheck>, ApiError> {
    require_admin(&caller, "check buckets")?;
    let source = state.services.buckets.source(&name).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "no bucket named `{name}` is configured (the managed bucket needs no check)"
        ))
    })?;
    let checked = source.check().await;
    Ok(Json(BucketCheck {
        name,
        ok: checked.is_ok(),
        message: checked.err().map(|e| e.to_string()),
    }))
}
