//! `stowage group create|list|show|add|remove|delete`. A group is named by its name or id.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};
use super::show;

/// Group verbs.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make a group; you become its first manager.
    Create {
        /// Its unique name.
        name: String,
    },
    /// List the groups (every one; with --mine, yours).
    List {
        /// Only the groups you are in.
        #[arg(long)]
        mine: bool,
    },
    /// Show one group with its members (shown to its members and admins).
    Show {
        /// Group name or id.
        group: String,
    },
    /// Add a user to a group, or change their standing (its managers).
    Add {
        /// Group name or id.
        group: String,
        /// The user.
        user: String,
        /// Make them a manager of the group (adds and removes members).
        #[arg(long)]
        manager: bool,
        /// Make them a plain member (demotes a manager).
        #[arg(long, conflicts_with = "manager")]
        member: bool,
    },
    /// Remove a user from a group (its managers), or leave it (yourself).
    Remove {
        /// Group name or id.
        group: String,
        /// The user.
        user: String,
    },
    /// Delete a group with every grant given to it (its managers).
    Delete {
        /// Group name or id.
        group: String,
    },
}

/// The id of the group named `group` (a name, or an id as it is).
pub async fn group_id(client: &Client, group: &str) -> Result<String, ClientError> {
    if uuid::Uuid::parse_str(group).is_ok() {
        return Ok(group.to_owned());
    }
    let mut found = None;
    client
        .each_item("/v1/groups", vec![("page_size", "1000".to_owned())], |g| {
            if g["name"].as_str() == Some(group) {
                found = g["id"].as_str().map(str::to_owned);
            }
        })
        .await?;
    found
        .ok_or_else(|| ClientError::Unexpected(format!("no group is named `{group}`; `stowage group list` shows them")))
}

/// One line describing a group: name, id, members, your standing, and its members when shown.
fn line(group: &Value) -> String {
    let members: Vec<String> = group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}:{}",
                m["user"].as_str().unwrap_or("?"),
                m["role"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!(
        "{}\t{}\tmembers={}\tmy_role={}{}",
        group["name"].as_str().unwrap_or("?"),
        group["id"].as_str().unwrap_or("?"),
        group["member_count"],
        group["my_role"].as_str().unwrap_or("-"),
        if members.is_empty() {
            String::new()
        } else {
            format!("\t{}", members.join(","))
        }
    )
}

/// Runs a group verb and prints its result.
pub async fn run(client: &Client, command: GroupCommand, raw_json: bool) -> Result<(), ClientError> {
    let print = |value: &Value| show(value, raw_json, line);
    match command {
        GroupCommand::Create { name } => {
            let created: Value = client
                .call(Method::POST, "/v1/groups", &[], Some(&json!({ "name": name })))
                .await?;
            print(&created);
        }
        GroupCommand::List { mine } => {
            let query = vec![("mine", mine.to_string()), ("page_size", "1000".to_owned())];
            client.each_item("/v1/groups", query, print).await?;
        }
        GroupCommand::Show { group } => {
            let id = group_id(client, &group).await?;
            let shown: Value = client
                .call(Method::GET, &format!("/v1/groups/{id}"), &[], None::<&()>)
                .await?;
            print(&shown);
        }
        GroupCommand::Add {
            group,
            user,
            manager,
            member,
        } => {
            let id = group_id(client, &group).await?;
            // Neither flag: a new member joins as a member, an existing one keeps their standing.
            let role = match (manager, member) {
                (true, _) => Some("manager"),
                (_, true) => Some("member"),
                _ => None,
            };
            let changed: Value = client
                .call(
                    Method::PUT,
                    &format!("/v1/groups/{id}/members/{user}"),
                    &[],
                    Some(&json!({ "role": role })),
                )
                .await?;
            print(&changed);
        }
        GroupCommand::Remove { group, user } => {
            let id = group_id(client, &group).await?;
            let path = format!("/v1/groups/{id}/members/{user}");
            client.send(client.request(Method::DELETE, &path)).await?;
            show(&json!({ "group": id, "user": user, "removed": true }), raw_json, |_| {
                format!("{group}\t{user}\tremoved")
            });
        }
        GroupCommand::Delete { group } => {
            let id = group_id(client, &group).await?;
            client
                .send(client.request(Method::DELETE, &format!("/v1/groups/{id}")))
                .await?;
            show(&json!({ "id": id, "deleted": true }), raw_json, |_| {
                format!("{group}\t{id}\tdeleted")
            });
        }
    }
    Ok(())
}
