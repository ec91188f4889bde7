//! Turning one unit of an import spec into the item it registers: find each object's bucket,
//! look it up (HEAD), and read what the item needs (the head bytes for the type; ffprobe over a
//! local file or a signed URL for audio and video, which reads only the ranges it needs), or
//! trust the metadata the spec vouches for.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::blobs::source::Source;
use crate::blobs::{BlobError, Buckets, ObjectKey};
use crate::domain::fingerprint::Fingerprint;
use crate::domain::import::{TrustedMedia, Unit, UnitKind};
use crate::domain::item::{DicomHeader, Frame, Item, ItemType, Media, client_title};
use crate::services::now;
use crate::services::probe::{HEAD_BYTES, Probed, Whole, as_pair_image, examine, probe};
use crate::services::reencode::sequence_extension;

/// Frames of one group looked up at once.
const FRAME_CONCURRENCY: usize = 8;

/// Why a unit failed, and what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFailure {
    /// The object URLs of the unit.
    pub object_urls: Vec<String>,
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    pub action: String,
}

impl UnitFailure {
    /// A failure of `unit`.
    pub fn of(unit: &Unit, error: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            object_urls: unit.urls.clone(),
            error: error.into(),
            action: action.into(),
        }
    }
}

/// An object found in a configured bucket.
pub struct Located {
    /// Its bucket.
    pub source: Arc<Source>,
    /// Its key there.
    pub key: ObjectKey,
}

/// Finds the bucket of `url`; a URL in no configured bucket fails the unit.
pub fn locate(buckets: &Buckets, unit: &Unit, url: &str) -> Result<Located, UnitFailure> {
    buckets
        .locate(url)
        .map(|(source, key)| Located { source, key })
        .map_err(|e| {
            UnitFailure::of(
                unit,
                e.to_string(),
                "name an object inside a bucket configured under [buckets] (or configure the bucket that holds it)",
            )
        })
}

/// Looks up one object; a missing or unreadable one fails the unit with its URL.
async fn head(unit: &Unit, url: &str, at: &Located) -> Result<Fingerprint, UnitFailure> {
    at.source
        .head(at.key.as_str())
        .await
        .map_err(|e| lookup_failure(unit, url, at, e))
}

/// The failure of a unit whose object could not be looked up or read.
fn lookup_failure(unit: &Unit, url: &str, at: &Located, error: BlobError) -> UnitFailure {
    match error {
        BlobError::NotFound(_) => UnitFailure::of(
            unit,
            format!("object `{url}` does not exist"),
            "check the URL (keys are case-sensitive), put the object there, or remove the unit from the spec",
        ),
        BlobError::InvalidKey(m) => UnitFailure::of(unit, m, "name a regular file inside the bucket"),
        other => UnitFailure::of(
            unit,
            format!("cannot look up `{url}`: {other}"),
            format!(
                "check that bucket `{}` is reachable with its configured credentials (POST /v1/buckets/{}/check), then run the import again",
                at.source.name(),
                at.source.name()
            ),
        ),
    }
}

/// Looks one object up and reads its first bytes, in one request.
async fn head_and_start(unit: &Unit, url: &str, at: &Located) -> Result<(Fingerprint, Vec<u8>), UnitFailure> {
    at.source
        .head_and_start(at.key.as_str(), HEAD_BYTES)
        .await
        .map_err(|e| lookup_failure(unit, url, at, e))
}

