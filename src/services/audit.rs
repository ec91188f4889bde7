//! The audit log: use cases record their events with [`record`] inside the transaction of the
//! change; admins list them; events older than `audit.retention_seconds` are removed hourly
//! ([`AuditRetention`]).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{folder_for, require_admin};
use super::{Page, ServiceError, decode_number_position, field, page_token, remove_older_than};
use crate::background::Periodic;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::page::{SortKey, page_size};
use crate::store::audit::{self as rows, AuditQuery};
use crate::store::folders as folder_rows;
use crate::store::{Db, Store, StoreError, to_micros};

/// How often old events are removed.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Events removed per transaction.
const RETENTION_BATCH: i64 = 5000;
/// The one order events are listed in (the order part of their page tokens).
const AUDIT_ORDER: &str = "at:desc";

/// Records `event` on `db`, inside the transaction of the change it describes.
pub async fn record(db: &mut dyn Db, event: &AuditEvent) -> Result<(), StoreError> {
    rows::insert(db, event).await
}

/// An audit event as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEventView {
    /// The event's id.
    pub id: Uuid,
    /// When it happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it: a user name, or `stowage keys create` for the direct-database command.
    pub actor: String,
    /// The key the actor used, when there was one.
    pub key_id: Option<Uuid>,
    /// What was done.
    pub action: AuditAction,
    /// What kind of thing it was done to: `user`, `key`, `folder` or `item`.
    pub target_kind: String,
    /// Which one: a user name, or a key, folder or item id.
    pub target_id: String,
    /// The folder it concerns, when any.
    pub folder_id: Option<Uuid>,
    /// What else is worth knowing (old and new visibility, a key's user and scope, a deleted
    /// folder's path and counts…).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id,
            at: event.at,
            actor: event.actor,
            key_id: event.key_id,
            action: event.action,
            target_kind: event.action.target_kind().to_owned(),
            target_id: event.target_id,
            folder_id: event.folder_id,
            detail: event.detail,
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListAudit {
    /// Only this actor's events.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events about this folder.
    pub folder_id: Option<Uuid>,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
}

/// Audit log use cases.
#[derive(Clone)]
pub struct AuditService {
    store: Store,
    retention: Duration,
}

impl AuditService {
    /// The log in `store`, keeping events for `retention`.
    pub fn new(store: Store, retention: Duration) -> Self {
        Self { store, retention }
    }

    /// One page of events, newest first: admins read them all; a folder's managers read the
    /// events about it and the folders below it (`folder_id`).
    pub async fn list(&self, caller: &Caller, req: ListAudit) -> Result<Page<AuditEventView>, ServiceError> {
        if req.folder_id.is_none() {
            require_admin(
                caller,
                "read the whole audit log; managers of a folder give its folder_id",
            )?;
        }
        let limit = page_size(req.page_size).map_err(field("page_size"))?;
        let after = req
            .page_token
            .as_deref()
            .map(|token| decode_number_position(token, AUDIT_ORDER))
            .transpose()?;
        let mut conn = self.store.read().await?;
        let subtree = match req.folder_id {
            // A purged folder's events stay readable by admins, by its id.
            Some(id) if caller.is_admin => folder_rows::by_id(&mut conn, id).await?.map(|r| r.folder.path),
            Some(id) => Some(folder_for(&mut conn, caller, id, Role::Manager).await?.path),
            None => None,
        };
        let query = AuditQuery {
            actor: req.actor,
            action: req.action,
            folder_id: req.folder_id,
            subtree,
            after,
            limit: limit + 1,
        };
        let events = rows::list(&mut conn, &query).await?;
        let token_of = |last: &AuditEvent| page_token(AUDIT_ORDER, &SortKey::Int(to_micros(last.at)), last.id);
        Ok(Page::of(events, limit, token_of, AuditEventView::from))
    }

    /// Removes the events older than the retention, a batch per transaction; answers how many.
    pub async fn remove_expired(&self) -> Result<u64, StoreError> {
        remove_older_than(&self.store, self.retention, RETENTION_BATCH, |db, before, limit| {
            Box::pin(rows::delete_before(db, before, limit))
        })
        .await
    }
}

/// The hourly removal of old audit events, as a background loop (see
/// [`crate::background::every`]).
pub struct AuditRetention(pub AuditService);

impl Periodic for AuditRetention {
    async fn round(&mut self) {
        match self.0.remove_expired().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed audit events past their retention"),
            Err(error) => tracing::warn!(%error, "could not remove old audit events; trying again later"),
        }
    }
}
