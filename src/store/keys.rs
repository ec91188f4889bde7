//! API keys: stored as blake3 hashes, never in clear, each belonging to a user.

use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{corrupt, parse_id};
use super::sql::{Sql, Value, push_page};
use super::teams::{Grantee, push_reach_columns, reach_from_json};
use super::{Db, StoreError, from_micros, to_micros};
use crate::domain::caller::{BucketGrant, Grant, KeyScope};
use crate::domain::page::SortKey;

/// The columns every key read selects.
const COLUMNS: &str = "k.id, k.name, k.label, k.scope, k.prefix, k.created_at, k.last_used_at, k.expires_at, \
                       k.revoked_at, k.is_admin AS admin_cap, u.is_admin";

/// A key as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's id.
    pub id: Uuid,
    /// The user it belongs to.
    pub user: String,
    /// What its user called it (may be empty).
    pub label: String,
    /// What it may do.
    pub scope: KeyScope,
    /// The first characters of its secret (empty for keys made before they were kept).
    pub prefix: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Whether it may use its user's admin rights (keys made as non-admin keys may not).
    pub admin_cap: bool,
    /// Whether requests with it have admin rights: its user is an admin and the key may use that.
    pub is_admin: bool,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    label: String,
    scope: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    admin_cap: i64,
    is_admin: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: parse_id(&row.id)?,
            user: row.name,
            label: row.label,
            scope: KeyScope::parse(&row.scope).map_err(|e| corrupt("api_key.scope", e))?,
            prefix: row.prefix,
            created_at: from_micros(row.created_at),
            last_used_at: row.last_used_at.map(from_micros),
            expires_at: row.expires_at.map(from_micros),
            revoked_at: row.revoked_at.map(from_micros),
            admin_cap: row.admin_cap != 0,
            is_admin: row.admin_cap != 0 && row.is_admin.unwrap_or(0) != 0,
        })
    }
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Its id.
    pub id: Uuid,
    /// The user it belongs to (recorded already).
    pub user: &'a str,
    /// Its label.
    pub label: &'a str,
    /// What it may do.
    pub scope: KeyScope,
    /// Whether it may use its user's admin rights.
    pub admin_cap: bool,
    /// The first characters of its secret.
    pub prefix: &'a str,
    /// The blake3 hash of its secret, hex.
    pub hash: &'a str,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// Now.
    pub created_at: OffsetDateTime,
}

/// Stores a new key.
pub async fn insert(db: &mut dyn Db, key: &NewKey<'_>) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO api_key (id, name, key_hash, is_admin, created_at, label, scope, prefix, expires_at) VALUES (",
    );
    sql.bind(key.id.to_string())
        .push(", ")
        .bind(key.user.to_owned())
        .push(", ")
        .bind(key.hash.to_owned())
        .push(", ")
        .bind(i64::from(key.admin_cap))
        .push(", ")
        .bind(to_micros(key.created_at))
        .push(", ")
        .bind(key.label.to_owned())
        .push(", ")
        .bind(key.scope.as_str().to_owned())
        .push(", ")
        .bind(key.prefix.to_owned())
        .push(", ")
        .bind_value(Value::Int(key.expires_at.map(to_micros)))
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Starts a key read joined with its user.
fn select() -> Sql {
    Sql::new(&format!(
        "SELECT {COLUMNS} FROM api_key k LEFT JOIN app_user u ON u.name = k.name WHERE "
    ))
}

async fn fetch_all(db: &mut dyn Db, sql: Sql) -> Result<Vec<KeyRecord>, StoreError> {
    sql.build_as::<KeyRow>()
        .fetch_all(db.conn())
        .await?
        .into_iter()
        .map(KeyRecord::try_from)
        .collect()
}

/// A key and what its user may reach, read in one query.
#[derive(sqlx::FromRow)]
struct KeyReachRow {
    #[sqlx(flatten)]
    key: KeyRow,
    folder_grants: Option<String>,
    bucket_grants: Option<String>,
}

/// The key whose secret hashes to `hash` (revoked or expired ones too: the caller decides),
/// with the grants on live folders and the bucket grants that reach its user: what every
/// request reads, in one query.
pub async fn by_hash_with_reach(
    db: &mut dyn Db,
    hash: &str,
) -> Result<Option<(KeyRecord, Vec<Grant>, Vec<BucketGrant>)>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS}, "));
    push_reach_columns(&mut sql, db.dialect(), Grantee::Column("k.name"));
    sql.push(" FROM api_key k LEFT JOIN app_user u ON u.name = k.name WHERE k.key_hash = ")
        .bind(hash.to_owned());
    let Some(row) = sql.build_as::<KeyReachRow>().fetch_optional(db.conn()).await? else {
        return Ok(None);
    };
    let (grants, buckets) = reach_from_json(row.folder_grants.as_deref(), row.bucket_grants.as_deref())?;
    Ok(Some((KeyRecord::try_from(row.key)?, grants, buckets)))
}

/// The key `id`, unless revoked.
pub async fn by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<KeyRecord>, StoreError> {
    let mut sql = select();
    sql.push("k.id = ")
        .bind(id.to_string())
        .push(" AND k.revoked_at IS NULL");
    Ok(fetch_all(db, sql).await?.pop())
}

/// Up to `limit` keys of `user` that are not revoked, newest first, after `after` (a creation
/// time in microseconds and an id) when given.
pub async fn list(
    db: &mut dyn Db,
    user: &str,
    after: Option<(i64, Uuid)>,
    limit: u32,
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut sql = select();
    sql.push("k.revoked_at IS NULL AND k.name = ").bind(user.to_owned());
    let after = after.map(|(at, id)| (SortKey::Int(at), id));
    push_page(&mut sql, "k.created_at", "k.id", true, after.as_ref(), limit);
    fetch_all(db, sql).await
}

/// Revokes key `id` at `now`; false when there was no such key not yet revoked.
pub async fn revoke(db: &mut dyn Db, id: Uuid, now: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE api_key SET revoked_at = ");
    sql.bind(now)
        .push(" WHERE id = ")
        .bind(id.to_string())
        .push(" AND revoked_at IS NULL");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// How many keys exist, revoked ones included.
pub async fn count(db: &mut dyn Db) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_key")
        .fetch_one(db.conn())
        .await?;
    Ok(n)
}

/// How many keys of `user` work (neither revoked nor expired at `now`).
pub async fn count_active(db: &mut dyn Db, user: &str, now: i64) -> Result<i64, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM api_key WHERE name = ");
    sql.bind(user.to_owned())
        .push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
        .bind(now)
        .push(")");
    let (n,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(n)
}

/// Records that each key of `ids` was used at `now`.
pub async fn touch_many(db: &mut dyn Db, ids: &[Uuid], now: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE api_key SET last_used_at = ");
    sql.bind(now)
        .push(" WHERE id IN (")
        .bind_list(ids.iter().map(Uuid::to_string))
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}
