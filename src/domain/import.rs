//! The import spec: the JSON file data teams bring (the format data-labelling platforms use) that
//! lists objects already in their buckets, to register as items without copying them.
//!
//! [`ImportSpec::parse`] checks the whole spec before anything is queued and names the first
//! problem by its JSON path (`videos[3].objectUrl`). Whether an object exists, and which
//! configured bucket holds it, is decided per unit when the import runs.
//!
//! Why one file of about 660 lines: the spec is one grammar (its sections, the raw JSON shapes,
//! the checks with their JSON paths) read top to bottom, and a hundred of the lines are its
//! tests; split, each part would only make sense beside the other.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::item::{ItemType, client_title, title_from_file_name};

/// The most units (single objects, image groups, DICOM series) one spec may list.
pub const MAX_UNITS: usize = 1_000_000;
/// The longest object URL, in bytes.
pub const MAX_URL_BYTES: usize = 16 * 1024;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// The most frames one image group or DICOM series may list.
pub const MAX_FRAMES: usize = 100_000;
/// The URL schemes an object URL may use.
pub const URL_SCHEMES: [&str; 6] = ["s3", "gs", "az", "file", "https", "http"];

/// What a unit of the spec registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// One video (`videos`).
    Video,
    /// One image (`images`).
    Image,
    /// One audio file (`audio`).
    Audio,
    /// One text file (`text`).
    Text,
    /// One PDF (`pdf`).
    Pdf,
    /// One NIfTI volume (`nifti`).
    Nifti,
    /// Ordered images (`image_groups`).
    ImageGroup,
    /// Ordered DICOM files (`dicom_series`).
    DicomSeries,
}

impl UnitKind {
    /// The spec section that lists units of this kind.
    pub fn section(self) -> &'static str {
        match self {
            UnitKind::Video => "videos",
            UnitKind::Image => "images",
            UnitKind::Audio => "audio",
            UnitKind::Text => "text",
            UnitKind::Pdf => "pdf",
            UnitKind::Nifti => "nifti",
            UnitKind::ImageGroup => "image_groups",
            UnitKind::DicomSeries => "dicom_series",
        }
    }

    /// The type each object of the unit must have (a frame's type for groups and series).
    pub fn object_type(self) -> ItemType {
        match self {
            UnitKind::Video => ItemType::Video,
            UnitKind::Image | UnitKind::ImageGroup => ItemType::Image,
            UnitKind::Audio => ItemType::Audio,
            UnitKind::Text => ItemType::PlainText,
            UnitKind::Pdf => ItemType::Pdf,
            UnitKind::Nifti => ItemType::Nifti,
            UnitKind::DicomSeries => ItemType::DicomFile,
        }
    }

    /// Whether the unit is one item over several objects.
    pub fn is_group(self) -> bool {
        matches!(self, UnitKind::ImageGroup | UnitKind::DicomSeries)
    }
}

/// Media metadata the spec vouches for; when a unit has it, the object is not probed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrustedMedia {
    /// MIME type.
    pub mime_type: String,
    /// Bytes.
    pub file_size: u64,
    /// Pixels across.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    /// Pixels down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Frames per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Samples per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<i64>,
    /// Audio channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<i64>,
    /// Codec name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
}

/// One validated unit: what becomes one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// What it registers.
    pub kind: UnitKind,
    /// Where it stands in the spec, e.g. `videos[3]`, for messages.
    pub path: String,
    /// The title asked for; `None` means the object's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The object URLs, in frame order (one for single objects).
    pub urls: Vec<String>,
    /// The client metadata to store.
    #[serde(default)]
    pub client_metadata: Map<String, Value>,
    /// Media metadata to trust instead of probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<TrustedMedia>,
    /// An image group to be played as a video (`IMAGE_SEQUENCE`).
    #[serde(default)]
    pub create_video: bool,
}

impl Unit {
    /// The item type the unit becomes, for groups and series; single objects take the type
    /// their content shows (which must be [`UnitKind::object_type`]).
    pub fn group_type(&self) -> Option<ItemType> {
        match self.kind {
            UnitKind::ImageGroup if self.create_video => Some(ItemType::ImageSequence),
            UnitKind::ImageGroup => Some(ItemType::ImageGroup),
            UnitKind::DicomSeries => Some(ItemType::DicomSeries),
            _ => None,
        }
    }

