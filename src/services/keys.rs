//! API keys: making them (for yourself; admins for anyone), listing and revoking them, the first
//! admin key, and turning a bearer token into a caller. A key is shown once, when it is made;
//! the store keeps only its hash and the first characters, to tell keys apart.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::require_admin;
use super::audit;
use super::{Context, Page, Rfc3339, ServiceError, decode_number_position, field, now, page_token, rfc3339};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, KeyScope, check_user_name};
use crate::domain::page::{SortKey, page_size};
use crate::store::keys::{KeyRecord, NewKey};
use crate::store::{Store, StoreError, keys, now_micros, to_micros, users};

/// The user name of the key created on first start.
pub const FIRST_ADMIN: &str = "admin";
/// The audit log's actor for keys made on the database directly (`stowage keys create --name`).
pub const DIRECT_ACTOR: &str = "stowage keys create";
/// The audit log's actor for the admin key made on first start.
pub const FIRST_START_ACTOR: &str = "first start";
/// What every key starts with, so a leaked one is easy to recognize.
pub const KEY_PREFIX: &str = "stw_";
/// How many characters of a key (after [`KEY_PREFIX`]) are kept to tell keys apart.
const SHOWN_CHARS: usize = 6;
/// The longest key label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// How often a key's `last_used_at` is written at most (the first use after a minute is).
const TOUCH_EVERY_MICROS: i64 = 60_000_000;
/// How often the uses noted since are written, all in one statement ([`KeyUseRecorder`]).
pub const USE_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// The most key uses waiting to be written; more are dropped (a busy key is noted again later).
const MAX_PENDING_USES: usize = 10_000;
/// The one order keys are listed in (the order part of their page tokens).
const KEY_ORDER: &str = "created_at:desc";
/// The most keys one user may hold that work (neither revoked nor expired).
pub const MAX_ACTIVE_KEYS: i64 = 100;

/// Body of `POST /v1/keys`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// The user the key is for; yourself when absent (admins may name anyone).
    pub user: Option<String>,
    /// A label to tell your keys apart, e.g. "laptop" or "ci".
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// `read` (only reads) or `write` (everything the user may do; the default).
    pub scope: Option<KeyScope>,
    /// When the key stops working (RFC 3339, in the future); never when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Rfc3339>,
}

/// A key as its owner sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's id (for `DELETE /v1/keys/{id}`).
    pub id: Uuid,
    /// The user it belongs to.
    pub user: String,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub scope: KeyScope,
    /// The key's first characters, e.g. `stw_Ab3xY9`; `null` for keys made before they were kept.
    pub prefix: Option<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute); `null` if never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working; `null` for never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<KeyRecord> for KeyView {
    fn from(key: KeyRecord) -> Self {
        Self {
            id: key.id,
            user: key.user,
            name: key.label,
            scope: key.scope,
            prefix: (!key.prefix.is_empty()).then(|| format!("{KEY_PREFIX}{}", key.prefix)),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
        }
    }
}

/// A key just made: its secret, shown this once, and what is kept of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key itself: send it as `Authorization: Bearer KEY`. It is not shown again.
    pub key: String,
    /// What is kept of it.
    #[serde(flatten)]
    pub view: KeyView,
}

/// Makes keys, lists and revokes them, and checks them.
#[derive(Clone)]
pub struct KeyService {
    store: Store,
    uses: Arc<Mutex<KeyUses>>,
}

/// The keys this process saw used and has not written yet, and when it last noted each.
#[derive(Default)]
struct KeyUses {
    /// Keys used since the last write.
    pending: HashSet<Uuid>,
    /// When each key was last noted (microseconds); entries older than a minute are dropped at
    /// each write.
    noted: HashMap<Uuid, i64>,
}

/// The stored form of a key: its blake3 hash, hex.
fn hash_key(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

/// A fresh secret: `prefix` and 32 random bytes, base64url (API keys, webhook signing keys).
pub fn random_secret(prefix: &str) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret))
}

