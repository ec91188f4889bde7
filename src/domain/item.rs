//! Items: one file in the catalog, its type, media metadata and title rules.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::fingerprint::Fingerprint;
pub use super::media::{AudioTrack, DicomHeader, Media};
use super::{Invalid, MAX_NAME_BYTES, check_name, client_name};

/// What kind of content an item holds, decided from its bytes (the extension only as a fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemType {
    /// A video container with a video stream.
    Video,
    /// A still image.
    Image,
    /// Sound only.
    Audio,
    /// UTF-8 text.
    PlainText,
    /// A PDF document.
    Pdf,
    /// A NIfTI-1 or NIfTI-2 neuroimaging volume (`.nii`, `.nii.gz`).
    Nifti,
    /// A DICOM part-10 file.
    DicomFile,
    /// Ordered images registered as one item (its `frames`).
    ImageGroup,
    /// Ordered images registered as one item to be played as a video (its `frames`).
    ImageSequence,
    /// Ordered DICOM files of one series registered as one item (its `frames`).
    DicomSeries,
    /// Anything else.
    Other,
}

impl ItemType {
    /// Every type, in the order the API documents them.
    pub const ALL: [ItemType; 11] = [
        ItemType::Video,
        ItemType::Image,
        ItemType::Audio,
        ItemType::PlainText,
        ItemType::Pdf,
        ItemType::Nifti,
        ItemType::DicomFile,
        ItemType::ImageGroup,
        ItemType::ImageSequence,
        ItemType::DicomSeries,
        ItemType::Other,
    ];

    /// The stored and wire form, e.g. `PLAIN_TEXT`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Video => "VIDEO",
            ItemType::Image => "IMAGE",
            ItemType::Audio => "AUDIO",
            ItemType::PlainText => "PLAIN_TEXT",
            ItemType::Pdf => "PDF",
            ItemType::Nifti => "NIFTI",
            ItemType::DicomFile => "DICOM_FILE",
            ItemType::ImageGroup => "IMAGE_GROUP",
            ItemType::ImageSequence => "IMAGE_SEQUENCE",
            ItemType::DicomSeries => "DICOM_SERIES",
            ItemType::Other => "OTHER",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|t| t.as_str() == text).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            Invalid::new(format!("unknown item type `{text}`; use one of {}", all.join(", ")))
        })
    }

    /// Parses a comma-separated list such as `IMAGE,VIDEO` (blank entries ignored).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, Invalid> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = Self::parse(part)?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    /// The type a MIME type stands for.
    pub fn from_mime(mime: &str) -> Self {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/pdf" => ItemType::Pdf,
            "application/dicom" => ItemType::DicomFile,
            "application/json"
            | "application/xml"
            | "application/javascript"
            | "application/toml"
            | "application/x-yaml"
            | "application/yaml" => ItemType::PlainText,
            m if m.starts_with("image/") => ItemType::Image,
            m if m.starts_with("video/") => ItemType::Video,
            m if m.starts_with("audio/") => ItemType::Audio,
            m if m.starts_with("text/") => ItemType::PlainText,
            _ => ItemType::Other,
        }
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable identifier.
    pub id: Uuid,
    /// The folder it is in.
    pub folder_id: Uuid,
    /// Its name in the folder, unique there.
    pub title: String,
    /// The bucket that holds its object.
    pub bucket: String,
    /// Where the object is inside the bucket.
    pub object_key: String,
    /// What the content is.
    pub item_type: ItemType,
    /// The content's MIME type.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// blake3 of the content, lowercase hex.
    pub checksum: Option<String>,
    /// The object is gone from its bucket; the row stays as a record of it.
    pub is_tombstone: bool,
    /// Arbitrary JSON object the client keeps with the item.
    pub client_metadata: serde_json::Map<String, serde_json::Value>,
    /// What was read from the content.
    pub media: Media,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// When it expires (the TTL sweep then deletes or trashes it), if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// `expires_at` was set on the item itself, so changes of its folder's TTL leave it alone.
    pub expires_own: bool,
    /// The re-encoded rendition downloads serve by default, when the item is a re-encoded video.
    pub encoded: Option<Encoded>,
    /// The objects of an image group, image sequence or DICOM series, in order (empty for
    /// every other type; `bucket`/`object_key` then name the first frame).
    pub frames: Vec<Frame>,
    /// The object's fingerprint when a sync last saw it (synced items only): a download serves
    /// the object only while it still matches.
    pub fingerprint: Option<Fingerprint>,
}

