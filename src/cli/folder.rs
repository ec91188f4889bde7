//! `stowage folder create|list|show|move|rm`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};

/// Folder verbs. A folder is named by its path (`/a/b`) or its id.
#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Create a folder.
    Create {
        /// Absolute path, e.g. /datasets/cats.
        path: String,
        /// Create missing parents (like mkdir -p).
        #[arg(short, long)]
        parents: bool,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Make it readable by every user (visibility `public`).
        #[arg(long)]
        public: bool,
        /// Make it readable by every signed-in user (visibility `internal`).
        #[arg(long, conflicts_with = "public")]
        internal: bool,
        /// Lifetime of its items, in seconds.
        #[arg(long)]
        ttl_seconds: Option<i64>,
    },
    /// List the folders inside a folder (the root by default), every page.
    List {
        /// Folder path or id; the root when absent.
        folder: Option<String>,
        /// All descendants, not only the children.
        #[arg(short, long)]
        recursive: bool,
        /// Only names containing this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one folder.
    Show {
        /// Folder path or id.
        folder: String,
    },
    /// Move a folder (with its subtree) under another folder.
    Move {
        /// Folder path or id.
        folder: String,
        /// New parent path or id; `/` for the root.
        #[arg(long)]
        to: String,
    },
    /// Delete a folder.
    Rm {
        /// Folder path or id.
        folder: String,
        /// Delete a non-empty folder with everything inside.
        #[arg(short, long)]
        recursive: bool,
        /// Delete for good at once instead of moving into the trash.
        #[arg(long)]
        permanent: bool,
    },
}

/// Resolves a path or id to the folder's JSON.
async fn lookup(client: &Client, folder: &str) -> Result<Value, ClientError> {
    if folder.starts_with('/') {
        client
            .call(Method::GET, "/v1/folders", &[("path", folder.to_owned())], None::<&()>)
            .await
    } else {
        client
            .call(Method::GET, &format!("/v1/folders/{folder}"), &[], None::<&()>)
            .await
    }
}

/// The id of a folder named by path (starting with `/`) or id.
pub async fn folder_id(client: &Client, folder: &str) -> Result<String, ClientError> {
    let found = lookup(client, folder).await?;
    found["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Unexpected("the server answered without an id".into()))
}

/// One line describing a folder.
fn line(folder: &Value) -> String {
    format!(
        "{}\t{}\titems={}\tsubfolders={}",
        folder["path"].as_str().unwrap_or("?"),
        folder["id"].as_str().unwrap_or("?"),
        folder["item_count"],
        folder["subfolder_count"]
    )
}

/// Runs a folder verb and prints its result.
pub async fn run(client: &Client, command: FolderCommand, raw_json: bool) -> Result<(), ClientError> {
    let print = |value: &Value| super::show(value, raw_json, line);
    match command {
        FolderCommand::Create {
            path,
            parents,
            description,
            public,
            internal,
            ttl_seconds,
        } => {
            let visibility = match (public, internal) {
                (true, _) => "public",
                (_, true) => "internal",
                _ => "private",
            };
            let body = json!({
                "path": path, "create_parents": parents, "description": description,
                "visibility": visibility, "ttl_seconds": ttl_seconds,
            });
            let created: Value = client.call(Method::POST, "/v1/folders", &[], Some(&body)).await?;
            print(&created);
        }
        FolderCommand::List {
            folder,
            recursive,
            search,
        } => {
            let mut query = vec![("recursive", recursive.to_string()), ("page_size", "1000".to_owned())];
            if let Some(folder) = folder {
                query.push(("parent_id", folder_id(client, &folder).await?));
            }
            if let Some(search) = search {
                query.push(("search", search));
            }
            // By path, so a subtree reads like `find`: every folder right after its parent.
            let mut found = Vec::new();
            client
                .each_item("/v1/folders", query, |f| found.push(f.clone()))
                .await?;
            found.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            found.iter().for_each(print);
        }
        FolderCommand::Show { folder } => print(&lookup(client, &folder).await?),
        FolderCommand::Move { folder, to } => {
            let id = folder_id(client, &folder).await?;
            let parent = if to == "/" {
                Value::Null
            } else {
                Value::from(folder_id(client, &to).await?)
            };
            let moved: Value = client
                .call(
                    Method::POST,
                    &format!("/v1/folders/{id}/move"),
                    &[],
                    Some(&json!({ "parent_id": parent })),
                )
                .await?;
            print(&moved);
        }
        FolderCommand::Rm {
            folder,
            recursive,
            permanent,
        } => {
            let found = lookup(client, &folder).await?;
            let id = found["id"].as_str().unwrap_or_default();
            let deleted: Value = client
                .call(
                    Method::DELETE,
                    &format!("/v1/folders/{id}"),
                    &[
                        ("recursive", recursive.to_string()),
                        ("permanent", permanent.to_string()),
                    ],
                    None::<&()>,
                )
                .await?;
            super::show(&deleted, raw_json, |deleted| {
                let how = if deleted["trashed"] == true {
                    "trashed"
                } else {
                    "deleted"
                };
                format!(
                    "{}\t{id}\t{how}\tfolders={}\titems={}",
                    found["path"].as_str().unwrap_or("?"),
                    deleted["folders_deleted"],
                    deleted["items_deleted"]
                )
            });
        }
    }
    Ok(())
}
