//! Image sequences (image groups imported with `createVideo`) made into a video: their frames
//! laid out in the work directory under numbered names, in the item's order, and ffmpeg's
//! arguments that make each image one frame of an H.264 MP4.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures::{FutureExt, StreamExt, TryStreamExt};

use super::ffmpeg::{FASTSTART_MP4, H264, QUIET, args_of};
use crate::blobs::Buckets;
use crate::domain::item::{Frame, Item};

/// Frames per second of a video made of an image sequence: each image is shown for 1/25 s.
pub const SEQUENCE_FRAME_RATE: u32 = 25;

/// Frames copied from a cloud bucket at once.
const COPY_CONCURRENCY: usize = 8;

/// The image formats ffmpeg reads as a numbered sequence, by MIME type, with the file
/// extension that tells ffmpeg the format.
const READABLE: [(&str, &str); 6] = [
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/webp", "webp"),
    ("image/tiff", "tif"),
    ("image/bmp", "bmp"),
    ("image/gif", "gif"),
];

/// The file extension under which ffmpeg reads `frames` as a numbered sequence; an error
/// saying why it cannot when they are not all of one format it reads.
pub fn sequence_extension(frames: &[Frame]) -> Result<&'static str, String> {
    let first = frames.first().ok_or("the image sequence has no frames")?;
    let extension = READABLE
        .iter()
        .find(|(mime, _)| *mime == first.mime_type)
        .map(|(_, extension)| *extension)
        .ok_or_else(|| {
            format!(
                "frame 0 is {}; a video can be made of PNG, JPEG, WebP, TIFF, BMP or GIF images",
                first.mime_type
            )
        })?;
    match frames
        .iter()
        .enumerate()
        .find(|(_, frame)| frame.mime_type != first.mime_type)
    {
        Some((index, other)) => Err(format!(
            "frame 0 is {} and frame {index} is {}; the frames of a video must all be of one format",
            first.mime_type, other.mime_type
        )),
        None => Ok(extension),
    }
}

/// Lays the frames of image sequence `item` out in `dir` as `000000.EXT`, `000001.EXT`, …
/// (links to a local bucket's files, copies of a cloud bucket's objects); answers ffmpeg's
/// input pattern. Every frame must be of one format ffmpeg reads ([`sequence_extension`]).
pub(super) async fn lay_out(buckets: &Buckets, item: &Item, dir: &Path) -> Result<PathBuf, String> {
    let extension = sequence_extension(&item.frames)?;
    // Boxed: a `Send` future per frame (rustc cannot prove it through `buffer_unordered`).
    let placed: Vec<_> = item
        .frames
        .iter()
        .enumerate()
        .map(|(index, frame)| place(buckets, frame, dir.join(format!("{index:06}.{extension}"))).boxed())
        .collect();
    futures::stream::iter(placed)
        .buffer_unordered(COPY_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(dir.join(format!("%06d.{extension}")))
}

/// Puts `frame` at `path`: a link to its file in a local bucket, else a copy of its object.
async fn place(buckets: &Buckets, frame: &Frame, path: PathBuf) -> Result<(), String> {
    if let Some(file) = buckets.local_path(&frame.bucket, &frame.object_key) {
        return tokio::fs::symlink(&file, &path)
            .await
            .map_err(|e| format!("cannot link frame {}: {e}", frame.object_key));
    }
    let body = buckets
        .read(&frame.bucket, &frame.object_key, None)
        .await
        .map_err(|e| format!("cannot read frame {}: {e}", frame.object_key))?;
    let mut body = tokio_util::io::StreamReader::new(body);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| format!("cannot create a work file: {e}"))?;
    tokio::io::copy(&mut body, &mut file)
        .await
        .map_err(|e| format!("cannot copy frame {}: {e}", frame.object_key))?;
    Ok(())
}

/// ffmpeg's arguments to make the numbered images at `pattern` into an H.264 MP4 at `output`,
/// one frame per image at [`SEQUENCE_FRAME_RATE`]; every frame is fitted (scaled keeping its
/// aspect, then padded) into the first frame's size, rounded up to even, when that is known.
pub(super) fn sequence_args(pattern: &Path, output: &Path, first: &Frame) -> Vec<OsString> {
    let even = |n: i64| n + n % 2;
    let fit = match (first.width, first.height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => {
            let (w, h) = (even(width), even(height));
            format!("scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1")
        }
        _ => "scale=trunc(iw/2)*2:trunc(ih/2)*2".to_owned(),
    };
    let mut args = args_of([QUIET.as_slice()]);
    args.extend(["-framerate".into(), SEQUENCE_FRAME_RATE.to_string().into()]);
    args.extend(args_of([["-start_number", "0", "-i"].as_slice()]));
    args.push(pattern.into());
    args.extend(["-vf".into(), OsString::from(fit)]);
    args.extend(args_of([H264.as_slice(), FASTSTART_MP4.as_slice()]));
    args.push(output.into());
    args
}
