//! Pages of items: the list query of every item listing and export (one folder or a subtree,
//! filtered, in one of three orders, after a position), read back as one aggregated row.
//!
//! A list is read one of four ways ([`Plan`]): by gathering every item of its folders and
//! sorting them; from the tombstones' partial index; folder by folder, taking from each
//! folder's own index only the items after the position that can still make the page (up to a
//! bound found from each folder's first item) and sorting those (a cost that grows with the
//! folders of the subtree, not with its items, unless a filter passes few of them; deep pages
//! of a big catalog cost what the first one does); or, for a search that few titles hold, from
//! the titles' trigram index (SQLite's FTS5 table `item_title_search`, PostgreSQL's pg_trgm
//! index), sorting the matches.

use sqlx::Row;
use uuid::Uuid;

use super::clauses::{Reader, push_readable_by, push_subtree};
use super::items::{COLUMNS, ItemRow};
use super::rows::{TrashMark, corrupt};
use super::sql::{Sql, contains_pattern, json_rows, push_page};
use super::stars::{Starred, push_starred_by};
use super::tallies::kept;
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
    /// The items whose title the search index says holds the search (fewer than
    /// [`FEW_MATCHES`] in the whole catalog), filtered, sorted, then the page.
    Matching,
    /// The tombstones of the folder or subtree, from the partial index of each folder's
    /// (when they are few, as what a sync found gone usually is), filtered, sorted, then the
    /// page.
    Tombstones,
    /// For each folder of the subtree, its items after the position that can make the page
    /// (from its `(folder_id, column, id)` index, see [`folder_by_folder_sql`]), then the page
    /// of those.
    FolderByFolder,
}

/// Most titles of the whole catalog the search index may find holding a search for a list to
/// start from them ([`Plan::Matching`]). With more, the search's matches are common enough that
/// reading the folder's items in order finds a page of them soon: at 10,000 in 10,000,000 items,
/// one in 1,000 items. A list of a folder or subtree that holds fewer items than the matches
/// reads its own items instead.
const FEW_MATCHES: i64 = 10_000;

/// Fewest characters a search must have for the search index to serve it: the index holds the
/// titles' trigrams.
const INDEXED_SEARCH_CHARS: usize = 3;

/// The plan for `query`: from the search index when the query searches and the index finds
/// fewer titles holding the search than the folder or subtree holds items, and fewer than
/// [`FEW_MATCHES`]; for a one-folder list, gathered (from the tombstones' index when it asks
/// for tombstones); for a subtree, folder by folder when the items of the types it lists (its
/// tombstones when it asks for those) outnumber its folders times the page size (folder by
/// folder returns at most that many), except for SQLite's pages after a position; else
/// gathered.
async fn plan(db: &mut dyn Db, query: &ItemQuery) -> Result<Plan, StoreError> {
    let gathered = match query.is_tombstone {
        Some(true) => Plan::Tombstones,
        _ => Plan::Gather,
    };
    let mut extent = None;
    if let Some(search) = indexed_search(query) {
        let listed = *extent.insert(listed_extent(db, query).await?);
        let cap = listed.items.clamp(0, FEW_MATCHES);
        if count_matches(db, search, cap).await? < cap {
            return Ok(Plan::Matching);
        }
    }
    if query.subtree.is_none() {
        return Ok(gathered);
    }
    // SQLite answers a page after a position by gathering in 5-15 ms even at 10,000,000 items
    // (the catalog benchmark; its first page took 2 s), faster than folder by folder (17-39 ms
    // for a first page there).
    if db.dialect() == Dialect::Sqlite && query.after.is_some() {
        return Ok(gathered);
    }
    let listed = match extent {
        Some(extent) => extent,
        None => listed_extent(db, query).await?,
    };
    let items = match query.is_tombstone {
        Some(true) => listed.tombstones,
        _ => listed.items,
    };
    let page = i64::from(query.limit);
    Ok(match listed.folders.saturating_mul(page) < items {
        true => Plan::FolderByFolder,
        false => gathered,
    })
}

/// What the folder or subtree a query lists holds, from the folders' kept tallies.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct Extent {
    /// Folders listed.
    folders: i64,
    /// Items they hold of the query's types (of every type when it names none), tombstones
    /// included: a list of a type few items have is gathered, not read folder by folder.
    items: i64,
    /// Of those, tombstones.
    tombstones: i64,
}