impl Item {
    /// A new item of `object_key` in `bucket`, titled `title` in folder `folder_id`, created at
    /// `at`; its content fields start empty (`OTHER`, 0 bytes, no checksum or media) for the
    /// caller to fill with struct update syntax.
    pub fn new(folder_id: Uuid, title: String, bucket: String, object_key: String, at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7(),
            folder_id,
            title,
            bucket,
            object_key,
            item_type: ItemType::Other,
            mime_type: "application/octet-stream".into(),
            size: 0,
            checksum: None,
            is_tombstone: false,
            client_metadata: serde_json::Map::new(),
            media: Media::default(),
            created_at: at,
            updated_at: at,
            expires_at: None,
            expires_own: false,
            encoded: None,
            frames: Vec::new(),
            fingerprint: None,
        }
    }
}

/// One object of a multi-object item (an image group's image, a DICOM series' file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Frame {
    /// The bucket that holds it.
    pub bucket: String,
    /// Where it is in the bucket.
    pub object_key: String,
    /// Bytes.
    pub size: i64,
    /// Its MIME type.
    pub mime_type: String,
    /// Pixels across as shown (see [`Media::orientation`]), when read.
    pub width: Option<i64>,
    /// Pixels down as shown, when read.
    pub height: Option<i64>,
    /// An image's EXIF Orientation (see [`Media::orientation`]), when it has one.
    #[serde(default)]
    pub orientation: Option<i64>,
}

/// A rendition stowage made of an item's content (a re-encoded video), kept in the managed
/// bucket beside the untouched source object.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Where it is in the managed bucket.
    pub object_key: String,
    /// Bytes.
    pub size: i64,
    /// blake3 of the rendition, lowercase hex.
    pub checksum: String,
    /// Its MIME type (`video/mp4`).
    pub mime_type: String,
    /// What ffprobe read from it.
    pub media: Media,
    /// When it was made.
    pub encoded_at: OffsetDateTime,
}

/// When an item created at `created_at` in a folder with `ttl_seconds` expires.
pub fn expiry_for(created_at: OffsetDateTime, ttl_seconds: Option<i64>) -> Option<OffsetDateTime> {
    ttl_seconds.map(|ttl| created_at.saturating_add(time::Duration::seconds(ttl)))
}

/// How a title is told it names one file.
const TITLE_HINT: &str = "; a title names one file inside its folder";

/// Validates an item title: the rules of a folder name (non-empty, no `/`, no control
/// characters, not `.` or `..`, at most 255 bytes). Titles a bucket's keys give (sync) are held
/// to these only; titles clients give go through [`client_title`].
pub fn check_title(title: &str) -> Result<(), Invalid> {
    check_name("title", title, TITLE_HINT)
}

/// Validates a title a client gives (an upload, a rename, an import or reference) and answers it
/// as it is stored: see [`client_name`] (NFC, no `\`, nothing that reorders text).
pub fn client_title(title: &str) -> Result<String, Invalid> {
    client_name("title", title, TITLE_HINT)
}

