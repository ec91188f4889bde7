//! Reading what content is: the item type and MIME type from magic bytes (the extension only as
//! a fallback), and media metadata: image dimensions from the header (`imagesize`; HEIF's as
//! shown, `heif.rs`), PDF page
//! count (`lopdf`), NIfTI dimensions from its header, DICOM headers (`dicom.rs`, dicom-rs),
//! audio/video details from `ffprobe`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::blobs::source::Source;
use crate::domain::item::{AudioTrack, ItemType, Media};

pub mod dicom;
mod frames;
mod heif;
mod nifti;
mod orientation;
mod signatures;
mod svg;

use nifti::gunzip_head;
use nifti::pair_header_key;
pub use nifti::{NIFTI_MIME, nifti_dimensions};
use signatures::{bare_frame_sync, is_mpeg_ts, looks_like_text, looks_like_utf16_text};
pub use svg::SVG_MIME;

/// Bytes of the content's start that detection looks at.
pub const HEAD_BYTES: usize = 64 * 1024;
/// PDFs larger than this get no page count: the parser reads the whole file into memory.
pub const MAX_PDF_PROBE_BYTES: u64 = 64 * 1024 * 1024;
/// Images in a cloud bucket larger than this are not copied to a local file for their frames,
/// pages or a late EXIF orientation (their size still is, when their start lacks it).
pub const MAX_COPIED_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// How long ffprobe may run on one file.
const FFPROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// What detection found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    /// The item type.
    pub item_type: ItemType,
    /// The MIME type.
    pub mime_type: String,
    /// Media metadata.
    pub media: Media,
}

/// The item type and MIME type of content that starts with `head`, titled `title`; `size` is the
/// whole content's size.
pub fn sniff(head: &[u8], title: &str, size: u64) -> (ItemType, String) {
    let by_extension = extension_mime(title);
    let whole = head.len() as u64 >= size;
    if dicom::looks_like_dicom(head) {
        return (ItemType::DicomFile, DICOM_MIME.into());
    }
    if nifti_dimensions(head).is_some() {
        return (ItemType::Nifti, NIFTI_MIME.into());
    }
    if is_mpeg_ts(head) && !looks_like_text(head, whole) {
        return (ItemType::Video, MPEG_TS_MIME.into());
    }
    if size > 0 && looks_like_utf16_text(head) {
        return (ItemType::PlainText, "text/plain".into());
    }
    // Before `infer`, which calls an SVG with an XML declaration `text/xml`.
    if svg::root(head).is_some() {
        return (ItemType::Image, SVG_MIME.into());
    }
    // A bare frame sync is believed only when the name does not say the content is something
    // else than audio or video (`weights.bin`, say): ffprobe would run on it for nothing.
    let found = infer::get(head).filter(|_| {
        !bare_frame_sync(head)
            || by_extension
                .as_ref()
                .is_none_or(|m| matches!(ItemType::from_mime(m), ItemType::Audio | ItemType::Video))
    });
    if let Some(found) = found {
        let mime = found.mime_type();
        if mime == "image/heif" {
            return (ItemType::Image, heif::brand_mime(head).into());
        }
        if mime == "application/gzip" && nifti_dimensions(&gunzip_head(head, 540)).is_some() {
            return (ItemType::Nifti, NIFTI_MIME.into());
        }
        return (ItemType::from_mime(mime), mime.into());
    }
    if size > 0 && looks_like_text(head, whole) {
        let mime = by_extension
            .filter(|m| matches!(ItemType::from_mime(m), ItemType::PlainText | ItemType::Image))
            .unwrap_or_else(|| "text/plain".into());
        let item_type = match ItemType::from_mime(&mime) {
            ItemType::Image => ItemType::Image,
            _ => ItemType::PlainText,
        };
        return (item_type, mime);
    }
    match by_extension {
        Some(mime) => (ItemType::from_mime(&mime), mime),
        None => (ItemType::Other, "application/octet-stream".into()),
    }
}

/// The MIME type a title's extension names: `mime_guess`'s tables under the names browsers expect
/// (see [`canonical_mime`]), and DICOM's `.dcm` and `.dicom`, which they lack.
fn extension_mime(title: &str) -> Option<String> {
    let extension = std::path::Path::new(title).extension()?.to_str()?;
    if extension.eq_ignore_ascii_case("dcm") || extension.eq_ignore_ascii_case("dicom") {
        return Some(DICOM_MIME.into());
    }
    mime_guess::from_ext(extension)
        .first()
        .map(|m| canonical_mime(m.essence_str()).to_owned())
}

