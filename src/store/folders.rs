//! Folder rows: lookups, inserts, subtree moves, lists and summaries. Trashed rows (see
//! [`super::trash`]) are left out of everything here unless a function says otherwise.

use std::sync::LazyLock;

use uuid::Uuid;

use super::clauses::{Reader, push_path_rewrite, push_readable_by, push_subtree};
use super::rows::{TrashMark, corrupt, display_path, parse_id, parse_object, trash_mark};
use super::sql::{Sql, contains_pattern, push_page};
use super::stars::{Starred, push_starred_by};
use super::tallies::{self, TypeCount, kept};
use super::teams::{Grantee, push_reaches};
use super::{Db, Dialect, StoreError, from_micros, to_micros};
use crate::domain::folder::{Folder, FolderOrder, FolderPath, SchedulePause, SyncBinding, Visibility};
use crate::domain::page::SortKey;

/// The columns every folder query selects but the item count (see [`columns`]).
const BASE_COLUMNS: &str = "f.id, f.parent_id, f.name, f.path, f.description, f.client_metadata, f.owner, \
     f.visibility, f.ttl_seconds, f.sync_schedule, f.sync_bucket, f.sync_prefix, f.expires_at, f.created_at, f.updated_at, f.trashed_at, \
     f.trash_unit, f.purge_at, f.schedule_paused_at, f.schedule_paused_reason, \
     (SELECT COUNT(*) FROM folder c WHERE c.parent_id = f.id AND c.trashed_at IS NULL) AS subfolder_count";

/// The columns every folder query selects, counts included. The item count is kept (migration
/// 0023), so reading it costs nothing however many items the folder holds; subfolders are
/// counted on the `folder (parent_id)` index.
fn columns(dialect: Dialect) -> &'static str {
    static SQLITE: LazyLock<String> = LazyLock::new(|| with_item_count(Dialect::Sqlite));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| with_item_count(Dialect::Postgres));
    match dialect {
        Dialect::Sqlite => SQLITE.as_str(),
        Dialect::Postgres => POSTGRES.as_str(),
    }
}

/// [`BASE_COLUMNS`] and the item count of `dialect`.
fn with_item_count(dialect: Dialect) -> String {
    format!("{BASE_COLUMNS}, {} AS item_count", kept(dialect, "items", &[]))
}

/// A folder with the counts shown beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderRecord {
    /// The folder.
    pub folder: Folder,
    /// Direct subfolders.
    pub subfolder_count: i64,
    /// Items directly inside.
    pub item_count: i64,
    /// Where it stands in the trash; `None` for a live folder.
    pub trash: Option<TrashMark>,
}

#[derive(sqlx::FromRow)]
struct FolderRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    path: String,
    description: String,
    client_metadata: String,
    owner: String,
    visibility: String,
    ttl_seconds: Option<i64>,
    sync_schedule: Option<String>,
    sync_bucket: Option<String>,
    sync_prefix: Option<String>,
    expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    trashed_at: Option<i64>,
    trash_unit: Option<String>,
    purge_at: Option<i64>,
    schedule_paused_at: Option<i64>,
    schedule_paused_reason: Option<String>,
    subfolder_count: i64,
    item_count: i64,
}

impl TryFrom<FolderRow> for FolderRecord {
    type Error = StoreError;

    fn try_from(row: FolderRow) -> Result<Self, StoreError> {
        Ok(FolderRecord {
            folder: Folder {
                id: parse_id(&row.id)?,
                parent_id: row.parent_id.as_deref().map(parse_id).transpose()?,
                name: row.name,
                path: FolderPath::stored(display_path(&row.path)),
                description: row.description,
                client_metadata: parse_object(&row.client_metadata)?,
                owner: row.owner,
                visibility: Visibility::parse(&row.visibility).map_err(|e| corrupt("visibility", e))?,
                ttl_seconds: row.ttl_seconds,
                sync_schedule: row.sync_schedule,
                sync: row.sync_bucket.map(|bucket| SyncBinding {
                    bucket,
                    prefix: row.sync_prefix.unwrap_or_default(),
                }),
                expires_at: row.expires_at.map(from_micros),
                schedule_paused: row.schedule_paused_at.map(|since| SchedulePause {
                    since: from_micros(since),
                    reason: row.schedule_paused_reason.unwrap_or_default(),
                }),
                created_at: from_micros(row.created_at),
                updated_at: from_micros(row.updated_at),
            },
            subfolder_count: row.subfolder_count,
            item_count: row.item_count,
            trash: trash_mark(row.trashed_at, row.trash_unit.as_deref(), row.purge_at)?,
        })
    }
}

