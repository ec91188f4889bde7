//! How a HEIF image (HEIC, AVIF) is shown: its primary item's size as stored (`ispe`), cropped by
//! its clean aperture (`clap`), turned (`irot`) and mirrored (`imir`) in the order the item lists
//! them, read from the file's `meta` box with mp4-atom (the maintained ISOBMFF box reader; it
//! reads HEIF's item properties). The pixels are never decoded.
//!
//! A HEIF decoder applies these transforms before anything is shown, so the EXIF Orientation a
//! HEIF file may also carry does not turn it again; the orientation told here is the one its
//! `irot`/`imir` make, as an EXIF value. `imir`'s axis is read as libheif reads it (0 flips top
//! to bottom, 1 left to right), as the encoders that write it do.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use mp4_atom::{Any, Atom, DecodeMaybe, Header, Iprp, Meta, Pitm};

/// The most bytes of a file's `meta` box read from a local file.
const MAX_META_BYTES: u64 = 4 * 1024 * 1024;

/// The most top-level boxes walked looking for `meta`.
const MAX_TOP_LEVEL_BOXES: usize = 64;

/// A HEIF image as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Pixels across, as shown.
    pub width: i64,
    /// Pixels down, as shown.
    pub height: i64,
    /// The EXIF Orientation (1 to 8) its rotation and mirroring amount to.
    pub orientation: i64,
}

/// Whether content of MIME type `mime` is a HEIF image.
pub fn is_heif(mime: &str) -> bool {
    matches!(mime, "image/heic" | "image/heif" | "image/avif")
}

/// The MIME type of HEIF content by its major brand: `image/heic` for HEVC-coded images (what
/// phones write), `image/avif` for AV1-coded ones, else `image/heif`.
pub fn brand_mime(head: &[u8]) -> &'static str {
    match head.get(4..12) {
        Some([b'f', b't', b'y', b'p', brand @ ..]) => match brand {
            b"heic" | b"heix" | b"heim" | b"heis" => "image/heic",
            b"avif" | b"avis" => "image/avif",
            _ => "image/heif",
        },
        _ => "image/heif",
    }
}

/// How the HEIF image whose start is `head` is shown; `None` when its `meta` box is not wholly
/// in `head` or does not describe a primary image's size.
pub fn shown(head: &[u8]) -> Option<Shown> {
    let mut rest = head;
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        let mut at = rest;
        let header = Header::decode_maybe(&mut at).ok()??;
        let body = header.size.unwrap_or(at.len());
        if header.kind == Meta::KIND {
            let meta = Meta::decode_maybe(&mut rest).ok()??;
            return of_meta(&meta);
        }
        if body > at.len() {
            return None;
        }
        rest = &at[body..];
    }
    None
}

/// How the HEIF image file at `path` is shown: its `meta` box found by walking the top-level
/// boxes, wherever it is (see [`shown`]).
pub fn shown_in(path: &Path) -> Option<Shown> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut offset = 0u64;
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        let mut start = [0u8; 16];
        file.seek(SeekFrom::Start(offset)).ok()?;
        let read = read_up_to(&mut file, &mut start)?;
        let mut at = &start[..read];
        let header = Header::decode_maybe(&mut at).ok()??;
        let header_len = (read - at.len()) as u64;
        let body = header.size? as u64;
        if header.kind == Meta::KIND {
            let whole = header_len.checked_add(body).filter(|n| *n <= MAX_META_BYTES)?;
            let mut meta = vec![0u8; usize::try_from(whole).ok()?];
            file.seek(SeekFrom::Start(offset)).ok()?;
            file.read_exact(&mut meta).ok()?;
            return shown(&meta);
        }
        offset = offset.checked_add(header_len)?.checked_add(body)?;
    }
    None
}

/// Fills `buf` as far as the file goes; answers how many bytes it holds.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> Option<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).ok()? {
            0 => break,
            n => filled += n,
        }
    }
    Some(filled)
}

