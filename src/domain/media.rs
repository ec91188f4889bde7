//! What was read from a content: sizes, durations, codecs, a DICOM header, orientation, audio
//! tracks.

use serde::{Deserialize, Serialize};

/// Media metadata read from the content; every field is absent when it does not apply or could
/// not be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// Pixels across (images, video).
    pub width: Option<i64>,
    /// Pixels down (images, video).
    pub height: Option<i64>,
    /// Play time in microseconds (audio, video).
    pub duration_us: Option<i64>,
    /// Frames per second as a rational such as `30000/1001` (video).
    pub frame_rate: Option<String>,
    /// Codec name as ffprobe reports it, e.g. `h264`, `pcm_s16le` (audio, video).
    pub codec: Option<String>,
    /// Samples per second (audio).
    pub sample_rate: Option<i64>,
    /// Audio channels (audio).
    pub channels: Option<i64>,
    /// Pages (PDF).
    pub page_count: Option<i64>,
    /// Size along each axis (NIfTI).
    pub dimensions: Option<Vec<i64>>,
    /// Frames of a multi-frame image (DICOM: 1 for a single image) or of a video (as its
    /// container records them).
    #[serde(default)]
    pub frame_count: Option<i64>,
    /// What a DICOM file's header says.
    #[serde(default)]
    pub dicom: Option<DicomHeader>,
    /// How the stored pixels turn into what a viewer shows, as an EXIF Orientation (1 as
    /// stored, 3 upside down, 6 turned 90° clockwise, 8 turned 90° counter-clockwise, 2, 4, 5, 7
    /// the same mirrored): an image's EXIF tag, a video's rotation. `width` and `height` are
    /// the size shown.
    #[serde(default)]
    pub orientation: Option<i64>,
    /// Every audio track of a video (or of an audio file with several).
    #[serde(default)]
    pub audio_tracks: Option<Vec<AudioTrack>>,
}

/// One audio track of a video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudioTrack {
    /// Codec name as ffprobe reports it, e.g. `aac`.
    pub codec: Option<String>,
    /// Channels.
    pub channels: Option<i64>,
    /// Samples per second.
    pub sample_rate: Option<i64>,
    /// Language tag (ISO 639-2, e.g. `eng`), when the container gives one.
    pub language: Option<String>,
}

impl Media {
    /// Whether the shown image is the stored one turned a quarter (EXIF orientations 5 to 8):
    /// width and height swap places.
    pub fn quarter_turned(&self) -> bool {
        matches!(self.orientation, Some(5..=8))
    }
}

/// The attributes of a DICOM header that tell files and series apart; each absent when the file
/// does not carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DicomHeader {
    /// Modality (0008,0060), e.g. `CT`, `MR`, `US`.
    pub modality: Option<String>,
    /// SOP Class UID (0008,0016), else the file meta's Media Storage SOP Class UID: what kind of
    /// object it is (`1.2.840.10008.1.3.10` for a DICOMDIR).
    pub sop_class_uid: Option<String>,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: Option<String>,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: Option<String>,
    /// Instance Number (0020,0013): the image's place in its series.
    pub instance_number: Option<i64>,
    /// Image Position (Patient) (0020,0032): x, y, z of the first pixel, in mm.
    pub image_position_patient: Option<Vec<f64>>,
    /// Transfer Syntax UID (0002,0010); for a file without file meta, the one it was read with.
    pub transfer_syntax_uid: Option<String>,
    /// Pixel Spacing (0028,0030): mm between rows, then between columns.
    pub pixel_spacing: Option<Vec<f64>>,
    /// Bits Allocated (0028,0100) per sample.
    pub bits_allocated: Option<i64>,
}

/// The SOP class of a DICOMDIR: the index of a DICOM medium, not an image.
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

impl DicomHeader {
    /// Whether the file is a DICOMDIR.
    pub fn is_directory(&self) -> bool {
        self.sop_class_uid.as_deref() == Some(DICOMDIR_SOP_CLASS)
    }
}

impl Media {
    /// Frames per second as a number, from the rational `frame_rate`.
    pub fn fps(&self) -> Option<f64> {
        let rate = self.frame_rate.as_deref()?;
        let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
        let (num, den): (f64, f64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
        (num > 0.0 && den > 0.0).then(|| (num / den * 1000.0).round() / 1000.0)
    }
}
