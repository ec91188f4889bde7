//! Running ffmpeg for a re-encode: whether a video needs one at all, the arguments that make a
//! browser-ready MP4, and the child process itself (killed on cancel, its stderr's tail kept
//! for the unit's error message without the server's paths).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::services::jobs::context::JobFailure;
use crate::services::probe::FfprobeOutput;

/// The message of a job that finds no ffmpeg to run.
pub const FFMPEG_MISSING: &str = "ffmpeg not found on PATH";

/// How much of ffmpeg's stderr is kept for a unit's error message, in bytes.
const STDERR_TAIL_BYTES: usize = 2000;

/// How many of ffmpeg's last stderr lines make a unit's error message.
const STDERR_TAIL_LINES: usize = 8;

/// Whether `probe` of content with MIME type `mime` shows a video every browser plays as it is:
/// MP4, one H.264 yuv420p video stream, and AAC audio or none.
pub(super) fn browser_ready(probe: &FfprobeOutput, mime: &str) -> bool {
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

/// ffmpeg's options that keep it quiet but for errors, never reading stdin, and let it replace
/// its output.
pub(super) const QUIET: [&str; 6] = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"];

/// The video every browser plays: H.264 in yuv420p, at a quality where artefacts are hard to see.
pub(super) const H264: [&str; 8] = [
    "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
];

/// An MP4 whose index comes before its media data, so that playback starts at once.
pub(super) const FASTSTART_MP4: [&str; 4] = ["-movflags", "+faststart", "-f", "mp4"];

/// `parts` as ffmpeg's arguments.
pub(super) fn args_of<'a>(parts: impl IntoIterator<Item = &'a [&'a str]>) -> Vec<OsString> {
    parts.into_iter().flatten().map(OsString::from).collect()
}

/// ffmpeg's arguments to turn `input` into a browser-ready MP4 at `output`.
pub(super) fn ffmpeg_args(input: &Path, output: &Path, remux: bool) -> Vec<OsString> {
    let mut args = args_of([QUIET.as_slice(), &["-i"]]);
    args.push(input.into());
    let streams: &[&str] = &["-map", "0:v:0", "-map", "0:a?"];
    let codecs = if remux {
        args_of([streams, &["-c", "copy"]])
    } else {
        args_of([
            streams,
            // Every frame at its own time: a variable frame rate stays variable (no frames
            // duplicated or dropped to reach a constant rate), so frame-indexed labels still fit.
            &["-fps_mode", "passthrough"],
            H264.as_slice(),
            &[
                "-vf",
                "scale=trunc(iw/2)*2:trunc(ih/2)*2",
                "-c:a",
                "aac",
                "-b:a",
                "160k",
            ],
        ])
    };
    args.extend(codecs);
    args.extend(args_of([FASTSTART_MP4.as_slice()]));
    args.push(output.into());
    args
}

/// The last `keep` bytes `stream` yields.
pub(super) async fn read_tail(mut stream: impl tokio::io::AsyncRead + Unpin, keep: usize) -> Vec<u8> {
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
pub(super) fn stderr_message(raw: &[u8], names: &[(&Path, &str)]) -> String {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    for (path, name) in names {
        text = text.replace(&*path.to_string_lossy(), name);
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n")
}

/// Runs ffmpeg with `args` until it exits, or until `stop` fires, when it is killed (and reaped)
/// first. A failure's message is the tail of its stderr.
pub(super) async fn run_ffmpeg(
    args: Vec<OsString>,
    stop: &CancellationToken,
    names: &[(&Path, &str)],
) -> Result<(), String> {
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
pub(super) async fn require_tools() -> Result<(), JobFailure> {
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
