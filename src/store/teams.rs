//! Team rows: groups and their members, roles granted on folders, and configured buckets
//! granted under a key prefix. A grant names its principal by kind (`user`, `group`) and name.

use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{corrupt, parse_id};
use super::sql::{Sql, json_rows};
use super::{Db, Dialect, StoreError, from_micros, to_micros};
use crate::domain::caller::{BucketGrant, Grant, Role};
use crate::domain::folder::FolderPath;
use crate::domain::team::{GroupRole, Principal};

/// A group as stored, with how many members it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
    /// How many members it has.
    pub member_count: i64,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The user.
    pub user: String,
    /// Member or manager.
    pub role: GroupRole,
    /// When they were added (or their standing last changed).
    pub added_at: OffsetDateTime,
}

/// A role granted on one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderGrantRecord {
    /// Who it is given to.
    pub principal: Principal,
    /// The group's name, for a group.
    pub group_name: Option<String>,
    /// The role.
    pub role: Role,
    /// Who gave it.
    pub granted_by: String,
    /// When.
    pub granted_at: OffsetDateTime,
}

/// A configured bucket granted under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketGrantRecord {
    /// Who it is given to.
    pub principal: Principal,
    /// The key prefix it covers (empty: the whole bucket).
    pub prefix: String,
    /// Who gave it.
    pub granted_by: String,
    /// When.
    pub granted_at: OffsetDateTime,
}

/// The user a grant must reach: one named in the statement, or the one a column of the
/// enclosing query names (`k.name`, a key's user).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Grantee<'a> {
    /// This user.
    Named(&'a str),
    /// The user in this column.
    Column(&'static str),
}

impl Grantee<'_> {
    fn push(self, sql: &mut Sql) {
        match self {
            Grantee::Named(user) => sql.bind(user.to_owned()),
            Grantee::Column(column) => sql.push(column),
        };
    }
}

/// Appends "the grant row `g` reaches `who`": given to them, or to a group they are in.
pub(crate) fn push_reaches(sql: &mut Sql, who: Grantee<'_>) {
    sql.push("((g.principal_kind = 'user' AND g.principal = ");
    who.push(sql);
    sql.push(
        ") OR (g.principal_kind = 'group' AND g.principal IN (SELECT group_id FROM group_member WHERE user_name = ",
    );
    who.push(sql);
    sql.push(")))");
}

/// Appends two columns to a select list (the comma before them is the caller's):
/// `folder_grants`, a JSON array of `[path, role]` of the grants on live folders, and
/// `bucket_grants`, of `[bucket, prefix]`, that reach `who`; [`reach_from_json`] reads them.
/// Lets a key and what its user may reach come in one query.
pub(crate) fn push_reach_columns(sql: &mut Sql, dialect: Dialect, who: Grantee<'_>) {
    let aggregate = |pair: &str| json_rows(dialect, pair, None);
    sql.push(&format!(
        "(SELECT {} FROM folder_grant g JOIN folder f ON f.id = g.folder_id WHERE f.trashed_at IS NULL AND ",
        aggregate("f.path, g.role")
    ));
    push_reaches(sql, who);
    sql.push(&format!(
        ") AS folder_grants, (SELECT {} FROM bucket_grant g WHERE ",
        aggregate("g.bucket, g.prefix")
    ));
    push_reaches(sql, who);
    sql.push(") AS bucket_grants");
}