async fn fetch_one(db: &mut dyn Db, sql: Sql) -> Result<Option<FolderRecord>, StoreError> {
    sql.build_as::<FolderRow>()
        .fetch_optional(db.conn())
        .await?
        .map(FolderRecord::try_from)
        .transpose()
}

/// The live folder with this id.
pub async fn by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<FolderRecord>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {} FROM folder f WHERE f.id = ", columns(db.dialect())));
    sql.bind(id.to_string()).push(" AND f.trashed_at IS NULL");
    fetch_one(db, sql).await
}

/// The live folders with these ids (in no particular order; missing ids are left out).
pub async fn by_ids(db: &mut dyn Db, ids: &[Uuid]) -> Result<Vec<FolderRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM folder f WHERE f.trashed_at IS NULL AND f.id IN (",
        columns(db.dialect())
    ));
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    sql.build_as::<FolderRow>()
        .fetch_all(db.conn())
        .await?
        .into_iter()
        .map(FolderRecord::try_from)
        .collect()
}

/// The live folders at these paths (in no particular order; missing paths are left out).
pub async fn by_paths(db: &mut dyn Db, paths: &[FolderPath]) -> Result<Vec<FolderRecord>, StoreError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM folder f WHERE f.path IN (",
        columns(db.dialect())
    ));
    sql.bind_list(paths.iter().map(|p| p.as_str().to_owned())).push(")");
    sql.build_as::<FolderRow>()
        .fetch_all(db.conn())
        .await?
        .into_iter()
        .map(FolderRecord::try_from)
        .collect()
}

/// The folder with this id, live or trashed.
pub async fn by_id_any(db: &mut dyn Db, id: Uuid) -> Result<Option<FolderRecord>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {} FROM folder f WHERE f.id = ", columns(db.dialect())));
    sql.bind(id.to_string());
    fetch_one(db, sql).await
}

/// The live folder at this path (trashed paths carry their unit's prefix and never match).
pub async fn by_path(db: &mut dyn Db, path: &FolderPath) -> Result<Option<FolderRecord>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM folder f WHERE f.path = ",
        columns(db.dialect())
    ));
    sql.bind(path.as_str().to_owned());
    fetch_one(db, sql).await
}

/// Every folder with a `sync_schedule`, and the schedule.
pub async fn with_sync_schedule(db: &mut dyn Db) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as(
            "SELECT id, sync_schedule FROM folder WHERE sync_schedule IS NOT NULL AND schedule_paused_at IS NULL AND trashed_at IS NULL",
        )
            .fetch_all(db.conn())
            .await?;
    rows.into_iter()
        .map(|(id, schedule)| Ok((parse_id(&id)?, schedule)))
        .collect()
}

/// Records how a sync of folder `id` ended: a success clears its run of failures and lifts a
/// pause; a failure (`Err` with its message) extends the run, and the run's `pause_after`th
/// failure pauses the folder's schedule at `now` (micros). True when this failure paused it.
pub async fn record_sync_outcome(
    db: &mut dyn Db,
    id: Uuid,
    outcome: Result<(), &str>,
    pause_after: u32,
    now: i64,
) -> Result<bool, StoreError> {
    let message = match outcome {
        Ok(()) => {
            resume_schedule(db, id).await?;
            return Ok(false);
        }
        Err(message) => message,
    };
    let mut sql = Sql::new("UPDATE folder SET sync_failures = sync_failures + 1 WHERE id = ");
    sql.bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    let mut sql = Sql::new("UPDATE folder SET schedule_paused_at = ");
    sql.bind(now)
        .push(", schedule_paused_reason = ")
        .bind(message.to_owned());
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.push(" AND sync_schedule IS NOT NULL AND schedule_paused_at IS NULL AND sync_failures >= ")
        .bind(i64::from(pause_after));
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Lifts a pause of folder `id`'s schedule and forgets its run of failed syncs.
pub async fn resume_schedule(db: &mut dyn Db, id: Uuid) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        "UPDATE folder SET sync_failures = 0, schedule_paused_at = NULL, schedule_paused_reason = NULL WHERE id = ",
    );
    sql.bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Inserts a folder; a folder already at its path is a `Conflict`.
pub async fn insert(db: &mut dyn Db, folder: &Folder) -> Result<(), StoreError> {
    insert_sql(folder, "").build().execute(db.conn()).await?;
    Ok(())
}