/// A title as a file name safe on every system, for archive entries and downloads: `\`,
/// control characters and characters that reorder text become `_` (a title from a bucket's
/// key may hold them; a title a client gave cannot).
pub fn portable_file_name(title: &str) -> String {
    title
        .chars()
        .map(|c| {
            if c == '\\' || c.is_control() || super::reorders_text(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The `Content-Disposition` of a download named `file_name`: `KIND; filename*=UTF-8''…`, the
/// name made portable ([`portable_file_name`]) and percent-encoded (RFC 8187). `kind` is
/// `inline` or `attachment`.
pub fn content_disposition(kind: &str, file_name: &str) -> String {
    let mut out = format!("{kind}; filename*=UTF-8''");
    for b in portable_file_name(file_name).bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The title an uploaded file gets from its file name: the part after the last `/` or `\`.
pub fn title_from_file_name(file_name: &str) -> &str {
    file_name.rsplit(['/', '\\']).next().unwrap_or(file_name)
}

/// Extensions that belong together, so `scan.nii.gz` becomes `scan (1).nii.gz`.
const COMPOUND_STEMS: [&str; 2] = [".tar", ".nii"];

/// Splits a title into stem and extension (with its dot): `a.tar.gz` → (`a`, `.tar.gz`),
/// `.bashrc` → (`.bashrc`, ``).
pub fn split_extension(title: &str) -> (&str, &str) {
    let Some(dot) = title.rfind('.').filter(|&d| d > 0) else {
        return (title, "");
    };
    let (stem, ext) = title.split_at(dot);
    for compound in COMPOUND_STEMS {
        if let Some(inner) = stem.strip_suffix(compound).filter(|s| !s.is_empty()) {
            return (inner, &title[inner.len()..]);
        }
    }
    (stem, ext)
}

/// The `n`-th alternative of `title`: `name (n).ext`, the stem shortened when the result
/// would be over the length limit.
pub fn alternative_title(title: &str, n: u64) -> String {
    let (stem, ext) = split_extension(title);
    let suffix = format!(" ({n}){ext}");
    let mut stem = stem;
    while stem.len() + suffix.len() > MAX_NAME_BYTES && !stem.is_empty() {
        let mut cut = stem.len() - 1;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem = &stem[..cut];
    }
    format!("{stem}{suffix}")
}

/// The number `n` when `candidate` is `alternative_title(title, n)`.
pub fn alternative_number(title: &str, candidate: &str) -> Option<u64> {
    let (_, ext) = split_extension(title);
    let inner = candidate.strip_suffix(ext)?.strip_suffix(')')?;
    let (_, digits) = inner.rsplit_once(" (")?;
    let n: u64 = digits.parse().ok()?;
    (alternative_title(title, n) == candidate).then_some(n)
}

/// The lowest `n ≥ 1` whose alternative title is not in `taken`.
pub fn next_free_alternative<'a>(title: &str, taken: impl IntoIterator<Item = &'a str>) -> String {
    let mut used: Vec<u64> = taken.into_iter().filter_map(|t| alternative_number(title, t)).collect();
    used.sort_unstable();
    used.dedup();
    let mut n = 1;
    for u in used {
        if u == n {
            n += 1;
        } else if u > n {
            break;
        }
    }
    alternative_title(title, n)
}

/// What an upload does when its title is already taken in the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConflictStrategy {
    /// Refuse with 409.
    #[default]
    Error,
    /// Keep the existing item and answer it (200).
    Skip,
    /// Store under the next free `name (N).ext`.
    New,
    /// Replace the existing item's content in place (same id), atomically.
    Replace,
}

impl ConflictStrategy {
    /// Parses the wire form.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text {
            "error" => Ok(Self::Error),
            "skip" => Ok(Self::Skip),
            "new" => Ok(Self::New),
            "replace" => Ok(Self::Replace),
            other => Err(Invalid::new(format!(
                "unknown strategy `{other}`; use error, skip, new or replace"
            ))),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Skip => "skip",
            Self::New => "new",
            Self::Replace => "replace",
        }
    }
}

/// The orderings an item list offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemOrder {
    /// By title, bytewise.
    #[default]
    Title,
    /// By creation time.
    CreatedAt,
    /// By size in bytes.
    Size,
}

impl ItemOrder {
    /// The name used in page tokens and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOrder::Title => "title",
            ItemOrder::CreatedAt => "created_at",
            ItemOrder::Size => "size",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(
            content_disposition("inline", "a b/é.png"),
            "inline; filename*=UTF-8''a%20b%2F%C3%A9.png"
        );
    }

    #[test]
    fn portable_file_names_cannot_point_elsewhere() {
        assert_eq!(portable_file_name("..\\..\\evil.txt"), ".._.._evil.txt");
        assert_eq!(portable_file_name("txt\u{202E}exe.txt"), "txt_exe.txt");
        assert_eq!(portable_file_name("plain (1).png"), "plain (1).png");
    }

    #[test]
    fn types_round_trip_and_lists_parse() {
        for t in ItemType::ALL {
            assert_eq!(ItemType::parse(t.as_str()), Ok(t));
            assert_eq!(serde_json::to_value(t).expect("json"), t.as_str());
        }
        assert_eq!(
            ItemType::parse_list("IMAGE, VIDEO,,IMAGE"),
            Ok(vec![ItemType::Image, ItemType::Video])
        );
        let err = ItemType::parse_list("IMAGE,jpeg").expect_err("unknown");
        assert!(err.0.contains("jpeg") && err.0.contains("PLAIN_TEXT"), "{err}");
    }

    #[test]
    fn mime_maps_to_types() {
        assert_eq!(ItemType::from_mime("image/png"), ItemType::Image);
        assert_eq!(ItemType::from_mime("video/mp4"), ItemType::Video);
        assert_eq!(ItemType::from_mime("audio/x-wav"), ItemType::Audio);
        assert_eq!(ItemType::from_mime("text/csv; charset=utf-8"), ItemType::PlainText);
        assert_eq!(ItemType::from_mime("application/pdf"), ItemType::Pdf);
        assert_eq!(ItemType::from_mime("application/zip"), ItemType::Other);
    }

    #[test]
    fn titles_are_checked() {
        assert!(check_title("cat.png").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b", "a\nb"] {
            assert!(check_title(bad).is_err(), "{bad:?}");
        }
        assert!(check_title(&"t".repeat(256)).is_err());
        assert_eq!(title_from_file_name("C:\\x\\y.txt"), "y.txt");
        assert_eq!(title_from_file_name("a/b/c.png"), "c.png");
    }

    #[test]
    fn alternatives_keep_the_extension() {
        assert_eq!(alternative_title("cat.png", 1), "cat (1).png");
        assert_eq!(alternative_title("notes", 2), "notes (2)");
        assert_eq!(alternative_title(".bashrc", 1), ".bashrc (1)");
        assert_eq!(alternative_title("scan.nii.gz", 3), "scan (3).nii.gz");
        assert_eq!(alternative_title("a.tar.gz", 1), "a (1).tar.gz");
        let long = format!("{}.png", "é".repeat(126));
        let alt = alternative_title(&long, 12);
        assert!(alt.len() <= MAX_NAME_BYTES && alt.ends_with(" (12).png"), "{alt}");
        assert!(check_title(&alt).is_ok());
    }

    #[test]
    fn next_free_fills_the_lowest_gap() {
        assert_eq!(next_free_alternative("cat.png", ["cat.png"]), "cat (1).png");
        assert_eq!(
            next_free_alternative("cat.png", ["cat.png", "cat (1).png", "cat (3).png", "cat (x).png"]),
            "cat (2).png"
        );
        assert_eq!(
            next_free_alternative("cat.png", ["cat (1).png", "cat (2).png"]),
            "cat (3).png"
        );
        assert_eq!(alternative_number("cat.png", "cat (01).png"), None);
        assert_eq!(alternative_number("cat.png", "dog (1).png"), None);
    }

    #[test]
    fn fps_from_rationals() {
        let media = |r: &str| Media {
            frame_rate: Some(r.into()),
            ..Media::default()
        };
        assert_eq!(media("25/1").fps(), Some(25.0));
        assert_eq!(media("30000/1001").fps(), Some(29.97));
        assert_eq!(media("0/0").fps(), None);
    }
}