/// The MIME type of DICOM files.
const DICOM_MIME: &str = "application/dicom";

/// The MIME type of MPEG transport streams, as browsers and players expect it.
const MPEG_TS_MIME: &str = "video/mp2t";

/// The name browsers expect for a MIME type `mime_guess` gives another name
/// (`video/vnd.dlna.mpeg-tts` for `.ts`).
fn canonical_mime(mime: &str) -> &str {
    match mime {
        "video/vnd.dlna.mpeg-tts" => MPEG_TS_MIME,
        other => other,
    }
}

/// Whether the one-time warning about a missing ffprobe was logged.
static FFPROBE_MISSING_WARNED: AtomicBool = AtomicBool::new(false);

/// Where tools that read a whole object find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whole {
    /// A local file (image headers past the head, PDF page counts, ffprobe).
    File(PathBuf),
    /// A URL ffprobe can read with ranged requests (a signed URL of a cloud bucket).
    Url(String),
    /// Nothing: only the head is known.
    Unreachable,
}

impl Whole {
    /// A local file when there is one.
    pub fn file(path: Option<PathBuf>) -> Self {
        path.map_or(Whole::Unreachable, Whole::File)
    }
}

/// Whether [`complete`] would read more of content `probed` (of `size` bytes) from a local file
/// than from a URL: an image's size that its head did not hold, its frames, pages or late EXIF
/// (up to [`MAX_COPIED_IMAGE_BYTES`]), a PDF's page count. Content in a cloud bucket is copied to
/// a local file only then.
pub fn needs_local_file(probed: &Probed, size: u64) -> bool {
    match probed.item_type {
        ItemType::Image => {
            probed.media.width.is_none()
                || (image_needs_file(&probed.media, &probed.mime_type) && size <= MAX_COPIED_IMAGE_BYTES)
        }
        ItemType::Pdf => size <= MAX_PDF_PROBE_BYTES,
        _ => false,
    }
}

/// Detects the type of the content and reads its media metadata. `head` is the content's start
/// ([`HEAD_BYTES`]), `whole` where tools find the whole object.
pub async fn probe(head: &[u8], title: &str, size: u64, whole: Whole) -> Probed {
    complete(examine(head, title, size), size, whole).await
}

/// What the content's start alone tells: its type (see [`sniff`]), an image's dimensions when
/// its header holds them, a NIfTI volume's. Cheap and synchronous, so that it can run where the
/// content is read, while its start is still in a buffer.
pub fn examine(head: &[u8], title: &str, size: u64) -> Probed {
    let (item_type, mime_type) = sniff(head, title, size);
    let mut media = Media::default();
    match item_type {
        ItemType::Image if mime_type == SVG_MIME => {
            if let Some((width, height)) = svg::root(head).and_then(|root| root.size) {
                media.width = Some(width);
                media.height = Some(height);
            }
        }
        ItemType::Image => {
            // A HEIF image is measured as its boxes say it is shown; others (and a HEIF whose
            // boxes are not in its head) by their header and EXIF.
            if let Some(shown) = heif::is_heif(&mime_type).then(|| heif::shown(head)).flatten() {
                set_heif_appearance(&mut media, shown);
            } else {
                media.orientation = orientation::exif_orientation(head);
                if let Ok(dims) = imagesize::blob_size(head) {
                    set_image_size(&mut media, dims);
                }
            }
            if frames::counted_from_head(&mime_type) || head.len() as u64 >= size {
                set_count(&mut media, &mime_type, frames::count(head, &mime_type));
            }
        }
        ItemType::Nifti => {
            media.dimensions = nifti_dimensions(head).or_else(|| nifti_dimensions(&gunzip_head(head, 540)));
        }
        ItemType::DicomFile => {
            if let Some(read) = dicom::read(head) {
                read.describe(&mut media);
            }
        }
        _ => {}
    }
    Probed {
        item_type,
        mime_type,
        media,
    }
}

