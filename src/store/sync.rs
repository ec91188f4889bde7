//! Rows a sync reads and writes: the catalog of a synced root in key order, and the changes a
//! sync applies (new items, new content, refreshed fingerprints, tombstones, restores).

use sqlx::AnyConnection;
use uuid::Uuid;

use super::folders::parse_id;
use super::items::{CONTENT_COLUMNS, bind_content};
use super::sql::{Sql, corrupt};
use super::{StoreError, now_micros, to_micros};
use crate::domain::diff::Known;
use crate::domain::fingerprint::Fingerprint;
use crate::domain::item::Item;

fn fingerprint_text(fingerprint: &Fingerprint) -> String {
    serde_json::to_string(fingerprint).unwrap_or_else(|_| "{}".into())
}

/// The columns a [`KnownRow`] reads.
const KNOWN_COLUMNS: &str = "id, object_key, fingerprint, checksum, is_tombstone";

#[derive(sqlx::FromRow)]
struct KnownRow {
    id: String,
    #[sqlx(rename = "object_key")]
    key: String,
    fingerprint: Option<String>,
    checksum: Option<String>,
    #[sqlx(rename = "is_tombstone")]
    tombstone: i64,
}

/// Up to `limit` items of synced root `root`, by object key (bytewise), after `after`.
pub async fn known_page(
    conn: &mut AnyConnection,
    root: Uuid,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Known>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {KNOWN_COLUMNS} FROM item WHERE sync_root_id = "));
    sql.bind(root.to_string());
    if let Some(after) = after {
        sql.push(" AND object_key > ").bind(after.to_owned());
    }
    sql.push(" ORDER BY object_key LIMIT ").bind(i64::from(limit));
    known_rows(sql.build_as().fetch_all(conn).await?)
}

fn known_rows(rows: Vec<KnownRow>) -> Result<Vec<Known>, StoreError> {
    rows.into_iter()
        .map(
            |KnownRow {
                 id,
                 key,
                 fingerprint,
                 checksum,
                 tombstone,
             }| {
                Ok(Known {
                    id: parse_id(&id)?,
                    key,
                    fingerprint: match fingerprint {
                        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("fingerprint", e))?,
                        None => Fingerprint::default(),
                    },
                    checksum,
                    is_tombstone: tombstone != 0,
                })
            },
        )
        .collect()
}

/// The items of synced root `root` at `keys` or below them (a key taken as a directory), by key.
pub async fn known_touching(conn: &mut AnyConnection, root: Uuid, keys: &[String]) -> Result<Vec<Known>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!("SELECT {KNOWN_COLUMNS} FROM item WHERE sync_root_id = "));
    sql.bind(root.to_string()).push(" AND (object_key IN (");
    sql.bind_list(keys.iter().cloned()).push(")");
    for key in keys {
        sql.push(" OR (object_key >= ")
            .bind(format!("{key}/"))
            .push(" AND object_key < ")
            .bind(format!("{key}0"))
            .push(")");
    }
    sql.push(") ORDER BY object_key");
    known_rows(sql.build_as().fetch_all(conn).await?)
}

/// How many live (not tombstoned) items synced root `root` has.
pub async fn live_count(conn: &mut AnyConnection, root: Uuid) -> Result<i64, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM item WHERE is_tombstone = 0 AND sync_root_id = ");
    sql.bind(root.to_string());
    let (n,): (i64,) = sql.build_as().fetch_one(conn).await?;
    Ok(n)
}

/// New objects one [`upsert_many`] records. Few: sqlx binds each value of a SQLite statement
/// by looking its placeholder's name up (`sqlite3_bind_parameter_name`, a linear scan), so a
/// statement's binding time grows with the square of its 25 values a row. Of 1, 5, 20 and 100
/// rows a statement, 5 made the initial sync of 20,000 empty files fastest (about 30% faster
/// than 1; 100 was twice as slow as 1).
pub const UPSERT_ROWS: usize = 5;

