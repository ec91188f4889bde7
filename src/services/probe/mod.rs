//! Reading what content is: the item type and MIME type from magic bytes (the extension only as
//! a fallback), and media metadata: image dimensions from the header (`imagesize`), PDF page
//! count (`lopdf`), NIfTI dimensions from its header, audio/video details from `ffprobe`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::item::{ItemType, Media};

/// Bytes of the content's start that detection looks at.
pub const HEAD_BYTES: usize = 64 * 1024;
/// PDFs larger than this get no page count: the parser reads the whole file into memory.
pub const MAX_PDF_PROBE_BYTES: u64 = 64 * 1024 * 1024;
/// How long ffprobe may run on one file.
const FFPROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// The MIME type stowage gives NIfTI volumes.
pub const NIFTI_MIME: &str = "application/x-nifti";

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

/// Whether `head` starts a DICOM part-10 file: a 128-byte preamble, then `DICM`.
fn is_dicom(head: &[u8]) -> bool {
    head.get(128..132) == Some(b"DICM")
}

/// The dimensions in a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header, either byte order;
/// `None` when `header` is not one.
pub fn nifti_dimensions(header: &[u8]) -> Option<Vec<i64>> {
    let int32 = |at: usize, big: bool| -> Option<i32> {
        let b: [u8; 4] = header.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        })
    };
    let big = match (int32(0, false)?, int32(0, true)?) {
        (348 | 540, _) => false,
        (_, 348 | 540) => true,
        _ => return None,
    };
    let dims: Vec<i64> = if int32(0, big)? == 348 {
        if !matches!(header.get(344..348)?, b"n+1\0" | b"ni1\0") {
            return None;
        }
        (0..8)
            .map(|i| {
                let b: [u8; 2] = header.get(40 + 2 * i..42 + 2 * i)?.try_into().ok()?;
                Some(i64::from(if big {
                    i16::from_be_bytes(b)
                } else {
                    i16::from_le_bytes(b)
                }))
            })
            .collect::<Option<_>>()?
    } else {
        if !matches!(header.get(4..8)?, b"n+2\0" | b"ni2\0") {
            return None;
        }
        (0..8)
            .map(|i| {
                let b: [u8; 8] = header.get(16 + 8 * i..24 + 8 * i)?.try_into().ok()?;
                Some(if big {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                })
            })
            .collect::<Option<_>>()?
    };
    let rank = usize::try_from(*dims.first()?).ok().filter(|r| (1..=7).contains(r))?;
    Some(dims[1..=rank].to_vec())
}

/// The first bytes of a gzip stream, decompressed (at most `limit`).
fn gunzip_head(head: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(head)
        .take(limit as u64)
        .read_to_end(&mut out);
    out
}

