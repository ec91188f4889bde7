//! The trash: folders (with their subtrees) and items marked as deleted, listed, brought back,
//! and purged for good together with everything they carried.
//!
//! A **trash unit** is what one delete put in the trash: an item, or a folder with every live
//! folder and item below it. Its rows carry `trash_unit` = the id of what was deleted, the same
//! `trashed_at`, and `purge_at`, when the sweep removes the unit. A trashed folder's `path` is
//! stored as `UNIT:/original/path`, so the paths of live folders and of every unit stay unique
//! and apart (see migration 0005). Something trashed on its own before its folder was trashed
//! stays a unit of its own; purging the folder's unit takes it along.

use time::OffsetDateTime;
use uuid::Uuid;

use super::clauses::{FolderTtl, Reader, push_granted, push_path_rewrite, push_subtree, push_ttl_expiry};
use super::rows::{display_path, parse_id};
use super::sql::{Sql, push_page};
use super::{Db, StoreError, from_micros};
use crate::domain::folder::FolderPath;
use crate::domain::page::SortKey;

/// The path of a trashed folder as stored: its unit's id, `:`, its path.
pub fn stored_path(unit: Uuid, path: &FolderPath) -> String {
    format!("{unit}:{path}")
}

/// How many rows a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Folders.
    pub folders: u64,
    /// Items.
    pub items: u64,
}

/// Trashes the live folder `top` at `path` with its whole live subtree, as one unit.
pub async fn trash_folder(
    db: &mut dyn Db,
    top: Uuid,
    path: &FolderPath,
    now: i64,
    purge_at: i64,
) -> Result<Counts, StoreError> {
    let mut sql = Sql::new("UPDATE item SET ");
    push_mark(&mut sql, Some(top), now, purge_at);
    sql.push(" WHERE trashed_at IS NULL AND folder_id IN (SELECT id FROM folder WHERE ");
    push_subtree(&mut sql, "path", path.as_str(), true);
    sql.push(")");
    let items = sql.build().execute(db.conn()).await?.rows_affected();
    let mut sql = Sql::new("UPDATE folder SET ");
    push_path_rewrite(&mut sql, path.as_str(), &stored_path(top, path));
    sql.push(", ");
    push_mark(&mut sql, Some(top), now, purge_at);
    sql.push(" WHERE ");
    push_subtree(&mut sql, "path", path.as_str(), true);
    let folders = sql.build().execute(db.conn()).await?.rows_affected();
    Ok(Counts { folders, items })
}

