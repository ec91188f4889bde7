//! `stowage webhook create|list|show|update|delete|deliveries`: receivers told of events by
//! signed POSTs (managers of a folder for its subtree, admins for every folder).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Client, ClientError};
use super::folder::folder_id;
use super::show;

/// Webhook verbs.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Make a webhook; prints it and, once, the secret that signs its deliveries.
    Create {
        /// Where deliveries go (http:// or https://, on a public network).
        url: String,
        /// An event to be told of (job.finished, sync.finished, import.finished, item.created,
        /// item.updated, item.tombstoned, item.deleted); repeat it, or separate several with commas.
        #[arg(long = "event", required = true, value_delimiter = ',')]
        events: Vec<String>,
        /// Only events of this folder's subtree (path or id; a folder you manage). Without it:
        /// every folder's (admins).
        #[arg(long)]
        folder: Option<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// The webhooks you manage.
    List,
    /// One webhook.
    Show {
        /// Webhook id.
        id: String,
    },
    /// Change a webhook.
    Update {
        /// Webhook id.
        id: String,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        /// New events (repeat it, or separate several with commas; replaces them all).
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// Start deliveries again (forgets past failures).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop deliveries.
        #[arg(long)]
        disable: bool,
    },
    /// Delete a webhook with its deliveries.
    Delete {
        /// Webhook id.
        id: String,
    },
    /// A webhook's deliveries, newest first, every page.
    Deliveries {
        /// Webhook id.
        id: String,
    },
}

/// One line for a webhook: id, enabled or why disabled, URL, events, scope.
fn line(hook: &Value) -> String {
    let events: Vec<&str> = hook["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let state = match hook["disabled_reason"].as_str() {
        Some(reason) => format!("disabled: {reason}"),
        None if hook["enabled"] == false => "disabled".into(),
        None => "enabled".into(),
    };
    format!(
        "{}\t{}\t{}\t{}\tfolder={}",
        hook["id"].as_str().unwrap_or("?"),
        state,
        hook["url"].as_str().unwrap_or("?"),
        events.join(","),
        hook["folder_id"].as_str().unwrap_or("*")
    )
}

/// One line for a delivery: id, status, events, attempts, the last attempt's answer.
fn delivery_line(delivery: &Value) -> String {
    let last = delivery["attempt_log"].as_array().and_then(|log| log.last());
    let answer = last.map_or("-".to_owned(), |a| match a["error"].as_str() {
        Some(error) => error.to_owned(),
        None => format!("HTTP {}", a["status_code"]),
    });
    format!(
        "{}\t{}\tevents={}\tattempts={}\t{}",
        delivery["id"].as_str().unwrap_or("?"),
        delivery["status"].as_str().unwrap_or("?"),
        delivery["event_count"],
        delivery["attempts"],
        answer
    )
}

/// Runs a webhook verb against the server.
pub async fn run(client: &Client, command: WebhookCommand, raw_json: bool) -> Result<(), ClientError> {
    match command {
        WebhookCommand::Create {
            url,
            events,
            folder,
            description,
        } => {
            let folder_id = match folder {
                Some(folder) => Some(folder_id(client, &folder).await?),
                None => None,
            };
            let body = json!({"url": url, "events": events, "folder_id": folder_id, "description": description});
            let made: Value = client.call(Method::POST, "/v1/webhooks", &[], Some(&body)).await?;
            show(&made, raw_json, |h| {
                format!("{}\nsecret\t{}", line(h), h["secret"].as_str().unwrap_or("?"))
            });
        }
        WebhookCommand::List => {
            let hooks: Value = client.call(Method::GET, "/v1/webhooks", &[], None::<&()>).await?;
            for hook in hooks.as_array().into_iter().flatten() {
                show(hook, raw_json, line);
            }
        }
        WebhookCommand::Show { id } => {
            let hook: Value = client
                .call(Method::GET, &format!("/v1/webhooks/{id}"), &[], None::<&()>)
                .await?;
            show(&hook, raw_json, line);
        }
        WebhookCommand::Update {
            id,
            url,
            events,
            enable,
            disable,
        } => {
            let mut change = Map::new();
            if let Some(url) = url {
                change.insert("url".into(), Value::String(url));
            }
            if !events.is_empty() {
                change.insert("events".into(), json!(events));
            }
            if enable || disable {
                change.insert("enabled".into(), Value::Bool(enable));
            }
            let hook: Value = client
                .call(
                    Method::PATCH,
                    &format!("/v1/webhooks/{id}"),
                    &[],
                    Some(&Value::Object(change)),
                )
                .await?;
            show(&hook, raw_json, line);
        }
        WebhookCommand::Delete { id } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/webhooks/{id}")))
                .await?;
        }
        WebhookCommand::Deliveries { id } => {
            let query = vec![("page_size", "1000".to_owned())];
            client
                .each_item(&format!("/v1/webhooks/{id}/deliveries"), query, |d| {
                    show(d, raw_json, delivery_line)
                })
                .await?;
        }
    }
    Ok(())
}
