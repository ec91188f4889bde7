//! Signed URLs of items' content: URLs that read one item's content without an API key, for a
//! while. A cloud bucket's own presigned URL (S3, GCS, Azure SAS) where the object lives there;
//! otherwise a URL this daemon serves itself (`/o/TOKEN`, see [`crate::domain::signed_url`]),
//! signed with a secret from the configuration or, by default, one made once and kept in the
//! catalog so that every process checks every other's URLs.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{ItemService, Served, served};
use crate::services::{Context, ServiceError, now};
use uuid::Uuid;

use crate::blobs::{Answering, Buckets, Method, ObjectKey};
use crate::config::MANAGED_BUCKET;
use crate::config::SignedUrlSettings;
use crate::domain::caller::Caller;
use crate::domain::item::{Item, content_disposition};
use crate::domain::signed_url::{Grant, Refused, sign, verify};
use crate::store::Store;
use crate::store::secrets;

/// The name of the catalog's secret for the daemon's own URLs.
const SECRET_NAME: &str = "signed_urls";

/// A URL that reads an item's content without an API key, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignedUrl {
    /// GET it (Range works) as it is: no API key, no other header.
    pub url: String,
    /// When it stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl ItemService {
    /// A URL that reads item `id`'s content (its rendition unless `original`) without an API
    /// key for `expires_in` seconds (`signed_urls.default_seconds` when absent); `base` is the
    /// address the daemon's own URLs start with. 404 for an item the caller may not read.
    pub async fn signed_url(
        &self,
        caller: &Caller,
        id: Uuid,
        original: bool,
        expires_in: Option<u64>,
        base: &str,
    ) -> Result<SignedUrl, ServiceError> {
        let lifetime = self.signer.lifetime(expires_in)?;
        let item = self.readable(caller, id).await?;
        self.signer.sign(&item, original, lifetime, base).await
    }

    /// The content a daemon URL's token lets its holder read; 403 for one this catalog did not
    /// sign or that expired.
    pub async fn open_signed(&self, token: &str) -> Result<Served, ServiceError> {
        self.signer.open(token).await
    }

    /// URLs of the default validity for `items` (of a list the caller may read), in order; none
    /// for tombstones.
    pub(super) async fn signed_urls<'a>(
        &self,
        items: impl Iterator<Item = &'a Item>,
        base: &str,
    ) -> Result<Vec<Option<String>>, ServiceError> {
        let lifetime = self.signer.lifetime(None)?;
        let mut urls = Vec::new();
        for item in items {
            urls.push(match item.is_tombstone {
                true => None,
                false => Some(self.signer.sign(item, false, lifetime, base).await?.url),
            });
        }
        Ok(urls)
    }
}

/// Makes and checks signed URLs.
#[derive(Clone)]
pub struct UrlSigner {
    store: Store,
    buckets: Buckets,
    settings: SignedUrlSettings,
    secret: Arc<tokio::sync::OnceCell<Arc<[u8]>>>,
}

impl UrlSigner {
    /// A signer over `store` (which keeps the default secret) and `buckets`.
    pub fn new(store: Store, buckets: Buckets, settings: &SignedUrlSettings) -> Self {
        Self {
            store,
            buckets,
            settings: settings.clone(),
            secret: Arc::default(),
        }
    }

    /// How long a URL asked for with `expires_in` (seconds; the configured default when
    /// absent) stays valid: 400 past `signed_urls.max_seconds`.
    pub fn lifetime(&self, expires_in: Option<u64>) -> Result<Duration, ServiceError> {
        let seconds = expires_in.unwrap_or(self.settings.default_seconds);
        if seconds == 0 || seconds > self.settings.max_seconds {
            return Err(ServiceError::Invalid(format!(
                "expires_in must be between 1 and {} seconds (signed_urls.max_seconds)",
                self.settings.max_seconds
            )));
        }
        Ok(Duration::from_secs(seconds))
    }

