//! Frames and pages of the image formats that hold several: animated GIF (`gif`), APNG (`png`),
//! animated WebP (`image-webp`) and multi-page TIFF (`tiff`), the image-rs crates. Each reads
//! headers and chunk lists only, never decodes pixels, and gives up on a file it cannot read.

use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;

/// The most pages counted in a TIFF (a chain of directories could otherwise go on and on).
const MAX_TIFF_PAGES: i64 = 100_000;

/// What an image of MIME type `mime` holds several of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Several {
    /// Frames of an animation (GIF, APNG, WebP): `media.frame_count`.
    Frames,
    /// Pages (TIFF): `media.page_count`.
    Pages,
}

/// Whether images of MIME type `mime` may hold several frames or pages, and which.
pub fn several(mime: &str) -> Option<Several> {
    match mime {
        "image/gif" | "image/png" | "image/apng" | "image/webp" => Some(Several::Frames),
        "image/tiff" => Some(Several::Pages),
        _ => None,
    }
}

/// Whether the count of an image of MIME type `mime` is in its first bytes (an APNG's `acTL`
/// chunk comes before its image data); GIF, WebP and TIFF need the whole file.
pub fn counted_from_head(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/apng")
}

/// The frames or pages of the image of MIME type `mime` that `bytes` hold (see
/// [`counted_from_head`] for when its start is enough).
pub fn count(bytes: &[u8], mime: &str) -> Option<i64> {
    count_in(&mut Cursor::new(bytes), mime)
}

/// The frames or pages of the image file at `path`.
pub fn count_file(path: &Path, mime: &str) -> Option<i64> {
    count_in(&mut BufReader::new(std::fs::File::open(path).ok()?), mime)
}

fn count_in(source: &mut (impl BufRead + Seek), mime: &str) -> Option<i64> {
    match mime {
        "image/gif" => gif_frames(source),
        "image/png" | "image/apng" => {
            let reader = png::Decoder::new(source).read_info().ok()?;
            let frames = reader.info().animation_control().map_or(1, |a| a.num_frames);
            Some(i64::from(frames))
        }
        "image/webp" => Some(i64::from(
            image_webp::WebPDecoder::new(source).ok()?.num_frames().max(1),
        )),
        "image/tiff" => tiff_pages(source),
        _ => None,
    }
}

fn gif_frames(source: impl Read) -> Option<i64> {
    let mut options = gif::DecodeOptions::new();
    // The frames' pixel data is skipped over, not decompressed.
    options.skip_frame_decoding(true);
    let mut decoder = options.read_info(source).ok()?;
    let mut frames = 0;
    while decoder.next_frame_info().ok()?.is_some() {
        frames += 1;
    }
    Some(frames)
}

fn tiff_pages(source: impl Read + Seek) -> Option<i64> {
    let mut decoder = tiff::decoder::Decoder::new(source).ok()?;
    let mut pages = 1;
    while decoder.more_images() && pages < MAX_TIFF_PAGES {
        decoder.next_image().ok()?;
        pages += 1;
    }
    Some(pages)
}
