//! Pages of items: the list query of every item listing and export (one folder or a subtree,
//! filtered, in one of three orders, after a position), read back as one aggregated row.
//!
//! A subtree is listed one of two ways ([`Plan`]): by gathering every item of its folders and
//! sorting them, or folder by folder, taking from each folder's own index only the page's worth
//! of items after the position and sorting those: a cost that grows with the folders of the
//! subtree, not with its items, so deep pages of a big catalog cost what the first one does.

use sqlx::Row;
use uuid::Uuid;

use super::clauses::{Reader, push_readable_by, push_subtree};
use super::folders::kept_items;
use super::items::{COLUMNS, ItemRow};
use super::rows::{TrashMark, corrupt};
use super::sql::{Sql, contains_pattern, json_rows, push_page};
use super::stars::{Starred, push_starred_by};
use super::{Db, Dialect, StoreError};
use crate::domain::folder::FolderPath;
use crate::domain::item::{Item, ItemOrder, ItemType};
use crate::domain::page::SortKey;

/// Which items to list and how.
#[derive(Debug, Clone)]
pub struct ItemQuery {
    /// The folder listed.
    pub folder_id: Uuid,
    /// With `recursive`, the folder's path: list the whole subtree.
    pub subtree: Option<FolderPath>,
    /// With `subtree`: only folders this reader may read; all when `None` (admins).
    pub visible_to: Option<Reader>,
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    /// Only these types; all when empty.
    pub item_types: Vec<ItemType>,
    /// Only tombstones (`true`) or only live items (`false`).
    pub is_tombstone: Option<bool>,
    /// Only items this user starred.
    pub starred_by: Option<String>,
    /// Tell for each item whether this user starred it ([`Listed::starred`]; `false` for all
    /// without a user).
    pub stars_of: Option<String>,
    /// Sort column.
    pub order: ItemOrder,
    /// Descending instead of ascending.
    pub desc: bool,
    /// Start after this (sort key, id).
    pub after: Option<(SortKey, Uuid)>,
    /// Most rows to return.
    pub limit: u32,
}

/// An item of a list, and whether the list's [`ItemQuery::stars_of`] user starred it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The item.
    pub item: Item,
    /// Whether the user starred it.
    pub starred: bool,
}

/// One page of items, in the query's order.
///
/// The page comes back as one row: a JSON array of `[[COLUMNS…], starred]` arrays that the
/// database builds and serde reads. Row by row, sqlx's SQLite driver hands every row from its
/// worker thread over a channel and copies every value twice (to its own row, then to the Any
/// driver's): that was most of the CPU of a list or an export (2026-12-07 profile of an export).
pub async fn list(db: &mut dyn Db, query: &ItemQuery) -> Result<Vec<Listed>, StoreError> {
    let plan = plan(db, query).await?;
    let (column, _) = order_columns(query.order);
    let dir = if query.desc { "DESC" } else { "ASC" };
    let order = format!("{column} {dir}, id {dir}");
    let row = match db.dialect() {
        Dialect::Sqlite => format!("json_array({})", column_names()),
        Dialect::Postgres => format!("json_build_array({})", column_names()),
    };
    let aggregate = json_rows(db.dialect(), &format!("{row}, starred"), Some(&order));
    let mut sql = list_sql(db.dialect(), plan, &format!("SELECT {aggregate} FROM ("), query);
    sql.push(") AS page");
    let (text,): (Option<String>,) = sql.build_as().fetch_one(db.conn()).await?;
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let rows: Vec<(ItemRow, i64)> = serde_json::from_str(&text).map_err(|e| corrupt("a list page", e))?;
    rows.into_iter()
        .map(|(row, starred)| {
            let (item, _) = <(Item, Option<TrashMark>)>::try_from(row)?;
            Ok(Listed {
                item,
                starred: starred != 0,
            })
        })
        .collect()
}

/// [`COLUMNS`] without their table alias: the names a subquery's rows carry.
fn column_names() -> &'static str {
    static NAMES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        COLUMNS
            .split(',')
            .map(|column| column.trim().trim_start_matches("i."))
            .collect::<Vec<_>>()
            .join(", ")
    });
    NAMES.as_str()
}

/// The column a list is sorted by, with its table alias and without.
fn order_columns(order: ItemOrder) -> (&'static str, &'static str) {
    match order {
        ItemOrder::Title => ("title", "i.title"),
        ItemOrder::CreatedAt => ("created_at", "i.created_at"),
        ItemOrder::Size => ("size", "i.size"),
    }
}

/// The database's plan for `list(query)`, one line per step: a diagnostic that shows which
/// index serves a list (tests check every order has one).
pub async fn explain_list(db: &mut dyn Db, query: &ItemQuery) -> Result<String, StoreError> {
    let dialect = db.dialect();
    let plan = plan(db, query).await?;
    let prefix = match dialect {
        Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
        Dialect::Postgres => "EXPLAIN ",
    };
    let rows = list_sql(dialect, plan, prefix, query)
        .build()
        .fetch_all(db.conn())
        .await?;
    let column = match dialect {
        Dialect::Sqlite => "detail",
        Dialect::Postgres => "QUERY PLAN",
    };
    let lines = rows
        .iter()
        .map(|row| row.try_get::<String, _>(column))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

/// How a list reads its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Every item of the folder or subtree, filtered, sorted, then the page.
    Gather,
    /// For each folder of the subtree, the page's worth of its items after the position (from
    /// its `(folder_id, column, id)` index), then the page of those.
    FolderByFolder,
}

