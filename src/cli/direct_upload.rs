//! `stowage item upload` of a large file through a direct upload session: the file goes with
//! one PUT to the URL the server answers (into the bucket itself on a cloud managed bucket), or,
//! when the server splits it into parts, each part to its own URL, a few at once; then the
//! session is completed into an item.

use std::path::Path;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, ETAG};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::client::{Client, ClientError};

/// Files at least this large go through a direct upload when the server offers one.
pub const DIRECT_UPLOAD_BYTES: u64 = 64 << 20;

/// Uploads the `size`-byte file at `path` as `name` into folder `folder_id` through a direct
/// upload session, calling `sent` with each chunk's length. `Ok(None)` when the server offers
/// no direct uploads: upload it streamed instead.
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
            if status == StatusCode::NOT_FOUND && message.starts_with("no route") =>
        {
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let sent: Progress = Arc::new(sent);
    let sending = match session["parts"].as_array() {
        Some(parts) => put_parts(client, &session, parts, path, sent).await,
        None => put_part(client, &session, part_of(&session, path, 0, size)?, sent)
            .await
            .map(|_| Vec::new()),
    };
    let completed = match sending {
        Ok(completed) => completed,
        Err(e) => {
            // Best effort: the session would expire anyway, with what it holds.
            let _ = client
                .send(client.request(Method::DELETE, &format!("/v1/uploads/{id}")))
                .await;
            return Err(e);
        }
    };
    let done = client
        .request(Method::POST, &format!("/v1/uploads/{id}/complete"))
        .json(&json!({ "parts": completed }));
    Ok(Some(Client::json(client.send(done).await?).await?))
}

/// Parts of one file sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What is told of every chunk sent.
type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A piece of the file and where it goes.
struct Part<'a> {
    url: &'a str,
    path: &'a Path,
    offset: u64,
    size: u64,
}

fn part_of<'a>(session: &'a Value, path: &'a Path, offset: u64, size: u64) -> Result<Part<'a>, ClientError> {
    let url = session["url"]
        .as_str()
        .ok_or_else(|| ClientError::Unexpected("the upload session has no url".into()))?;
    Ok(Part {
        url,
        path,
        offset,
        size,
    })
}

/// Sends every part the session lists, [`PARTS_IN_FLIGHT`] at once; answers each part's
/// number and ETag, for the completion.
async fn put_parts(
    client: &Client,
    session: &Value,
    parts: &[Value],
    path: &Path,
    sent: Progress,
) -> Result<Vec<Value>, ClientError> {
    let mut pieces = Vec::with_capacity(parts.len());
    for part in parts {
        let field = |name: &str| {
            part[name]
                .as_u64()
                .ok_or_else(|| ClientError::Unexpected(format!("an upload part has no {name}: {part}")))
        };
        let url = part["url"]
            .as_str()
            .ok_or_else(|| ClientError::Unexpected(format!("an upload part has no url: {part}")))?;
        let piece = Part {
            url,
            path,
            offset: field("offset")?,
            size: field("size")?,
        };
        pieces.push((field("number")?, piece));
    }
    futures::stream::iter(pieces)
        .map(|(number, piece)| {
            let sent = sent.clone();
            async move {
                let etag = put_part(client, session, piece, sent).await?;
                Ok(json!({"number": number, "etag": etag}))
            }
        })
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect()
        .await
}

/// PUTs a piece of the file to its URL with the session's headers (and no API key); answers the
/// ETag the store answered.
async fn put_part(client: &Client, session: &Value, part: Part<'_>, sent: Progress) -> Result<String, ClientError> {
    let Part {
        url,
        path,
        offset,
        size,
    } = part;
    let cannot_read = |e: std::io::Error| ClientError::Usage(format!("cannot read {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(cannot_read)?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(cannot_read)?;
    let body =
        ReaderStream::with_capacity(file.take(size), 256 * 1024).inspect_ok(move |chunk| sent(chunk.len() as u64));
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
    let etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Ok(etag.to_owned())
}
