//! Folders: validated names and paths, visibility, and the folder record itself.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Invalid, check_name, client_name};

/// The longest folder path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest single folder name, in bytes.
pub use super::MAX_NAME_BYTES;

/// One path segment: non-empty, no `/`, not `.` or `..`, no NUL or other control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderName(String);

/// How a folder name is told to use nested paths.
const NAME_HINT: &str = "; use `path` to address nested folders";

impl FolderName {
    /// Validates `name`, given by a client, as a folder name, in its stored form (see
    /// [`client_name`]: NFC, no `\`, nothing that reorders text).
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        client_name("folder name", name, NAME_HINT).map(Self)
    }

    /// Validates a name a bucket's layout gives (a key's directory, for a synced folder): the
    /// structural rules only, as the bucket spells it.
    pub fn from_bucket(name: &str) -> Result<Self, Invalid> {
        check_name("folder name", name, NAME_HINT)?;
        Ok(Self(name.to_owned()))
    }

    /// The name of a folder already in the catalog, as stored.
    pub fn stored(name: &str) -> Self {
        Self(name.to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute folder path such as `/a/b/c`: a `/` before every valid [`FolderName`], at most
/// [`MAX_PATH_BYTES`] long. The root itself (`/`) is not a folder and has no `FolderPath`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderPath(String);

impl FolderPath {
    /// A path read back from the catalog, which only ever stores valid paths.
    pub fn stored(path: &str) -> Self {
        Self(path.to_owned())
    }

    /// Validates `path`, given by a client, in its stored form (each segment as
    /// [`FolderName::parse`] makes it).
    pub fn parse(path: &str) -> Result<Self, Invalid> {
        if !path.starts_with('/') {
            return Err(Invalid::new(format!("path `{path}` must start with `/`")));
        }
        if path == "/" {
            return Err(Invalid::new(
                "path `/` is the root, which is not a folder; name a folder below it",
            ));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(Invalid::new(format!(
                "a path must be at most {MAX_PATH_BYTES} bytes, got {}",
                path.len()
            )));
        }
        let mut stored = String::with_capacity(path.len());
        for segment in path[1..].split('/') {
            if segment.is_empty() {
                return Err(Invalid::new(format!(
                    "path `{path}` has an empty segment (`//` or a trailing `/`)"
                )));
            }
            let name = FolderName::parse(segment).map_err(|e| Invalid::new(format!("path `{path}`: {e}")))?;
            stored.push('/');
            stored.push_str(name.as_str());
        }
        if stored.len() > MAX_PATH_BYTES {
            return Err(Invalid::new(format!(
                "a path must be at most {MAX_PATH_BYTES} bytes, got {}",
                stored.len()
            )));
        }
        Ok(Self(stored))
    }

    /// The path of `name` inside `parent` (or at the root when `parent` is `None`).
    pub fn join(parent: Option<&FolderPath>, name: &FolderName) -> Result<Self, Invalid> {
        let path = match parent {
            Some(parent) => format!("{}/{}", parent.0, name.0),
            None => format!("/{}", name.0),
        };
        if path.len() > MAX_PATH_BYTES {
            return Err(Invalid::new(format!(
                "the resulting path would be {} bytes, over the limit of {MAX_PATH_BYTES}",
                path.len()
            )));
        }
        Ok(Self(path))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The parent path, `None` for a folder at the root.
    pub fn parent(&self) -> Option<FolderPath> {
        let cut = self.0.rfind('/')?;
        (cut > 0).then(|| Self(self.0[..cut].to_owned()))
    }

    /// Every ancestor path, root first, excluding this one.
    pub fn ancestors(&self) -> Vec<FolderPath> {
        let mut out: Vec<FolderPath> = std::iter::successors(self.parent(), FolderPath::parent).collect();
        out.reverse();
        out
    }

    /// True when this path is `other` or lies below it.
    pub fn is_within(&self, other: &FolderPath) -> bool {
        path_is_within(&self.0, &other.0)
    }
}

/// Whether the folder path `path` is `root` or below it (as text, for paths read back from
/// elsewhere, e.g. a webhook event's).
pub fn path_is_within(path: &str, root: &str) -> bool {
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may read a folder besides its owner and the admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the owner and admins.
    #[default]
    Private,
    /// Every signed-in user of this deployment may read it.
    Internal,
    /// Every signed-in user may read it (and, once links without a key exist, anyone with one).
    Public,
}

impl Visibility {
    /// Every visibility.
    pub const ALL: [Visibility; 3] = [Visibility::Private, Visibility::Internal, Visibility::Public];

    /// Whether every signed-in user may read a folder of this visibility.
    pub fn readable_by_everyone(self) -> bool {
        matches!(self, Visibility::Internal | Visibility::Public)
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text {
            "private" => Ok(Visibility::Private),
            "internal" => Ok(Visibility::Internal),
            "public" => Ok(Visibility::Public),
            other => Err(Invalid::new(format!(
                "visibility must be `private`, `internal` or `public`, got `{other}`"
            ))),
        }
    }
}

/// A folder of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    /// Stable identifier.
    pub id: Uuid,
    /// The containing folder, `None` at the root.
    pub parent_id: Option<Uuid>,
    /// Its own name, the last segment of `path`.
    pub name: String,
    /// Its absolute path, unique in the catalog.
    pub path: FolderPath,
    /// Free text.
    pub description: String,
    /// Arbitrary JSON object the client keeps with the folder.
    pub client_metadata: serde_json::Map<String, serde_json::Value>,
    /// The user that created it.
    pub owner: String,
    /// Who else may read it.
    pub visibility: Visibility,
    /// Lifetime given to the items in it, if any.
    pub ttl_seconds: Option<i64>,
    /// Cron expression on which the folder is synced, if any.
    pub sync_schedule: Option<String>,
    /// The bucket prefix the folder mirrors, for a synced folder.
    pub sync: Option<SyncBinding>,
    /// When the folder and its whole subtree expire (the TTL sweep then deletes or trashes them), if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// Why and since when its sync schedule stopped firing, when it did.
    pub schedule_paused: Option<SchedulePause>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A sync schedule that paused itself: its folder's syncs failed too many times in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulePause {
    /// When it paused.
    pub since: OffsetDateTime,
    /// The last failure's message.
    pub reason: String,
}

/// The orderings a folder list offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FolderOrder {
    /// By name, bytewise.
    #[default]
    Name,
    /// By creation time.
    CreatedAt,
}

impl FolderOrder {
    /// The name used in page tokens and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            FolderOrder::Name => "name",
            FolderOrder::CreatedAt => "created_at",
        }
    }
}

