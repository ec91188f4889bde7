//! The use cases. HTTP handlers, the CLI and job handlers all call these; they hold the rules
//! (validation, permissions, transactions) and leave SQL to `store`.

pub mod access;
pub mod audit;
pub mod bulk_jobs;
pub mod expiry;
pub mod folders;
pub mod grants;
pub mod groups;
pub mod imports;
pub mod items;
pub mod jobs;
pub mod keys;
pub mod objects;
pub mod probe;
pub mod queues;
pub mod quotas;
pub mod reencode;
pub mod retries;
pub mod stars;
pub mod sync;
pub mod trash;
pub mod users;
pub mod webhooks;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::blobs::Buckets;
use crate::domain::Invalid;
use crate::domain::page::Cursor;
use crate::domain::page::SortKey;
use crate::store::{Store, StoreError, from_micros, to_micros};

/// A JSON object kept with a folder or item for the client.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The current time at the store's precision, so what is returned equals what is read back.
pub fn now() -> OffsetDateTime {
    from_micros(to_micros(OffsetDateTime::now_utc()))
}

/// `at` as RFC 3339 text, for messages and audit details.
pub fn rfc3339(at: OffsetDateTime) -> String {
    // Every time the store can hold (years 1970 to 9999) formats.
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why a use case refused or failed. Each variant maps to an HTTP status (the one table is in
/// `http::error`).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or breaks a rule; the message says what to change (400).
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or unknown ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may see but not change this (403).
    #[error("{0}")]
    Forbidden(String),
    /// It does not exist, or the caller may not know it does (404).
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists (409).
    #[error("{0}")]
    Conflict(String),
    /// An item's object is no longer what the catalog records; a sync of its folder mends it
    /// (409, code `STALE`).
    #[error("{0}")]
    Stale(String),
    /// The request body is over a configured size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The database is unreachable or overloaded (503).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] StoreError),
    /// The store failed: 404 for a row that is gone, 409 for a broken uniqueness rule, 503 when
    /// the database is unavailable or busy, 500 otherwise. (Use cases turn the store answers
    /// they expect into the variants above first, e.g. with [`conflict_as`].)
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of ours, with what failed and why (500); the message goes to the log, never to
    /// the client.
    #[error("{context}: {source}")]
    Failed {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A fault of ours with no underlying error (a broken invariant) (500).
    #[error("{0}")]
    Internal(String),
}

/// Turns any error into a [`ServiceError::Failed`] that says what was being done, keeping the
/// error as its source: `.context("cannot write the key file")?`.
pub trait Context<T> {
    /// The error as a 500 with `context`.
    fn context(self, context: impl Into<String>) -> Result<T, ServiceError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, ServiceError> {
        self.map_err(|source| ServiceError::Failed {
            context: context.into(),
            source: Box::new(source),
        })
    }
}

impl From<Invalid> for ServiceError {
    fn from(err: Invalid) -> Self {
        ServiceError::Invalid(err.0)
    }
}

/// Prefixes a validation message with the field it concerns.
pub fn field(name: &'static str) -> impl Fn(Invalid) -> ServiceError {
    move |err| ServiceError::Invalid(format!("{name}: {err}"))
}

/// Turns a store `Conflict` into a 409 with `message`, passing other errors through.
pub fn conflict_as(message: impl Into<String>) -> impl FnOnce(StoreError) -> ServiceError {
    move |err| match err {
        StoreError::Conflict(_) => ServiceError::Conflict(message.into()),
        other => ServiceError::Store(other),
    }
}

/// A point in time as clients write it: RFC 3339 text such as `2030-01-01T00:00:00Z`, from
/// [`EARLIEST_TIME`] to [`LATEST_TIME`] (what every store and every later read can hold), kept
/// at the store's microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub time::OffsetDateTime);

/// The earliest time a client may give (`expires_at`): the Unix epoch.
pub const EARLIEST_TIME: time::OffsetDateTime = time::macros::datetime!(1970-01-01 00:00:00 UTC);
/// The latest time a client may give (`expires_at`): the last second of year 9999.
pub const LATEST_TIME: time::OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

impl<'de> serde::Deserialize<'de> for Rfc3339 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        let rule =
            "must be an RFC 3339 time such as 2030-01-01T00:00:00Z, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z";
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| serde::de::Error::custom(format!("{rule}; `{text}`: {e}")))?;
        if !(EARLIEST_TIME..=LATEST_TIME).contains(&t) {
            return Err(serde::de::Error::custom(format!(
                "{rule}; `{text}` is outside that range"
            )));
        }
        Ok(Rfc3339(crate::store::from_micros(crate::store::to_micros(t))))
    }
}

