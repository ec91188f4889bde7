//! Feeds the change hub from outside this process: PostgreSQL notifications, and a slow
//! re-check of every watched job (one query for all of them) for notifications that were lost
//! or never sent (other processes on SQLite).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::JobEvents;
use crate::store::{Store, jobs};

/// Relays `NOTIFY stowage_job` from PostgreSQL at `url` into `hub` until shutdown, reconnecting
/// after errors.
pub async fn relay_notifications(url: String, hub: Arc<JobEvents>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let listened = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(jobs::CHANNEL).await?;
            loop {
                let note = listener.recv().await?;
                if let Some((id, version)) = note.payload().split_once(':')
                    && let (Ok(id), Ok(version)) = (Uuid::parse_str(id), version.parse::<i64>())
                {
                    hub.publish(id, version);
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = listened => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "lost the job notification listener; reconnecting");
                }
            }
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Every `every`, reads the versions of all watched jobs in one query and publishes them.
pub async fn recheck(store: Store, hub: Arc<JobEvents>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let watched = hub.watched();
        if watched.is_empty() {
            continue;
        }
        let versions = match store.read().await {
            Ok(mut conn) => jobs::versions(&mut conn, &watched).await,
            Err(e) => Err(e),
        };
        match versions {
            Ok(versions) => versions.into_iter().for_each(|(id, version)| hub.publish(id, version)),
            Err(e) => tracing::warn!(error = %e, "could not re-check watched jobs"),
        }
    }
}