/// Records new objects of synced root `root` in one statement; a key already recorded (a sync
/// that was killed after writing it) gets its row updated instead. Keys must be distinct.
pub async fn upsert_many(conn: &mut AnyConnection, root: Uuid, rows: &[(Item, Fingerprint)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(&format!(
        "INSERT INTO item (id, folder_id, title, title_folded, client_metadata, created_at, updated_at, sync_root_id, fingerprint, {}) VALUES ",
        CONTENT_COLUMNS.join(", ")
    ));
    for (i, (item, fingerprint)) in rows.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(item.id.to_string()).push(", ");
        sql.bind(item.folder_id.to_string()).push(", ");
        sql.bind(item.title.clone()).push(", ");
        sql.bind(item.title.to_lowercase()).push(", ");
        sql.bind("{}".to_owned()).push(", ");
        sql.bind(to_micros(item.created_at)).push(", ");
        sql.bind(to_micros(item.updated_at)).push(", ");
        sql.bind(root.to_string()).push(", ");
        sql.bind(fingerprint_text(fingerprint)).push(", ");
        bind_content(&mut sql, item);
        sql.push(")");
    }
    let excluded: Vec<String> = CONTENT_COLUMNS.iter().map(|c| format!("excluded.{c}")).collect();
    sql.push(&format!(
        " ON CONFLICT (sync_root_id, object_key) WHERE sync_root_id IS NOT NULL DO UPDATE SET ({}) = ({}), \
         fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
        CONTENT_COLUMNS.join(", "),
        excluded.join(", ")
    ));
    sql.build().execute(conn).await?;
    Ok(())
}

/// Points item `id` at new content (`with`'s type, size, checksum, media), live again.
pub async fn set_content(
    conn: &mut AnyConnection,
    id: Uuid,
    with: &Item,
    fingerprint: &Fingerprint,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(&format!("UPDATE item SET ({}) = (", CONTENT_COLUMNS.join(", ")));
    bind_content(&mut sql, with);
    sql.push("), fingerprint = ").bind(fingerprint_text(fingerprint));
    sql.push(", updated_at = ").bind(now_micros());
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(conn).await?;
    Ok(())
}

/// Records that item `id`'s object is present with unchanged content and this fingerprint.
pub async fn refresh(conn: &mut AnyConnection, id: Uuid, fingerprint: &Fingerprint) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE item SET is_tombstone = 0, fingerprint = ");
    sql.bind(fingerprint_text(fingerprint));
    sql.push(", updated_at = ").bind(now_micros());
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(conn).await?;
    Ok(())
}

/// Marks these items' objects as gone; the rows stay.
pub async fn tombstone(conn: &mut AnyConnection, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("UPDATE item SET is_tombstone = 1, updated_at = ");
    sql.bind(now_micros()).push(" WHERE is_tombstone = 0 AND id IN (");
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    Ok(sql.build().execute(conn).await?.rows_affected())
}

/// Every synced folder over `bucket`, with its prefix.
pub async fn synced_folders_of(conn: &mut AnyConnection, bucket: &str) -> Result<Vec<(Uuid, String)>, StoreError> {
    let mut sql = Sql::new("SELECT id, sync_prefix FROM folder WHERE sync_bucket = ");
    sql.bind(bucket.to_owned());
    let rows: Vec<(String, Option<String>)> = sql.build_as().fetch_all(conn).await?;
    rows.into_iter()
        .map(|(id, prefix)| Ok((parse_id(&id)?, prefix.unwrap_or_default())))
        .collect()
}

/// The synced root a folder belongs to (itself or its nearest synced ancestor), with its
/// bucket, if any. `paths` are the folder's path and its ancestors'.
pub async fn synced_root_among(
    conn: &mut AnyConnection,
    paths: &[String],
) -> Result<Option<(Uuid, String)>, StoreError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut sql = Sql::new("SELECT id, sync_bucket FROM folder WHERE sync_bucket IS NOT NULL AND path IN (");
    sql.bind_list(paths.iter().cloned()).push(") LIMIT 1");
    let row: Option<(String, String)> = sql.build_as().fetch_optional(conn).await?;
    row.map(|(id, bucket)| Ok((parse_id(&id)?, bucket))).transpose()
}
