//! Quotas and usage: how much a folder's subtree or a user's trees may hold, what they hold,
//! and the refusal when a change would go past a limit. Usage counts live items (neither trashed
//! nor tombstones) and their bytes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// Limits on a folder's subtree; at least one is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// The most bytes the live items of the subtree may hold together.
    #[schema(minimum = 0)]
    pub max_bytes: Option<i64>,
    /// The most live items the subtree may hold.
    #[schema(minimum = 0)]
    pub max_items: Option<i64>,
}

impl Quota {
    /// Checks that at least one limit is set and none is negative.
    pub fn checked(self) -> Result<Self, Invalid> {
        if self.max_bytes.is_none() && self.max_items.is_none() {
            return Err(Invalid::new(
                "a quota needs `max_bytes`, `max_items` or both; DELETE the quota to remove it",
            ));
        }
        for (name, value) in [("max_bytes", self.max_bytes), ("max_items", self.max_items)] {
            if value.is_some_and(|v| v < 0) {
                return Err(Invalid::new(format!("`{name}` must be 0 or more")));
            }
        }
        Ok(self)
    }

    /// The first limit of `self` that `outer` (an ancestor's quota) is tighter than, as
    /// `(name, self's limit, outer's limit)`: a subfolder's quota may not exceed an ancestor's.
    /// A limit `self` leaves unset is bounded by `outer`'s anyway.
    pub fn exceeding(&self, outer: &Quota) -> Option<(&'static str, i64, i64)> {
        let pairs = [
            ("max_bytes", self.max_bytes, outer.max_bytes),
            ("max_items", self.max_items, outer.max_items),
        ];
        pairs.into_iter().find_map(|(name, inner, outer)| match (inner, outer) {
            (Some(inner), Some(outer)) if inner > outer => Some((name, inner, outer)),
            _ => None,
        })
    }
}

/// What live items hold: their bytes and how many they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Bytes of the live items.
    pub bytes: i64,
    /// Live items.
    pub items: i64,
}

impl Usage {
    /// The usage of one item of `size` bytes.
    pub fn item(size: i64) -> Self {
        Self { bytes: size, items: 1 }
    }

    /// `self` plus `other`.
    pub fn plus(self, other: Usage) -> Self {
        Self {
            bytes: self.bytes + other.bytes,
            items: self.items + other.items,
        }
    }

    /// `self` less `other`.
    pub fn minus(self, other: Usage) -> Self {
        Self {
            bytes: self.bytes - other.bytes,
            items: self.items - other.items,
        }
    }

    /// Whether nothing changes.
    pub fn is_zero(self) -> bool {
        self.bytes == 0 && self.items == 0
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes in {} items", self.bytes, self.items)
    }
}

/// Who holds a quota: a folder (over its subtree) or a user (over the trees they own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The folder's id and its path when the change was gathered.
    Folder(uuid::Uuid, String),
    /// The user's name.
    User(String),
}

impl Holder {
    /// Who may raise this holder's quota, for refusals.
    fn who_raises(&self) -> &'static str {
        match self {
            Holder::Folder(..) => "a manager of the folder",
            Holder::User(_) => "an admin",
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Folder(_, path) => write!(f, "folder {path}"),
            Holder::User(name) => write!(f, "user {name}"),
        }
    }
}

/// A change refused because it would take a holder past one of its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the quota of {holder} allows {limit} {unit}; {used} {unit} are used and this change adds {adding} (free some, or ask {} to raise the quota)",
    .holder.who_raises()
)]
pub struct QuotaExceeded {
    /// Whose quota.
    pub holder: Holder,
    /// `bytes` or `items`.
    pub unit: &'static str,
    /// The limit.
    pub limit: i64,
    /// What is used now.
    pub used: i64,
    /// What the change would add.
    pub adding: i64,
}

impl QuotaExceeded {
    /// The refusal as `reader` (a user name and whether they are an admin; `None` for a job's
    /// record, which its folder's viewers read) may be told it: in full for admins, for the user
    /// whose quota it is, and for a folder's quota (its path shows in the paths below it, and
    /// counts of a folder's subtree are shown to whoever sees the folder). Someone else's user
    /// quota says whose it is and what the change adds, not what they hold.
    pub fn told_to(&self, reader: Option<(&str, bool)>) -> String {
        match (&self.holder, reader) {
            (Holder::Folder(..), _) => self.to_string(),
            (Holder::User(owner), Some((name, is_admin))) if is_admin || name == owner => self.to_string(),
            (Holder::User(owner), _) => format!(
                "the quota of user {owner}, who owns this tree, has no room for this change, which adds {} {}; ask {owner} to free some, or an admin to raise the quota",
                self.adding, self.unit
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_needs_a_limit_and_no_negative_one() {
        assert!(Quota::default().checked().is_err());
        assert!(
            Quota {
                max_bytes: Some(-1),
                max_items: None
            }
            .checked()
            .is_err()
        );
        let quota = Quota {
            max_bytes: Some(0),
            max_items: None,
        };
        assert_eq!(quota.checked(), Ok(quota));
    }

    #[test]
    fn an_inner_quota_may_not_exceed_an_outer_one() {
        let outer = Quota {
            max_bytes: Some(100),
            max_items: None,
        };
        let inner = Quota {
            max_bytes: Some(50),
            max_items: Some(1_000),
        };
        assert_eq!(inner.exceeding(&outer), None);
        assert_eq!(outer.exceeding(&inner), Some(("max_bytes", 100, 50)));
        let only_items = Quota {
            max_bytes: None,
            max_items: Some(2_000),
        };
        assert_eq!(only_items.exceeding(&inner), Some(("max_items", 2_000, 1_000)));
    }

    #[test]
    fn a_users_usage_is_told_only_to_them_and_admins() {
        let refusal = QuotaExceeded {
            holder: Holder::User("alice".into()),
            unit: "bytes",
            limit: 1_000,
            used: 990,
            adding: 20,
        };
        for reader in [Some(("alice", false)), Some(("root", true))] {
            assert!(refusal.told_to(reader).contains("990 bytes are used"), "{reader:?}");
        }
        for reader in [Some(("bob", false)), None] {
            let told = refusal.told_to(reader);
            assert!(!told.contains("990") && !told.contains("1000"), "{told}");
            assert!(told.contains("user alice") && told.contains("adds 20 bytes"), "{told}");
        }
    }

    #[test]
    fn a_refusal_names_the_quota_the_usage_and_the_limit() {
        let refusal = QuotaExceeded {
            holder: Holder::Folder(uuid::Uuid::nil(), "/team".into()),
            unit: "bytes",
            limit: 1_000,
            used: 900,
            adding: 200,
        };
        assert_eq!(
            refusal.to_string(),
            "the quota of folder /team allows 1000 bytes; 900 bytes are used and this change adds 200 (free some, or ask a manager of the folder to raise the quota)"
        );
    }
}
