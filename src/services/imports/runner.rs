//! The IMPORT job: works through the pending units of its spec in position order, a batch at a
//! time. Each batch looks up and probes its objects concurrently, then records its items and
//! what every unit became in one transaction, so a job killed at any point resumes with exactly
//! the units still pending and never creates an item twice. The image sequences it created
//! (`createVideo`) are then handed to REENCODE jobs that make their videos.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use uuid::Uuid;

use super::ImportParams;
use super::object::{UnitFailure, group_item, locate, single_item};
use crate::blobs::Buckets;
use crate::domain::folder::Folder;
use crate::domain::import::Unit;
use crate::domain::item::{Item, ItemType, expiry_for};
use crate::domain::job::{Job, MAX_UNIT_ERRORS, Progress, UnitError};
use crate::domain::quota::Usage;
use crate::domain::webhook::EventKind;
use crate::services::items::{MAX_BATCH, insert_under_free_title};
use crate::services::jobs::Runner;
use crate::services::jobs::context::{JobContext, JobFailure};
use crate::services::reencode::ReencodeService;
use crate::store::imports::{self as rows, Finished, Tally, UnitRow, UnitState};
use crate::store::now_micros;
use crate::store::usage;
use crate::store::webhooks::{self as webhook_rows, ItemEvent};
use crate::store::{Db, Store, StoreError, TreeLock, folders as folder_rows, items as item_rows};

/// Units read, probed and recorded per batch (and per transaction).
const BATCH: i64 = 256;
/// The most items and unit errors the job's result lists (`GET /v1/jobs/{id}/units` has all).
const MAX_LISTED: i64 = 1000;

/// Runs IMPORT jobs.
pub struct ImportRunner {
    store: Store,
    buckets: Buckets,
    unit_concurrency: usize,
    videos: ReencodeService,
}

/// What a unit turned into before it is recorded.
enum Prepared {
    /// A new item to insert.
    Item(Box<Item>),
    /// The folder already holds an item of the unit's object.
    Duplicate(Uuid, String),
    /// It failed.
    Failed(UnitFailure),
}

/// One item of the result.
#[derive(Debug, Serialize)]
struct ResultItem {
    item_id: Uuid,
    title: String,
    path: String,
    state: &'static str,
}

/// One failed unit of the result.
#[derive(Debug, Clone, Serialize)]
struct ResultError {
    object_urls: Vec<String>,
    error: String,
    action_description: String,
    path: String,
}

impl Runner for ImportRunner {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(self.import(ctx))
    }
}

impl ImportRunner {
    /// A runner that probes `unit_concurrency` objects at once and has `videos` make the videos
    /// of image sequences.
    pub fn new(store: Store, buckets: Buckets, unit_concurrency: usize, videos: ReencodeService) -> Self {
        Self {
            store,
            buckets,
            unit_concurrency: unit_concurrency.max(1),
            videos,
        }
    }

    async fn import(&self, ctx: &mut JobContext) -> Result<serde_json::Value, JobFailure> {
        let params: ImportParams = ctx.params()?;
        let job_id = ctx.job().id;
        let folder_id = ctx
            .job()
            .folder_id
            .ok_or_else(|| JobFailure::Fatal("an import job needs a folder".into()))?;
        let tally = {
            let mut conn = self.store.read().await?;
            rows::tally(&mut conn, job_id).await?
        };
        let earlier = self.unit_errors(job_id, MAX_UNIT_ERRORS as i64).await?;
        ctx.resume(
            Progress {
                units_pending: tally.pending,
                units_done: tally.created + tally.skipped + tally.updated,
                units_error: tally.failed,
                units_cancelled: 0,
            },
            earlier.iter().map(unit_error).collect(),
        );
        let worked = if tally.failed > 0 && !params.ignore_errors {
            Ok(())
        } else {
            self.work(ctx, &params, folder_id).await
        };
        let (mut result, tally) = self.result(job_id).await?;
        ctx.set_result(result.clone());
        worked?;
        let video_jobs = self.submit_videos(ctx.job()).await?;
        if !video_jobs.is_empty() {
            result["video_jobs"] = serde_json::json!(video_jobs);
            ctx.set_result(result.clone());
        }
        if tally.failed > 0 && !params.ignore_errors {
            let first = earlier
                .first()
                .cloned()
                .or(self.unit_errors(job_id, 1).await?.into_iter().next());
            let first = first
                .map(|f| format!(" (first: {}: {})", f.path, f.error))
                .unwrap_or_default();
            return Err(JobFailure::Fatal(format!(
                "{} unit(s) failed{first}; {} unit(s) were imported and are kept, {} were not attempted. Fix what made them fail and retry the job (POST /v1/jobs/{}/retry runs only the units that did not succeed), or submit with ignore_errors=true to import every unit that can be",
                tally.failed,
                tally.created + tally.skipped + tally.updated,
                tally.pending,
                job_id
            )));
        }
        Ok(result)
    }

