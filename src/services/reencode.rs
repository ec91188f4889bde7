//! Re-encoding videos so every browser plays them (job kind REENCODE).
//!
//! Each video is one unit. A video already H.264 (yuv420p) with AAC audio (or none) in MP4 is
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

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::folders::now;
use super::items::{check_batch, id_list, new_object_key, remove_managed_objects, visible_items};
use super::jobs::context::{JobContext, JobFailure};
use super::jobs::{JobService, Runner, Submission, Submitted};
use super::probe::{FfprobeOutput, ffprobe_json};
use super::{ServiceError, field};
use crate::blobs::Buckets;
use crate::config::MANAGED_BUCKET;
use crate::domain::caller::{Access, Caller};
use crate::domain::item::{Encoded, Item, ItemType, Media};
use crate::domain::job::JobKind;
use crate::store::{Store, items as item_rows};

/// The message of a job that finds no ffmpeg to run.
pub const FFMPEG_MISSING: &str = "ffmpeg not found on PATH";
/// The longest `process_title`, in bytes.
const MAX_TITLE_BYTES: usize = 255;
/// How much of ffmpeg's stderr is kept for a unit's error message, in bytes.
const STDERR_TAIL_BYTES: usize = 2000;
/// How many of ffmpeg's last stderr lines make a unit's error message.
const STDERR_TAIL_LINES: usize = 8;

/// Body of `POST /v1/reencode`, and the parameters of a REENCODE job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReencodeRequest {
    /// The videos (1 to 1000), which the caller must be able to change.
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
    /// An earlier attempt of this job already did it.
    Earlier,
}

/// The result of a REENCODE job.
#[derive(Debug, Clone, Default, Serialize)]
struct Tally {
    process_title: Option<String>,
    remuxed: u64,
    transcoded: u64,
    done_by_earlier_attempt: u64,
}

