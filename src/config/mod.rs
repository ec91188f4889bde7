//! Settings: built-in defaults, then a TOML file, then `STOWAGE__SECTION__KEY` environment
//! variables, then command-line flags. Unknown keys and bad values are errors that name the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use buckets::{BUCKET_SCHEMES, BucketSettings};
pub use signed_urls::{MAX_PART_BYTES, MIN_PART_BYTES, SignedUrlSettings};

use crate::domain::schedule::CronSchedule;

mod buckets;
mod signed_urls;

/// The name of the bucket that holds uploaded files.
pub const MANAGED_BUCKET: &str = "managed";

/// Everything stowage can be configured with. `config/default.toml` documents each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the embedded database and the managed bucket live by default.
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub server: ServerSettings,
    /// The metadata store.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
    /// The job queue and its workers.
    pub jobs: JobsSettings,
    /// Bucket sync.
    pub sync: SyncSettings,
    /// The TTL sweep.
    pub expiry: ExpirySettings,
    /// The trash.
    pub trash: TrashSettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Imports of objects already in buckets.
    pub import: ImportSettings,
    /// Video re-encodes.
    pub reencode: ReencodeSettings,
    /// `GET /metrics`.
    pub metrics: MetricsSettings,
    /// Webhook deliveries.
    pub webhooks: WebhookSettings,
    /// Signed URLs of items' content.
    pub signed_urls: SignedUrlSettings,
    /// Named buckets; `managed` holds uploads and defaults to `DATA_DIR/objects`.
    pub buckets: BTreeMap<String, BucketSettings>,
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest file one upload (`POST /v1/folders/{id}/items`) may carry, in bytes.
    pub max_upload_bytes: u64,
    /// How long a graceful shutdown waits for requests in flight, in seconds.
    pub shutdown_timeout_seconds: u64,
}

/// Metadata store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`; empty means `sqlite://DATA_DIR/stowage.db`.
    pub url: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long SQLite waits for a lock before giving up, in milliseconds.
    pub busy_timeout_ms: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// Filter directives (`RUST_LOG` syntax); `RUST_LOG` itself wins when set.
    pub filter: String,
}

/// Job queue and worker settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    /// Attempts a job gets before it ends in ERROR.
    pub max_attempts: u32,
    /// Wait after the first failed attempt, in milliseconds; doubles after each further one.
    pub retry_backoff_ms: u64,
    /// Longest wait between attempts, in milliseconds.
    pub retry_backoff_max_ms: u64,
    /// How often a worker reports it is alive, in seconds.
    pub heartbeat_seconds: u64,
    /// Missed heartbeats after which another worker takes over a dead worker's jobs.
    pub missed_heartbeats: u32,
    /// How often idle workers look for new jobs, in milliseconds (a job submitted to this process
    /// wakes its worker at once; PostgreSQL also wakes them by NOTIFY).
    pub poll_interval_ms: u64,
    /// How often waiters re-check jobs in case a change notification was lost, in milliseconds.
    pub recheck_interval_ms: u64,
    /// How long shutdown waits for running units to finish, in seconds.
    pub shutdown_timeout_seconds: u64,
    /// How long the records of finished jobs are kept, in seconds; older ones are removed hourly.
    pub retention_seconds: u64,
    /// Jobs of each kind that one process runs at once.
    pub concurrency: JobConcurrency,
}

/// Bucket sync settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Reads one sync runs at once: objects of a cloud bucket, chunks of up to 256 files (read
    /// one after another) of a local one.
    pub hash_concurrency: usize,
    /// The shortest time a folder's `sync_schedule` may leave between two runs, in seconds.
    pub min_schedule_interval_seconds: u64,
    /// Syncs of a folder that may end in ERROR in a row before its schedule pauses itself.
    pub pause_schedule_after_failures: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            hash_concurrency: 8,
            min_schedule_interval_seconds: 60,
            pause_schedule_after_failures: 5,
        }
    }
}

