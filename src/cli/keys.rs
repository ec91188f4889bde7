//! `stowage keys create|list|revoke`. `create --name USER` writes to the database directly (the
//! first keys of a deployment, no server needed); every other form asks a running server.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Client, ClientError};
use super::{ClientArgs, show};

/// Key verbs.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it once. With --name, on the database directly (the user is
    /// recorded if new); without, through the server: for yourself, or (admins) --user.
    Create {
        /// Directly on the database: the user the key is for.
        #[arg(long, conflicts_with = "user")]
        name: Option<String>,
        /// Directly on the database: make that user an admin.
        #[arg(long, requires = "name")]
        admin: bool,
        /// Through the server: the user the key is for (admins); yourself when absent.
        #[arg(long)]
        user: Option<String>,
        /// A label to tell your keys apart, e.g. laptop or ci.
        #[arg(long)]
        label: Option<String>,
        /// `read` (only reads) or `write` (everything the user may do; the default).
        #[arg(long, value_parser = ["read", "write"])]
        scope: Option<String>,
        /// When the key stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
        /// Where the server is (not used with --name).
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List your keys (admins: --user's), newest first, without their secrets.
    List {
        /// Whose keys (admins).
        #[arg(long)]
        user: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key at once: the next request with it is refused.
    Revoke {
        /// The key's whole id: the first column of `keys list`.
        id: String,
        /// Where the server is.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The body of `POST /v1/keys` (also what the direct command checks): the given fields only.
pub fn key_request(
    user: Option<String>,
    label: Option<String>,
    scope: Option<String>,
    expires_at: Option<String>,
) -> Value {
    let mut body = Map::new();
    for (field, value) in [
        ("user", user),
        ("name", label),
        ("scope", scope),
        ("expires_at", expires_at),
    ] {
        if let Some(value) = value {
            body.insert(field.into(), json!(value));
        }
    }
    Value::Object(body)
}

/// Makes a key through the server and prints it (with `--json`, the whole answer).
pub async fn create(client: &Client, body: Value, raw_json: bool) -> Result<(), ClientError> {
    let created: Value = client.call(Method::POST, "/v1/keys", &[], Some(&body)).await?;
    print_created(&created, raw_json);
    Ok(())
}

/// Prints a new key: the secret alone on its line (for `$(stowage keys create …)`), or with
/// `--json` the whole answer.
pub fn print_created(created: &Value, raw_json: bool) {
    show(created, raw_json, |k| k["key"].as_str().unwrap_or_default().to_owned());
}

/// Lists keys, one line each: id, prefix, scope, label, then the times.
pub async fn list(client: &Client, user: Option<String>, raw_json: bool) -> Result<(), ClientError> {
    let query: Vec<(&str, String)> = user.into_iter().map(|u| ("user", u)).collect();
    client
        .each_item("/v1/keys", query, |key| show(key, raw_json, key_line))
        .await
}

/// Revokes key `id`.
pub async fn revoke(client: &Client, id: &str, raw_json: bool) -> Result<(), ClientError> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| {
        ClientError::Usage(format!(
            "`{id}` is not a key id; pass the whole id, the first column of `stowage keys list`"
        ))
    })?;
    client
        .send(client.request(Method::DELETE, &format!("/v1/keys/{id}")))
        .await?;
    show(&json!({ "id": id, "revoked": true }), raw_json, |_| {
        format!("{id}\trevoked")
    });
    Ok(())
}

/// One key as a line.
fn key_line(key: &Value) -> String {
    let text = |field: &str| key[field].as_str().unwrap_or("-").to_owned();
    format!(
        "{}\t{}\tscope={}\tlabel={}\tcreated={}\tlast_used={}\texpires={}",
        text("id"),
        text("prefix"),
        text("scope"),
        key["name"].as_str().filter(|n| !n.is_empty()).unwrap_or("-"),
        text("created_at"),
        text("last_used_at"),
        text("expires_at"),
    )
}
