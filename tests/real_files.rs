//! Files other projects ship (matplotlib's SVG, nibabel's NIfTI volumes), uploaded as they are
//! and typed and described as those projects' own readers describe them; and files as other
//! tools write them (UTF-16 text as Excel exports it, an MPEG transport stream from ffmpeg).

mod common;

use common::media::{self, ask_corpus, corpus_python};
use common::{Backend, TestServer};
use serde_json::{Value, json};

/// Uploads the file at `path` under `title` into `folder`; answers the item.
async fn upload_file(s: &TestServer, folder: &str, path: &str, title: &str) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    s.upload_ok(folder, title, bytes).await
}

#[tokio::test]
async fn svg_and_nifti_from_their_projects_are_typed_and_measured_as_they_say() {
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
    let s = server!(Backend::Sqlite);
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

#[tokio::test]
async fn utf16_exports_and_transport_streams_are_typed_by_their_content() {
    let s = server!(Backend::Sqlite);
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
