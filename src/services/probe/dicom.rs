//! DICOM headers, read with dicom-rs (`dicom-parser`'s data set token reader) up to the pixel
//! data and never into it. Three layouts occur in real files: the standard part-10 file
//! (128-byte preamble, `DICM`, file meta group, data set), the same without the preamble (with or
//! without `DICM`), and a bare data set with no file meta at all (old tools), read in Implicit or
//! Explicit VR Little Endian, whichever its first element is written in.
//!
//! The reader sees each element's header before its value and stops at one that claims more
//! bytes than there are: dicom-rs allocates a value's declared length before reading it, and a
//! crafted header would make it allocate gigabytes.

use std::collections::BTreeMap;
use std::io::Cursor;

use dicom_core::header::{HasLength, Header};
use dicom_core::{Length, PrimitiveValue, Tag};
use dicom_dictionary_std::tags;
use dicom_parser::dataset::{DataSetReader, DataToken};
use dicom_transfer_syntax_registry::entries::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::domain::item::DicomHeader;

/// A DICOM header and the size of the pixel matrix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// The identifying attributes.
    pub header: DicomHeader,
    /// Columns (0028,0011).
    pub columns: Option<i64>,
    /// Rows (0028,0010).
    pub rows: Option<i64>,
    /// Number of Frames (0028,0008); `None` when absent (a single frame when it has rows).
    pub frames: Option<i64>,
    /// Whether the reading reached the pixel data or the end of the data set; false when the
    /// bytes ended first (the start of a longer file whose header goes on) or broke off.
    pub complete: bool,
}

/// The top-level attributes read.
const WANTED: [Tag; 13] = [
    tags::SOP_CLASS_UID,
    tags::SOP_INSTANCE_UID,
    tags::MODALITY,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::INSTANCE_NUMBER,
    tags::IMAGE_POSITION_PATIENT,
    tags::NUMBER_OF_FRAMES,
    tags::ROWS,
    tags::COLUMNS,
    tags::PIXEL_SPACING,
    tags::BITS_ALLOCATED,
    tags::PIXEL_DATA,
];

/// Whether `head` starts a DICOM file of any of the three layouts: a part-10 file by its `DICM`,
/// the others only when their start reads as a DICOM header that names a SOP class or modality
/// (a random binary that happens to start with `08 00` is not one).
pub fn looks_like_dicom(head: &[u8]) -> bool {
    if head.get(128..132) == Some(b"DICM") || head.starts_with(b"DICM") {
        return true;
    }
    read(head).is_some_and(|r| r.header.sop_class_uid.is_some() || r.header.modality.is_some())
}

/// Reads the header at the start of `bytes` (a whole file, or its first bytes); `None` when
/// they are not a DICOM header of any of the three layouts.
pub fn read(bytes: &[u8]) -> Option<Read> {
    let (meta, data_set) = split(bytes)?;
    let transfer_syntax = meta.transfer_syntax.clone()?;
    let (values, complete) = data_set_values(data_set, &transfer_syntax, bytes.len());
    let text = |tag: Tag| -> Option<String> {
        let value = values.get(&tag)?.to_str();
        let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        (!value.is_empty()).then(|| value.to_owned())
    };
    let int = |tag: Tag| -> Option<i64> { values.get(&tag)?.to_int::<i64>().ok() };
    let floats = |tag: Tag| -> Option<Vec<f64>> {
        let numbers = values.get(&tag)?.to_multi_float64().ok()?;
        (!numbers.is_empty()).then_some(numbers)
    };
    let header = DicomHeader {
        modality: text(tags::MODALITY),
        sop_class_uid: text(tags::SOP_CLASS_UID).or(meta.sop_class_uid),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID),
        instance_number: int(tags::INSTANCE_NUMBER),
        image_position_patient: floats(tags::IMAGE_POSITION_PATIENT),
        transfer_syntax_uid: Some(transfer_syntax),
        pixel_spacing: floats(tags::PIXEL_SPACING),
        bits_allocated: int(tags::BITS_ALLOCATED),
    };
    Some(Read {
        header,
        columns: int(tags::COLUMNS),
        rows: int(tags::ROWS),
        frames: int(tags::NUMBER_OF_FRAMES),
        complete,
    })
}

impl Read {
    /// Fills `media` with what was read: the header, the image size and its frames (1 for an
    /// image without Number of Frames).
    pub fn describe(self, media: &mut crate::domain::item::Media) {
        media.width = self.columns;
        media.height = self.rows;
        media.frame_count = self.frames.or(self.rows.map(|_| 1));
        media.dicom = Some(self.header);
    }
}

