//! The metadata store: the catalog and job records, in SQLite (embedded default) or PostgreSQL.
//!
//! One SQL code path serves both through sqlx's Any driver; the schema therefore uses only the
//! types both share (TEXT ids and JSON, BIGINT timestamps in microseconds, BIGINT 0/1 flags).
//! Dialect differences stay inside `store`: this file decides how a write transaction begins
//! and how the folder tree is locked; a table's file asks its [`Db`] handle for the
//! [`Dialect`] where one statement must differ (`SKIP LOCKED`, JSON aggregation, `EXPLAIN`).
//! Nothing outside `store` sees sqlx or branches on the dialect, except the composition root
//! choosing PostgreSQL's notification listener.

pub mod audit;
pub mod clauses;
pub mod expiry;
pub mod folders;
pub mod imports;
pub mod item_pages;
pub mod items;
pub mod jobs;
pub mod keys;
pub mod pauses;
pub mod rows;
pub mod secrets;
pub mod sql;
pub mod stars;
pub mod sync;
pub mod tallies;
pub mod teams;
pub mod trash;
pub mod turns;
pub mod uploads;
pub mod usage;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{Any, AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Executor};
use time::OffsetDateTime;

use crate::config::DatabaseSettings;

/// What every store function runs its statements on: a read connection ([`Conn`]) or a write
/// transaction ([`Tx`]), each knowing its engine's [`Dialect`]. Services pass `&mut conn` or
/// `&mut tx` along and never see the driver; dialect differences stay inside this module.
pub trait Db: Send {
    /// The driver connection underneath, for the store's own statements.
    fn conn(&mut self) -> &mut AnyConnection;
    /// Which engine the connection talks to.
    fn dialect(&self) -> Dialect;
}

/// A pooled connection for reads (and single autocommit statements).
pub struct Conn {
    inner: PoolConnection<Any>,
    dialect: Dialect,
}

impl Db for Conn {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// A write transaction on the store: use it as a connection (`&mut tx`), end it with
/// [`commit`](Tx::commit); dropped without a commit, it rolls back. On SQLite it holds this
/// process's [`turns::Turn`] at the write lock until it ends.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
    _turn: Option<turns::Turn>,
}

impl Db for Tx {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl Tx {
    /// Makes the transaction's changes permanent.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.inner.commit().await?)
    }
}

/// A read-only transaction that sees the database as it was when it began, however long it
/// lasts and whatever commits meanwhile (REPEATABLE READ on PostgreSQL; on SQLite in WAL mode a
/// deferred transaction, whose snapshot is taken at its first read). Dropped, it rolls back.
pub struct Snapshot {
    inner: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
}

