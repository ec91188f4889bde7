//! The composition root: opens the store and the queue, makes sure an admin key exists, and
//! runs the roles of this process (HTTP API, workers and scheduler) under one shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::background::{self, FirstRound, Periodic};
use crate::blobs::{BlobError, Buckets};
use crate::config::{ConfigError, Settings};
use crate::domain::job::JobKind;
use crate::http::{self, AppState};
use crate::queue::workers::Workers;
use crate::queue::{Queue, QueueError, scheduler};
use crate::services::audit::{AuditRetention, RETENTION_EVERY};
use crate::services::imports::runner::ImportRunner;
use crate::services::items::{OrphanSweep, SWEEP_INTERVAL};
use crate::services::jobs::noop::NoopRunner;
use crate::services::jobs::pauses::{self, PauseRefresh};
use crate::services::jobs::retention::{JobRetention, RETENTION_EVERY as JOB_RETENTION_EVERY};
use crate::services::jobs::{Runner, relay};
use crate::services::keys::{KeyUseRecorder, USE_FLUSH_EVERY};
use crate::services::quotas::{RECOUNT_EVERY, TALLY_FOLD_EVERY, TallyFold, UsageRecount};
use crate::services::stars::{CLEANUP_EVERY, StarCleanup};
use crate::services::sync::SyncRunner;
use crate::services::webhooks::deliver::Deliverer;
use crate::services::{ServiceError, Services};
use crate::store::{Dialect, Store, StoreError};
use crate::watch;

/// Why the process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The job queue could not be opened.
    #[error("{0}")]
    Queue(#[from] QueueError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configured bucket cannot be opened.
    #[error("{0}")]
    Buckets(#[from] BlobError),
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The first admin key cannot be made.
    #[error("cannot create the first admin key: {0}")]
    AdminKey(#[source] ServiceError),
    /// A task of the process panicked or was aborted.
    #[error("{what} failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// How it ended.
        source: tokio::task::JoinError,
    },
}

impl AppError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AppError {
        let context = context.into();
        move |source| AppError::Io { context, source }
    }
}

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The HTTP API.
    pub http: bool,
    /// Job workers and the scheduler.
    pub workers: bool,
}

impl Roles {
    /// `stowage serve`: everything in one process.
    pub const ALL: Roles = Roles {
        http: true,
        workers: true,
    };
}

/// Connections the kernel queues for a listener before it accepts them: room for a thousand
/// clients that connect at once (long polls woken together reconnect together) without the
/// kernel taking them for a SYN flood and dropping some.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener on `addr` with [`LISTEN_BACKLOG`].
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens the store named by the settings and applies its migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// The job kinds this build can run, with their runners.
fn runners(services: &Services, settings: &Settings) -> Vec<(JobKind, Arc<dyn Runner>)> {
    let sync = SyncRunner::new(
        services.store.clone(),
        services.buckets.clone(),
        settings.sync.hash_concurrency,
        settings.sync.pause_schedule_after_failures,
    );
    vec![
        (JobKind::Noop, Arc::new(NoopRunner)),
        (JobKind::Sync, Arc::new(sync)),
        (JobKind::Reencode, Arc::new(services.reencode.clone())),
        (JobKind::Expiry, Arc::new(services.expiry.clone())),
        (
            JobKind::Import,
            Arc::new(ImportRunner::new(
                services.store.clone(),
                services.buckets.clone(),
                settings.import.unit_concurrency,
                services.reencode.clone(),
            )),
        ),
    ]
}

/// A process started by [`start`].
pub struct Running {
    /// The HTTP address (useful with port 0), when the process serves HTTP.
    pub addr: Option<SocketAddr>,
    /// The address of `metrics.listen`, when it is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Cancel to shut everything down gracefully.
    pub shutdown: CancellationToken,
    /// Ends when everything has stopped.
    pub task: JoinHandle<Result<(), AppError>>,
    /// The use cases it runs, for callers in the same process.
    pub services: Services,
}