/// The grants of the two columns [`push_reach_columns`] appends (`None`: none).
pub(crate) fn reach_from_json(
    folder_grants: Option<&str>,
    bucket_grants: Option<&str>,
) -> Result<(Vec<Grant>, Vec<BucketGrant>), StoreError> {
    let pairs = |json: Option<&str>| -> Result<Vec<(String, String)>, StoreError> {
        json.map_or(Ok(Vec::new()), |json| {
            serde_json::from_str(json).map_err(|e| corrupt("grants", e))
        })
    };
    let grants = pairs(folder_grants)?
        .into_iter()
        .map(|(path, role)| {
            Ok(Grant {
                path: FolderPath::stored(&path),
                role: Role::parse(&role).map_err(|e| corrupt("role", e))?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let buckets = pairs(bucket_grants)?
        .into_iter()
        .map(|(bucket, prefix)| BucketGrant { bucket, prefix })
        .collect();
    Ok((grants, buckets))
}

/// The roles granted on live folders and the buckets granted that reach `user`, directly or
/// through a group: what a request of theirs carries.
pub async fn reaching(db: &mut dyn Db, user: &str) -> Result<(Vec<Grant>, Vec<BucketGrant>), StoreError> {
    let mut sql = Sql::new("SELECT ");
    push_reach_columns(&mut sql, db.dialect(), Grantee::Named(user));
    let (folders, buckets): (Option<String>, Option<String>) = sql.build_as().fetch_one(db.conn()).await?;
    reach_from_json(folders.as_deref(), buckets.as_deref())
}

/// Records a new group; a taken name is a `Conflict`.
pub async fn insert_group(db: &mut dyn Db, group: &GroupRecord) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO user_group (id, name, created_by, created_at) VALUES (");
    sql.bind(group.id.to_string())
        .push(", ")
        .bind(group.name.clone())
        .push(", ")
        .bind(group.created_by.clone())
        .push(", ")
        .bind(to_micros(group.created_at))
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.created_by, g.created_at, \
                             (SELECT COUNT(*) FROM group_member m WHERE m.group_id = g.id) AS member_count";

type GroupRow = (String, String, String, i64, i64);

fn group_record((id, name, created_by, created_at, member_count): GroupRow) -> Result<GroupRecord, StoreError> {
    Ok(GroupRecord {
        id: parse_id(&id)?,
        name,
        created_by,
        created_at: from_micros(created_at),
        member_count,
    })
}

/// The group with this id.
pub async fn group_by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<GroupRecord>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {GROUP_COLUMNS} FROM user_group g WHERE g.id = "));
    sql.bind(id.to_string());
    let row: Option<GroupRow> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(group_record).transpose()
}

/// The group with this id, its row locked until the transaction ends, so that concurrent
/// changes of its members (which check it keeps a manager) take turns.
pub async fn group_for_change(db: &mut dyn Db, id: Uuid) -> Result<Option<GroupRecord>, StoreError> {
    let lock = db.dialect().for_update();
    let mut sql = Sql::new(&format!("SELECT {GROUP_COLUMNS} FROM user_group g WHERE g.id = "));
    sql.bind(id.to_string()).push(lock);
    let row: Option<GroupRow> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(group_record).transpose()
}

/// Up to `limit` groups in name order after `after`; only those `member` is in, when given.
pub async fn list_groups(
    db: &mut dyn Db,
    member: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<GroupRecord>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {GROUP_COLUMNS} FROM user_group g WHERE 1 = 1"));
    if let Some(member) = member {
        sql.push(" AND g.id IN (SELECT group_id FROM group_member WHERE user_name = ")
            .bind(member.to_owned())
            .push(")");
    }
    if let Some(after) = after {
        sql.push(" AND g.name > ").bind(after.to_owned());
    }
    sql.push(" ORDER BY g.name LIMIT ").bind(i64::from(limit));
    let rows: Vec<GroupRow> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(group_record).collect()
}

/// Removes a group with its members and every grant given to it.
pub async fn delete_group(db: &mut dyn Db, id: Uuid) -> Result<bool, StoreError> {
    for table in ["folder_grant", "bucket_grant"] {
        let mut sql = Sql::new(&format!(
            "DELETE FROM {table} WHERE principal_kind = 'group' AND principal = "
        ));
        sql.bind(id.to_string());
        sql.build().execute(db.conn()).await?;
    }
    let mut sql = Sql::new("DELETE FROM group_member WHERE group_id = ");
    sql.bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    let mut sql = Sql::new("DELETE FROM user_group WHERE id = ");
    sql.bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Adds `user` to group `group` as `role`, or changes their standing; false when nothing changed.
pub async fn put_member(
    db: &mut dyn Db,
    group: Uuid,
    user: &str,
    role: GroupRole,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let is_manager = i64::from(role == GroupRole::Manager);
    let mut sql = Sql::new("INSERT INTO group_member (group_id, user_name, is_manager, added_at) VALUES (");
    sql.bind(group.to_string())
        .push(", ")
        .bind(user.to_owned())
        .push(", ")
        .bind(is_manager)
        .push(", ")
        .bind(to_micros(now))
        .push(") ON CONFLICT (group_id, user_name) DO UPDATE SET is_manager = excluded.is_manager, added_at = excluded.added_at")
        .push(" WHERE group_member.is_manager <> excluded.is_manager");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Removes `user` from group `group`; false when they were not in it.
pub async fn remove_member(db: &mut dyn Db, group: Uuid, user: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM group_member WHERE group_id = ");
    sql.bind(group.to_string())
        .push(" AND user_name = ")
        .bind(user.to_owned());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The members of group `group`, by name.
pub async fn members(db: &mut dyn Db, group: Uuid) -> Result<Vec<MemberRecord>, StoreError> {
    let mut sql = Sql::new("SELECT user_name, is_manager, added_at FROM group_member WHERE group_id = ");
    sql.bind(group.to_string()).push(" ORDER BY user_name");
    let rows: Vec<(String, i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    Ok(rows
        .into_iter()
        .map(|(user, is_manager, added_at)| MemberRecord {
            user,
            role: group_role(is_manager),
            added_at: from_micros(added_at),
        })
        .collect())
}

/// `user`'s standing in group `group`, `None` when they are not in it.
pub async fn standing(db: &mut dyn Db, group: Uuid, user: &str) -> Result<Option<GroupRole>, StoreError> {
    let mut sql = Sql::new("SELECT is_manager FROM group_member WHERE group_id = ");
    sql.bind(group.to_string())
        .push(" AND user_name = ")
        .bind(user.to_owned());
    let row: Option<(i64,)> = sql.build_as().fetch_optional(db.conn()).await?;
    Ok(row.map(|(is_manager,)| group_role(is_manager)))
}

/// The groups `user` is in, with their standing in each.
pub async fn memberships(db: &mut dyn Db, user: &str) -> Result<Vec<(Uuid, GroupRole)>, StoreError> {
    let mut sql = Sql::new("SELECT group_id, is_manager FROM group_member WHERE user_name = ");
    sql.bind(user.to_owned());
    let rows: Vec<(String, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(id, is_manager)| Ok((parse_id(&id)?, group_role(is_manager))))
        .collect()
}

fn group_role(is_manager: i64) -> GroupRole {
    if is_manager != 0 {
        GroupRole::Manager
    } else {
        GroupRole::Member
    }
}

/// Gives `principal` `role` on folder `folder` (replacing the role it had there); false when it
/// already had exactly that role.
pub async fn put_folder_grant(
    db: &mut dyn Db,
    folder: Uuid,
    principal: &Principal,
    role: Role,
    by: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO folder_grant (folder_id, principal_kind, principal, role, granted_by, granted_at) VALUES (",
    );
    sql.bind(folder.to_string())
        .push(", ")
        .bind(principal.kind().to_owned())
        .push(", ")
        .bind(principal.name())
        .push(", ")
        .bind(role.as_str().to_owned())
        .push(", ")
        .bind(by.to_owned())
        .push(", ")
        .bind(to_micros(now))
        .push(") ON CONFLICT (folder_id, principal_kind, principal) DO UPDATE SET role = excluded.role, ")
        .push("granted_by = excluded.granted_by, granted_at = excluded.granted_at WHERE folder_grant.role <> excluded.role");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Takes back what `principal` was granted on folder `folder`; false when it had nothing there.
pub async fn delete_folder_grant(db: &mut dyn Db, folder: Uuid, principal: &Principal) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM folder_grant WHERE folder_id = ");
    sql.bind(folder.to_string())
        .push(" AND principal_kind = ")
        .bind(principal.kind().to_owned())
        .push(" AND principal = ")
        .bind(principal.name());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The grants on folder `folder` itself (not those inherited from above), users first.
pub async fn folder_grants(db: &mut dyn Db, folder: Uuid) -> Result<Vec<FolderGrantRecord>, StoreError> {
    let mut sql = Sql::new(
        "SELECT g.principal_kind, g.principal, ug.name, g.role, g.granted_by, g.granted_at FROM folder_grant g \
         LEFT JOIN user_group ug ON g.principal_kind = 'group' AND ug.id = g.principal WHERE g.folder_id = ",
    );
    sql.bind(folder.to_string())
        .push(" ORDER BY g.principal_kind DESC, g.principal");
    let rows: Vec<(String, String, Option<String>, String, String, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(kind, name, group_name, role, granted_by, granted_at)| {
            Ok(FolderGrantRecord {
                principal: Principal::stored(&kind, &name).map_err(|e| corrupt("principal", e))?,
                group_name,
                role: Role::parse(&role).map_err(|e| corrupt("role", e))?,
                granted_by,
                granted_at: from_micros(granted_at),
            })
        })
        .collect()
}

/// The live folders `principal` holds a grant on, with their paths.
pub async fn folders_granted_to(db: &mut dyn Db, principal: &Principal) -> Result<Vec<(Uuid, String)>, StoreError> {
    let mut sql = Sql::new(
        "SELECT f.id, f.path FROM folder_grant g JOIN folder f ON f.id = g.folder_id WHERE f.trashed_at IS NULL AND g.principal_kind = ",
    );
    sql.bind(principal.kind().to_owned())
        .push(" AND g.principal = ")
        .bind(principal.name());
    let rows: Vec<(String, String)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(|(id, path)| Ok((parse_id(&id)?, path))).collect()
}

/// Removes the grants on the folders of trash unit `unit` (before those folders are purged).
pub async fn delete_unit_grants(db: &mut dyn Db, unit: Uuid) -> Result<u64, StoreError> {
    let mut sql = Sql::new("DELETE FROM folder_grant WHERE folder_id IN (SELECT id FROM folder WHERE trash_unit = ");
    sql.bind(unit.to_string()).push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Gives `principal` the use of bucket `bucket` under `prefix`; false when it had exactly that.
pub async fn put_bucket_grant(
    db: &mut dyn Db,
    bucket: &str,
    principal: &Principal,
    prefix: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO bucket_grant (bucket, principal_kind, principal, prefix, granted_by, granted_at) VALUES (",
    );
    sql.bind(bucket.to_owned())
        .push(", ")
        .bind(principal.kind().to_owned())
        .push(", ")
        .bind(principal.name())
        .push(", ")
        .bind(prefix.to_owned())
        .push(", ")
        .bind(by.to_owned())
        .push(", ")
        .bind(to_micros(now))
        .push(") ON CONFLICT (bucket, principal_kind, principal, prefix) DO NOTHING");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Takes back `principal`'s use of bucket `bucket` under `prefix`; false when it had none.
pub async fn delete_bucket_grant(
    db: &mut dyn Db,
    bucket: &str,
    principal: &Principal,
    prefix: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM bucket_grant WHERE bucket = ");
    sql.bind(bucket.to_owned())
        .push(" AND principal_kind = ")
        .bind(principal.kind().to_owned())
        .push(" AND principal = ")
        .bind(principal.name())
        .push(" AND prefix = ")
        .bind(prefix.to_owned());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The grants on bucket `bucket`.
pub async fn bucket_grants(db: &mut dyn Db, bucket: &str) -> Result<Vec<BucketGrantRecord>, StoreError> {
    let mut sql =
        Sql::new("SELECT principal_kind, principal, prefix, granted_by, granted_at FROM bucket_grant WHERE bucket = ");
    sql.bind(bucket.to_owned())
        .push(" ORDER BY principal_kind DESC, principal, prefix");
    let rows: Vec<(String, String, String, String, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(kind, name, prefix, granted_by, granted_at)| {
            Ok(BucketGrantRecord {
                principal: Principal::stored(&kind, &name).map_err(|e| corrupt("principal", e))?,
                prefix,
                granted_by,
                granted_at: from_micros(granted_at),
            })
        })
        .collect()
}
