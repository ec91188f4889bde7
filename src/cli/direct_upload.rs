//! `stowage item upload` of a large file through a direct upload session: the file goes with
//! one PUT to the URL the server answers (into the bucket itself on a cloud managed bucket),
//! then the session is completed into an item.

use std::path::Path;

use futures::TryStreamExt;
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::io::ReaderStream;

use super::client::{Client, ClientError};

/// Files at least this large go through a direct upload when the server offers one.
pub const DIRECT_UPLOAD_BYTES: u64 = 64 << 20;

/// Uploads the `size`-byte file at `path` as `name` into folder `folder_id` through a direct
/// upload session, calling `sent` with each chunk's length. `Ok(None)` when the server offers
/// no session for it (a server without direct uploads, or a file larger than one PUT into its
/// bucket takes): upload it streamed instead.
pub async fn upload_direct(
    client: &Client,
    folder_id: &str,
    path: &Path,
    name: &str,
    size: u64,
    strategy: &str,
    sent: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Option<Value>, ClientError> {
    let start = client
        .request(Method::POST, &format!("/v1/folders/{folder_id}/uploads"))
        .json(&json!({"title": name, "size": size, "conflict_strategy": strategy}));
    let session: Value = match client.send(start).await {
        Ok(resp) => Client::json(resp).await?,
        Err(ClientError::Server { status, message, .. })
            if (status == StatusCode::NOT_FOUND && message.starts_with("no route"))
                || (status == StatusCode::BAD_REQUEST && message.contains("in one PUT")) =>
        {
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    if let Err(e) = put_file(client, &session, path, size, sent).await {
        // Best effort: the session would expire anyway, with what it holds.
        let _ = client
            .send(client.request(Method::DELETE, &format!("/v1/uploads/{id}")))
            .await;
        return Err(e);
    }
    let done = client.request(Method::POST, &format!("/v1/uploads/{id}/complete"));
    Ok(Some(Client::json(client.send(done).await?).await?))
}

/// PUTs the file to the session's URL with the session's headers (and no API key).
async fn put_file(
    client: &Client,
    session: &Value,
    path: &Path,
    size: u64,
    sent: impl Fn(u64) + Send + Sync + 'static,
) -> Result<(), ClientError> {
    let url = session["url"]
        .as_str()
        .ok_or_else(|| ClientError::Unexpected("the upload session has no url".into()))?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ClientError::Usage(format!("cannot open {}: {e}", path.display())))?;
    let body = ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| sent(chunk.len() as u64));
    let mut req = client
        .unauthenticated(Method::PUT, url)
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in session["headers"].as_object().into_iter().flatten() {
        req = req.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    let resp = req.send().await.map_err(|source| ClientError::Http {
        context: format!("cannot send {} to its upload URL", path.display()),
        source,
    })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(ClientError::Unexpected(format!(
            "the upload URL refused {}: {status}: {}",
            path.display(),
            text.chars().take(500).collect::<String>()
        )));
    }
    Ok(())
}
