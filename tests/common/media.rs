//! Small real media files made on the fly for item tests: PNG and JPEG (image crate), WAV (by
//! hand), PDF (lopdf), NIfTI and DICOM headers, and videos from ffmpeg's lavfi test sources
//! (H.264 MP4, VP9/Opus WebM, MPEG-4 AVI, a corrupt MP4), with ffprobe and box readers to check
//! what re-encoding made.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

/// Whether a command is on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether ffmpeg and ffprobe are installed. Under CI they must be (tests/run.sh installs them).
pub fn have_ffmpeg() -> bool {
    let present = on_path("ffmpeg") && on_path("ffprobe");
    if !present && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but ffmpeg/ffprobe are missing; run the suite with bash tests/run.sh");
    }
    present
}

/// An image of `w`×`h` in `format`.
fn image(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode image");
    out.into_inner()
}

/// A PNG of `w`×`h`.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    image(w, h, image::ImageFormat::Png)
}

/// A JPEG of `w`×`h`.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    image(w, h, image::ImageFormat::Jpeg)
}

/// `jpeg` with an EXIF segment whose Orientation tag is `orientation` (1 to 8), right after
/// its start-of-image marker.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "a JPEG");
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian, first directory at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry:
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation,
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT,
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value,
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next directory
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&u16::try_from(2 + 6 + tiff.len()).expect("short").to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    [&jpeg[..2], &segment, &jpeg[2..]].concat()
}

/// A 16-bit PCM WAV of silence: `rate` Hz, `channels`, `millis` long.
pub fn wav(rate: u32, channels: u16, millis: u32) -> Vec<u8> {
    let block = 2 * u32::from(channels);
    let data_len = rate * millis / 1000 * block;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * block).to_le_bytes());
    out.extend_from_slice(&(block as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

/// A PDF with `pages` empty pages.
pub fn pdf(pages: u32) -> Vec<u8> {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            let content = doc.add_object(Stream::new(dictionary! {}, b"BT ET".to_vec()));
            let page = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content,
                "MediaBox" => vec![0.into(), 0.into(), 200.into(), 200.into()],
            });
            page.into()
        })
        .collect();
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => pages }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("write pdf");
    out
}

/// A single-file NIfTI-1 volume (`.nii`): the 348-byte header, 4 bytes of extension flag, and
/// zeroed 8-bit voxels.
pub fn nifti(dims: &[i16]) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&2i16.to_le_bytes()); // datatype: unsigned char
    h[72..74].copy_from_slice(&8i16.to_le_bytes()); // bitpix
    h[108..112].copy_from_slice(&352f32.to_le_bytes()); // vox_offset
    h[344..348].copy_from_slice(b"n+1\0");
    let voxels: usize = dims.iter().map(|d| *d as usize).product();
    h.resize(352 + voxels, 0);
    h
}

/// A DICOM part-10 preamble (`DICM` at offset 128) and a few elements' worth of bytes.
pub fn dicom() -> Vec<u8> {
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, 0, 0, 0, 0]);
    out
}

/// Runs `ffmpeg -loglevel error -y ARGS DIR/NAME` and answers the file it wrote.
fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed making {name}");
    std::fs::read(&path).expect("read the clip")
}

/// A 2-second 320×240 25 fps H.264 MP4 from ffmpeg's test source, written to `dir`.
pub fn mp4(dir: &Path) -> Vec<u8> {
    ffmpeg(
        dir,
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=320x240:rate=25",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// Runs ffmpeg on a test clip of `seconds` at `size` (with a tone unless `silent`), then `args`.
fn clip(dir: &Path, name: &str, seconds: u32, size: &str, silent: bool, args: &[&str]) -> Vec<u8> {
    let video = format!("testsrc=duration={seconds}:size={size}:rate=25");
    let tone = format!("sine=frequency=440:duration={seconds}");
    let mut all = vec!["-f", "lavfi", "-i", video.as_str()];
    if !silent {
        all.extend(["-f", "lavfi", "-i", tone.as_str()]);
    }
    all.extend(args);
    ffmpeg(dir, name, &all)
}

/// A 1-second VP9 + Opus WebM with odd dimensions (321×241).
pub fn webm_vp9_opus(dir: &Path) -> Vec<u8> {
    let args = [
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-c:a",
        "libopus",
        "-shortest",
    ];
    clip(dir, "odd.webm", 1, "321x241", false, &args)
}

/// A 1-second MPEG-4 Part 2 AVI with PCM sound.
pub fn avi_mpeg4(dir: &Path) -> Vec<u8> {
    clip(
        dir,
        "raw.avi",
        1,
        "320x240",
        false,
        &["-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest"],
    )
}

/// A 1-second H.264 (yuv420p) + AAC MP4 as ffmpeg writes it by default: the index (`moov`)
/// after the media data (`mdat`), no faststart.
pub fn mp4_h264_aac(dir: &Path) -> Vec<u8> {
    let args = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"];
    clip(dir, "plain.mp4", 1, "320x240", false, &args)
}

/// A silent MPEG-4 AVI of `seconds` at `size`, quick to make and slow to transcode.
pub fn long_avi(dir: &Path, seconds: u32, size: &str) -> Vec<u8> {
    clip(dir, "long.avi", seconds, size, true, &["-c:v", "mpeg4", "-q:v", "31"])
}

/// An MP4 whose header is real and whose rest is not a video.
pub fn corrupt_mp4(dir: &Path) -> Vec<u8> {
    let mut bytes = mp4(dir);
    bytes.truncate(48);
    bytes.extend(b"not a video\n".repeat(2000));
    bytes
}

/// A phone-style clip with a variable frame rate: 60 HEVC frames at 30 fps whose timestamps
/// skip a frame's time every tenth frame (3.93 s of frames over 3.97 s), with two AAC tracks
/// (English and German), written to `dir`.
pub fn vfr_hevc_two_tracks(dir: &Path) -> Vec<u8> {
    ffmpeg(
        dir,
        "vfr.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=880:sample_rate=44100",
            "-frames:v",
            "60",
            "-t",
            "2.5",
            "-vf",
            "settb=1/90000,setpts='(N+floor(N/10))/30/TB'",
            "-fps_mode",
            "passthrough",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
            "-video_track_timescale",
            "90000",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=deu",
        ],
    )
}

/// A 2-second 320×240 H.264 MP4 whose display matrix turns it a quarter (a phone held upright),
/// written to `dir` as `rotated.mp4`: ffmpeg writes the matrix from a `rotate` tag on a remux.
pub fn rotated_mp4(dir: &Path) -> Vec<u8> {
    mp4(dir);
    let source = dir.join("testsrc.mp4");
    std::fs::rename(dir.join("clip.mp4"), &source).expect("rename");
    ffmpeg(
        dir,
        "rotated.mp4",
        &[
            "-i",
            source.to_str().expect("utf8"),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
        ],
    )
}

/// The first video stream's coded size and its display matrix's rotation (degrees
/// counter-clockwise, 0 without one), as ffprobe reads them.
pub fn coded_size_and_rotation(path: &Path) -> ((i64, i64), i64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-print_format",
            "json",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let stream = &json["streams"][0];
    let rotation = stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["rotation"].as_i64())
        .unwrap_or(0);
    let size = (
        stream["width"].as_i64().unwrap_or(0),
        stream["height"].as_i64().unwrap_or(0),
    );
    (size, rotation)
}

