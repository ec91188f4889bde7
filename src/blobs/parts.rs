//! Uploads in parts that a client sends straight to a cloud store through presigned URLs (the
//! large-file half of direct uploads). The daemon starts the store's multipart upload, signs
//! one URL per part and, once the client sent them all, asks the store to assemble them.
//!
//! S3 and GCS (its XML API) take `PUT KEY?partNumber=N&uploadId=ID` and answer each part's ETag,
//! which the client hands back at completion. Azure Blob Storage takes blocks
//! (`PUT KEY?comp=block&blockid=ID`) under the blob's SAS; here a part's block id follows from its
//! number, so completing an Azure upload needs no ETags.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};

use super::{BlobError, ObjectKey};

/// Multipart uploads into one cloud store, below the key prefix its URL names.
pub struct StoreParts {
    /// The store's multipart API (over the whole bucket).
    multipart: Arc<dyn MultipartStore>,
    /// What signs the part URLs (over the whole bucket).
    signer: Arc<dyn Signer>,
    /// The key prefix of the configured bucket URL, `""` for none.
    root: String,
    /// Whether the store is Azure Blob Storage (blocks instead of parts).
    azure: bool,
}

impl StoreParts {
    /// Multipart uploads through `multipart` and `signer` (over the whole bucket) into the keys
    /// below `root`; `azure` for Azure Blob Storage.
    pub(super) fn new(multipart: Arc<dyn MultipartStore>, signer: Arc<dyn Signer>, root: String, azure: bool) -> Self {
        Self {
            multipart,
            signer,
            root,
            azure,
        }
    }

    fn path(&self, key: &ObjectKey) -> Path {
        Path::from(match self.root.is_empty() {
            true => key.to_string(),
            false => format!("{}/{key}", self.root),
        })
    }

    /// Whether a part's URL still lets its holder write the object after the upload completed
    /// (an Azure SAS covers the whole blob; S3's and GCS's part URLs end with their upload).
    pub fn urls_outlive_completion(&self) -> bool {
        self.azure
    }

    /// Whether completing needs the ETag each part's PUT answered (Azure's blocks do not).
    pub fn needs_etags(&self) -> bool {
        !self.azure
    }

    /// Starts a multipart upload to `key`; answers the store's upload id (empty on Azure).
    pub async fn start(&self, key: &ObjectKey) -> Result<String, BlobError> {
        self.multipart
            .create_multipart(&self.path(key))
            .await
            .map_err(failed("start a multipart upload of", key))
    }

    /// URLs that take parts 1 to `count` of upload `upload_id`, each with one PUT and no
    /// credentials, for `lifetime`.
    pub async fn part_urls(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        count: u32,
        lifetime: Duration,
    ) -> Result<Vec<url::Url>, BlobError> {
        let path = self.path(key);
        if self.azure {
            // A blob's SAS covers its blocks (the block's parameters are not signed): one
            // signature serves every part.
            let signed = self
                .signer
                .signed_url(Method::PUT, &path, lifetime)
                .await
                .map_err(failed("sign a block URL for", key))?;
            return Ok((1..=count)
                .map(|number| {
                    let mut url = signed.clone();
                    let block = base64::engine::general_purpose::STANDARD.encode(block_id(number));
                    url.query_pairs_mut()
                        .append_pair("comp", "block")
                        .append_pair("blockid", &block);
                    url
                })
                .collect());
        }
        let mut urls = Vec::with_capacity(count as usize);
        for number in 1..=count {
            let options = SignedUrlOptions::new()
                .with_query([("partNumber", number.to_string()), ("uploadId", upload_id.to_owned())]);
            urls.push(
                self.signer
                    .signed_url_opts(Method::PUT, &path, lifetime, &options)
                    .await
                    .map_err(failed("sign a part URL for", key))?,
            );
        }
        Ok(urls)
    }

    /// Assembles parts 1 to `etags.len()` of upload `upload_id` into the object at `key`;
    /// `etags` are what the store answered each part's PUT with (Azure ignores them). A part the
    /// store does not hold, or a wrong ETag, is [`BlobError::Refused`].
    pub async fn complete(&self, key: &ObjectKey, upload_id: &str, etags: Vec<String>) -> Result<(), BlobError> {
        let parts = etags
            .into_iter()
            .enumerate()
            .map(|(index, etag)| PartId {
                content_id: match self.azure {
                    true => block_id(index as u32 + 1),
                    false => etag,
                },
            })
            .collect();
        self.multipart
            .complete_multipart(&self.path(key), &upload_id.to_owned(), parts)
            .await
            .map(|_| ())
            .map_err(|e| refused_or(e, failed("complete the multipart upload of", key)))
    }

    /// Abandons upload `upload_id`: the store drops the parts it holds (Azure's uncommitted
    /// blocks expire on their own within a week).
    pub async fn abort(&self, key: &ObjectKey, upload_id: &str) -> Result<(), BlobError> {
        self.multipart
            .abort_multipart(&self.path(key), &upload_id.to_owned())
            .await
            .map_err(failed("abort the multipart upload of", key))
    }
}

/// The Azure block id of part `number`: every block of a blob needs an id of the same length.
fn block_id(number: u32) -> String {
    format!("{number:032x}")
}

fn failed(doing: &str, key: &ObjectKey) -> impl FnOnce(object_store::Error) -> BlobError {
    let context = format!("cannot {doing} `{key}`");
    move |e| BlobError::Io {
        context,
        source: std::io::Error::other(e),
    }
}

/// [`BlobError::Refused`] when the store answered `e` with a 4xx status (the request's fault:
/// a missing part, a wrong ETag, an upload that no longer exists), else `otherwise(e)`.
/// object_store keeps the status in a private type; its message is public: "Server returned
/// non-2xx status code: 400 Bad Request: BODY" at the end of the error's chain.
fn refused_or(e: object_store::Error, otherwise: impl FnOnce(object_store::Error) -> BlobError) -> BlobError {
    const STATUS: &str = "non-2xx status code: ";
    if let object_store::Error::NotFound { path, .. } = &e {
        return BlobError::Refused(format!("no upload in progress at `{path}`"));
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(error) = cause {
        let message = error.to_string();
        if let Some(at) = message.find(STATUS)
            && message[at + STATUS.len()..].starts_with('4')
        {
            return BlobError::Refused(message[at + STATUS.len()..].to_owned());
        }
        cause = error.source();
    }
    otherwise(e)
}
