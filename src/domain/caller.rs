//! Who is making a request, and what that allows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Invalid;
use super::folder::{Folder, FolderPath};

/// The authenticated principal behind a request: the user an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name; folders record it as their owner.
    pub name: String,
    /// Admins see and change everything.
    pub is_admin: bool,
    /// The key the request came with (none for the process's own work and direct commands).
    pub key_id: Option<Uuid>,
    /// What that key may do.
    pub scope: KeyScope,
    /// When that key stops working, if ever (keys it makes expire by then too).
    pub key_expires_at: Option<OffsetDateTime>,
    /// The folder grants that reach the user, directly or through a group, read when the
    /// request came in.
    pub grants: Arc<[Grant]>,
    /// The bucket grants that reach the user, directly or through a group.
    pub bucket_grants: Arc<[BucketGrant]>,
}

/// A role granted on a live folder's subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The granted folder's path (as it is now).
    pub path: FolderPath,
    /// The role it gives on the folder and everything below it.
    pub role: Role,
}

/// The use of a configured bucket, granted by an admin, under a key prefix (empty: all of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketGrant {
    /// The bucket's name in the configuration.
    pub bucket: String,
    /// The key prefix the grant covers: keys that start with it.
    pub prefix: String,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    /// Only reads: any request that would change something is refused (403).
    Read,
    /// Everything the key's user may do.
    #[default]
    Write,
}

impl KeyScope {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
        }
    }

    /// Reads a stored or given name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text {
            "read" => Ok(KeyScope::Read),
            "write" => Ok(KeyScope::Write),
            other => Err(Invalid::new(format!("must be `read` or `write`, got `{other}`"))),
        }
    }
}

/// The longest user name, in bytes.
pub const MAX_USER_NAME: usize = 64;

/// User names the process itself acts under, which no user may take.
pub const RESERVED_USER_NAMES: [&str; 1] = ["scheduler"];

/// Checks a user name: 1–64 characters of ASCII letters, digits, `.`, `_`, `-` or `@`, and not
/// one of [`RESERVED_USER_NAMES`].
pub fn check_user_name(name: &str) -> Result<(), Invalid> {
    if RESERVED_USER_NAMES.contains(&name) {
        return Err(Invalid::new(format!(
            "`{name}` is the name stowage's scheduler submits jobs under; choose another"
        )));
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(format!(
            "`{name}` must be 1-{MAX_USER_NAME} characters of letters, digits, `.`, `_`, `-` or `@`"
        )))
    }
}

/// What a caller may do with a folder and everything below it; the stronger role includes the
/// weaker ones (`Viewer < Editor < Manager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// See, list and download.
    Viewer,
    /// Also upload, change and delete items and subfolders, sync, import and re-encode.
    Editor,
    /// Also grant roles, change visibility and quotas, rename, move and delete the folder itself.
    Manager,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Manager];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Manager => "manager",
        }
    }

    /// Reads a stored or given name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| Invalid::new(format!("must be `viewer`, `editor` or `manager`, got `{text}`")))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Caller {
    /// A user acting with full rights of their own (no key: the process's own work, a direct
    /// command, a test), with no grants.
    pub fn user(name: impl Into<String>, is_admin: bool) -> Self {
        Self {
            name: name.into(),
            is_admin,
            key_id: None,
            scope: KeyScope::Write,
            key_expires_at: None,
            grants: Arc::from([]),
            bucket_grants: Arc::from([]),
        }
    }

    /// Whether the caller may use the object `key` of configured bucket `bucket` whose allow list
    /// is `allowed_users` (sync folders over it, import from it, reference its objects): admins,
    /// listed users, and users granted the bucket under a prefix of `key`. With `key` `None`, any
    /// grant on the bucket will do (the bucket is usable in part).
    pub fn may_use_bucket(&self, bucket: &str, allowed_users: &[String], key: Option<&str>) -> bool {
        self.is_admin
            || allowed_users.contains(&self.name)
            || self
                .bucket_grants
                .iter()
                .any(|g| g.bucket == bucket && key.is_none_or(|key| key.starts_with(&g.prefix)))
    }

    /// The caller's role on `folder`, `None` when the caller may not see it: admins and the owner
    /// (who owns the whole tree the folder is in) are managers; otherwise the strongest grant on
    /// the folder or an ancestor, or viewer when its visibility lets every signed-in user read it.
    pub fn role_on(&self, folder: &Folder) -> Option<Role> {
        if self.is_admin || folder.owner == self.name {
            return Some(Role::Manager);
        }
        let granted = self
            .grants
            .iter()
            .filter(|g| folder.path.is_within(&g.path))
            .map(|g| g.role)
            .max();
        let everyone = folder.visibility.readable_by_everyone().then_some(Role::Viewer);
        granted.max(everyone)
    }

    /// The paths of the folders granted to the caller with at least `role`, each standing for
    /// its subtree (for list filters).
    pub fn granted_paths(&self, role: Role) -> Vec<String> {
        self.grants
            .iter()
            .filter(|g| g.role >= role)
            .map(|g| g.path.as_str().to_owned())
            .collect()
    }
}