/// Per-kind concurrency limits of one worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConcurrency {
    /// Bucket syncs.
    pub sync: usize,
    /// Private-data imports.
    pub import: usize,
    /// Video re-encodes.
    pub reencode: usize,
    /// Expiry sweeps.
    pub expiry: usize,
    /// No-op jobs.
    pub noop: usize,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_backoff_ms: 2000,
            retry_backoff_max_ms: 300_000,
            heartbeat_seconds: 5,
            missed_heartbeats: 3,
            poll_interval_ms: 500,
            recheck_interval_ms: 2000,
            shutdown_timeout_seconds: 30,
            retention_seconds: 30 * 24 * 3600,
            concurrency: JobConcurrency::default(),
        }
    }
}

impl Default for JobConcurrency {
    fn default() -> Self {
        Self {
            sync: 2,
            import: 2,
            reencode: 1,
            expiry: 1,
            noop: 4,
        }
    }
}

/// The TTL sweep (job kind EXPIRY).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpirySettings {
    /// Cron expression (UTC) on which the sweep runs; empty: only when asked (`POST /v1/expiry`).
    pub schedule: String,
    /// What happens to what expired.
    pub action: ExpiryAction,
    /// Items handled per transaction.
    pub batch_size: u32,
}

/// What the TTL sweep does with what expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryAction {
    /// Delete it for good at once (rows, and objects in the managed bucket).
    Delete,
    /// Move it into the trash, purged after `trash.retention_seconds`.
    Trash,
}

/// The trash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrashSettings {
    /// How long deleted folders and items stay restorable before the sweep purges them, in seconds.
    pub retention_seconds: u64,
}

/// `GET /metrics`: always served, never to just anyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A bearer token that may read `GET /metrics` (for Prometheus' `authorization`); empty:
    /// only admins' API keys may.
    pub token: String,
    /// An address of its own to serve `/metrics` (and `/healthz`) on, in any role: how a
    /// `stowage worker`, which serves no API, is scraped.
    pub listen: Option<SocketAddr>,
}

/// Webhook deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Let receivers live on loopback, private, link-local and other reserved networks (off:
    /// a webhook must not reach into the machine's own network, or its cloud metadata service).
    pub allow_private_networks: bool,
    /// Wait after a delivery's first failed attempt, in milliseconds; doubles after each.
    pub retry_backoff_ms: u64,
    /// Longest wait between attempts, in milliseconds.
    pub retry_backoff_max_ms: u64,
    /// How long a delivery is retried before it is given up, in seconds.
    pub retry_window_seconds: u64,
    /// Deliveries given up in a row after which a webhook is disabled.
    pub disable_after_failed_deliveries: u32,
    /// How long one attempt may take, in seconds.
    pub timeout_seconds: u64,
    /// How often each process with workers looks for events to deliver, in milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 3_600_000,
            retry_window_seconds: 24 * 3600,
            disable_after_failed_deliveries: 5,
            timeout_seconds: 10,
            poll_interval_ms: 1_000,
        }
    }
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// How long audit events are kept, in seconds; older ones are removed hourly.
    pub retention_seconds: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention_seconds: 365 * 24 * 3600,
        }
    }
}