/// Trashes the live items `ids`, each a unit of its own; answers how many.
pub async fn trash_items(db: &mut dyn Db, ids: &[Uuid], now: i64, purge_at: i64) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("UPDATE item SET ");
    push_mark(&mut sql, None, now, purge_at);
    sql.push(" WHERE trashed_at IS NULL AND id IN (")
        .bind_list(ids.iter().map(Uuid::to_string))
        .push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Appends the SET list that marks rows trashed in unit `unit` (the row's own id when `None`).
fn push_mark(sql: &mut Sql, unit: Option<Uuid>, now: i64, purge_at: i64) {
    sql.push("trashed_at = ").bind(now);
    match unit {
        Some(unit) => sql.push(", trash_unit = ").bind(unit.to_string()),
        None => sql.push(", trash_unit = id"),
    };
    sql.push(", purge_at = ").bind(purge_at);
}

/// Appends the SET list that brings rows back from the trash; an expiry that has passed is
/// dropped (the item or folder would otherwise expire again at once), and items follow `ttl`.
fn push_revive(sql: &mut Sql, now: i64, items: Option<FolderTtl>) {
    sql.push("trashed_at = NULL, trash_unit = NULL, purge_at = NULL");
    match items {
        Some(ttl) => {
            sql.push(", expires_own = CASE WHEN ");
            push_ttl_expiry(sql, ttl);
            sql.push(" <= ")
                .bind(now)
                .push(" THEN 1 ELSE expires_own END, expires_at = CASE WHEN ");
            push_ttl_expiry(sql, ttl);
            sql.push(" <= ").bind(now).push(" THEN NULL ELSE ");
            push_ttl_expiry(sql, ttl);
            sql.push(" END");
        }
        None => {
            sql.push(", expires_at = CASE WHEN expires_at <= ")
                .bind(now)
                .push(" THEN NULL ELSE expires_at END");
        }
    }
    sql.push(", updated_at = ").bind(now);
}

/// Brings the trashed folder `top` (stored at `stored`, in unit `unit`) back with what its unit
/// holds below it, at `new_path` under `new_parent`. A live folder at `new_path` is a `Conflict`.
pub async fn restore_folder(
    db: &mut dyn Db,
    unit: Uuid,
    top: Uuid,
    stored: &str,
    new_path: &FolderPath,
    new_parent: Option<Uuid>,
    now: i64,
) -> Result<Counts, StoreError> {
    let mut sql = Sql::new("UPDATE item SET ");
    push_revive(&mut sql, now, Some(FolderTtl::OwnFolder));
    sql.push(" WHERE trash_unit = ").bind(unit.to_string());
    sql.push(" AND folder_id IN (SELECT id FROM folder WHERE trash_unit = ")
        .bind(unit.to_string())
        .push(" AND ");
    push_subtree(&mut sql, "path", stored, true);
    sql.push(")");
    let items = sql.build().execute(db.conn()).await?.rows_affected();

    let mut sql = Sql::new("UPDATE folder SET parent_id = ");
    sql.bind(new_parent.map(|p| p.to_string()))
        .push(" WHERE id = ")
        .bind(top.to_string());
    sql.build().execute(db.conn()).await?;

    let mut sql = Sql::new("UPDATE folder SET ");
    push_path_rewrite(&mut sql, stored, new_path.as_str());
    sql.push(", ");
    push_revive(&mut sql, now, None);
    sql.push(" WHERE trash_unit = ").bind(unit.to_string()).push(" AND ");
    push_subtree(&mut sql, "path", stored, true);
    let folders = sql.build().execute(db.conn()).await?.rows_affected();
    Ok(Counts { folders, items })
}

/// Brings the trashed item `id` back into the live folder `folder_id`, whose TTL is `ttl`. A live
/// item with its title there is a `Conflict`.
pub async fn restore_item(
    db: &mut dyn Db,
    id: Uuid,
    folder_id: Uuid,
    ttl: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE item SET folder_id = ");
    sql.bind(folder_id.to_string()).push(", ");
    push_revive(&mut sql, now, Some(FolderTtl::Of(ttl)));
    sql.push(" WHERE trashed_at IS NOT NULL AND id = ").bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The objects of a deleted item row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemObjects {
    /// The bucket of its source object.
    pub bucket: String,
    /// The source object.
    pub object_key: String,
    /// Its re-encoded rendition in the managed bucket, if any.
    pub encoded_key: Option<String>,
    /// The item's id (as stored), for the webhook event of its delete.
    pub id: String,
    /// Its folder's id (as stored).
    pub folder_id: String,
    /// Its title.
    pub title: String,
}

/// The columns a delete of item rows answers, as [`ItemObjects`].
pub const ITEM_OBJECT_COLUMNS: &str = " RETURNING bucket, object_key, encoded_key, id, folder_id, title";

/// Runs a `DELETE … RETURNING` [`ITEM_OBJECT_COLUMNS`] on item rows.
async fn deleted_objects(db: &mut dyn Db, sql: Sql) -> Result<Vec<ItemObjects>, StoreError> {
    Ok(sql.build_as::<ItemObjects>().fetch_all(db.conn()).await?)
}

/// Deletes up to `limit` (all when `None`) of the items in the folders of trash unit `unit`,
/// whatever their own state; answers their objects. With a limit, rows another purge is deleting
/// right now are skipped on PostgreSQL, not waited for.
pub async fn purge_unit_items(db: &mut dyn Db, unit: Uuid, limit: Option<i64>) -> Result<Vec<ItemObjects>, StoreError> {
    let mut sql = Sql::new("DELETE FROM item WHERE id IN (SELECT id FROM item WHERE folder_id IN ");
    sql.push("(SELECT id FROM folder WHERE trash_unit = ")
        .bind(unit.to_string())
        .push(")");
    if let Some(limit) = limit {
        sql.push(" LIMIT ").bind(limit).push(db.dialect().skip_locked());
    }
    sql.push(")").push(ITEM_OBJECT_COLUMNS);
    deleted_objects(db, sql).await
}

/// Folds into unit `unit` (due at `purge_at`) the trash units whose top folder lies directly in
/// one of its folders: they were trashed on their own before, and go when `unit` goes. Repeats
/// until none is left; answers how many folder rows moved.
pub async fn absorb_nested_units(db: &mut dyn Db, unit: Uuid, purge_at: i64) -> Result<u64, StoreError> {
    let mut moved = 0;
    loop {
        let mut sql = Sql::new("UPDATE folder SET trash_unit = ");
        sql.bind(unit.to_string()).push(", purge_at = ").bind(purge_at);
        sql.push(" WHERE trash_unit IN (SELECT c.trash_unit FROM folder c WHERE c.trashed_at IS NOT NULL");
        sql.push(" AND c.trash_unit <> ").bind(unit.to_string());
        sql.push(" AND c.parent_id IN (SELECT p.id FROM folder p WHERE p.trash_unit = ")
            .bind(unit.to_string())
            .push("))");
        let changed = sql.build().execute(db.conn()).await?.rows_affected();
        if changed == 0 {
            return Ok(moved);
        }
        moved += changed;
    }
}

/// Whether no item is left in the folders of trash unit `unit` (so they may go).
pub async fn unit_is_empty(db: &mut dyn Db, unit: Uuid) -> Result<bool, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM (SELECT 1 FROM item WHERE folder_id IN ");
    sql.push("(SELECT id FROM folder WHERE trash_unit = ")
        .bind(unit.to_string())
        .push(") LIMIT 1) a");
    let (n,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(n == 0)
}

/// Deletes the folder rows of trash unit `unit` (once its items are gone) with the grants on
/// them; answers how many folders.
pub async fn delete_unit_folders(db: &mut dyn Db, unit: Uuid) -> Result<u64, StoreError> {
    super::teams::delete_unit_grants(db, unit).await?;
    super::usage::remove_unit_quotas(db, unit).await?;
    let mut sql = Sql::new("DELETE FROM folder WHERE trash_unit = ");
    sql.bind(unit.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Deletes up to `limit` trashed items that are units of their own and due at `now`; answers
/// their objects.
pub async fn purge_due_items(db: &mut dyn Db, now: i64, limit: i64) -> Result<Vec<ItemObjects>, StoreError> {
    let mut sql = Sql::new("DELETE FROM item WHERE id IN (SELECT id FROM item WHERE purge_at <= ");
    sql.bind(now)
        .push(" AND trash_unit = id ORDER BY purge_at LIMIT ")
        .bind(limit);
    sql.push(db.dialect().skip_locked()).push(")");
    sql.push(" AND purge_at <= ").bind(now).push(ITEM_OBJECT_COLUMNS);
    deleted_objects(db, sql).await
}

/// Up to `limit` trashed folders that are units and due at `now`, with their `purge_at`, oldest first.
pub async fn due_folder_units(db: &mut dyn Db, now: i64, limit: i64) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let mut sql = Sql::new("SELECT id, purge_at FROM folder WHERE purge_at <= ");
    sql.bind(now)
        .push(" AND trash_unit = id ORDER BY purge_at, id LIMIT ")
        .bind(limit);
    let rows: Vec<(String, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(|(id, at)| Ok((parse_id(&id)?, at))).collect()
}

/// A trash unit as the trash list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrashRow {
    /// A folder (with its subtree), else an item.
    pub is_folder: bool,
    /// Its id.
    pub id: Uuid,
    /// The folder's name or the item's title.
    pub name: String,
    /// The folder's path, or for an item the path of the folder it was in.
    pub path: String,
    /// The folder it was in (`None` for a folder at the root).
    pub parent_id: Option<Uuid>,
    /// The item's type (items only).
    pub item_type: Option<String>,
    /// The item's size (items only).
    pub size: Option<i64>,
    /// When it was trashed.
    pub trashed_at: OffsetDateTime,
    /// When the sweep purges it.
    pub purge_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct TrashListRow {
    kind: String,
    id: String,
    name: String,
    path: String,
    parent_id: Option<String>,
    item_type: Option<String>,
    size: Option<i64>,
    trashed_at: i64,
    purge_at: Option<i64>,
}

/// One page of trash units, newest first: those `reader` may restore (from trees they own, or
/// from live folders in the subtrees granted to them), or all when `None`.
pub async fn list(
    db: &mut dyn Db,
    reader: Option<&Reader>,
    after: Option<(i64, Uuid)>,
    limit: u32,
) -> Result<Vec<TrashRow>, StoreError> {
    // `live_parent`: the path of the live folder a unit was in (NULL when that folder is gone or
    // in the trash too). Grants reach a unit through it: they follow live paths, and the unit's
    // own path may belong to another folder by now.
    let mut sql = Sql::new(
        "SELECT kind, id, name, path, parent_id, item_type, size, trashed_at, purge_at FROM (\
         SELECT 'FOLDER' AS kind, f.id AS id, f.name AS name, f.path AS path, f.parent_id AS parent_id, \
         CAST(NULL AS TEXT) AS item_type, CAST(NULL AS BIGINT) AS size, f.trashed_at AS trashed_at, \
         f.purge_at AS purge_at, f.owner AS owner, lp.path AS live_parent, lp.owner AS live_owner FROM folder f \
         LEFT JOIN folder lp ON lp.id = f.parent_id AND lp.trashed_at IS NULL WHERE f.trash_unit = f.id \
         UNION ALL SELECT 'ITEM', i.id, i.title, p.path, i.folder_id, i.item_type, i.size, i.trashed_at, \
         i.purge_at, p.owner, CASE WHEN p.trashed_at IS NULL THEN p.path END, \
         CASE WHEN p.trashed_at IS NULL THEN p.owner END \
         FROM item i JOIN folder p ON p.id = i.folder_id WHERE i.trash_unit = i.id\
         ) t WHERE 1 = 1",
    );
    if let Some(reader) = reader {
        sql.push(" AND (t.owner = ").bind(reader.user.clone());
        sql.push(" OR t.live_owner = ").bind(reader.user.clone());
        push_granted(&mut sql, "t.live_parent", reader);
        sql.push(")");
    }
    let after = after.map(|(at, id)| (SortKey::Int(at), id));
    push_page(&mut sql, "t.trashed_at", "t.id", true, after.as_ref(), limit);
    let rows: Vec<TrashListRow> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|row| {
            Ok(TrashRow {
                is_folder: row.kind == "FOLDER",
                id: parse_id(&row.id)?,
                name: row.name,
                path: display_path(&row.path).to_owned(),
                parent_id: row.parent_id.as_deref().map(parse_id).transpose()?,
                item_type: row.item_type,
                size: row.size,
                trashed_at: from_micros(row.trashed_at),
                purge_at: from_micros(row.purge_at.unwrap_or(row.trashed_at)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_show_as_the_original() {
        let unit = Uuid::nil();
        let path = FolderPath::parse("/a/b:c").expect("valid");
        let stored = stored_path(unit, &path);
        assert_eq!(stored, "00000000-0000-0000-0000-000000000000:/a/b:c");
        assert_eq!(display_path(&stored), "/a/b:c");
        assert_eq!(display_path("/a/b:/c"), "/a/b:/c");
    }
}
