//! Who is making a request, and what that allows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Invalid;
use super::folder::Folder;

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

/// Checks a user name: 1–64 characters of ASCII letters, digits, `.`, `_`, `-` or `@`.
pub fn check_user_name(name: &str) -> Result<(), Invalid> {
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

/// What a caller may do with one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The caller must not learn the folder exists.
    None,
    /// The caller may read the folder and its contents.
    Read,
    /// The caller may read and change the folder and its contents.
    Write,
}

impl Caller {
    /// A user acting with full rights of their own (no key: the process's own work, a direct
    /// command, a test).
    pub fn user(name: impl Into<String>, is_admin: bool) -> Self {
        Self {
            name: name.into(),
            is_admin,
            key_id: None,
            scope: KeyScope::Write,
            key_expires_at: None,
        }
    }

    /// Whether the caller may use a configured bucket whose allow list is `allowed_users`
    /// (sync folders over it, import from it, reference its objects): admins and listed users.
    pub fn may_use_bucket(&self, allowed_users: &[String]) -> bool {
        self.is_admin || allowed_users.contains(&self.name)
    }

    /// The caller's access to `folder`: admins and owners write, everyone reads public folders.
    pub fn access_to(&self, folder: &Folder) -> Access {
        if self.is_admin || folder.owner == self.name {
            Access::Write
        } else if folder.visibility.readable_by_everyone() {
            Access::Read
        } else {
            Access::None
        }
    }
}
