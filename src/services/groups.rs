//! Groups: named sets of users that folder and bucket grants can be given to. Any user may make
//! a group (and manages it); its managers add and remove members; every signed-in user sees the
//! groups that exist (to share with them), only members and admins see who is in one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Page, ServiceError, audit, conflict_as, decode_text_position, field, now, page_token};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, check_user_name};
use crate::domain::page::{SortKey, page_size};
use crate::domain::team::{GroupRole, Principal, check_group_name};
use crate::store::teams::{self, GroupRecord, MemberRecord};
use crate::store::{Db, Store, users};

/// The one order groups are listed in (the order part of their page tokens).
const GROUP_ORDER: &str = "name:asc";

/// Body of `POST /v1/groups`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// The group's unique name: 1-64 letters, digits, `.`, `_`, `-` or inner spaces.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]([A-Za-z0-9._ -]*[A-Za-z0-9._-])?$"
    )]
    pub name: String,
}

/// Body of `PUT /v1/groups/{id}/members/{user}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// `member` or `manager` (also adds and removes members). Absent: a new member is a plain
    /// member, an existing one keeps their standing.
    pub role: Option<GroupRole>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberView {
    /// The user name.
    pub user: String,
    /// `member` or `manager`.
    pub role: GroupRole,
    /// When they joined, or their standing last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

impl From<MemberRecord> for MemberView {
    fn from(member: MemberRecord) -> Self {
        Self {
            user: member.user,
            role: member.role,
            added_at: member.added_at,
        }
    }
}

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupView {
    /// Its id: what grants name.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Who made it.
    pub created_by: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How many members it has.
    pub member_count: i64,
    /// Your standing in it: `member`, `manager`, or `null` when you are not in it.
    pub my_role: Option<GroupRole>,
    /// Its members by name, shown to its members and admins (`null` to others and in lists).
    pub members: Option<Vec<MemberView>>,
}

impl GroupView {
    fn new(group: GroupRecord, my_role: Option<GroupRole>, members: Option<Vec<MemberRecord>>) -> Self {
        Self {
            id: group.id,
            name: group.name,
            created_by: group.created_by,
            created_at: group.created_at,
            member_count: group.member_count,
            my_role,
            members: members.map(|m| m.into_iter().map(MemberView::from).collect()),
        }
    }
}

/// Group use cases.
#[derive(Clone)]
pub struct GroupService {
    store: Store,
}

impl GroupService {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Makes a group; its maker is its first manager. 409 when the name is taken.
    pub async fn create(&self, caller: &Caller, req: NewGroup) -> Result<GroupView, ServiceError> {
        check_group_name(&req.name).map_err(field("name"))?;
        let at = now();
        let group = GroupRecord {
            id: Uuid::now_v7(),
            name: req.name,
            created_by: caller.name.clone(),
            created_at: at,
            member_count: 1,
        };
        let mut tx = self.store.write().await?;
        teams::insert_group(&mut tx, &group).await.map_err(conflict_as(format!(
            "a group named `{}` already exists; choose another name",
            group.name
        )))?;
        users::insert_if_absent(&mut tx, &caller.name, false, crate::store::to_micros(at)).await?;
        teams::put_member(&mut tx, group.id, &caller.name, GroupRole::Manager, at).await?;
        let event = AuditEvent::by(caller, AuditAction::GroupCreate, group.id, at)
            .with_detail(serde_json::json!({ "name": group.name }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.get(caller, group.id).await
    }

    /// One page of every group (with `mine`, of the caller's), by name, with the caller's
    /// standing in each.
    pub async fn list(
        &self,
        caller: &Caller,
        mine: bool,
        requested_size: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<GroupView>, ServiceError> {
        let limit = page_size(requested_size).map_err(field("page_size"))?;
        let after = token
            .map(|token| decode_text_position(token, GROUP_ORDER))
            .transpose()?;
        let mut conn = self.store.read().await?;
        let member = mine.then_some(caller.name.as_str());
        let groups = teams::list_groups(
            &mut conn,
            member,
            after.as_ref().map(|(name, _)| name.as_str()),
            limit + 1,
        )
        .await?;
        let roles: std::collections::BTreeMap<Uuid, GroupRole> =
            teams::memberships(&mut conn, &caller.name).await?.into_iter().collect();
        let token_of = |last: &GroupRecord| page_token(GROUP_ORDER, &SortKey::Text(last.name.clone()), last.id);
        Ok(Page::of(groups, limit, token_of, |group| {
            let role = roles.get(&group.id).copied();
            GroupView::new(group, role, None)
        }))
    }

    /// The group `id`, with its members when the caller is one of them or an admin.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<GroupView, ServiceError> {
        let mut conn = self.store.read().await?;
        let group = existing(&mut conn, id).await?;
        let role = teams::standing(&mut conn, id, &caller.name).await?;
        let members = if role.is_some() || caller.is_admin {
            Some(teams::members(&mut conn, id).await?)
        } else {
            None
        };
        Ok(GroupView::new(group, role, members))
    }

    /// Adds `user` to group `id` as `change.role`, or changes their standing (the group's
    /// managers and admins). 404 for an unknown user.
    pub async fn put_member(
        &self,
        caller: &Caller,
        id: Uuid,
        user: &str,
        change: MemberChange,
    ) -> Result<GroupView, ServiceError> {
        check_user_name(user).map_err(field("user"))?;
        let mut tx = self.store.write().await?;
        let group = for_change(&mut tx, id).await?;
        require_group_manager(&mut tx, caller, &group, "change its members").await?;
        super::users::require_user(&mut tx, user).await?;
        let now_standing = teams::standing(&mut tx, id, user).await?;
        let role = change.role.or(now_standing).unwrap_or(GroupRole::Member);
        if role == GroupRole::Member {
            keep_a_manager(&mut tx, caller, &group, user).await?;
        }
        let at = now();
        if teams::put_member(&mut tx, id, user, role, at).await? {
            let event = AuditEvent::by(caller, AuditAction::GroupMemberPut, id, at)
                .with_detail(serde_json::json!({ "group": group.name, "user": user, "role": role }));
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.get(caller, id).await
    }

    /// Removes `user` from group `id`: the group's managers and admins, or the user themselves
    /// (leaving). 404 when they are not in it; 409 when they are its last manager.
    pub async fn remove_member(&self, caller: &Caller, id: Uuid, user: &str) -> Result<(), ServiceError> {
        let mut tx = self.store.write().await?;
        let group = for_change(&mut tx, id).await?;
        if user != caller.name {
            require_group_manager(&mut tx, caller, &group, "change its members").await?;
        }
        keep_a_manager(&mut tx, caller, &group, user).await?;
        if !teams::remove_member(&mut tx, id, user).await? {
            return Err(ServiceError::NotFound(format!(
                "user `{user}` is not a member of group `{}`",
                group.name
            )));
        }
        let at = now();
        let event = AuditEvent::by(caller, AuditAction::GroupMemberRemove, id, at)
            .with_detail(serde_json::json!({ "group": group.name, "user": user }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes group `id` with its memberships and every grant given to it (its managers and
    /// admins).
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        let mut tx = self.store.write().await?;
        let group = for_change(&mut tx, id).await?;
        require_group_manager(&mut tx, caller, &group, "delete it").await?;
        let at = now();
        // Each folder that loses the group's grant records it, where its managers read.
        for (folder_id, path) in teams::folders_granted_to(&mut tx, &Principal::Group(id)).await? {
            let event = AuditEvent::by(caller, AuditAction::FolderRevoke, folder_id, at)
                .in_folder(folder_id)
                .with_detail(serde_json::json!({ "path": path, "group": id, "group_name": group.name }));
            audit::record(&mut tx, &event).await?;
        }
        teams::delete_group(&mut tx, id).await?;
        let event = AuditEvent::by(caller, AuditAction::GroupDelete, id, at)
            .with_detail(serde_json::json!({ "name": group.name, "members": group.member_count }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The group `id`; 404 when there is none.
pub async fn existing(conn: &mut dyn Db, id: Uuid) -> Result<GroupRecord, ServiceError> {
    teams::group_by_id(conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("group {id} not found")))
}

/// The group `id`, locked for a change (of its members, or of what is granted to it) until the
/// transaction ends; 404 when there is none.
pub async fn for_change(tx: &mut dyn Db, id: Uuid) -> Result<GroupRecord, ServiceError> {
    teams::group_for_change(tx, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("group {id} not found")))
}

/// Refuses (403) a caller who neither manages `group` nor is an admin; `what` names the refused
/// action, e.g. "delete it".
async fn require_group_manager(
    conn: &mut dyn Db,
    caller: &Caller,
    group: &GroupRecord,
    what: &str,
) -> Result<(), ServiceError> {
    if caller.is_admin || teams::standing(conn, group.id, &caller.name).await? == Some(GroupRole::Manager) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "only the managers of group `{}` and admins can {what}",
            group.name
        )))
    }
}

/// Refuses (409) to leave `group` without a manager by demoting or removing `user`, unless an
/// admin does it.
async fn keep_a_manager(
    conn: &mut dyn Db,
    caller: &Caller,
    group: &GroupRecord,
    user: &str,
) -> Result<(), ServiceError> {
    let managers: Vec<String> = teams::members(conn, group.id)
        .await?
        .into_iter()
        .filter(|m| m.role == GroupRole::Manager)
        .map(|m| m.user)
        .collect();
    if !caller.is_admin && managers == [user] {
        return Err(ServiceError::Conflict(format!(
            "`{user}` is the last manager of group `{}`; make another member a manager first, or delete the group",
            group.name
        )));
    }
    Ok(())
}
