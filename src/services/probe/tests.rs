//! Tests of type and media detection.
use super::*;

fn nifti1(dims: &[i16]) -> Vec<u8> {
    let mut h = vec![0u8; 348];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// A JPEG of `w`×`h` whose size (its SOF segment) comes after two 60 KiB APP1 segments, as
/// a camera's EXIF thumbnail can push it past the first [`HEAD_BYTES`].
fn jpeg_with_big_exif(w: u32, h: u32) -> Vec<u8> {
    let mut encoded = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(w, h)
        .write_to(&mut encoded, image::ImageFormat::Jpeg)
        .expect("encode");
    let encoded = encoded.into_inner();
    let mut out = encoded[..2].to_vec(); // SOI
    for _ in 0..2 {
        let payload = 60 * 1024;
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&u16::try_from(payload + 2).expect("segment length").to_be_bytes());
        out.extend(std::iter::repeat_n(0u8, payload));
    }
    out.extend_from_slice(&encoded[2..]);
    out
}

#[tokio::test]
async fn image_dimensions_past_the_head_are_read_from_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("photo.jpg");
    let bytes = jpeg_with_big_exif(40, 30);
    std::fs::write(&path, &bytes).expect("write");
    let head = &bytes[..HEAD_BYTES];
    let size = bytes.len() as u64;
    let examined = examine(head, "photo.jpg", size);
    assert_eq!(examined.item_type, ItemType::Image);
    assert_eq!(examined.media.width, None, "the head alone holds no size");
    let probed = complete(examined, size, Whole::File(path)).await;
    assert_eq!((probed.media.width, probed.media.height), (Some(40), Some(30)));
    // Without the file there is nothing more to read.
    let unreachable = probe(head, "photo.jpg", size, Whole::Unreachable).await;
    assert_eq!(unreachable.media.width, None);
}

#[test]
fn a_bare_frame_sync_is_audio_only_when_the_name_agrees() {
    let mut head = vec![0xFF, 0xF1, 0x50, 0x80];
    head.extend(std::iter::repeat_n(0x9C, 1000));
    let size = head.len() as u64;
    assert_eq!(sniff(&head, "tone.aac", size).0, ItemType::Audio);
    assert_eq!(sniff(&head, "tone", size).0, ItemType::Audio);
    assert_eq!(
        sniff(&head, "weights.bin", size),
        (ItemType::Other, "application/octet-stream".to_owned())
    );
    // A container's signature is believed whatever the name.
    let id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00rest";
    assert_eq!(sniff(id3, "x.bin", 1000).0, ItemType::Audio);
}

#[test]
fn nifti_headers_give_dimensions() {
    assert_eq!(nifti_dimensions(&nifti1(&[64, 64, 30])), Some(vec![64, 64, 30]));
    let mut big = nifti1(&[]);
    big[0..4].copy_from_slice(&348i32.to_be_bytes());
    big[40..42].copy_from_slice(&2i16.to_be_bytes());
    big[42..44].copy_from_slice(&5i16.to_be_bytes());
    big[44..46].copy_from_slice(&6i16.to_be_bytes());
    assert_eq!(nifti_dimensions(&big), Some(vec![5, 6]));
    let mut two = vec![0u8; 540];
    two[0..4].copy_from_slice(&540i32.to_le_bytes());
    two[4..8].copy_from_slice(b"n+2\0");
    two[16..24].copy_from_slice(&1i64.to_le_bytes());
    two[24..32].copy_from_slice(&9i64.to_le_bytes());
    assert_eq!(nifti_dimensions(&two), Some(vec![9]));
    assert_eq!(nifti_dimensions(b"not a header"), None);
    let mut wrong_magic = nifti1(&[2, 2]);
    wrong_magic[344] = b'x';
    assert_eq!(nifti_dimensions(&wrong_magic), None);
}

#[test]
fn magic_beats_the_extension() {
    let png = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13];
    assert_eq!(sniff(&png, "photo.txt", 12), (ItemType::Image, "image/png".into()));
    let mut dicom = vec![0u8; 132];
    dicom[128..].copy_from_slice(b"DICM");
    assert_eq!(sniff(&dicom, "x.bin", 132).0, ItemType::DicomFile);
    let cases: [(&[u8], &str, ItemType, &str); 4] = [
        (b"a,b\n1,2\n", "t.csv", ItemType::PlainText, "text/csv"),
        (b"plain words", "notes", ItemType::PlainText, "text/plain"),
        (b"\0\x01\x02", "clip.mp4", ItemType::Video, "video/mp4"),
        (b"\0\x01\x02", "blob", ItemType::Other, "application/octet-stream"),
    ];
    for (head, title, item_type, mime) in cases {
        assert_eq!(
            sniff(head, title, head.len() as u64),
            (item_type, mime.to_owned()),
            "{title}"
        );
    }
    assert_eq!(sniff(b"", "empty", 0).0, ItemType::Other);
    // A multi-byte character cut off by the end of the head is still text.
    let cut = "é".repeat(10);
    assert_eq!(sniff(&cut.as_bytes()[..5], "t", 20).0, ItemType::PlainText);
}

