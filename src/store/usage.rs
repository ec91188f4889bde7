//! Usage counters and quotas. Every folder with a quota (`folder_quota`) counts the live items of
//! its subtree; every user (`user_usage`) counts the live items of the trees they own. A live
//! item is neither trashed nor a tombstone.
//!
//! Whatever changes which items are live, their size or their folder gathers the change in a
//! [`Ledger`] inside its write transaction (what leaves before it writes, what arrives after)
//! and [`Ledger::settle`]s it before committing: one counter update per holder, which refuses
//! with [`QuotaExceeded`] when an increase would pass the holder's limit. The update's own
//! condition is the check, so concurrent writers cannot overshoot a limit (PostgreSQL re-checks
//! it on the locked row; SQLite has one writer). [`recount_all`] verifies the counters.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::clauses::push_subtree;
use super::rows::parse_id;
use super::sql::Sql;
use super::{Db, StoreError};
use crate::domain::quota::{Holder, Quota, QuotaExceeded, Usage};

/// The most ids one statement binds.
const CHUNK: usize = 1_000;

/// The SQL of the usage of live items in `item` rows (aliased `i`).
const LIVE_USAGE: &str = "CAST(COALESCE(SUM(i.size), 0) AS BIGINT), COUNT(i.id)";

/// The condition that keeps live `item` rows (aliased `i`).
const LIVE: &str = "i.trashed_at IS NULL AND i.is_tombstone = 0";

/// Usage changes gathered in a write transaction, per holder, until [`settle`](Self::settle).
#[derive(Debug, Default)]
pub struct Ledger {
    /// By holder (a folder by id alone: a moved folder's quota is one holder before and after).
    changes: BTreeMap<HolderKey, (Holder, Usage)>,
}

/// What tells holders apart, in the order they are settled.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HolderKey {
    Folder(Uuid),
    User(String),
}

impl From<&Holder> for HolderKey {
    fn from(holder: &Holder) -> Self {
        match holder {
            Holder::Folder(id, _) => HolderKey::Folder(*id),
            Holder::User(name) => HolderKey::User(name.clone()),
        }
    }
}

impl Ledger {
    /// Adds `usage` arriving in each folder to the holders over that folder now.
    pub async fn charge(&mut self, db: &mut dyn Db, arriving: &[(Uuid, Usage)]) -> Result<(), StoreError> {
        self.record(db, arriving, false).await
    }

    /// Takes `usage` leaving each folder off the holders over that folder now.
    pub async fn release(&mut self, db: &mut dyn Db, leaving: &[(Uuid, Usage)]) -> Result<(), StoreError> {
        self.record(db, leaving, true).await
    }

    /// A ledger for a change to items `ids`: what their live ones hold now leaves where they
    /// are. End it with [`after_items`](Self::after_items).
    pub async fn before_items(db: &mut dyn Db, ids: &[Uuid]) -> Result<Self, StoreError> {
        let mut ledger = Self::default();
        let usage = of_items(db, ids).await?;
        ledger.release(db, &usage).await?;
        Ok(ledger)
    }

    /// After the change: what the live ones among `ids` hold arrives where they are now, and the
    /// ledger [settles](Self::settle).
    pub async fn after_items(mut self, db: &mut dyn Db, ids: &[Uuid]) -> Result<(), StoreError> {
        let usage = of_items(db, ids).await?;
        self.charge(db, &usage).await?;
        self.settle(db).await
    }

    /// A ledger for a change to folder `top`'s subtree (a move, a trash, a restore): what its
    /// live items hold now leaves the holders over `top`. End it with
    /// [`after_subtree`](Self::after_subtree).
    pub async fn before_subtree(db: &mut dyn Db, top: Uuid) -> Result<Self, StoreError> {
        let mut ledger = Self::default();
        if let Some(path) = path_of(db, top).await? {
            let usage = of_path(db, &path).await?;
            ledger.release(db, &[(top, usage)]).await?;
        }
        Ok(ledger)
    }