    /// A URL that reads `item`'s content (its rendition unless `original`) for `lifetime`;
    /// `base` is the address the daemon's own URLs start with. The caller must have checked
    /// that the item may be read.
    pub async fn sign(
        &self,
        item: &Item,
        original: bool,
        lifetime: Duration,
        base: &str,
    ) -> Result<SignedUrl, ServiceError> {
        let content = served(item, original);
        let expires_at = now().replace_nanosecond(0).unwrap_or_else(|_| now()) + lifetime;
        let answering = Answering {
            content_type: Some(content.mime_type.clone()),
            content_disposition: Some(content_disposition("inline", &content.file_name)),
        };
        let signed = self
            .buckets
            .signed_url(&content.bucket, &content.object_key, lifetime, &answering)
            .await
            .context(format!("cannot sign a URL for item {}", item.id))?;
        if let Some(url) = signed {
            return Ok(SignedUrl {
                url: url.to_string(),
                expires_at,
            });
        }
        let grant = Grant {
            bucket: content.bucket,
            key: content.object_key,
            size: content.size,
            checksum: content.checksum,
            fingerprint: content.fingerprint,
            mime_type: content.mime_type,
            file_name: content.file_name,
            expires: expires_at.unix_timestamp(),
            upload: false,
        };
        let token = sign(&self.secret().await?, &grant);
        let base = self.settings.base_url.as_deref().unwrap_or(base);
        Ok(SignedUrl {
            url: format!("{}/o/{token}", base.trim_end_matches('/')),
            expires_at,
        })
    }

    /// What the token of a daemon URL lets its holder read: 403 for a token this catalog did not
    /// sign, or one that expired, with a message that tells nothing of the item.
    pub async fn open(&self, token: &str) -> Result<Served, ServiceError> {
        let grant = self.verified(token, false).await?;
        Ok(Served {
            bucket: grant.bucket,
            object_key: grant.key,
            size: grant.size,
            checksum: grant.checksum,
            mime_type: grant.mime_type,
            fingerprint: grant.fingerprint,
            file_name: grant.file_name,
        })
    }

    /// The grant of `token` if this catalog signed it, it has not expired, and it is for an
    /// upload (`upload`) or a read (not `upload`); else 403.
    pub async fn verified(&self, token: &str, upload: bool) -> Result<Grant, ServiceError> {
        let secret = self.secret().await?;
        let grant = verify(&secret, token, OffsetDateTime::now_utc().unix_timestamp())
            .map_err(|refused| ServiceError::Forbidden(refused.to_string()))?;
        if grant.upload != upload {
            return Err(ServiceError::Forbidden(Refused::Invalid.to_string()));
        }
        Ok(grant)
    }

    /// A URL that PUTs exactly `size` bytes into object `key` of the managed bucket until
    /// `expires_at`: the store's presigned PUT (S3, GCS, Azure; an Azure client also sends
    /// `x-ms-blob-type: BlockBlob`), or the daemon's own `/o/` URL for a local bucket.
    pub async fn sign_upload(
        &self,
        key: &ObjectKey,
        size: i64,
        expires_at: OffsetDateTime,
        base: &str,
    ) -> Result<String, ServiceError> {
        let lifetime = Duration::try_from(expires_at - now()).unwrap_or_default();
        let signed = self
            .buckets
            .managed()
            .signed_url(Method::PUT, key, lifetime, &Answering::default())
            .await
            .context(format!("cannot sign an upload URL for {key}"))?;
        if let Some(url) = signed {
            return Ok(url.to_string());
        }
        let grant = Grant {
            bucket: MANAGED_BUCKET.to_owned(),
            key: key.to_string(),
            size,
            checksum: None,
            fingerprint: None,
            mime_type: String::new(),
            file_name: String::new(),
            expires: expires_at.unix_timestamp(),
            upload: true,
        };
        let token = sign(&self.secret().await?, &grant);
        let base = self.settings.base_url.as_deref().unwrap_or(base);
        Ok(format!("{}/o/{token}", base.trim_end_matches('/')))
    }

    /// The bytes of each part of a direct upload that goes in parts (at least).
    pub fn upload_part_bytes(&self) -> u64 {
        self.settings.upload_part_bytes
    }

    /// How long direct upload sessions stay open.
    pub fn upload_lifetime(&self) -> Duration {
        Duration::from_secs(self.settings.upload_seconds)
    }

    /// The secret the daemon signs with: the configured one, else the catalog's (made by the
    /// first process that needs it).
    async fn secret(&self) -> Result<Arc<[u8]>, ServiceError> {
        let secret = self
            .secret
            .get_or_try_init(|| async {
                if let Some(configured) = &self.settings.secret {
                    return Ok(Arc::from(configured.as_bytes()));
                }
                let candidate = crate::services::keys::random_secret("");
                let mut tx = self.store.write().await?;
                let at = crate::store::to_micros(now());
                let secret = secrets::get_or_insert(&mut tx, SECRET_NAME, &candidate, at).await?;
                tx.commit().await?;
                Ok::<_, ServiceError>(Arc::from(secret.as_bytes()))
            })
            .await?;
        Ok(Arc::clone(secret))
    }
}
