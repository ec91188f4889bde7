//! `stowage sync FOLDER`: sync a synced folder with its bucket.

use std::process::ExitCode;

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::job::follow;

/// What to sync and how.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The synced folder: path or id.
    pub folder: String,
    /// Wait for the sync to finish (progress bar on a terminal), then print its summary.
    #[arg(long)]
    pub wait: bool,
    /// Compute what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read and hash every object, not only those whose fingerprint changed.
    #[arg(long)]
    pub force_rehash: bool,
    /// Accept tombstoning more than this share (0-1) of the folder's live items.
    #[arg(long)]
    pub max_tombstone_ratio: Option<f64>,
}

/// Submits the sync, and with `--wait` follows it; exits like `job wait`.
pub async fn run(client: &Client, args: SyncArgs, raw_json: bool) -> Result<ExitCode, ClientError> {
    let id = folder_id(client, &args.folder).await?;
    let mut body = json!({ "dry_run": args.dry_run, "force_rehash": args.force_rehash });
    if let Some(ratio) = args.max_tombstone_ratio {
        body["max_tombstone_ratio"] = json!(ratio);
    }
    let job: Value = client
        .call(Method::POST, &format!("/v1/folders/{id}/sync"), &[], Some(&body))
        .await?;
    follow(client, &job, args.wait, raw_json).await
}
