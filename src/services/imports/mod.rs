//! Imports: register objects already in configured buckets as items, without copying them.
//!
//! A spec (request body, or a spec file in a bucket) is checked whole before anything is
//! stored; its units are then recorded as `import_unit` rows and an IMPORT job works through
//! them ([`runner::ImportRunner`]). `POST /v1/folders/{id}/references` registers one object
//! synchronously through the same lookup and probing ([`ImportService::reference`]).

pub mod object;
pub mod runner;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{changeable_folder, require_role};
use super::access::{locate_usable, usable_urls};
use super::items::ItemView;
use super::jobs::{JobService, Submission, Submitted};
use super::{Context, Page, ServiceError, decode_number_position, page_token};
use crate::blobs::{BlobError, Buckets};
use crate::domain::caller::{Caller, Role};
use crate::domain::import::{ImportSpec, Unit, UnitKind, check_url};
use crate::domain::item::expiry_for;
use crate::domain::job::{Job, JobKind};
use crate::domain::page::SortKey;
use crate::domain::page::page_size;
use crate::domain::quota::Usage;
use crate::domain::webhook::EventKind;
use crate::store::imports::{self as rows, UnitRow, UnitState};
use crate::store::jobs as job_rows;
use crate::store::usage;
use crate::store::webhooks::{self as webhook_rows, ItemEvent};
use crate::store::{Store, TreeLock};

/// Units recorded per transaction while a spec is stored (so a huge spec never holds the
/// database's write lock for long).
const UNITS_PER_TRANSACTION: usize = 10_000;
/// The ordering unit pages use.
const UNIT_ORDER: &str = "position";

/// The parameters an IMPORT job carries (the units themselves are `import_unit` rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportParams {
    /// Units in the spec.
    pub units: u64,
    /// A failed unit does not fail the job.
    pub ignore_errors: bool,
    /// Skip objects already imported into the folder.
    pub skip_duplicate_urls: bool,
    /// Update the client metadata of objects already imported into the folder.
    pub upsert_metadata: bool,
    /// The spec file the units came from, when it was read from a bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_object_url: Option<String>,
}

/// A plain reference: one object registered without a job.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReference {
    /// The object's URL, inside a configured bucket (`s3://bucket/key`, `file:///dir/key`…).
    #[schema(min_length = 1)]
    pub url: String,
    /// The item's title; the object's file name when absent.
    #[schema(min_length = 1, max_length = 255)]
    pub title: Option<String>,
    /// Arbitrary JSON object kept with the item.
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What one unit of an import became, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnitView {
    /// Its place in the spec, from 0 (sections in the order videos, images, audio, text, pdf,
    /// nifti, image_groups, dicom_series).
    pub position: i64,
    /// Where it stands in the spec, e.g. `videos[3]`.
    pub path: String,
    /// `pending`, `created`, `skipped` (already imported), `updated` (metadata upserted) or
    /// `failed`.
    pub state: String,
    /// Its object URLs.
    pub object_urls: Vec<String>,
    /// The item it created, skipped or updated.
    pub item_id: Option<Uuid>,
    /// That item's title.
    pub title: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What to do about the failure.
    pub action_description: Option<String>,
}

impl UnitView {
    fn from_row(row: UnitRow) -> Result<Self, ServiceError> {
        let unit: Unit =
            serde_json::from_str(&row.spec).context(format!("import unit {} is unreadable", row.position))?;
        Ok(Self {
            position: row.position,
            path: unit.path,
            state: row.state.as_str().to_owned(),
            object_urls: unit.urls,
            item_id: row.item_id,
            title: row.title,
            error: row.error,
            action_description: row.action,
        })
    }
}

/// Which units of an import to list.
#[derive(Debug, Clone, Default)]
pub struct ListUnits {
    /// Only units in this state.
    pub state: Option<String>,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
}

/// Import use cases.
#[derive(Clone)]
pub struct ImportService {
    store: Store,
    buckets: Buckets,
    jobs: JobService,
    max_spec_bytes: u64,
}

