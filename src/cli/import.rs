//! `stowage import SPEC --folder PATH`: import the objects a spec file lists into a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::job::follow;

/// What to import, and where.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The spec: a local JSON file, or the URL of one inside a configured bucket
    /// (`s3://…`, `gs://…`, `az://…`, `file://…`).
    pub spec: String,
    /// The folder to import into: path or id.
    #[arg(long)]
    pub folder: String,
    /// A failed unit does not fail the import; the job ends DONE and lists the failures.
    #[arg(long)]
    pub ignore_errors: bool,
    /// Wait for the import to finish (progress bar on a terminal), then print its summary.
    #[arg(long)]
    pub wait: bool,
}

/// Submits the import, and with `--wait` follows it; exits like `job wait`.
pub async fn run(client: &Client, args: ImportArgs, raw_json: bool) -> Result<ExitCode, ClientError> {
    let id = folder_id(client, &args.folder).await?;
    let mut query = vec![("ignore_errors", args.ignore_errors.to_string())];
    let is_url = ["s3://", "gs://", "az://", "file://", "https://", "http://"]
        .iter()
        .any(|scheme| args.spec.starts_with(scheme));
    let mut req = client.request(Method::POST, &format!("/v1/folders/{id}/imports"));
    if is_url {
        query.push(("spec_object_url", args.spec.clone()));
    } else {
        let path = PathBuf::from(&args.spec);
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| ClientError::Usage(format!("cannot read the spec {}: {e}", path.display())))?;
        req = req.header("content-type", "application/json").body(body);
    }
    let job: Value = Client::json(client.send(req.query(&query)).await?).await?;
    follow(client, &job, args.wait, raw_json).await
}