/// Records an image's dimensions as shown: its stored `dims`, swapped when its orientation
/// turns it a quarter.
fn set_image_size(media: &mut Media, dims: imagesize::ImageSize) {
    let (width, height) = match media.quarter_turned() {
        true => (dims.height, dims.width),
        false => (dims.width, dims.height),
    };
    media.width = i64::try_from(width).ok();
    media.height = i64::try_from(height).ok();
}

/// Records how a HEIF image is shown.
fn set_heif_appearance(media: &mut Media, shown: heif::Shown) {
    media.width = Some(shown.width);
    media.height = Some(shown.height);
    media.orientation = Some(shown.orientation);
}

/// Whether an image of MIME type `mime`, of which its first bytes told `media`, has more to
/// tell from its whole file: its size, a late EXIF orientation, its frames or pages.
fn image_needs_file(media: &Media, mime: &str) -> bool {
    media.width.is_none()
        || (media.orientation.is_none() && heif::is_heif(mime))
        || (frames::several(mime).is_some() && media.frame_count.is_none() && media.page_count.is_none())
}

/// Completes `media` of the image file at `path` (MIME type `mime`): see [`image_needs_file`].
fn read_image_file(mut media: Media, mime: &str, path: &std::path::Path) -> Media {
    if heif::is_heif(mime) {
        // A HEIF file whose boxes cannot be read is measured as other images are.
        match heif::shown_in(path) {
            Some(shown) => {
                set_heif_appearance(&mut media, shown);
                return media;
            }
            None => media.orientation = orientation::exif_orientation_in(path),
        }
    }
    if let Ok(dims) = imagesize::size(path) {
        set_image_size(&mut media, dims);
    }
    if media.frame_count.is_none() && media.page_count.is_none() {
        set_count(&mut media, mime, frames::count_file(path, mime));
    }
    media
}

/// Records `count` frames or pages of an image of MIME type `mime`.
fn set_count(media: &mut Media, mime: &str, count: Option<i64>) {
    match frames::several(mime) {
        Some(frames::Several::Frames) => media.frame_count = count,
        Some(frames::Several::Pages) => media.page_count = count,
        None => {}
    }
}

/// `probed`, content of `size` bytes at `key` of `source`, as the image file of a NIfTI pair
/// when it is one: content without a signature named `X.img` whose header file `X.hdr` beside
/// it is a pair's NIfTI header whose voxels take exactly `size` bytes (one ranged read of the
/// header's first bytes). Anything else is left as it was.
pub async fn as_pair_image(source: &Source, key: &str, size: u64, probed: Probed) -> Probed {
    let Some(header_key) = pair_header_key(key, probed.item_type) else {
        return probed;
    };
    let Ok((_, header)) = source.head_and_start(&header_key, nifti::MAX_HEADER_BYTES).await else {
        return probed;
    };
    match nifti::pair_dimensions(&header, size) {
        Some(dims) => Probed {
            item_type: ItemType::Nifti,
            mime_type: NIFTI_MIME.into(),
            media: Media {
                dimensions: Some(dims),
                ..Media::default()
            },
        },
        None => probed,
    }
}

/// Reads what [`examine`] could not from the whole object at `whole`: an image's dimensions past
/// its start, a PDF's page count, audio and video details (ffprobe). `size` is the content's.
pub async fn complete(probed: Probed, size: u64, whole: Whole) -> Probed {
    let Probed {
        mut item_type,
        mut mime_type,
        mut media,
    } = probed;
    let local = match &whole {
        Whole::File(path) => Some(path.clone()),
        _ => None,
    };
    match item_type {
        ItemType::Image if image_needs_file(&media, &mime_type) => {
            if let Some(path) = local {
                let (head_only, mime) = (media.clone(), mime_type.clone());
                let read = tokio::task::spawn_blocking(move || read_image_file(head_only, &mime, &path));
                // A reader that panicked leaves what the head told.
                if let Ok(read) = read.await {
                    media = read;
                }
            }
        }
        ItemType::DicomFile if media.width.is_none() && size > HEAD_BYTES as u64 => {
            // A header longer than the head (or a non-image object): read on, up to the limit.
            if let Some(path) = local
                && let Some(read) = tokio::task::spawn_blocking(move || dicom_header_of(&path))
                    .await
                    .ok()
                    .flatten()
            {
                read.describe(&mut media);
            }
        }
        ItemType::Pdf => {
            if let Some(path) = local.filter(|_| size <= MAX_PDF_PROBE_BYTES) {
                media.page_count = tokio::task::spawn_blocking(move || lopdf::Document::load_metadata(path).ok())
                    .await
                    .ok()
                    .flatten()
                    .map(|m| i64::from(m.page_count));
            }
        }
        ItemType::Video | ItemType::Audio => {
            let target = match whole {
                Whole::File(path) => Some(path.into_os_string()),
                Whole::Url(url) => Some(url.into()),
                Whole::Unreachable => None,
            };
            if let Some(target) = target
                && let Some(found) = ffprobe(&target).await
            {
                item_type = found.apply(&mut media).unwrap_or(item_type);
                if item_type == ItemType::Audio && mime_type.starts_with("video/") {
                    mime_type = mime_type.replacen("video/", "audio/", 1);
                }
            }
        }
        _ => {}
    }
    Probed {
        item_type,
        mime_type,
        media,
    }
}

