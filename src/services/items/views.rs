//! Items as clients see them: the JSON shapes of an item, its media metadata and its original.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Served, served};
use crate::domain::caller::Role;
use crate::domain::item::{AudioTrack, DicomHeader, Frame, Item, ItemType, Media};
use crate::services::Metadata;

/// Media metadata as clients see it; a field is `null` when it does not apply or was not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct MediaView {
    /// Pixels across (images, video).
    pub width: Option<i64>,
    /// Pixels down (images, video).
    pub height: Option<i64>,
    /// Play time in seconds (audio, video).
    pub duration_seconds: Option<f64>,
    /// Frames per second (video).
    pub fps: Option<f64>,
    /// Codec name, e.g. `h264` (audio, video).
    pub codec: Option<String>,
    /// Samples per second (audio).
    pub sample_rate: Option<i64>,
    /// Channels (audio).
    pub channels: Option<i64>,
    /// Pages (PDF).
    pub page_count: Option<i64>,
    /// Size along each axis (NIfTI).
    pub dimensions: Option<Vec<i64>>,
    /// Frames of a multi-frame image (DICOM; 1 for a single image).
    pub frame_count: Option<i64>,
    /// What the DICOM header says (DICOM files).
    pub dicom: Option<DicomHeader>,
    /// How the stored pixels turn into what a viewer shows, as an EXIF Orientation (1 as
    /// stored, 6 turned 90° clockwise, 8 counter-clockwise, 3 upside down; 2, 4, 5, 7 mirrored):
    /// an image's EXIF tag, a video's rotation. `width` and `height` are the size shown; with
    /// 5 to 8 the stored pixels are `height` across and `width` down.
    pub orientation: Option<i64>,
    /// Every audio track (video).
    pub audio_tracks: Option<Vec<AudioTrack>>,
}

impl From<&Media> for MediaView {
    fn from(media: &Media) -> Self {
        MediaView {
            width: media.width,
            height: media.height,
            duration_seconds: media.duration_us.map(|us| us as f64 / 1_000_000.0),
            fps: media.fps(),
            codec: media.codec.clone(),
            sample_rate: media.sample_rate,
            channels: media.channels,
            page_count: media.page_count,
            dimensions: media.dimensions.clone(),
            frame_count: media.frame_count,
            dicom: media.dicom.clone(),
            orientation: media.orientation,
            audio_tracks: media.audio_tracks.clone(),
        }
    }
}

/// An item as clients see it. Its content fields (`bucket` to `checksum`, `media`) describe what
/// a download serves: for a re-encoded video the rendition, with the source under `original`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ItemView {
    /// Stable identifier.
    pub id: Uuid,
    /// The folder it is in.
    pub folder_id: Uuid,
    /// Its name, unique in the folder.
    pub title: String,
    /// The bucket that holds the content (`managed` for uploads and re-encoded renditions).
    pub bucket: String,
    /// The content's key inside the bucket.
    pub object_key: String,
    /// What the content is.
    pub item_type: ItemType,
    /// The content's MIME type.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// blake3 of the content, lowercase hex (what `b3sum` prints).
    pub checksum: Option<String>,
    /// The object is gone from its bucket; the row is a record of it.
    pub is_tombstone: bool,
    /// The client's JSON object.
    #[schema(value_type = Object)]
    pub client_metadata: Metadata,
    /// What was read from the content.
    pub media: MediaView,
    /// When the item expires (RFC 3339): its folder's TTL after creation, or its own time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the video was re-encoded (RFC 3339); `null` when it was not.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reencoded_at: Option<OffsetDateTime>,
    /// For a re-encoded video, the source object (`GET …/content?original=true`); else `null`.
    pub original: Option<OriginalView>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The objects of an image group, image sequence or DICOM series, in order (empty for other
    /// types). The content fields then describe the first frame, which a download serves.
    pub frames: Vec<Frame>,
    /// Your role on it (on its folder): `viewer`, `editor` or `manager`.
    pub my_role: Role,
    /// Whether you starred it.
    pub starred: bool,
    /// A URL that reads the content without an API key, when the list was asked for them
    /// (`signed_urls=true`; absent otherwise, and for tombstones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_url: Option<String>,
}

/// The source object of a re-encoded video (the first image of an image sequence made into
/// one), never changed by the re-encode: what a download with `original=true` serves.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OriginalView {
    /// The bucket that holds it.
    pub bucket: String,
    /// Its key inside the bucket.
    pub object_key: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// blake3, lowercase hex.
    pub checksum: Option<String>,
    /// What was read from it.
    pub media: MediaView,
}

impl OriginalView {
    /// What `original` serves (for a multi-object item, its first frame), and `media`.
    fn new(original: Served, media: &Media) -> Self {
        OriginalView {
            bucket: original.bucket,
            object_key: original.object_key,
            mime_type: original.mime_type,
            size: original.size,
            checksum: original.checksum,
            media: MediaView::from(media),
        }
    }
}

impl ItemView {
    /// How `item` looks to a caller whose role on it is `my_role` (`starred` false until
    /// `mark_starred` sets it).
    pub fn new(item: Item, my_role: Role) -> Self {
        let content = served(&item, false);
        let (media, reencoded_at, original) = match &item.encoded {
            Some(encoded) => (
                MediaView::from(&encoded.media),
                Some(encoded.encoded_at),
                Some(OriginalView::new(served(&item, true), &item.media)),
            ),
            None => (MediaView::from(&item.media), None, None),
        };
        ItemView {
            id: item.id,
            folder_id: item.folder_id,
            title: item.title,
            bucket: content.bucket,
            object_key: content.object_key,
            item_type: item.item_type,
            mime_type: content.mime_type,
            size: content.size,
            checksum: content.checksum,
            is_tombstone: item.is_tombstone,
            client_metadata: item.client_metadata,
            media,
            expires_at: item.expires_at,
            reencoded_at,
            original,
            created_at: item.created_at,
            updated_at: item.updated_at,
            frames: item.frames,
            my_role,
            starred: false,
            signed_url: None,
        }
    }
}
