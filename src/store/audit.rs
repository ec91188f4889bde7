//! Audit event rows: written in the transaction of the change they record, listed newest first,
//! removed once older than the retention.

use uuid::Uuid;

use super::clauses::push_subtree;
use super::rows::{corrupt, parse_id};
use super::sql::{Sql, Value, push_page};
use super::{Db, StoreError, from_micros, to_micros};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::folder::FolderPath;
use crate::domain::page::SortKey;

/// Records `event`.
pub async fn insert(db: &mut dyn Db, event: &AuditEvent) -> Result<(), StoreError> {
    let mut sql =
        Sql::new("INSERT INTO audit_event (id, at, actor, key_id, action, target_id, folder_id, detail) VALUES (");
    sql.bind(event.id.to_string())
        .push(", ")
        .bind(to_micros(event.at))
        .push(", ")
        .bind(event.actor.clone())
        .push(", ")
        .bind_value(Value::Text(event.key_id.map(|k| k.to_string())))
        .push(", ")
        .bind(event.action.as_str().to_owned())
        .push(", ")
        .bind(event.target_id.clone())
        .push(", ")
        .bind_value(Value::Text(event.folder_id.map(|f| f.to_string())))
        .push(", ")
        .bind(event.detail.to_string())
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events about this folder (and, with `subtree`, the folders below it).
    pub folder_id: Option<Uuid>,
    /// With `folder_id`: the folder's path, so events about the folders below it count too.
    pub subtree: Option<FolderPath>,
    /// After this position (time in microseconds, id), newest first.
    pub after: Option<(i64, Uuid)>,
    /// At most this many.
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    at: i64,
    actor: String,
    key_id: Option<String>,
    action: String,
    target_id: Option<String>,
    folder_id: Option<String>,
    detail: String,
}

impl TryFrom<EventRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: parse_id(&row.id)?,
            at: from_micros(row.at),
            actor: row.actor,
            key_id: row.key_id.as_deref().map(parse_id).transpose()?,
            action: AuditAction::parse(&row.action).map_err(|e| corrupt("audit_event.action", e))?,
            target_id: row.target_id.unwrap_or_default(),
            folder_id: row.folder_id.as_deref().map(parse_id).transpose()?,
            detail: serde_json::from_str(&row.detail).map_err(|e| corrupt("audit_event.detail", e))?,
        })
    }
}

/// One page of events, newest first.
pub async fn list(db: &mut dyn Db, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
    let mut sql =
        Sql::new("SELECT id, at, actor, key_id, action, target_id, folder_id, detail FROM audit_event WHERE 1 = 1");
    if let Some(actor) = &query.actor {
        sql.push(" AND actor = ").bind(actor.clone());
    }
    if let Some(action) = query.action {
        sql.push(" AND action = ").bind(action.as_str().to_owned());
    }
    if let Some(folder) = query.folder_id {
        sql.push(" AND (folder_id = ").bind(folder.to_string());
        if let Some(path) = &query.subtree {
            sql.push(" OR folder_id IN (SELECT f.id FROM folder f WHERE ");
            push_subtree(&mut sql, "f.path", path.as_str(), false);
            sql.push(")");
        }
        sql.push(")");
    }
    let after = query.after.map(|(at, id)| (SortKey::Int(at), id));
    push_page(&mut sql, "at", "id", true, after.as_ref(), query.limit);
    sql.build_as::<EventRow>()
        .fetch_all(db.conn())
        .await?
        .into_iter()
        .map(AuditEvent::try_from)
        .collect()
}

/// Removes up to `limit` events older than `before` (microseconds); answers how many.
pub async fn delete_before(db: &mut dyn Db, before: i64, limit: i64) -> Result<u64, StoreError> {
    let mut sql = Sql::new("DELETE FROM audit_event WHERE id IN (SELECT id FROM audit_event WHERE at < ");
    sql.bind(before)
        .push(" ORDER BY at LIMIT ")
        .bind(limit)
        .push(db.dialect().skip_locked())
        .push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}
