//! NIfTI volumes: their dimensions from a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header in
//! either byte order, whole (`.nii`), gzipped (`.nii.gz`) or as a pair: a header file `X.hdr`
//! (magic `ni1`/`ni2`) beside an image file `X.img` of bare voxels, which has no signature of
//! its own and is known by its header.

use std::io::Read;

use crate::domain::item::ItemType;

/// The MIME type stowage gives NIfTI volumes.
pub const NIFTI_MIME: &str = "application/x-nifti";

/// The largest NIfTI header, in bytes: what is read of a pair's header file.
pub const MAX_HEADER_BYTES: usize = 540;

/// What a NIfTI header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The size along each dimension.
    pub dims: Vec<i64>,
    /// Bits per voxel.
    pub bitpix: i64,
    /// Whether the voxels are in a separate image file (`ni1`/`ni2`) rather than after the
    /// header (`n+1`/`n+2`).
    pub pair: bool,
}

/// The dimensions in a NIfTI header, `None` when `header` is not one.
pub fn nifti_dimensions(header: &[u8]) -> Option<Vec<i64>> {
    read_header(header).map(|h| h.dims)
}

/// Reads a NIfTI-1 or NIfTI-2 header in either byte order.
pub fn read_header(header: &[u8]) -> Option<Header> {
    let int = |at: usize, len: usize, big: bool| -> Option<i64> {
        let bytes = header.get(at..at + len)?;
        let mut full = [0u8; 8];
        if big {
            full[8 - len..].copy_from_slice(bytes);
            let value = i64::from_be_bytes(full);
            Some(value << (64 - 8 * len) >> (64 - 8 * len))
        } else {
            full[..len].copy_from_slice(bytes);
            let value = i64::from_le_bytes(full);
            Some(value << (64 - 8 * len) >> (64 - 8 * len))
        }
    };
    let big = match (int(0, 4, false)?, int(0, 4, true)?) {
        (348 | 540, _) => false,
        (_, 348 | 540) => true,
        _ => return None,
    };
    // (magic's offset, dim[]'s offset, one dimension's bytes, bitpix's offset)
    let (magic_at, dims_at, dim_len, bitpix_at) = if int(0, 4, big)? == 348 {
        (344, 40, 2, 72)
    } else {
        (4, 16, 8, 14)
    };
    let pair = match header.get(magic_at..magic_at + 4)? {
        b"n+1\0" | b"n+2\0" => false,
        b"ni1\0" | b"ni2\0" => true,
        _ => return None,
    };
    let dims: Vec<i64> = (0..8)
        .map(|i| int(dims_at + dim_len * i, dim_len, big))
        .collect::<Option<_>>()?;
    let rank = usize::try_from(*dims.first()?).ok().filter(|r| (1..=7).contains(r))?;
    Some(Header {
        dims: dims[1..=rank].to_vec(),
        bitpix: int(bitpix_at, 2, big)?,
        pair,
    })
}

/// The first bytes of a gzip stream, decompressed (at most `limit`).
pub fn gunzip_head(head: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(head)
        .take(limit as u64)
        .read_to_end(&mut out);
    out
}

/// The key of the header file of `key` when `key`, of `item_type`, may be the image file of a
/// NIfTI pair: content without a signature (OTHER) named `….img`.
pub fn pair_header_key(key: &str, item_type: ItemType) -> Option<String> {
    let stem = key.strip_suffix(".img").or_else(|| key.strip_suffix(".IMG"))?;
    (item_type == ItemType::Other && !stem.is_empty() && !stem.ends_with('/')).then(|| {
        let extension = if key.ends_with(".img") { "hdr" } else { "HDR" };
        format!("{stem}.{extension}")
    })
}

/// The dimensions of the volume whose voxels are the `size` bytes of a pair's image file, when
/// `header` (the start of its header file) is a pair's NIfTI header whose voxels take exactly
/// `size` bytes.
pub fn pair_dimensions(header: &[u8], size: u64) -> Option<Vec<i64>> {
    let header = read_header(header).filter(|h| h.pair)?;
    let bits = header
        .dims
        .iter()
        .try_fold(header.bitpix, |bits, dim| bits.checked_mul(*dim))?;
    (bits > 0 && u64::try_from(bits).ok()? == size.checked_mul(8)?).then_some(header.dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian NIfTI-1 header with `magic`, dimensions `dims` and `bitpix`.
    fn nifti1(magic: &[u8; 4], dims: &[i16], bitpix: i16) -> Vec<u8> {
        let mut h = vec![0u8; 348];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[72..74].copy_from_slice(&bitpix.to_le_bytes());
        h[344..348].copy_from_slice(magic);
        h
    }

    #[test]
    fn a_pair_header_names_the_size_of_its_image_file() {
        let header = nifti1(b"ni1\0", &[4, 5, 6], 16);
        assert_eq!(pair_dimensions(&header, 4 * 5 * 6 * 2), Some(vec![4, 5, 6]));
        assert_eq!(pair_dimensions(&header, 4 * 5 * 6 * 2 + 1), None, "not its voxels");
        let single = nifti1(b"n+1\0", &[4, 5, 6], 16);
        assert_eq!(pair_dimensions(&single, 4 * 5 * 6 * 2), None, "a single file's header");
        let huge = nifti1(b"ni1\0", &[i16::MAX; 7], i16::MAX);
        assert_eq!(pair_dimensions(&huge, 1), None, "no overflow");
    }

    #[test]
    fn only_signatureless_img_files_look_for_a_header() {
        assert_eq!(
            pair_header_key("a/brain.img", ItemType::Other),
            Some("a/brain.hdr".into())
        );
        assert_eq!(
            pair_header_key("A/BRAIN.IMG", ItemType::Other),
            Some("A/BRAIN.HDR".into())
        );
        assert_eq!(pair_header_key("a/brain.img", ItemType::Image), None);
        assert_eq!(pair_header_key("a/.img", ItemType::Other), None);
        assert_eq!(pair_header_key("a/brain.nii", ItemType::Other), None);
    }
}
