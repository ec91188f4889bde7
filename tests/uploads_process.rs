//! Uploads against the real binary in its own process: memory stays flat during a 2 GiB upload
//! and while it is downloaded back (whole and as a tar), a missing ffprobe stores media without
//! metadata and warns once, and what an upload killed midway left is gone after a restart.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{ServerProcess, media};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

/// Creates folder `path` on `server` and answers its id.
async fn mkdir(http: &reqwest::Client, server: &ServerProcess, path: &str) -> String {
    let made: Value = http
        .post(format!("{}/v1/folders", server.base))
        .bearer_auth(&server.admin_key)
        .json(&serde_json::json!({"path": path}))
        .send()
        .await
        .expect("mkdir")
        .json()
        .await
        .expect("json");
    made["id"].as_str().expect("id").to_owned()
}

/// Uploads `body` of `len` bytes as `name`.
async fn upload(
    http: &reqwest::Client,
    server: &ServerProcess,
    folder: &str,
    name: &str,
    body: reqwest::Body,
    len: u64,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name(name.to_owned());
    let resp = http
        .post(format!("{}/v1/folders/{folder}/items", server.base))
        .bearer_auth(&server.admin_key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends `request`, checks that its answer's body of `total` bytes hashes to `expected`, and
/// answers the rate it came at, in MB/s.
async fn timed_download(request: reqwest::RequestBuilder, expected: &str, total: u64) -> f64 {
    let started = Instant::now();
    let resp = request.send().await.expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut hasher = blake3::Hasher::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        hasher.update(&chunk.expect("chunk"));
    }
    assert_eq!(
        hasher.finalize().to_hex().to_string(),
        expected,
        "downloaded byte-identical"
    );
    total as f64 / 1e6 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_upload_and_its_downloads_stay_under_64_mib_of_extra_rss() {
    two_gib_round_trip("local directory", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_upload_into_s3_and_its_downloads_stay_under_64_mib_of_extra_rss() {
    let Some(fixture) = common::buckets::Fixture::s3().await else {
        return;
    };
    let settings = fixture.settings();
    let endpoint = settings.endpoint.clone().expect("endpoint");
    two_gib_round_trip(
        "S3 (moto)",
        &[
            ("STOWAGE__BUCKETS__MANAGED__URL", &settings.url),
            ("STOWAGE__BUCKETS__MANAGED__ENDPOINT", &endpoint),
            ("STOWAGE__BUCKETS__MANAGED__ALLOW_HTTP", "true"),
            ("STOWAGE__BUCKETS__MANAGED__OPTIONS__ACCESS_KEY_ID", "test"),
            ("STOWAGE__BUCKETS__MANAGED__OPTIONS__SECRET_ACCESS_KEY", "test"),
            // moto joins the 256 parts of a 2 GiB upload in Python: its answer to the
            // completion can take longer than object_store's default 30 s per request.
            ("STOWAGE__BUCKETS__MANAGED__OPTIONS__TIMEOUT", "300s"),
        ],
    )
    .await;
}

/// Uploads 2 GiB into a server whose managed bucket `envs` configure (`bucket` names it in the
/// figures printed), downloads it back whole and as a tar, and checks the server's peak RSS.
async fn two_gib_round_trip(bucket: &str, envs: &[(&str, &str)]) {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 2048;
    let server = ServerProcess::spawn(envs);
    let http = reqwest::Client::new();
    let folder = mkdir(&http, &server, "/big").await;
    // Warm up: the first upload allocates what every upload shares (pools, buffers).
    let (status, _) = upload(
        &http,
        &server,
        &folder,
        "warm.bin",
        vec![1u8; 4 * CHUNK].into(),
        4 * CHUNK as u64,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = server.peak_rss_kib();

    // 2 GiB generated on the fly: one 1 MiB block, varied per chunk by its first 8 bytes.
    let block: Vec<u8> = (0..CHUNK).map(|i| (i.wrapping_mul(31) % 251) as u8).collect();
    let chunk = move |n: usize| {
        let mut c = block.clone();
        c[..8].copy_from_slice(&(n as u64).to_le_bytes());
        Bytes::from(c)
    };
    let mut expected = blake3::Hasher::new();
    for n in 0..CHUNKS {
        expected.update(&chunk(n));
    }
    let expected = expected.finalize().to_hex().to_string();
    let body = futures::stream::iter((0..CHUNKS).map(move |n| Ok::<_, std::io::Error>(chunk(n))));
    let total = (CHUNK * CHUNKS) as u64;
    let started = Instant::now();
    let (status, item) = upload(
        &http,
        &server,
        &folder,
        "big.bin",
        reqwest::Body::wrap_stream(body),
        total,
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{item:?}");
    let after = server.peak_rss_kib();
    assert_eq!(item["size"], total);
    assert_eq!(item["checksum"], expected);
    let grown_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "2 GiB upload into a {bucket}: {:.1} s, {:.0} MB/s; peak RSS {} MiB before, {} MiB after (+{grown_mib:.1} MiB)",
        elapsed.as_secs_f64(),
        total as f64 / 1e6 / elapsed.as_secs_f64(),
        before / 1024,
        after / 1024
    );
    assert!(
        grown_mib < 64.0,
        "peak RSS grew by {grown_mib:.1} MiB during a 2 GiB upload"
    );

    // Reading it back, whole and as a tar, streams too.
    let id = item["id"].as_str().expect("id").to_owned();
    let whole = http
        .get(format!("{}/v1/items/{id}/content", server.base))
        .bearer_auth(&server.admin_key);
    let rate = timed_download(whole, &expected, total).await;
    println!("2 GiB download from a {bucket}: {rate:.0} MB/s");
    let resp = http
        .post(format!("{}/v1/items/download", server.base))
        .bearer_auth(&server.admin_key)
        .json(&serde_json::json!({"item_ids": [id]}))
        .send()
        .await
        .expect("tar");
    let mut tar_bytes = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        tar_bytes += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(
        tar_bytes,
        512 + total + 1024,
        "one header, the content, the end-of-archive blocks"
    );
    let after_reads = server.peak_rss_kib();
    let grown_mib = (after_reads.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "after downloading it from a {bucket} whole and as a tar: peak RSS {} MiB",
        after_reads / 1024
    );
    assert!(grown_mib < 64.0, "peak RSS grew by {grown_mib:.1} MiB after downloads");

    // Through a signed URL: the store's own for a cloud bucket (no daemon in the way), the
    // daemon's /o/ for a local one.
    let signed: Value = http
        .get(format!("{}/v1/items/{id}/url", server.base))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("url")
        .json()
        .await
        .expect("json");
    let rate = timed_download(http.get(signed["url"].as_str().expect("url")), &expected, total).await;
    println!("2 GiB download from a {bucket} through a signed URL: {rate:.0} MB/s");

    // Free the disk space at once.
    let deleted = http
        .delete(format!("{}/v1/items/{id}?permanent=true", server.base))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffprobe_media_is_stored_without_metadata_and_one_warning_is_logged() {
    let empty_path = tempfile::tempdir().expect("tmp");
    let server = ServerProcess::spawn(&[("PATH", empty_path.path().to_str().expect("utf8"))]);
    let http = reqwest::Client::new();
    let folder = mkdir(&http, &server, "/sounds").await;
    let wav = media::wav(8000, 1, 250);
    for name in ["one.wav", "two.wav"] {
        let (status, item) = upload(&http, &server, &folder, name, wav.clone().into(), wav.len() as u64).await;
        assert_eq!(status, StatusCode::CREATED, "{item:?}");
        assert_eq!(item["item_type"], "AUDIO");
        assert_eq!(item["media"]["sample_rate"], Value::Null);
        assert_eq!(item["media"]["duration_seconds"], Value::Null);
    }
    let log = server.stop();
    assert_eq!(
        log.matches("ffprobe is not on PATH").count(),
        1,
        "one warning for the whole process: {log}"
    );
}

/// The temp files of writes in progress in the managed bucket of `server`.
fn temp_files(server: &ServerProcess) -> Vec<std::path::PathBuf> {
    common::files_under(&server.data_dir.join("objects").join(".stowage-tmp"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_removes_what_an_upload_killed_midway_left() {
    let server = ServerProcess::spawn(&[]);
    let http = reqwest::Client::new();
    let folder = mkdir(&http, &server, "/killed").await;
    // 8 MiB, then nothing more: the upload stays in progress until the process dies.
    let body = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![5u8; 1 << 20]))))
        .chain(futures::stream::pending());
    let uploading = tokio::spawn({
        let (http, base, key) = (http.clone(), server.base.clone(), server.admin_key.clone());
        async move {
            let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), 123 << 20)
                .file_name("big.bin");
            http.post(format!("{base}/v1/folders/{folder}/items"))
                .bearer_auth(key)
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
        }
    });
    let started = Instant::now();
    while temp_files(&server).is_empty() {
        assert!(started.elapsed().as_secs() < 30, "the upload never reached the bucket");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let server = server.kill_and_restart(&[]);
    assert!(
        uploading.await.expect("task").is_err(),
        "the killed server never answered"
    );
    assert_eq!(
        temp_files(&server),
        Vec::<std::path::PathBuf>::new(),
        "removed at start-up"
    );
}
