//! Rows a sync reads and writes: the catalog of a synced root in key order, and the changes a
//! sync applies (new items, new content, refreshed fingerprints, tombstones, restores).

use uuid::Uuid;

use super::items::{CONTENT_COLUMNS, bind_content, content_values};
use super::rows::{corrupt, parse_id};
use super::sql::{Sql, Value, json_rows};
use super::{Db, Dialect, StoreError, now_micros, to_micros};
use crate::domain::diff::Known;
use crate::domain::fingerprint::Fingerprint;
use crate::domain::item::Item;
use crate::domain::quota::Usage;

fn fingerprint_text(fingerprint: &Fingerprint) -> String {
    serde_json::to_string(fingerprint).unwrap_or_else(|_| "{}".into())
}

/// The columns a catalog read takes of each item, in the order [`fetch_known`] decodes them.
const KNOWN_COLUMNS: &str = "id, object_key, fingerprint, checksum, is_tombstone";

/// Up to `limit` items of synced root `root`, by object key (bytewise), after `after`.
pub async fn known_page(
    db: &mut dyn Db,
    root: Uuid,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Known>, StoreError> {
    fetch_known(db, root, |sql| {
        if let Some(after) = after {
            sql.push(" AND object_key > ").bind(after.to_owned());
        }
        sql.push(" ORDER BY object_key LIMIT ").bind(i64::from(limit));
    })
    .await
}

/// The items of synced root `root` at `keys` or below them (a key taken as a directory), by key.
pub async fn known_touching(db: &mut dyn Db, root: Uuid, keys: &[String]) -> Result<Vec<Known>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    fetch_known(db, root, |sql| {
        sql.push(" AND (object_key IN (");
        sql.bind_list(keys.iter().cloned()).push(")");
        for key in keys {
            sql.push(" OR (object_key >= ")
                .bind(format!("{key}/"))
                .push(" AND object_key < ")
                .bind(format!("{key}0"))
                .push(")");
        }
        sql.push(")");
    })
    .await
}