/// The most of a DICOM file read for its header.
const MAX_DICOM_HEADER_BYTES: u64 = 4 << 20;

/// The DICOM header of the file at `path`, from at most its first [`MAX_DICOM_HEADER_BYTES`].
fn dicom_header_of(path: &std::path::Path) -> Option<dicom::Read> {
    let mut start = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_DICOM_HEADER_BYTES)
        .read_to_end(&mut start)
        .ok()?;
    dicom::read(&start)
}

/// What `ffprobe -print_format json -show_format -show_streams` prints, the parts used here.
#[derive(Debug, Default, Deserialize)]
pub struct FfprobeOutput {
    /// The streams of the container.
    #[serde(default)]
    pub streams: Vec<FfprobeStream>,
    /// The container.
    #[serde(default)]
    pub format: FfprobeFormat,
}

/// One stream as ffprobe reports it.
#[derive(Debug, Default, Deserialize)]
pub struct FfprobeStream {
    /// `video`, `audio`, `subtitle`, …
    #[serde(default)]
    pub codec_type: String,
    /// e.g. `h264`.
    pub codec_name: Option<String>,
    /// Pixels (video).
    pub width: Option<i64>,
    /// Pixels (video).
    pub height: Option<i64>,
    /// Average frame rate, a rational such as `25/1`.
    pub avg_frame_rate: Option<String>,
    /// Base frame rate, a rational.
    pub r_frame_rate: Option<String>,
    /// Samples per second, as text (audio).
    pub sample_rate: Option<String>,
    /// Channels (audio).
    pub channels: Option<i64>,
    /// Seconds, as text.
    pub duration: Option<String>,
    /// Pixel format, e.g. `yuv420p` (video).
    pub pix_fmt: Option<String>,
    /// Flags such as `attached_pic` (cover art is not video).
    #[serde(default)]
    pub disposition: std::collections::BTreeMap<String, i64>,
    /// Frames, as text, where the container records them (video).
    pub nb_frames: Option<String>,
    /// Tags such as `language` and, from older muxers, `rotate`.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Side data; a display matrix carries the video's rotation.
    #[serde(default)]
    pub side_data_list: Vec<FfprobeSideData>,
}

/// One side data entry of a stream.
#[derive(Debug, Default, Deserialize)]
pub struct FfprobeSideData {
    /// Degrees counter-clockwise (a display matrix's).
    pub rotation: Option<f64>,
}

impl FfprobeStream {
    /// Degrees the video is turned clockwise to be shown: its display matrix's rotation, else
    /// its `rotate` tag.
    fn clockwise_rotation(&self) -> i64 {
        let matrix = self.side_data_list.iter().find_map(|d| d.rotation);
        match matrix {
            Some(counter_clockwise) => -(counter_clockwise.round() as i64),
            None => self.tags.get("rotate").and_then(|r| r.trim().parse().ok()).unwrap_or(0),
        }
    }

    /// The stream as an audio track.
    fn audio_track(&self) -> AudioTrack {
        AudioTrack {
            codec: self.codec_name.clone(),
            channels: self.channels,
            sample_rate: self.sample_rate.as_deref().and_then(|r| r.parse().ok()),
            language: self.tags.get("language").filter(|l| l.as_str() != "und").cloned(),
        }
    }
}

