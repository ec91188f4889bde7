//! The cloud side of a configured bucket (S3, GCS, Azure through object_store): building the
//! client from the bucket's URL and settings, the URL forms that name its objects, and reading
//! one object (to hash it, or to stream it).

use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::listing::{Hashed, hash_stream};
use super::parts::StoreParts;
use super::{Answering, BlobError};
use crate::config::BucketSettings;
use crate::domain::fingerprint::Fingerprint;

/// Reads object `key` of a remote store once: blake3 of the whole content, the bytes hashed, and
/// what `inspect` makes of its first `head_bytes` and its size.
pub(super) async fn hash_object<T>(
    store: &dyn ObjectStore,
    key: &str,
    head_bytes: usize,
    inspect: impl FnOnce(&[u8], u64) -> T,
) -> Result<Hashed<T>, BlobError> {
    let got = store.get(&Path::from(key)).await.map_err(|e| remote_error(key, e))?;
    let (hashed, head) = hash_stream(got.into_stream(), head_bytes)
        .await
        .map_err(|e| remote_error(key, e))?;
    Ok(Hashed {
        inspected: inspect(&head, hashed.size),
        checksum: hashed.checksum,
        size: hashed.size,
    })
}

pub(super) fn remote_error(key: &str, err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
        other => BlobError::Io {
            context: format!("cannot read `{key}`"),
            source: std::io::Error::other(other),
        },
    }
}

/// Starts a download of object `key` of a remote store, whole or the bytes `range` of it.
pub(super) async fn get_remote(
    store: &dyn ObjectStore,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<object_store::GetResult, BlobError> {
    let options = GetOptions {
        range: range.map(GetRange::Bounded),
        ..GetOptions::default()
    };
    store
        .get_opts(&Path::from(key), options)
        .await
        .map_err(|e| remote_error(key, e))
}

/// The fingerprint of a cloud object: size, modification time, ETag and version.
pub(super) fn meta_fingerprint(meta: &object_store::ObjectMeta) -> Fingerprint {
    Fingerprint {
        size: meta.size,
        modified_micros: Some(meta.last_modified.timestamp_micros()),
        etag: meta.e_tag.clone(),
        version: meta.version.clone(),
    }
}

/// A remote store, what signs URLs for it (with the key prefix its URL names), and its
/// multipart uploads for clients.
type RemoteStore = (Arc<dyn ObjectStore>, Option<(Arc<dyn Signer>, String)>, StoreParts);

/// A configured cloud bucket, opened.
pub(super) struct OpenedRemote {
    /// Its objects, below the prefix its URL names.
    pub store: Arc<dyn ObjectStore>,
    /// What signs URLs for it, with that prefix (the signer sees the whole bucket).
    pub signer: Option<(Arc<dyn Signer>, String)>,
    /// Multipart uploads that clients send straight to it.
    pub parts: StoreParts,
    /// The URL prefixes that name its objects (see [`addresses`]).
    pub addresses: Vec<url::Url>,
}

/// Opens bucket `name` at its `s3://`, `gs://` or `az://` URL, with its options and the
/// credentials read from the environment variables its `credentials_env` names (a missing
/// variable is an error that names it).
pub(super) fn open_remote(name: &str, settings: &BucketSettings) -> Result<OpenedRemote, BlobError> {
    let unsupported = |m: String| BlobError::Unsupported(format!("buckets.{name}: {m}"));
    let url = url::Url::parse(&settings.url).map_err(|e| unsupported(format!("bad url: {e}")))?;
    let mut options: Vec<(String, String)> = settings.options.clone().into_iter().collect();
    for (option, variable) in &settings.credentials_env {
        let value = std::env::var(variable).map_err(|_| {
            unsupported(format!(
                "credentials_env.{option}: environment variable {variable} is not set"
            ))
        })?;
        options.push((option.clone(), value));
    }
    let (store, signer, parts) = remote_store(&url, settings, &options).map_err(unsupported)?;
    Ok(OpenedRemote {
        store,
        signer,
        parts,
        addresses: addresses(&url, settings, &options),
    })
}

/// A URL that lets its holder do `method` on object `key` (below the bucket prefix `root`)
/// without credentials, for `lifetime`, asking the store to answer with the headers
/// `answering` names where it can (S3 and GCS; Azure signs no such parameters, and answers the
/// object's own headers).
pub(super) async fn signed_url(
    signer: &dyn Signer,
    root: &str,
    method: Method,
    key: &str,
    lifetime: Duration,
    answering: &Answering,
) -> Result<url::Url, BlobError> {
    let path = Path::from(if root.is_empty() {
        key.to_owned()
    } else {
        format!("{root}/{key}")
    });
    let failed = |e: object_store::Error| BlobError::Io {
        context: format!("cannot sign a URL for `{key}`"),
        source: std::io::Error::other(e),
    };
    let mut query = Vec::new();
    query.extend(answering.content_type.clone().map(|v| ("response-content-type", v)));
    query.extend(
        answering
            .content_disposition
            .clone()
            .map(|v| ("response-content-disposition", v)),
    );
    let options = SignedUrlOptions::new().with_query(query);
    match signer.signed_url_opts(method.clone(), &path, lifetime, &options).await {
        Err(object_store::Error::NotSupported { .. }) if !options.is_empty() => {
            signer.signed_url(method, &path, lifetime).await.map_err(failed)
        }
        signed => signed.map_err(failed),
    }
}

/// Builds an object_store client for an `s3://`, `gs://` or `az://` URL.
fn remote_store(
    url: &url::Url,
    settings: &BucketSettings,
    options: &[(String, String)],
) -> Result<RemoteStore, String> {
    let bucket = url.host_str().unwrap_or_default();
    let root = url.path().trim_matches('/').to_owned();
    let (store, signer, multipart): (Arc<dyn ObjectStore>, Arc<dyn Signer>, Arc<dyn MultipartStore>) =
        match url.scheme() {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                b = b.with_region(settings.region.clone().unwrap_or_else(|| "us-east-1".into()));
                if let Some(endpoint) = &settings.endpoint {
                    b = b.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
                }
                b = b.with_allow_http(settings.allow_http);
                for (k, v) in options {
                    b = b.with_config(
                        object_store::aws::AmazonS3ConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                        v,
                    );
                }
                let store = Arc::new(b.build().map_err(|e| e.to_string())?);
                (store.clone(), store.clone(), store)
            }
            "gs" => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
                for (k, v) in options {
                    b = b.with_config(
                        object_store::gcp::GoogleConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                        v,
                    );
                }
                let store = Arc::new(b.build().map_err(|e| e.to_string())?);
                (store.clone(), store.clone(), store)
            }
            "az" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(bucket);
                if let Some(endpoint) = &settings.endpoint {
                    b = b.with_endpoint(endpoint.clone());
                }
                b = b.with_allow_http(settings.allow_http);
                for (k, v) in options {
                    b = b.with_config(
                        object_store::azure::AzureConfigKey::from_str(k).map_err(|e| format!("option `{k}`: {e}"))?,
                        v,
                    );
                }
                let store = Arc::new(b.build().map_err(|e| e.to_string())?);
                (store.clone(), store.clone(), store)
            }
            other => return Err(format!("scheme `{other}` is not supported")),
        };
    let store = if root.is_empty() {
        store
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, root.as_str()))
    };
    let parts = StoreParts::new(multipart, signer.clone(), root.clone(), url.scheme() == "az");
    Ok((store, Some((signer, root)), parts))
}

