//! Import figures: 100,000 image references (1×1 PNGs) imported from a local bucket and, when
//! `STOWAGE_TEST_S3_ENDPOINT` names a moto server, from S3; prints units per second for the
//! submission (spec checked and its units recorded) and for the IMPORT job (each object looked
//! up, its head read and typed, its item recorded). SQLite, the embedded default.
//!
//! `cargo bench --bench imports` (`STOWAGE_BENCH_IMPORT_UNITS` changes the count)

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use stowage::app::{self, Roles};
use stowage::config::{BucketSettings, Settings};
use support::tiny_png;

/// Objects written into moto at once while the bucket is filled.
const PUT_CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() {
    let units: usize = std::env::var("STOWAGE_BENCH_IMPORT_UNITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let png = tiny_png();
    println!("| bucket | units | submit (check + record) | import job | units/s (job) | units/s (end to end) |");
    println!("|---|---|---|---|---|---|");

    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    for i in 0..units {
        let path = root.join(key(i));
        if i < 100 {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        }
        std::fs::write(path, &png).expect("write");
    }
    let local = BucketSettings::at(format!("file://{}", root.display()));
    bench("local directory", local, units, dir.path()).await;

    if let Ok(endpoint) = std::env::var("STOWAGE_TEST_S3_ENDPOINT") {
        let (settings, store) = moto_bucket(&endpoint).await;
        futures::stream::iter(0..units)
            .map(|i| {
                let (store, png) = (Arc::clone(&store), png.clone());
                async move { store.put(&key(i).as_str().into(), PutPayload::from(png)).await }
            })
            .buffer_unordered(PUT_CONCURRENCY)
            .for_each(|put| async move {
                put.expect("put into moto");
            })
            .await;
        bench("S3 (moto)", settings, units, dir.path()).await;
    }
}

/// The key of object `i`: 100 prefixes of 1,000 objects.
fn key(i: usize) -> String {
    format!("p{:02}/img{i:06}.png", i % 100)
}

/// A fresh moto bucket: its settings as stowage names it, and a client to fill it.
async fn moto_bucket(endpoint: &str) -> (BucketSettings, Arc<dyn ObjectStore>) {
    let bucket = format!("bench{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("create bucket");
    assert!(created.status().is_success(), "moto: {}", created.status());
    let mut settings = BucketSettings::at(format!("s3://{bucket}"));
    settings.endpoint = Some(endpoint.to_owned());
    settings.allow_http = true;
    settings.options.insert("access_key_id".into(), "test".into());
    settings.options.insert("secret_access_key".into(), "test".into());
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(&bucket)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .expect("s3 client");
    (settings, Arc::new(store))
}

/// Imports every object of `bucket` into a new folder and prints one row.
async fn bench(label: &str, bucket: BucketSettings, units: usize, scratch: &Path) {
    let data = tempfile::tempdir_in(scratch).expect("data dir");
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        ..Settings::default()
    };
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.log.filter = "warn".into();
    settings.jobs.poll_interval_ms = 100;
    let object_url = |i: usize| format!("{}/{}", bucket.url.trim_end_matches('/'), key(i));
    let spec = json!({"images": (0..units).map(|i| json!({"objectUrl": object_url(i)})).collect::<Vec<_>>()});
    settings.buckets.insert("src".into(), bucket);
    let settings = settings.completed().expect("settings");
    let running = app::start(settings.clone(), Roles::ALL).await.expect("start");
    let base = format!("http://{}", running.addr.expect("http"));
    let key = std::fs::read_to_string(settings.data_dir.join("admin.key"))
        .expect("key")
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let folder: Value = client
        .post(format!("{base}/v1/folders"))
        .bearer_auth(&key)
        .json(&json!({"path": "/bench"}))
        .send()
        .await
        .expect("folder")
        .json()
        .await
        .expect("json");
    let folder = folder["id"].as_str().expect("folder id");

    let started = Instant::now();
    let job: Value = client
        .post(format!("{base}/v1/folders/{folder}/imports"))
        .bearer_auth(&key)
        .json(&spec)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let submitted = started.elapsed();
    let id = job["id"].as_str().unwrap_or_else(|| panic!("no job: {job}"));
    let done = loop {
        let job: Value = client
            .get(format!("{base}/v1/jobs/{id}?wait_seconds=30"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        if job["status"] != "PENDING" && job["status"] != "RUNNING" {
            break job;
        }
    };
    let total = started.elapsed();
    assert_eq!(done["status"], "DONE", "{}", done["message"]);
    assert_eq!(done["result"]["created"], units);
    let job_time = elapsed(&done).unwrap_or(total - submitted);
    println!(
        "| {label} | {units} | {:.1} s | {:.1} s | {:.0} | {:.0} |",
        submitted.as_secs_f64(),
        job_time.as_secs_f64(),
        units as f64 / job_time.as_secs_f64(),
        units as f64 / total.as_secs_f64(),
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// How long the job ran, from its own `started_at` to `finished_at`.
fn elapsed(job: &Value) -> Option<Duration> {
    use time::format_description::well_known::Rfc3339;
    let at = |field: &str| time::OffsetDateTime::parse(job[field].as_str()?, &Rfc3339).ok();
    let run = at("finished_at")? - at("started_at")?;
    Duration::try_from(run).ok()
}