/// What the file meta group says (or, without one, how the data set reads).
#[derive(Debug, Default)]
struct Meta {
    transfer_syntax: Option<String>,
    sop_class_uid: Option<String>,
}

/// Splits `bytes` into what their file meta group says and the data set after it.
fn split(bytes: &[u8]) -> Option<(Meta, &[u8])> {
    let after_magic = match () {
        _ if bytes.get(128..132) == Some(b"DICM") => &bytes[132..],
        _ if bytes.starts_with(b"DICM") => &bytes[4..],
        _ => bytes,
    };
    let group = u16::from_le_bytes(after_magic.get(0..2)?.try_into().ok()?);
    let element = u16::from_le_bytes(after_magic.get(2..4)?.try_into().ok()?);
    let explicit_vr = after_magic.get(4..6)?.iter().all(u8::is_ascii_uppercase);
    if group == 0x0002 && explicit_vr {
        return file_meta(after_magic);
    }
    // Without file meta, a data set starts with one of the first elements of group 0008.
    if after_magic.len() != bytes.len() || group != 0x0008 || element > 0x0020 {
        return None;
    }
    let syntax = match explicit_vr {
        true => EXPLICIT_VR_LITTLE_ENDIAN.uid(),
        false => IMPLICIT_VR_LITTLE_ENDIAN.uid(),
    };
    let meta = Meta {
        transfer_syntax: Some(syntax.to_owned()),
        sop_class_uid: None,
    };
    Some((meta, bytes))
}

/// The file meta group at the start of `bytes` (always Explicit VR Little Endian, one flat run
/// of group 0002 elements), and the data set after it.
fn file_meta(bytes: &[u8]) -> Option<(Meta, &[u8])> {
    let mut meta = Meta::default();
    let mut at = 0usize;
    while bytes.get(at..at + 2) == Some(&[0x02, 0x00]) {
        let element = u16::from_le_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?);
        let vr = bytes.get(at + 4..at + 6)?;
        // VRs with a 4-byte length after two reserved bytes (PS3.5 7.1.2).
        let long = matches!(
            vr,
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV"
        );
        let (len, value_at) = match long {
            true => (
                u32::from_le_bytes(bytes.get(at + 8..at + 12)?.try_into().ok()?) as usize,
                at + 12,
            ),
            false => (
                usize::from(u16::from_le_bytes(bytes.get(at + 6..at + 8)?.try_into().ok()?)),
                at + 8,
            ),
        };
        let value = bytes.get(value_at..value_at.checked_add(len)?)?;
        let text = || {
            let text = String::from_utf8_lossy(value);
            Some(text.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_owned()).filter(|t| !t.is_empty())
        };
        match element {
            0x0002 => meta.sop_class_uid = text(),
            0x0010 => meta.transfer_syntax = text(),
            _ => {}
        }
        at = value_at + len;
    }
    Some((meta, &bytes[at..]))
}

/// The values of the [`WANTED`] top-level attributes of `data_set`, read in `transfer_syntax`,
/// and whether the reading reached the pixel data or the data set's end. `limit` bounds every
/// length the reader believes.
fn data_set_values(data_set: &[u8], transfer_syntax: &str, limit: usize) -> (BTreeMap<Tag, PrimitiveValue>, bool) {
    let mut values = BTreeMap::new();
    let Some(syntax) = TransferSyntaxRegistry.get(transfer_syntax) else {
        return (values, false);
    };
    let Ok(reader) = DataSetReader::new_with_ts(Cursor::new(data_set), syntax) else {
        return (values, false);
    };
    let believable = |len: Length| len.is_undefined() || len.get().is_some_and(|n| n as usize <= limit);
    let mut depth = 0usize;
    let mut wanted: Option<Tag> = None;
    for token in reader {
        let Ok(token) = token else {
            return (values, false);
        };
        match token {
            DataToken::ElementHeader(header) => {
                if depth == 0 && header.tag() >= tags::PIXEL_DATA {
                    return (values, true);
                }
                if !believable(header.length()) {
                    return (values, false);
                }
                wanted = (depth == 0 && WANTED.contains(&header.tag())).then(|| header.tag());
            }
            DataToken::SequenceStart { len, .. } | DataToken::ItemStart { len } => {
                if !believable(len) {
                    return (values, false);
                }
                depth += usize::from(matches!(token, DataToken::SequenceStart { .. }));
            }
            DataToken::SequenceEnd => depth = depth.saturating_sub(1),
            DataToken::PixelSequenceStart if depth == 0 => return (values, true),
            DataToken::PrimitiveValue(value) => {
                if let Some(tag) = wanted.take() {
                    values.insert(tag, value);
                }
            }
            _ => {}
        }
    }
    (values, true)
}
