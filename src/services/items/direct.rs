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

use super::upload::{Staged, StagedObject, probe_stored, title_taken, upload_failed};
use super::{ItemService, ItemView, UploadOptions, UploadOutcome};
use crate::blobs::listing::hash_stream;
use crate::blobs::parts::StoreParts;
use crate::blobs::{BlobError, ByteStream, ObjectKey, Written, backend_label};
use crate::config::MAX_PART_BYTES;
use crate::domain::caller::Caller;
use crate::domain::item::{ConflictStrategy, client_title};
use crate::services::access::changeable_folder;
use crate::services::objects::{new_object_key, remove_object};
use crate::services::probe::HEAD_BYTES;
use crate::services::{Context, Metadata, ServiceError, field, now};
use crate::store::items;
use crate::store::uploads::{self as rows, SessionParts, UploadSession};

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
    /// Send the file's bytes here, with no API key, until `expires_at`; absent when the file
    /// goes in `parts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The method to send the file, or each part, with: `PUT`.
    pub method: String,
    /// Headers each request must carry (Azure's `x-ms-blob-type`); often none.
    pub headers: BTreeMap<String, String>,
    /// For a large file into a cloud bucket, instead of `url`: the parts to send, each its
    /// bytes `offset..offset+size` of the file to its own `url`, in any order and in parallel;
    /// complete the session with the `ETag` header each PUT answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartUrl>>,
    /// When the session and its URL stop working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One part of a direct upload that goes in parts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PartUrl {
    /// Its number, from 1.
    pub number: u32,
    /// Where its bytes start in the file.
    pub offset: u64,
    /// How many bytes it has.
    pub size: u64,
    /// Send them here with `PUT`, no API key, until the session expires.
    pub url: String,
}

/// What `POST /v1/uploads/{id}/complete` may carry.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// For a session that went in parts: each part's number and the `ETag` header its PUT
    /// answered, every part once (Azure needs none: leave it out there).
    #[serde(default)]
    pub parts: Vec<CompletedPart>,
}

