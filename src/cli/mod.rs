//! The command line: server commands (`serve`, `migrate`, `print-config`, `keys`) and client
//! verbs that talk to a running server over HTTP (`folder …`, `group …`, `item …`, `job …`, `sync`, `import`,
//! `reencode`, `trash …`, `expiry …`, `audit`).

pub mod audit;
pub mod client;
pub mod direct_upload;
pub mod export;
pub mod folder;
pub mod group;
pub mod import;
pub mod item;
pub mod job;
pub mod keys;
pub mod lifecycle;
pub mod queue;
pub mod quota;
pub mod sync;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

/// stowage: a catalog of folders and items over files in buckets.
#[derive(Debug, Parser)]
#[command(name = "stowage", version, about)]
pub struct Cli {
    /// Config file (TOML); see config/default.toml for every key.
    #[arg(long, global = true, env = "STOWAGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded database, managed bucket and admin key.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log line format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the job workers and the scheduler until SIGINT/SIGTERM.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the API only; run jobs in separate `stowage worker` processes.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run job workers and the scheduler only (no HTTP), until SIGINT/SIGTERM.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets masked.
    PrintConfig,
    /// API keys: make one (on the database directly with --name), list yours, revoke one.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Work with folders on a running server.
    Folder {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do with folders.
        #[command(subcommand)]
        command: folder::FolderCommand,
    },
    /// Groups of users that folders are shared with.
    Group {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do with groups.
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Sync a synced folder with its bucket.
    Sync {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to sync and how.
        #[command(flatten)]
        args: sync::SyncArgs,
    },
    /// Import the objects a spec lists (already in a configured bucket) into a folder.
    Import {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to import, and where.
        #[command(flatten)]
        args: import::ImportArgs,
    },
    /// Watch and control jobs on a running server.
    Job {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do with jobs.
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// Upload, list, download and delete items on a running server.
    Item {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do with items.
        #[command(subcommand)]
        command: item::ItemCommand,
    },
    /// Re-encode videos so every browser plays them (H.264 + AAC in MP4).
    Reencode {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// Ids of the video items.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Transcode also videos that are already H.264 + AAC in MP4 (else they are only remuxed).
        #[arg(long)]
        force: bool,
        /// A name for this run, kept with the job.
        #[arg(long)]
        title: Option<String>,
        /// Wait for the job with a progress bar; exits 0 on DONE, 3 on ERROR, 4 on CANCELLED.
        #[arg(long)]
        wait: bool,
    },
    /// List, restore and purge what was deleted.
    Trash {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do with the trash.
        #[command(subcommand)]
        command: lifecycle::TrashCommand,
    },
    /// Quotas on folders and users, and what they hold.
    Quota {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: quota::QuotaCommand,
    },
    /// The job queues: each kind's backlog and workers; pause and resume a kind (admins).
    Queue {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// Webhooks: receivers told of events by signed POSTs, and their deliveries.
    Webhook {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// The audit log (admins), newest first.
    Audit {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// Which events.
        #[command(flatten)]
        args: audit::AuditArgs,
    },
    /// The TTL sweep.
    Expiry {
        /// Where the server is and how to authenticate.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: lifecycle::ExpiryCommand,
    },
}

/// How client verbs reach the server.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server base URL.
    #[arg(long, global = true, env = "STOWAGE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key; defaults to the contents of DATA_DIR/admin.key when that file exists.
    #[arg(long, global = true, env = "STOWAGE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print each result as one JSON object per line (JSON lines) instead of a tab-separated line.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The API's words in server messages, and the CLI flags that do the same: a message the CLI
/// prints tells the user what to type, not what to send.
const IN_CLI_TERMS: [(&str, &str); 11] = [
    ("pass recursive=true", "pass --recursive"),
    (
        "upload with conflict_strategy new, skip or replace",
        "upload with --conflict-strategy new, skip or replace",
    ),
    ("or give target_parent_id", "or give --to FOLDER"),
    ("with target_parent_id", "with --to FOLDER"),
    (
        "sync again with \"max_tombstone_ratio\": 1.0",
        "sync again with --max-tombstone-ratio 1.0",
    ),
    ("submit with ignore_errors=true", "import again with --ignore-errors"),
    (
        "managers of a folder give its folder_id",
        "managers of a folder give --folder FOLDER",
    ),
    (
        "give the folder_id of a folder you manage",
        "give --folder FOLDER, one you manage",
    ),
    ("retry the job (POST /v1/jobs/", "retry the job (stowage job retry "),
    ("/retry runs only the units", " runs only the units"),
    (
        "name at least one of kind, status, folder_id, submitted_after, submitted_before",
        "name at least one of --kind, --status, --folder-id, --submitted-after, --submitted-before",
    ),
];

/// `message` (from the server) with the API's parameter names replaced by the CLI's flags.
pub fn in_cli_terms(message: &str) -> String {
    IN_CLI_TERMS
        .iter()
        .fold(message.to_owned(), |text, (api, cli)| text.replace(api, cli))
}

/// Writes `text` and a newline to standard output. When the reader has gone away
/// (`stowage job list | head -1`), the process ends at once with status 0, as Unix tools do,
/// instead of failing on the broken pipe.
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Prints one result: with `--json` (`raw_json`) the JSON object on one line (so a run's output
/// is JSON lines), else the one line `line` makes: tab-separated fields, the thing's path (or a
/// job's id) first, counts as `name=value`.
pub fn show(value: &serde_json::Value, raw_json: bool, line: impl Fn(&serde_json::Value) -> String) {
    if raw_json {
        say(value);
    } else {
        say(line(value));
    }
}

impl Cli {
    /// The flags that override configuration.
    pub fn overrides(&self) -> Overrides {
        let listen = match &self.command {
            Command::Serve { listen, .. } => *listen,
            _ => None,
        };
        Overrides {
            data_dir: self.data_dir.clone(),
            listen,
            log_format: self.log_format,
        }
    }
}
