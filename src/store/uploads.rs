//! Direct upload sessions (`upload_session`): a file on its way into the managed bucket through
//! a signed URL, and what the item it becomes will be called.

use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{corrupt, parse_id};
use super::sql::Sql;
use super::{Db, StoreError, from_micros, to_micros};
use crate::domain::item::ConflictStrategy;

/// An open direct upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadSession {
    /// Its id.
    pub id: Uuid,
    /// The folder the item goes into.
    pub folder_id: Uuid,
    /// Who started it (only they, or an admin, complete or abort it).
    pub user_name: String,
    /// The item's title.
    pub title: String,
    /// The bytes the file must have.
    pub size: i64,
    /// What completing does when the title is taken.
    pub conflict_strategy: ConflictStrategy,
    /// The client's JSON object for the item, as text.
    pub client_metadata: Option<String>,
    /// The managed object the file is PUT to.
    pub object_key: String,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it (and its URL) stops working.
    pub expires_at: OffsetDateTime,
    /// How the file goes in parts; `None` when it goes in one PUT.
    pub parts: Option<SessionParts>,
}

/// A session's multipart upload.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionParts {
    /// The store's upload id (empty on Azure).
    pub upload_id: String,
    /// The bytes of every part but the last, which has the rest.
    pub part_bytes: i64,
}

const COLUMNS: &str = "id, folder_id, user_name, title, size, conflict_strategy, client_metadata, object_key, created_at, expires_at, upload_id, part_bytes";

type Row = (
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
);

fn from_row(row: Row) -> Result<UploadSession, StoreError> {
    let (
        id,
        folder_id,
        user_name,
        title,
        size,
        strategy,
        client_metadata,
        object_key,
        created_at,
        expires_at,
        upload_id,
        part_bytes,
    ) = row;
    Ok(UploadSession {
        id: parse_id(&id)?,
        folder_id: parse_id(&folder_id)?,
        user_name,
        title,
        size,
        conflict_strategy: ConflictStrategy::parse(&strategy)
            .map_err(|e| corrupt("upload_session.conflict_strategy", e))?,
        client_metadata,
        object_key,
        created_at: from_micros(created_at),
        expires_at: from_micros(expires_at),
        parts: upload_id
            .zip(part_bytes)
            .map(|(upload_id, part_bytes)| SessionParts { upload_id, part_bytes }),
    })
}

/// Records a new session.
pub async fn insert(db: &mut dyn Db, session: &UploadSession) -> Result<(), StoreError> {
    let mut sql = Sql::new(&format!("INSERT INTO upload_session ({COLUMNS}) VALUES ("));
    sql.bind(session.id.to_string()).push(", ");
    sql.bind(session.folder_id.to_string()).push(", ");
    sql.bind(session.user_name.clone()).push(", ");
    sql.bind(session.title.clone()).push(", ");
    sql.bind(session.size).push(", ");
    sql.bind(session.conflict_strategy.as_str().to_owned()).push(", ");
    sql.bind(session.client_metadata.clone()).push(", ");
    sql.bind(session.object_key.clone()).push(", ");
    sql.bind(to_micros(session.created_at)).push(", ");
    sql.bind(to_micros(session.expires_at)).push(", ");
    sql.bind(session.parts.as_ref().map(|p| p.upload_id.clone())).push(", ");
    sql.bind(session.parts.as_ref().map(|p| p.part_bytes)).push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// The session `id`, if it is open.
pub async fn get(db: &mut dyn Db, id: Uuid) -> Result<Option<UploadSession>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM upload_session WHERE id = "));
    sql.bind(id.to_string());
    let row: Option<Row> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(from_row).transpose()
}

/// Ends session `id`; false when it was not open (another request ended it first).
pub async fn remove(db: &mut dyn Db, id: Uuid) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM upload_session WHERE id = ");
    sql.bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Up to `limit` sessions that expired before `now`.
pub async fn expired(db: &mut dyn Db, now: OffsetDateTime, limit: i64) -> Result<Vec<UploadSession>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM upload_session WHERE expires_at < "));
    sql.bind(to_micros(now)).push(" ORDER BY expires_at LIMIT ").bind(limit);
    let rows: Vec<Row> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(from_row).collect()
}
