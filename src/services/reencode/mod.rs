//! Re-encoding videos so every browser plays them, and making videos of image sequences (job
//! kind REENCODE).
//!
//! Each video or image sequence is one unit. An image sequence (an image group imported with
//! `createVideo`) becomes an H.264 MP4 of one frame per image (`sequence.rs`). A video already H.264 (yuv420p) with AAC audio (or none) in MP4 is
//! remuxed (`-c copy -movflags +faststart`: the index moves before the media data, nothing is
//! re-encoded) unless the request forces a full re-encode; anything else is transcoded to H.264
//! (yuv420p, even dimensions) and AAC in MP4 with faststart. ffmpeg and ffprobe run as child
//! processes with argument lists, never through a shell.
//!
//! The output is a new object in the managed bucket; the source object is never written or
//! deleted. The item then records it as its rendition (downloads serve it by default), with the
//! metadata ffprobe reads from it. Work files live in `DATA_DIR/work/reencode/JOB_ID/`, which is
//! removed when the job ends however it ends. A process-wide semaphore
//! (`reencode.max_processes`) bounds how many ffmpeg processes run at once; a cancel (or
//! shutdown) kills the running ones and waits for them to exit before the job ends.

mod ffmpeg;
mod sequence;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

pub use ffmpeg::FFMPEG_MISSING;
use ffmpeg::{browser_ready, ffmpeg_args, require_tools, run_ffmpeg};
pub use sequence::{SEQUENCE_FRAME_RATE, sequence_extension};
use sequence::{lay_out, sequence_args};

use super::access::visible_items;
use super::items::{check_batch, id_list};
use super::jobs::context::{JobContext, JobFailure};
use super::jobs::{JobService, Runner, Submission, Submitted};
use super::objects::{new_object_key, remove_managed_objects};
use super::probe::ffprobe_json;
use super::{Context, ServiceError, field, now};
use crate::blobs::Buckets;
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::{Caller, Role};
use crate::domain::item::{Encoded, Item, ItemType, Media};
use crate::domain::job::{Job, JobKind};
use crate::domain::webhook::{EventKind, ItemCause};
use crate::store::webhooks::{self as webhook_rows, ItemEvent};
use crate::store::{Store, items as item_rows};

/// The longest `process_title`, in bytes.
const MAX_TITLE_BYTES: usize = 255;

/// Body of `POST /v1/reencode`, and the parameters of a REENCODE job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReencodeRequest {
    /// The videos and image sequences (1 to 1000), which the caller must be able to change.
    #[schema(min_items = 1, max_items = 1000)]
    pub item_ids: Vec<Uuid>,
    /// A name for this run, kept in the job's parameters and result.
    #[serde(default)]
    pub process_title: Option<String>,
    /// Transcode also videos that are already H.264 + AAC in MP4 (else those are only remuxed).
    #[serde(default)]
    pub force_full_reencoding: bool,
}

/// How a video was re-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Streams copied into a new MP4 with faststart.
    Remuxed,
    /// Transcoded to H.264 + AAC.
    Transcoded,
    /// An image sequence made into a video.
    FromImages,
    /// An earlier attempt of this job already did it.
    Earlier,
}

/// The result of a REENCODE job.
#[derive(Debug, Clone, Default, Serialize)]
struct Tally {
    process_title: Option<String>,
    remuxed: u64,
    transcoded: u64,
    made_from_images: u64,
    done_by_earlier_attempt: u64,
}

impl Tally {
    fn count(&mut self, mode: Mode) {
        match mode {
            Mode::Remuxed => self.remuxed += 1,
            Mode::Transcoded => self.transcoded += 1,
            Mode::FromImages => self.made_from_images += 1,
            Mode::Earlier => self.done_by_earlier_attempt += 1,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A job's directory of work files, removed when dropped (success, failure, cancel, shutdown).
struct WorkDir(PathBuf);

impl WorkDir {
    /// Creates `path` afresh (what a crashed earlier attempt left there goes first).
    fn create(path: PathBuf) -> std::io::Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), %error, "cannot remove a re-encode work directory");
        }
    }
}

/// Re-encodes videos.
#[derive(Clone)]
pub struct ReencodeService {
    store: Store,
    buckets: Buckets,
    jobs: JobService,
    work_dir: PathBuf,
    slots: Arc<Semaphore>,
    parallel: usize,
}

/// Why an item cannot be re-encoded, in the order messages list them.
const REFUSALS: [&str; 4] = [
    "not found",
    "in folders you may only read",
    "that are neither videos nor image sequences",
    "that are tombstones with no content",
];

