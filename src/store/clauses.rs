//! SQL pieces that several tables' statements share: subtree ranges and path rewrites of the
//! folder tree, and the expiry an item gets from its folder's TTL.

use super::sql::Sql;
use super::teams::{Grantee, push_reaches};
use crate::domain::caller::{Caller, Role};
use crate::domain::folder::Visibility;

/// Appends the condition "`column` is `path` or lies below it", as a byte range that an index
/// serves. `path` is a path as stored: a live one, or a trashed one with its unit prefix.
pub fn push_subtree(sql: &mut Sql, column: &str, path: &str, include_self: bool) {
    sql.push("(");
    if include_self {
        sql.push(column).push(" = ").bind(path.to_owned()).push(" OR ");
    }
    // Every descendant path starts with `path/`; `0` is the byte after `/`.
    sql.push("(").push(column).push(" >= ").bind(format!("{path}/"));
    sql.push(" AND ")
        .push(column)
        .push(" < ")
        .bind(format!("{path}0"))
        .push("))");
}

/// Appends `path = NEW || (the rest of path after OLD)`, which moves the paths at or below `old`
/// (as stored) to `new`.
pub fn push_path_rewrite(sql: &mut Sql, old: &str, new: &str) {
    let old_chars = i64::try_from(old.chars().count()).unwrap_or(i64::MAX);
    sql.push("path = ")
        .bind(new.to_owned())
        .push(" || substr(path, CAST(")
        .bind(old_chars + 1)
        .push(" AS INTEGER))");
}

/// Whose TTL an item follows in [`push_folder_expiry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderTtl {
    /// This folder TTL (`None`: no TTL), e.g. the one of the folder the item moves to.
    Of(Option<i64>),
    /// The TTL of the folder the row is in.
    OwnFolder,
}

/// Appends the expiry an item row gets from its folder's TTL: its own `expires_at` when it has
/// one (`expires_own`), else `created_at` + the TTL, or NULL.
pub fn push_ttl_expiry(sql: &mut Sql, ttl: FolderTtl) {
    sql.push("(CASE WHEN expires_own = 1 THEN expires_at ELSE ");
    match ttl {
        FolderTtl::Of(Some(seconds)) => sql.push("created_at + ").bind(seconds.saturating_mul(1_000_000)),
        FolderTtl::Of(None) => sql.push("NULL"),
        FolderTtl::OwnFolder => {
            sql.push("created_at + (SELECT t.ttl_seconds FROM folder t WHERE t.id = item.folder_id) * 1000000")
        }
    };
    sql.push(" END)");
}

/// Appends `expires_at = …` for items that follow their folder's TTL; items with their own
/// expiry keep it.
pub fn push_folder_expiry(sql: &mut Sql, ttl: FolderTtl) {
    sql.push("expires_at = ");
    push_ttl_expiry(sql, ttl);
}

/// Most granted folders a list filter names inline (as path ranges); a reader with more is
/// matched through the grant tables instead (one indexed lookup per row), so that no number of
/// grants makes a query too long.
const INLINE_GRANTS: usize = 100;

/// Whom a list is filtered for: a user, and the folders granted to them (each with its subtree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// The user's name (they read what they own).
    pub user: String,
    /// The paths of the live folders granted to them, directly or through a group, with at least
    /// `min_role` (none inside another).
    pub granted: Vec<String>,
    /// The weakest role that counts.
    pub min_role: Role,
}

impl Reader {
    /// The reader `caller` is; `None` for admins, who read everything.
    pub fn of(caller: &Caller) -> Option<Self> {
        Self::with_role(caller, Role::Viewer)
    }

    /// The reader `caller` is when only grants of at least `role` count (the trash lists what
    /// its reader may restore: editors'); `None` for admins.
    pub fn with_role(caller: &Caller, role: Role) -> Option<Self> {
        let mut paths = caller.granted_paths(role);
        paths.sort();
        // A subtree inside another adds nothing to the filter.
        let mut granted: Vec<String> = Vec::with_capacity(paths.len());
        for path in paths {
            let inside = granted.last().is_some_and(|top| {
                path == *top
                    || path
                        .strip_prefix(top.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if !inside {
                granted.push(path);
            }
        }
        (!caller.is_admin).then(|| Self {
            user: caller.name.clone(),
            granted,
            min_role: role,
        })
    }
}

/// Appends the condition "`reader` may read folder `f`": the folder is theirs, its visibility
/// lets every signed-in user read it, or it lies in a subtree granted to them (the rule of
/// `Caller::role_on`, in SQL).
pub fn push_readable_by(sql: &mut Sql, reader: &Reader) {
    let everyone: Vec<String> = Visibility::ALL
        .into_iter()
        .filter(|v| v.readable_by_everyone())
        .map(|v| format!("'{}'", v.as_str()))
        .collect();
    sql.push("(f.owner = ")
        .bind(reader.user.clone())
        .push(&format!(" OR f.visibility IN ({})", everyone.join(", ")));
    push_granted(sql, "f.path", reader);
    sql.push(")");
}

/// Appends ` OR ` "the folder path `column` lies in a subtree granted to `reader`".
pub fn push_granted(sql: &mut Sql, column: &str, reader: &Reader) {
    if reader.granted.len() <= INLINE_GRANTS {
        for path in &reader.granted {
            sql.push(" OR ");
            push_subtree(sql, column, path, true);
        }
        return;
    }
    let roles: Vec<String> = Role::ALL
        .into_iter()
        .filter(|r| *r >= reader.min_role)
        .map(|r| format!("'{}'", r.as_str()))
        .collect();
    sql.push(
        " OR EXISTS (SELECT 1 FROM folder_grant g JOIN folder gf ON gf.id = g.folder_id AND gf.trashed_at IS NULL WHERE ",
    );
    push_reaches(sql, Grantee::Named(&reader.user));
    sql.push(&format!(
        " AND g.role IN ({}) AND ({column} = gf.path OR ({column} >= gf.path || '/' AND {column} < gf.path || '0')))",
        roles.join(", ")
    ));
}
