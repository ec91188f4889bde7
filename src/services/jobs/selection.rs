//! Which jobs a list or a bulk action takes, as clients say it and as the store filters it.

use uuid::Uuid;

use crate::domain::caller::Caller;
use crate::domain::job::{JobKind, JobStatus};
use crate::services::Rfc3339;
use crate::store::clauses::Reader;
use crate::store::jobs::JobFilter;
use crate::store::to_micros;

/// Which jobs a list or a bulk action takes: those the caller may see that match every field
/// given.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSelection {
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only jobs on this folder.
    pub folder_id: Option<Uuid>,
    /// Only jobs submitted at or after this time (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub submitted_after: Option<Rfc3339>,
    /// Only jobs submitted before this time (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub submitted_before: Option<Rfc3339>,
}

impl JobSelection {
    /// Whether it names nothing (every job the caller may see).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The store filter of this selection for `caller`: `limit` rows after `before`.
    pub fn filter(&self, caller: &Caller, before: Option<(i64, Uuid)>, limit: u32) -> JobFilter {
        JobFilter {
            kind: self.kind,
            status: self.status,
            folder_id: self.folder_id,
            created_from: self.submitted_after.map(|t| to_micros(t.0)),
            created_until: self.submitted_before.map(|t| to_micros(t.0)),
            visible_to: Reader::of(caller),
            before,
            limit,
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// Which jobs.
    pub selection: JobSelection,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
}