impl ImportService {
    /// Wraps the store, the buckets and the job service; specs over `max_spec_bytes` are refused.
    pub fn new(store: Store, buckets: Buckets, jobs: JobService, max_spec_bytes: u64) -> Self {
        Self {
            store,
            buckets,
            jobs,
            max_spec_bytes,
        }
    }

    /// The largest spec accepted, in bytes.
    pub fn max_spec_bytes(&self) -> u64 {
        self.max_spec_bytes
    }

    /// Checks spec `json` whole, records its units and queues an IMPORT job into folder
    /// `folder_id`. A malformed spec is refused with the JSON path of its first problem, and
    /// nothing is stored. A repeated idempotency key returns the job it made.
    pub async fn submit(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        json: Bytes,
        spec_object_url: Option<String>,
        ignore_errors: bool,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, ServiceError> {
        {
            let mut conn = self.store.read().await?;
            changeable_folder(&mut conn, caller, folder_id, "importing").await?;
        }
        let spec = ImportSpec::parse(&json).map_err(|e| {
            let at = if e.path.is_empty() { "the spec" } else { e.path.as_str() };
            ServiceError::Invalid(format!("{at}: {}", e.message))
        })?;
        drop(json);
        usable_urls(&self.buckets, caller, &spec.units)?;
        let params = ImportParams {
            units: spec.units.len() as u64,
            ignore_errors,
            skip_duplicate_urls: spec.skip_duplicate_urls,
            upsert_metadata: spec.upsert_metadata,
            spec_object_url,
        };
        let submission = Submission {
            kind: JobKind::Import,
            folder_id: Some(folder_id),
            params: serde_json::to_value(&params).context("cannot encode the job parameters")?,
            idempotency_key,
            retry_of: None,
        };
        if let Some(existing) = self.jobs.find_existing(&caller.name, &submission).await? {
            return Ok(Submitted {
                job: existing,
                created: false,
            });
        }
        let job_id = Uuid::now_v7();
        if let Err(e) = self.record_units(job_id, &spec.units).await {
            self.forget_units(job_id).await;
            return Err(e);
        }
        let submitted = self.jobs.submit_as(job_id, &caller.name, submission).await;
        if !matches!(&submitted, Ok(s) if s.created) {
            // Another submission with the same key won, or the job could not be recorded.
            self.forget_units(job_id).await;
        }
        submitted
    }

    /// Reads a spec file named by URL from the bucket that holds it, which `caller` must be
    /// allowed to use.
    pub async fn fetch_spec(&self, caller: &Caller, url: &str) -> Result<Bytes, ServiceError> {
        check_url("spec_object_url", url).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let (source, key) = locate_usable(&self.buckets, caller, url)
            .map_err(|e| ServiceError::Invalid(format!("spec_object_url: {e}")))?;
        let found = source.head(key.as_str()).await.map_err(|e| match e {
            BlobError::NotFound(_) => ServiceError::Invalid(format!("spec_object_url: `{url}` does not exist")),
            other => ServiceError::Invalid(format!("spec_object_url: cannot read `{url}`: {other}")),
        })?;
        if found.size > self.max_spec_bytes {
            return Err(ServiceError::TooLarge(format!(
                "spec_object_url: `{url}` is {} bytes, over import.max_spec_bytes ({}); split the spec",
                found.size, self.max_spec_bytes
            )));
        }
        let mut stream = source
            .read(key.as_str(), None)
            .await
            .map_err(|e| ServiceError::Invalid(format!("spec_object_url: cannot read `{url}`: {e}")))?;
        let mut body = Vec::with_capacity(usize::try_from(found.size).unwrap_or_default());
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ServiceError::Invalid(format!("spec_object_url: cannot read `{url}`: {e}")))?;
            if (body.len() + chunk.len()) as u64 > self.max_spec_bytes {
                return Err(ServiceError::TooLarge(format!(
                    "spec_object_url: `{url}` grew over import.max_spec_bytes ({}) while read",
                    self.max_spec_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// Records the units as pending rows of job `job_id`.
    async fn record_units(&self, job_id: Uuid, units: &[Unit]) -> Result<(), ServiceError> {
        for (chunk_index, chunk) in units.chunks(UNITS_PER_TRANSACTION).enumerate() {
            let first = chunk_index * UNITS_PER_TRANSACTION;
            let specs = chunk
                .iter()
                .enumerate()
                .map(|(i, unit)| {
                    Ok((
                        i64::try_from(first + i).unwrap_or(i64::MAX),
                        serde_json::to_string(unit)?,
                    ))
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()
                .context("cannot encode the job parameters")?;
            let mut tx = self.store.write().await?;
            rows::insert_units(&mut tx, job_id, &specs).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Retries IMPORT job `job` as a new job with only its units that did not succeed (failed,
    /// or never attempted), at their positions in the spec; the caller must still be allowed to
    /// import into the folder from every bucket those units name.
    pub async fn retry(&self, caller: &Caller, job: &Job) -> Result<Submitted, ServiceError> {
        let folder_id = job
            .folder_id
            .ok_or_else(|| ServiceError::Internal(format!("import job {} has no folder", job.id)))?;
        {
            let mut conn = self.store.read().await?;
            changeable_folder(&mut conn, caller, folder_id, "importing").await?;
        }
        let mut params: ImportParams =
            serde_json::from_value(job.params.clone()).context("the job's parameters are unreadable")?;
        let retry_id = Uuid::now_v7();
        let copied = match self.copy_unfinished_units(caller, job.id, retry_id).await {
            Ok(copied) => copied,
            Err(e) => {
                self.forget_units(retry_id).await;
                return Err(e);
            }
        };
        if copied == 0 {
            return Err(ServiceError::Conflict(format!(
                "every unit of job {} succeeded; there is nothing to retry",
                job.id
            )));
        }
        params.units = copied;
        let submission = Submission {
            kind: JobKind::Import,
            folder_id: Some(folder_id),
            params: serde_json::to_value(&params).context("cannot encode the job parameters")?,
            idempotency_key: None,
            retry_of: Some(job.id),
        };
        let submitted = self.jobs.submit_as(retry_id, &caller.name, submission).await;
        if !matches!(&submitted, Ok(s) if s.created) {
            self.forget_units(retry_id).await;
        }
        submitted
    }

    /// Copies the failed and pending units of job `from` as pending units of job `to` and
    /// answers how many: first checks, a batch at a time, that `caller` may use their buckets;
    /// then copies them all in one statement, in one transaction that finds job `from` still
    /// there (a retention or bulk delete meanwhile is a 404, never a partial retry).
    async fn copy_unfinished_units(&self, caller: &Caller, from: Uuid, to: Uuid) -> Result<u64, ServiceError> {
        let unfinished = [UnitState::Pending, UnitState::Failed];
        let mut after = -1;
        loop {
            let batch = {
                let mut conn = self.store.read().await?;
                rows::units_after(&mut conn, from, &unfinished, after, UNITS_PER_TRANSACTION as i64).await?
            };
            let Some(last) = batch.last() else { break };
            after = last.position;
            let units = batch
                .iter()
                .map(|row| serde_json::from_str::<Unit>(&row.spec))
                .collect::<Result<Vec<_>, _>>()
                .context(format!("a unit of job {from} is unreadable"))?;
            usable_urls(&self.buckets, caller, &units)?;
        }
        let mut tx = self.store.write().await?;
        if job_rows::by_id(&mut tx, from).await?.is_none() {
            return Err(ServiceError::NotFound(format!("job {from} not found")));
        }
        let copied = rows::copy_units(&mut tx, from, to, &unfinished).await?;
        tx.commit().await?;
        Ok(copied)
    }

    /// Removes the unit rows of a submission that did not become a job (best effort).
    async fn forget_units(&self, job_id: Uuid) {
        let removed = async {
            let mut tx = self.store.write().await?;
            rows::delete_units(&mut tx, job_id).await?;
            tx.commit().await?;
            Ok::<_, ServiceError>(())
        };
        if let Err(e) = removed.await {
            tracing::warn!(job = %job_id, error = %e, "could not remove the units of a refused import");
        }
    }

    /// Lists what each unit of import job `job_id` became, in spec order.
    pub async fn units(&self, caller: &Caller, job_id: Uuid, req: ListUnits) -> Result<Page<UnitView>, ServiceError> {
        let job = self.jobs.get(caller, job_id).await?.job;
        if job.kind != JobKind::Import {
            return Err(ServiceError::NotFound(format!(
                "job {job_id} is a {} job; only IMPORT jobs have units",
                job.kind.as_str()
            )));
        }
        let state = match req.state.as_deref() {
            None => None,
            Some(text) => Some(
                [
                    UnitState::Pending,
                    UnitState::Created,
                    UnitState::Skipped,
                    UnitState::Updated,
                    UnitState::Failed,
                ]
                .into_iter()
                .find(|s| s.as_str() == text)
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "state: unknown unit state `{text}`; use pending, created, skipped, updated or failed"
                    ))
                })?,
            ),
        };
        let size = page_size(req.page_size).map_err(super::field("page_size"))?;
        let after = match &req.page_token {
            Some(token) => decode_number_position(token, UNIT_ORDER)?.0,
            None => -1,
        };
        let mut conn = self.store.read().await?;
        let states: Vec<UnitState> = state.into_iter().collect();
        let mut rows = rows::units_after(&mut conn, job_id, &states, after, i64::from(size) + 1).await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => Some(page_token(UNIT_ORDER, &SortKey::Int(last.position), job_id)),
            _ => None,
        };
        let items = rows.into_iter().map(UnitView::from_row).collect::<Result<_, _>>()?;
        Ok(Page { items, next_page_token })
    }

    /// Registers one object as an item of folder `folder_id`, now: looks it up, reads its type
    /// and metadata, and inserts it (a title taken in the folder is a conflict).
    pub async fn reference(
        &self,
        caller: &Caller,
        folder_id: Uuid,
        req: NewReference,
    ) -> Result<ItemView, ServiceError> {
        let mut unit = Unit {
            kind: UnitKind::Image,
            path: "url".into(),
            title: req.title,
            urls: vec![req.url],
            client_metadata: req.client_metadata.unwrap_or_default(),
            trusted: None,
            create_video: false,
        };
        check_url("url", &unit.urls[0]).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        unit.title = unit
            .title
            .as_deref()
            .map(crate::domain::item::client_title)
            .transpose()
            .map_err(super::field("title"))?;
        usable_urls(&self.buckets, caller, std::slice::from_ref(&unit))?;
        {
            let mut conn = self.store.read().await?;
            changeable_folder(&mut conn, caller, folder_id, "adding references").await?;
        }
        let mut item = object::single_item(&self.buckets, &unit, folder_id, None)
            .await
            .map_err(|f| ServiceError::Invalid(format!("url: {}; {}", f.error, f.action)))?;
        let mut tx = self.store.write_tree(TreeLock::Shared).await?;
        let folder = changeable_folder(&mut tx, caller, folder_id, "adding references").await?;
        item.expires_at = expiry_for(item.created_at, folder.ttl_seconds);
        if !crate::store::items::insert_if_title_free(&mut tx, &item).await? {
            return Err(ServiceError::Conflict(format!(
                "an item titled `{}` already exists in {}; give another `title`",
                item.title, folder.path
            )));
        }
        usage::admit(&mut tx, folder_id, Usage::item(item.size)).await?;
        webhook_rows::record_items(&mut tx, &[ItemEvent::of(EventKind::ItemCreated, &item)]).await?;
        let role = require_role(caller, &folder, Role::Editor)?;
        tx.commit().await?;
        Ok(ItemView::new(item, role))
    }
}
