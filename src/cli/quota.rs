//! `stowage quota folder|user|usage|recount`: quotas on folders (their managers) and users
//! (admins), what they hold, and the recount that checks the counters.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value};

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::show;

/// Quota verbs.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Show a folder's quota and what its subtree holds; with --max-bytes and/or --max-items
    /// set those limits (its managers; a limit not given keeps its value), with --remove remove
    /// the quota.
    Folder {
        /// Folder path or id.
        folder: String,
        /// The most bytes the subtree's live items may hold.
        #[arg(long)]
        max_bytes: Option<i64>,
        /// The most live items the subtree may hold.
        #[arg(long)]
        max_items: Option<i64>,
        /// Remove the quota.
        #[arg(long, conflicts_with_all = ["max_bytes", "max_items"])]
        remove: bool,
    },
    /// Set a user's byte quota over the trees they own (admins), or with --remove remove it.
    User {
        /// The user.
        name: String,
        /// The most bytes the live items of their trees may hold.
        #[arg(long, required_unless_present = "remove")]
        max_bytes: Option<i64>,
        /// Remove the quota.
        #[arg(long, conflicts_with = "max_bytes")]
        remove: bool,
    },
    /// Show what your trees hold (or with --user another user's, admins) and your byte quota.
    Usage {
        /// Whose usage.
        #[arg(long)]
        user: Option<String>,
    },
    /// Recount every usage counter from the items and correct the ones that drifted (admins).
    Recount,
}

/// One line for a folder quota: path, limits, usage.
fn folder_line(quota: &Value) -> String {
    format!(
        "{}\tmax_bytes={}\tmax_items={}\tbytes={}\titems={}",
        quota["path"].as_str().unwrap_or("?"),
        quota["quota"]["max_bytes"],
        quota["quota"]["max_items"],
        quota["usage"]["bytes"],
        quota["usage"]["items"]
    )
}

/// One line for a user's usage: name, byte quota, usage.
fn user_line(usage: &Value) -> String {
    format!(
        "{}\tmax_bytes={}\tbytes={}\titems={}",
        usage["user"].as_str().unwrap_or("?"),
        usage["max_bytes"],
        usage["usage"]["bytes"],
        usage["usage"]["items"]
    )
}

/// Runs a quota verb against the server.
pub async fn run(client: &Client, command: QuotaCommand, raw_json: bool) -> Result<(), ClientError> {
    match command {
        QuotaCommand::Folder {
            folder,
            max_bytes,
            max_items,
            remove,
        } => {
            let id = folder_id(client, &folder).await?;
            let path = format!("/v1/folders/{id}/quota");
            if remove {
                client.send(client.request(Method::DELETE, &path)).await?;
                show(&serde_json::json!({"folder_id": id, "quota": null}), raw_json, |_| {
                    format!("{folder}\tquota removed")
                });
                return Ok(());
            }
            let current = match client.call::<Value>(Method::GET, &path, &[], None::<&()>).await {
                Ok(quota) => Some(quota),
                Err(ClientError::Server { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => None,
                Err(other) => return Err(other),
            };
            if max_bytes.is_none() && max_items.is_none() {
                match current {
                    Some(quota) => show(&quota, raw_json, folder_line),
                    None => show(&serde_json::json!({"folder_id": id, "quota": null}), raw_json, |_| {
                        format!("{folder}\tno quota (set one with --max-bytes and/or --max-items)")
                    }),
                }
                return Ok(());
            }
            // The server replaces the whole quota; a limit not given keeps its current value.
            let kept = |name: &str| current.as_ref().map_or(Value::Null, |q| q["quota"][name].clone());
            let mut body = Map::new();
            body.insert(
                "max_bytes".into(),
                max_bytes.map_or_else(|| kept("max_bytes"), Value::from),
            );
            body.insert(
                "max_items".into(),
                max_items.map_or_else(|| kept("max_items"), Value::from),
            );
            let quota: Value = client.call(Method::PUT, &path, &[], Some(&body)).await?;
            show(&quota, raw_json, folder_line);
        }
        QuotaCommand::User {
            name,
            max_bytes,
            remove,
        } => {
            let path = format!("/v1/users/{name}/quota");
            let usage: Value = match (remove, max_bytes) {
                (false, Some(max_bytes)) => {
                    let body = serde_json::json!({ "max_bytes": max_bytes });
                    client.call(Method::PUT, &path, &[], Some(&body)).await?
                }
                _ => client.call(Method::DELETE, &path, &[], None::<&()>).await?,
            };
            show(&usage, raw_json, user_line);
        }
        QuotaCommand::Usage { user } => {
            let query: Vec<(&str, String)> = user.into_iter().map(|u| ("user", u)).collect();
            let usage: Value = client.call(Method::GET, "/v1/usage", &query, None::<&()>).await?;
            show(&usage, raw_json, user_line);
        }
        QuotaCommand::Recount => {
            let found: Value = client.call(Method::POST, "/v1/usage/recount", &[], None::<&()>).await?;
            show(&found, raw_json, |found| {
                let listed = |field: &str| found[field].as_array().into_iter().flatten();
                let mut drifted: Vec<String> = listed("drifted")
                    .map(|d| {
                        format!(
                            "{}:{}/{}->{}/{}",
                            d["holder"].as_str().unwrap_or("?"),
                            d["counted"]["bytes"],
                            d["counted"]["items"],
                            d["actual"]["bytes"],
                            d["actual"]["items"]
                        )
                    })
                    .collect();
                drifted.extend(listed("item_counts_drifted").map(|d| {
                    format!(
                        "folder {} item_count:{}->{}",
                        d["path"].as_str().unwrap_or("?"),
                        d["counted"],
                        d["actual"]
                    )
                }));
                format!("recounted\tdrifted={}\t{}", drifted.len(), drifted.join(","))
            });
        }
    }
    Ok(())
}