/// Imports (job kind IMPORT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// Objects one import job looks up and probes at once.
    pub unit_concurrency: usize,
    /// The largest spec accepted, in bytes (a request body, or a spec file in a bucket).
    pub max_spec_bytes: u64,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            unit_concurrency: 16,
            max_spec_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Video re-encodes (job kind REENCODE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReencodeSettings {
    /// ffmpeg processes one process runs at once, over all its re-encode jobs.
    pub max_processes: usize,
}

impl Default for ExpirySettings {
    fn default() -> Self {
        Self {
            schedule: "0 */5 * * * *".into(),
            action: ExpiryAction::Delete,
            batch_size: 500,
        }
    }
}

impl Default for TrashSettings {
    fn default() -> Self {
        Self {
            retention_seconds: 30 * 24 * 3600,
        }
    }
}

impl Default for ReencodeSettings {
    fn default() -> Self {
        Self { max_processes: 2 }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            log: LogSettings::default(),
            jobs: JobsSettings::default(),
            sync: SyncSettings::default(),
            expiry: ExpirySettings::default(),
            trash: TrashSettings::default(),
            audit: AuditSettings::default(),
            import: ImportSettings::default(),
            reencode: ReencodeSettings::default(),
            metrics: MetricsSettings::default(),
            webhooks: WebhookSettings::default(),
            signed_urls: SignedUrlSettings::default(),
            buckets: BTreeMap::new(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            shutdown_timeout_seconds: 30,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
            busy_timeout_ms: 5000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info,sqlx=warn".into(),
        }
    }
}

/// A configuration that cannot be used, with the key at fault in the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag holds an unknown key or a bad value.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The values parse but do not make sense together.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The offending key, e.g. `buckets.raw.url`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// Command-line values that override every other source; `None` leaves the setting alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl Settings {
    /// Loads the settings from the defaults, `file` (when given), `STOWAGE__*` variables and
    /// `overrides`, then fills in derived defaults and checks them.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    key: "--config".into(),
                    message: format!("config file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("STOWAGE__").split("__"));
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        if let Some(format) = overrides.log_format {
            figment = figment.merge(Serialized::default("log.format", format));
        }
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.completed()
    }

    /// Fills in the defaults that depend on `data_dir` and validates the buckets.
    pub fn completed(mut self) -> Result<Self, ConfigError> {
        if self.database.url.is_empty() {
            self.database.url = format!("sqlite://{}", self.data_dir.join("stowage.db").display());
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "database.url".into(),
                message: "must start with `sqlite://`, `postgres://` or `postgresql://`".into(),
            });
        }
        if !self.buckets.contains_key(MANAGED_BUCKET) {
            let dir = std::path::absolute(self.data_dir.join("objects")).map_err(|e| ConfigError::Invalid {
                key: "data_dir".into(),
                message: format!("cannot resolve {}: {e}", self.data_dir.display()),
            })?;
            self.buckets.insert(
                MANAGED_BUCKET.into(),
                BucketSettings::at(format!("file://{}", dir.display())),
            );
        }
        for (name, bucket) in &self.buckets {
            bucket.validate(name)?;
        }
        self.expiry_schedule()?;
        self.signed_urls.validate()?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if self.expiry.batch_size == 0 {
            return Err(invalid("expiry.batch_size", "must be at least 1"));
        }
        if self.import.unit_concurrency == 0 {
            return Err(invalid("import.unit_concurrency", "must be at least 1"));
        }
        if self.reencode.max_processes == 0 {
            return Err(invalid("reencode.max_processes", "must be at least 1"));
        }
        if self.audit.retention_seconds == 0 {
            return Err(invalid("audit.retention_seconds", "must be at least 1"));
        }
        if self.jobs.retention_seconds == 0 {
            return Err(invalid("jobs.retention_seconds", "must be at least 1"));
        }
        if self.webhooks.timeout_seconds == 0 || self.webhooks.disable_after_failed_deliveries == 0 {
            return Err(invalid(
                "webhooks",
                "timeout_seconds and disable_after_failed_deliveries must be at least 1",
            ));
        }
        Ok(self)
    }

    /// The TTL sweep's schedule; `None` when `expiry.schedule` is empty.
    pub fn expiry_schedule(&self) -> Result<Option<CronSchedule>, ConfigError> {
        if self.expiry.schedule.trim().is_empty() {
            return Ok(None);
        }
        CronSchedule::parse(&self.expiry.schedule)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                key: "expiry.schedule".into(),
                message: e.to_string(),
            })
    }

    /// The settings as TOML with secrets (passwords in URLs) masked, for `print-config`.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = mask_password(&shown.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// Replaces the password of a URL with `****`.
fn mask_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this one has.
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests;
