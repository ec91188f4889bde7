//! `stowage queue list|pause|resume`: each job kind's queue, and pausing and resuming a kind
//! (admins).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};
use super::show;

/// Queue verbs.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every job kind: paused or not, jobs pending and running, the oldest pending job's age,
    /// workers alive.
    List,
    /// Pause a job kind: no worker starts a job of it until it is resumed; running jobs finish.
    Pause {
        /// SYNC, IMPORT, REENCODE, EXPIRY or NOOP.
        kind: String,
    },
    /// Resume a paused job kind.
    Resume {
        /// SYNC, IMPORT, REENCODE, EXPIRY or NOOP.
        kind: String,
    },
}

/// One line for a queue: kind, paused or running, counts, oldest pending age, workers alive.
fn line(queue: &Value) -> String {
    format!(
        "{}\t{}\tpending={}\trunning={}\toldest_pending_age_seconds={}\tworkers_alive={}",
        queue["kind"].as_str().unwrap_or("?"),
        if queue["paused"].as_bool() == Some(true) {
            "paused"
        } else {
            "running"
        },
        queue["pending"],
        queue["running"],
        queue["oldest_pending_age_seconds"]
            .as_f64()
            .map_or("-".into(), |s| format!("{s:.1}")),
        queue["workers_alive"]
    )
}

/// Runs a queue verb against the server.
pub async fn run(client: &Client, command: QueueCommand, raw_json: bool) -> Result<(), ClientError> {
    let (path, method) = match &command {
        QueueCommand::List => ("/v1/queues".to_owned(), Method::GET),
        QueueCommand::Pause { kind } => (format!("/v1/queues/{kind}/pause"), Method::POST),
        QueueCommand::Resume { kind } => (format!("/v1/queues/{kind}/resume"), Method::POST),
    };
    let body = (method == Method::POST).then(|| json!({}));
    let answer: Value = client.call(method, &path, &[], body.as_ref()).await?;
    match answer.as_array() {
        Some(queues) if !raw_json => queues.iter().for_each(|q| show(q, false, line)),
        _ => show(&answer, raw_json, line),
    }
    Ok(())
}
