//! `/v1/audit`: the audit log (admins; a folder's managers for its subtree).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::domain::audit::AuditAction;
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::StrictQuery;
use crate::services::Page;
use crate::services::audit::{AuditEventView, ListAudit};

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// Only this actor's events (a user name).
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events about this folder, the folders below it and their items (needed by managers
    /// who are not admins).
    pub folder_id: Option<Uuid>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The audit log, newest first (admins; with `folder_id`, that folder's managers): who (user and
/// key) made or revoked keys, recorded or promoted users, changed a folder's visibility, granted or
/// took back roles, changed groups, granted buckets, or deleted folders and items for good, and when.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditListParams), responses(
    (status = 200, body = Page<AuditEventView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "no such folder, or one you may not see"),
))]
pub async fn list_audit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<AuditListParams>,
) -> Result<Json<Page<AuditEventView>>, ApiError> {
    let req = ListAudit {
        actor: q.actor,
        action: q.action,
        folder_id: q.folder_id,
        page_size: q.page_size,
        page_token: q.page_token,
    };
    Ok(Json(state.services.audit.list(&caller, req).await?))
}
