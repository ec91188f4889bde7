//! Small real media files made on the fly for item tests: PNG and JPEG (image crate), WAV (by
//! hand), PDF (lopdf), NIfTI and DICOM headers, an MP4 from ffmpeg's lavfi test source.
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

/// A 2-second 320×240 25 fps H.264 MP4 from ffmpeg's test source, written to `dir`.
pub fn mp4(dir: &Path) -> Vec<u8> {
    let path = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=320x240:rate=25",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(&path).expect("read mp4")
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