/// Whether `head` looks like UTF-8 text: valid UTF-8 (a character cut off at the end of the
/// head allowed), no NUL.
fn looks_like_text(head: &[u8], whole: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !whole && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// Whether `head` starts with a bare MPEG-audio or ADTS frame sync rather than a container's
/// signature: two bytes, which about one binary file in twenty thousand starts with by chance.
fn bare_frame_sync(head: &[u8]) -> bool {
    head.first() == Some(&0xFF) && head.get(1).is_some_and(|b| b & 0xE0 == 0xE0)
}

/// The item type and MIME type of content that starts with `head`, titled `title`; `size` is the
/// whole content's size.
pub fn sniff(head: &[u8], title: &str, size: u64) -> (ItemType, String) {
    let by_extension = mime_guess::from_path(title).first();
    let whole = head.len() as u64 >= size;
    if is_dicom(head) {
        return (ItemType::DicomFile, "application/dicom".into());
    }
    if nifti_dimensions(head).is_some() {
        return (ItemType::Nifti, NIFTI_MIME.into());
    }
    // A bare frame sync is believed only when the name does not say the content is something
    // else than audio or video (`weights.bin`, say): ffprobe would run on it for nothing.
    let found = infer::get(head).filter(|_| {
        !bare_frame_sync(head)
            || by_extension
                .as_ref()
                .is_none_or(|m| matches!(ItemType::from_mime(m.essence_str()), ItemType::Audio | ItemType::Video))
    });
    if let Some(found) = found {
        let mime = found.mime_type();
        if mime == "application/gzip" && nifti_dimensions(&gunzip_head(head, 540)).is_some() {
            return (ItemType::Nifti, mime.into());
        }
        return (ItemType::from_mime(mime), mime.into());
    }
    if size > 0 && looks_like_text(head, whole) {
        let mime = by_extension
            .map(|m| m.essence_str().to_owned())
            .filter(|m| matches!(ItemType::from_mime(m), ItemType::PlainText | ItemType::Image))
            .unwrap_or_else(|| "text/plain".into());
        let item_type = match ItemType::from_mime(&mime) {
            ItemType::Image => ItemType::Image,
            _ => ItemType::PlainText,
        };
        return (item_type, mime);
    }
    match by_extension {
        Some(mime) => (ItemType::from_mime(mime.essence_str()), mime.essence_str().to_owned()),
        None => (ItemType::Other, "application/octet-stream".into()),
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
        ItemType::Image => {
            if let Ok(dims) = imagesize::blob_size(head) {
                set_image_size(&mut media, dims);
            }
        }
        ItemType::Nifti => {
            media.dimensions = nifti_dimensions(head).or_else(|| nifti_dimensions(&gunzip_head(head, 540)));
        }
        _ => {}
    }
    Probed {
        item_type,
        mime_type,
        media,
    }
}

/// Records an image's dimensions.
fn set_image_size(media: &mut Media, dims: imagesize::ImageSize) {
    media.width = i64::try_from(dims.width).ok();
    media.height = i64::try_from(dims.height).ok();
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
        ItemType::Image if media.width.is_none() => {
            if let Some(path) = local
                && let Some(dims) = tokio::task::spawn_blocking(move || imagesize::size(path).ok())
                    .await
                    .ok()
                    .flatten()
            {
                set_image_size(&mut media, dims);
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
        if let Some(v) = video {
            media.width = v.width;
            media.height = v.height;
            media.codec.clone_from(&v.codec_name);
            media.duration_us = duration(v);
            media.frame_rate = [&v.avg_frame_rate, &v.r_frame_rate]
                .into_iter()
                .flatten()
                .find(|r| r.as_str() != "0/0")
                .cloned();
            return Some(ItemType::Video);
        }
        let audio = self.streams.iter().find(|s| s.codec_type == "audio")?;
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
mod tests {
    use super::*;

    fn nifti1(dims: &[i16]) -> Vec<u8> {
        let mut h = vec![0u8; 348];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    /// A JPEG of `w`×`h` whose size (its SOF segment) comes after two 60 KiB APP1 segments, as
    /// a camera's EXIF thumbnail can push it past the first [`HEAD_BYTES`].
    fn jpeg_with_big_exif(w: u32, h: u32) -> Vec<u8> {
        let mut encoded = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(w, h)
            .write_to(&mut encoded, image::ImageFormat::Jpeg)
            .expect("encode");
        let encoded = encoded.into_inner();
        let mut out = encoded[..2].to_vec(); // SOI
        for _ in 0..2 {
            let payload = 60 * 1024;
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&u16::try_from(payload + 2).expect("segment length").to_be_bytes());
            out.extend(std::iter::repeat_n(0u8, payload));
        }
        out.extend_from_slice(&encoded[2..]);
        out
    }

    #[tokio::test]
    async fn image_dimensions_past_the_head_are_read_from_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("photo.jpg");
        let bytes = jpeg_with_big_exif(40, 30);
        std::fs::write(&path, &bytes).expect("write");
        let head = &bytes[..HEAD_BYTES];
        let size = bytes.len() as u64;
        let examined = examine(head, "photo.jpg", size);
        assert_eq!(examined.item_type, ItemType::Image);
        assert_eq!(examined.media.width, None, "the head alone holds no size");
        let probed = complete(examined, size, Whole::File(path)).await;
        assert_eq!((probed.media.width, probed.media.height), (Some(40), Some(30)));
        // Without the file there is nothing more to read.
        let unreachable = probe(head, "photo.jpg", size, Whole::Unreachable).await;
        assert_eq!(unreachable.media.width, None);
    }

    #[test]
    fn a_bare_frame_sync_is_audio_only_when_the_name_agrees() {
        let mut head = vec![0xFF, 0xF1, 0x50, 0x80];
        head.extend(std::iter::repeat_n(0x9C, 1000));
        let size = head.len() as u64;
        assert_eq!(sniff(&head, "tone.aac", size).0, ItemType::Audio);
        assert_eq!(sniff(&head, "tone", size).0, ItemType::Audio);
        assert_eq!(
            sniff(&head, "weights.bin", size),
            (ItemType::Other, "application/octet-stream".to_owned())
        );
        // A container's signature is believed whatever the name.
        let id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00rest";
        assert_eq!(sniff(id3, "x.bin", 1000).0, ItemType::Audio);
    }

    #[test]
    fn nifti_headers_give_dimensions() {
        assert_eq!(nifti_dimensions(&nifti1(&[64, 64, 30])), Some(vec![64, 64, 30]));
        let mut big = nifti1(&[]);
        big[0..4].copy_from_slice(&348i32.to_be_bytes());
        big[40..42].copy_from_slice(&2i16.to_be_bytes());
        big[42..44].copy_from_slice(&5i16.to_be_bytes());
        big[44..46].copy_from_slice(&6i16.to_be_bytes());
        assert_eq!(nifti_dimensions(&big), Some(vec![5, 6]));
        let mut two = vec![0u8; 540];
        two[0..4].copy_from_slice(&540i32.to_le_bytes());
        two[4..8].copy_from_slice(b"n+2\0");
        two[16..24].copy_from_slice(&1i64.to_le_bytes());
        two[24..32].copy_from_slice(&9i64.to_le_bytes());
        assert_eq!(nifti_dimensions(&two), Some(vec![9]));
        assert_eq!(nifti_dimensions(b"not a header"), None);
        let mut wrong_magic = nifti1(&[2, 2]);
        wrong_magic[344] = b'x';
        assert_eq!(nifti_dimensions(&wrong_magic), None);
    }

    #[test]
    fn magic_beats_the_extension() {
        let png = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13];
        assert_eq!(sniff(&png, "photo.txt", 12), (ItemType::Image, "image/png".into()));
        let mut dicom = vec![0u8; 132];
        dicom[128..].copy_from_slice(b"DICM");
        assert_eq!(sniff(&dicom, "x.bin", 132).0, ItemType::DicomFile);
        let cases: [(&[u8], &str, ItemType, &str); 4] = [
            (b"a,b\n1,2\n", "t.csv", ItemType::PlainText, "text/csv"),
            (b"plain words", "notes", ItemType::PlainText, "text/plain"),
            (b"\0\x01\x02", "clip.mp4", ItemType::Video, "video/mp4"),
            (b"\0\x01\x02", "blob", ItemType::Other, "application/octet-stream"),
        ];
        for (head, title, item_type, mime) in cases {
            assert_eq!(
                sniff(head, title, head.len() as u64),
                (item_type, mime.to_owned()),
                "{title}"
            );
        }
        assert_eq!(sniff(b"", "empty", 0).0, ItemType::Other);
        // A multi-byte character cut off by the end of the head is still text.
        let cut = "é".repeat(10);
        assert_eq!(sniff(&cut.as_bytes()[..5], "t", 20).0, ItemType::PlainText);
    }

    #[test]
    fn gzipped_nifti_is_recognised() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &nifti1(&[3, 4])).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        assert_eq!(sniff(&bytes, "scan.nii.gz", bytes.len() as u64).0, ItemType::Nifti);
    }

    #[test]
    fn ffprobe_output_fills_media() {
        let json = r#"{"streams":[
            {"codec_type":"video","codec_name":"mjpeg","width":1,"height":1,"disposition":{"attached_pic":1}},
            {"codec_type":"video","codec_name":"h264","width":320,"height":240,"avg_frame_rate":"25/1","disposition":{"attached_pic":0}},
            {"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":2}],
            "format":{"duration":"2.000000"}}"#;
        let out: FfprobeOutput = serde_json::from_str(json).expect("json");
        let mut media = Media::default();
        assert_eq!(out.apply(&mut media), Some(ItemType::Video));
        assert_eq!((media.width, media.height), (Some(320), Some(240)));
        assert_eq!(media.codec.as_deref(), Some("h264"));
        assert_eq!(media.duration_us, Some(2_000_000));
        assert_eq!(media.fps(), Some(25.0));

        let audio: FfprobeOutput = serde_json::from_str(
            r#"{"streams":[{"codec_type":"audio","codec_name":"pcm_s16le","sample_rate":"8000","channels":1,"duration":"0.5"}],"format":{}}"#,
        )
        .expect("json");
        let mut media = Media::default();
        assert_eq!(audio.apply(&mut media), Some(ItemType::Audio));
        assert_eq!(media.sample_rate, Some(8000));
        assert_eq!(media.duration_us, Some(500_000));
    }
}
