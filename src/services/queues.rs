//! The job queues for operators (admins): what each kind has waiting and running, how old its
//! oldest waiting job is, how many workers are alive to take it, and pausing and resuming a
//! kind. A pause holds on every worker of every process (the database refuses to start a job of
//! a paused kind) and across restarts; jobs already running finish.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::access::require_admin;
use super::audit;
use super::jobs::Enqueue;
use super::jobs::pauses::Pauses;
use super::{ServiceError, now};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::Caller;
use crate::domain::job::JobKind;
use crate::store::jobs::{self as job_rows, Active};
use crate::store::{Store, from_micros, pauses};

/// One job kind's queue.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueueView {
    /// The kind.
    pub kind: JobKind,
    /// Whether it is paused: no worker starts a job of it until it is resumed.
    pub paused: bool,
    /// When it was paused.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// The admin that paused it.
    pub paused_by: Option<String>,
    /// Jobs waiting to start (or to retry).
    pub pending: i64,
    /// Jobs running now.
    pub running: i64,
    /// When the oldest waiting job was submitted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// How long the oldest waiting job has waited, in seconds.
    pub oldest_pending_age_seconds: Option<f64>,
    /// Workers of this kind, in any process, that reported alive lately; `null` when the queue
    /// could not be asked.
    pub workers_alive: Option<u64>,
}

/// Queue overview, pause and resume.
#[derive(Clone)]
pub struct QueueService {
    store: Store,
    queue: Arc<dyn Enqueue>,
    pauses: Arc<Pauses>,
}

impl QueueService {
    /// Wraps the store, the queue (for worker counts) and this process's view of pauses.
    pub fn new(store: Store, queue: Arc<dyn Enqueue>, pauses: Arc<Pauses>) -> Self {
        Self { store, queue, pauses }
    }

    /// Every kind's queue (admins).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<QueueView>, ServiceError> {
        require_admin(caller, "see the job queues")?;
        let (paused, counts) = self.state().await?;
        let mut views = Vec::with_capacity(JobKind::ALL.len());
        for kind in JobKind::ALL {
            views.push(self.view(kind, &paused, &counts).await);
        }
        Ok(views)
    }

    /// The paused kinds and the jobs waiting and running, read now.
    async fn state(&self) -> Result<(BTreeMap<JobKind, pauses::Pause>, BTreeMap<JobKind, Active>), ServiceError> {
        let mut conn = self.store.read().await?;
        let paused = pauses::paused(&mut conn)
            .await?
            .into_iter()
            .map(|p| (p.kind, p))
            .collect();
        Ok((paused, job_rows::active_counts(&mut conn).await?))
    }

    /// `kind`'s queue, from what [`Self::state`] read and its workers counted now.
    async fn view(
        &self,
        kind: JobKind,
        paused: &BTreeMap<JobKind, pauses::Pause>,
        counts: &BTreeMap<JobKind, Active>,
    ) -> QueueView {
        let pause = paused.get(&kind);
        let active = counts.get(&kind).copied().unwrap_or_default();
        let oldest_pending_at = active.oldest_pending_at.map(from_micros);
        let workers_alive = match self.queue.workers_alive(kind).await {
            Ok(n) => Some(n),
            Err(error) => {
                tracing::warn!(kind = kind.as_str(), %error, "cannot count the queue's workers");
                None
            }
        };
        QueueView {
            kind,
            paused: pause.is_some(),
            paused_at: pause.map(|p| p.paused_at),
            paused_by: pause.map(|p| p.paused_by.clone()),
            pending: active.pending,
            running: active.running,
            oldest_pending_age_seconds: oldest_pending_at.map(|t| (now() - t).as_seconds_f64().max(0.0)),
            oldest_pending_at,
            workers_alive,
        }
    }

    /// Pauses (`true`) or resumes `kind` (admins), audited; pausing a paused kind (or resuming
    /// a running one) changes nothing and is not an error. Answers the kind's queue.
    pub async fn set_paused(&self, caller: &Caller, kind: JobKind, paused: bool) -> Result<QueueView, ServiceError> {
        let verb = if paused { "pause" } else { "resume" };
        require_admin(caller, &format!("{verb} job kinds"))?;
        let at = now();
        let mut tx = self.store.write().await?;
        let changed = if paused {
            pauses::pause(&mut tx, kind, &caller.name, crate::store::to_micros(at)).await?
        } else {
            pauses::resume(&mut tx, kind).await?
        };
        if changed {
            let action = if paused {
                AuditAction::QueuePause
            } else {
                AuditAction::QueueResume
            };
            audit::record(&mut tx, &AuditEvent::by(caller, action, kind.as_str(), at)).await?;
        }
        tx.commit().await?;
        self.pauses.set_one(kind, paused);
        let (paused, counts) = self.state().await?;
        Ok(self.view(kind, &paused, &counts).await)
    }
}