    /// Works through the pending units; stops after a batch with a failure unless errors are
    /// ignored.
    async fn work(&self, ctx: &mut JobContext, params: &ImportParams, folder_id: Uuid) -> Result<(), JobFailure> {
        let job_id = ctx.job().id;
        let mut after = -1;
        loop {
            ctx.checkpoint().await?;
            let batch = {
                let mut conn = self.store.read().await?;
                rows::units_after(&mut conn, job_id, &[UnitState::Pending], after, BATCH).await?
            };
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.position;
            let units = batch
                .into_iter()
                .map(|row| {
                    serde_json::from_str::<Unit>(&row.spec)
                        .map(|unit| (row.position, unit))
                        .map_err(|e| JobFailure::Fatal(format!("import unit {} is unreadable: {e}", row.position)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let dedupe = params.skip_duplicate_urls || params.upsert_metadata;
            let pending: Vec<_> = units
                .iter()
                .map(|(_, unit)| {
                    // Boxed: a `Send` future per unit (rustc cannot prove it through `buffered`).
                    prepare(
                        self.store.clone(),
                        self.buckets.clone(),
                        dedupe,
                        folder_id,
                        unit.clone(),
                    )
                    .boxed()
                })
                .collect();
            let prepared: Vec<Prepared> = futures::stream::iter(pending)
                .buffered(self.unit_concurrency)
                .collect()
                .await;
            let failures = self.record(job_id, folder_id, params, &units, prepared).await?;
            ctx.done(units.len() as i64 - failures.len() as i64);
            for failure in &failures {
                ctx.failed(describe_urls(&failure.object_urls), &failure.error);
            }
            if !failures.is_empty() && !params.ignore_errors {
                return Ok(());
            }
        }
    }

    /// Records one batch in one transaction: the new items, metadata upserts, and what every
    /// unit became. Answers the batch's failures.
    async fn record(
        &self,
        job_id: Uuid,
        folder_id: Uuid,
        params: &ImportParams,
        units: &[(i64, Unit)],
        prepared: Vec<Prepared>,
    ) -> Result<Vec<UnitFailure>, JobFailure> {
        let dedupe = params.skip_duplicate_urls || params.upsert_metadata;
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = folder_rows::by_id(&mut tx, folder_id)
            .await?
            .ok_or_else(|| JobFailure::Fatal(format!("folder {folder_id} was deleted during the import")))?
            .folder;
        let mut failures = Vec::new();
        let mut events = Vec::new();
        for ((position, unit), prepared) in units.iter().zip(prepared) {
            let prepared = match prepared {
                Prepared::Item(item) if dedupe => {
                    match rows::imported_item(&mut tx, folder_id, &item.bucket, &item.object_key).await? {
                        Some((id, title)) => Prepared::Duplicate(id, title),
                        None => Prepared::Item(item),
                    }
                }
                other => other,
            };
            let prepared = match prepared {
                Prepared::Item(item) => inserted(&mut tx, &folder, unit, item).await?,
                other => other,
            };
            let finished = match &prepared {
                Prepared::Item(item) => {
                    events.push(ItemEvent::of(EventKind::ItemCreated, item));
                    rows::finish(
                        &mut tx,
                        job_id,
                        *position,
                        &Finished {
                            state: UnitState::Created,
                            item: Some((item.id, &item.title)),
                            failure: None,
                        },
                    )
                    .await
                }
                Prepared::Duplicate(id, title) => {
                    let state = if params.upsert_metadata {
                        rows::set_client_metadata(&mut tx, *id, &unit.client_metadata, now_micros()).await?;
                        events.push(ItemEvent::about(EventKind::ItemUpdated, *id, folder_id, title.clone()));
                        UnitState::Updated
                    } else {
                        UnitState::Skipped
                    };
                    rows::finish(
                        &mut tx,
                        job_id,
                        *position,
                        &Finished {
                            state,
                            item: Some((*id, title)),
                            failure: None,
                        },
                    )
                    .await
                }
                Prepared::Failed(failure) => {
                    let done = rows::finish(
                        &mut tx,
                        job_id,
                        *position,
                        &Finished {
                            state: UnitState::Failed,
                            item: None,
                            failure: Some((&failure.error, &failure.action)),
                        },
                    )
                    .await;
                    failures.push(failure.clone());
                    done
                }
            };
            finished?;
        }
        webhook_rows::record_items(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(failures)
    }

    /// Submits REENCODE jobs (of up to 1000 items each) that make the videos of the image
    /// sequences `job` created; answers their ids. A run repeated after a crash answers the
    /// same jobs (their idempotency keys name this job).
    async fn submit_videos(&self, job: &Job) -> Result<Vec<Uuid>, JobFailure> {
        let sequences = {
            let mut conn = self.store.read().await?;
            rows::created_items(&mut conn, job.id, ItemType::ImageSequence.as_str()).await?
        };
        let mut submitted = Vec::new();
        for (n, ids) in sequences.chunks(MAX_BATCH).enumerate() {
            let videos = self
                .videos
                .submit_sequences(
                    &job.created_by,
                    job.folder_id,
                    ids.to_vec(),
                    format!("videos of the image sequences of import {}", job.id),
                    format!("import {} videos {n}", job.id),
                )
                .await
                .map_err(|e| JobFailure::Retryable(format!("cannot submit the videos of image sequences: {e}")))?;
            submitted.push(videos.job.id);
        }
        Ok(submitted)
    }

    /// The first `limit` failed units, in spec order.
    async fn unit_errors(&self, job_id: Uuid, limit: i64) -> Result<Vec<ResultError>, JobFailure> {
        let rows = {
            let mut conn = self.store.read().await?;
            rows::units_after(&mut conn, job_id, &[UnitState::Failed], -1, limit).await?
        };
        rows.into_iter()
            .map(|row| {
                let unit = parse_unit(&row)?;
                Ok(ResultError {
                    object_urls: unit.urls,
                    error: row.error.unwrap_or_default(),
                    action_description: row.action.unwrap_or_default(),
                    path: unit.path,
                })
            })
            .collect()
    }

    /// The job's result: counts, the first items and the first failures.
    async fn result(&self, job_id: Uuid) -> Result<(serde_json::Value, Tally), JobFailure> {
        let (tally, listed) = {
            let mut conn = self.store.read().await?;
            let tally = rows::tally(&mut conn, job_id).await?;
            let listed = rows::units_after(
                &mut conn,
                job_id,
                &[UnitState::Created, UnitState::Skipped, UnitState::Updated],
                -1,
                MAX_LISTED,
            )
            .await?;
            (tally, listed)
        };
        let items = listed
            .into_iter()
            .filter_map(|row| {
                let path = parse_unit(&row).ok()?.path;
                Some(ResultItem {
                    item_id: row.item_id?,
                    title: row.title.clone()?,
                    path,
                    state: row.state.as_str(),
                })
            })
            .collect::<Vec<_>>();
        let unit_errors = self.unit_errors(job_id, MAX_LISTED).await?;
        let result = serde_json::json!({
            "created": tally.created,
            "skipped": tally.skipped,
            "updated": tally.updated,
            "failed": tally.failed,
            "not_attempted": tally.pending,
            "items": items,
            "items_total": tally.created + tally.skipped + tally.updated,
            "unit_errors": unit_errors,
            "unit_errors_total": tally.failed,
            "units_url": format!("/v1/jobs/{job_id}/units"),
        });
        Ok((result, tally))
    }
}

/// Looks a unit's objects up and reads what its item needs; when duplicates are skipped or
/// upserted, an object the folder already holds is not read at all.
async fn prepare(store: Store, buckets: Buckets, dedupe: bool, folder_id: Uuid, unit: Unit) -> Prepared {
    if dedupe {
        match duplicate_of(&store, &buckets, folder_id, &unit).await {
            Ok(Some((id, title))) => return Prepared::Duplicate(id, title),
            Ok(None) => {}
            Err(failure) => return Prepared::Failed(failure),
        }
    }
    let item = if unit.kind.is_group() {
        group_item(&buckets, &unit, folder_id).await
    } else {
        single_item(&buckets, &unit, folder_id, Some(unit.kind.object_type())).await
    };
    match item {
        Ok(item) => Prepared::Item(Box::new(item)),
        Err(failure) => Prepared::Failed(failure),
    }
}

/// The folder's item of the unit's (first) object, if it has one.
async fn duplicate_of(
    store: &Store,
    buckets: &Buckets,
    folder_id: Uuid,
    unit: &Unit,
) -> Result<Option<(Uuid, String)>, UnitFailure> {
    let url = unit.urls.first().map(String::as_str).unwrap_or_default();
    let at = locate(buckets, unit, url)?;
    let retry = |e: String| {
        UnitFailure::of(
            unit,
            format!("cannot look the object up in the catalog: {e}"),
            "run the import again",
        )
    };
    let mut conn = store.read().await.map_err(|e| retry(e.to_string()))?;
    rows::imported_item(&mut conn, folder_id, at.source.name(), at.key.as_str())
        .await
        .map_err(|e| retry(e.to_string()))
}

/// Reads a recorded unit back.
fn parse_unit(row: &UnitRow) -> Result<Unit, JobFailure> {
    serde_json::from_str(&row.spec)
        .map_err(|e| JobFailure::Fatal(format!("import unit {} is unreadable: {e}", row.position)))
}

/// A failed unit as a job-level unit error.
fn unit_error(failure: &ResultError) -> UnitError {
    UnitError {
        object: describe_urls(&failure.object_urls),
        message: format!("{}: {}", failure.path, failure.error),
    }
}

/// A unit's URLs for a one-line message: the first, and how many more.
fn describe_urls(urls: &[String]) -> String {
    match urls {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    }
}

/// `item` inserted into `folder` (under a free title) and charged to the usage of the holders
/// over it; or, when a quota refuses it, removed again and the unit's failure: the rest of the
/// import goes on. (Rows first, counters last, as every writer does, so that two writers never
/// wait on each other crosswise.)
async fn inserted(tx: &mut dyn Db, folder: &Folder, unit: &Unit, mut item: Box<Item>) -> Result<Prepared, JobFailure> {
    item.expires_at = expiry_for(item.created_at, folder.ttl_seconds);
    insert_under_free_title(tx, &mut item).await?;
    match usage::admit(tx, folder.id, Usage::item(item.size)).await {
        Ok(()) => Ok(Prepared::Item(item)),
        Err(StoreError::QuotaExceeded(refusal)) => {
            item_rows::delete(tx, &[item.id]).await?;
            Ok(Prepared::Failed(UnitFailure::of(
                unit,
                refusal.told_to(None),
                "free space under the quota, or have it raised, then import the unit again",
            )))
        }
        Err(other) => Err(other.into()),
    }
}