/// Starts the roles of this process and returns once they run.
pub async fn start(settings: Settings, roles: Roles) -> Result<Running, AppError> {
    // Before anything counts: what is recorded before the recorder exists is lost.
    crate::metrics::recorder();
    std::fs::create_dir_all(&settings.data_dir).map_err(AppError::io(format!(
        "cannot create data_dir {}",
        settings.data_dir.display()
    )))?;
    let buckets = Buckets::open(&settings)?;
    let expiry_schedule = settings.expiry_schedule()?;
    let store = open_store(&settings).await?;
    let queue = Queue::connect(&settings.database, &settings.jobs).await?;
    let shutdown = CancellationToken::new();
    let services = Services::new(
        store.clone(),
        buckets,
        Arc::new(queue.clone()),
        &settings,
        shutdown.clone(),
    );
    if let Some(path) = services
        .keys
        .bootstrap_admin(&settings.data_dir)
        .await
        .map_err(AppError::AdminKey)?
    {
        tracing::info!(path = %path.display(), "created the first admin API key; read it from this file");
    }

    let mut background = tokio::task::JoinSet::new();
    background.spawn(background::every(
        crate::metrics::Upkeep,
        crate::metrics::UPKEEP_EVERY,
        FirstRound::AfterPeriod,
        shutdown.clone(),
    ));
    background.spawn(background::every(
        OrphanSweep::new(services.items.clone()),
        SWEEP_INTERVAL,
        FirstRound::AtStart,
        shutdown.clone(),
    ));
    let hub = Arc::clone(services.jobs.events());
    if store.dialect() == Dialect::Postgres {
        background.spawn(relay::relay_notifications(
            settings.database.url.clone(),
            Arc::clone(&hub),
            shutdown.clone(),
        ));
        background.spawn(background::every(
            TallyFold(store.clone()),
            TALLY_FOLD_EVERY,
            FirstRound::AfterPeriod,
            shutdown.clone(),
        ));
    }
    background.spawn(background::every(
        KeyUseRecorder(services.keys.clone()),
        USE_FLUSH_EVERY,
        FirstRound::AfterPeriod,
        shutdown.clone(),
    ));
    let recheck = Duration::from_millis(settings.jobs.recheck_interval_ms.max(100));
    background.spawn(relay::recheck(store.clone(), hub, recheck, shutdown.clone()));

    if roles.workers {
        // Know what is paused before any worker fetches, then follow changes made elsewhere.
        let mut refresh = PauseRefresh {
            store: store.clone(),
            pauses: Arc::clone(services.jobs.pauses()),
        };
        refresh.round().await;
        background.spawn(background::every(
            refresh,
            pauses::REFRESH,
            FirstRound::AfterPeriod,
            shutdown.clone(),
        ));
    }
    let workers = roles.workers.then(|| {
        background.spawn(background::every(
            AuditRetention(services.audit.clone()),
            RETENTION_EVERY,
            FirstRound::AtStart,
            shutdown.clone(),
        ));
        background.spawn(background::every(
            JobRetention {
                store: store.clone(),
                retention: Duration::from_secs(settings.jobs.retention_seconds),
            },
            JOB_RETENTION_EVERY,
            FirstRound::AtStart,
            shutdown.clone(),
        ));
        match Deliverer::new(store.clone(), settings.webhooks.clone()) {
            Ok(deliverer) => {
                background.spawn(background::every(
                    deliverer,
                    Duration::from_millis(settings.webhooks.poll_interval_ms.max(10)),
                    FirstRound::AtStart,
                    shutdown.clone(),
                ));
            }
            Err(error) => tracing::error!(error = %crate::telemetry::ErrorChain(&error), "webhooks are not delivered"),
        }
        background.spawn(background::every(
            StarCleanup(store.clone()),
            CLEANUP_EVERY,
            FirstRound::AtStart,
            shutdown.clone(),
        ));
        background.spawn(background::every(
            UsageRecount(services.quotas.clone()),
            RECOUNT_EVERY,
            FirstRound::AfterPeriod,
            shutdown.clone(),
        ));
        background.spawn(scheduler::run(
            store.clone(),
            services.jobs.clone(),
            expiry_schedule,
            shutdown.clone(),
        ));
        for watcher in watch::start(&services, &settings, &shutdown) {
            background.spawn(async move {
                let _ = watcher.await;
            });
        }
        Workers::start(
            queue.clone(),
            store.clone(),
            services.jobs.clone(),
            runners(&services, &settings),
            shutdown.clone(),
        )
    });

    let mut addr = None;
    let shared = Arc::new(services.clone());
    let metrics_token: Option<Arc<str>> = Some(settings.metrics.token.as_str())
        .filter(|t| !t.is_empty())
        .map(Arc::from);
    let mut metrics_addr = None;
    if let Some(listen) = settings.metrics.listen {
        let listener =
            listen_on(listen).map_err(AppError::io(format!("cannot listen on {listen} (metrics.listen)")))?;
        let bound = listener
            .local_addr()
            .map_err(AppError::io("cannot read the metrics listening address"))?;
        let router = http::metrics_router(AppState {
            services: Arc::clone(&shared),
            metrics_token: metrics_token.clone(),
        });
        let grace = Duration::from_secs(settings.server.shutdown_timeout_seconds);
        let token = shutdown.clone();
        background.spawn(async move {
            if let Err(error) = http::serve(listener, router, token, grace).await {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
        tracing::info!(addr = %bound, "metrics are served");
        metrics_addr = Some(bound);
    }
    let mut http_task = None;
    if roles.http {
        let listener = listen_on(settings.server.listen)
            .map_err(AppError::io(format!("cannot listen on {}", settings.server.listen)))?;
        let bound = listener
            .local_addr()
            .map_err(AppError::io("cannot read the listening address"))?;
        let router = http::router(
            AppState {
                services: Arc::clone(&shared),
                metrics_token,
            },
            settings.server.max_body_bytes,
            usize::try_from(settings.server.max_upload_bytes).unwrap_or(usize::MAX),
        );
        let grace = Duration::from_secs(settings.server.shutdown_timeout_seconds);
        http_task = Some(tokio::spawn(http::serve(listener, router, shutdown.clone(), grace)));
        tracing::info!(addr = %bound, "stowage is listening");
        addr = Some(bound);
    }
    if roles.workers {
        tracing::info!("job workers and scheduler are running");
    }

    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        token.cancelled().await;
        let served = match http_task {
            Some(task) => task.await.map_err(|source| AppError::Task {
                what: "the HTTP task",
                source,
            })?,
            None => Ok(()),
        };
        if let Some(workers) = workers {
            workers.stopped().await;
        }
        while background.join_next().await.is_some() {}
        queue.close().await;
        store.close().await;
        served.map_err(AppError::io("HTTP server failed"))
    });
    Ok(Running {
        addr,
        metrics_addr,
        shutdown,
        task,
        services,
    })
}

/// Runs `roles` until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run_until_signal(settings: Settings, roles: Roles) -> Result<(), AppError> {
    let running = start(settings, roles).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown.cancel();
    running.task.await.map_err(|source| AppError::Task {
        what: "shutdown",
        source,
    })?
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
