//! Direct uploads: the file goes from the client straight into the managed bucket through a
//! signed URL, not through this daemon (on a cloud bucket). A session names the title, the size
//! and a fresh object key; the client PUTs the file's exact bytes to the session's URL, then
//! completes the session: the object moves to a key of its own (out of reach of the URL, which
//! stays valid until it expires), is read once (blake3, type, media), checked against the
//! announced size and committed as an item with the session's conflict strategy. On a `file://`
//! bucket the URL is the daemon's own `/o/…`, which streams the PUT into the bucket.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::upload::{Staged, StagedObject, probe_stored, upload_failed};
use super::{ItemService, ItemView, UploadOptions, UploadOutcome};
use crate::blobs::listing::hash_stream;
use crate::blobs::{BlobError, ByteStream, ObjectKey, Written, backend_label};
use crate::domain::caller::Caller;
use crate::domain::item::{ConflictStrategy, client_title};
use crate::services::access::changeable_folder;
use crate::services::objects::{new_object_key, remove_object};
use crate::services::probe::HEAD_BYTES;
use crate::services::{Context, Metadata, ServiceError, field, now};
use crate::store::uploads::{self as rows, UploadSession};

/// Expired sessions removed per transaction by the sweep.
const SWEEP_BATCH: i64 = 500;

/// What `POST /v1/folders/{id}/uploads` asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The item's title in the folder.
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    /// The file's exact size in bytes, at most `server.max_upload_bytes`.
    pub size: u64,
    /// What completing does when the title is taken: `error` (default), `skip`, `new` or
    /// `replace`, as for uploads.
    #[serde(default)]
    pub conflict_strategy: ConflictStrategy,
    /// A JSON object kept with the item.
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Metadata>,
}

