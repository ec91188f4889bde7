//! Files other projects ship (matplotlib's SVG, nibabel's NIfTI volumes, pydicom's DICOM files and
//! series), uploaded as they are and typed and described as those projects' own readers describe
//! them; and files as other tools write them (Pillow's EXIF JPEG, animations and multi-page TIFF,
//! UTF-16 text as Excel exports it, ffmpeg's transport stream and rotated video, pillow-heif's
//! HEIC).

mod common;

use common::buckets::Fixture;
use common::media::{self, ask_corpus, corpus_python};
use common::{Backend, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    svg_and_nifti_from_their_projects_are_typed_and_measured_as_they_say,
    utf16_exports_and_transport_streams_are_typed_by_their_content,
    pydicom_files_of_every_layout_are_described_as_pydicom_reads_them,
    orientation_is_reported_and_sizes_are_as_shown,
    animations_and_multi_page_images_report_their_frames_and_pages,
    heic_images_are_measured_cropped_and_turned_as_libheif_shows_them,
    nifti_pairs_synced_from_a_local_bucket_are_typed_by_their_header,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nifti_pairs_synced_from_s3_are_typed_by_their_header() {
    let Some(fixture) = Fixture::s3().await else { return };
    nifti_pairs_are_typed_by_their_header(Backend::Sqlite, fixture).await;
}

/// Uploads the file at `path` under `title` into `folder`; answers the item.
async fn upload_file(s: &TestServer, folder: &str, path: &str, title: &str) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    s.upload_ok(folder, title, bytes).await
}

async fn svg_and_nifti_from_their_projects_are_typed_and_measured_as_they_say(backend: Backend) {
    let Some(python) = corpus_python() else { return };
    let corpus = ask_corpus(
        &python,
        r#"
import json, os, xml.etree.ElementTree as ET
import matplotlib, nibabel
svg = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "images", "matplotlib.svg")
root = ET.parse(svg).getroot()
def css_px(length):
    assert length.endswith("pt"), length
    return round(float(length[:-2]) * 96 / 72)
data = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
volumes = [os.path.join(data, name) for name in ("example4d.nii.gz", "anatomical.nii", "example_nifti2.nii.gz")]
print(json.dumps({
    "svg": {"path": svg, "width": css_px(root.get("width")), "height": css_px(root.get("height"))},
    "volumes": [{"path": p, "shape": list(nibabel.load(p).shape)} for p in volumes],
}))
"#,
    );
    let s = server!(backend);
    let folder = s.folder("/real").await;

    // matplotlib's logo starts with an XML declaration and a doctype.
    let svg = &corpus["svg"];
    let path = svg["path"].as_str().expect("path");
    for title in ["matplotlib.svg", "logo"] {
        let item = upload_file(&s, &folder, path, title).await;
        assert_eq!(item["item_type"], "IMAGE", "{title}: {item}");
        assert_eq!(item["mime_type"], "image/svg+xml", "{title}");
        assert_eq!(item["media"]["width"], svg["width"], "{title}: 72pt is 96 CSS pixels");
        assert_eq!(item["media"]["height"], svg["height"], "{title}");
    }

    // nibabel's volumes, gzipped or not, NIfTI-1 and NIfTI-2: one type, one MIME type, and the
    // shape nibabel reads.
    for volume in corpus["volumes"].as_array().expect("volumes") {
        let path = volume["path"].as_str().expect("path");
        let title = std::path::Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        let item = upload_file(&s, &folder, path, title).await;
        assert_eq!(item["item_type"], "NIFTI", "{title}: {item}");
        assert_eq!(item["mime_type"], "application/x-nifti", "{title}");
        assert_eq!(item["media"]["dimensions"], volume["shape"], "{title}");
    }
}

