//! This process's view of which job kinds are paused: updated at once by a pause or resume
//! made here, and every [`REFRESH`] from the database for those made by other processes. The
//! queue workers pause and resume their fetching by it; a job that a worker fetched just
//! before it heard of a pause waits here until its kind is resumed (the database refuses to
//! start it meanwhile).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::background::Periodic;
use crate::domain::job::JobKind;
use crate::store::{Store, pauses};

/// How often every process re-reads the paused kinds.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The paused kinds as this process knows them.
#[derive(Debug)]
pub struct Pauses {
    paused: watch::Sender<BTreeSet<JobKind>>,
}

impl Default for Pauses {
    fn default() -> Self {
        Self {
            paused: watch::Sender::new(BTreeSet::new()),
        }
    }
}

impl Pauses {
    /// Records what the database says is paused.
    pub fn set(&self, kinds: BTreeSet<JobKind>) {
        self.paused.send_if_modified(|now| {
            let changed = *now != kinds;
            *now = kinds;
            changed
        });
    }

    /// Records that `kind` was paused (`true`) or resumed here.
    pub fn set_one(&self, kind: JobKind, paused: bool) {
        self.paused
            .send_if_modified(|now| if paused { now.insert(kind) } else { now.remove(&kind) });
    }

    /// Waits until `kind` is not paused (true) or `shutdown` (false). A resume made in another
    /// process is noticed at the next refresh.
    pub async fn until_resumed(&self, kind: JobKind, shutdown: &CancellationToken) -> bool {
        let mut changes = self.paused.subscribe();
        tokio::select! {
            resumed = changes.wait_for(|paused| !paused.contains(&kind)) => resumed.is_ok(),
            () = shutdown.cancelled() => false,
        }
    }
}

/// Re-reads the paused kinds into [`Pauses`] each round.
pub struct PauseRefresh {
    /// Where pauses are kept.
    pub store: Store,
    /// What to update.
    pub pauses: Arc<Pauses>,
}

impl Periodic for PauseRefresh {
    async fn round(&mut self) {
        let read = async {
            let mut conn = self.store.read().await?;
            pauses::paused(&mut conn).await
        };
        match read.await {
            Ok(paused) => self.pauses.set(paused.into_iter().map(|p| p.kind).collect()),
            Err(error) => tracing::warn!(%error, "cannot read which job kinds are paused"),
        }
    }
}
