//! The HTTP API: the axum router, its OpenAPI description, and serving it until shutdown.

pub mod auth;
pub mod contract;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod reader;
pub mod request_id;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::services::Services;
use error::ApiError;
use routes::{
    audit, buckets, content, exports, folders, grants, groups, imports, items, jobs, keys, ops, queues, quotas, signed,
    trash, uploads, users, views, webhooks,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases, shared: every request clones the state, and a deep copy of every service
    /// (with its maps of buckets) was 3% of a list request's CPU.
    pub services: Arc<Services>,
    /// `metrics.token`: besides admins' keys, what may read `GET /metrics`.
    pub metrics_token: Option<Arc<str>>,
}

/// Builds the whole router: `/v1` behind bearer keys, operational routes and `/openapi.json`.
/// JSON bodies may have up to `max_body_bytes`, uploads up to `max_upload_bytes`.
pub fn router(state: AppState, max_body_bytes: usize, max_upload_bytes: usize) -> Router {
    let (router, mut openapi) = api(state.clone(), max_body_bytes, max_upload_bytes).split_for_parts();
    contract::complete(&mut openapi);
    let openapi = Arc::new(openapi);
    router
        .route(
            "/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(metrics::count_request))
        .layer(
            // One line per request at info: method, path, status and latency; every line of the
            // request carries its id.
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let id = req.headers().get(&request_id::HEADER).and_then(|v| v.to_str().ok());
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        uri = %req.uri(),
                        request_id = id.unwrap_or_default(),
                    )
                })
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        // Outermost: the id exists before the request's span is made.
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// The router of `metrics.listen`: `GET /metrics` (same access as on the API) and `/healthz`,
/// for processes that serve no API (`stowage worker`) or to keep scrapes off the API's port.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(ops::healthz))
        .fallback(no_route)
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// The OpenAPI description of every route.
pub fn openapi(state: AppState) -> OpenApi {
    let mut doc = api(state, usize::MAX, usize::MAX).into_openapi();
    contract::complete(&mut doc);
    doc
}

fn api(state: AppState, max_body_bytes: usize, max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    let max_spec_bytes = usize::try_from(state.services.imports.max_spec_bytes()).unwrap_or(usize::MAX);
    let specs = OpenApiRouter::new()
        .routes(routes!(imports::import_into_folder))
        .layer(DefaultBodyLimit::max(max_spec_bytes));
    // The upload route's own limit is the inner layer, so it wins over the JSON limit below. The
    // handler enforces `max_upload_bytes` on the file itself; the body limit leaves room to read
    // (and discard) a little past it, so the client hears the 413 instead of a reset connection.
    let uploads = OpenApiRouter::new()
        .routes(routes!(items::upload_item, items::list_items))
        .routes(routes!(uploads::start_upload))
        .layer(DefaultBodyLimit::max(
            max_upload_bytes.saturating_add(items::UPLOAD_DRAIN_BYTES),
        ))
        .layer(Extension(items::UploadLimit(max_upload_bytes as u64)));
    let v1 = OpenApiRouter::new()
        .routes(routes!(folders::create_folder, folders::list_folders))
        .routes(routes!(
            folders::get_folder,
            folders::update_folder,
            folders::delete_folder
        ))
        .routes(routes!(folders::move_folder))
        .routes(routes!(folders::folder_summary))
        .routes(routes!(folders::restore_folder))
        .merge(uploads)
        .merge(specs)
        .routes(routes!(imports::add_reference))
        .routes(routes!(imports::list_units))
        .routes(routes!(items::move_items))
        .routes(routes!(items::delete_items))
        .routes(routes!(items::get_item, items::update_item, items::delete_item))
        .routes(routes!(content::item_content))
        .routes(routes!(signed::item_url))
        .routes(routes!(uploads::complete_upload))
        .routes(routes!(uploads::abort_upload))
        .routes(routes!(items::download_items))
        .routes(routes!(exports::export_items))
        .routes(routes!(folders::sync_folder))
        .routes(routes!(buckets::list_buckets))
        .routes(routes!(buckets::check_bucket))
        .routes(routes!(items::restore_item))
        .routes(routes!(trash::list_trash))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::bulk_jobs))
        .routes(routes!(jobs::submit_noop))
        .routes(routes!(jobs::submit_reencode))
        .routes(routes!(jobs::submit_expiry))
        .routes(routes!(queues::list_queues))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::webhook_deliveries))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::me))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(audit::list_audit))
        .routes(routes!(groups::create_group, groups::list_groups))
        .routes(routes!(groups::get_group, groups::delete_group))
        .routes(routes!(groups::put_member, groups::remove_member))
        .routes(routes!(
            grants::folder_grants,
            grants::grant_folder,
            grants::revoke_folder
        ))
        .routes(routes!(
            grants::bucket_grants,
            grants::grant_bucket,
            grants::revoke_bucket
        ))
        .routes(routes!(
            quotas::folder_quota,
            quotas::set_folder_quota,
            quotas::remove_folder_quota
        ))
        .routes(routes!(quotas::set_user_quota, quotas::remove_user_quota))
        .routes(routes!(quotas::usage))
        .routes(routes!(quotas::recount))
        .routes(routes!(views::star_folder, views::unstar_folder))
        .routes(routes!(views::star_item, views::unstar_item))
        .routes(routes!(views::home_view))
        .routes(routes!(views::shared_view))
        .routes(routes!(views::starred_view))
        .route_layer(middleware::from_fn_with_state(state, auth::require_key))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    let mut doc = OpenApi::builder()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("stowage")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Folders and items over files in buckets, kept in sync, with durable jobs.",
                ))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    OpenApiRouter::with_openapi(doc)
        .nest("/v1", v1)
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(signed::signed_object_get, signed::signed_object_put))
        .routes(routes!(metrics::metrics))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(format!("no route for {method} {}; see /openapi.json", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{} does not accept {method}; see /openapi.json", uri.path()),
    )
}

/// Serves `router` on `listener` until `shutdown` fires, then gives requests in flight up to
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    // Through `into_make_service`, each connection shares the router. Handed the router
    // itself, axum gives every connection its own deep copy of every route (`with_state` on a
    // router it cannot unwrap): about 4.5 MiB per open connection with this many routes.
    let server =
        axum::serve(listener, router.into_make_service()).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still in flight after the shutdown grace period; closing");
            Ok(())
        }
    }
}