/// A part the client sent, as `POST /v1/uploads/{id}/complete` names it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    /// The part's number, from 1.
    pub number: u32,
    /// The `ETag` header the store answered its PUT with.
    pub etag: String,
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
        let client_metadata = req
            .client_metadata
            .map(|m| serde_json::to_string(&m))
            .transpose()
            .context("cannot write client metadata")?;
        let bucket = self.buckets.managed();
        let part_bytes = match bucket.parts() {
            Some(_) => part_size(req.size, self.signer.upload_part_bytes())?,
            None => None,
        };
        let created_at = now();
        let key = new_object_key();
        let mut session = UploadSession {
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
            parts: None,
        };
        // Refused before the file is sent rather than after: a folder the caller may not add
        // to, or a title taken where taking it is an error.
        let mut conn = self.store.read().await?;
        let folder = changeable_folder(&mut conn, caller, folder_id, "uploading").await?;
        if session.conflict_strategy == ConflictStrategy::Error
            && items::by_title(&mut conn, folder_id, &session.title).await?.is_some()
        {
            return Err(title_taken(&session.title, &folder.path));
        }
        drop(conn);
        let (url, parts) = match (bucket.parts(), part_bytes) {
            (Some(store), Some(part_bytes)) => {
                let upload_id = store.start(&key).await.context("cannot start the upload")?;
                session.parts = Some(SessionParts {
                    upload_id: upload_id.clone(),
                    part_bytes: part_bytes as i64,
                });
                let lifetime = self.signer.upload_lifetime();
                let urls = store
                    .part_urls(&key, &upload_id, part_count(req.size, part_bytes), lifetime)
                    .await
                    .context("cannot sign the part URLs")?;
                (None, Some(part_list(req.size, part_bytes, urls)))
            }
            _ => (
                Some(self.signer.sign_upload(&key, size, session.expires_at, base).await?),
                None,
            ),
        };
        if let Err(e) = self.record_session(caller, &session).await {
            self.abandon(&session).await;
            return Err(e);
        }
        let single_azure_put = url.is_some() && backend_label(&self.buckets.managed_url()) == "az";
        let headers = match single_azure_put {
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
            parts,
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

    /// Completes direct upload `id`: assembles its parts (with the ETags in `done`) when it went
    /// in parts; moves the object to a key of its own where the session's URLs, valid until they
    /// expire, could still write it (a one-PUT session, Azure); reads it once (size, blake3, type,
    /// media) and makes the item as an upload would (conflict strategy, quota). The session ends
    /// once the file is there; a file of the wrong size is removed (400).
    pub async fn complete_upload(
        &self,
        caller: &Caller,
        id: Uuid,
        done: CompleteUpload,
    ) -> Result<(ItemView, UploadOutcome), ServiceError> {
        let session = self.open_session(caller, id).await?;
        let bucket = self.buckets.managed();
        let uploaded = stored_key(&session.object_key)?;
        let parts_store = bucket.parts();
        match (&session.parts, parts_store) {
            (Some(parts), Some(store)) => self.assemble(&session, parts, store, done.parts).await?,
            (Some(_), None) => {
                return Err(ServiceError::Conflict(format!(
                    "session {id} went in parts into a cloud bucket, and the managed bucket is no longer one; start a new upload"
                )));
            }
            (None, _) if !done.parts.is_empty() => {
                return Err(ServiceError::Invalid(format!(
                    "parts: session {id} took its file with one PUT; complete it without parts"
                )));
            }
            (None, _) => {}
        }
        // The URL of a one-PUT session, and an Azure SAS (which covers the whole blob), stay
        // valid until they expire: the object moves out of their reach. S3's and GCS's part
        // URLs end with their upload.
        let outlived = session.parts.is_none() || parts_store.is_some_and(|store| store.urls_outlive_completion());
        let key = match outlived {
            true => self.take_upload(&session, &uploaded).await?,
            false => uploaded,
        };
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

    /// Moves the file of session `session`, at `uploaded`, to a fresh key; answers it.
    async fn take_upload(&self, session: &UploadSession, uploaded: &ObjectKey) -> Result<ObjectKey, ServiceError> {
        let key = new_object_key();
        match self.buckets.managed().rename(uploaded, &key).await {
            Ok(()) => Ok(key),
            Err(BlobError::NotFound(_)) => Err(ServiceError::Conflict(format!(
                "nothing was uploaded to session {} yet: send the file to its url first, then complete it",
                session.id
            ))),
            Err(e) => Err(e).context(format!("cannot take the upload of session {}", session.id)),
        }
    }

    /// Asks the store to assemble the parts of session `session` (its multipart upload
    /// `parts`) from what the client `sent`.
    async fn assemble(
        &self,
        session: &UploadSession,
        parts: &SessionParts,
        store: &StoreParts,
        sent: Vec<CompletedPart>,
    ) -> Result<(), ServiceError> {
        let count = part_count(session.size as u64, parts.part_bytes as u64);
        let etags = part_etags(sent, count, store.needs_etags())?;
        let key = stored_key(&session.object_key)?;
        match store.complete(&key, &parts.upload_id, etags).await {
            Ok(()) => Ok(()),
            Err(BlobError::Refused(said)) => {
                // A completion sent again after the store assembled the parts finds the upload
                // gone and the object there.
                if self.buckets.managed().read(&key, Some(0..1)).await.is_ok() {
                    return Ok(());
                }
                Err(ServiceError::Invalid(format!(
                    "the store could not assemble the parts of session {}: {said}. PUT each part (again) to its url, then complete with the ETag each PUT answered",
                    session.id
                )))
            }
            Err(e) => Err(e).context(format!("cannot complete the upload of session {}", session.id)),
        }
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
        self.abandon(&session).await;
        Ok(())
    }

    /// Removes the sessions that expired, with what was uploaded to them; answers how many.
    pub async fn sweep_expired_uploads(&self) -> Result<u64, ServiceError> {
        let mut removed = 0;
        loop {
            let mut tx = self.store.write().await?;
            let expired = rows::expired(&mut tx, now(), SWEEP_BATCH).await?;
            for session in &expired {
                rows::remove(&mut tx, session.id).await?;
            }
            tx.commit().await?;
            for session in &expired {
                self.abandon(session).await;
            }
            removed += expired.len() as u64;
            if (expired.len() as i64) < SWEEP_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Records `session`, checking again that the caller may add to its folder.
    async fn record_session(&self, caller: &Caller, session: &UploadSession) -> Result<(), ServiceError> {
        let mut tx = self.store.write().await?;
        changeable_folder(&mut tx, caller, session.folder_id, "uploading").await?;
        rows::insert(&mut tx, session).await?;
        Ok(tx.commit().await?)
    }

    /// Removes what session `session` (no longer recorded) left in the bucket: its object, and
    /// its unfinished multipart upload.
    async fn abandon(&self, session: &UploadSession) {
        let bucket = self.buckets.managed();
        let Ok(key) = ObjectKey::parse(&session.object_key) else {
            return;
        };
        if let (Some(store), Some(parts)) = (bucket.parts(), &session.parts)
            && let Err(error) = store.abort(&key, &parts.upload_id).await
        {
            tracing::warn!(%error, session = %session.id, "cannot abort a direct upload's multipart upload; the bucket's lifecycle rule removes its parts");
        }
        remove_object(bucket.as_ref(), &key).await;
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

/// The most parts a multipart upload may have (S3's and GCS's limit).
const MAX_PARTS: u64 = 10_000;

/// The bytes of each part of a `size`-byte direct upload into a cloud bucket: `configured`,
/// or more where that would make over [`MAX_PARTS`] parts (rounded up to a MiB); `None` when
/// the file fits in one part and goes in one PUT.
fn part_size(size: u64, configured: u64) -> Result<Option<u64>, ServiceError> {
    if size <= configured {
        return Ok(None);
    }
    let least = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    let part = configured.max(least);
    if part > MAX_PART_BYTES {
        return Err(ServiceError::Invalid(format!(
            "size: {size} bytes would need parts over {MAX_PART_BYTES} bytes, the most a store takes"
        )));
    }
    Ok(Some(part))
}

/// The ETags of parts 1 to `count` from what the client `sent`: every part once (in any
/// order), or nothing at all where the store does not need them.
fn part_etags(mut sent: Vec<CompletedPart>, count: u32, needed: bool) -> Result<Vec<String>, ServiceError> {
    if !needed && sent.is_empty() {
        return Ok(vec![String::new(); count as usize]);
    }
    sent.sort_by_key(|part| part.number);
    if sent.len() != count as usize || sent.iter().zip(1u32..).any(|(part, number)| part.number != number) {
        return Err(ServiceError::Invalid(format!(
            "parts: name each of the {count} parts once, numbered 1 to {count}, with the ETag its PUT answered"
        )));
    }
    Ok(sent.into_iter().map(|part| part.etag).collect())
}

/// How many parts of `part_bytes` a `size`-byte file has.
fn part_count(size: u64, part_bytes: u64) -> u32 {
    u32::try_from(size.div_ceil(part_bytes)).unwrap_or(u32::MAX)
}

/// The parts of a `size`-byte file in `part_bytes` pieces, with their URLs in order.
fn part_list(size: u64, part_bytes: u64, urls: Vec<url::Url>) -> Vec<PartUrl> {
    urls.into_iter()
        .zip(1u32..)
        .map(|(url, number)| {
            let offset = u64::from(number - 1) * part_bytes;
            PartUrl {
                number,
                offset,
                size: part_bytes.min(size - offset),
                url: url.to_string(),
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_file_goes_in_parts_of_the_configured_size_until_it_would_need_over_ten_thousand() {
        assert_eq!(part_size(64 * MIB, 64 * MIB).expect("fits"), None, "one PUT");
        assert_eq!(part_size(64 * MIB + 1, 64 * MIB).expect("fits"), Some(64 * MIB));
        let tib = 1 << 40;
        let part = part_size(tib, 64 * MIB).expect("fits").expect("parts");
        assert_eq!(part % MIB, 0, "whole MiB");
        assert!(tib.div_ceil(part) <= MAX_PARTS && tib.div_ceil(part - MIB) > MAX_PARTS);
        assert!(part_size(60 * tib, 64 * MIB).is_err(), "past 10,000 parts of 5 GiB");
    }

    #[test]
    fn parts_cover_the_file_once_in_order() {
        let urls = (0..3)
            .map(|n| url::Url::parse(&format!("https://s/{n}")).expect("url"))
            .collect();
        let size = 12 * MIB + 7;
        assert_eq!(part_count(size, 5 * MIB), 3);
        let parts = part_list(size, 5 * MIB, urls);
        let layout: Vec<(u32, u64, u64)> = parts.iter().map(|p| (p.number, p.offset, p.size)).collect();
        assert_eq!(
            layout,
            [(1, 0, 5 * MIB), (2, 5 * MIB, 5 * MIB), (3, 10 * MIB, 2 * MIB + 7)]
        );
        assert_eq!(parts[2].url, "https://s/2");
    }

    #[test]
    fn completing_names_every_part_once() {
        let part = |number, etag: &str| CompletedPart {
            number,
            etag: etag.into(),
        };
        let sent = vec![part(2, "b"), part(1, "a")];
        assert_eq!(part_etags(sent, 2, true).expect("both"), ["a", "b"]);
        assert!(part_etags(vec![part(1, "a")], 2, true).is_err(), "one missing");
        assert!(
            part_etags(vec![part(1, "a"), part(1, "a")], 2, true).is_err(),
            "one twice"
        );
        assert!(part_etags(Vec::new(), 2, true).is_err());
        assert_eq!(part_etags(Vec::new(), 2, false).expect("Azure").len(), 2);
    }
}