/// The URL prefixes that name objects of the bucket configured at `url`: the URL itself and,
/// for cloud stores, the https forms (path-style at a custom endpoint; AWS virtual-hosted;
/// `storage.googleapis.com`; `ACCOUNT.blob.core.windows.net`). Each ends in `/`.
pub(super) fn addresses(url: &url::Url, settings: &BucketSettings, options: &[(String, String)]) -> Vec<url::Url> {
    let bucket = url.host_str().unwrap_or_default();
    let root = url.path().trim_matches('/');
    let below = |base: String| -> Option<url::Url> {
        let mut text = base.trim_end_matches('/').to_owned();
        for part in [bucket, root] {
            if !part.is_empty() {
                text.push('/');
                text.push_str(part);
            }
        }
        text.push('/');
        url::Url::parse(&text).ok()
    };
    let mut out = Vec::new();
    if url.scheme() == "file" {
        out.extend(url::Url::parse(&format!("file://{}/", url.path().trim_end_matches('/'))).ok());
        return out;
    }
    let own = format!("{}://{bucket}/{root}", url.scheme());
    out.extend(url::Url::parse(&format!("{}/", own.trim_end_matches('/'))).ok());
    if let Some(endpoint) = &settings.endpoint {
        out.extend(below(endpoint.clone()));
    }
    let option = |names: &[&str]| {
        options
            .iter()
            .find(|(k, _)| names.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(_, v)| v.clone())
    };
    match url.scheme() {
        "s3" => {
            let region = settings.region.clone().unwrap_or_else(|| "us-east-1".into());
            for host in [
                format!("{bucket}.s3.amazonaws.com"),
                format!("{bucket}.s3.{region}.amazonaws.com"),
            ] {
                out.extend(
                    url::Url::parse(&format!(
                        "https://{host}/{root}{}",
                        if root.is_empty() { "" } else { "/" }
                    ))
                    .ok(),
                );
            }
        }
        "gs" => out.extend(below("https://storage.googleapis.com".into())),
        "az" => {
            let account = option(&["account_name", "azure_storage_account_name"])
                .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok());
            if let Some(account) = account {
                out.extend(below(format!("https://{account}.blob.core.windows.net")));
            }
        }
        _ => {}
    }
    out
}