#[test]
fn gzipped_nifti_is_recognised() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &nifti1(&[3, 4])).expect("gzip");
    let bytes = gz.finish().expect("gzip");
    let sniffed = sniff(&bytes, "scan.nii.gz", bytes.len() as u64);
    assert_eq!(
        sniffed,
        (ItemType::Nifti, NIFTI_MIME.to_owned()),
        "as for an uncompressed one"
    );
}

#[test]
fn utf16_text_with_a_byte_order_mark_is_text_whatever_its_name() {
    let utf16 = |text: &str, little: bool| {
        let mut bytes = if little { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
        for unit in text.encode_utf16() {
            bytes.extend(if little { unit.to_le_bytes() } else { unit.to_be_bytes() });
        }
        bytes
    };
    for little in [true, false] {
        let bytes = utf16("Name\tPreis\r\nÄpfel\t1,50 €\r\n𝄞\r\n", little);
        let text = (ItemType::PlainText, "text/plain".to_owned());
        assert_eq!(sniff(&bytes, "export", bytes.len() as u64), text);
        // Cut off inside the last character's surrogate pair, as a 64 KiB head can be.
        let cut = &bytes[..bytes.len() - 6];
        assert_eq!(sniff(cut, "export", bytes.len() as u64), text);
    }
    let binary = [0xFF, 0xFE, 0x00, 0x00, 0x01, 0x00];
    assert_ne!(sniff(&binary, "blob", 6).0, ItemType::PlainText);
}

#[test]
fn transport_streams_are_video_mp2t_by_content_or_name() {
    let mut ts = vec![0u8; 188 * 8];
    for packet in ts.chunks_mut(188) {
        packet[0] = 0x47;
        packet[1] = 0x1F;
    }
    let video = (ItemType::Video, "video/mp2t".to_owned());
    assert_eq!(sniff(&ts, "capture", ts.len() as u64), video);
    assert_eq!(
        sniff(&[0, 1, 2], "clip.ts", 3),
        video,
        "the extension's MIME type as browsers name it"
    );
    assert_eq!(sniff(b"export const x = 1;\n", "app.ts", 20).0, ItemType::PlainText);
}

#[test]
fn svg_is_an_image_with_its_drawn_size_with_or_without_a_prolog() {
    let bare = br#"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="150"><rect/></svg>"#;
    let prolog = [&b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"[..], &bare[..]].concat();
    for (bytes, title) in [
        (&bare[..], "drawing"),
        (&prolog[..], "drawing.svg"),
        (&prolog[..], "x.xml"),
    ] {
        let probed = examine(bytes, title, bytes.len() as u64);
        assert_eq!(
            (probed.item_type, probed.mime_type.as_str()),
            (ItemType::Image, SVG_MIME),
            "{title}"
        );
        assert_eq!(
            (probed.media.width, probed.media.height),
            (Some(300), Some(150)),
            "{title}"
        );
    }
    let xml = b"<?xml version=\"1.0\"?><note>svg</note>";
    assert_eq!(sniff(xml, "note.xml", xml.len() as u64).0, ItemType::PlainText);
}

#[test]
fn ffprobe_output_fills_media() {
    let json = r#"{"streams":[
        {"codec_type":"video","codec_name":"mjpeg","width":1,"height":1,"disposition":{"attached_pic":1}},
        {"codec_type":"video","codec_name":"h264","width":320,"height":240,"avg_frame_rate":"25/1","disposition":{"attached_pic":0}},
        {"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":2}],
        "format":{"duration":"2.000000"}}"#;
    let out: FfprobeOutput = serde_json::from_str(json).expect("json");
    let mut media = Media::default();
    assert_eq!(out.apply(&mut media), Some(ItemType::Video));
    assert_eq!((media.width, media.height), (Some(320), Some(240)));
    assert_eq!(media.codec.as_deref(), Some("h264"));
    assert_eq!(media.duration_us, Some(2_000_000));
    assert_eq!(media.fps(), Some(25.0));

    let audio: FfprobeOutput = serde_json::from_str(
        r#"{"streams":[{"codec_type":"audio","codec_name":"pcm_s16le","sample_rate":"8000","channels":1,"duration":"0.5"}],"format":{}}"#,
    )
    .expect("json");
    let mut media = Media::default();
    assert_eq!(audio.apply(&mut media), Some(ItemType::Audio));
    assert_eq!(media.sample_rate, Some(8000));
    assert_eq!(media.duration_us, Some(500_000));
}

#[test]
fn archives_stay_other_and_say_what_they_are() {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.resize(64, 0);
    let mut tar = vec![0u8; 512];
    tar[..9].copy_from_slice(b"notes.txt");
    tar[257..263].copy_from_slice(b"ustar\0");
    let gz = [0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0xFF];
    for (bytes, title, mime) in [
        (&zip[..], "data.zip", "application/zip"),
        (&tar[..], "data.tar", "application/x-tar"),
        (&gz[..], "data.tar.gz", "application/gzip"),
    ] {
        assert_eq!(
            sniff(bytes, title, 1 << 20),
            (ItemType::Other, mime.to_owned()),
            "{title}"
        );
    }
}