/// The items of synced root `root` that `filter` (appended after the root's condition) keeps,
/// sorted by key bytewise.
///
/// They come back as one row holding a JSON array: sqlx's SQLite driver hands rows from its
/// database thread over a 50-row channel, and a page of 1,000 rows read row by row cost a
/// thread wake-up every 50 rows (the larger share of a no-change re-sync's catalog reading).
async fn fetch_known(db: &mut dyn Db, root: Uuid, filter: impl FnOnce(&mut Sql)) -> Result<Vec<Known>, StoreError> {
    let fingerprint = match db.dialect() {
        Dialect::Sqlite => "json(fingerprint)",
        Dialect::Postgres => "CAST(fingerprint AS json)",
    };
    let elements = format!("id, object_key, {fingerprint}, checksum, is_tombstone");
    let aggregate = json_rows(db.dialect(), &elements, None);
    let mut sql = Sql::new(&format!(
        "SELECT {aggregate} FROM (SELECT {KNOWN_COLUMNS} FROM item WHERE sync_root_id = "
    ));
    sql.bind(root.to_string());
    filter(&mut sql);
    sql.push(") AS page");
    let (text,): (Option<String>,) = sql.build_as().fetch_one(db.conn()).await?;
    type PageRow = (String, String, Option<Fingerprint>, Option<String>, i64);
    let rows: Vec<PageRow> = match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("catalog page", e))?,
        None => Vec::new(),
    };
    let mut known = rows
        .into_iter()
        .map(|(id, key, fingerprint, checksum, tombstone)| {
            Ok(Known {
                id: parse_id(&id)?,
                key,
                fingerprint: fingerprint.unwrap_or_default(),
                checksum,
                is_tombstone: tombstone != 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // An aggregate keeps its input's order in both databases, but neither promises it.
    known.sort_unstable_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    Ok(known)
}

/// What the live items of synced root `root` at `keys` hold, per folder (for the usage a
/// batch's changes move: see [`super::usage`]).
pub async fn usage_at(db: &mut dyn Db, root: Uuid, keys: &[&str]) -> Result<Vec<(Uuid, Usage)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = db.dialect();
    super::usage::of_rows(db, |sql| {
        sql.push("sync_root_id = ").bind(root.to_string()).push(" AND ");
        sql.push_in_json(dialect, "object_key", keys.iter().map(|k| (*k).to_owned()));
    })
    .await
}

/// How many live (not tombstoned) items synced root `root` has.
pub async fn live_count(db: &mut dyn Db, root: Uuid) -> Result<i64, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM item WHERE is_tombstone = 0 AND sync_root_id = ");
    sql.bind(root.to_string());
    let (n,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(n)
}

/// A new object of a synced root, encoded for [`upsert_many`] ahead of the transaction that
/// records it: encoding is a fair share of recording, and this way it runs where objects are
/// read, on every core, rather than while the database waits.
#[derive(Debug, Clone)]
pub struct NewRow {
    /// The row's values after its folder, as the rest of a JSON array: `"id", …]`.
    tail: String,
    /// Which of those values fill integer columns (bit `i` for value `i`).
    integers: u64,
    /// Which of those values are NULL (bit `i` for value `i`).
    nulls: u64,
    /// The object's key.
    key: String,
}

/// The columns of a [`NewRow`] after its folder: the item's own, then [`CONTENT_COLUMNS`].
const NEW_ROW_COLUMNS: [&str; 6] = ["id", "title", "title_folded", "created_at", "updated_at", "fingerprint"];

impl NewRow {
    /// Encodes `item` (its folder is given when it is recorded) with its fingerprint.
    pub fn encode(item: &Item, fingerprint: &Fingerprint) -> Self {
        let mut values = vec![
            Value::Text(Some(item.id.to_string())),
            Value::Text(Some(item.title.clone())),
            Value::Text(Some(item.title.to_lowercase())),
            Value::Int(Some(to_micros(item.created_at))),
            Value::Int(Some(to_micros(item.updated_at))),
            Value::Text(Some(fingerprint_text(fingerprint))),
        ];
        values.extend(content_values(item));
        let mut tail = String::with_capacity(400);
        let (mut integers, mut nulls) = (0, 0);
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                tail.push(',');
            }
            value.write_json(&mut tail);
            if matches!(value, Value::Int(_)) {
                integers |= 1 << i;
            }
            if value.is_null() {
                nulls |= 1 << i;
            }
        }
        tail.push(']');
        Self {
            tail,
            integers,
            nulls,
            key: item.object_key.clone(),
        }
    }

    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Records new objects of synced root `root`, each in its folder, in one statement; a key
/// already recorded (a sync that was killed after writing it) gets its row updated instead.
/// Keys must be distinct.
///
/// The rows travel as one JSON array bound to one placeholder, unpacked by the database
/// (`jsonb_each`, `jsonb_array_elements`): binding 26 values a row costs sqlx a lookup of each
/// placeholder's name on SQLite (quadratic in the values of a statement), and a statement per
/// few rows costs a hand-over to the database thread each.
pub async fn upsert_many(db: &mut dyn Db, root: Uuid, rows: &[(Uuid, &NewRow)]) -> Result<(), StoreError> {
    let Some((_, first)) = rows.first() else {
        return Ok(());
    };
    let mut json = String::with_capacity(rows.iter().map(|(_, row)| row.tail.len() + 48).sum());
    json.push('[');
    for (i, (folder, row)) in rows.iter().enumerate() {
        json.push_str(if i == 0 { "[\"" } else { ",[\"" });
        json.push_str(&folder.to_string());
        json.push_str("\",");
        json.push_str(&row.tail);
    }
    json.push(']');
    // A column NULL in every row is left out: it takes its default, NULL (every column whose
    // value may be NULL defaults to NULL), and the database unpacks one value less per row
    // (most media columns of a sync of plain files).
    let all_null = rows.iter().fold(u64::MAX, |nulls, (_, row)| nulls & row.nulls);
    let columns: Vec<(usize, &str)> = NEW_ROW_COLUMNS
        .iter()
        .chain(CONTENT_COLUMNS.iter())
        .copied()
        .enumerate()
        .filter(|(i, _)| all_null & (1 << i) == 0)
        .collect();
    // Value 0 is the folder; `->>` answers text on PostgreSQL, which an integer column takes
    // only cast.
    let mut select = vec!["value->>0".to_owned()];
    select.extend(columns.iter().map(|(i, _)| {
        if first.integers & (1 << i) != 0 {
            format!("CAST(value->>{} AS BIGINT)", i + 1)
        } else {
            format!("value->>{}", i + 1)
        }
    }));
    let columns: Vec<&str> = columns.into_iter().map(|(_, column)| column).collect();
    let mut sql = Sql::new(&format!(
        "INSERT INTO item (folder_id, {}, sync_root_id, client_metadata) SELECT {}, ",
        columns.join(", "),
        select.join(", ")
    ));
    sql.bind(root.to_string()).push(", '{}' FROM ");
    match db.dialect() {
        Dialect::Sqlite => sql.push("jsonb_each(").bind(json).push(")"),
        Dialect::Postgres => sql
            .push("jsonb_array_elements(CAST(")
            .bind(json)
            .push(" AS jsonb)) AS row_values(value)"),
    };
    let excluded: Vec<String> = CONTENT_COLUMNS.iter().map(|c| format!("excluded.{c}")).collect();
    // `WHERE true` keeps SQLite from reading `ON CONFLICT` as a join constraint of the SELECT.
    sql.push(&format!(
        " WHERE true ON CONFLICT (sync_root_id, object_key) WHERE sync_root_id IS NOT NULL \
         DO UPDATE SET ({}) = ({}), fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
        CONTENT_COLUMNS.join(", "),
        excluded.join(", ")
    ));
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Points item `id` at new content (`with`'s type, size, checksum, media), live again.
pub async fn set_content(db: &mut dyn Db, id: Uuid, with: &Item, fingerprint: &Fingerprint) -> Result<(), StoreError> {
    let mut sql = Sql::new(&format!("UPDATE item SET ({}) = (", CONTENT_COLUMNS.join(", ")));
    bind_content(&mut sql, with);
    sql.push("), fingerprint = ").bind(fingerprint_text(fingerprint));
    sql.push(", updated_at = ").bind(now_micros());
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Records that item `id`'s object is present with unchanged content and this fingerprint.
pub async fn refresh(db: &mut dyn Db, id: Uuid, fingerprint: &Fingerprint) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE item SET is_tombstone = 0, fingerprint = ");
    sql.bind(fingerprint_text(fingerprint));
    sql.push(", updated_at = ").bind(now_micros());
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Marks these items' objects as gone; the rows stay.
pub async fn tombstone(db: &mut dyn Db, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("UPDATE item SET is_tombstone = 1, updated_at = ");
    sql.bind(now_micros()).push(" WHERE is_tombstone = 0 AND id IN (");
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Every synced folder over `bucket`, with its prefix.
pub async fn synced_folders_of(db: &mut dyn Db, bucket: &str) -> Result<Vec<(Uuid, String)>, StoreError> {
    let mut sql = Sql::new("SELECT id, sync_prefix FROM folder WHERE sync_bucket = ");
    sql.bind(bucket.to_owned());
    let rows: Vec<(String, Option<String>)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(id, prefix)| Ok((parse_id(&id)?, prefix.unwrap_or_default())))
        .collect()
}

/// The synced root a folder belongs to (itself or its nearest synced ancestor), with its
/// bucket, if any. `paths` are the folder's path and its ancestors'.
pub async fn synced_root_among(db: &mut dyn Db, paths: &[String]) -> Result<Option<(Uuid, String)>, StoreError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut sql = Sql::new("SELECT id, sync_bucket FROM folder WHERE sync_bucket IS NOT NULL AND path IN (");
    sql.bind_list(paths.iter().cloned()).push(") LIMIT 1");
    let row: Option<(String, String)> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(|(id, bucket)| Ok((parse_id(&id)?, bucket))).transpose()
}
