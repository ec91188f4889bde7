//! The one owner of a sync's counts: every count of the [`SyncResult`] moves together with the
//! job's progress (objects pending, done, failed), so the two never disagree.

use super::SyncResult;
use super::stages::ListingReport;
use super::writer::Applied;
use crate::services::jobs::context::{JobContext, JobFailure};

/// A sync's result so far, kept in step with its job's progress.
pub(super) struct Tally {
    result: SyncResult,
}

impl Tally {
    /// An empty tally; `dry_run` marks a run that changes nothing.
    pub(super) fn new(dry_run: bool) -> Self {
        Self {
            result: SyncResult {
                dry_run,
                ..SyncResult::default()
            },
        }
    }

    /// An object whose fingerprint is the known one.
    pub(super) fn unchanged(&mut self, ctx: &mut JobContext) {
        self.result.unchanged += 1;
        ctx.add_pending(1);
        ctx.done(1);
    }

    /// An object that could not be read or recorded, after `hashed` bytes were read.
    pub(super) fn failed(&mut self, ctx: &mut JobContext, key: String, message: String, hashed: u64) {
        self.result.errors += 1;
        self.result.bytes_hashed += hashed;
        ctx.add_pending(1);
        ctx.failed(key, message);
    }

    /// A change handed to the writer, after `hashed` bytes were read; it counts as done once
    /// [`committed`](Self::committed).
    pub(super) fn queued(&mut self, ctx: &mut JobContext, hashed: u64) {
        self.result.bytes_hashed += hashed;
        ctx.add_pending(1);
    }

    /// Changes the writer committed (see [`Writer::take_committed`](super::writer::Writer::take_committed)).
    pub(super) fn committed(&mut self, ctx: &mut JobContext, applied: Applied) {
        ctx.done(applied.actions);
        self.result.created += applied.created;
        self.result.updated += applied.updated;
        self.result.restored += applied.restored;
        self.result.unchanged += applied.unchanged;
        for (key, message) in applied.refused {
            self.result.errors += 1;
            ctx.failed(key, message);
        }
    }

    /// What the listing counted, and each key prefix it could not list as one failed unit.
    pub(super) fn listing(&mut self, ctx: &mut JobContext, report: &ListingReport) {
        self.result.listed = report.listed;
        self.result.skipped = report.skipped;
        for (key, message) in &report.unreadable {
            self.failed(ctx, key.clone(), message.clone(), 0);
        }
    }

    /// `count` tombstones about to be written.
    pub(super) fn tombstoning(&mut self, ctx: &mut JobContext, count: usize) {
        ctx.add_pending(count as i64);
    }

    /// `count` tombstones written (or counted, on a dry run).
    pub(super) fn tombstoned(&mut self, ctx: &mut JobContext, count: usize) {
        self.result.tombstoned += count as u64;
        ctx.done(count as i64);
    }

    /// Records the result so far as the job's, for a run that goes on to fail.
    pub(super) fn record(&self, ctx: &mut JobContext) {
        ctx.set_result(self.json());
    }

    /// Records what the run did before it stopped, and passes `failure` on.
    pub(super) fn stopped(&self, ctx: &mut JobContext, failure: JobFailure) -> JobFailure {
        self.record(ctx);
        failure
    }

    /// The result as the job reports it.
    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.result).unwrap_or_default()
    }
}