/// The item a single-object unit registers (not yet titled uniquely or inserted); its content
/// must be of type `expected` when one is given.
pub async fn single_item(
    buckets: &Buckets,
    unit: &Unit,
    folder_id: Uuid,
    expected: Option<ItemType>,
) -> Result<Item, UnitFailure> {
    let url = unit.urls.first().map(String::as_str).unwrap_or_default();
    let at = locate(buckets, unit, url)?;
    let title = unit.title_or_file_name();
    let title = client_title(&title).map_err(|e| {
        UnitFailure::of(
            unit,
            format!("cannot title the item `{title}`: {e}"),
            "give the unit a `title`",
        )
    })?;
    let (probed, size) = match &unit.trusted {
        Some(trusted) => {
            head(unit, url, &at).await?;
            (trusted_probe(unit.kind.object_type(), trusted), trusted.file_size)
        }
        None => {
            let (fingerprint, head_bytes) = head_and_start(unit, url, &at).await?;
            let whole = match at.source.local_path(at.key.as_str()) {
                Some(path) => Whole::File(path),
                None if matches!(unit.kind, UnitKind::Video | UnitKind::Audio) => at
                    .source
                    .media_location(at.key.as_str())
                    .await
                    .map_or(Whole::Unreachable, Whole::Url),
                None => Whole::Unreachable,
            };
            let probed = probe(&head_bytes, &title, fingerprint.size, whole).await;
            let probed = as_pair_image(&at.source, at.key.as_str(), fingerprint.size, probed).await;
            (probed, fingerprint.size)
        }
    };
    if let Some(expected) = expected
        && probed.item_type != expected
    {
        return Err(wrong_type(unit, url, &probed, expected));
    }
    Ok(Item {
        item_type: probed.item_type,
        mime_type: probed.mime_type,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        client_metadata: unit.client_metadata.clone(),
        media: probed.media,
        ..Item::new(folder_id, title, at.source.name().to_owned(), at.key.to_string(), now())
    })
}

/// The item an image group or DICOM series registers: its frames in order, each looked up and
/// typed from its head bytes.
pub async fn group_item(buckets: &Buckets, unit: &Unit, folder_id: Uuid) -> Result<Item, UnitFailure> {
    let group_type = unit
        .group_type()
        .ok_or_else(|| UnitFailure::of(unit, "not a group unit", "report this as a bug"))?;
    let shared = Arc::new(unit.clone());
    let lookups: Vec<_> = unit
        .urls
        .iter()
        .map(|url| frame(buckets.clone(), Arc::clone(&shared), url.clone()).boxed())
        .collect();
    let looked_up: Vec<(Frame, Option<DicomHeader>)> = futures::stream::iter(lookups)
        .buffered(FRAME_CONCURRENCY)
        .try_collect()
        .await?;
    let (frames, headers): (Vec<Frame>, Vec<Option<DicomHeader>>) = looked_up.into_iter().unzip();
    if group_type == ItemType::DicomSeries {
        one_series(unit, &headers)?;
    }
    if group_type == ItemType::ImageSequence
        && let Err(why) = sequence_extension(&frames)
    {
        return Err(UnitFailure::of(
            unit,
            format!("createVideo: {why}"),
            "list frames of one format (PNG, JPEG, WebP, TIFF, BMP or GIF), or import the group without createVideo",
        ));
    }
    let title = unit.title_or_file_name();
    let first = frames.first().cloned().ok_or_else(|| {
        UnitFailure::of(
            unit,
            "the unit lists no frames",
            "list frames as objectUrl_0, objectUrl_1, …",
        )
    })?;
    Ok(Item {
        item_type: group_type,
        mime_type: first.mime_type,
        size: frames.iter().map(|f| f.size).fold(0i64, i64::saturating_add),
        client_metadata: unit.client_metadata.clone(),
        media: Media {
            width: first.width,
            height: first.height,
            orientation: first.orientation,
            frame_count: Some(frames.len() as i64),
            dicom: headers.into_iter().next().flatten(),
            ..Media::default()
        },
        frames,
        ..Item::new(folder_id, title, first.bucket, first.object_key, now())
    })
}

/// One frame of a group: looked up, typed, and for images sized. (Owned arguments: the futures
/// of a group's frames run through `buffered`, which needs them `'static` to be `Send`.)
async fn frame(buckets: Buckets, unit: Arc<Unit>, url: String) -> Result<(Frame, Option<DicomHeader>), UnitFailure> {
    let (unit, url) = (unit.as_ref(), url.as_str());
    let at = locate(&buckets, unit, url)?;
    let (fingerprint, head_bytes) = head_and_start(unit, url, &at).await?;
    // Typed and measured as a single image or DICOM file is: its size as shown.
    let probed = examine(&head_bytes, at.key.as_str(), fingerprint.size);
    let expected = unit.kind.object_type();
    if probed.item_type != expected {
        return Err(wrong_type(unit, url, &probed, expected));
    }
    let Probed { mime_type, media, .. } = probed;
    if media.dicom.as_ref().is_some_and(DicomHeader::is_directory) {
        return Err(UnitFailure::of(
            unit,
            format!("`{url}` is a DICOMDIR, the index of a DICOM medium, not an image of a series"),
            "leave the DICOMDIR out of the series and list the image files it indexes",
        ));
    }
    let frame = Frame {
        bucket: at.source.name().to_owned(),
        object_key: at.key.to_string(),
        size: i64::try_from(fingerprint.size).unwrap_or(i64::MAX),
        mime_type,
        width: media.width,
        height: media.height,
        orientation: media.orientation,
    };
    Ok((frame, media.dicom))
}

