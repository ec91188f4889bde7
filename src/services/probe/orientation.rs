//! Which way up content is shown: an image's EXIF Orientation tag (read with kamadak-exif from
//! JPEG, TIFF, PNG, WebP and HEIF containers) and a video's rotation (ffprobe's display matrix),
//! both told as an EXIF Orientation value (1 to 8).

use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

/// The EXIF Orientation of the image that `bytes` (its start, or the whole file) hold; `None`
/// without EXIF data or the tag, or with a value outside 1 to 8.
pub fn exif_orientation(bytes: &[u8]) -> Option<i64> {
    read_orientation(&mut Cursor::new(bytes))
}

/// The EXIF Orientation of the image file at `path` (see [`exif_orientation`]).
pub fn exif_orientation_in(path: &Path) -> Option<i64> {
    read_orientation(&mut BufReader::new(std::fs::File::open(path).ok()?))
}

fn read_orientation(source: &mut (impl BufRead + Seek)) -> Option<i64> {
    let exif = exif::Reader::new().read_from_container(source).ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let value = i64::from(field.value.get_uint(0)?);
    (1..=8).contains(&value).then_some(value)
}

/// The EXIF Orientation of a video shown turned `clockwise` degrees (0, 90, 180 or 270; other
/// angles are not a quarter turn and count as 1).
pub fn from_rotation(clockwise: i64) -> i64 {
    match clockwise.rem_euclid(360) {
        90 => 6,
        180 => 3,
        270 => 8,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_are_told_as_exif_orientations() {
        assert_eq!([0, 90, 180, 270, -90, 45].map(from_rotation), [1, 6, 3, 8, 8, 1]);
    }

    #[test]
    fn a_jpeg_without_exif_has_no_orientation() {
        assert_eq!(exif_orientation(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
    }
}
