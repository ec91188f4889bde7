//! The managed bucket on S3 (moto), Azure (Azurite) and GCS (fake-gcs-server): an upload larger
//! than one part streams in as a multipart upload and reads back whole, in ranges across part
//! boundaries and in a tar; one cut off midway leaves no object and no unfinished upload; a
//! video's media is read through a URL the bucket signs. The item, trash, expiry and re-encode
//! tests run on each of these buckets too (tests/run.sh sets `STOWAGE_TEST_MANAGED_BUCKET`).

mod common;

use common::buckets::Fixture;
use common::{Backend, TestServer, eventually_async, id, media, tar_entries};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A server over SQLite whose managed bucket is `fixture`; `None` when its emulator is not set.
async fn on(fixture: Option<Fixture>) -> Option<TestServer> {
    TestServer::start_over(Backend::Sqlite, Some(fixture?), |_| {}).await
}

/// Bytes that differ from part to part and from one run of 251 to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_in_parts_read_back_whole_in_ranges_and_in_tars() {
    uploads_in_parts_read_back(Fixture::s3().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_uploads_in_parts_read_back_whole_in_ranges_and_in_tars() {
    uploads_in_parts_read_back(Fixture::azure("stowage-sync")).await;
}

/// fake-gcs-server (like every GCS emulator on PyPI and npm) lacks the XML API object_store
/// writes and deletes through, so a GCS managed bucket's uploads cannot be tested here: its
/// objects are put through the emulator's JSON API and the items recorded directly. Reads
/// (whole, ranged, tar), listing for the orphan sweep, and signed URLs run against it; writes
/// and deletes are object_store's own GCS code, untested here (README: "Cloud buckets").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_objects_read_back_whole_in_ranges_and_in_tars() {
    let Some(fixture) = Fixture::gcs().await else { return };
    let Some(s) = on(Some(fixture)).await else { return };
    let f = s.folder("/gcs").await;
    let bytes = content(3 * 1024 * 1024 + 7);
    s.managed().put("ab/stored", &bytes).await;
    let mut row = common::item_row(&f, "stored.bin", "managed", "ab/stored");
    row.size = i64::try_from(bytes.len()).expect("size");
    let store = &s.services().store;
    let mut tx = store.write().await.expect("tx");
    assert!(
        stowage::store::items::insert_if_title_free(&mut tx, &row)
            .await
            .expect("insert")
    );
    tx.commit().await.expect("commit");

    let content_path = format!("/v1/items/{}/content", row.id);
    assert!(s.bytes(&content_path).await == bytes, "a download is the object");
    let ranged = s
        .request(Method::GET, &content_path, Some(&s.admin_key))
        .header("Range", "bytes=1048000-1049999")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert!(ranged.bytes().await.expect("body") == bytes[1_048_000..1_050_000]);
    let tar = s
        .request(Method::POST, "/v1/items/download", Some(&s.admin_key))
        .json(&json!({"item_ids": [row.id]}))
        .send()
        .await
        .expect("tar");
    assert!(tar_entries(&tar.bytes().await.expect("tar"))[0].1 == bytes);

    // The orphan sweep lists the bucket: the item's object is referenced, a stray one is not
    // (young objects stay; the sweep's own delete is the untested write path).
    s.managed().put("ab/stray", b"s").await;
    let swept = s
        .services()
        .items
        .sweep_orphans(std::time::Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(swept.orphans, 0, "both objects are young");
    assert_eq!(s.object_keys().await, ["ab/stored", "ab/stray"]);
}

async fn uploads_in_parts_read_back(fixture: Option<Fixture>) {
    let Some(s) = on(fixture).await else { return };
    let f = s.folder("/big").await;
    let part = stowage::blobs::cloud::PART_BYTES;
    let bytes = content(2 * part + 12_345);
    let item = s.upload_ok(&f, "big.bin", bytes.clone()).await;
    assert_eq!(item["size"], bytes.len());
    assert_eq!(item["checksum"], blake3::hash(&bytes).to_hex().as_str());
    let key = item["object_key"].as_str().expect("key");
    assert!(
        s.object(key).await.as_deref() == Some(&bytes[..]),
        "the bucket holds the upload"
    );
    assert_eq!(s.object_keys().await, [key], "one object, nothing else");

    let content_path = format!("/v1/items/{}/content", id(&item));
    assert!(s.bytes(&content_path).await == bytes, "a download is the upload");
    let (start, end) = (part - 100, part + 199);
    let ranged = s
        .request(Method::GET, &content_path, Some(&s.admin_key))
        .header("Range", format!("bytes={start}-{end}"))
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert!(
        ranged.bytes().await.expect("body") == bytes[start..=end],
        "a range across parts"
    );

    let small = s.upload_ok(&f, "small.txt", b"one put".to_vec()).await;
    let tar = s
        .request(Method::POST, "/v1/items/download", Some(&s.admin_key))
        .json(&json!({"item_ids": [id(&item), id(&small)]}))
        .send()
        .await
        .expect("tar");
    assert_eq!(tar.status(), StatusCode::OK);
    let entries = tar_entries(&tar.bytes().await.expect("tar"));
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .any(|(name, body)| name.ends_with("big.bin") && *body == bytes)
    );
    assert!(
        entries
            .iter()
            .any(|(name, body)| name.ends_with("small.txt") && body == b"one put")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_cut_off_midway_leaves_no_object_and_no_unfinished_upload() {
    let Some(s) = on(Fixture::s3().await).await else { return };
    let f = s.folder("/cut").await;
    let part = stowage::blobs::cloud::PART_BYTES;
    // Cut off after two and a half parts of an announced four: parts were sent.
    tokio::task::block_in_place(|| common::cut_off_upload(&s, &f, 4 * part, 5 * part / 2));
    assert!(
        eventually_async(|| async { s.managed().unfinished_uploads().await == 0 }).await,
        "the multipart upload was aborted"
    );
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
    let listed = s.get(&format!("/v1/folders/{f}/items")).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_video_media_is_read_through_a_signed_url() {
    video_media_is_read(Fixture::s3().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_video_media_is_read_through_a_signed_url() {
    video_media_is_read(Fixture::azure("stowage-sync")).await;
}

async fn video_media_is_read(fixture: Option<Fixture>) {
    if !media::have_ffmpeg() {
        return;
    }
    let Some(s) = on(fixture).await else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/video").await;
    let video = s.upload_ok(&f, "clip.mp4", media::mp4(dir.path())).await;
    assert_eq!(video["item_type"], "VIDEO", "{video}");
    assert!(
        video["media"]["duration_seconds"].as_f64().is_some_and(|d| d > 0.0),
        "{video}"
    );
    assert!(video["media"]["width"].as_u64().is_some_and(|w| w > 0), "{video}");
}