/// How many folders the query lists and what they hold, from the folders' kept tallies (one
/// row per folder, not one per item).
async fn listed_extent(db: &mut dyn Db, query: &ItemQuery) -> Result<Extent, StoreError> {
    let dialect = db.dialect();
    let mut sql = Sql::new(&format!(
        "SELECT COUNT(*) AS folders, CAST(COALESCE(SUM({}), 0) AS BIGINT) AS items, \
         CAST(COALESCE(SUM({}), 0) AS BIGINT) AS tombstones FROM folder f WHERE ",
        kept(dialect, "items", &query.item_types),
        kept(dialect, "tombstones", &query.item_types)
    ));
    match &query.subtree {
        Some(path) => push_subtree_folders(&mut sql, path, query.visible_to.as_ref()),
        None => {
            sql.push("f.id = ").bind(query.folder_id.to_string());
        }
    }
    Ok(sql.build_as().fetch_one(db.conn()).await?)
}

/// The query's search when the search index can serve it.
fn indexed_search(query: &ItemQuery) -> Option<&str> {
    query
        .search
        .as_deref()
        .filter(|search| search.chars().count() >= INDEXED_SEARCH_CHARS)
}

/// How many titles of the catalog (trashed items' too) the search index finds holding `search`,
/// counting up to `cap`.
async fn count_matches(db: &mut dyn Db, search: &str, cap: i64) -> Result<i64, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM (");
    push_search_matches(&mut sql, db.dialect(), search);
    sql.push(" LIMIT ").bind(cap).push(") AS matches");
    let (count,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(count)
}

/// Appends a statement that selects, from the search index, the key of every item whose title
/// holds `search` (SQLite's index: its rowid; PostgreSQL's: its id), and maybe a few more: the
/// list's own filter on the title decides.
fn push_search_matches(sql: &mut Sql, dialect: Dialect, search: &str) {
    match dialect {
        Dialect::Sqlite => {
            // The search's trigrams in a row: a phrase, quoted for FTS5.
            let phrase = format!("\"{}\"", search.to_lowercase().replace('"', "\"\""));
            sql.push("SELECT rowid FROM item_title_search WHERE item_title_search MATCH ")
                .bind(phrase)
        }
        // OFFSET 0 plans the matches on their own: from the trigram index, not from a list
        // order's index.
        Dialect::Postgres => sql
            .push("SELECT m.id FROM item m WHERE m.title_folded LIKE ")
            .bind(contains_pattern(search))
            .push(" ESCAPE '\\' OFFSET 0"),
    };
}

/// The SQL of [`list`] by `plan`, after `prefix`: rows of [`COLUMNS`] and `starred`.
fn list_sql(dialect: Dialect, plan: Plan, prefix: &str, query: &ItemQuery) -> Sql {
    if let (Some(path), Plan::FolderByFolder) = (&query.subtree, plan) {
        return folder_by_folder_sql(dialect, prefix, path, query);
    }
    let mut sql = Sql::new(&format!("{prefix}SELECT {COLUMNS}, "));
    push_starred_column(&mut sql, query);
    let (_, column) = order_columns(query.order);
    sql.push(" FROM item i ");
    if (dialect, plan) == (Dialect::Sqlite, Plan::Tombstones) {
        // SQLite, without statistics, would take another partial index.
        sql.push("INDEXED BY item_folder_tombstones ");
    }
    sql.push("WHERE ");
    if let (Plan::Matching, Some(search)) = (plan, indexed_search(query)) {
        sql.push(match dialect {
            Dialect::Sqlite => "i.rowid IN (",
            Dialect::Postgres => "i.id IN (",
        });
        push_search_matches(&mut sql, dialect, search);
        // `+`: SQLite reads the matches, not the folder's index.
        sql.push(match dialect {
            Dialect::Sqlite => ") AND +",
            Dialect::Postgres => ") AND ",
        });
    }
    match &query.subtree {
        Some(path) => {
            sql.push("i.folder_id IN (SELECT f.id FROM folder f WHERE ");
            push_subtree_folders(&mut sql, path, query.visible_to.as_ref());
            sql.push(")")
        }
        None => sql.push("i.folder_id = ").bind(query.folder_id.to_string()),
    };
    push_item_filters(&mut sql, query);
    push_page(&mut sql, column, "i.id", query.desc, query.after.as_ref(), query.limit);
    sql
}

/// The SQL of a [`Plan::FolderByFolder`] list of subtree `path`, after `prefix`.
///
/// First each folder's first item after the position (`folder_firsts`: one index search per
/// folder). The page's last item comes no later than the page-size-th of those firsts
/// (`page_bound`), since that many items come no later than it. So only the folders whose first
/// item comes no later than the bound are read further, from their first item up to the bound
/// (a page's worth at most), and the page is the first of those: in a catalog whose folders
/// hold alike names, sizes or times that is a few items per folder, about folders + page size
/// index entries rather than folders × page size. A filter that few items pass still reads
/// each folder up to its first match, once. When fewer folders than a page hold any item there
/// is no bound, and each of them gives its page's worth.
fn folder_by_folder_sql(dialect: Dialect, prefix: &str, path: &FolderPath, query: &ItemQuery) -> Sql {
    let (_, column) = order_columns(query.order);
    let dir = if query.desc { "DESC" } else { "ASC" };
    let mut sql = Sql::new(&format!(
        "{prefix}WITH folder_firsts AS (SELECT f.id AS folder_id, {column} AS first_key, \
         i.id AS first_id FROM folder f CROSS JOIN "
    ));
    push_folder_items(&mut sql, dialect, "f.id", query, "", query.after.as_ref(), 1);
    push_subtree_folders(&mut sql, path, query.visible_to.as_ref());
    sql.push(&format!(
        "), page_bound AS (SELECT first_key AS bound_key, first_id AS bound_id FROM folder_firsts \
         ORDER BY first_key {dir}, first_id {dir} LIMIT 1 OFFSET "
    ))
    .bind(i64::from(query.limit.saturating_sub(1)))
    .push(") SELECT * FROM (");
    push_folders_page(&mut sql, dialect, query, true);
    sql.push(") AS bounded UNION ALL SELECT * FROM (");
    push_folders_page(&mut sql, dialect, query, false);
    sql.push(") AS unbounded");
    sql
}

/// Appends the page of the items each folder of `folder_firsts` gives from its first item on:
/// up to `page_bound` when `bounded` (and only for the folders whose first item comes no later
/// than it), else a page's worth each, for when there is no bound.
fn push_folders_page(sql: &mut Sql, dialect: Dialect, query: &ItemQuery, bounded: bool) {
    let (_, column) = order_columns(query.order);
    // "No later than" and "no earlier than", in the list's order.
    let (through, from) = if query.desc { (">=", "<=") } else { ("<=", ">=") };
    sql.push(&format!("SELECT {COLUMNS}, "));
    push_starred_column(sql, query);
    let mut range = format!(" AND ({column}, i.id) {from} (x.first_key, x.first_id)");
    if bounded {
        sql.push(" FROM page_bound b CROSS JOIN folder_firsts x CROSS JOIN ");
        range.push_str(&format!(" AND ({column}, i.id) {through} (b.bound_key, b.bound_id)"));
    } else {
        sql.push(" FROM folder_firsts x CROSS JOIN ");
    }
    push_folder_items(sql, dialect, "x.folder_id", query, &range, None, query.limit);
    match bounded {
        true => sql.push(&format!(
            "(x.first_key, x.first_id) {through} (b.bound_key, b.bound_id)"
        )),
        false => sql.push("NOT EXISTS (SELECT 1 FROM page_bound)"),
    };
    push_page(sql, column, "i.id", query.desc, None, query.limit);
}

/// Appends, as item rows `i` joined to the rows before them, the first `take` items of the
/// folder whose id is `folder` (an SQL expression over those rows) that pass the query's
/// filters and `range` (` AND …` conditions), after `after`, read from the folder's own index;
/// then ` WHERE ` or ` AND `, for the conditions on the joined rows that follow.
fn push_folder_items(
    sql: &mut Sql,
    dialect: Dialect,
    folder: &str,
    query: &ItemQuery,
    range: &str,
    after: Option<&(SortKey, Uuid)>,
    take: u32,
) {
    let (_, column) = order_columns(query.order);
    // A subquery that sees the rows before it. SQLite has no LATERAL: a correlated
    // `rowid IN (…)`, with CROSS JOIN keeping the joins in their written order.
    sql.push(match dialect {
        Dialect::Postgres => "LATERAL (SELECT * FROM item i WHERE ",
        Dialect::Sqlite => "item i WHERE i.rowid IN (SELECT i.rowid FROM item i WHERE ",
    });
    sql.push(&format!("i.folder_id = {folder}"));
    push_item_filters(sql, query);
    sql.push(range);
    push_page(sql, column, "i.id", query.desc, after, take);
    sql.push(match dialect {
        Dialect::Postgres => ") i WHERE ",
        Dialect::Sqlite => ") AND ",
    });
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
    // A literal, not a parameter: the tombstones' partial index is chosen by it.
    match query.is_tombstone {
        Some(true) => sql.push(" AND i.is_tombstone = 1"),
        Some(false) => sql.push(" AND i.is_tombstone = 0"),
        None => sql,
    };
    if let Some(user) = &query.starred_by {
        sql.push(" AND ");
        push_starred_by(sql, "i.id", user, Starred::Item);
    }
}
