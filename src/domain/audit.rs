//! Audit events: who (a user, and the key they used) did what to what, and when.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Invalid;
use super::caller::Caller;

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AuditAction {
    /// A user was recorded.
    #[serde(rename = "user.create")]
    UserCreate,
    /// A user was made an admin.
    #[serde(rename = "user.promote")]
    UserPromote,
    /// An API key was made.
    #[serde(rename = "key.create")]
    KeyCreate,
    /// An API key was revoked.
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    /// A folder's visibility changed.
    #[serde(rename = "folder.visibility")]
    FolderVisibility,
    /// A folder was deleted for good with its subtree (at once, or purged from the trash).
    #[serde(rename = "folder.delete")]
    FolderDelete,
    /// An item was deleted for good (at once, or purged from the trash).
    #[serde(rename = "item.delete")]
    ItemDelete,
    /// A folder (with its subtree) changed owner: moved or restored into another owner's tree.
    #[serde(rename = "folder.owner")]
    FolderOwner,
    /// A role on a folder was granted to a user or group (or changed).
    #[serde(rename = "folder.grant")]
    FolderGrant,
    /// A role on a folder was taken back.
    #[serde(rename = "folder.revoke")]
    FolderRevoke,
    /// A group was made.
    #[serde(rename = "group.create")]
    GroupCreate,
    /// A group was deleted, with the grants given to it.
    #[serde(rename = "group.delete")]
    GroupDelete,
    /// A user joined a group, or their standing in it changed.
    #[serde(rename = "group.member.put")]
    GroupMemberPut,
    /// A user left a group, or was removed from it.
    #[serde(rename = "group.member.remove")]
    GroupMemberRemove,
    /// The use of a configured bucket was granted under a prefix.
    #[serde(rename = "bucket.grant")]
    BucketGrant,
    /// The use of a configured bucket was taken back.
    #[serde(rename = "bucket.revoke")]
    BucketRevoke,
    /// A folder's quota was set, changed or removed.
    #[serde(rename = "folder.quota")]
    FolderQuota,
    /// A user's byte quota was set, changed or removed.
    #[serde(rename = "user.quota")]
    UserQuota,
    /// A job kind was paused: no worker starts a job of it.
    #[serde(rename = "queue.pause")]
    QueuePause,
    /// A paused job kind was resumed.
    #[serde(rename = "queue.resume")]
    QueueResume,
    /// Finished jobs' records were deleted by a bulk action.
    #[serde(rename = "jobs.delete")]
    JobsDelete,
    /// A webhook was made.
    #[serde(rename = "webhook.create")]
    WebhookCreate,
    /// A webhook's URL, events, description or enabled flag changed.
    #[serde(rename = "webhook.update")]
    WebhookUpdate,
    /// A webhook was deleted.
    #[serde(rename = "webhook.delete")]
    WebhookDelete,
}

impl AuditAction {
    /// Every action, in the order the API lists them.
    pub const ALL: [AuditAction; 24] = [
        AuditAction::UserCreate,
        AuditAction::UserPromote,
        AuditAction::KeyCreate,
        AuditAction::KeyRevoke,
        AuditAction::FolderVisibility,
        AuditAction::FolderDelete,
        AuditAction::ItemDelete,
        AuditAction::FolderOwner,
        AuditAction::FolderGrant,
        AuditAction::FolderRevoke,
        AuditAction::GroupCreate,
        AuditAction::GroupDelete,
        AuditAction::GroupMemberPut,
        AuditAction::GroupMemberRemove,
        AuditAction::BucketGrant,
        AuditAction::BucketRevoke,
        AuditAction::FolderQuota,
        AuditAction::UserQuota,
        AuditAction::QueuePause,
        AuditAction::QueueResume,
        AuditAction::JobsDelete,
        AuditAction::WebhookCreate,
        AuditAction::WebhookUpdate,
        AuditAction::WebhookDelete,
    ];

