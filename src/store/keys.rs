//! API keys: stored as blake3 hashes, never in clear.

use uuid::Uuid;

use super::sql::Sql;
use super::{Db, StoreError, now_micros};

/// A key's owner as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyOwner {
    /// The user name the key was created for.
    pub name: String,
    /// 1 when the key grants admin rights.
    pub is_admin: i64,
}

/// Stores a new key's hash for `name`.
pub async fn insert(db: &mut dyn Db, name: &str, key_hash: &str, is_admin: bool) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO api_key (id, name, key_hash, is_admin, created_at) VALUES (");
    sql.bind(Uuid::now_v7().to_string())
        .push(", ")
        .bind(name.to_owned())
        .push(", ")
        .bind(key_hash.to_owned())
        .push(", ")
        .bind(i64::from(is_admin))
        .push(", ")
        .bind(now_micros())
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// The owner of the key with this hash, if any.
pub async fn find_by_hash(db: &mut dyn Db, key_hash: &str) -> Result<Option<KeyOwner>, StoreError> {
    let mut sql = Sql::new("SELECT name, is_admin FROM api_key WHERE key_hash = ");
    sql.bind(key_hash.to_owned());
    Ok(sql.build_as::<KeyOwner>().fetch_optional(db.conn()).await?)
}

/// How many keys exist.
pub async fn count(db: &mut dyn Db) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_key")
        .fetch_one(db.conn())
        .await?;
    Ok(n)
}
