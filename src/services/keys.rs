//! API keys: creating them, the first admin key, and turning a bearer token into a caller.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use super::{Context, ServiceError};
use crate::domain::caller::Caller;
use crate::store::{Store, keys};

/// The user name of the key created on first start.
pub const FIRST_ADMIN: &str = "admin";

/// Creates keys and checks them.
#[derive(Clone)]
pub struct KeyService {
    store: Store,
}

/// The stored form of a key: its blake3 hash, hex.
fn hash_key(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

/// Checks a user name: 1–64 characters of letters, digits, `.`, `_`, `-` or `@`.
fn validate_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "name `{name}` must be 1-64 characters of letters, digits, `.`, `_`, `-` or `@`"
        )))
    }
}

impl KeyService {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates a key for user `name` and returns it; only its hash is stored.
    pub async fn create(&self, name: &str, is_admin: bool) -> Result<String, ServiceError> {
        validate_name(name)?;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let key = format!("stw_{}", URL_SAFE_NO_PAD.encode(secret));
        let mut tx = self.store.write().await?;
        keys::insert(&mut tx, name, &hash_key(&key), is_admin).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The caller a bearer key belongs to.
    pub async fn authenticate(&self, key: &str) -> Result<Caller, ServiceError> {
        let mut conn = self.store.read().await?;
        match keys::find_by_hash(&mut conn, &hash_key(key)).await? {
            Some(owner) => Ok(Caller {
                name: owner.name,
                is_admin: owner.is_admin != 0,
            }),
            None => Err(ServiceError::Unauthorized("the API key is not valid".into())),
        }
    }

    /// On a store with no keys at all, creates an admin key and writes it to `DATA_DIR/admin.key`
    /// (mode 0600). Returns the file's path when it did.
    pub async fn bootstrap_admin(&self, data_dir: &Path) -> Result<Option<PathBuf>, ServiceError> {
        let mut conn = self.store.read().await?;
        if keys::count(&mut conn).await? > 0 {
            return Ok(None);
        }
        drop(conn);
        let key = self.create(FIRST_ADMIN, true).await?;
        let path = data_dir.join("admin.key");
        write_private(&path, &key).context(format!("cannot write {}", path.display()))?;
        Ok(Some(path))
    }
}

/// Writes `text` to a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("alice@example.com").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(hash_key("k"), hash_key("k"));
        assert_eq!(hash_key("k").len(), 64);
        assert_ne!(hash_key("k"), hash_key("l"));
    }
}
