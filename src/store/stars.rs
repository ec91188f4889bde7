//! Stars: the folders and items each user marked, for the starred view and `starred` in answers.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::parse_id;
use super::sql::Sql;
use super::{Db, StoreError, to_micros};

/// What a star marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starred {
    /// A folder.
    Folder,
    /// An item.
    Item,
}

impl Starred {
    /// The stored kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Starred::Folder => "folder",
            Starred::Item => "item",
        }
    }
}

/// Stars `id` for `user`; false when it was starred already.
pub async fn put(
    db: &mut dyn Db,
    user: &str,
    kind: Starred,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new("INSERT INTO star (user_name, target_kind, target_id, starred_at) VALUES (");
    sql.bind(user.to_owned())
        .push(", ")
        .bind(kind.as_str().to_owned())
        .push(", ")
        .bind(id.to_string())
        .push(", ")
        .bind(to_micros(now))
        .push(") ON CONFLICT (user_name, target_kind, target_id) DO NOTHING");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Takes `user`'s star off `id`; false when there was none.
pub async fn delete(db: &mut dyn Db, user: &str, kind: Starred, id: Uuid) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM star WHERE user_name = ");
    sql.bind(user.to_owned())
        .push(" AND target_kind = ")
        .bind(kind.as_str().to_owned())
        .push(" AND target_id = ")
        .bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Which of `ids` `user` starred.
pub async fn among(db: &mut dyn Db, user: &str, kind: Starred, ids: &[Uuid]) -> Result<BTreeSet<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut sql = Sql::new("SELECT target_id FROM star WHERE user_name = ");
    sql.bind(user.to_owned())
        .push(" AND target_kind = ")
        .bind(kind.as_str().to_owned())
        .push(" AND target_id IN (");
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    let rows: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(|(id,)| parse_id(&id)).collect()
}

/// Appends the condition "`column` names something `user` starred" (a `kind` id column).
pub fn push_starred_by(sql: &mut Sql, column: &str, user: &str, kind: Starred) {
    sql.push(column)
        .push(" IN (SELECT target_id FROM star WHERE user_name = ")
        .bind(user.to_owned())
        .push(" AND target_kind = ")
        .bind(kind.as_str().to_owned())
        .push(")");
}

/// Removes the stars of folders and items that no longer exist (deleted for good); answers how
/// many.
pub async fn forget_gone(db: &mut dyn Db) -> Result<u64, StoreError> {
    let sql = Sql::new(
        "DELETE FROM star WHERE (target_kind = 'folder' AND NOT EXISTS (SELECT 1 FROM folder f WHERE f.id = star.target_id)) \
         OR (target_kind = 'item' AND NOT EXISTS (SELECT 1 FROM item i WHERE i.id = star.target_id))",
    );
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}
