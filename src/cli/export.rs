//! `stowage item export`: every item of a folder (or its subtree) as NDJSON or CSV, streamed to
//! standard output or into a file that appears only once the export is complete.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use reqwest::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::client::{Client, ClientError};
use super::folder::folder_id;

/// What `stowage item export` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Folder path or id.
    pub folder: String,
    /// Items of the whole subtree (the folders below you may read).
    #[arg(short, long)]
    pub recursive: bool,
    /// ndjson (default: one JSON object per line, as `stowage item show --json` prints, plus
    /// `path`) or csv.
    #[arg(long, default_value = "ndjson")]
    pub format: String,
    /// Only these types, comma-separated (e.g. IMAGE,VIDEO).
    #[arg(long = "type")]
    pub item_types: Option<String>,
    /// Only titles containing this (case-insensitive).
    #[arg(long)]
    pub search: Option<String>,
    /// Write into this file (made complete or not at all) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the export; answers the bytes written.
pub async fn run(client: &Client, args: ExportArgs) -> Result<u64, ClientError> {
    let id = folder_id(client, &args.folder).await?;
    let mut query = vec![("recursive", args.recursive.to_string()), ("format", args.format)];
    for (name, value) in [("item_types", args.item_types), ("search", args.search)] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    let req = client
        .request(Method::GET, &format!("/v1/folders/{id}/items/export"))
        .query(&query);
    let resp = client.send(req).await?;
    match args.out {
        None => copy(resp, &mut tokio::io::stdout(), Path::new("standard output")).await,
        Some(dest) => {
            let partial = dest.with_file_name(format!(
                ".{}.partial",
                dest.file_name().and_then(|n| n.to_str()).unwrap_or("export")
            ));
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| cannot_write(&partial, e))?;
            match copy(resp, &mut file, &partial).await {
                Ok(written) => {
                    tokio::fs::rename(&partial, &dest)
                        .await
                        .map_err(|e| cannot_write(&dest, e))?;
                    Ok(written)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    Err(e)
                }
            }
        }
    }
}

/// Copies the answer's body into `out` (named `name` in errors); answers the bytes.
async fn copy(resp: reqwest::Response, out: &mut (impl AsyncWrite + Unpin), name: &Path) -> Result<u64, ClientError> {
    let mut body = resp.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|source| ClientError::Http {
        context: "the export broke off part way; it is incomplete".into(),
        source,
    })? {
        out.write_all(&chunk).await.map_err(|e| cannot_write(name, e))?;
        written += chunk.len() as u64;
    }
    out.flush().await.map_err(|e| cannot_write(name, e))?;
    Ok(written)
}

fn cannot_write(path: &Path, err: std::io::Error) -> ClientError {
    ClientError::Usage(format!("cannot write {}: {err}", path.display()))
}
