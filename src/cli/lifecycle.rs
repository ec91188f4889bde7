//! `stowage reencode ITEM_ID… [--force] [--title T] [--wait]`, `stowage trash list|restore|purge`
//! and `stowage expiry run [--wait]`.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::item::folder_path;
use super::job::follow;

/// Trash verbs.
#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// List what you deleted (admins: everything), newest first, every page.
    List,
    /// Bring trash entries (folders or items, by id) back where they were, or into --to.
    Restore {
        /// Ids of trash entries, as `trash list` prints them.
        #[arg(required = true)]
        ids: Vec<String>,
        /// The folder (path or id) to restore into instead.
        #[arg(long)]
        to: Option<String>,
    },
    /// Delete trash entries for good now, with their uploaded content.
    Purge {
        /// Ids of trash entries, as `trash list` prints them.
        ids: Vec<String>,
        /// Every entry of your trash.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

/// Expiry verbs.
#[derive(Debug, Subcommand)]
pub enum ExpiryCommand {
    /// Run the TTL sweep now (admins).
    Run {
        /// Wait for it to finish; exits 0 on DONE, 3 on ERROR, 4 on CANCELLED.
        #[arg(long)]
        wait: bool,
    },
}

/// One line describing a trash entry: path, id, kind, when it is purged.
fn line(entry: &Value) -> String {
    format!(
        "{}\t{}\t{}\tpurge_at={}",
        entry["path"].as_str().unwrap_or("?"),
        entry["id"].as_str().unwrap_or("?"),
        entry["kind"].as_str().unwrap_or("?"),
        entry["purge_at"].as_str().unwrap_or("?")
    )
}

/// `stowage reencode`: submits a REENCODE job for the videos `ids`.
pub async fn reencode(
    client: &Client,
    ids: Vec<String>,
    force: bool,
    title: Option<String>,
    wait: bool,
    raw_json: bool,
) -> Result<ExitCode, ClientError> {
    let body = json!({ "item_ids": ids, "force_full_reencoding": force, "process_title": title });
    let job: Value = client.call(Method::POST, "/v1/reencode", &[], Some(&body)).await?;
    follow(client, &job, wait, raw_json).await
}

/// `stowage expiry …`.
pub async fn expiry(client: &Client, command: ExpiryCommand, raw_json: bool) -> Result<ExitCode, ClientError> {
    let ExpiryCommand::Run { wait } = command;
    let job: Value = client.call(Method::POST, "/v1/expiry", &[], Some(&json!({}))).await?;
    follow(client, &job, wait, raw_json).await
}

/// Every entry of the caller's trash, by id.
async fn entries(client: &Client) -> Result<HashMap<String, Value>, ClientError> {
    let mut found = HashMap::new();
    client
        .each_item("/v1/trash", vec![("page_size", "1000".to_owned())], |entry| {
            found.insert(entry["id"].as_str().unwrap_or_default().to_owned(), entry.clone());
        })
        .await?;
    Ok(found)
}

/// The API path of a trash entry: `/v1/folders/ID` or `/v1/items/ID`.
fn entry_path(entry: &Value) -> String {
    let resource = if entry["kind"] == "FOLDER" { "folders" } else { "items" };
    format!("/v1/{resource}/{}", entry["id"].as_str().unwrap_or_default())
}

/// `stowage trash …`.
pub async fn trash(client: &Client, command: TrashCommand, raw_json: bool) -> Result<(), ClientError> {
    let print = |value: &Value| super::show(value, raw_json, line);
    match command {
        TrashCommand::List => {
            client
                .each_item("/v1/trash", vec![("page_size", "1000".to_owned())], print)
                .await
        }
        TrashCommand::Restore { ids, to } => {
            let target = match to {
                Some(folder) => Some(folder_id(client, &folder).await?),
                None => None,
            };
            let all = entries(client).await?;
            for id in ids {
                let entry = all.get(&id).ok_or_else(|| {
                    ClientError::Usage(format!("{id} is not in your trash; see `stowage trash list`"))
                })?;
                let body = json!({ "target_parent_id": target });
                let restored: Value = client
                    .call(
                        Method::POST,
                        &format!("{}/restore", entry_path(entry)),
                        &[],
                        Some(&body),
                    )
                    .await?;
                // A folder answers with its path; an item with its folder and title.
                let path = match (restored["path"].as_str(), restored["folder_id"].as_str()) {
                    (Some(path), _) => path.to_owned(),
                    (None, Some(folder)) => format!(
                        "{}/{}",
                        folder_path(client, folder).await?,
                        restored["title"].as_str().unwrap_or("?")
                    ),
                    (None, None) => entry["path"].as_str().unwrap_or("?").to_owned(),
                };
                super::show(&restored, raw_json, |_| format!("{path}\t{id}\trestored"));
            }
            Ok(())
        }
        TrashCommand::Purge { ids, all } => {
            let entries = entries(client).await?;
            let chosen: Vec<&Value> = if all {
                entries.values().collect()
            } else {
                ids.iter()
                    .map(|id| {
                        entries.get(id).ok_or_else(|| {
                            ClientError::Usage(format!("{id} is not in your trash; see `stowage trash list`"))
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            for entry in chosen {
                let query = [("permanent", "true".to_owned()), ("recursive", "true".to_owned())];
                let query = if entry["kind"] == "FOLDER" {
                    &query[..]
                } else {
                    &query[..1]
                };
                client
                    .call::<Value>(Method::DELETE, &entry_path(entry), query, None::<&()>)
                    .await?;
                super::show(entry, raw_json, |entry| format!("{}\tpurged", line(entry)));
            }
            Ok(())
        }
    }
}
