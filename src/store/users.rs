//! User rows: who may hold API keys, and whether they are admins.

use super::sql::Sql;
use super::{Db, StoreError, from_micros};

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user name (unique; folders and jobs record it).
    pub name: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
    /// When the user was recorded.
    pub created_at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    name: String,
    is_admin: i64,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        Self {
            name: row.name,
            is_admin: row.is_admin != 0,
            created_at: from_micros(row.created_at),
        }
    }
}

/// Records user `name` unless it exists; true when it was new.
pub async fn insert_if_absent(db: &mut dyn Db, name: &str, is_admin: bool, now: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new("INSERT INTO app_user (name, is_admin, created_at) VALUES (");
    sql.bind(name.to_owned())
        .push(", ")
        .bind(i64::from(is_admin))
        .push(", ")
        .bind(now)
        .push(") ON CONFLICT (name) DO NOTHING");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The user `name`, if recorded.
pub async fn by_name(db: &mut dyn Db, name: &str) -> Result<Option<UserRecord>, StoreError> {
    let mut sql = Sql::new("SELECT name, is_admin, created_at FROM app_user WHERE name = ");
    sql.bind(name.to_owned());
    Ok(sql
        .build_as::<UserRow>()
        .fetch_optional(db.conn())
        .await?
        .map(UserRecord::from))
}

/// Up to `limit` users in name order, after `after` when given.
pub async fn list(db: &mut dyn Db, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
    let mut sql = Sql::new("SELECT name, is_admin, created_at FROM app_user");
    if let Some(after) = after {
        sql.push(" WHERE name > ").bind(after.to_owned());
    }
    sql.push(" ORDER BY name LIMIT ").bind(i64::from(limit));
    Ok(sql
        .build_as::<UserRow>()
        .fetch_all(db.conn())
        .await?
        .into_iter()
        .map(UserRecord::from)
        .collect())
}

/// Makes user `name` an admin; true when it was not one before.
pub async fn promote(db: &mut dyn Db, name: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE app_user SET is_admin = 1 WHERE is_admin = 0 AND name = ");
    sql.bind(name.to_owned());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}