/// Writes one data set element: group, element, VR, value.
type ElementWriter<'a> = &'a dyn Fn(u16, u16, &[u8; 2], &[u8]) -> Vec<u8>;

/// A data set element in Explicit VR Little Endian with a 2-byte length.
fn explicit(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend(vr);
    out.extend((value.len() as u16).to_le_bytes());
    out.extend(value);
    out
}

/// The same element in Implicit VR Little Endian (a 4-byte length, no VR).
fn implicit(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend((value.len() as u32).to_le_bytes());
    out.extend(value);
    out
}

#[test]
fn dicom_headers_are_read_with_or_without_preamble_and_file_meta() {
    // A CT image's identifying attributes, 2 rows of 3 columns.
    let ct_class = b"1.2.840.10008.5.1.4.1.1.2\0";
    let body = |element: ElementWriter| -> Vec<u8> {
        [
            element(0x0008, 0x0016, b"UI", ct_class),
            element(0x0008, 0x0018, b"UI", b"1.2.3.4\0"),
            element(0x0008, 0x0060, b"CS", b"CT"),
            element(0x0020, 0x0013, b"IS", b"7 "),
            element(0x0028, 0x0010, b"US", &2u16.to_le_bytes()),
            element(0x0028, 0x0011, b"US", &3u16.to_le_bytes()),
            element(0x0028, 0x0030, b"DS", b"0.5\\0.25"),
            element(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),
        ]
        .concat()
    };
    let explicit_body = body(&|g, e, vr, v| explicit(g, e, vr, v));
    let ts = b"1.2.840.10008.1.2.1\0";
    let meta_elements = [
        explicit(0x0002, 0x0002, b"UI", ct_class),
        explicit(0x0002, 0x0003, b"UI", b"1.2.3.4\0"),
        explicit(0x0002, 0x0010, b"UI", ts),
    ]
    .concat();
    let meta = [
        explicit(0x0002, 0x0000, b"UL", &(meta_elements.len() as u32).to_le_bytes()),
        meta_elements,
    ]
    .concat();
    let part10 = [vec![0u8; 128], b"DICM".to_vec(), meta.clone(), explicit_body.clone()].concat();
    let bare_meta = [meta.clone(), explicit_body.clone()].concat();
    let no_meta = body(&|g, e, _, v| implicit(g, e, v));
    for (name, bytes, ts) in [
        ("part 10", &part10, "1.2.840.10008.1.2.1"),
        ("no preamble", &bare_meta, "1.2.840.10008.1.2.1"),
        ("no file meta", &no_meta, "1.2.840.10008.1.2"),
    ] {
        assert_eq!(
            sniff(bytes, "scan", bytes.len() as u64).0,
            ItemType::DicomFile,
            "{name}"
        );
        let probed = examine(bytes, "scan", bytes.len() as u64);
        assert_eq!((probed.media.width, probed.media.height), (Some(3), Some(2)), "{name}");
        assert_eq!(probed.media.frame_count, Some(1), "{name}");
        let header = probed.media.dicom.expect("a header");
        assert_eq!(header.modality.as_deref(), Some("CT"), "{name}");
        assert_eq!(
            header.sop_class_uid.as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.2"),
            "{name}"
        );
        assert_eq!(header.instance_number, Some(7), "{name}");
        assert_eq!(header.pixel_spacing, Some(vec![0.5, 0.25]), "{name}");
        assert_eq!(header.bits_allocated, Some(16), "{name}");
        assert_eq!(header.transfer_syntax_uid.as_deref(), Some(ts), "{name}");
    }
    // Bytes that merely start like a data set are not DICOM.
    let mut lookalike = vec![0x08, 0x00, 0x05, 0x00, 4, 0, 0, 0];
    lookalike.extend(b"junk and more junk");
    assert_ne!(sniff(&lookalike, "blob", lookalike.len() as u64).0, ItemType::DicomFile);
}

#[test]
fn a_dicom_element_claiming_more_bytes_than_there_are_ends_the_reading() {
    let mut crafted = vec![0u8; 128];
    crafted.extend(b"DICM");
    crafted.extend(explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"));
    crafted.extend(explicit(0x0008, 0x0060, b"CS", b"MR"));
    // A private OB element that claims 4 GB in a file of a few hundred bytes.
    crafted.extend([0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]);
    crafted.extend([0u8; 64]);
    let started = std::time::Instant::now();
    let read = super::dicom::read(&crafted).expect("a header");
    // Believing the length means zero-filling 4 GB first: about 20 s and 4 GB of memory here.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!read.complete);
    assert_eq!(read.header.modality.as_deref(), Some("MR"), "what came before it stays");
}