/// An open direct upload, as its client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UploadSessionView {
    /// Complete it with `POST /v1/uploads/{id}/complete`, abort it with `DELETE /v1/uploads/{id}`.
    pub id: Uuid,
    /// The folder the item goes into.
    pub folder_id: Uuid,
    /// The item's title.
    pub title: String,
    /// The bytes the file must have.
    pub size: u64,
    /// Send the file's bytes here, with no API key, until `expires_at`.
    pub url: String,
    /// The method to send them with: `PUT`.
    pub method: String,
    /// Headers the request must carry (Azure's `x-ms-blob-type`); often none.
    pub headers: BTreeMap<String, String>,
    /// When the session and its URL stop working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl ItemService {
    /// Opens a direct upload of a `req.size`-byte file titled `req.title` into `folder_id`
    /// (which the caller must be able to add to), at most `max_bytes`; `base` is the address
    /// the daemon's own URLs start with.
    pub async fn start_upload(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        req: NewUpload,
        max_bytes: u64,
        base: &str,
    ) -> Result<UploadSessionView, ServiceError> {
        let title = client_title(&req.title).map_err(field("title"))?;
        let size =
            i64::try_from(req.size).map_err(|_| ServiceError::Invalid(format!("size: at most {} bytes", i64::MAX)))?;
        if req.size > max_bytes {
            return Err(ServiceError::TooLarge(format!(
                "size: {} bytes is over server.max_upload_bytes ({max_bytes})",
                req.size
            )));
        }
        let managed_url = self.buckets.managed_url();
        if let Some((limit, store)) = single_put_limit(&managed_url)
            && req.size > limit
        {
            return Err(ServiceError::Invalid(format!(
                "size: {store} takes at most {limit} bytes in one PUT; upload a larger file with POST /v1/folders/{{id}}/items, which streams it into a multipart upload"
            )));
        }
        let client_metadata = req
            .client_metadata
            .map(|m| serde_json::to_string(&m))
            .transpose()
            .context("cannot write client metadata")?;
        let created_at = now();
        let key = new_object_key();
        let session = UploadSession {
            id: Uuid::now_v7(),
            folder_id,
            user_name: caller.name.clone(),
            title,
            size,
            conflict_strategy: req.conflict_strategy,
            client_metadata,
            object_key: key.to_string(),
            created_at,
            expires_at: created_at + self.signer.upload_lifetime(),
        };
        let url = self.signer.sign_upload(&key, size, session.expires_at, base).await?;
        let mut tx = self.store.write().await?;
        changeable_folder(&mut tx, caller, folder_id, "uploading").await?;
        rows::insert(&mut tx, &session).await?;
        tx.commit().await?;
        let headers = match backend_label(&managed_url) == "az" {
            true => BTreeMap::from([("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())]),
            false => BTreeMap::new(),
        };
        Ok(UploadSessionView {
            id: session.id,
            folder_id,
            title: session.title,
            size: req.size,
            url,
            method: "PUT".into(),
            headers,
            expires_at: session.expires_at,
        })
    }

    /// Stores `body`, the PUT of a direct upload to the daemon's own URL `token`: exactly the
    /// size the session announced (400 otherwise, leaving nothing).
    pub async fn receive_upload(&self, token: &str, body: ByteStream<'_>) -> Result<Written, ServiceError> {
        let grant = self.signer.verified(token, true).await?;
        let key = stored_key(&grant.key)?;
        let want = u64::try_from(grant.size).unwrap_or_default();
        let mut received = 0u64;
        let body = body.map(move |chunk| {
            let chunk = chunk?;
            received += chunk.len() as u64;
            if received > want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the body is longer than the {want} bytes the upload session announced"),
                ));
            }
            Ok(chunk)
        });
        let bucket = self.buckets.managed();
        let written = bucket.write(&key, Box::pin(body)).await.map_err(|e| match e {
            BlobError::Body(e) if e.kind() == std::io::ErrorKind::InvalidData => ServiceError::Invalid(e.to_string()),
            other => upload_failed(other),
        })?;
        if written.size != want {
            remove_object(bucket.as_ref(), &key).await;
            return Err(ServiceError::Invalid(format!(
                "the body has {} bytes; the upload session announced {want}",
                written.size
            )));
        }
        Ok(written)
    }

    /// Completes direct upload `id`: moves what was uploaded to a key of its own (so the
    /// session's URL, valid until it expires, can never touch the item's content), reads it once
    /// (size, blake3, type, media) and makes the item as an upload would (conflict strategy,
    /// quota). The session ends once the file is there; a file of the wrong size is removed (400).
    pub async fn complete_upload(&self, caller: &Caller, id: Uuid) -> Result<(ItemView, UploadOutcome), ServiceError> {
        let session = self.open_session(caller, id).await?;
        let bucket = self.buckets.managed();
        let key = new_object_key();
        match bucket.rename(&stored_key(&session.object_key)?, &key).await {
            Ok(()) => {}
            Err(BlobError::NotFound(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "nothing was uploaded to session {id} yet: send the file to its url first, then complete it"
                )));
            }
            Err(e) => return Err(e).context(format!("cannot take the upload of session {id}")),
        }
        let object = StagedObject {
            bucket: bucket.clone(),
            key: Some(key.clone()),
        };
        let mut tx = self.store.write().await?;
        let ended = rows::remove(&mut tx, id).await?;
        tx.commit().await?;
        if !ended {
            // Aborted meanwhile: what it uploaded goes with it.
            object.discard().await;
            return Err(gone(id));
        }
        let body = bucket
            .read(&key, None)
            .await
            .context(format!("cannot read the upload of session {id}"))?;
        let (hashed, head) = hash_stream(body, HEAD_BYTES)
            .await
            .context(format!("cannot read the upload of session {id}"))?;
        let written = Written {
            size: hashed.size,
            checksum: hashed.checksum,
        };
        if i64::try_from(written.size).ok() != Some(session.size) {
            object.discard().await;
            return Err(ServiceError::Invalid(format!(
                "the uploaded file has {} bytes; the session announced {}. Start a new upload",
                written.size, session.size
            )));
        }
        let probed = probe_stored(bucket.as_ref(), &key, &head, &session.title, written.size).await;
        let client_metadata = session
            .client_metadata
            .as_deref()
            .map(serde_json::from_str::<Metadata>)
            .transpose()
            .context("stored client metadata")?;
        let staged = Staged {
            folder_id: session.folder_id,
            file_name: None,
            object,
            written,
            probed,
        };
        let options = UploadOptions {
            title: Some(session.title),
            client_metadata,
            conflict_strategy: session.conflict_strategy,
        };
        self.commit(caller, staged, options).await
    }

    /// Aborts direct upload `id`, removing what was uploaded to it.
    pub async fn abort_upload(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        let session = self.open_session(caller, id).await?;
        let mut tx = self.store.write().await?;
        let ended = rows::remove(&mut tx, id).await?;
        tx.commit().await?;
        if !ended {
            return Err(gone(id));
        }
        remove_object(self.buckets.managed().as_ref(), &stored_key(&session.object_key)?).await;
        Ok(())
    }

    /// Removes the sessions that expired, with what was uploaded to them; answers how many.
    pub async fn sweep_expired_uploads(&self) -> Result<u64, ServiceError> {
        let bucket = self.buckets.managed();
        let mut removed = 0;
        loop {
            let mut tx = self.store.write().await?;
            let expired = rows::expired(&mut tx, now(), SWEEP_BATCH).await?;
            for session in &expired {
                rows::remove(&mut tx, session.id).await?;
            }
            tx.commit().await?;
            for session in &expired {
                if let Ok(key) = ObjectKey::parse(&session.object_key) {
                    remove_object(bucket.as_ref(), &key).await;
                }
            }
            removed += expired.len() as u64;
            if (expired.len() as i64) < SWEEP_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Session `id` if it is open and the caller's (or the caller is an admin); else 404.
    async fn open_session(&self, caller: &Caller, id: Uuid) -> Result<UploadSession, ServiceError> {
        let mut conn = self.store.read().await?;
        match rows::get(&mut conn, id).await? {
            Some(session) if session.expires_at > now() && (session.user_name == caller.name || caller.is_admin) => {
                Ok(session)
            }
            _ => Err(gone(id)),
        }
    }
}

/// The most bytes one PUT may carry into the store at `url`, and the store's name; `None` where
/// the daemon takes the PUT itself (a local directory) or the store's limit is past any upload.
fn single_put_limit(url: &str) -> Option<(u64, &'static str)> {
    match backend_label(url) {
        "s3" => Some((5 << 30, "S3")),
        "az" => Some((5000 << 20, "Azure Blob Storage")),
        _ => None,
    }
}

/// An object key this daemon made (a session's, or a token's it signed).
fn stored_key(key: &str) -> Result<ObjectKey, ServiceError> {
    ObjectKey::parse(key).context("a stored object key")
}

/// The answer for a session that is not (or no longer) open to the caller.
fn gone(id: Uuid) -> ServiceError {
    ServiceError::NotFound(format!(
        "upload session {id} does not exist: it was completed, aborted, or expired"
    ))
}