/// The primary item's appearance from its properties, in their listed order.
fn of_meta(meta: &Meta) -> Option<Shown> {
    let primary = meta.get::<Pitm>()?.item_id;
    let iprp = meta.get::<Iprp>()?;
    let associations = iprp
        .ipma
        .iter()
        .flat_map(|ipma| &ipma.item_properties)
        .find(|item| item.item_id == primary)?;
    let mut size: Option<(i64, i64)> = None;
    let mut turn = Turn::NONE;
    for association in &associations.associations {
        let index = usize::from(association.property_index).checked_sub(1)?;
        match iprp.ipco.properties.get(index)? {
            Any::Ispe(ispe) => size = Some((i64::from(ispe.width), i64::from(ispe.height))),
            Any::Clap(clap) => {
                size = Some((
                    ratio(clap.clean_aperture_width_n, clap.clean_aperture_width_d)?,
                    ratio(clap.clean_aperture_height_n, clap.clean_aperture_height_d)?,
                ));
            }
            Any::Irot(irot) => {
                for _ in 0..irot.angle % 4 {
                    turn = Turn::COUNTER_CLOCKWISE.then(turn);
                    size = size.map(|(w, h)| (h, w));
                }
            }
            Any::Imir(imir) => {
                let mirror = if imir.axis & 1 == 0 {
                    Turn::TOP_DOWN
                } else {
                    Turn::LEFT_RIGHT
                };
                turn = mirror.then(turn);
            }
            _ => {}
        }
    }
    let (width, height) = size.filter(|(w, h)| *w > 0 && *h > 0)?;
    Some(Shown {
        width,
        height,
        orientation: turn.exif_orientation(),
    })
}

/// `n / d` rounded to the nearest whole pixel; `None` for a zero denominator.
fn ratio(n: u32, d: u32) -> Option<i64> {
    (d != 0).then(|| ((u64::from(n) * 2 + u64::from(d)) / (u64::from(d) * 2)) as i64)
}

/// A turn or mirroring of the picture, as the matrix that maps a stored pixel's offset
/// `(x, y)` (x to the right, y down) to where it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Turn([[i8; 2]; 2]);

impl Turn {
    const NONE: Turn = Turn([[1, 0], [0, 1]]);
    const COUNTER_CLOCKWISE: Turn = Turn([[0, 1], [-1, 0]]);
    const LEFT_RIGHT: Turn = Turn([[-1, 0], [0, 1]]);
    const TOP_DOWN: Turn = Turn([[1, 0], [0, -1]]);

    /// The EXIF Orientations 1 to 8, each as the turn it asks a viewer to make.
    const EXIF: [Turn; 8] = [
        Turn::NONE,
        Turn::LEFT_RIGHT,
        Turn([[-1, 0], [0, -1]]),
        Turn::TOP_DOWN,
        Turn([[0, 1], [1, 0]]),
        Turn([[0, -1], [1, 0]]),
        Turn([[0, -1], [-1, 0]]),
        Turn::COUNTER_CLOCKWISE,
    ];

    /// This turn made after `first`.
    fn then(self, first: Turn) -> Turn {
        let (a, b) = (self.0, first.0);
        let at = |r: usize, c: usize| a[r][0] * b[0][c] + a[r][1] * b[1][c];
        Turn([[at(0, 0), at(0, 1)], [at(1, 0), at(1, 1)]])
    }

