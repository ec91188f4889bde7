//! Fair turns at SQLite's one write lock.
//!
//! SQLite lets one connection write at a time; a connection that finds the lock taken sleeps in
//! its busy handler (up to 100 ms a try) until `busy_timeout` runs out. A writer with more to
//! write (a sync's batches, an import's units) takes the lock again microseconds after each
//! commit, so sleepers rarely find it free: API writes waited seconds, and the job queue's
//! fetches and heartbeats (apalis keeps its own pool) failed on the busy timeout, which stops a
//! worker. Measured during a million-file sync: waits of up to 4.6 s of the 5 s timeout.
//!
//! So every write transaction of this process takes a [`Turn`] first: writers queue in arrival
//! order (a fair mutex), which bounds an API write's wait to the transactions ahead of it; and
//! when this process's writers have held the lock back to back for [`BUDGET`], the next turn
//! starts only after the lock was left free for [`PAUSE`], long enough for every busy handler
//! sleeping elsewhere (the queue's connections, other processes) to get in. Writers outside
//! these turns (autocommit statements on read connections) wait on the busy handler as before.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

/// How long this process's writers may hold the lock back to back before leaving it free.
pub const BUDGET: Duration = Duration::from_secs(2);
/// How long the lock is then left free: past SQLite's longest busy-handler sleep (100 ms).
pub const PAUSE: Duration = Duration::from_millis(120);

/// When the lock was taken and left by this process's writers.
struct Holding {
    /// Since when they have held it without leaving it free for a [`PAUSE`].
    since: Instant,
    /// When the last turn ended.
    released: Instant,
}

impl Holding {
    /// Starts a turn at `now`: answers until when the lock must first be left free (the
    /// writers held it back to back for `budget`), or `None` to go at once. A lock that was
    /// left free for `pause` starts a new stretch.
    fn start(&mut self, now: Instant, budget: Duration, pause: Duration) -> Option<Instant> {
        if now.duration_since(self.released) >= pause {
            self.since = now;
            None
        } else if now.duration_since(self.since) >= budget {
            Some(self.released + pause)
        } else {
            None
        }
    }
}

/// The queue of this process's writers; clones share it.
#[derive(Clone)]
pub struct WriteTurns {
    holding: Arc<Mutex<Holding>>,
    /// How long a writer waits for its turn before giving up (`database.busy_timeout_ms`, as
    /// for the lock itself).
    patience: Duration,
}

/// A writer waited longer than its patience for its turn.
#[derive(Debug, thiserror::Error)]
#[error("waited {0:?} for a turn at the database's write lock")]
pub struct TurnTimedOut(pub Duration);

/// One writer's turn, held for one transaction; the next writer's turn starts when it drops.
pub struct Turn {
    holding: OwnedMutexGuard<Holding>,
}

impl WriteTurns {
    /// A queue whose writers wait at most `patience` for their turn.
    pub fn new(patience: Duration) -> Self {
        let now = Instant::now();
        Self {
            holding: Arc::new(Mutex::new(Holding {
                since: now,
                released: now,
            })),
            patience,
        }
    }

    /// Waits for this writer's turn (in arrival order), and for the lock's pause when the
    /// writers before it used up the budget.
    pub async fn take(&self) -> Result<Turn, TurnTimedOut> {
        tokio::time::timeout(self.patience, self.queue())
            .await
            .map_err(|_| TurnTimedOut(self.patience))
    }

    async fn queue(&self) -> Turn {
        let mut holding = Arc::clone(&self.holding).lock_owned().await;
        if let Some(free_until) = holding.start(Instant::now(), BUDGET, PAUSE) {
            tokio::time::sleep_until(free_until).await;
            holding.since = Instant::now();
        }
        Turn { holding }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.holding.released = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns() -> WriteTurns {
        WriteTurns::new(Duration::from_secs(60))
    }

    #[test]
    fn back_to_back_turns_leave_the_lock_free_after_the_budget() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut holding = Holding {
            since: t0,
            released: t0,
        };
        // Turns of 50 ms, each taken 1 ms after the last one ended.
        let mut at = 0;
        let waited = loop {
            at += 1;
            if let Some(free_until) = holding.start(ms(at), BUDGET, PAUSE) {
                break (at, free_until);
            }
            at += 50;
            holding.released = ms(at);
        };
        assert!(
            Duration::from_millis(waited.0) >= BUDGET,
            "not before the budget: {waited:?}"
        );
        assert!(Duration::from_millis(waited.0) < BUDGET + Duration::from_millis(52));
        assert_eq!(
            waited.1,
            holding.released + PAUSE,
            "free for the pause after the last turn"
        );
    }

    #[test]
    fn writers_that_leave_the_lock_free_never_wait() {
        let t0 = Instant::now();
        let mut holding = Holding {
            since: t0,
            released: t0,
        };
        let mut at = t0;
        for _ in 0..100 {
            at += PAUSE;
            assert_eq!(holding.start(at, BUDGET, PAUSE), None);
            at += Duration::from_millis(50);
            holding.released = at;
        }
    }

    #[tokio::test]
    async fn a_writer_gives_up_after_its_patience() {
        let turns = WriteTurns::new(Duration::from_millis(50));
        let _held = turns.take().await.expect("turn");
        assert!(turns.take().await.is_err());
    }

    #[tokio::test]
    async fn turns_are_taken_in_arrival_order() {
        let turns = turns();
        let first = turns.take().await.expect("turn");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..5 {
            let (turns, order) = (turns.clone(), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let _turn = turns.take().await.expect("turn");
                order.lock().expect("order").push(n);
            }));
            // Let it reach the queue before the next one starts.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);
        for task in waiting {
            task.await.expect("writer");
        }
        assert_eq!(*order.lock().expect("order"), [0, 1, 2, 3, 4]);
    }
}