async fn utf16_exports_and_transport_streams_are_typed_by_their_content(backend: Backend) {
    let s = server!(backend);
    let folder = s.folder("/tools").await;

    // Excel's "Unicode text": UTF-16 little-endian with a byte-order mark, no extension.
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "Artikel\tPreis\r\nÄpfel\t1,50 €\r\n".encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    let text = s.upload_ok(&folder, "Preisliste", utf16).await;
    assert_eq!(
        (&text["item_type"], &text["mime_type"]),
        (&json!("PLAIN_TEXT"), &json!("text/plain"))
    );

    if !media::have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ts = media::mpeg_ts(dir.path());
    for title in ["capture.ts", "capture"] {
        let item = s.upload_ok(&folder, title, ts.clone()).await;
        assert_eq!(item["item_type"], "VIDEO", "{title}: {item}");
        assert_eq!(
            item["mime_type"], "video/mp2t",
            "{title}: what browsers and players expect"
        );
        assert_eq!(
            (&item["media"]["width"], &item["media"]["height"]),
            (&json!(320), &json!(240))
        );
        let id = item["id"].as_str().expect("id");
        let answer = s
            .request(
                reqwest::Method::GET,
                &format!("/v1/items/{id}/content"),
                Some(&s.admin_key),
            )
            .send()
            .await;
        let answer = answer.expect("download");
        assert_eq!(answer.headers()["content-type"], "video/mp2t");
    }
}

/// pydicom's own reading of its test files: the attributes stowage reports, as pydicom reads them
/// (`stop_before_pixels`, `force` for the files without preamble or file meta).
const PYDICOM_HEADERS: &str = r#"
import json, os
import pydicom
from pydicom.data import get_testdata_file
names = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
         "rtstruct.dcm", "no_meta.dcm", "rtdose.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm"]
def text(ds, keyword):
    value = ds.get(keyword)
    return str(value).strip() or None if value is not None else None
def floats(ds, keyword):
    value = ds.get(keyword)
    return [float(v) for v in value] if value is not None else None
out = []
for name in names:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None
    if ts is None:
        implicit, little = ds.original_encoding
        ts = "1.2.840.10008.1.2" if implicit and little else "1.2.840.10008.1.2.1"
    rows = ds.get("Rows")
    sop_class = text(ds, "SOPClassUID") or (str(meta.MediaStorageSOPClassUID) if meta is not None and "MediaStorageSOPClassUID" in meta else None)
    with open(path, "rb") as f:
        head = f.read(132)
    out.append({
        "name": name, "path": path, "preamble": head[128:132] == b"DICM",
        "width": ds.get("Columns"), "height": rows,
        "frame_count": int(ds.get("NumberOfFrames", 1)) if rows is not None else None,
        "dicom": {
            "modality": text(ds, "Modality"),
            "sop_class_uid": sop_class,
            "sop_instance_uid": text(ds, "SOPInstanceUID"),
            "study_instance_uid": text(ds, "StudyInstanceUID"),
            "series_instance_uid": text(ds, "SeriesInstanceUID"),
            "instance_number": int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None,
            "image_position_patient": floats(ds, "ImagePositionPatient"),
            "transfer_syntax_uid": ts,
            "pixel_spacing": floats(ds, "PixelSpacing"),
            "bits_allocated": ds.get("BitsAllocated"),
        },
    })
tests = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests")
dicomdir = os.path.join(tests, "DICOMDIR")
def series_of(paths):
    return [{"path": p, "series": str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID)} for p in paths]
ct = [os.path.join(tests, "77654033", "CT2", n) for n in ("17106", "17136", "17166", "17196")]
other = [os.path.join(tests, "98892001", "CT5N", "2062")]
print(json.dumps({"files": out, "dicomdir": dicomdir, "series": series_of(ct), "other": series_of(other)}))
"#;