/// The index in [`REFUSALS`] of why `found` (an item the caller can see, with their role on it)
/// cannot be re-encoded; `None` when it can.
fn refusal(found: Option<&(Item, Role)>) -> Option<usize> {
    match found {
        None => Some(0),
        Some((_, role)) if *role < Role::Editor => Some(1),
        Some((item, _)) if !encodable(item.item_type) => Some(2),
        Some((item, _)) if item.is_tombstone => Some(3),
        Some(_) => None,
    }
}

/// Whether items of type `item_type` can be re-encoded: videos, and image sequences (made into
/// one).
fn encodable(item_type: ItemType) -> bool {
    matches!(item_type, ItemType::Video | ItemType::ImageSequence)
}

impl ReencodeService {
    /// Re-encodes with work files under `DATA_DIR/work/reencode`, at most `max_processes` ffmpeg
    /// processes at once in this process.
    pub fn new(store: Store, buckets: Buckets, jobs: JobService, data_dir: &Path, max_processes: usize) -> Self {
        let parallel = max_processes.max(1);
        Self {
            store,
            buckets,
            jobs,
            work_dir: data_dir.join("work").join("reencode"),
            slots: Arc::new(Semaphore::new(parallel)),
            parallel,
        }
    }

    /// Where job `id` keeps its work files while it runs.
    pub fn work_dir_of(&self, id: Uuid) -> PathBuf {
        self.work_dir.join(id.to_string())
    }