impl Db for Snapshot {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// Why a store operation failed. Every variant keeps the error it came from as its source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule would be broken.
    #[error("conflict: {0}")]
    Conflict(#[source] sqlx::Error),
    /// The database cannot be reached, or its write lock stayed busy past the busy timeout.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// This process's writers queued longer than the busy timeout for their turn.
    #[error("database busy: {0}")]
    Busy(#[from] turns::TurnTimedOut),
    /// `database.url` cannot be used.
    #[error("bad database.url: {0}")]
    BadUrl(#[source] sqlx::Error),
    /// The SQLite file's directory cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what the schema promises.
    #[error("stored {what} cannot be read: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A change would take a folder's or a user's usage past their quota; the message names
    /// the quota, the usage and the limit.
    #[error(transparent)]
    QuotaExceeded(#[from] crate::domain::quota::QuotaExceeded),
    /// Any other database error; its message is for logs, not for clients.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether the database (not the request) is the trouble, so retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }

    /// What the database itself said, for a rule it refused (e.g. which uniqueness rule a
    /// conflict broke); the whole error otherwise.
    pub fn database_message(&self) -> String {
        match self {
            StoreError::Conflict(sqlx::Error::Database(db)) | StoreError::Database(sqlx::Error::Database(db)) => {
                db.message().to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Sorts a failed statement by what callers do about it, and counts it (a row not found
    /// is an answer, not a failure).
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let sorted = match &err {
            sqlx::Error::RowNotFound => return StoreError::NotFound,
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => StoreError::Conflict(err),
                _ if is_busy(db.message()) => StoreError::Unavailable(err),
                _ => StoreError::Database(err),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(err)
            }
            _ => StoreError::Database(err),
        };
        crate::metrics::db_error(match sorted {
            StoreError::Conflict(_) => "conflict",
            StoreError::Unavailable(_) => "unavailable",
            _ => "error",
        });
        sorted
    }
}

/// SQLite's "database is locked" family: the busy timeout ran out.
fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// How many times [`retry_while_locked`] runs its work.
const LOCKED_TRIES: u64 = 5;

/// Runs `work` (migrations, say) again, 200 ms later each time and at most 5 times, while it
/// fails because SQLite says the database is locked: a process starting beside one that writes
/// to the same file can find it changed inside a migration's transaction, which fails at once
/// whatever the busy timeout. `what` names the work in the log.
pub(crate) async fn retry_while_locked<T, E, F>(what: &str, mut work: impl FnMut() -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match work().await {
            Err(error) if tries < LOCKED_TRIES && is_busy(&error.to_string()) => {
                tracing::warn!(%error, "{what} found the database locked; trying again");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default.
    Sqlite,
    /// The scale-out backend.
    Postgres,
}

impl Dialect {
    /// What ends a `SELECT` in a subquery that picks rows to change, so that concurrent changers
    /// (several sweeps at once) split the rows instead of queueing on each other's locks:
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on SQLite, whose writers take turns.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// An expression that makes a random (version 4) UUID as text, one per row.
    pub fn random_uuid(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) \
                 || '-' || substr('89AB', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' \
                 || hex(randomblob(6)))"
            }
            Dialect::Postgres => "gen_random_uuid()::text",
        }
    }

    /// The JSON `false`, for [`Dialect::json_object`].
    pub fn json_false(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json('false')",
            Dialect::Postgres => "false",
        }
    }

    /// An expression that makes a JSON object as text from `fields` (name, SQL expression) and
    /// `constants` (name, string). Names and constants are the program's own, never a user's.
    pub fn json_object(self, fields: &[(&str, &str)], constants: &[(&str, &str)]) -> String {
        let pairs: Vec<String> = fields
            .iter()
            .map(|(name, expr)| format!("'{name}', {expr}"))
            .chain(constants.iter().map(|(name, value)| format!("'{name}', '{value}'")))
            .collect();
        match self {
            Dialect::Sqlite => format!("json_object({})", pairs.join(", ")),
            Dialect::Postgres => format!("json_build_object({})::text", pairs.join(", ")),
        }
    }

    /// What ends a `SELECT` of a row the transaction goes on to check and change, so that
    /// concurrent transactions doing the same queue: `FOR UPDATE` on PostgreSQL; nothing on
    /// SQLite, whose writers take turns.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// How a write transaction holds the folder tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeLock {
    /// Adds below existing folders (creates): many at once.
    Shared,
    /// Rewrites paths or removes subtrees (rename, move, delete): alone.
    Exclusive,
}

/// The key of PostgreSQL's advisory lock that guards the folder tree's paths.
const TREE_LOCK_KEY: i64 = 0x5354_4f57_0001;

/// The handle every service uses to reach the database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// This process's queue at SQLite's write lock (unused on PostgreSQL, whose writers do not
    /// share one lock).
    turns: turns::WriteTurns,
}

impl Store {
    /// The pool's connections now: in use, idle.
    pub fn pool_connections(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size().saturating_sub(idle), idle)
    }

    /// Opens a pool for `settings.url`, creating the SQLite file and its directory when needed.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if settings.url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let mut url = settings.url.clone();
        if dialect == Dialect::Sqlite {
            prepare_sqlite_file(&url)?;
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url).map_err(StoreError::BadUrl)?;
        let busy_timeout_ms = settings.busy_timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        // A checkpoint every 8,192 pages of WAL (32 MiB at SQLite's default 4 KiB
                        // page) rather than 1,000: a sync's batches of 2,000 new rows touch pages
                        // all over the item table and its indexes, and checkpointing them batch
                        // after batch cost an initial sync 5-8% of its wall time. (A bigger page
                        // cache made no measurable difference.)
                        let pragmas = format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA wal_autocheckpoint = 8192;"
                        );
                        conn.execute(AssertSqlSafe(pragmas)).await?;
                    } else {
                        // No JIT compilation: the catalog's statements are short, but a
                        // folder-by-folder list over a thousand folders is estimated costly
                        // enough to be compiled first, which took 200-400 ms of a 15 ms list
                        // (PostgreSQL 15, 2026-12-07).
                        conn.execute("SET jit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            dialect,
            turns: turns::WriteTurns::new(Duration::from_millis(busy_timeout_ms)),
        })
    }