/// How many times more items than folders × page size a subtree must hold to be read folder by
/// folder. Reading a page's worth from each folder costs more per row than gathering (an index
/// search per folder, then a sort of folders × page rows): at 1,000,000 items in 1,024 folders
/// (10× their folders × 100) the catalog benchmark found it faster for a first page on SQLite
/// but slower on PostgreSQL and for SQLite's deep pages, so it waits for bigger subtrees.
const FOLDER_BY_FOLDER_RATIO: i64 = 20;

/// The plan for `query`: folder by folder when the subtree's items outnumber its folders times
/// the page size [`FOLDER_BY_FOLDER_RATIO`] times over (one count over the subtree's folder
/// rows, which keep their item counts), except for SQLite's pages after a position; else
/// gathering.
async fn plan(db: &mut dyn Db, query: &ItemQuery) -> Result<Plan, StoreError> {
    let Some(path) = &query.subtree else {
        return Ok(Plan::Gather);
    };
    // SQLite answers a page after a position by gathering in 5-15 ms even at 10,000,000 items
    // (the catalog benchmark; its first page took 2 s), faster than folder by folder (50 ms).
    if db.dialect() == Dialect::Sqlite && query.after.is_some() {
        return Ok(Plan::Gather);
    }
    let mut sql = Sql::new(&format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM({}), 0) AS BIGINT) FROM folder f WHERE ",
        kept_items(db.dialect())
    ));
    push_subtree(&mut sql, "f.path", path.as_str(), true);
    if let Some(reader) = &query.visible_to {
        sql.push(" AND ");
        push_readable_by(&mut sql, reader);
    }
    let (folders, items): (i64, i64) = sql.build_as().fetch_one(db.conn()).await?;
    let page = i64::from(query.limit);
    Ok(
        match folders.saturating_mul(page).saturating_mul(FOLDER_BY_FOLDER_RATIO) < items {
            true => Plan::FolderByFolder,
            false => Plan::Gather,
        },
    )
}

/// The SQL of [`list`] by `plan`, after `prefix`.
fn list_sql(dialect: Dialect, plan: Plan, prefix: &str, query: &ItemQuery) -> Sql {
    let mut sql = Sql::new(&format!("{prefix}SELECT {COLUMNS}, "));
    push_starred_column(&mut sql, query);
    let (_, column) = order_columns(query.order);
    match (&query.subtree, plan) {
        (Some(path), Plan::FolderByFolder) => {
            // Each folder's page is read in a subquery that sees the folder row `f`.
            match dialect {
                Dialect::Postgres => sql.push(" FROM folder f CROSS JOIN LATERAL (SELECT * FROM item i WHERE "),
                // CROSS JOIN: SQLite keeps the folders as the outer loop.
                Dialect::Sqlite => {
                    sql.push(" FROM folder f CROSS JOIN item i WHERE i.rowid IN (SELECT i.rowid FROM item i WHERE ")
                }
            };
            sql.push("i.folder_id = f.id");
            push_item_filters(&mut sql, query);
            push_page(&mut sql, column, "i.id", query.desc, query.after.as_ref(), query.limit);
            sql.push(match dialect {
                Dialect::Postgres => ") i WHERE ",
                Dialect::Sqlite => ") AND ",
            });
            push_subtree_folders(&mut sql, path, query.visible_to.as_ref());
            push_page(&mut sql, column, "i.id", query.desc, None, query.limit);
        }
        (Some(path), Plan::Gather) => {
            sql.push(" FROM item i WHERE i.folder_id IN (SELECT f.id FROM folder f WHERE ");
            push_subtree_folders(&mut sql, path, query.visible_to.as_ref());
            sql.push(")");
            push_item_filters(&mut sql, query);
            push_page(&mut sql, column, "i.id", query.desc, query.after.as_ref(), query.limit);
        }
        (None, _) => {
            sql.push(" FROM item i WHERE i.folder_id = ")
                .bind(query.folder_id.to_string());
            push_item_filters(&mut sql, query);
            push_page(&mut sql, column, "i.id", query.desc, query.after.as_ref(), query.limit);
        }
    }
    sql
}

/// Appends whether the list's [`ItemQuery::stars_of`] user starred each item, as `starred`.
fn push_starred_column(sql: &mut Sql, query: &ItemQuery) {
    match &query.stars_of {
        Some(user) => {
            sql.push("CASE WHEN ");
            push_starred_by(sql, "i.id", user, Starred::Item);
            sql.push(" THEN 1 ELSE 0 END AS starred");
        }
        None => {
            sql.push("0 AS starred");
        }
    }
}

/// Appends "folder `f` lies in subtree `path` (and `reader` may read it)".
fn push_subtree_folders(sql: &mut Sql, path: &FolderPath, reader: Option<&Reader>) {
    push_subtree(sql, "f.path", path.as_str(), true);
    if let Some(reader) = reader {
        sql.push(" AND ");
        push_readable_by(sql, reader);
    }
}

/// Appends ` AND …` for each filter of `query` on item `i`, live items only.
fn push_item_filters(sql: &mut Sql, query: &ItemQuery) {
    sql.push(" AND i.trashed_at IS NULL");
    if let Some(search) = &query.search {
        sql.push(" AND i.title_folded LIKE ")
            .bind(contains_pattern(search))
            .push(" ESCAPE '\\'");
    }
    if !query.item_types.is_empty() {
        sql.push(" AND i.item_type IN (")
            .bind_list(query.item_types.iter().map(|t| t.as_str().to_owned()))
            .push(")");
    }
    if let Some(tombstone) = query.is_tombstone {
        sql.push(" AND i.is_tombstone = ").bind(i64::from(tombstone));
    }
    if let Some(user) = &query.starred_by {
        sql.push(" AND ");
        push_starred_by(sql, "i.id", user, Starred::Item);
    }
}
