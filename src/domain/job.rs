//! Jobs: their kinds, statuses and the only transitions allowed between them, and progress.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// What a job does. Each kind has its own queue and concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobKind {
    /// Mirror a bucket prefix into a synced folder.
    Sync,
    /// Register objects already in a bucket from an import spec.
    Import,
    /// Re-encode videos.
    Reencode,
    /// Delete or trash what expired.
    Expiry,
    /// Does nothing but sleep through its units: checks the queue end to end.
    Noop,
}

impl JobKind {
    /// Every kind, in declaration order (a kind's discriminant is its index here).
    pub const ALL: [JobKind; 5] = [
        JobKind::Sync,
        JobKind::Import,
        JobKind::Reencode,
        JobKind::Expiry,
        JobKind::Noop,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "SYNC",
            JobKind::Import => "IMPORT",
            JobKind::Reencode => "REENCODE",
            JobKind::Expiry => "EXPIRY",
            JobKind::Noop => "NOOP",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
            Invalid::new(format!(
                "unknown job kind `{text}`; use one of SYNC, IMPORT, REENCODE, EXPIRY, NOOP"
            ))
        })
    }
}

/// Where a job is in its life. Only [`JobStatus::can_become`] transitions happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Queued, or waiting to retry.
    Pending,
    /// A worker is running it.
    Running,
    /// Finished successfully.
    Done,
    /// Failed for good.
    Error,
    /// Stopped on request; what it finished is kept.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Error,
        JobStatus::Cancelled,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Done => "DONE",
            JobStatus::Error => "ERROR",
            JobStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            Invalid::new(format!(
                "unknown job status `{text}`; use one of PENDING, RUNNING, DONE, ERROR, CANCELLED"
            ))
        })
    }

    /// DONE, ERROR and CANCELLED never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Error | JobStatus::Cancelled)
    }

    /// Whether a job may move from `self` to `next`: PENDING → RUNNING → DONE | ERROR | CANCELLED,
    /// PENDING → CANCELLED, and RUNNING → PENDING to retry (a failed attempt with attempts left,
    /// or a worker that stopped or died mid-job).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Pending, Running)
                | (Pending, Cancelled)
                | (Running, Done)
                | (Running, Error)
                | (Running, Cancelled)
                | (Running, Pending)
        )
    }

    /// The statuses a job may be in right before becoming `self`.
    pub fn sources(self) -> Vec<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .filter(|from| from.can_become(self))
            .collect()
    }
}

/// How far a job has come, in units (objects, items, videos…).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Known units not finished yet.
    pub units_pending: i64,
    /// Units finished successfully.
    pub units_done: i64,
    /// Units that failed.
    pub units_error: i64,
    /// Units dropped because the job was cancelled.
    pub units_cancelled: i64,
}

/// One unit that failed: which object, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitError {
    /// The object (key, URL or id) the unit was about.
    pub object: String,
    /// What went wrong.
    pub message: String,
}

/// A job record: what the API shows; the queue's own rows are an implementation detail.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    /// Stable identifier (a UUIDv7; the queue task id is the same 128 bits as a ULID).
    pub id: uuid::Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub status: JobStatus,
    /// The folder it works on, if any.
    pub folder_id: Option<uuid::Uuid>,
    /// Kind-specific parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Units counted so far.
    pub progress: Progress,
    /// Kind-specific result (counts, ids…); also what was done when cancelled or failed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Units that failed (at most [`MAX_UNIT_ERRORS`]).
    pub errors: Vec<UnitError>,
    /// The last failure message, if any.
    pub message: Option<String>,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed before the job ends in ERROR.
    pub max_attempts: i64,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Bumped on every change; pass as `since_version` to wait for the next one.
    pub version: i64,
    /// The user that submitted it (`scheduler` for scheduled runs).
    pub created_by: String,
    /// The submitter's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// The job this one retries (`POST /v1/jobs/{id}/retry`), if any.
    pub retry_of: Option<uuid::Uuid>,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// When its first attempt started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<time::OffsetDateTime>,
    /// When it reached DONE, ERROR or CANCELLED.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
}

/// Most unit errors kept on a job; the count in `units_error` goes on past it.
pub const MAX_UNIT_ERRORS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed: Vec<(JobStatus, JobStatus)> = JobStatus::ALL
            .into_iter()
            .flat_map(|a| JobStatus::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Running),
                (Pending, Cancelled),
                (Running, Pending),
                (Running, Done),
                (Running, Error),
                (Running, Cancelled)
            ]
        );
        for terminal in [Done, Error, Cancelled] {
            assert!(terminal.is_terminal());
            assert!(JobStatus::ALL.into_iter().all(|next| !terminal.can_become(next)));
        }
        assert_eq!(Cancelled.sources(), [Pending, Running]);
    }

    #[test]
    fn names_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Ok(kind));
        }
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Ok(status));
        }
        assert!(JobKind::parse("sync").is_err());
    }

    #[test]
    fn every_kind_sits_at_its_discriminant() {
        for (index, kind) in JobKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
        }
    }
}
