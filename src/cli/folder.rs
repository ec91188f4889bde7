//! `stowage folder create|list|show|move|rm|share|unshare|grants|star|shelf`.

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
    /// Give a user or a group a role on a folder and everything below it (its managers).
    Share {
        /// Folder path or id.
        folder: String,
        /// Who gets it.
        #[command(flatten)]
        grantee: Grantee,
        /// viewer (see, list, download), editor (also change), manager (also share, delete it).
        #[arg(long, value_parser = ["viewer", "editor", "manager"])]
        role: String,
    },
    /// Take back the role a user or group has on a folder (its managers).
    Unshare {
        /// Folder path or id.
        folder: String,
        /// Whose role.
        #[command(flatten)]
        grantee: Grantee,
    },
    /// Show who may do what with a folder: its owner and the grants on it and its ancestors.
    Grants {
        /// Folder path or id.
        folder: String,
    },
    /// Star a folder (yours to see in `folder starred`), or with --off take the star off.
    Star {
        /// Folder path or id.
        folder: String,
        /// Take the star off.
        #[arg(long)]
        off: bool,
    },
    /// List a shelf: `home` (your top-level folders), `shared` (granted to you), `starred`.
    Shelf {
        /// home, shared or starred.
        #[arg(value_parser = ["home", "shared", "starred"])]
        shelf: String,
    },
}

/// A user or a group (`--user NAME` or `--group NAME_OR_ID`).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Grantee {
    /// A user.
    #[arg(long)]
    user: Option<String>,
    /// A group, by name or id.
    #[arg(long)]
    group: Option<String>,
}

impl Grantee {
    /// The `user` or `group` field of a grant, with a group named by name looked up.
    async fn fields(&self, client: &Client) -> Result<Vec<(&'static str, String)>, ClientError> {
        Ok(match (&self.user, &self.group) {
            (Some(user), _) => vec![("user", user.clone())],
            (None, Some(group)) => vec![("group", super::group::group_id(client, group).await?)],
            (None, None) => Vec::new(),
        })
    }
}

/// One line describing a folder's grants: owner and visibility, then each grant.
fn grants_line(grants: &Value) -> String {
    let each: Vec<String> = grants["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let who = match g["user"].as_str() {
                Some(user) => format!("user:{user}"),
                None => format!("group:{}", g["group_name"].as_str().unwrap_or("?")),
            };
            let from = if g["inherited"] == true {
                format!("@{}", g["path"].as_str().unwrap_or("?"))
            } else {
                String::new()
            };
            format!("{who}={}{from}", g["role"].as_str().unwrap_or("?"))
        })
        .collect();
    format!(
        "{}	owner={}	visibility={}	{}",
        grants["folder_id"].as_str().unwrap_or("?"),
        grants["owner"].as_str().unwrap_or("?"),
        grants["visibility"].as_str().unwrap_or("?"),
        each.join(",")
    )
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
        FolderCommand::Share { folder, grantee, role } => {
            let id = folder_id(client, &folder).await?;
            let mut body: serde_json::Map<String, Value> = grantee
                .fields(client)
                .await?
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            body.insert("role".into(), Value::from(role));
            let grants: Value = client
                .call(Method::PUT, &format!("/v1/folders/{id}/grants"), &[], Some(&body))
                .await?;
            super::show(&grants, raw_json, grants_line);
        }
        FolderCommand::Unshare { folder, grantee } => {
            let id = folder_id(client, &folder).await?;
            let query = grantee.fields(client).await?;
            let req = client
                .request(Method::DELETE, &format!("/v1/folders/{id}/grants"))
                .query(&query);
            client.send(req).await?;
            let who = query.first().map(|(k, v)| format!("{k}:{v}")).unwrap_or_default();
            super::show(&json!({ "folder_id": id, "revoked": who }), raw_json, |_| {
                format!("{folder}	{who}	unshared")
            });
        }
        FolderCommand::Star { folder, off } => {
            let id = folder_id(client, &folder).await?;
            let method = if off { Method::DELETE } else { Method::PUT };
            let starred: Value = client
                .call(method, &format!("/v1/folders/{id}/star"), &[], None::<&()>)
                .await?;
            print(&starred);
        }
        FolderCommand::Shelf { shelf } => {
            let query = vec![("page_size", "1000".to_owned())];
            client.each_item(&format!("/v1/views/{shelf}"), query, print).await?;
        }
        FolderCommand::Grants { folder } => {
            let id = folder_id(client, &folder).await?;
            let grants: Value = client
                .call(Method::GET, &format!("/v1/folders/{id}/grants"), &[], None::<&()>)
                .await?;
            super::show(&grants, raw_json, grants_line);
        }
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
