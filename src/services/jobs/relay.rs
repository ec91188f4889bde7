//! Feeds the change hub from outside this process: PostgreSQL notifications, and a slow
//! re-check of every watched job (one query for all of them) for notifications that were lost
//! or never sent (other processes on SQLite).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::events::JobEvents;
use crate::background::{self, FirstRound, Periodic, until_shutdown};
use crate::store::{Store, jobs};

/// How long a lost notification listener waits before it connects again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Relays job change notifications from PostgreSQL at `url` into `hub` until shutdown,
/// reconnecting after errors.
pub async fn relay_notifications(url: String, hub: Arc<JobEvents>, shutdown: CancellationToken) {
    background::restarting("job notification listener", RECONNECT_DELAY, shutdown, |shutdown| {
        let (url, hub) = (url.clone(), Arc::clone(&hub));
        async move {
            let listened = jobs::listen_for_changes(&url, |id, version| hub.publish(id, version));
            until_shutdown(listened, &shutdown).await
        }
    })
    .await;
}

/// Every `every`, reads the versions of all watched jobs in one query and publishes them.
pub async fn recheck(store: Store, hub: Arc<JobEvents>, every: Duration, shutdown: CancellationToken) {
    background::every(Recheck { store, hub }, every, FirstRound::AfterPeriod, shutdown).await;
}

/// The re-check of watched jobs, one round per query.
struct Recheck {
    store: Store,
    hub: Arc<JobEvents>,
}

impl Periodic for Recheck {
    async fn round(&mut self) {
        let watched = self.hub.watched();
        if watched.is_empty() {
            return;
        }
        let versions = match self.store.read().await {
            Ok(mut conn) => jobs::versions(&mut conn, &watched).await,
            Err(e) => Err(e),
        };
        match versions {
            Ok(versions) => versions
                .into_iter()
                .for_each(|(id, version)| self.hub.publish(id, version)),
            Err(e) => tracing::warn!(error = %e, "could not re-check watched jobs"),
        }
    }
}
