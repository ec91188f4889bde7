//! What the TTL sweep claims: expired items and folders. Each claim is one statement whose
//! WHERE checks `expires_at <= now` on the rows as they are when it runs, so a TTL extended
//! meanwhile keeps its row, and two sweeps at once never take the same row twice.

use uuid::Uuid;

use super::rows::parse_id;
use super::sql::Sql;
use super::trash::{ItemObjects, deleted_objects};
use super::{Db, Dialect, StoreError};
use crate::domain::folder::FolderPath;

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

/// Deletes up to `limit` live items expired at `now`; answers their objects.
pub async fn delete_expired_items(db: &mut dyn Db, now: i64, limit: i64) -> Result<Vec<ItemObjects>, StoreError> {
    let mut sql = Sql::new("DELETE FROM item WHERE id IN ");
    push_expired_items(&mut sql, db.dialect(), now, limit);
    sql.push(" RETURNING bucket, object_key, encoded_key");
    deleted_objects(db, sql).await
}

/// Moves up to `limit` live items expired at `now` into the trash (each a unit, due at
/// `purge_at`); answers how many.
pub async fn trash_expired_items(db: &mut dyn Db, now: i64, purge_at: i64, limit: i64) -> Result<u64, StoreError> {
    let mut sql = Sql::new("UPDATE item SET trashed_at = ");
    sql.bind(now)
        .push(", trash_unit = id, purge_at = ")
        .bind(purge_at)
        .push(" WHERE id IN ");
    push_expired_items(&mut sql, db.dialect(), now, limit);
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// The live folder that expired first, at `now` or before, with its path.
pub async fn next_expired_folder(db: &mut dyn Db, now: i64) -> Result<Option<(Uuid, FolderPath)>, StoreError> {
    let mut sql = Sql::new("SELECT id, path FROM folder WHERE trashed_at IS NULL AND expires_at <= ");
    sql.bind(now).push(" ORDER BY expires_at, id LIMIT 1");
    let row: Option<(String, String)> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(|(id, path)| Ok((parse_id(&id)?, FolderPath::stored(&path))))
        .transpose()
}
