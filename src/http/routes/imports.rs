//! Imports of objects already in buckets: `POST /v1/folders/{id}/imports` (a spec, queued as an
//! IMPORT job), `GET /v1/jobs/{id}/units` (what each unit became) and
//! `POST /v1/folders/{id}/references` (one object, registered at once).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, IdempotencyKey, JsonBody, NoQuery, SpecBody, StrictQuery};
use crate::http::routes::jobs::submitted;
use crate::services::Page;
use crate::services::imports::{ListUnits, NewReference, UnitView};
use crate::services::items::ItemView;
use crate::services::jobs::JobView;

/// Query of `POST /v1/folders/{id}/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// A failed unit does not fail the job: it ends DONE and lists the failures.
    pub ignore_errors: Option<bool>,
    /// Read the spec from this object (inside a configured bucket) instead of the body.
    pub spec_object_url: Option<String>,
}

/// The body form that names a spec file instead of holding the spec.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecReference {
    /// The spec file's URL, inside a configured bucket.
    pub spec_object_url: String,
}

/// Query of `GET /v1/jobs/{id}/units`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnitListParams {
    /// Only units in this state: `pending`, `created`, `skipped`, `updated` or `failed`.
    pub state: Option<String>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The import spec, as documented in README.md (sections `videos`, `images`, `audio`, `text`,
/// `pdf`, `nifti`, `image_groups`, `dicom_series`; flags `skip_duplicate_urls`,
/// `upsert_metadata`), or `{"spec_object_url": …}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct SpecDocument(serde_json::Value);

/// Import the objects a spec lists into a folder: checks the whole spec (400 names the JSON path
/// of the first problem, and nothing is stored), then queues an IMPORT job (202). A repeated
/// Idempotency-Key returns the job it made (200).
#[utoipa::path(post, path = "/folders/{id}/imports", tag = "imports", params(("id" = uuid::Uuid, Path), ImportQuery,
    ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "same key from the same user: the same job")),
    request_body = SpecDocument, responses(
        (status = 202, body = JobView), (status = 200, body = JobView, description = "the job of an earlier submission with this Idempotency-Key"),
        (status = 400, body = ErrorBody, description = "malformed spec; the message starts with the JSON path of the problem"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the folder mirrors a bucket"),
        (status = 413, body = ErrorBody, description = "over import.max_spec_bytes"),
    ))]
pub async fn import_into_folder(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<ImportQuery>,
    IdempotencyKey(key): IdempotencyKey,
    SpecBody(body): SpecBody,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let imports = &state.services.imports;
    let named = match q.spec_object_url {
        Some(url) if body.is_empty() => Some(url),
        Some(_) => {
            return Err(ApiError::bad_request(
                "give the spec either as the body or as spec_object_url, not both",
            ));
        }
        // A small body may be `{"spec_object_url": …}` rather than a spec.
        None if body.len() <= 64 * 1024 => serde_json::from_slice::<SpecReference>(&body)
            .ok()
            .map(|r| r.spec_object_url),
        None => None,
    };
    let spec = match &named {
        Some(url) => imports.fetch_spec(&caller, url).await?,
        None if body.is_empty() => {
            return Err(ApiError::bad_request(
                "the body must be an import spec (a JSON object), or give spec_object_url",
            ));
        }
        None => body,
    };
    let job = imports
        .submit(&caller, id, spec, named, q.ignore_errors.unwrap_or(false), key)
        .await?;
    submitted(&state, &caller, job).await
}

/// What each unit of an import became, in spec order: created, skipped, updated (with the item)
/// or failed (with the error and what to do), or still pending.
#[utoipa::path(get, path = "/jobs/{id}/units", tag = "imports", params(("id" = uuid::Uuid, Path), UnitListParams), responses(
    (status = 200, body = Page<UnitView>), (status = 400, body = ErrorBody, description = "not an IMPORT job, or a bad parameter"),
    (status = 404, body = ErrorBody),
))]
pub async fn list_units(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    StrictQuery(q): StrictQuery<UnitListParams>,
) -> Result<Json<Page<UnitView>>, ApiError> {
    let req = ListUnits {
        state: q.state,
        page_size: q.page_size,
        page_token: q.page_token,
    };
    Ok(Json(state.services.imports.units(&caller, id, req).await?))
}

/// Register one object of a configured bucket as an item, now (no job): it is looked up, typed
/// and probed like an import unit. A title taken in the folder is 409.
#[utoipa::path(post, path = "/folders/{id}/references", tag = "imports", params(("id" = uuid::Uuid, Path)),
    request_body = NewReference, responses(
        (status = 201, body = ItemView),
        (status = 400, body = ErrorBody, description = "bad URL, object missing or outside every configured bucket"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "title taken, or the folder mirrors a bucket"),
    ))]
pub async fn add_reference(
    State(state): State<AppState>,
    Auth(caller): Auth,
    IdPath(id): IdPath,
    _: NoQuery,
    JsonBody(req): JsonBody<NewReference>,
) -> Result<(StatusCode, Json<ItemView>), ApiError> {
    let item = state.services.imports.reference(&caller, id, req).await?;
    Ok((StatusCode::CREATED, Json(item)))
}