/// Deserializes a field that may be absent (outer `None`, with `#[serde(default)]`), `null`
/// (`Some(None)`) or a value (`Some(Some(v))`).
pub fn nullable<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The page token that continues after the row with sort key `key` and id `id`, under `order`
/// (e.g. `name:asc`).
pub fn page_token(order: &str, key: &SortKey, id: Uuid) -> String {
    let key = match key {
        SortKey::Text(text) => serde_json::Value::from(text.clone()),
        SortKey::Int(n) => serde_json::Value::from(*n),
    };
    Cursor {
        order: order.to_owned(),
        key,
        id: id.to_string(),
    }
    .encode()
}

/// Reads a page token issued for `order` back into a position; `text` says whether the ordering's
/// key is text (else a number).
pub fn decode_position(token: &str, order: &str, text: bool) -> Result<(SortKey, Uuid), ServiceError> {
    if text {
        decode_text_position(token, order).map(|(key, id)| (SortKey::Text(key), id))
    } else {
        decode_number_position(token, order).map(|(key, id)| (SortKey::Int(key), id))
    }
}

/// The position (a number key and an id) a page token of a list in `order` continues after.
pub fn decode_number_position(token: &str, order: &str) -> Result<(i64, Uuid), ServiceError> {
    let (key, id) = decode_cursor(token, order)?;
    Ok((key.as_i64().ok_or_else(foreign_token)?, id))
}

/// The position (a text key and an id) a page token of a list in `order` continues after.
pub fn decode_text_position(token: &str, order: &str) -> Result<(String, Uuid), ServiceError> {
    let (key, id) = decode_cursor(token, order)?;
    // A NUL never comes from a key this server issued (and PostgreSQL cannot compare with one).
    let text = key
        .as_str()
        .filter(|text| !text.contains('\0'))
        .ok_or_else(foreign_token)?;
    Ok((text.to_owned(), id))
}

/// The key and id of a page token of a list in `order`.
fn decode_cursor(token: &str, order: &str) -> Result<(serde_json::Value, Uuid), ServiceError> {
    let cursor = Cursor::decode(token, order).map_err(field("page_token"))?;
    let id = Uuid::parse_str(&cursor.id).map_err(|_| foreign_token())?;
    Ok((cursor.key, id))
}

/// The 400 for a page token this server did not issue.
fn foreign_token() -> ServiceError {
    ServiceError::Invalid("page_token: not a token this server issued; omit it to start from the first page".into())
}

/// Runs `work` to the end on its own task even when the caller stops waiting (a client that
/// hangs up), so a commit and the object clean-up that must follow it are never separated.
pub async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, ServiceError> {
    // In the request's span, so its log lines carry the request id too.
    tokio::spawn(tracing::Instrument::in_current_span(work))
        .await
        .context("a background task failed")?
}

/// One page of a list, with the token for the next page.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Pass as `page_token` to get the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows`, read with one row more than `limit` to learn whether more follow:
    /// the first `limit` of them as `view` makes them, and when more follow the token that
    /// `token_of` makes from the last one shown.
    pub fn of<R>(mut rows: Vec<R>, limit: u32, token_of: impl Fn(&R) -> String, view: impl FnMut(R) -> T) -> Self {
        let next_page_token = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(token_of)
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(view).collect(),
            next_page_token,
        }
    }

    /// The same page with each entry turned into another by `view`.
    pub fn map<U>(self, view: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(view).collect(),
            next_page_token: self.next_page_token,
        }
    }
}

/// A store function that removes up to `limit` rows older than `before` (microseconds since the
/// epoch) and answers how many it removed.
pub type DeleteBatch = for<'a> fn(
    &'a mut dyn crate::store::Db,
    i64,
    i64,
) -> futures::future::BoxFuture<'a, Result<u64, crate::store::StoreError>>;

/// Removes the rows older than `retention` with `delete`, `batch` at a time, one transaction per
/// batch (so a large backlog never holds the write lock long); answers how many went.
pub async fn remove_older_than(
    store: &crate::store::Store,
    retention: std::time::Duration,
    batch: i64,
    delete: DeleteBatch,
) -> Result<u64, crate::store::StoreError> {
    let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
    let before = crate::store::to_micros(
        time::OffsetDateTime::now_utc()
            .checked_sub(retention)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    );
    let mut removed = 0;
    loop {
        let mut tx = store.write().await?;
        let gone = delete(&mut tx, before, batch).await?;
        tx.commit().await?;
        removed += gone;
        if gone < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(removed);
        }
    }
}

