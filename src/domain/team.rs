//! Teams: groups of users, and who a grant is given to.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;
use super::caller::check_user_name;

/// Who a grant is given to: one user, or every member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// The user with this name.
    User(String),
    /// The members of the group with this id.
    Group(Uuid),
}

impl Principal {
    /// The stored kind: `user` or `group`.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Group(_) => "group",
        }
    }

    /// The stored name: the user name, or the group id.
    pub fn name(&self) -> String {
        match self {
            Principal::User(name) => name.clone(),
            Principal::Group(id) => id.to_string(),
        }
    }

    /// Reads a stored kind and name.
    pub fn stored(kind: &str, name: &str) -> Result<Self, Invalid> {
        match kind {
            "user" => Ok(Principal::User(name.to_owned())),
            "group" => Uuid::parse_str(name)
                .map(Principal::Group)
                .map_err(|e| Invalid::new(format!("group id `{name}`: {e}"))),
            other => Err(Invalid::new(format!(
                "principal kind `{other}` is not `user` or `group`"
            ))),
        }
    }

    /// The principal a client names with exactly one of `user` (a user name) and `group` (a
    /// group id).
    pub fn named(user: Option<&str>, group: Option<Uuid>) -> Result<Self, Invalid> {
        match (user, group) {
            (Some(user), None) => {
                check_user_name(user)?;
                Ok(Principal::User(user.to_owned()))
            }
            (None, Some(group)) => Ok(Principal::Group(group)),
            _ => Err(Invalid::new(
                "name exactly one of `user` (a user name) and `group` (a group id)",
            )),
        }
    }
}

/// The longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;

/// Checks a group name: 1–64 characters of ASCII letters, digits, `.`, `_`, `-` or space, not
/// starting or ending with a space, and not shaped like an id (a UUID).
pub fn check_group_name(name: &str) -> Result<(), Invalid> {
    if Uuid::parse_str(name).is_ok() {
        return Err(Invalid::new(format!(
            "`{name}` looks like an id; give a group a name that does not, so that it is never taken for one"
        )));
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(format!(
            "`{name}` must be 1-{MAX_GROUP_NAME} characters of letters, digits, `.`, `_`, `-` or inner spaces"
        )))
    }
}

/// A member's standing in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    /// Belongs to the group: every grant to the group reaches them.
    #[default]
    Member,
    /// Also adds and removes members, and deletes the group.
    Manager,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_is_exactly_one_user_or_group() {
        let id = Uuid::now_v7();
        assert_eq!(Principal::named(Some("ann"), None), Ok(Principal::User("ann".into())));
        assert_eq!(Principal::named(None, Some(id)), Ok(Principal::Group(id)));
        assert!(Principal::named(Some("ann"), Some(id)).is_err());
        assert!(Principal::named(None, None).is_err());
        assert!(Principal::named(Some("a b"), None).is_err());
        let stored = Principal::Group(id);
        assert_eq!(Principal::stored(stored.kind(), &stored.name()), Ok(stored));
    }

    #[test]
    fn group_names_are_checked() {
        assert!(check_group_name("ml team").is_ok());
        assert!(check_group_name(" ml").is_err());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("a/b").is_err());
        assert!(check_group_name(&"x".repeat(65)).is_err());
    }
}