    /// The title the item gets: the one asked for, else the first object's file name.
    pub fn title_or_file_name(&self) -> String {
        self.title.clone().unwrap_or_else(|| {
            let url = self.urls.first().map(String::as_str).unwrap_or_default();
            let path = url.split(['?', '#']).next().unwrap_or_default();
            let name = title_from_file_name(path);
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned()
        })
    }
}

/// A validated import spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSpec {
    /// Every unit, in spec order (section by section).
    pub units: Vec<Unit>,
    /// Skip objects already imported into the folder.
    pub skip_duplicate_urls: bool,
    /// Update the client metadata of objects already imported into the folder.
    pub upsert_metadata: bool,
}

/// The first problem found in a spec: where (a JSON path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// The JSON path, e.g. `videos[3].objectUrl` (empty for the document itself).
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl SpecError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    videos: Vec<RawSingle>,
    #[serde(default)]
    images: Vec<RawSingle>,
    #[serde(default)]
    audio: Vec<RawSingle>,
    #[serde(default)]
    text: Vec<RawSingle>,
    #[serde(default)]
    pdf: Vec<RawSingle>,
    #[serde(default)]
    nifti: Vec<RawSingle>,
    #[serde(default)]
    image_groups: Vec<Map<String, Value>>,
    #[serde(default)]
    dicom_series: Vec<Map<String, Value>>,
    #[serde(default)]
    skip_duplicate_urls: bool,
    #[serde(default)]
    upsert_metadata: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSingle {
    object_url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    client_metadata: Map<String, Value>,
    #[serde(default)]
    video_metadata: Option<RawVideoMetadata>,
    #[serde(default)]
    audio_metadata: Option<RawAudioMetadata>,
    #[serde(default)]
    image_metadata: Option<RawImageMetadata>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVideoMetadata {
    duration: f64,
    fps: f64,
    width: i64,
    height: i64,
    file_size: u64,
    mime_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAudioMetadata {
    duration: f64,
    file_size: u64,
    mime_type: String,
    #[serde(default)]
    sample_rate: Option<i64>,
    #[serde(default)]
    num_channels: Option<i64>,
    #[serde(default)]
    codec: Option<String>,
    #[serde(default)]
    bit_depth: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawImageMetadata {
    width: i64,
    height: i64,
    file_size: u64,
    mime_type: String,
}

impl ImportSpec {
    /// Parses and checks a whole spec; the error names the first problem's JSON path.
    pub fn parse(json: &[u8]) -> Result<Self, SpecError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let raw: RawSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            SpecError::at(
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        de.end().map_err(|e| SpecError::at("", e.to_string()))?;
        let total = raw.videos.len()
            + raw.images.len()
            + raw.audio.len()
            + raw.text.len()
            + raw.pdf.len()
            + raw.nifti.len()
            + raw.image_groups.len()
            + raw.dicom_series.len();
        if total > MAX_UNITS {
            return Err(SpecError::at(
                "",
                format!("the spec lists {total} units; at most {MAX_UNITS} per spec, split it into several imports"),
            ));
        }
        if total == 0 {
            return Err(SpecError::at(
                "",
                "the spec lists no units; put objects under videos, images, audio, text, pdf, nifti, image_groups or dicom_series",
            ));
        }
        let mut units = Vec::with_capacity(total);
        for (kind, list) in [
            (UnitKind::Video, raw.videos),
            (UnitKind::Image, raw.images),
            (UnitKind::Audio, raw.audio),
            (UnitKind::Text, raw.text),
            (UnitKind::Pdf, raw.pdf),
            (UnitKind::Nifti, raw.nifti),
        ] {
            for (i, single) in list.into_iter().enumerate() {
                units.push(single_unit(kind, format!("{}[{i}]", kind.section()), single)?);
            }
        }
        for (kind, list) in [
            (UnitKind::ImageGroup, raw.image_groups),
            (UnitKind::DicomSeries, raw.dicom_series),
        ] {
            for (i, fields) in list.into_iter().enumerate() {
                units.push(group_unit(kind, format!("{}[{i}]", kind.section()), fields)?);
            }
        }
        Ok(Self {
            units,
            skip_duplicate_urls: raw.skip_duplicate_urls,
            upsert_metadata: raw.upsert_metadata,
        })
    }
}

/// Checks one single-object unit.
fn single_unit(kind: UnitKind, path: String, raw: RawSingle) -> Result<Unit, SpecError> {
    check_url(&format!("{path}.objectUrl"), &raw.object_url)?;
    let title = raw
        .title
        .as_deref()
        .map(|title| check_spec_title(&format!("{path}.title"), title))
        .transpose()?;
    let only = |field: &str, section: UnitKind| {
        SpecError::at(
            format!("{path}.{field}"),
            format!("only `{}` entries take {field}; remove it", section.section()),
        )
    };
    let trusted = match (raw.video_metadata, raw.audio_metadata, raw.image_metadata) {
        (None, None, None) => None,
        (Some(v), None, None) if kind == UnitKind::Video => Some(TrustedMedia {
            mime_type: v.mime_type,
            file_size: v.file_size,
            width: Some(v.width),
            height: Some(v.height),
            duration_seconds: Some(v.duration),
            fps: Some(v.fps),
            ..TrustedMedia::default()
        }),
        (None, Some(a), None) if kind == UnitKind::Audio => Some(TrustedMedia {
            mime_type: a.mime_type,
            file_size: a.file_size,
            duration_seconds: Some(a.duration),
            sample_rate: a.sample_rate,
            channels: a.num_channels,
            codec: a.codec.or(a.bit_depth.map(|bits| format!("pcm_{bits}bit"))),
            ..TrustedMedia::default()
        }),
        (None, None, Some(i)) if kind == UnitKind::Image => Some(TrustedMedia {
            mime_type: i.mime_type,
            file_size: i.file_size,
            width: Some(i.width),
            height: Some(i.height),
            ..TrustedMedia::default()
        }),
        (Some(_), _, _) => return Err(only("videoMetadata", UnitKind::Video)),
        (_, Some(_), _) => return Err(only("audioMetadata", UnitKind::Audio)),
        (_, _, Some(_)) => return Err(only("imageMetadata", UnitKind::Image)),
    };
    if let Some(t) = &trusted {
        check_trusted(&path, kind, t)?;
    }
    Ok(Unit {
        kind,
        path,
        title,
        urls: vec![raw.object_url],
        client_metadata: raw.client_metadata,
        trusted,
        create_video: false,
    })
}

/// Checks vouched-for metadata: sizes and times that can be true, a MIME type of the section's
/// kind.
fn check_trusted(path: &str, kind: UnitKind, t: &TrustedMedia) -> Result<(), SpecError> {
    let field = match kind {
        UnitKind::Video => "videoMetadata",
        UnitKind::Audio => "audioMetadata",
        _ => "imageMetadata",
    };
    let at = |name: &str, message: &str| SpecError::at(format!("{path}.{field}.{name}"), message);
    let family = match kind {
        UnitKind::Video => "video/",
        UnitKind::Audio => "audio/",
        _ => "image/",
    };
    if !t.mime_type.starts_with(family) || t.mime_type.len() == family.len() {
        return Err(at(
            "mimeType",
            &format!("must be a {family}… MIME type, e.g. {family}mp4"),
        ));
    }
    if t.width.is_some_and(|w| w <= 0) {
        return Err(at("width", "must be a positive number of pixels"));
    }
    if t.height.is_some_and(|h| h <= 0) {
        return Err(at("height", "must be a positive number of pixels"));
    }
    if t.duration_seconds.is_some_and(|d| !d.is_finite() || d < 0.0) {
        return Err(at("duration", "must be a number of seconds, 0 or more"));
    }
    if t.fps.is_some_and(|f| !f.is_finite() || f <= 0.0) {
        return Err(at("fps", "must be a positive number of frames per second"));
    }
    if t.sample_rate.is_some_and(|r| r <= 0) {
        return Err(at("sampleRate", "must be a positive number of samples per second"));
    }
    if t.channels.is_some_and(|c| c <= 0) {
        return Err(at("numChannels", "must be a positive number of channels"));
    }
    Ok(())
}

/// Checks one image group or DICOM series: `title`, optional `clientMetadata` (and
/// `createVideo` for image groups), and frames `objectUrl_0`, `objectUrl_1`, … without gaps.
fn group_unit(kind: UnitKind, path: String, fields: Map<String, Value>) -> Result<Unit, SpecError> {
    let mut frames: BTreeMap<usize, String> = BTreeMap::new();
    let mut title = None;
    let mut client_metadata = Map::new();
    let mut create_video = false;
    for (name, value) in fields {
        let at = format!("{path}.{name}");
        match name.as_str() {
            "title" => title = Some(typed::<String>(&at, value)?),
            "clientMetadata" => client_metadata = typed(&at, value)?,
            "createVideo" if kind == UnitKind::ImageGroup => create_video = typed(&at, value)?,
            _ => {
                let index = name
                    .strip_prefix("objectUrl_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| name == format!("objectUrl_{n}"))
                    .ok_or_else(|| {
                        let extra = if kind == UnitKind::ImageGroup {
                            ", createVideo"
                        } else {
                            ""
                        };
                        SpecError::at(
                            &at,
                            format!("unknown field; use title, clientMetadata{extra} and objectUrl_0, objectUrl_1, …"),
                        )
                    })?;
                let url: String = typed(&at, value)?;
                check_url(&at, &url)?;
                frames.insert(index, url);
            }
        }
    }
    let title = title.ok_or_else(|| SpecError::at(format!("{path}.title"), "missing field: give the item a title"))?;
    let title = check_spec_title(&format!("{path}.title"), &title)?;
    if frames.is_empty() {
        return Err(SpecError::at(
            format!("{path}.objectUrl_0"),
            "missing field: list the frames as objectUrl_0, objectUrl_1, …",
        ));
    }
    if frames.len() > MAX_FRAMES {
        return Err(SpecError::at(&path, format!("at most {MAX_FRAMES} frames per unit")));
    }
    if let Some(gap) = (0..frames.len()).find(|i| !frames.contains_key(i)) {
        return Err(SpecError::at(
            format!("{path}.objectUrl_{gap}"),
            "missing field: frames are numbered from objectUrl_0 without gaps",
        ));
    }
    Ok(Unit {
        kind,
        path,
        title: Some(title),
        urls: frames.into_values().collect(),
        client_metadata,
        trusted: None,
        create_video,
    })
}

/// Reads one field's value as `T`, naming the field on failure.
fn typed<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, SpecError> {
    serde_json::from_value(value).map_err(|e| SpecError::at(path, e.to_string()))
}

/// Checks a title: at most [`MAX_TITLE_CHARS`] characters and the rules of a title a client
/// gives; answers it as it is stored (see [`client_title`]).
fn check_spec_title(path: &str, title: &str) -> Result<String, SpecError> {
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(SpecError::at(path, format!("longer than {MAX_TITLE_CHARS} characters")));
    }
    client_title(title).map_err(|e| SpecError::at(path, e.0))
}

/// Checks an object URL's form: at most [`MAX_URL_BYTES`], a supported scheme, no `.` or `..`
/// path segment (plain or percent-encoded), no query or fragment.
pub fn check_url(path: &str, url: &str) -> Result<(), SpecError> {
    let bad = |message: String| SpecError::at(path, message);
    if url.len() > MAX_URL_BYTES {
        return Err(bad(format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        bad(format!(
            "`{}` is not a URL ({e}); use s3://bucket/key, gs://…, az://…, https://ACCOUNT.blob.core.windows.net/… or file:///…",
            shorten(url)
        ))
    })?;
    if !URL_SCHEMES.contains(&parsed.scheme()) {
        return Err(bad(format!(
            "scheme `{}` is not supported; use one of {}",
            parsed.scheme(),
            URL_SCHEMES.join(", ")
        )));
    }
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let raw_path = after_scheme.split(['?', '#']).next().unwrap_or_default();
    let dotted = raw_path.split('/').skip(1).any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".."
    });
    if dotted {
        return Err(bad(format!(
            "`{}` has a `.` or `..` path segment; name the object by its plain key",
            shorten(url)
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(format!(
            "`{}` has a query or fragment; remove it (stowage reads with the bucket's configured credentials)",
            shorten(url)
        )));
    }
    Ok(())
}

/// A URL cut to a readable length for messages.
fn shorten(url: &str) -> String {
    const SHOWN: usize = 200;
    match url.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &url[..at]),
        None => url.to_owned(),
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> SpecError {
        ImportSpec::parse(json.as_bytes()).expect_err("should be refused")
    }

    #[test]
    fn every_section_parses_in_order() {
        let spec = ImportSpec::parse(
            br#"{"videos":[{"objectUrl":"s3://b/v.mp4","videoMetadata":{"duration":2.0,"fps":25,"width":320,"height":240,"fileSize":1000,"mimeType":"video/mp4"}}],
                "images":[{"objectUrl":"s3://b/a%20b.png","title":"pic"}],"audio":[{"objectUrl":"gs://b/a.wav"}],
                "text":[{"objectUrl":"az://c/t.txt"}],"pdf":[{"objectUrl":"file:///d/p.pdf"}],
                "nifti":[{"objectUrl":"https://acct.blob.core.windows.net/c/n.nii"}],
                "image_groups":[{"title":"g","createVideo":true,"objectUrl_1":"s3://b/2.png","objectUrl_0":"s3://b/1.png"}],
                "dicom_series":[{"title":"s","objectUrl_0":"s3://b/1.dcm"}],"skip_duplicate_urls":true}"#,
        )
        .expect("valid");
        let kinds: Vec<UnitKind> = spec.units.iter().map(|u| u.kind).collect();
        assert_eq!(
            kinds,
            [
                UnitKind::Video,
                UnitKind::Image,
                UnitKind::Audio,
                UnitKind::Text,
                UnitKind::Pdf,
                UnitKind::Nifti,
                UnitKind::ImageGroup,
                UnitKind::DicomSeries
            ]
        );
        assert!(spec.skip_duplicate_urls && !spec.upsert_metadata);
        assert_eq!(spec.units[0].trusted.as_ref().and_then(|t| t.width), Some(320));
        assert_eq!(spec.units[1].title_or_file_name(), "pic");
        assert_eq!(spec.units[2].title_or_file_name(), "a.wav");
        assert_eq!(spec.units[6].urls, ["s3://b/1.png", "s3://b/2.png"]);
        assert_eq!(spec.units[6].group_type(), Some(ItemType::ImageSequence));
        assert_eq!(spec.units[6].path, "image_groups[0]");
    }

    #[test]
    fn problems_are_named_by_json_path() {
        let cases = [
            (r#"{"videos":[{"objectUrl":"s3://b/a"},{"title":"x"}]}"#, "videos[1]"),
            (
                r#"{"videos":[{"objectUrl":"s3://b/a","titel":"x"}]}"#,
                "videos[0].titel",
            ),
            (r#"{"images":[{"objectUrl":"ftp://b/a"}]}"#, "images[0].objectUrl"),
            (
                r#"{"images":[{"objectUrl":"s3://b/x/../../etc/passwd"}]}"#,
                "images[0].objectUrl",
            ),
            (
                r#"{"images":[{"objectUrl":"s3://b/x/%2e%2e/y"}]}"#,
                "images[0].objectUrl",
            ),
            (
                r#"{"images":[{"objectUrl":"s3://b/a","videoMetadata":{}}]}"#,
                "images[0].videoMetadata",
            ),
            (
                r#"{"videos":[{"objectUrl":"s3://b/a","videoMetadata":{"duration":1}}]}"#,
                "videos[0].videoMetadata",
            ),
            (
                r#"{"image_groups":[{"title":"g","objectUrl_0":"s3://b/1","objectUrl_2":"s3://b/3"}]}"#,
                "image_groups[0].objectUrl_1",
            ),
            (
                r#"{"image_groups":[{"objectUrl_0":"s3://b/1"}]}"#,
                "image_groups[0].title",
            ),
            (
                r#"{"dicom_series":[{"title":"s","objectUrl_0":"s3://b/1","createVideo":true}]}"#,
                "dicom_series[0].createVideo",
            ),
            (r#"{"pictures":[]}"#, "pictures"),
            (r#"{"videos":[]}"#, ""),
        ];
        for (json, path) in cases {
            let e = error(json);
            assert!(e.path.starts_with(path), "{json}: got {e}");
            assert!(!e.message.is_empty());
        }
        let long_title = format!(
            r#"{{"images":[{{"objectUrl":"s3://b/a","title":"{}"}}]}}"#,
            "t".repeat(301)
        );
        assert_eq!(error(&long_title).path, "images[0].title");
        let long_url = format!(
            r#"{{"images":[{{"objectUrl":"s3://b/{}"}}]}}"#,
            "k".repeat(MAX_URL_BYTES)
        );
        assert!(error(&long_url).message.contains("16384"));
    }
}