/// Every use case, ready to share between the HTTP server, the CLI and workers.
#[derive(Clone)]
pub struct Services {
    /// The store the use cases run on.
    pub store: Store,
    /// Folder use cases.
    pub folders: folders::FolderService,
    /// Item use cases.
    pub items: items::ItemService,
    /// API key use cases.
    pub keys: keys::KeyService,
    /// User use cases.
    pub users: users::UserService,
    /// Group use cases.
    pub groups: groups::GroupService,
    /// Folder and bucket grants.
    pub grants: grants::GrantService,
    /// The audit log.
    pub audit: audit::AuditService,
    /// Quotas and usage.
    pub quotas: quotas::QuotaService,
    /// Job use cases.
    pub jobs: jobs::JobService,
    /// Bucket sync use cases.
    pub sync: sync::SyncService,
    /// The buckets this process can reach.
    pub buckets: Buckets,
    /// The trash.
    pub trash: trash::Trash,
    /// Video re-encodes.
    pub reencode: reencode::ReencodeService,
    /// The TTL sweep.
    pub expiry: expiry::ExpiryService,
    /// Imports of objects already in buckets.
    pub imports: imports::ImportService,
    /// Retries of jobs that did not fully succeed.
    pub retries: retries::RetryService,
    /// The job queues: overview, pause and resume.
    pub queues: queues::QueueService,
    /// Bulk actions on jobs.
    pub bulk_jobs: bulk_jobs::BulkJobService,
    /// Webhooks.
    pub webhooks: webhooks::WebhookService,
}

impl Services {
    /// Builds every use case over `store` and `buckets`, queueing jobs on `queue`. `shutdown`
    /// ends long polls and running jobs.
    pub fn new(
        store: Store,
        buckets: Buckets,
        queue: std::sync::Arc<dyn jobs::Enqueue>,
        settings: &crate::config::Settings,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let retry = jobs::RetryPolicy {
            max_attempts: settings.jobs.max_attempts.max(1),
            backoff: std::time::Duration::from_millis(settings.jobs.retry_backoff_ms),
            max_backoff: std::time::Duration::from_millis(settings.jobs.retry_backoff_max_ms),
        };
        let events = std::sync::Arc::new(jobs::events::JobEvents::default());
        let retention = std::time::Duration::from_secs(settings.trash.retention_seconds);
        let trash = trash::Trash::new(store.clone(), buckets.clone(), retention);
        let pauses = std::sync::Arc::new(jobs::pauses::Pauses::default());
        let queues = queues::QueueService::new(store.clone(), queue.clone(), pauses.clone());
        let jobs = jobs::JobService::new(store.clone(), events, queue, retry, pauses, shutdown);
        let reencode = reencode::ReencodeService::new(
            store.clone(),
            buckets.clone(),
            jobs.clone(),
            &settings.data_dir,
            settings.reencode.max_processes,
        );
        let sync = sync::SyncService::new(store.clone(), jobs.clone());
        let imports = imports::ImportService::new(
            store.clone(),
            buckets.clone(),
            jobs.clone(),
            settings.import.max_spec_bytes,
        );
        let retries = retries::RetryService::new(
            store.clone(),
            jobs.clone(),
            sync.clone(),
            imports.clone(),
            reencode.clone(),
        );
        Self {
            folders: folders::FolderService::new(
                store.clone(),
                trash.clone(),
                buckets.clone(),
                settings.sync.min_schedule_interval_seconds,
            ),
            items: items::ItemService::new(
                store.clone(),
                buckets.clone(),
                trash.clone(),
                items::UrlSigner::new(store.clone(), buckets.clone(), &settings.signed_urls),
            ),
            keys: keys::KeyService::new(store.clone()),
            users: users::UserService::new(store.clone()),
            webhooks: webhooks::WebhookService::new(store.clone(), settings.webhooks.allow_private_networks),
            groups: groups::GroupService::new(store.clone()),
            grants: grants::GrantService::new(store.clone(), buckets.clone()),
            quotas: quotas::QuotaService::new(store.clone()),
            audit: audit::AuditService::new(
                store.clone(),
                std::time::Duration::from_secs(settings.audit.retention_seconds),
            ),
            expiry: expiry::ExpiryService::new(
                store.clone(),
                trash.clone(),
                settings.expiry.action,
                settings.expiry.batch_size,
            ),
            bulk_jobs: bulk_jobs::BulkJobService::new(store.clone(), jobs.clone(), retries.clone()),
            retries,
            sync,
            imports,
            reencode,
            queues,
            jobs,
            trash,
            buckets,
            store,
        }
    }
}
