//! The composition root: opens the store, applies migrations, makes sure an admin key exists,
//! and runs the HTTP server under one shutdown token.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blobs::Buckets;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::services::Services;
use crate::store::{Store, StoreError};

/// Objects younger than this are never swept: they may belong to an upload still committing.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// How often the orphan sweep runs after the one at start-up.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Something else that stops start-up.
    #[error("{0}")]
    Startup(String),
}

impl AppError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AppError {
        let context = context.into();
        move |source| AppError::Io { context, source }
    }
}

/// Opens the store named by the settings and applies its migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// A server started by [`start`].
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Cancel to shut it down gracefully.
    pub shutdown: CancellationToken,
    /// Ends when the server has stopped.
    pub task: JoinHandle<Result<(), AppError>>,
    /// The use cases it serves, for callers that run in the same process.
    pub services: Services,
}

/// Starts everything `serve` runs and returns once it is listening.
pub async fn start(settings: Settings) -> Result<Running, AppError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(AppError::io(format!(
        "cannot create data_dir {}",
        settings.data_dir.display()
    )))?;
    let buckets = Buckets::open(&settings).map_err(|e| AppError::Startup(e.to_string()))?;
    let store = open_store(&settings).await?;
    let services = Services::new(store, buckets);
    if let Some(path) = services
        .keys
        .bootstrap_admin(&settings.data_dir)
        .await
        .map_err(|e| AppError::Startup(e.to_string()))?
    {
        tracing::info!(path = %path.display(), "created the first admin API key; read it from this file");
    }
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .map_err(AppError::io(format!("cannot listen on {}", settings.server.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(AppError::io("cannot read the listening address"))?;
    let router = http::router(
        AppState {
            services: services.clone(),
        },
        settings.server.max_body_bytes,
        usize::try_from(settings.server.max_upload_bytes).unwrap_or(usize::MAX),
    );
    let shutdown = CancellationToken::new();
    spawn_orphan_sweeps(services.clone(), shutdown.clone());
    let grace = Duration::from_secs(settings.server.shutdown_timeout_seconds);
    let token = shutdown.clone();
    let store = services.store.clone();
    let task = tokio::spawn(async move {
        let served = http::serve(listener, router, token, grace).await;
        store.close().await;
        served.map_err(AppError::io("HTTP server failed"))
    });
    tracing::info!(%addr, "stowage is listening");
    Ok(Running {
        addr,
        shutdown,
        task,
        services,
    })
}

/// Runs [`ItemService::sweep_orphans`](crate::services::items::ItemService::sweep_orphans) now
/// and then every [`SWEEP_INTERVAL`] until `shutdown`: what interrupted uploads and deletes left
/// in the managed bucket (temp files, objects no item points at) goes, once older than
/// [`ORPHAN_GRACE`].
fn spawn_orphan_sweeps(services: Services, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match services.items.sweep_orphans(ORPHAN_GRACE).await {
                Ok(swept) if swept.orphans + swept.incomplete_writes > 0 => tracing::info!(
                    orphans = swept.orphans,
                    incomplete_writes = swept.incomplete_writes,
                    "swept the managed bucket"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the orphan sweep failed; it runs again later"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    });
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully.
pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let running = start(settings).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown.cancel();
    running
        .task
        .await
        .map_err(|e| AppError::Startup(format!("server task failed: {e}")))?
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
