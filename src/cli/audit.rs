//! `stowage audit [--actor USER] [--action ACTION] [--folder FOLDER]`: the audit log (admins).

use clap::Args;

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::show;

/// Which events to list.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this user's events.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action: user.create, key.create, key.revoke, folder.visibility, folder.delete,
    /// item.delete.
    #[arg(long)]
    pub action: Option<String>,
    /// Only events about this folder (path or id) and its items.
    #[arg(long)]
    pub folder: Option<String>,
}

/// Prints every matching event, newest first, one line each: time, action, actor, target, key.
pub async fn run(client: &Client, args: AuditArgs, raw_json: bool) -> Result<(), ClientError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(actor) = args.actor {
        query.push(("actor", actor));
    }
    if let Some(action) = args.action {
        query.push(("action", action));
    }
    if let Some(folder) = args.folder {
        query.push(("folder_id", folder_id(client, &folder).await?));
    }
    client
        .each_item("/v1/audit", query, |event| {
            show(event, raw_json, |e| {
                let text = |field: &str| e[field].as_str().unwrap_or("-").to_owned();
                format!(
                    "{}\t{}\t{}\t{}:{}\tkey={}\t{}",
                    text("at"),
                    text("action"),
                    text("actor"),
                    text("target_kind"),
                    text("target_id"),
                    text("key_id"),
                    e["detail"]
                )
            });
        })
        .await
}
