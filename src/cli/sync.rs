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

/// One line summing up a sync job.
fn summary(job: &Value) -> String {
    let r = &job["result"];
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    format!(
        "{} {}: listed={} created={} updated={} unchanged={} tombstoned={} restored={} errors={} bytes_hashed={}{}{}",
        job["id"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        n("listed"),
        n("created"),
        n("updated"),
        n("unchanged"),
        n("tombstoned"),
        n("restored"),
        n("errors"),
        n("bytes_hashed"),
        if r["dry_run"] == true { " (dry run)" } else { "" },
        job["message"].as_str().map(|m| format!("\n{m}")).unwrap_or_default(),
    )
}

/// Submits the sync, and with `--wait` follows it; exits like `job wait`.
pub async fn run(client: &Client, args: SyncArgs) -> Result<ExitCode, ClientError> {
    let id = folder_id(client, &args.folder).await?;
    let mut body = json!({ "dry_run": args.dry_run, "force_rehash": args.force_rehash });
    if let Some(ratio) = args.max_tombstone_ratio {
        body["max_tombstone_ratio"] = json!(ratio);
    }
    let job: Value = client
        .call(Method::POST, &format!("/v1/folders/{id}/sync"), &[], Some(&body))
        .await?;
    follow(client, &job, args.wait, summary).await
}