/// What a new key will be: for whom, labelled how, with what scope, until when.
struct KeySpec {
    user: String,
    label: String,
    scope: KeyScope,
    expires_at: Option<OffsetDateTime>,
    /// Whether the key may use its user's admin rights.
    admin_cap: bool,
}

impl KeySpec {
    /// Checks a request's label and expiry for `user`.
    fn checked(user: String, req: NewKeyRequest) -> Result<Self, ServiceError> {
        let label = req.name.unwrap_or_default();
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(format!(
                "name: at most {MAX_LABEL_CHARS} characters, no control characters"
            )));
        }
        let expires_at = req.expires_at.map(|at| at.0);
        if expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
            return Err(ServiceError::Invalid(
                "expires_at: must lie in the future; leave it out for a key that does not expire".into(),
            ));
        }
        Ok(Self {
            user,
            label,
            scope: req.scope.unwrap_or_default(),
            expires_at,
            admin_cap: true,
        })
    }
}

impl KeyService {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            uses: Arc::default(),
        }
    }

    /// Makes a key as `caller` asks: for themselves, or (admins) for another recorded user.
    pub async fn create(&self, caller: &Caller, req: NewKeyRequest) -> Result<CreatedKey, ServiceError> {
        let user = req.user.clone().unwrap_or_else(|| caller.name.clone());
        if user != caller.name {
            require_admin(caller, "create keys for other users")?;
        }
        let mut spec = KeySpec::checked(user, req)?;
        let mut tx = self.store.write().await?;
        if users::by_name(&mut tx, &spec.user).await?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "user: no user named `{}`; create it first (POST /v1/users)",
                spec.user
            )));
        }
        spec.expires_at = within_creator(caller, spec.expires_at)?;
        let active = keys::count_active(&mut tx, &spec.user, now_micros()).await?;
        if active >= MAX_ACTIVE_KEYS {
            return Err(ServiceError::Conflict(format!(
                "user `{}` holds {active} working keys, the most there may be; revoke some first",
                spec.user
            )));
        }
        let created = insert_key(&mut tx, caller, &spec).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The direct-database command (`stowage keys create` without a server): records user `name`
    /// (an admin with `is_admin`; an existing user is promoted, never demoted) and makes a key.
    pub async fn create_direct(
        &self,
        name: &str,
        is_admin: bool,
        req: NewKeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        self.create_locally(DIRECT_ACTOR, name, is_admin, req).await
    }

    /// Records user `name` and makes a key for it, on behalf of `actor` (no key of its own).
    async fn create_locally(
        &self,
        actor: &str,
        name: &str,
        is_admin: bool,
        req: NewKeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        check_user_name(name).map_err(field("name"))?;
        let mut spec = KeySpec::checked(name.to_owned(), req)?;
        spec.admin_cap = is_admin;
        let actor = Caller::user(actor, true);
        let at = now();
        let mut tx = self.store.write().await?;
        if users::insert_if_absent(&mut tx, name, is_admin, to_micros(at)).await? {
            let event = AuditEvent::by(&actor, AuditAction::UserCreate, name, at)
                .with_detail(serde_json::json!({ "is_admin": is_admin }));
            audit::record(&mut tx, &event).await?;
        } else if is_admin && users::promote(&mut tx, name).await? {
            audit::record(&mut tx, &AuditEvent::by(&actor, AuditAction::UserPromote, name, at)).await?;
        }
        let created = insert_key(&mut tx, &actor, &spec).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// One page of the keys of `user` (yourself when absent; admins may name anyone; an unknown
    /// user is 404), newest first; revoked keys are gone.
    pub async fn list(
        &self,
        caller: &Caller,
        user: Option<&str>,
        requested_size: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<KeyView>, ServiceError> {
        let user = user.unwrap_or(&caller.name);
        if user != caller.name {
            require_admin(caller, "list other users' keys")?;
        }
        let limit = page_size(requested_size).map_err(field("page_size"))?;
        let after = token
            .map(|token| decode_number_position(token, KEY_ORDER))
            .transpose()?;
        let mut conn = self.store.read().await?;
        if user != caller.name && users::by_name(&mut conn, user).await?.is_none() {
            return Err(ServiceError::NotFound(format!("user: no user named `{user}`")));
        }
        let found = keys::list(&mut conn, user, after, limit + 1).await?;
        let token_of = |last: &KeyRecord| page_token(KEY_ORDER, &SortKey::Int(to_micros(last.created_at)), last.id);
        Ok(Page::of(found, limit, token_of, KeyView::from))
    }

    /// Revokes key `id` at once: the next request with it is refused. Yours, or (admins) anyone's;
    /// a key of someone else is not found.
    pub async fn revoke(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("key {id} not found"));
        let mut tx = self.store.write().await?;
        let key = keys::by_id(&mut tx, id).await?.ok_or_else(not_found)?;
        if key.user != caller.name && !caller.is_admin {
            return Err(not_found());
        }
        let at = now();
        if !keys::revoke(&mut tx, id, to_micros(at)).await? {
            return Err(not_found());
        }
        let event = AuditEvent::by(caller, AuditAction::KeyRevoke, id, at)
            .with_detail(serde_json::json!({ "user": key.user, "name": key.label }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        tracing::info!(key = %id, user = %key.user, by = %caller.name, "revoked an API key");
        Ok(())
    }

    /// The caller a bearer key belongs to; 401 for an unknown, revoked or expired key.
    pub async fn authenticate(&self, secret: &str) -> Result<Caller, ServiceError> {
        let mut conn = self.store.read().await?;
        let (key, grants, bucket_grants) = keys::by_hash_with_reach(&mut conn, &hash_key(secret))
            .await?
            .ok_or_else(|| ServiceError::Unauthorized("the API key is not valid".into()))?;
        if key.revoked_at.is_some() {
            return Err(ServiceError::Unauthorized(
                "the API key was revoked; use another key".into(),
            ));
        }
        if let Some(at) = key.expires_at.filter(|at| *at <= OffsetDateTime::now_utc()) {
            return Err(ServiceError::Unauthorized(format!(
                "the API key expired at {}; make a new one",
                rfc3339(at)
            )));
        }
        self.note_use(key.id);
        Ok(Caller {
            name: key.user,
            is_admin: key.is_admin,
            key_id: Some(key.id),
            scope: key.scope,
            key_expires_at: key.expires_at,
            grants: grants.into(),
            bucket_grants: bucket_grants.into(),
        })
    }

    /// Notes that key `id` was used (at most once a minute per key and process);
    /// [`KeyUseRecorder`] writes the noted uses.
    fn note_use(&self, id: Uuid) {
        let now = to_micros(OffsetDateTime::now_utc());
        let mut uses = self.uses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if uses.noted.get(&id).is_some_and(|last| now - last < TOUCH_EVERY_MICROS) {
            return;
        }
        if uses.pending.len() < MAX_PENDING_USES {
            uses.noted.insert(id, now);
            uses.pending.insert(id);
        }
    }

    /// Writes the key uses noted since the last call, in one statement per 1,000 keys.
    pub async fn write_uses(&self) -> Result<(), StoreError> {
        let pending = {
            let mut uses = self.uses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = to_micros(OffsetDateTime::now_utc());
            uses.noted.retain(|_, at| now - *at < TOUCH_EVERY_MICROS);
            std::mem::take(&mut uses.pending)
        };
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = pending.into_iter().collect();
        let at = to_micros(OffsetDateTime::now_utc());
        let mut tx = self.store.write().await?;
        for chunk in ids.chunks(1000) {
            keys::touch_many(&mut tx, chunk, at).await?;
        }
        tx.commit().await
    }

    /// On a store with no keys at all, records the admin user [`FIRST_ADMIN`], makes a key for
    /// it and writes the key to `DATA_DIR/admin.key` (mode 0600). Returns the file's path when
    /// it did.
    pub async fn bootstrap_admin(&self, data_dir: &Path) -> Result<Option<PathBuf>, ServiceError> {
        let mut conn = self.store.read().await?;
        if keys::count(&mut conn).await? > 0 {
            return Ok(None);
        }
        drop(conn);
        let request = NewKeyRequest {
            name: Some("created on first start".into()),
            ..NewKeyRequest::default()
        };
        let created = self
            .create_locally(FIRST_START_ACTOR, FIRST_ADMIN, true, request)
            .await?;
        let path = data_dir.join("admin.key");
        write_private(&path, &created.key).context(format!("cannot write {}", path.display()))?;
        Ok(Some(path))
    }
}

/// A new key's expiry when `caller` makes it: a key made with an expiring key expires by then
/// too (its expiry when none is asked for), so revoking or outliving a key leaves nothing it
/// made behind.
fn within_creator(caller: &Caller, asked: Option<OffsetDateTime>) -> Result<Option<OffsetDateTime>, ServiceError> {
    match (asked, caller.key_expires_at) {
        (Some(asked), Some(limit)) if asked > limit => Err(ServiceError::Invalid(format!(
            "expires_at: the key you use expires at {}; a key it makes cannot outlive it",
            rfc3339(limit)
        ))),
        (None, limit) => Ok(limit),
        (asked, _) => Ok(asked),
    }
}

/// Stores a new key for `spec` inside `tx`, on behalf of `actor` (recorded in the audit log);
/// answers it with its secret.
async fn insert_key(tx: &mut crate::store::Tx, actor: &Caller, spec: &KeySpec) -> Result<CreatedKey, ServiceError> {
    let secret = random_secret(KEY_PREFIX);
    let prefix: String = secret[KEY_PREFIX.len()..].chars().take(SHOWN_CHARS).collect();
    let record = NewKey {
        id: Uuid::now_v7(),
        user: &spec.user,
        label: &spec.label,
        scope: spec.scope,
        admin_cap: spec.admin_cap,
        prefix: &prefix,
        hash: &hash_key(&secret),
        expires_at: spec.expires_at,
        created_at: now(),
    };
    keys::insert(tx, &record).await?;
    let event =
        AuditEvent::by(actor, AuditAction::KeyCreate, record.id, record.created_at).with_detail(serde_json::json!({
            "user": spec.user,
            "name": spec.label,
            "scope": spec.scope,
            "expires_at": spec.expires_at.map(rfc3339),
        }));
    audit::record(tx, &event).await?;
    Ok(CreatedKey {
        view: KeyView {
            id: record.id,
            user: spec.user.clone(),
            name: spec.label.clone(),
            scope: spec.scope,
            prefix: Some(format!("{KEY_PREFIX}{prefix}")),
            created_at: record.created_at,
            last_used_at: None,
            expires_at: spec.expires_at,
        },
        key: secret,
    })
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

/// Writes the key uses noted, every [`USE_FLUSH_EVERY`], as a background loop (see
/// [`crate::background::every`]).
pub struct KeyUseRecorder(pub KeyService);

impl crate::background::Periodic for KeyUseRecorder {
    async fn round(&mut self) {
        if let Err(error) = self.0.write_uses().await {
            tracing::warn!(%error, "could not record when keys were last used; trying again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(hash_key("k"), hash_key("k"));
        assert_eq!(hash_key("k").len(), 64);
        assert_ne!(hash_key("k"), hash_key("l"));
    }

    #[test]
    fn secrets_are_fresh_and_recognizable() {
        let (a, b) = (random_secret(KEY_PREFIX), random_secret(KEY_PREFIX));
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43, "32 bytes in unpadded base64url");
    }

    #[test]
    fn labels_and_expiry_are_checked() {
        let long = NewKeyRequest {
            name: Some("x".repeat(MAX_LABEL_CHARS + 1)),
            ..NewKeyRequest::default()
        };
        assert!(KeySpec::checked("u".into(), long).is_err());
        let past = NewKeyRequest {
            expires_at: Some(Rfc3339(OffsetDateTime::UNIX_EPOCH)),
            ..NewKeyRequest::default()
        };
        assert!(KeySpec::checked("u".into(), past).is_err());
        let fine = KeySpec::checked("u".into(), NewKeyRequest::default()).expect("defaults");
        assert_eq!(fine.scope, KeyScope::Write);
    }
}