    /// After the change: what the live items of `top`'s subtree hold arrives at the holders over
    /// `top` now; the quotas below `top` are recounted, and the ledger
    /// [settles](Self::settle).
    pub async fn after_subtree(mut self, db: &mut dyn Db, top: Uuid) -> Result<(), StoreError> {
        let path = path_of(db, top).await?;
        if let Some(path) = &path {
            let usage = of_path(db, path).await?;
            self.charge(db, &[(top, usage)]).await?;
        }
        self.settle(db).await?;
        if let Some(path) = &path {
            recount_below(db, path).await?;
        }
        Ok(())
    }

    async fn record(&mut self, db: &mut dyn Db, changes: &[(Uuid, Usage)], leaving: bool) -> Result<(), StoreError> {
        let changes: Vec<&(Uuid, Usage)> = changes.iter().filter(|(_, usage)| !usage.is_zero()).collect();
        if changes.is_empty() {
            return Ok(());
        }
        let folders: Vec<Uuid> = changes
            .iter()
            .map(|(id, _)| *id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let holders = holders_over(db, &folders).await?;
        for (folder, usage) in changes {
            for holder in holders.get(folder).into_iter().flatten() {
                let (_, entry) = self
                    .changes
                    .entry(HolderKey::from(holder))
                    .or_insert_with(|| (holder.clone(), Usage::default()));
                *entry = if leaving {
                    entry.minus(*usage)
                } else {
                    entry.plus(*usage)
                };
            }
        }
        Ok(())
    }

    /// Writes the gathered changes, holder by holder in one order (so that two transactions
    /// never wait on each other's holders crosswise), all or none: when an increase would pass
    /// a limit, the holders written before it are put back and the answer is
    /// [`StoreError::QuotaExceeded`]. The transaction stays usable, so a job may fail one unit
    /// and go on with the next.
    pub async fn settle(self, db: &mut dyn Db) -> Result<(), StoreError> {
        let mut written: Vec<(Holder, Usage)> = Vec::new();
        for (_, (holder, change)) in self.changes {
            if change.is_zero() {
                continue;
            }
            if change_holder(db, &holder, change, true).await? {
                written.push((holder, change));
                continue;
            }
            let Some(refusal) = refusal(db, holder, change).await? else {
                // The quota was removed meanwhile: nothing to count on it.
                continue;
            };
            for (holder, change) in written {
                change_holder(db, &holder, Usage::default().minus(change), false).await?;
            }
            crate::metrics::quota_refused(match refusal.holder {
                Holder::Folder(..) => "folder",
                Holder::User(_) => "user",
            });
            return Err(refusal.into());
        }
        Ok(())
    }
}

/// Adds `change` to `holder`'s counter, with `checked` only if it stays within its limits;
/// false if it would not (or a folder's quota is gone).
async fn change_holder(db: &mut dyn Db, holder: &Holder, change: Usage, checked: bool) -> Result<bool, StoreError> {
    match holder {
        Holder::Folder(id, _) => change_folder(db, *id, change, checked).await,
        Holder::User(name) => change_user(db, name, change, checked).await,
    }
}

/// Charges `usage` arriving in `folder` at once: refused with [`StoreError::QuotaExceeded`]
/// past a quota over it.
pub async fn admit(db: &mut dyn Db, folder: Uuid, usage: Usage) -> Result<(), StoreError> {
    let mut ledger = Ledger::default();
    ledger.charge(db, &[(folder, usage)]).await?;
    ledger.settle(db).await
}

/// For each folder of `folders`, the holders over it: the folders with a quota at it or above
/// it, and its owner.
async fn holders_over(db: &mut dyn Db, folders: &[Uuid]) -> Result<HashMap<Uuid, Vec<Holder>>, StoreError> {
    let mut places: Vec<(Uuid, String, String)> = Vec::with_capacity(folders.len());
    for chunk in folders.chunks(CHUNK) {
        // Items in a trashed folder count for nobody.
        let mut sql = Sql::new("SELECT id, path, owner FROM folder WHERE trashed_at IS NULL AND id IN (");
        sql.bind_list(chunk.iter().map(Uuid::to_string)).push(")");
        let rows: Vec<(String, String, String)> = sql.build_as().fetch_all(db.conn()).await?;
        for (id, path, owner) in rows {
            places.push((parse_id(&id)?, path, owner));
        }
    }
    let mut ancestors: HashSet<&str> = HashSet::new();
    for (_, path, _) in &places {
        ancestors.extend(ancestors_or_self(path));
    }
    let mut quota_folders: HashMap<String, Uuid> = HashMap::new();
    let ancestors: Vec<&str> = ancestors.into_iter().collect();
    for chunk in ancestors.chunks(CHUNK) {
        let mut sql = Sql::new("SELECT q.folder_id, f.path FROM folder_quota q JOIN folder f ON f.id = q.folder_id");
        sql.push(" WHERE f.trashed_at IS NULL AND f.path IN (")
            .bind_list(chunk.iter().map(|p| (*p).to_owned()))
            .push(")");
        let rows: Vec<(String, String)> = sql.build_as().fetch_all(db.conn()).await?;
        for (id, path) in rows {
            quota_folders.insert(path, parse_id(&id)?);
        }
    }
    Ok(places
        .into_iter()
        .map(|(id, path, owner)| {
            let mut holders: Vec<Holder> = ancestors_or_self(&path)
                .filter_map(|p| quota_folders.get(p).map(|q| Holder::Folder(*q, p.to_owned())))
                .collect();
            holders.push(Holder::User(owner));
            (id, holders)
        })
        .collect())
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c`.
fn ancestors_or_self(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

/// Appends ` AND used + Δ <= max` for each dimension `change` increases.
fn push_within_limits(sql: &mut Sql, table: &str, change: Usage, dimensions: &[&str]) {
    for dimension in dimensions {
        let delta = if *dimension == "bytes" {
            change.bytes
        } else {
            change.items
        };
        if delta > 0 {
            sql.push(&format!(
                " AND ({table}.max_{dimension} IS NULL OR {table}.used_{dimension} + "
            ))
            .bind(delta)
            .push(&format!(" <= {table}.max_{dimension})"));
        }
    }
}

/// Adds `change` to folder quota `id`'s usage, with `checked` only if it stays within its
/// limits; false if not.
async fn change_folder(db: &mut dyn Db, id: Uuid, change: Usage, checked: bool) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE folder_quota SET used_bytes = used_bytes + ");
    sql.bind(change.bytes)
        .push(", used_items = used_items + ")
        .bind(change.items)
        .push(" WHERE folder_id = ")
        .bind(id.to_string());
    if checked {
        push_within_limits(&mut sql, "folder_quota", change, &["bytes", "items"]);
    }
    Ok(sql.build().execute(db.conn()).await?.rows_affected() > 0)
}

/// Adds `change` to user `name`'s usage (a first row for them if they had none), with `checked`
/// only if it stays within their byte limit; false if not.
async fn change_user(db: &mut dyn Db, name: &str, change: Usage, checked: bool) -> Result<bool, StoreError> {
    let mut sql = Sql::new("INSERT INTO user_usage (user_name, used_bytes, used_items) VALUES (");
    sql.bind(name.to_owned())
        .push(", ")
        .bind(change.bytes)
        .push(", ")
        .bind(change.items)
        .push(") ON CONFLICT (user_name) DO UPDATE SET used_bytes = user_usage.used_bytes + ")
        .bind(change.bytes)
        .push(", used_items = user_usage.used_items + ")
        .bind(change.items)
        .push(" WHERE 1 = 1");
    if checked {
        push_within_limits(&mut sql, "user_usage", change, &["bytes"]);
    }
    Ok(sql.build().execute(db.conn()).await?.rows_affected() > 0)
}

/// The refusal for `change` on `holder`: the first limit it passes, with the usage now; `None`
/// when the holder is a folder whose quota is gone.
async fn refusal(db: &mut dyn Db, holder: Holder, change: Usage) -> Result<Option<QuotaExceeded>, StoreError> {
    let (quota, used) = match &holder {
        Holder::Folder(id, _) => match folder_quota(db, *id).await? {
            Some(found) => found,
            None => return Ok(None),
        },
        Holder::User(name) => {
            let (max_bytes, used) = user_usage(db, name).await?;
            (
                Quota {
                    max_bytes,
                    max_items: None,
                },
                used,
            )
        }
    };
    let limits = [
        ("bytes", quota.max_bytes, used.bytes, change.bytes),
        ("items", quota.max_items, used.items, change.items),
    ];
    let over = limits
        .iter()
        .find(|(_, limit, used, adding)| limit.is_some_and(|l| *adding > 0 && used + adding > l))
        .or_else(|| {
            limits
                .iter()
                .find(|(_, limit, _, adding)| limit.is_some() && *adding > 0)
        })
        .unwrap_or(&limits[0]);
    let (unit, limit, used, adding) = *over;
    Ok(Some(QuotaExceeded {
        holder,
        unit,
        limit: limit.unwrap_or_default(),
        used,
        adding,
    }))
}

/// What the live items among `ids` hold, per folder.
pub async fn of_items(db: &mut dyn Db, ids: &[Uuid]) -> Result<Vec<(Uuid, Usage)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = db.dialect();
    of_rows(db, |sql| {
        sql.push_in_json(dialect, "id", ids.iter().map(Uuid::to_string));
    })
    .await
}

/// What the live `item` rows that `filter` (appended after `WHERE … AND `) keeps hold, per
/// folder. The rows are locked (on PostgreSQL) until the transaction ends, so a concurrent change
/// of the same items waits, then counts what this one left.
pub(crate) async fn of_rows(db: &mut dyn Db, filter: impl FnOnce(&mut Sql)) -> Result<Vec<(Uuid, Usage)>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT i.folder_id, {LIVE_USAGE} FROM (SELECT folder_id, size, id FROM item WHERE trashed_at IS NULL AND is_tombstone = 0 AND "
    ));
    filter(&mut sql);
    sql.push(db.dialect().for_update()).push(") i GROUP BY i.folder_id");
    let rows: Vec<(String, i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(folder, bytes, items)| Ok((parse_id(&folder)?, Usage { bytes, items })))
        .collect()
}

/// Folder `id`'s path (live or trashed), if it exists.
async fn path_of(db: &mut dyn Db, id: Uuid) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new("SELECT path FROM folder WHERE id = ");
    sql.bind(id.to_string());
    Ok(sql
        .build_as::<(String,)>()
        .fetch_optional(db.conn())
        .await?
        .map(|(path,)| path))
}

/// What the live items below (and in) the folder at `path` hold.
async fn of_path(db: &mut dyn Db, path: &str) -> Result<Usage, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {LIVE_USAGE} FROM item i WHERE {LIVE} AND i.folder_id IN (SELECT id FROM folder WHERE "
    ));
    push_subtree(&mut sql, "path", path, true);
    sql.push(")");
    let (bytes, items): (i64, i64) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(Usage { bytes, items })
}

/// What the live items in the live trees of `user` hold.
async fn of_owner(db: &mut dyn Db, user: &str) -> Result<Usage, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {LIVE_USAGE} FROM item i JOIN folder f ON f.id = i.folder_id WHERE {LIVE} AND f.trashed_at IS NULL AND f.owner = "
    ));
    sql.bind(user.to_owned());
    let (bytes, items): (i64, i64) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(Usage { bytes, items })
}

/// Folder `id`'s quota and the usage it counts, if it has one.
pub async fn folder_quota(db: &mut dyn Db, id: Uuid) -> Result<Option<(Quota, Usage)>, StoreError> {
    let mut sql = Sql::new("SELECT max_bytes, max_items, used_bytes, used_items FROM folder_quota WHERE folder_id = ");
    sql.bind(id.to_string());
    let row: Option<(Option<i64>, Option<i64>, i64, i64)> = sql.build_as().fetch_optional(db.conn()).await?;
    Ok(row.map(|(max_bytes, max_items, bytes, items)| (Quota { max_bytes, max_items }, Usage { bytes, items })))
}

/// The quotas of the live folders strictly above `path` and strictly below it, with their paths:
/// the ones a quota at `path` must fit between.
pub async fn quotas_around(
    db: &mut dyn Db,
    path: &str,
) -> Result<(Vec<(String, Quota)>, Vec<(String, Quota)>), StoreError> {
    let above: Vec<String> = ancestors_or_self(path)
        .filter(|p| *p != path)
        .map(str::to_owned)
        .collect();
    let mut sql = Sql::new(
        "SELECT f.path, q.max_bytes, q.max_items FROM folder_quota q JOIN folder f ON f.id = q.folder_id WHERE f.trashed_at IS NULL AND (",
    );
    if above.is_empty() {
        sql.push("1 = 0");
    } else {
        sql.push("f.path IN (").bind_list(above.iter().cloned()).push(")");
    }
    sql.push(" OR ");
    push_subtree(&mut sql, "f.path", path, false);
    sql.push(") ORDER BY f.path");
    let rows: Vec<(String, Option<i64>, Option<i64>)> = sql.build_as().fetch_all(db.conn()).await?;
    Ok(rows
        .into_iter()
        .map(|(p, max_bytes, max_items)| (p, Quota { max_bytes, max_items }))
        .partition(|(p, _)| above.contains(p)))
}

/// Sets folder `id`'s quota; a new one starts from a count of the subtree at `path`. Answers
/// the usage it counts.
pub async fn set_folder_quota(db: &mut dyn Db, id: Uuid, path: &str, quota: Quota) -> Result<Usage, StoreError> {
    let used = of_path(db, path).await?;
    let mut sql =
        Sql::new("INSERT INTO folder_quota (folder_id, max_bytes, max_items, used_bytes, used_items) VALUES (");
    sql.bind(id.to_string())
        .push(", ")
        .bind(quota.max_bytes)
        .push(", ")
        .bind(quota.max_items)
        .push(", ")
        .bind(used.bytes)
        .push(", ")
        .bind(used.items)
        .push(") ON CONFLICT (folder_id) DO UPDATE SET max_bytes = excluded.max_bytes, max_items = excluded.max_items, used_bytes = excluded.used_bytes, used_items = excluded.used_items");
    sql.build().execute(db.conn()).await?;
    Ok(used)
}

/// Removes folder `id`'s quota; false if it had none.
pub async fn remove_folder_quota(db: &mut dyn Db, id: Uuid) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM folder_quota WHERE folder_id = ");
    sql.bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() > 0)
}

/// Removes the quotas of the folders of trash unit `unit` (before its folder rows go).
pub async fn remove_unit_quotas(db: &mut dyn Db, unit: Uuid) -> Result<(), StoreError> {
    let mut sql = Sql::new("DELETE FROM folder_quota WHERE folder_id IN (SELECT id FROM folder WHERE trash_unit = ");
    sql.bind(unit.to_string()).push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// User `name`'s byte quota and usage (none and nothing for a user who owns nothing yet).
pub async fn user_usage(db: &mut dyn Db, name: &str) -> Result<(Option<i64>, Usage), StoreError> {
    let mut sql = Sql::new("SELECT max_bytes, used_bytes, used_items FROM user_usage WHERE user_name = ");
    sql.bind(name.to_owned());
    let row: Option<(Option<i64>, i64, i64)> = sql.build_as().fetch_optional(db.conn()).await?;
    Ok(row.map_or((None, Usage::default()), |(max_bytes, bytes, items)| {
        (max_bytes, Usage { bytes, items })
    }))
}

/// Sets (or with `None` removes) user `name`'s byte quota.
pub async fn set_user_quota(db: &mut dyn Db, name: &str, max_bytes: Option<i64>) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO user_usage (user_name, max_bytes) VALUES (");
    sql.bind(name.to_owned())
        .push(", ")
        .bind(max_bytes)
        .push(") ON CONFLICT (user_name) DO UPDATE SET max_bytes = excluded.max_bytes");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Recounts the quotas of the folders strictly below `path` (after their subtree came back from,
/// or went into, the trash).
async fn recount_below(db: &mut dyn Db, path: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new("SELECT q.folder_id, f.path FROM folder_quota q JOIN folder f ON f.id = q.folder_id WHERE ");
    push_subtree(&mut sql, "f.path", path, false);
    let rows: Vec<(String, String)> = sql.build_as().fetch_all(db.conn()).await?;
    for (id, path) in rows {
        recount_folder(db, parse_id(&id)?, &path).await?;
    }
    Ok(())
}

/// Sets folder quota `id`'s usage to a count of the subtree at `path`.
async fn recount_folder(db: &mut dyn Db, id: Uuid, path: &str) -> Result<Usage, StoreError> {
    let counted = of_path(db, path).await?;
    set_used(db, &Holder::Folder(id, path.to_owned()), counted).await?;
    Ok(counted)
}

/// Sets `holder`'s usage counter to `used`.
async fn set_used(db: &mut dyn Db, holder: &Holder, used: Usage) -> Result<(), StoreError> {
    let sql = match holder {
        Holder::Folder(id, _) => {
            let mut sql = Sql::new("UPDATE folder_quota SET used_bytes = ");
            sql.bind(used.bytes)
                .push(", used_items = ")
                .bind(used.items)
                .push(" WHERE folder_id = ")
                .bind(id.to_string());
            sql
        }
        Holder::User(name) => {
            let mut sql = Sql::new("INSERT INTO user_usage (user_name, used_bytes, used_items) VALUES (");
            sql.bind(name.clone())
                .push(", ")
                .bind(used.bytes)
                .push(", ")
                .bind(used.items);
            sql.push(") ON CONFLICT (user_name) DO UPDATE SET used_bytes = excluded.used_bytes, used_items = excluded.used_items");
            sql
        }
    };
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// A counter a recount found wrong, and what it was set to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Whose counter.
    pub holder: Holder,
    /// What it said.
    pub counted: Usage,
    /// What the items hold.
    pub actual: Usage,
}

/// Recounts every holder from the items, corrects the counters that drifted and answers them.
/// Run it in a transaction that holds the folder tree exclusively, so no write is half-counted.
pub async fn recount_all(db: &mut dyn Db) -> Result<Vec<Drift>, StoreError> {
    let sql = Sql::new(
        "SELECT q.folder_id, f.path, f.trashed_at, q.used_bytes, q.used_items FROM folder_quota q JOIN folder f ON f.id = q.folder_id ORDER BY f.path",
    );
    let folders: Vec<(String, String, Option<i64>, i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    let mut counted = Vec::with_capacity(folders.len());
    for (id, path, trashed_at, bytes, items) in folders {
        // A trashed folder's subtree holds no live item.
        let actual = match trashed_at {
            None => of_path(db, &path).await?,
            Some(_) => Usage::default(),
        };
        counted.push((Holder::Folder(parse_id(&id)?, path), Usage { bytes, items }, actual));
    }
    let sql = Sql::new(
        "SELECT user_name FROM user_usage UNION SELECT DISTINCT owner FROM folder WHERE trashed_at IS NULL ORDER BY 1",
    );
    let users: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    for (user,) in users {
        let (_, used) = user_usage(db, &user).await?;
        let actual = of_owner(db, &user).await?;
        counted.push((Holder::User(user), used, actual));
    }
    let mut drifts = Vec::new();
    for (holder, counted, actual) in counted {
        if counted != actual {
            set_used(db, &holder, actual).await?;
            drifts.push(Drift {
                holder,
                counted,
                actual,
            });
        }
    }
    Ok(drifts)
}

#[cfg(test)]
mod tests {
    use super::ancestors_or_self;

    #[test]
    fn ancestors_run_from_the_top_down_to_the_folder() {
        assert_eq!(
            ancestors_or_self("/a/b/c").collect::<Vec<_>>(),
            ["/a", "/a/b", "/a/b/c"]
        );
        assert_eq!(ancestors_or_self("/a").collect::<Vec<_>>(), ["/a"]);
    }
}