/// Inserts a folder unless one already holds its path; true when this call inserted it.
pub async fn insert_if_absent(db: &mut dyn Db, folder: &Folder) -> Result<bool, StoreError> {
    let done = insert_sql(folder, " ON CONFLICT (path) DO NOTHING")
        .build()
        .execute(db.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

fn insert_sql(folder: &Folder, suffix: &str) -> Sql {
    let mut sql = Sql::new(
        "INSERT INTO folder (id, parent_id, name, name_folded, path, description, client_metadata, owner, \
         visibility, ttl_seconds, sync_schedule, sync_bucket, sync_prefix, expires_at, created_at, updated_at) VALUES (",
    );
    sql.bind(folder.id.to_string()).push(", ");
    sql.bind(folder.parent_id.map(|p| p.to_string())).push(", ");
    sql.bind(folder.name.clone()).push(", ");
    sql.bind(folder.name.to_lowercase()).push(", ");
    sql.bind(folder.path.as_str().to_owned()).push(", ");
    sql.bind(folder.description.clone()).push(", ");
    sql.bind(serde_json::Value::Object(folder.client_metadata.clone()).to_string())
        .push(", ");
    sql.bind(folder.owner.clone()).push(", ");
    sql.bind(folder.visibility.as_str().to_owned()).push(", ");
    sql.bind(folder.ttl_seconds).push(", ");
    sql.bind(folder.sync_schedule.clone()).push(", ");
    sql.bind(folder.sync.as_ref().map(|s| s.bucket.clone())).push(", ");
    sql.bind(folder.sync.as_ref().map(|s| s.prefix.clone())).push(", ");
    sql.bind(folder.expires_at.map(to_micros)).push(", ");
    sql.bind(to_micros(folder.created_at)).push(", ");
    sql.bind(to_micros(folder.updated_at)).push(")").push(suffix);
    sql
}

/// Writes the editable attributes of `folder` (not its name, path or parent).
pub async fn update_attributes(db: &mut dyn Db, folder: &Folder) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE folder SET description = ");
    sql.bind(folder.description.clone());
    sql.push(", client_metadata = ")
        .bind(serde_json::Value::Object(folder.client_metadata.clone()).to_string());
    sql.push(", visibility = ").bind(folder.visibility.as_str().to_owned());
    sql.push(", ttl_seconds = ").bind(folder.ttl_seconds);
    sql.push(", sync_schedule = ").bind(folder.sync_schedule.clone());
    sql.push(", expires_at = ").bind(folder.expires_at.map(to_micros));
    sql.push(", updated_at = ").bind(to_micros(folder.updated_at));
    sql.push(" WHERE id = ").bind(folder.id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Moves folder `id` from `old_path` to `new_path` under `new_parent`, rewriting the paths of its
/// whole subtree. A folder already at the new path is a `Conflict`.
pub async fn relocate(
    db: &mut dyn Db,
    id: Uuid,
    old_path: &FolderPath,
    new_path: &FolderPath,
    new_parent: Option<Uuid>,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE folder SET parent_id = ");
    sql.bind(new_parent.map(|p| p.to_string()));
    sql.push(", name = ").bind(new_path.name().to_owned());
    sql.push(", name_folded = ").bind(new_path.name().to_lowercase());
    sql.push(", updated_at = ").bind(to_micros(now));
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(db.conn()).await?;

    let mut sql = Sql::new("UPDATE folder SET ");
    push_path_rewrite(&mut sql, old_path.as_str(), new_path.as_str());
    sql.push(" WHERE ");
    push_subtree(&mut sql, "path", old_path.as_str(), true);
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Gives the live folder at `path` and its whole live subtree to `owner` (a tree has one owner:
/// a folder moved or restored into another's tree joins it); how many folders changed hands.
pub async fn set_tree_owner(db: &mut dyn Db, path: &FolderPath, owner: &str) -> Result<u64, StoreError> {
    let mut sql = Sql::new("UPDATE folder SET owner = ");
    sql.bind(owner.to_owned())
        .push(" WHERE trashed_at IS NULL AND owner <> ");
    sql.bind(owner.to_owned()).push(" AND ");
    push_subtree(&mut sql, "path", path.as_str(), true);
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Whether the folder holds any live subfolder or item.
pub async fn is_empty(db: &mut dyn Db, id: Uuid) -> Result<bool, StoreError> {
    let mut sql = Sql::new("SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM folder WHERE parent_id = ");
    sql.bind(id.to_string());
    sql.push(" AND trashed_at IS NULL LIMIT 1) a) + (SELECT COUNT(*) FROM (SELECT 1 FROM item WHERE folder_id = ");
    sql.bind(id.to_string());
    sql.push(" AND trashed_at IS NULL LIMIT 1) b) AS n");
    let (n,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(n == 0)
}

/// Which folders to list and how.
#[derive(Debug, Clone)]
pub struct FolderQuery {
    /// List the children (or with `recursive` all descendants) of this folder; the root when `None`.
    pub parent: Option<FolderPath>,
    /// The parent's id when `parent` is set.
    pub parent_id: Option<Uuid>,
    /// All descendants instead of the children.
    pub recursive: bool,
    /// Only folders this reader may read; everything when `None` (admins).
    pub visible_to: Option<Reader>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Only folders of this owner.
    pub owner: Option<String>,
    /// Only folders not of this owner.
    pub not_owner: Option<String>,
    /// Only folders of this visibility.
    pub visibility: Option<Visibility>,
    /// Only folders this user starred.
    pub starred_by: Option<String>,
    /// Only the folders granted (themselves) to this user, directly or through a group.
    pub granted_to: Option<String>,
    /// Sort column.
    pub order: FolderOrder,
    /// Descending instead of ascending.
    pub desc: bool,
    /// Start after this (sort key, id).
    pub after: Option<(SortKey, Uuid)>,
    /// Most rows to return.
    pub limit: u32,
}

/// One page of folders, in the query's order.
pub async fn list(db: &mut dyn Db, query: &FolderQuery) -> Result<Vec<FolderRecord>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM folder f WHERE f.trashed_at IS NULL AND ",
        columns(db.dialect())
    ));
    match (&query.parent, query.parent_id, query.recursive) {
        (Some(path), _, true) => push_subtree(&mut sql, "f.path", path.as_str(), false),
        (_, Some(id), false) => {
            sql.push("f.parent_id = ").bind(id.to_string());
        }
        (None, _, true) => {
            sql.push("1 = 1");
        }
        _ => {
            sql.push("f.parent_id IS NULL");
        }
    }
    if let Some(reader) = &query.visible_to {
        sql.push(" AND ");
        push_readable_by(&mut sql, reader);
    }
    if let Some(search) = &query.search {
        sql.push(" AND f.name_folded LIKE ")
            .bind(contains_pattern(search))
            .push(" ESCAPE '\\'");
    }
    push_filters(&mut sql, query);
    let column = match query.order {
        FolderOrder::Name => "f.name",
        FolderOrder::CreatedAt => "f.created_at",
    };
    push_page(&mut sql, column, "f.id", query.desc, query.after.as_ref(), query.limit);
    let rows = sql.build_as::<FolderRow>().fetch_all(db.conn()).await?;
    rows.into_iter().map(FolderRecord::try_from).collect()
}

/// Up to `limit` live folders of the subtree at `path` (itself included) that `reader` may read
/// (all when `None`), in path order after `after`: a walk of the tree, a batch at a time.
pub async fn subtree_in_path_order(
    db: &mut dyn Db,
    path: &FolderPath,
    reader: Option<&Reader>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<FolderRecord>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM folder f WHERE f.trashed_at IS NULL AND ",
        columns(db.dialect())
    ));
    push_subtree(&mut sql, "f.path", path.as_str(), true);
    if let Some(reader) = reader {
        sql.push(" AND ");
        push_readable_by(&mut sql, reader);
    }
    if let Some(after) = after {
        sql.push(" AND f.path > ").bind(after.to_owned());
    }
    sql.push(" ORDER BY f.path LIMIT ").bind(i64::from(limit));
    let rows = sql.build_as::<FolderRow>().fetch_all(db.conn()).await?;
    rows.into_iter().map(FolderRecord::try_from).collect()
}

/// Appends the owner, visibility, star and grant filters of `query`.
fn push_filters(sql: &mut Sql, query: &FolderQuery) {
    if let Some(owner) = &query.owner {
        sql.push(" AND f.owner = ").bind(owner.clone());
    }
    if let Some(owner) = &query.not_owner {
        sql.push(" AND f.owner <> ").bind(owner.clone());
    }
    if let Some(visibility) = query.visibility {
        sql.push(" AND f.visibility = ").bind(visibility.as_str().to_owned());
    }
    if let Some(user) = &query.starred_by {
        sql.push(" AND ");
        push_starred_by(sql, "f.id", user, Starred::Folder);
    }
    if let Some(user) = &query.granted_to {
        sql.push(" AND f.id IN (SELECT g.folder_id FROM folder_grant g WHERE ");
        push_reaches(sql, Grantee::Named(user));
        sql.push(")");
    }
}

/// What a folder (or its whole subtree) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Folders directly inside, or in the whole subtree.
    pub subfolders: i64,
    /// Item counts by type.
    pub by_type: Vec<TypeCount>,
}

/// Counts the contents of the folder at `path`, only its direct contents unless `recursive`.
pub async fn summary(db: &mut dyn Db, id: Uuid, path: &FolderPath, recursive: bool) -> Result<Summary, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM folder WHERE trashed_at IS NULL AND ");
    if recursive {
        push_subtree(&mut sql, "path", path.as_str(), false);
    } else {
        sql.push("parent_id = ").bind(id.to_string());
    }
    let (subfolders,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;

    let by_type = tallies::by_type(db, id, path, recursive).await?;
    Ok(Summary { subfolders, by_type })
}