impl Tally {
    fn count(&mut self, mode: Mode) {
        match mode {
            Mode::Remuxed => self.remuxed += 1,
            Mode::Transcoded => self.transcoded += 1,
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

/// Whether `probe` of content with MIME type `mime` shows a video every browser plays as it is:
/// MP4, one H.264 yuv420p video stream, and AAC audio or none.
fn browser_ready(probe: &FfprobeOutput, mime: &str) -> bool {
    let mp4 = mime == "video/mp4"
        && probe
            .format
            .format_name
            .as_deref()
            .is_some_and(|names| names.split(',').any(|n| n == "mp4"));
    let videos: Vec<_> = probe
        .streams
        .iter()
        .filter(|s| s.codec_type == "video" && s.disposition.get("attached_pic").copied().unwrap_or(0) == 0)
        .collect();
    let h264 = matches!(videos.as_slice(), [v] if v.codec_name.as_deref() == Some("h264")
        && matches!(v.pix_fmt.as_deref(), Some("yuv420p" | "yuvj420p")));
    let aac = probe
        .streams
        .iter()
        .filter(|s| s.codec_type == "audio")
        .all(|s| s.codec_name.as_deref() == Some("aac"));
    mp4 && h264 && aac
}

/// ffmpeg's arguments to turn `input` into a browser-ready MP4 at `output`.
fn ffmpeg_args(input: &Path, output: &Path, remux: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i"]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.push(input.into());
    let codecs: &[&str] = if remux {
        &["-map", "0:v:0", "-map", "0:a?", "-c", "copy"]
    } else {
        &[
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
        ]
    };
    args.extend(codecs.iter().map(OsString::from));
    args.extend(["-movflags", "+faststart", "-f", "mp4"].map(OsString::from));
    args.push(output.into());
    args
}

/// The last `keep` bytes `stream` yields.
async fn read_tail(mut stream: impl tokio::io::AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 2 * keep {
            buf.drain(..buf.len() - keep);
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
    }
    buf
}

/// The last lines of ffmpeg's stderr, with the work paths named for what they are (clients do
/// not need the server's directories).
fn stderr_message(raw: &[u8], names: &[(&Path, &str)]) -> String {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    for (path, name) in names {
        text = text.replace(&*path.to_string_lossy(), name);
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n")
}

/// Runs ffmpeg with `args` until it exits, or until `stop` fires, when it is killed (and reaped)
/// first. A failure's message is the tail of its stderr.
async fn run_ffmpeg(args: Vec<OsString>, stop: &CancellationToken, names: &[(&Path, &str)]) -> Result<(), String> {
    let mut child = Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FFMPEG_MISSING.to_owned(),
            _ => format!("cannot start ffmpeg: {e}"),
        })?;
    let tail = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(read_tail(stderr, STDERR_TAIL_BYTES)));
    let status = tokio::select! {
        status = child.wait() => Some(status),
        () = stop.cancelled() => None,
    };
    let Some(status) = status else {
        // Kill and wait for it, so nothing writes into the work directory once the job ends.
        if let Err(error) = child.kill().await {
            tracing::warn!(%error, "cannot kill ffmpeg");
        }
        return Err("cancelled".into());
    };
    let status = status.map_err(|e| format!("cannot wait for ffmpeg: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let raw = match tail {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let message = stderr_message(&raw, names);
    Err(if message.is_empty() {
        format!("ffmpeg failed ({status}) without a message")
    } else {
        format!("ffmpeg failed: {message}")
    })
}

/// Fails the job at once when ffmpeg or ffprobe cannot be run.
async fn require_tools() -> Result<(), JobFailure> {
    for tool in ["ffmpeg", "ffprobe"] {
        let ran = Command::new(tool)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        match ran {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JobFailure::Fatal(format!("{tool} not found on PATH")));
            }
            Err(e) => return Err(JobFailure::Fatal(format!("cannot run {tool}: {e}"))),
        }
    }
    Ok(())
}

/// Why an item cannot be re-encoded, in the order messages list them.
const REFUSALS: [&str; 4] = [
    "not found",
    "in folders you may only read",
    "not videos",
    "tombstones with no content",
];

/// The index in [`REFUSALS`] of why `found` (an item the caller can see, with its access)
/// cannot be re-encoded; `None` when it can.
fn refusal(found: Option<&(Item, Access)>) -> Option<usize> {
    match found {
        None => Some(0),
        Some((_, access)) if *access != Access::Write => Some(1),
        Some((item, _)) if item.item_type != ItemType::Video => Some(2),
        Some((item, _)) if item.is_tombstone => Some(3),
        Some(_) => None,
    }
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
        let mut conn = self.store.read().await?;
        let found: BTreeMap<Uuid, (Item, Access)> = visible_items(&mut conn, caller, &req.item_ids)
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
        let problems: Vec<String> = refused
            .into_iter()
            .map(|(why, ids)| format!("{}: {}", REFUSALS[why], id_list(&ids)))
            .collect();
        if !problems.is_empty() {
            let message = format!(
                "item_ids: only videos you can change can be re-encoded; leave out those {}",
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
        let params = serde_json::to_value(&req).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let submission = Submission {
            kind: JobKind::Reencode,
            folder_id,
            params,
            idempotency_key,
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
        if item.item_type != ItemType::Video || item.is_tombstone {
            return Err(format!("item {id} is no longer a video with content"));
        }
        let dir = work.join(id.to_string());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot create a work directory: {e}"))?;
        let source = self.local_source(&item, &dir).await?;
        let remux = !force
            && ffprobe_json(source.as_os_str())
                .await
                .is_ok_and(|probe| browser_ready(&probe, &item.mime_type));
        let output = dir.join("output.mp4");
        {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| "the re-encoder is shutting down".to_owned())?;
            let names = [(source.as_path(), "the source video"), (output.as_path(), "the output")];
            run_ffmpeg(ffmpeg_args(&source, &output, remux), stop, &names).await?;
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
        Ok(if remux { Mode::Remuxed } else { Mode::Transcoded })
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
        tx.commit().await.map_err(|e| failed(e.into()))?;
        Ok(before.and_then(|b| b.encoded))
    }
}

impl Runner for ReencodeService {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(self.run_job(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: &str) -> FfprobeOutput {
        serde_json::from_str(json).expect("ffprobe json")
    }

    #[test]
    fn only_h264_yuv420p_with_aac_in_mp4_is_remuxed() {
        let mp4 = r#"{"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"},"streams":[
            {"codec_type":"video","codec_name":"h264","pix_fmt":"yuv420p"},{"codec_type":"audio","codec_name":"aac"}]}"#;
        assert!(browser_ready(&probe(mp4), "video/mp4"));
        assert!(!browser_ready(&probe(mp4), "video/quicktime"));
        let silent = r#"{"format":{"format_name":"mov,mp4"},"streams":[{"codec_type":"video","codec_name":"h264","pix_fmt":"yuv420p"}]}"#;
        assert!(browser_ready(&probe(silent), "video/mp4"));
        for other in [
            r#"{"format":{"format_name":"mov,mp4"},"streams":[{"codec_type":"video","codec_name":"h264","pix_fmt":"yuv444p"}]}"#,
            r#"{"format":{"format_name":"mov,mp4"},"streams":[{"codec_type":"video","codec_name":"hevc","pix_fmt":"yuv420p"}]}"#,
            r#"{"format":{"format_name":"mov,mp4"},"streams":[{"codec_type":"video","codec_name":"h264","pix_fmt":"yuv420p"},{"codec_type":"audio","codec_name":"opus"}]}"#,
            r#"{"format":{"format_name":"matroska,webm"},"streams":[{"codec_type":"video","codec_name":"h264","pix_fmt":"yuv420p"}]}"#,
        ] {
            assert!(!browser_ready(&probe(other), "video/mp4"), "{other}");
        }
    }

    #[test]
    fn arguments_copy_or_transcode_with_faststart() {
        let remux = ffmpeg_args(Path::new("/in"), Path::new("/out.mp4"), true);
        let text: Vec<String> = remux.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(text.windows(2).any(|w| w == ["-c", "copy"]));
        assert!(text.windows(2).any(|w| w == ["-movflags", "+faststart"]));
        let transcode = ffmpeg_args(Path::new("/in"), Path::new("/out.mp4"), false);
        let text: Vec<String> = transcode.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(text.windows(2).any(|w| w == ["-c:v", "libx264"]));
        assert!(text.windows(2).any(|w| w == ["-pix_fmt", "yuv420p"]));
        assert_eq!(text.last().map(String::as_str), Some("/out.mp4"));
    }

    #[test]
    fn stderr_keeps_the_last_lines_without_server_paths() {
        let raw = b"a\nb\n/data/work/x/src.avi: Invalid data found when processing input\n";
        let message = stderr_message(raw, &[(Path::new("/data/work/x/src.avi"), "the source video")]);
        assert!(
            message.ends_with("the source video: Invalid data found when processing input"),
            "{message}"
        );
        let many: String = (0..20).map(|i| format!("line {i}\n")).collect();
        assert_eq!(stderr_message(many.as_bytes(), &[]).lines().count(), STDERR_TAIL_LINES);
    }
}