async fn pydicom_files_of_every_layout_are_described_as_pydicom_reads_them(backend: Backend) {
    let Some(python) = corpus_python() else { return };
    let corpus = ask_corpus(&python, PYDICOM_HEADERS);
    let files = corpus["files"].as_array().expect("files");
    assert!(
        files.iter().any(|f| f["preamble"] == false),
        "the set holds files without a preamble"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let bucket = dir.path().to_owned();
    for file in files {
        let name = file["name"].as_str().expect("name");
        std::fs::copy(file["path"].as_str().expect("path"), bucket.join(name)).expect("copy");
    }
    let dicomdir = corpus["dicomdir"].as_str().expect("DICOMDIR");
    std::fs::copy(dicomdir, bucket.join("DICOMDIR")).expect("copy");
    // One CT series of four files, and a file of another series; named as on their medium.
    let series = corpus["series"].as_array().expect("series");
    let other = &corpus["other"][0];
    for (index, file) in series.iter().chain([other]).enumerate() {
        std::fs::copy(file["path"].as_str().expect("path"), bucket.join(format!("ct{index}"))).expect("copy");
    }
    let source = stowage::config::BucketSettings::at(format!("file://{}", bucket.display()));
    let s = server!(backend, move |settings: &mut stowage::config::Settings| {
        settings.buckets.insert("corpus".into(), source);
    });
    let folder = s.folder("/dicom").await;

    // Uploaded as they are: DICOM, described as pydicom reads them. Whatever their name when
    // their header is readable (pydicom reads nothing of `no_meta.dcm`, whose first byte is
    // not an element's: its name says what it is).
    for file in files {
        let name = file["name"].as_str().expect("name");
        let path = file["path"].as_str().expect("path");
        let readable = file["dicom"]["sop_class_uid"] != Value::Null;
        let titles = match readable {
            true => vec![name.to_owned(), format!("{name}.bin")],
            false => vec![name.to_owned()],
        };
        for title in titles {
            let item = upload_file(&s, &folder, path, &title).await;
            assert_eq!(item["item_type"], "DICOM_FILE", "{title}: {item}");
            assert_eq!(item["mime_type"], "application/dicom", "{title}");
            if !readable {
                assert_eq!(item["media"]["dicom"], Value::Null, "{title}: {item}");
                continue;
            }
            for field in ["width", "height", "frame_count"] {
                assert_eq!(item["media"][field], file[field], "{title}: {field}");
            }
            assert_eq!(item["media"]["dicom"], file["dicom"], "{title}");
        }
    }
    let index = upload_file(&s, &folder, dicomdir, "DICOMDIR").await;
    assert_eq!(index["item_type"], "DICOM_FILE");
    assert_eq!(index["media"]["dicom"]["sop_class_uid"], "1.2.840.10008.1.3.10");

    // A series of files without preamble or file meta imports; one holding a DICOMDIR does not.
    let url = |name: &str| format!("file://{}/{name}", bucket.display());
    let spec = json!({"dicom_series": [
        {"title": "bare", "objectUrl_0": url("rtstruct.dcm"), "objectUrl_1": url("no_meta.dcm")},
        {"title": "indexed", "objectUrl_0": url("CT_small.dcm"), "objectUrl_1": url("DICOMDIR")},
        {"title": "ct", "objectUrl_0": url("ct0"), "objectUrl_1": url("ct1"), "objectUrl_2": url("ct2"), "objectUrl_3": url("ct3")},
        {"title": "mixed", "objectUrl_0": url("ct0"), "objectUrl_1": url("ct1"), "objectUrl_2": url("ct4")},
    ]});
    let submitted = s.post(&format!("/v1/folders/{folder}/imports"), spec).await;
    assert_eq!(submitted.status, reqwest::StatusCode::ACCEPTED, "{:?}", submitted.body);
    let job = common::poll_job(
        &s.base,
        &s.admin_key,
        submitted.body["id"].as_str().expect("id"),
        std::time::Duration::from_secs(60),
        |j| matches!(j["status"].as_str(), Some("DONE" | "ERROR")),
    )
    .await;
    assert_eq!(job["result"]["created"], 2, "{job}");
    let errors = job["errors"].to_string();
    assert!(errors.contains("DICOMDIR"), "{job}");
    // Two series in one unit: refused, naming both (as pydicom reads them).
    let (ours, theirs) = (
        series[0]["series"].as_str().expect("uid"),
        other["series"].as_str().expect("uid"),
    );
    assert!(
        errors.contains("objectUrl_0 and objectUrl_2") && errors.contains(ours) && errors.contains(theirs),
        "{job}"
    );

    // The series downloads whole, its files in order, as one tar.
    let page = s
        .get(&format!("/v1/folders/{folder}/items?item_types=DICOM_SERIES"))
        .await;
    let ct = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["title"] == "ct")
        .expect("the ct series")
        .clone();
    assert_eq!(ct["media"]["frame_count"], 4);
    assert_eq!(ct["media"]["dicom"]["series_instance_uid"], ours);
    let id = ct["id"].as_str().expect("id");
    let tar = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/items/{id}/content?frames=all"),
            Some(&s.admin_key),
        )
        .send()
        .await
        .expect("download");
    assert_eq!(tar.status(), reqwest::StatusCode::OK);
    assert_eq!(tar.headers()["content-type"], "application/x-tar");
    let entries = common::tar_entries(&tar.bytes().await.expect("tar"));
    let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["ct/0000_ct0", "ct/0001_ct1", "ct/0002_ct2", "ct/0003_ct3"]);
    for ((_, bytes), file) in entries.iter().zip(series) {
        assert!(*bytes == std::fs::read(file["path"].as_str().expect("path")).expect("read"));
    }
    let single = s
        .get(&format!(
            "/v1/items/{}/content?frames=all",
            index["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(single.status, reqwest::StatusCode::BAD_REQUEST, "{:?}", single.body);
}

async fn orientation_is_reported_and_sizes_are_as_shown(backend: Backend) {
    let Some(python) = corpus_python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let jpeg = dir.path().join("turned.jpg");
    // Pillow writes a 512×600 JPEG whose EXIF says "turn 90° clockwise", and says how it shows.
    let pillow = ask_corpus(
        &python,
        &format!(
            r#"
import json
from PIL import Image, ImageOps
image = Image.new("RGB", (512, 600), (200, 30, 30))
exif = Image.Exif()
exif[0x0112] = 6
image.save({path:?}, exif=exif.tobytes())
shown = ImageOps.exif_transpose(Image.open({path:?}))
print(json.dumps({{"stored": list(Image.open({path:?}).size), "shown": list(shown.size)}}))
"#,
            path = jpeg.to_str().expect("utf8")
        ),
    );
    assert_eq!(pillow["stored"], json!([512, 600]));
    let s = server!(backend);
    let folder = s.folder("/turned").await;
    let photo = upload_file(&s, &folder, jpeg.to_str().expect("utf8"), "turned.jpg").await;
    assert_eq!(photo["media"]["orientation"], 6);
    assert_eq!(
        json!([photo["media"]["width"], photo["media"]["height"]]),
        pillow["shown"]
    );

    if !media::have_ffmpeg() {
        return;
    }
    // A phone video: coded 320×240, shown turned a quarter: its display matrix, whose rotation
    // ffprobe gives in degrees counter-clockwise (EXIF 6 is a quarter clockwise, 8 counter-).
    let clip = media::rotated_mp4(dir.path());
    let (coded, rotation) = media::coded_size_and_rotation(&dir.path().join("rotated.mp4"));
    assert_eq!(coded, (320, 240));
    let expected = match rotation {
        -90 | 270 => 6,
        90 | -270 => 8,
        other => panic!("not a quarter turn: {other}"),
    };
    let video = s.upload_ok(&folder, "portrait.mp4", clip).await;
    assert_eq!(video["media"]["orientation"], expected, "{video}");
    assert_eq!(
        (&video["media"]["width"], &video["media"]["height"]),
        (&json!(240), &json!(320))
    );

    // Every audio track of a video, with its language; frames as the container counts them.
    let tracks = s
        .upload_ok(&folder, "tracks.mp4", media::vfr_hevc_two_tracks(dir.path()))
        .await;
    let audio = &tracks["media"]["audio_tracks"];
    assert_eq!(
        audio,
        &json!([
            {"codec": "aac", "channels": 1, "sample_rate": 48000, "language": "eng"},
            {"codec": "aac", "channels": 1, "sample_rate": 44100, "language": "deu"},
        ]),
        "{tracks}"
    );
    assert_eq!(tracks["media"]["frame_count"], 60);
    assert_eq!(tracks["media"]["orientation"], 1);
}

async fn animations_and_multi_page_images_report_their_frames_and_pages(backend: Backend) {
    let Some(python) = corpus_python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    // Pillow writes each (colours differ so that no frame is merged away) and counts its frames.
    let made = ask_corpus(
        &python,
        &format!(
            r#"
import json, os
from PIL import Image
out = {{}}
def frames(n):
    return [Image.new("RGB", (40, 30), (40 * i, 255 - 40 * i, 90)) for i in range(n)]
for name, n, options in [("anim.gif", 3, {{}}), ("anim.png", 4, {{}}), ("anim.webp", 5, {{"lossless": True}}),
                         ("pages.tiff", 2, {{}}), ("still.png", 1, {{}})]:
    path = os.path.join({dir:?}, name)
    first, *rest = frames(n)
    first.save(path, save_all=bool(rest), append_images=rest, duration=100, **options)
    out[name] = {{"path": path, "n_frames": Image.open(path).n_frames}}
print(json.dumps(out))
"#,
            dir = dir.path().to_str().expect("utf8")
        ),
    );
    let s = server!(backend);
    let folder = s.folder("/frames").await;
    for (name, field) in [
        ("anim.gif", "frame_count"),
        ("anim.png", "frame_count"),
        ("anim.webp", "frame_count"),
        ("still.png", "frame_count"),
        ("pages.tiff", "page_count"),
    ] {
        let file = &made[name];
        let item = upload_file(&s, &folder, file["path"].as_str().expect("path"), name).await;
        assert_eq!(item["item_type"], "IMAGE", "{name}: {item}");
        assert_eq!(item["media"][field], file["n_frames"], "{name}: {item}");
        assert_eq!(
            (&item["media"]["width"], &item["media"]["height"]),
            (&json!(40), &json!(30)),
            "{name}"
        );
    }
}

async fn heic_images_are_measured_cropped_and_turned_as_libheif_shows_them(backend: Backend) {
    let Some(python) = corpus_python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    // pillow-heif (libheif) writes a 451-wide image as HEIC coded 452 wide with a clean aperture
    // of 451, and each EXIF orientation as the file's own rotation (`irot`) and mirroring
    // (`imir`); Pillow reads back the size as shown and the orientation it was written with.
    let made = ask_corpus(
        &python,
        &format!(
            r#"
import json, os
import pillow_heif
from PIL import Image
pillow_heif.register_heif_opener()
out = {{}}
for orientation in range(1, 9):
    path = os.path.join({dir:?}, f"o{{orientation}}.heic")
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (451, 300), (10, 200, 30)).save(path, exif=exif.tobytes())
    shown = Image.open(path)
    out[orientation] = {{"path": path, "size": list(shown.size),
                        "orientation": shown.info.get("original_orientation") or 1}}
print(json.dumps(out))
"#,
            dir = dir.path().to_str().expect("utf8")
        ),
    );
    assert_eq!(made["1"]["size"], json!([451, 300]), "{made}");
    let coded = std::fs::read(made["1"]["path"].as_str().expect("path")).expect("read");
    let ispe = coded.windows(4).position(|w| w == b"ispe").expect("an ispe box");
    assert_eq!(
        &coded[ispe + 8..ispe + 12],
        &452u32.to_be_bytes(),
        "libheif codes an even width"
    );
    let s = server!(backend);
    let folder = s.folder("/heic").await;
    for orientation in 1..=8 {
        let file = &made[orientation.to_string()];
        let name = format!("o{orientation}.heic");
        let item = upload_file(&s, &folder, file["path"].as_str().expect("path"), &name).await;
        assert_eq!(
            (&item["item_type"], &item["mime_type"]),
            (&json!("IMAGE"), &json!("image/heic")),
            "{item}"
        );
        assert_eq!(
            json!([item["media"]["width"], item["media"]["height"]]),
            file["size"],
            "{name}: {item}"
        );
        assert_eq!(item["media"]["orientation"], file["orientation"], "{name}: {item}");
    }
}

async fn nifti_pairs_synced_from_a_local_bucket_are_typed_by_their_header(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    nifti_pairs_are_typed_by_their_header(backend, Fixture::local(dir.path().join("bucket"))).await;
}

/// nibabel writes a NIfTI-1 pair (`pair.hdr`, the header; `pair.img`, bare voxels) into
/// `fixture`, beside an `.img` of the wrong size and one with no header; a sync types the pair's
/// image file by its header.
async fn nifti_pairs_are_typed_by_their_header(backend: Backend, fixture: Fixture) {
    let Some(python) = corpus_python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let made = ask_corpus(
        &python,
        &format!(
            r#"
import json, os
import numpy, nibabel
path = os.path.join({dir:?}, "pair.img")
nibabel.Nifti1Pair(numpy.zeros((4, 5, 6), dtype=numpy.int16), numpy.eye(4)).to_filename(path)
print(json.dumps({{"shape": list(nibabel.load(path).shape), "files": sorted(os.listdir({dir:?}))}}))
"#,
            dir = dir.path().to_str().expect("utf8")
        ),
    );
    assert_eq!(made["files"], json!(["pair.hdr", "pair.img"]));
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect("read");
    let (header, voxels) = (read("pair.hdr"), read("pair.img"));
    fixture.put("scans/pair.hdr", &header).await;
    fixture.put("scans/pair.img", &voxels).await;
    fixture.put("scans/short.hdr", &header).await;
    fixture.put("scans/short.img", &voxels[..voxels.len() - 2]).await;
    fixture.put("scans/disk.img", &voxels).await;
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let created = s
        .post(
            "/v1/folders",
            json!({"path": "/volumes", "sync": {"bucket": "src", "prefix": "scans/"}}),
        )
        .await;
    assert_eq!(created.status, reqwest::StatusCode::CREATED, "{:?}", created.body);
    let folder = created.body["id"].as_str().expect("id").to_owned();
    let submitted = s.post(&format!("/v1/folders/{folder}/sync"), json!({})).await;
    assert_eq!(submitted.status, reqwest::StatusCode::ACCEPTED, "{:?}", submitted.body);
    let job = common::poll_job(
        &s.base,
        &s.admin_key,
        submitted.body["id"].as_str().expect("id"),
        Duration::from_secs(60),
        |j| matches!(j["status"].as_str(), Some("DONE" | "ERROR")),
    )
    .await;
    assert_eq!(job["status"], "DONE", "{job}");
    let page = s.get(&format!("/v1/folders/{folder}/items?page_size=100")).await.body;
    let items: std::collections::BTreeMap<&str, &Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["title"].as_str().expect("title"), i))
        .collect();
    for name in ["pair.hdr", "pair.img", "short.hdr"] {
        assert_eq!(items[name]["item_type"], "NIFTI", "{name}: {}", items[name]);
        assert_eq!(items[name]["mime_type"], "application/x-nifti", "{name}");
        assert_eq!(items[name]["media"]["dimensions"], made["shape"], "{name}");
    }
    // Voxels of another size than the header's, and an image file without a header, are not
    // taken for a volume.
    for name in ["short.img", "disk.img"] {
        assert_eq!(items[name]["item_type"], "OTHER", "{name}: {}", items[name]);
    }
}