    /// The EXIF Orientation value that asks for this turn.
    fn exif_orientation(self) -> i64 {
        Turn::EXIF.iter().position(|t| *t == self).map_or(1, |i| i as i64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_compose_into_the_exif_orientations() {
        let cw = Turn::COUNTER_CLOCKWISE
            .then(Turn::COUNTER_CLOCKWISE)
            .then(Turn::COUNTER_CLOCKWISE);
        assert_eq!(cw.exif_orientation(), 6);
        assert_eq!(Turn::COUNTER_CLOCKWISE.exif_orientation(), 8);
        // As libheif writes EXIF 5 and 7: a quarter turn clockwise, then a mirroring.
        assert_eq!(Turn::LEFT_RIGHT.then(cw).exif_orientation(), 5);
        assert_eq!(Turn::TOP_DOWN.then(cw).exif_orientation(), 7);
        assert_eq!(Turn::LEFT_RIGHT.then(Turn::LEFT_RIGHT).exif_orientation(), 1);
    }

    #[test]
    fn ratios_round_to_whole_pixels() {
        assert_eq!(ratio(451, 1), Some(451));
        assert_eq!(ratio(903, 2), Some(452));
        assert_eq!(ratio(1, 0), None);
    }

    /// A HEIF file's boxes without pixels: `ftyp`, `padding` bytes of a `free` box, then a
    /// `meta` box whose primary item (2) is 452×300 stored, cropped to 451 and turned a quarter
    /// clockwise (`irot` 3); item 1 is 10×10 and not primary.
    fn heif_boxes(padding: u32) -> Vec<u8> {
        use mp4_atom::{Clap, Encode, Ftyp, Hdlr, Ipco, Ipma, Irot, Ispe, PropertyAssociation, PropertyAssociations};
        let associate = |item_id, indexes: &[u16]| PropertyAssociations {
            item_id,
            associations: indexes
                .iter()
                .map(|&property_index| PropertyAssociation {
                    essential: true,
                    property_index,
                })
                .collect(),
        };
        let meta = Meta {
            hdlr: Hdlr {
                handler: b"pict".into(),
                name: String::new(),
            },
            items: vec![
                Pitm { item_id: 2 }.into(),
                Iprp {
                    ipco: Ipco {
                        properties: vec![
                            Ispe { width: 10, height: 10 }.into(),
                            Ispe {
                                width: 452,
                                height: 300,
                            }
                            .into(),
                            Clap {
                                clean_aperture_width_n: 451,
                                clean_aperture_width_d: 1,
                                clean_aperture_height_n: 300,
                                clean_aperture_height_d: 1,
                                horiz_off_n: -1,
                                horiz_off_d: 2,
                                vert_off_n: 0,
                                vert_off_d: 1,
                            }
                            .into(),
                            Irot { angle: 3 }.into(),
                        ],
                    },
                    ipma: vec![Ipma {
                        item_properties: vec![associate(1, &[1]), associate(2, &[2, 3, 4])],
                    }],
                }
                .into(),
            ],
        };
        let mut file = Vec::new();
        let ftyp = Ftyp {
            major_brand: b"heic".into(),
            minor_version: 0,
            compatible_brands: vec![b"mif1".into(), b"heic".into()],
        };
        ftyp.encode(&mut file).expect("ftyp");
        file.extend_from_slice(&(padding + 8).to_be_bytes());
        file.extend_from_slice(b"free");
        file.resize(file.len() + padding as usize, 0);
        meta.encode(&mut file).expect("meta");
        file
    }

    #[test]
    fn the_primary_item_is_cropped_then_turned() {
        let expected = Shown {
            width: 300,
            height: 451,
            orientation: 6,
        };
        assert_eq!(shown(&heif_boxes(0)), Some(expected));
        // Past the head, the file is walked to its meta box.
        let far = heif_boxes(100_000);
        assert_eq!(shown(&far[..64 * 1024]), None);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("far.heic");
        std::fs::write(&path, &far).expect("write");
        assert_eq!(shown_in(&path), Some(expected));
    }

    #[test]
    fn the_major_brand_names_the_mime_type() {
        assert_eq!(brand_mime(&heif_boxes(0)), "image/heic");
        assert_eq!(brand_mime(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00"), "image/heif");
        assert_eq!(brand_mime(b"\x00\x00\x00\x18ftypavif"), "image/avif");
    }

    #[test]
    fn what_is_not_heif_is_not_described() {
        assert_eq!(shown(b"\x00\x00\x00\x08free"), None);
        assert_eq!(shown(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
    }
}
