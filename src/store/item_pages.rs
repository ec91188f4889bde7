//! Pages of items: the list query of every item listing and export (one folder or a subtree,
//! filtered, in one of three orders, after a position), read back as one aggregated row.
//!
//! A list is read one of four ways ([`Plan`]): by gathering every item of its folders and
//! sorting them; from the tombstones' partial index; folder by folder, taking from each
//! folder's own index only the items after the position that can still make the page (up to a
//! bound found from each folder's first item) and sorting those (a cost that grows with the
//! folders of the subtree, not with its items, so deep pages of a big catalog cost what the
//! first one does); or, for a search that few titles hold, from the titles' trigram index
//! (SQLite's FTS5 table `item_title_search`, PostgreSQL's pg_trgm index), sorting the matches.

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
/// for tombstones); for a subtree, folder by folder when the items it lists (its tombstones
/// when it asks for those) outnumber its folders times the page size (folder by folder reads
/// at most that many), except for SQLite's pages after a position; else gathered.
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
    // (the catalog benchmark; its first page took 2 s), faster than folder by folder (50 ms).
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
    /// Items they hold, tombstones included.
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
        kept(dialect, "items"),
        kept(dialect, "tombstones")
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
/// Each folder's first item after the position bounds the page: the page's last item comes no
/// later than the page-size-th of those firsts (`page_bound`), since that many items come no
/// later than it. So each folder is read only up to that bound (at most a page of it), which is
/// usually a few items rather than a page: 1,024 folders of an ordered subtree cost about
/// 1,024 + 100 index entries, not 102,400. When fewer folders than a page hold any item, there
/// is no bound and each folder gives its page's worth.
fn folder_by_folder_sql(dialect: Dialect, prefix: &str, path: &FolderPath, query: &ItemQuery) -> Sql {
    let (_, column) = order_columns(query.order);
    let mut sql = Sql::new(&format!(
        "{prefix}WITH page_bound AS (SELECT {column} AS bound_key, i.id AS bound_id"
    ));
    push_folders_pages(&mut sql, dialect, path, query, Reach::First);
    sql.push(" OFFSET ")
        .bind(i64::from(query.limit.saturating_sub(1)))
        .push(&format!(") SELECT * FROM (SELECT {COLUMNS}, "));
    push_starred_column(&mut sql, query);
    push_folders_pages(&mut sql, dialect, path, query, Reach::ThroughBound);
    sql.push(&format!(") AS bounded UNION ALL SELECT * FROM (SELECT {COLUMNS}, "));
    push_starred_column(&mut sql, query);
    push_folders_pages(&mut sql, dialect, path, query, Reach::Unbounded);
    sql.push(") AS unbounded");
    sql
}

/// How much of each folder [`push_folders_pages`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Its first item after the position.
    First,
    /// Its items up to `page_bound` (a page's worth at most), when there is a bound.
    ThroughBound,
    /// A page's worth of its items, when there is no bound.
    Unbounded,
}

/// Appends ` FROM … WHERE … ORDER BY … LIMIT …` over the items `i` that each folder `f` of
/// subtree `path` gives by `reach`, in the query's order: the page of those.
fn push_folders_pages(sql: &mut Sql, dialect: Dialect, path: &FolderPath, query: &ItemQuery, reach: Reach) {
    let (_, column) = order_columns(query.order);
    sql.push(" FROM ");
    if reach == Reach::ThroughBound {
        sql.push("page_bound b CROSS JOIN ");
    }
    // Each folder's items are read in a subquery that sees the folder row `f`.
    match dialect {
        Dialect::Postgres => sql.push("folder f CROSS JOIN LATERAL (SELECT * FROM item i WHERE "),
        // CROSS JOIN: SQLite keeps the folders as the outer loop.
        Dialect::Sqlite => sql.push("folder f CROSS JOIN item i WHERE i.rowid IN (SELECT i.rowid FROM item i WHERE "),
    };
    sql.push("i.folder_id = f.id");
    push_item_filters(sql, query);
    if reach == Reach::ThroughBound {
        let cmp = if query.desc { ">=" } else { "<=" };
        sql.push(&format!(" AND ({column}, i.id) {cmp} (b.bound_key, b.bound_id)"));
    }
    // Each folder gives at most as many items as the page takes.
    let take = match reach {
        Reach::First => 1,
        Reach::ThroughBound | Reach::Unbounded => query.limit,
    };
    push_page(sql, column, "i.id", query.desc, query.after.as_ref(), take);
    sql.push(match dialect {
        Dialect::Postgres => ") i WHERE ",
        Dialect::Sqlite => ") AND ",
    });
    push_subtree_folders(sql, path, query.visible_to.as_ref());
    if reach == Reach::Unbounded {
        sql.push(" AND NOT EXISTS (SELECT 1 FROM page_bound)");
    }
    push_page(sql, column, "i.id", query.desc, None, take);
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