    /// Checks that every item is a video the caller may change (400 naming the others) and
    /// submits the job.
    pub async fn submit(
        &self,
        caller: &Caller,
        mut req: ReencodeRequest,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, ServiceError> {
        req.item_ids = check_batch(req.item_ids)?;
        if let Some(title) = &req.process_title
            && title.len() > MAX_TITLE_BYTES
        {
            return Err(field("process_title")(crate::domain::Invalid::new(format!(
                "at most {MAX_TITLE_BYTES} bytes, got {}",
                title.len()
            ))));
        }
        self.submit_checked(caller, req, idempotency_key, None).await
    }

    /// Submits, as `created_by`, a REENCODE job that makes videos of the image sequences `ids`
    /// of folder `folder_id` (an import's, whose submitter could change them), once per
    /// `idempotency_key`.
    pub async fn submit_sequences(
        &self,
        created_by: &str,
        folder_id: Option<Uuid>,
        ids: Vec<Uuid>,
        process_title: String,
        idempotency_key: String,
    ) -> Result<Submitted, ServiceError> {
        let req = ReencodeRequest {
            item_ids: ids,
            process_title: Some(process_title),
            force_full_reencoding: false,
        };
        let submission = Submission {
            kind: JobKind::Reencode,
            folder_id,
            params: serde_json::to_value(&req).context("cannot encode the job parameters")?,
            idempotency_key: Some(idempotency_key),
            retry_of: None,
        };
        self.jobs.submit(created_by, submission).await
    }

    /// Retries REENCODE job `job` as a new job over those of its videos that it did not
    /// re-encode (no rendition made since it was submitted) and that the caller can still see.
    pub async fn retry(&self, caller: &Caller, job: &Job) -> Result<Submitted, ServiceError> {
        let mut req: ReencodeRequest =
            serde_json::from_value(job.params.clone()).context("the job's parameters are unreadable")?;
        let undone: BTreeSet<Uuid> = {
            let mut conn = self.store.read().await?;
            visible_items(&mut conn, caller, &req.item_ids)
                .await?
                .into_iter()
                .filter(|(item, _)| item.encoded.as_ref().is_none_or(|e| e.encoded_at < job.created_at))
                .map(|(item, _)| item.id)
                .collect()
        };
        req.item_ids.retain(|id| undone.contains(id));
        if req.item_ids.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "every video of job {} you can see was re-encoded or is gone; there is nothing to retry",
                job.id
            )));
        }
        self.submit_checked(caller, req, None, Some(job.id)).await
    }

    /// Submits `req` (already of a valid size) once every item is a video `caller` may change.
    async fn submit_checked(
        &self,
        caller: &Caller,
        req: ReencodeRequest,
        idempotency_key: Option<String>,
        retry_of: Option<Uuid>,
    ) -> Result<Submitted, ServiceError> {
        let mut conn = self.store.read().await?;
        let found: BTreeMap<Uuid, (Item, Role)> = visible_items(&mut conn, caller, &req.item_ids)
            .await?
            .into_iter()
            .map(|(item, access)| (item.id, (item, access)))
            .collect();
        drop(conn);
        let mut refused: BTreeMap<usize, Vec<Uuid>> = BTreeMap::new();
        for id in &req.item_ids {
            if let Some(why) = refusal(found.get(id)) {
                refused.entry(why).or_default().push(*id);
            }
        }
        let only_missing = refused.keys().eq([0].iter());
        // An image group is what a sequence is made from, and where to turn it into one.
        let hint = match refused.contains_key(&2) {
            true => " (an image group becomes an image sequence when it is imported with createVideo: true)",
            false => "",
        };
        let problems: Vec<String> = refused
            .into_iter()
            .map(|(why, ids)| format!("{}: {}", REFUSALS[why], id_list(&ids)))
            .collect();
        if !problems.is_empty() {
            let message = format!(
                "item_ids: only videos and image sequences you can change can be re-encoded; leave out the items {}{hint}",
                problems.join("; ")
            );
            // Items that do not exist (or that the caller may not see) are not found; any other
            // refusal is a bad request.
            return Err(if only_missing {
                ServiceError::NotFound(message)
            } else {
                ServiceError::Invalid(message)
            });
        }
        let mut folders = found.values().map(|(item, _)| item.folder_id);
        let first = folders.next();
        let folder_id = first.filter(|f| folders.all(|other| other == *f));
        let params = serde_json::to_value(&req).context("cannot encode the job parameters")?;
        let submission = Submission {
            kind: JobKind::Reencode,
            folder_id,
            params,
            idempotency_key,
            retry_of,
        };
        self.jobs.submit(&caller.name, submission).await
    }

    /// Runs a REENCODE job: its videos, a few at once, until all are done or the job is
    /// cancelled or interrupted (then the running ffmpeg processes are killed first).
    async fn run_job(&self, ctx: &mut JobContext) -> Result<serde_json::Value, JobFailure> {
        let req: ReencodeRequest = ctx.params()?;
        require_tools().await?;
        let job = ctx.job().id;
        let work = WorkDir::create(self.work_dir_of(job))
            .map_err(|e| JobFailure::Retryable(format!("cannot create the work directory: {e}")))?;
        let since = ctx.job().created_at;
        let mut tally = Tally {
            process_title: req.process_title.clone(),
            ..Tally::default()
        };
        ctx.add_pending(i64::try_from(req.item_ids.len()).unwrap_or(i64::MAX));
        let stop = CancellationToken::new();
        let mut waiting = req.item_ids.iter().copied();
        // Each video runs on a task of its own, so it moves on while this loop writes progress.
        let mut running = JoinSet::new();
        let outcome = loop {
            while running.len() < self.parallel {
                let Some(id) = waiting.next() else { break };
                let (this, dir, stop) = (self.clone(), work.0.clone(), stop.clone());
                let force = req.force_full_reencoding;
                running.spawn(async move { (id, this.unit(id, force, &dir, since, &stop).await) });
            }
            if running.is_empty() {
                break Ok(());
            }
            let finished = tokio::select! {
                Some(finished) = running.join_next() => Some(finished),
                () = ctx.interrupted() => None,
            };
            match finished {
                Some(Ok((_, Ok(mode)))) => {
                    ctx.done(1);
                    tally.count(mode);
                    ctx.set_result(tally.json());
                }
                Some(Ok((id, Err(message)))) => ctx.failed(id.to_string(), message),
                Some(Err(panicked)) => {
                    break Err(JobFailure::Retryable(format!("a re-encode task failed: {panicked}")));
                }
                None => {}
            }
            if let Err(stopped) = ctx.checkpoint().await {
                break Err(stopped);
            }
        };
        if outcome.is_err() {
            stop.cancel();
            while running.join_next().await.is_some() {}
        }
        drop(work);
        outcome.map(|()| tally.json())
    }

    /// Re-encodes one video into the managed bucket and records it on the item.
    async fn unit(
        &self,
        id: Uuid,
        force: bool,
        work: &Path,
        since: OffsetDateTime,
        stop: &CancellationToken,
    ) -> Result<Mode, String> {
        let gone = || format!("item {id} no longer exists (deleted or in the trash)");
        let item = {
            let mut conn = self.store.read().await.map_err(|e| e.to_string())?;
            item_rows::by_id(&mut conn, id).await.map_err(|e| e.to_string())?
        }
        .ok_or_else(gone)?;
        if item.encoded.as_ref().is_some_and(|e| e.encoded_at >= since) {
            return Ok(Mode::Earlier);
        }
        if !encodable(item.item_type) || item.is_tombstone {
            return Err(format!("item {id} is no longer a video or image sequence with content"));
        }
        let dir = work.join(id.to_string());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot create a work directory: {e}"))?;
        let output = dir.join("output.mp4");
        // What ffmpeg runs with, and the work paths named for what they are in its messages.
        let (args, source, mode) = match item.frames.first() {
            Some(first) if item.item_type == ItemType::ImageSequence => {
                let frames = lay_out(&self.buckets, &item, &dir).await?;
                let args = sequence_args(&frames, &output, first);
                (args, (dir.clone(), "the frames"), Mode::FromImages)
            }
            _ => {
                let source = self.local_source(&item, &dir).await?;
                let remux = !force
                    && ffprobe_json(source.as_os_str())
                        .await
                        .is_ok_and(|probe| browser_ready(&probe, &item.mime_type));
                let mode = if remux { Mode::Remuxed } else { Mode::Transcoded };
                (ffmpeg_args(&source, &output, remux), (source, "the source video"), mode)
            }
        };
        {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| "the re-encoder is shutting down".to_owned())?;
            // The output first: a sequence's frames are in the same directory.
            let names = [(output.as_path(), "the output"), (source.0.as_path(), source.1)];
            run_ffmpeg(args, stop, &names).await?;
        }
        let mut media = Media::default();
        ffprobe_json(output.as_os_str())
            .await
            .map_err(|e| format!("the output cannot be read back: {e}"))?
            .apply(&mut media);
        let encoded = self.store_output(&output, media).await?;
        let old = self.record(&item, &encoded).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let old = match old {
            Ok(old) => old,
            Err(message) => {
                remove_managed_objects(&self.buckets, [(MANAGED_BUCKET.to_owned(), encoded.object_key)]).await;
                return Err(message);
            }
        };
        if let Some(old) = old {
            remove_managed_objects(&self.buckets, [(MANAGED_BUCKET.to_owned(), old.object_key)]).await;
        }
        Ok(mode)
    }

    /// The item's source object as a local file: the bucket's own file when it has one, else a
    /// copy in `dir`.
    async fn local_source(&self, item: &Item, dir: &Path) -> Result<PathBuf, String> {
        if let Some(path) = self.buckets.local_path(&item.bucket, &item.object_key) {
            return Ok(path);
        }
        let copy = dir.join("source");
        let body = self
            .buckets
            .read(&item.bucket, &item.object_key, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut body = tokio_util::io::StreamReader::new(body);
        let mut file = tokio::fs::File::create(&copy).await.map_err(|e| e.to_string())?;
        tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(|e| format!("cannot copy the source video: {e}"))?;
        Ok(copy)
    }

    /// Stores the finished output as a new object in the managed bucket.
    async fn store_output(&self, output: &Path, media: Media) -> Result<Encoded, String> {
        let file = tokio::fs::File::open(output)
            .await
            .map_err(|e| format!("cannot open the output: {e}"))?;
        let key = new_object_key();
        let body = ReaderStream::new(file).map_err(std::io::Error::other).boxed();
        let written = self
            .buckets
            .managed()
            .write(&key, body)
            .await
            .map_err(|e| format!("cannot store the output: {e}"))?;
        Ok(Encoded {
            object_key: key.to_string(),
            size: i64::try_from(written.size).unwrap_or(i64::MAX),
            checksum: written.checksum,
            mime_type: "video/mp4".into(),
            media,
            encoded_at: now(),
        })
    }

    /// Records `encoded` on `item` if it still holds the content it was made from; answers the
    /// rendition it replaced.
    async fn record(&self, item: &Item, encoded: &Encoded) -> Result<Option<Encoded>, String> {
        let failed = |e: crate::store::StoreError| format!("cannot record the rendition: {e}");
        let mut tx = self.store.write().await.map_err(failed)?;
        let before = item_rows::by_id(&mut tx, item.id).await.map_err(failed)?;
        if !item_rows::set_encoded(&mut tx, item, encoded).await.map_err(failed)? {
            return Err(format!(
                "item {} changed or was deleted while it was re-encoded; nothing was recorded",
                item.id
            ));
        }
        let event = ItemEvent {
            cause: Some(ItemCause::Rendition),
            ..ItemEvent::of(EventKind::ItemUpdated, before.as_ref().unwrap_or(item))
        };
        webhook_rows::record_items(&mut tx, &[event]).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(before.and_then(|b| b.encoded))
    }
}

impl Runner for ReencodeService {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(self.run_job(ctx))
    }
}