    /// Applies the catalog's migrations. Their history lives in `_stowage_migrations`, so the job
    /// queue's own migrations in the same database never collide with them.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.dangerous_set_table_name("_stowage_migrations");
        migrator.set_ignore_missing(true);
        Ok(retry_while_locked("the catalog's migrations", || migrator.run(&self.pool)).await?)
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<Conn, StoreError> {
        Ok(Conn {
            inner: self.pool.acquire().await?,
            dialect: self.dialect,
        })
    }

    /// A write transaction. On SQLite it first waits for this process's turn at the write lock
    /// (see [`turns`]), then takes the lock up front (`BEGIN IMMEDIATE`), so writers of other
    /// processes queue on the busy timeout instead of failing on lock upgrade.
    pub async fn write(&self) -> Result<Tx, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => {
                let turn = self.turns.take().await?;
                Tx {
                    inner: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    dialect: self.dialect,
                    _turn: Some(turn),
                }
            }
            Dialect::Postgres => Tx {
                inner: self.pool.begin().await?,
                dialect: self.dialect,
                _turn: None,
            },
        })
    }

    /// A [`Snapshot`] for reads that must agree with each other (an export of a whole subtree).
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let begin = match self.dialect {
            Dialect::Sqlite => "BEGIN DEFERRED",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        };
        Ok(Snapshot {
            inner: self.pool.begin_with(begin).await?,
            dialect: self.dialect,
        })
    }

    /// A write transaction that also holds the folder tree, so paths read inside it stay true
    /// until it commits. SQLite already serializes writers; PostgreSQL takes an advisory lock.
    pub async fn write_tree(&self, lock: TreeLock) -> Result<Tx, StoreError> {
        let mut tx = self.write().await?;
        if self.dialect == Dialect::Postgres {
            let function = match lock {
                TreeLock::Shared => "pg_advisory_xact_lock_shared",
                TreeLock::Exclusive => "pg_advisory_xact_lock",
            };
            let mut sql = sql::Sql::new(&format!("SELECT 1 AS locked FROM (SELECT {function}("));
            sql.bind(TREE_LOCK_KEY).push(")) AS l");
            sql.build().execute(tx.conn()).await?;
        }
        Ok(tx)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the directory of an SQLite database file.
fn prepare_sqlite_file(url: &str) -> Result<(), StoreError> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// The file of an SQLite `database.url` (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

/// The current time in the store's representation, microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

/// Converts a time to microseconds since the Unix epoch.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Converts microseconds since the Unix epoch to a time.
pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn versions(dialect: &str) -> BTreeSet<String> {
        let dir = format!("{}/migrations/{dialect}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_dir(dir)
            .expect("migrations directory")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.split('_').next())
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn both_dialects_hold_the_same_migration_versions() {
        let sqlite = versions("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, versions("postgres"));
    }
}
