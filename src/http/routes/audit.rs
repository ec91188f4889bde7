//! `/v1/audit`: the audit log (admins).

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
    /// Only events about this folder (and the items in it).
    pub folder_id: Option<Uuid>,
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The audit log, newest first (admins): who (user and key) made or revoked keys, recorded or
/// promoted users, changed a folder's visibility, or deleted folders and items for good, and when.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditListParams), responses(
    (status = 200, body = Page<AuditEventView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
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
