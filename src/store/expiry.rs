//! What the TTL sweep claims: expired items and folders. Each claim is one statement whose
//! WHERE checks `expires_at <= now` on the rows as they are when it runs, so a TTL extended
//! meanwhile keeps its row, and two sweeps at once never take the same row twice.

use std::collections::HashMap;

use uuid::Uuid;

use super::rows::parse_id;
use super::sql::Sql;
use super::trash::ItemObjects;
use super::{Db, Dialect, StoreError};
use crate::domain::folder::FolderPath;
use crate::domain::quota::Usage;

/// Appends the subquery of up to `limit` live items expired at `now`, oldest expiry first.
fn push_expired_items(sql: &mut Sql, dialect: Dialect, now: i64, limit: i64) {
    sql.push("(SELECT id FROM item WHERE trashed_at IS NULL AND expires_at <= ")
        .bind(now)
        .push(" ORDER BY expires_at LIMIT ")
        .bind(limit)
        .push(dialect.skip_locked())
        .push(") AND trashed_at IS NULL AND expires_at <= ")
        .bind(now);
}

/// What an expiry took: its rows (for the webhook events, and the objects to remove when they
/// were deleted), and the usage the rows held per folder (for [`super::usage`]).
#[derive(Debug, Default)]
pub struct Expired {
    /// The rows taken, with their objects (to remove only when `deleted`).
    pub objects: Vec<ItemObjects>,
    /// Whether the rows were deleted (else they went to the trash).
    pub deleted: bool,
    /// How many rows.
    pub items: u64,
    /// The usage the rows held, per folder.
    pub usage: Vec<(Uuid, Usage)>,
}

/// A row an expiry took.
#[derive(sqlx::FromRow)]
struct ExpiredRow {
    bucket: String,
    object_key: String,
    encoded_key: Option<String>,
    id: String,
    folder_id: String,
    title: String,
    size: i64,
    is_tombstone: i64,
}

/// The columns an expiry answers of each row it took.
const EXPIRED_COLUMNS: &str = " RETURNING bucket, object_key, encoded_key, id, folder_id, title, size, is_tombstone";

/// Runs an expiry statement and gathers what it took; `deleted`: the rows were deleted.
async fn expired(db: &mut dyn Db, sql: Sql, deleted: bool) -> Result<Expired, StoreError> {
    let rows: Vec<ExpiredRow> = sql.build_as().fetch_all(db.conn()).await?;
    let mut usage: HashMap<Uuid, Usage> = HashMap::new();
    let mut taken = Expired {
        items: rows.len() as u64,
        deleted,
        ..Expired::default()
    };
    for row in rows {
        let folder_id = parse_id(&row.folder_id)?;
        if row.is_tombstone == 0 {
            let folder = usage.entry(folder_id).or_default();
            *folder = folder.plus(Usage::item(row.size));
        }
        taken.objects.push(ItemObjects {
            bucket: row.bucket,
            object_key: row.object_key,
            encoded_key: row.encoded_key,
            id: row.id,
            folder_id: row.folder_id,
            title: row.title,
        });
    }
    taken.usage = usage.into_iter().collect();
    Ok(taken)
}

/// Deletes up to `limit` live items expired at `now`; answers what it took.
pub async fn delete_expired_items(db: &mut dyn Db, now: i64, limit: i64) -> Result<Expired, StoreError> {
    let mut sql = Sql::new("DELETE FROM item WHERE id IN ");
    push_expired_items(&mut sql, db.dialect(), now, limit);
    sql.push(EXPIRED_COLUMNS);
    expired(db, sql, true).await
}

/// Moves up to `limit` live items expired at `now` into the trash (each a unit, due at
/// `purge_at`); answers what it took.
pub async fn trash_expired_items(db: &mut dyn Db, now: i64, purge_at: i64, limit: i64) -> Result<Expired, StoreError> {
    let mut sql = Sql::new("UPDATE item SET trashed_at = ");
    sql.bind(now)
        .push(", trash_unit = id, purge_at = ")
        .bind(purge_at)
        .push(" WHERE id IN ");
    push_expired_items(&mut sql, db.dialect(), now, limit);
    sql.push(EXPIRED_COLUMNS);
    expired(db, sql, false).await
}

/// The live folder that expired first, at `now` or before, with its path.
pub async fn next_expired_folder(db: &mut dyn Db, now: i64) -> Result<Option<(Uuid, FolderPath)>, StoreError> {
    let mut sql = Sql::new("SELECT id, path FROM folder WHERE trashed_at IS NULL AND expires_at <= ");
    sql.bind(now).push(" ORDER BY expires_at, id LIMIT 1");
    let row: Option<(String, String)> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(|(id, path)| Ok((parse_id(&id)?, FolderPath::stored(&path))))
        .transpose()
}
