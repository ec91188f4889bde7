//! What each folder directly holds, kept per item type in `folder_tally` by triggers on `item`
//! (migration 0023): items (not trashed; tombstones included), tombstones, and bytes of the live
//! ones. A folder's item count and a summary, recursive or not, read these rows instead of the
//! items. SQLite's triggers change the rows themselves; PostgreSQL's record each statement's
//! changes in `folder_tally_change` until [`fold`] adds them in, so what a folder holds there is
//! its rows plus its pending changes. [`recount`] checks the rows against the items.

use uuid::Uuid;

use super::clauses::push_subtree;
use super::rows::{display_path, parse_id};
use super::sql::Sql;
use super::{Db, Dialect, StoreError};
use crate::domain::folder::FolderPath;
use crate::domain::item::ItemType;

/// The kept count `column` (`items` or `tombstones`) of what folder `f` directly holds, of
/// `types` only unless that is empty, as an SQL expression.
pub(super) fn kept(dialect: Dialect, column: &str, types: &[ItemType]) -> String {
    let of_types = |alias: &str| match types {
        [] => String::new(),
        // The types' names are fixed words, safe to write into the statement.
        types => format!(
            " AND {alias}.item_type IN ({})",
            types
                .iter()
                .map(|t| format!("'{}'", t.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let kept = format!(
        "(SELECT COALESCE(SUM(t.{column}), 0) FROM folder_tally t WHERE t.folder_id = f.id{})",
        of_types("t")
    );
    match dialect {
        Dialect::Sqlite => kept,
        Dialect::Postgres => format!(
            "CAST({kept} + (SELECT COALESCE(SUM(c.{column}), 0) FROM folder_tally_change c \
             WHERE c.folder_id = f.id{}) AS BIGINT)",
            of_types("c")
        ),
    }
}

/// The kept rows (and on PostgreSQL the pending changes) of every folder, as a table of
/// `folder_id, item_type, items, tombstones, bytes`.
fn kept_rows(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "folder_tally",
        Dialect::Postgres => {
            "(SELECT folder_id, item_type, items, tombstones, bytes FROM folder_tally \
             UNION ALL SELECT folder_id, item_type, items, tombstones, bytes FROM folder_tally_change)"
        }
    }
}

/// Adds the changes PostgreSQL's triggers recorded into the kept rows, in one statement (the
/// changes it takes are those committed before it; a concurrent fold skips them). Nothing to do
/// on SQLite, whose triggers change the rows themselves.
pub async fn fold(db: &mut dyn Db) -> Result<(), StoreError> {
    if db.dialect() == Dialect::Sqlite {
        return Ok(());
    }
    let sql = Sql::new(
        "WITH taken AS (DELETE FROM folder_tally_change RETURNING *), \
         sums AS (SELECT folder_id, item_type, SUM(items) AS items, SUM(tombstones) AS tombstones, \
         SUM(bytes) AS bytes FROM taken GROUP BY folder_id, item_type) \
         INSERT INTO folder_tally (folder_id, item_type, items, tombstones, bytes) \
         SELECT folder_id, item_type, items, tombstones, bytes FROM sums \
         ON CONFLICT (folder_id, item_type) DO UPDATE SET items = folder_tally.items + excluded.items, \
         tombstones = folder_tally.tombstones + excluded.tombstones, bytes = folder_tally.bytes + excluded.bytes",
    );
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// What the items of one type in a folder (or a subtree) come to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TypeCount {
    /// The item type.
    pub item_type: String,
    /// Items of that type, tombstones included.
    pub items: i64,
    /// Of those, tombstones.
    pub tombstones: i64,
    /// Total bytes of the live (non-tombstone) items.
    pub bytes: i64,
}

/// What the folder `id` at `path` holds by type, from the kept rows: only its direct contents
/// unless `recursive`. Types it holds none of are left out.
pub async fn by_type(
    db: &mut dyn Db,
    id: Uuid,
    path: &FolderPath,
    recursive: bool,
) -> Result<Vec<TypeCount>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT item_type, CAST(SUM(items) AS BIGINT) AS items, CAST(SUM(tombstones) AS BIGINT) AS tombstones, \
         CAST(SUM(bytes) AS BIGINT) AS bytes FROM {} AS t WHERE ",
        kept_rows(db.dialect())
    ));
    if recursive {
        sql.push("t.folder_id IN (SELECT f.id FROM folder f WHERE ");
        push_subtree(&mut sql, "f.path", path.as_str(), true);
        sql.push(" AND f.trashed_at IS NULL)");
    } else {
        sql.push("t.folder_id = ").bind(id.to_string());
    }
    sql.push(" GROUP BY item_type HAVING SUM(items) <> 0 ORDER BY item_type");
    Ok(sql.build_as::<TypeCount>().fetch_all(db.conn()).await?)
}

/// A folder whose kept item count a recount found wrong, and what it was set to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCountDrift {
    /// The folder.
    pub folder_id: Uuid,
    /// Its path.
    pub path: String,
    /// What its count said.
    pub counted: i64,
    /// How many items it holds (what the count says now).
    pub actual: i64,
}

/// The rows `folder_tally` must hold, counted from the items.
const COUNTED_ROWS: &str = "SELECT folder_id, item_type, COUNT(*) AS items, SUM(is_tombstone) AS tombstones, \
     SUM(CASE WHEN is_tombstone = 0 THEN size ELSE 0 END) AS bytes FROM item WHERE trashed_at IS NULL \
     GROUP BY folder_id, item_type";

/// Counts what every folder directly holds, rewrites the kept rows from those counts (item
/// counts, tombstones and bytes alike), and answers the folders whose item count had drifted.
/// Run it where no write is half done (the usage recount's exclusive tree lock).
pub async fn recount(db: &mut dyn Db) -> Result<Vec<ItemCountDrift>, StoreError> {
    fold(db).await?;
    let sql = Sql::new(
        "SELECT f.id, f.path, COALESCE(kept.items, 0), COALESCE(counted.items, 0) FROM folder f \
         LEFT JOIN (SELECT folder_id, CAST(SUM(items) AS BIGINT) AS items FROM folder_tally GROUP BY folder_id) kept \
         ON kept.folder_id = f.id \
         LEFT JOIN (SELECT folder_id, COUNT(*) AS items FROM item WHERE trashed_at IS NULL GROUP BY folder_id) counted \
         ON counted.folder_id = f.id \
         WHERE COALESCE(kept.items, 0) <> COALESCE(counted.items, 0) ORDER BY f.path",
    );
    let rows: Vec<(String, String, i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    Sql::new("DELETE FROM folder_tally").build().execute(db.conn()).await?;
    Sql::new(&format!(
        "INSERT INTO folder_tally (folder_id, item_type, items, tombstones, bytes) {COUNTED_ROWS}"
    ))
    .build()
    .execute(db.conn())
    .await?;
    rows.into_iter()
        .map(|(id, path, counted, actual)| {
            Ok(ItemCountDrift {
                folder_id: parse_id(&id)?,
                path: display_path(&path).to_owned(),
                counted,
                actual,
            })
        })
        .collect()
}