    /// The stored and shown name, e.g. `key.revoke`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserCreate => "user.create",
            AuditAction::UserPromote => "user.promote",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::FolderVisibility => "folder.visibility",
            AuditAction::FolderDelete => "folder.delete",
            AuditAction::ItemDelete => "item.delete",
            AuditAction::FolderOwner => "folder.owner",
            AuditAction::FolderGrant => "folder.grant",
            AuditAction::FolderRevoke => "folder.revoke",
            AuditAction::GroupCreate => "group.create",
            AuditAction::GroupDelete => "group.delete",
            AuditAction::GroupMemberPut => "group.member.put",
            AuditAction::GroupMemberRemove => "group.member.remove",
            AuditAction::BucketGrant => "bucket.grant",
            AuditAction::BucketRevoke => "bucket.revoke",
            AuditAction::FolderQuota => "folder.quota",
            AuditAction::UserQuota => "user.quota",
            AuditAction::QueuePause => "queue.pause",
            AuditAction::QueueResume => "queue.resume",
            AuditAction::JobsDelete => "jobs.delete",
            AuditAction::WebhookCreate => "webhook.create",
            AuditAction::WebhookUpdate => "webhook.update",
            AuditAction::WebhookDelete => "webhook.delete",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|a| a.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
            Invalid::new(format!("`{text}` is not an audit action; one of: {}", names.join(", ")))
        })
    }

    /// What kind of thing the action is done to: `user`, `key`, `folder`, `item`, `group`,
    /// `bucket`, `queue` (a job kind), `jobs` (the jobs a filter matched) or `webhook`.
    pub fn target_kind(self) -> &'static str {
        match self {
            AuditAction::UserCreate | AuditAction::UserPromote | AuditAction::UserQuota => "user",
            AuditAction::KeyCreate | AuditAction::KeyRevoke => "key",
            AuditAction::FolderVisibility
            | AuditAction::FolderDelete
            | AuditAction::FolderOwner
            | AuditAction::FolderGrant
            | AuditAction::FolderRevoke
            | AuditAction::FolderQuota => "folder",
            AuditAction::ItemDelete => "item",
            AuditAction::GroupCreate
            | AuditAction::GroupDelete
            | AuditAction::GroupMemberPut
            | AuditAction::GroupMemberRemove => "group",
            AuditAction::BucketGrant | AuditAction::BucketRevoke => "bucket",
            AuditAction::QueuePause | AuditAction::QueueResume => "queue",
            AuditAction::JobsDelete => "jobs",
            AuditAction::WebhookCreate | AuditAction::WebhookUpdate | AuditAction::WebhookDelete => "webhook",
        }
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Its id (a UUIDv7: ids sort by time).
    pub id: Uuid,
    /// When it happened.
    pub at: OffsetDateTime,
    /// Who did it: a user name, or what acted without one (`stowage keys create`).
    pub actor: String,
    /// The key the actor used, when there was one.
    pub key_id: Option<Uuid>,
    /// What was done.
    pub action: AuditAction,
    /// To what: a user name, or a key, folder or item id.
    pub target_id: String,
    /// The folder it concerns (the folder itself, or an item's folder), when any.
    pub folder_id: Option<Uuid>,
    /// What else is worth knowing (a visibility's old and new value, a key's scope…).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event of `caller` doing `action` to `target_id` at `at`.
    pub fn by(caller: &Caller, action: AuditAction, target_id: impl ToString, at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            actor: caller.name.clone(),
            key_id: caller.key_id,
            action,
            target_id: target_id.to_string(),
            folder_id: None,
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The same event, about folder `folder_id`.
    pub fn in_folder(mut self, folder_id: Uuid) -> Self {
        self.folder_id = Some(folder_id);
        self
    }

    /// The same event, with `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_from_their_names() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()).ok(), Some(action));
            assert_eq!(
                serde_json::to_value(action).ok(),
                Some(serde_json::Value::String(action.as_str().into()))
            );
        }
        assert!(AuditAction::parse("key.steal").is_err());
    }
}