/// The container as ffprobe reports it.
#[derive(Debug, Default, Deserialize)]
pub struct FfprobeFormat {
    /// Seconds, as text.
    pub duration: Option<String>,
    /// The demuxer's names, comma-separated, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: Option<String>,
}

/// Seconds as text to whole microseconds.
fn seconds_to_micros(text: &str) -> Option<i64> {
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1_000_000.0).round() as i64)
}

impl FfprobeOutput {
    /// Fills `media` from the first real video stream, else the first audio stream, and answers
    /// which type that makes the item (`None` when there is neither).
    pub fn apply(&self, media: &mut Media) -> Option<ItemType> {
        let container_duration = self.format.duration.as_deref().and_then(seconds_to_micros);
        let duration =
            |s: &FfprobeStream| container_duration.or_else(|| s.duration.as_deref().and_then(seconds_to_micros));
        let video = self
            .streams
            .iter()
            .find(|s| s.codec_type == "video" && s.disposition.get("attached_pic").copied().unwrap_or(0) == 0);
        let audio: Vec<&FfprobeStream> = self.streams.iter().filter(|s| s.codec_type == "audio").collect();
        if let Some(v) = video {
            let orientation = orientation::from_rotation(v.clockwise_rotation());
            media.orientation = Some(orientation);
            (media.width, media.height) = match media.quarter_turned() {
                true => (v.height, v.width),
                false => (v.width, v.height),
            };
            media.frame_count = v.nb_frames.as_deref().and_then(|n| n.trim().parse().ok());
            media.audio_tracks = Some(audio.iter().map(|a| a.audio_track()).collect());
            media.codec.clone_from(&v.codec_name);
            media.duration_us = duration(v);
            media.frame_rate = [&v.avg_frame_rate, &v.r_frame_rate]
                .into_iter()
                .flatten()
                .find(|r| r.as_str() != "0/0")
                .cloned();
            return Some(ItemType::Video);
        }
        let first = *audio.first()?;
        if audio.len() > 1 {
            media.audio_tracks = Some(audio.iter().map(|a| a.audio_track()).collect());
        }
        let audio = first;
        media.codec.clone_from(&audio.codec_name);
        media.duration_us = duration(audio);
        media.sample_rate = audio.sample_rate.as_deref().and_then(|r| r.parse().ok());
        media.channels = audio.channels;
        Some(ItemType::Audio)
    }
}

/// Why ffprobe gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum FfprobeError {
    /// It is not installed.
    #[error("ffprobe not found on PATH")]
    Missing,
    /// It could not read the file; the message is its stderr.
    #[error("ffprobe cannot read the file: {0}")]
    Unreadable(String),
    /// It could not be run.
    #[error("cannot run ffprobe: {0}")]
    Run(#[source] std::io::Error),
    /// It took longer than a minute.
    #[error("ffprobe timed out after {} s", FFPROBE_TIMEOUT.as_secs())]
    TimedOut,
    /// It printed something else than the JSON asked for.
    #[error("ffprobe printed unreadable JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Runs `ffprobe -print_format json -show_format -show_streams` on `path`.
pub async fn ffprobe_json(path: &OsStr) -> Result<FfprobeOutput, FfprobeError> {
    let run = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(FFPROBE_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => serde_json::from_slice(&out.stdout).map_err(FfprobeError::Json),
        Ok(Ok(out)) => Err(FfprobeError::Unreadable(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(FfprobeError::Missing),
        Ok(Err(e)) => Err(FfprobeError::Run(e)),
        Err(_) => Err(FfprobeError::TimedOut),
    }
}

/// Runs ffprobe on `path`. `None` when it is not installed (logged once per process), fails or
/// times out.
async fn ffprobe(path: &OsStr) -> Option<FfprobeOutput> {
    match ffprobe_json(path).await {
        Ok(out) => Some(out),
        Err(FfprobeError::Missing) => {
            if !FFPROBE_MISSING_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "ffprobe is not on PATH: audio and video items are stored without media metadata; install ffmpeg to get it"
                );
            }
            None
        }
        Err(FfprobeError::Unreadable(stderr)) => {
            tracing::debug!(%stderr, "ffprobe could not read the file");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "ffprobe gave no answer");
            None
        }
    }
}

#[cfg(test)]
mod tests;