/// Reads one attribute of a DICOM header.
type Attribute = fn(&DicomHeader) -> Option<&String>;

/// The header attributes every file of one DICOM series shares.
const SERIES_ATTRIBUTES: [(&str, Attribute); 3] = [
    ("SeriesInstanceUID", |h| h.series_instance_uid.as_ref()),
    ("StudyInstanceUID", |h| h.study_instance_uid.as_ref()),
    ("Modality", |h| h.modality.as_ref()),
];

/// Checks that the frames of a DICOM series, whose headers are `headers` in the unit's order,
/// are one series: one study, one series, one modality (where the files say; a file silent on
/// one of them is not held against it).
fn one_series(unit: &Unit, headers: &[Option<DicomHeader>]) -> Result<(), UnitFailure> {
    for (name, value) in SERIES_ATTRIBUTES {
        let mut first: Option<(usize, &String)> = None;
        for (index, header) in headers.iter().enumerate() {
            let Some(this) = header.as_ref().and_then(value) else {
                continue;
            };
            match first {
                None => first = Some((index, this)),
                Some((at, that)) if that != this => {
                    return Err(UnitFailure::of(
                        unit,
                        format!("objectUrl_{at} and objectUrl_{index} are not one series: {name} {that} and {this}"),
                        "list the files of one series per dicom_series unit",
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// What vouched-for metadata says, as if probed.
fn trusted_probe(item_type: ItemType, trusted: &TrustedMedia) -> Probed {
    Probed {
        item_type,
        mime_type: trusted.mime_type.clone(),
        media: Media {
            width: trusted.width,
            height: trusted.height,
            duration_us: trusted.duration_seconds.map(|s| (s * 1_000_000.0).round() as i64),
            frame_rate: trusted.fps.map(fps_rational),
            codec: trusted.codec.clone(),
            sample_rate: trusted.sample_rate,
            channels: trusted.channels,
            ..Media::default()
        },
    }
}

/// Frames per second as the rational the catalog stores (`25/1`, `29970/1000`).
fn fps_rational(fps: f64) -> String {
    if fps.fract() == 0.0 {
        format!("{fps:.0}/1")
    } else {
        format!("{:.0}/1000", fps * 1000.0)
    }
}

/// The failure of an object whose content is not what its section says.
fn wrong_type(unit: &Unit, url: &str, probed: &Probed, expected: ItemType) -> UnitFailure {
    let section = match probed.item_type {
        ItemType::Video => " (list it under `videos`)",
        ItemType::Image => " (list it under `images`)",
        ItemType::Audio => " (list it under `audio`)",
        ItemType::PlainText => " (list it under `text`)",
        ItemType::Pdf => " (list it under `pdf`)",
        ItemType::Nifti => " (list it under `nifti`)",
        ItemType::DicomFile => " (list it in a `dicom_series` unit)",
        _ => "",
    };
    UnitFailure::of(
        unit,
        format!(
            "`{url}` holds {} content ({}), not {expected}",
            probed.item_type, probed.mime_type
        ),
        format!("fix the URL, or move the object to the section of its type{section}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_become_rationals() {
        assert_eq!(fps_rational(25.0), "25/1");
        assert_eq!(fps_rational(29.97), "29970/1000");
        let media = Media {
            frame_rate: Some(fps_rational(29.97)),
            ..Media::default()
        };
        assert_eq!(media.fps(), Some(29.97));
    }
}
