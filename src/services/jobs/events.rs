//! Wakes long-polling waiters when a job changes, without polling the database in a loop.
//!
//! One watch channel per watched job holds its latest known version. Changes made in this
//! process publish directly; on PostgreSQL a LISTEN task publishes what other processes
//! announce; a slow re-check (one query for all watched jobs) covers lost notifications and
//! other processes on SQLite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use uuid::Uuid;

/// The hub of job change notifications for this process.
#[derive(Default)]
pub struct JobEvents {
    channels: Mutex<HashMap<Uuid, watch::Sender<i64>>>,
}

/// A subscription to one job's versions; dropping it stops watching when nobody else does.
pub struct Subscription {
    hub: Arc<JobEvents>,
    job: Uuid,
    rx: watch::Receiver<i64>,
}

impl JobEvents {
    fn channels(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<i64>>> {
        // A poisoned lock only means another waiter panicked; the map itself stays usable.
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts watching `job`.
    pub fn subscribe(self: &Arc<Self>, job: Uuid) -> Subscription {
        let rx = self
            .channels()
            .entry(job)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            hub: Arc::clone(self),
            job,
            rx,
        }
    }

    /// Records that `job` reached `version`, waking its waiters if that is news.
    pub fn publish(&self, job: Uuid, version: i64) {
        if let Some(tx) = self.channels().get(&job) {
            tx.send_if_modified(|known| {
                let newer = version > *known;
                if newer {
                    *known = version;
                }
                newer
            });
        }
    }

    /// The jobs someone is waiting on.
    pub fn watched(&self) -> Vec<Uuid> {
        self.channels().keys().copied().collect()
    }
}

impl Subscription {
    /// Waits until the job's version moves past `version`. Never returns if it does not; wrap
    /// it in a timeout.
    pub async fn changed_past(&mut self, version: i64) {
        // The sender lives in the hub as long as this subscription does, so this only ends on a change.
        let _ = self.rx.wait_for(|known| *known > version).await;
    }

    /// Waits until a change arrives that was not seen yet, and leaves it unseen for
    /// [`has_news`](Self::has_news).
    pub async fn news(&mut self) {
        // The sender lives in the hub as long as this subscription does, so this only ends on a change.
        if self.rx.changed().await.is_ok() {
            self.rx.mark_changed();
        }
    }

    /// Marks the changes up to `version` as seen (the caller's own write); a newer one that
    /// arrived meanwhile stays news.
    pub fn seen_up_to(&mut self, version: i64) {
        let latest = *self.rx.borrow_and_update();
        if latest > version {
            self.rx.mark_changed();
        }
    }

    /// Whether a change arrived since the last call, marking it seen.
    pub fn has_news(&mut self) -> bool {
        let news = self.rx.has_changed().unwrap_or(false);
        if news {
            self.rx.mark_unchanged();
        }
        news
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.channels();
        if channels.get(&self.job).is_some_and(|tx| tx.receiver_count() <= 1) {
            channels.remove(&self.job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_newer_versions_only() {
        let hub = Arc::new(JobEvents::default());
        let job = Uuid::now_v7();
        let mut sub = hub.subscribe(job);
        hub.publish(job, 3);
        hub.publish(job, 2);
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.changed_past(2))
            .await
            .expect("version 3 is past 2");
        let still = tokio::time::timeout(std::time::Duration::from_millis(50), sub.changed_past(3)).await;
        assert!(still.is_err(), "nothing newer than 3 arrived");
        assert_eq!(hub.watched(), [job]);
        // An own write marks only itself seen: a newer change stays news.
        hub.publish(job, 5);
        sub.seen_up_to(4);
        assert!(sub.has_news(), "version 5 is newer than the write at 4");
        hub.publish(job, 6);
        sub.seen_up_to(6);
        assert!(!sub.has_news());
        // Waiting for news leaves it news.
        hub.publish(job, 7);
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.news())
            .await
            .expect("version 7 is news");
        assert!(sub.has_news(), "news() only waits");
        drop(sub);
        assert!(hub.watched().is_empty(), "an unwatched job leaves the hub");
    }
}