/// The presentation times of the first video stream's frames, in seconds, in order; and the
/// stream's time base tick, in seconds.
pub fn frame_times(path: &Path) -> (Vec<f64>, f64) {
    let run = |args: &[&str]| {
        let out = Command::new("ffprobe")
            .args(args)
            .arg(path)
            .output()
            .expect("run ffprobe");
        assert!(out.status.success(), "ffprobe failed on {}", path.display());
        String::from_utf8(out.stdout).expect("utf8")
    };
    let mut times: Vec<f64> = run(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
    ])
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
    .collect();
    times.sort_by(f64::total_cmp);
    let base = run(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=time_base",
        "-of",
        "csv=p=0",
    ]);
    let (num, den) = base.trim().split_once('/').expect("a time base");
    let tick = num.parse::<f64>().expect("num") / den.parse::<f64>().expect("den");
    (times, tick)
}

/// The language tag of each audio stream, in order.
pub fn audio_languages(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream_tags=language",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The streams of a media file: `(codec_type, codec_name, width, height, pix_fmt)`.
pub fn streams(path: &Path) -> Vec<(String, String, i64, i64, String)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let text = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap_or_default().to_owned();
    json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                text(s, "codec_type"),
                text(s, "codec_name"),
                s["width"].as_i64().unwrap_or_default(),
                s["height"].as_i64().unwrap_or_default(),
                text(s, "pix_fmt"),
            )
        })
        .collect()
}

/// The types of an MP4's top-level boxes, in file order (`ftyp`, `moov`, `mdat`, …).
pub fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        boxes.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        if size < 8 {
            break;
        }
        at += size;
    }
    boxes
}

/// The MD5 of the first video stream's packets (`-c copy -f md5`): equal for a stream copy.
pub fn video_stream_md5(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "md5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg md5 failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The blake3 of `bytes` as `b3sum` prints it (the b3sum tool itself when installed).
pub fn b3sum(dir: &Path, bytes: &[u8]) -> String {
    if on_path("b3sum") {
        let path = dir.join("b3sum-input");
        std::fs::write(&path, bytes).expect("write");
        let out = Command::new("b3sum").arg(&path).output().expect("b3sum");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace().next().unwrap_or_default().to_owned()
    } else {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "CI=true but b3sum is missing; run the suite with bash tests/run.sh"
        );
        blake3::hash(bytes).to_hex().to_string()
    }
}

/// A 1-second 320×240 MPEG transport stream (H.264), written to `dir`.
pub fn mpeg_ts(dir: &Path) -> Vec<u8> {
    ffmpeg(
        dir,
        "clip.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=320x240:rate=25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
        ],
    )
}

/// The Python of the venv that holds the packages whose test files the tests use (matplotlib,
/// nibabel), from `STOWAGE_TEST_CORPUS_PYTHON`; `None` skips those tests, except under CI where
/// it is an error (tests/run.sh installs them).
pub fn corpus_python() -> Option<String> {
    match std::env::var("STOWAGE_TEST_CORPUS_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but STOWAGE_TEST_CORPUS_PYTHON is not set; run the suite with bash tests/run.sh")
        }
        _ => None,
    }
}

/// Runs `script` with the corpus Python and parses what it prints as JSON: where a package's
/// test files are and what the package's own reader says of them.
pub fn ask_corpus(python: &str, script: &str) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-c", script])
        .output()
        .expect("run the corpus Python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from the corpus script")
}