/// What a synced folder mirrors: every object of `bucket` whose key starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncBinding {
    /// A configured bucket's name.
    pub bucket: String,
    /// A key prefix inside it: empty (the whole bucket) or ending in `/`.
    #[serde(default)]
    pub prefix: String,
}

impl SyncBinding {
    /// Normalizes and checks the prefix: `a/b` becomes `a/b/`; no empty, `.` or `..` segment,
    /// no NUL, no leading `/`.
    pub fn normalized(mut self) -> Result<Self, Invalid> {
        if !self.prefix.is_empty() && !self.prefix.ends_with('/') {
            self.prefix.push('/');
        }
        let body = self.prefix.trim_end_matches('/');
        if !self.prefix.is_empty()
            && (body.is_empty()
                || body.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || body.contains('\0'))
        {
            return Err(Invalid::new(format!(
                "prefix `{}` must be empty or `segment/segment/` with no empty, `.` or `..` segment",
                self.prefix
            )));
        }
        Ok(self)
    }
}

/// The longest TTL a folder may give its items: 100 years of 365 days, in seconds. Every
/// expiry a TTL makes (creation time + TTL) then stays far inside what the store can hold.
pub const MAX_TTL_SECONDS: i64 = 100 * 365 * 24 * 3600;

/// Validates a TTL given in seconds: 1 to [`MAX_TTL_SECONDS`].
pub fn ttl_seconds(ttl: Option<i64>) -> Result<Option<i64>, Invalid> {
    match ttl {
        Some(t) if !(1..=MAX_TTL_SECONDS).contains(&t) => Err(Invalid::new(format!(
            "must be a whole number of seconds from 1 to {MAX_TTL_SECONDS} (100 years), got {t}"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_parse() {
        let p = FolderPath::parse("/a/b c/d.e").expect("valid");
        assert_eq!(p.name(), "d.e");
        assert_eq!(p.parent(), Some(FolderPath("/a/b c".into())));
        assert_eq!(
            p.ancestors(),
            vec![FolderPath("/a".into()), FolderPath("/a/b c".into())]
        );
        assert_eq!(FolderPath::parse("/a").expect("valid").parent(), None);
    }

    #[test]
    fn bad_paths_are_rejected() {
        for bad in ["", "a/b", "/", "/a//b", "/a/", "/a/../b", "/./a", "/a\0b", "/a\nb"] {
            assert!(FolderPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("/{}", "x/".repeat(600));
        assert!(FolderPath::parse(long.trim_end_matches('/')).is_err());
        assert!(FolderName::parse(&"n".repeat(256)).is_err());
    }

    #[test]
    fn client_paths_are_stored_nfc_and_bucket_names_as_spelled() {
        let decomposed = FolderPath::parse("/cafe\u{301}/x").expect("valid");
        assert_eq!(decomposed.as_str(), "/caf\u{e9}/x");
        assert!(FolderPath::parse("/a\\b").is_err());
        assert!(FolderName::parse("..\\evil").is_err());
        assert!(FolderName::parse("a\u{202E}b").is_err());
        assert_eq!(
            FolderName::from_bucket("a\\b").expect("a bucket's own name").as_str(),
            "a\\b"
        );
        assert_eq!(
            FolderName::from_bucket("cafe\u{301}").expect("valid").as_str(),
            "cafe\u{301}"
        );
    }

    #[test]
    fn within_respects_segment_boundaries() {
        let a = FolderPath::parse("/a").expect("valid");
        let ab = FolderPath::parse("/a/b").expect("valid");
        let a_b = FolderPath::parse("/a-b").expect("valid");
        assert!(ab.is_within(&a));
        assert!(a.is_within(&a));
        assert!(!a_b.is_within(&a));
        assert!(!a.is_within(&ab));
    }

    #[test]
    fn ttls_stay_in_their_range() {
        assert_eq!(ttl_seconds(Some(1)), Ok(Some(1)));
        assert_eq!(ttl_seconds(Some(MAX_TTL_SECONDS)), Ok(Some(MAX_TTL_SECONDS)));
        assert_eq!(ttl_seconds(None), Ok(None));
        for bad in [0, -1, MAX_TTL_SECONDS + 1, 10_000_000_000_000, i64::MAX] {
            assert!(ttl_seconds(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_checks_length() {
        let parent = FolderPath::parse(&format!("/{}", "p".repeat(250))).expect("valid");
        let name = FolderName::parse(&"n".repeat(255)).expect("valid");
        assert!(FolderPath::join(Some(&parent), &name).is_ok());
        let deep = FolderPath::parse(&format!("/{0}/{0}/{0}/{0}", "p".repeat(250))).expect("valid");
        assert!(FolderPath::join(Some(&deep), &name).is_err());
    }
}
