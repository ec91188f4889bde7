//! The one shape of this process's background loops (the orphan sweep, the scheduler, the job
//! re-check and queue reconciler, the bucket watchers, the notification relay and the queue
//! workers): pacing and shutdown live here, each loop supplies only its round of work.
//!
//! Two shapes cover them, after garage's background workers:
//! - [`every`] runs a [`Periodic`]'s round, then waits its period, until shutdown; a round
//!   always runs to its end (shutdown is noticed between rounds), so no round is cut in half.
//! - [`restarting`] keeps a long-running task alive: when it ends (a lost connection, a
//!   failed worker) it starts again after a delay, until shutdown.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Work done in rounds, now and then, by [`every`].
pub trait Periodic: Send {
    /// One round of work. It logs its own trouble: the next round runs as usual either way.
    fn round(&mut self) -> impl Future<Output = ()> + Send;
}

/// When [`every`] runs the first round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRound {
    /// As soon as the loop starts (work left over from before a restart).
    AtStart,
    /// One period after the loop starts.
    AfterPeriod,
}

/// Runs `work`'s rounds `period` apart (the time a round takes not counted) until `shutdown`.
pub async fn every(mut work: impl Periodic, period: Duration, first: FirstRound, shutdown: CancellationToken) {
    if first == FirstRound::AtStart {
        work.round().await;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.cancelled() => return,
        }
        work.round().await;
    }
}

/// Runs the task `start` makes, and again `delay` after it ends, until `shutdown`. The task
/// sees `shutdown` too: it decides how to end on it (a queue worker drains its jobs first), and
/// an end after shutdown is not restarted. `name` says in the log what stopped and why.
pub async fn restarting<F, Fut, E>(name: &str, delay: Duration, shutdown: CancellationToken, mut start: F)
where
    F: FnMut(CancellationToken) -> Fut + Send,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    while !shutdown.is_cancelled() {
        let ended = start(shutdown.clone()).await;
        if shutdown.is_cancelled() {
            return;
        }
        match ended {
            Ok(()) => tracing::warn!(task = name, "a background task stopped; restarting it"),
            Err(error) => tracing::warn!(task = name, %error, "a background task failed; restarting it"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Runs `work` until it ends or `shutdown`, whichever comes first; `Ok` on shutdown. For tasks
/// under [`restarting`] that have nothing to finish when the process stops (a listener).
pub async fn until_shutdown<E>(
    work: impl Future<Output = Result<(), E>>,
    shutdown: &CancellationToken,
) -> Result<(), E> {
    tokio::select! {
        ended = work => ended,
        () = shutdown.cancelled() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::sync::mpsc;

    use super::*;

    /// Reports the time of each round.
    struct Rounds(mpsc::UnboundedSender<Instant>);

    impl Periodic for Rounds {
        async fn round(&mut self) {
            let _ = self.0.send(Instant::now());
        }
    }

    const PERIOD: Duration = Duration::from_millis(50);
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn next(rounds: &mut mpsc::UnboundedReceiver<Instant>) -> Instant {
        tokio::time::timeout(PATIENCE, rounds.recv())
            .await
            .expect("a round within the patience")
            .expect("the loop is running")
    }

    #[tokio::test]
    async fn rounds_run_a_period_apart_and_stop_on_shutdown() {
        let (tx, mut rounds) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn(every(Rounds(tx), PERIOD, FirstRound::AtStart, shutdown.clone()));
        let first = next(&mut rounds).await;
        assert!(first - started < PERIOD, "the first round runs at start");
        let third = {
            next(&mut rounds).await;
            next(&mut rounds).await
        };
        assert!(third - first >= 2 * PERIOD, "rounds are a period apart");
        let cancelled = Instant::now();
        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the loop ends on shutdown")
            .expect("no panic");
        // Every round the loop ever ran is in the channel now (its sender is gone with it).
        while let Ok(round) = rounds.try_recv() {
            assert!(round <= cancelled, "no round after shutdown");
        }
    }

    #[tokio::test]
    async fn a_task_that_ends_starts_again_after_the_delay_until_shutdown() {
        let (tx, mut starts) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(restarting("test", PERIOD, shutdown.clone(), move |_| {
            let _ = tx.send(Instant::now());
            async { Err::<(), _>("lost the connection") }
        }));
        let first = next(&mut starts).await;
        let second = next(&mut starts).await;
        assert!(second - first >= PERIOD, "restarted after the delay");
        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the loop ends on shutdown")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_task_that_ends_on_shutdown_is_not_restarted() {
        let (tx, mut starts) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(restarting("test", PERIOD, shutdown.clone(), move |shutdown| {
            let _ = tx.send(Instant::now());
            async move { until_shutdown(std::future::pending::<Result<(), String>>(), &shutdown).await }
        }));
        next(&mut starts).await;
        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the loop ends on shutdown")
            .expect("no panic");
        assert!(starts.try_recv().is_err(), "started once");
    }
}
