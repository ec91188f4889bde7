//! Who is making a request, and what that allows.

use super::folder::{Folder, Visibility};

/// The authenticated principal behind a request: the name an API key was created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name; folders record it as their owner.
    pub name: String,
    /// Admins see and change everything.
    pub is_admin: bool,
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
    /// Whether the caller may use a configured bucket whose allow list is `allowed_users`
    /// (sync folders over it, import from it, reference its objects): admins and listed users.
    pub fn may_use_bucket(&self, allowed_users: &[String]) -> bool {
        self.is_admin || allowed_users.contains(&self.name)
    }

    /// The caller's access to `folder`: admins and owners write, everyone reads public folders.
    pub fn access_to(&self, folder: &Folder) -> Access {
        if self.is_admin || folder.owner == self.name {
            Access::Write
        } else if folder.visibility == Visibility::Public {
            Access::Read
        } else {
            Access::None
        }
    }
}
