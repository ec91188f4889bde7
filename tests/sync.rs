//! Bucket sync through HTTP: a local directory, S3 (moto), Azure (Azurite) and GCS
//! (fake-gcs-server), on SQLite and PostgreSQL, with exact counts.

mod common;

use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, poll_job};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    local_directory_mirrors_creates_updates_tombstones_and_restores,
    s3_bucket_mirrors_creates_updates_tombstones_and_restores,
    dry_runs_change_nothing_and_the_ratio_guard_stops_mass_tombstones,
    a_listing_that_fails_tombstones_nothing,
    synced_folders_belong_to_their_bucket,
    changes_in_a_watched_directory_reach_the_catalog_within_3_seconds,
    buckets_are_listed_without_secrets_and_checked_by_admins,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_container_mirrors_creates_updates_tombstones_and_restores() {
    let Some(fixture) = Fixture::azure("stowage-sync") else {
        return;
    };
    mirror_scenario(Backend::Sqlite, fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_bucket_mirrors_creates_updates_tombstones_and_restores() {
    let Some(fixture) = Fixture::gcs().await else { return };
    mirror_scenario(Backend::Sqlite, fixture).await;
}

async fn local_directory_mirrors_creates_updates_tombstones_and_restores(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    mirror_scenario(backend, Fixture::local(dir.path().join("bucket"))).await;
}

async fn s3_bucket_mirrors_creates_updates_tombstones_and_restores(backend: Backend) {
    let Some(fixture) = Fixture::s3().await else { return };
    mirror_scenario(backend, fixture).await;
}

/// Starts a server with `fixture` configured as bucket `src`.
async fn server_with(backend: Backend, fixture: &Fixture) -> Option<TestServer> {
    let bucket = fixture.settings();
    TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    })
    .await
}

/// Creates synced folder `path` over the whole bucket `src`.
async fn synced_folder(s: &TestServer, path: &str) -> String {
    let created = s
        .post(
            "/v1/folders",
            json!({"path": path, "sync": {"bucket": "src", "prefix": ""}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["id"].as_str().expect("id").to_owned()
}

/// Runs a sync of `folder` with `options` and returns the finished job.
async fn sync(s: &TestServer, folder: &str, options: Value) -> Value {
    let submitted = s.post(&format!("/v1/folders/{folder}/sync"), options).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let id = submitted.body["id"].as_str().expect("id").to_owned();
    poll_job(&s.base, &s.admin_key, &id, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

fn counts(job: &Value) -> [u64; 6] {
    let r = &job["result"];
    ["created", "updated", "unchanged", "tombstoned", "restored", "listed"].map(|k| r[k].as_u64().unwrap_or(u64::MAX))
}

async fn items(s: &TestServer, folder: &str) -> Vec<(String, String, bool)> {
    let page = s
        .get(&format!("/v1/folders/{folder}/items?recursive=true&page_size=1000"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let mut out: Vec<(String, String, bool)> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["object_key"].as_str().unwrap_or("").to_owned(),
                i["checksum"].as_str().unwrap_or("").to_owned(),
                i["is_tombstone"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

async fn mirror_scenario(backend: Backend, fixture: Fixture) {
    for (key, content) in [
        ("photos/a.txt", "alpha"),
        ("photos/deep/b.txt", "bravo"),
        ("c.txt", "charlie"),
        ("gone.txt", "doomed"),
    ] {
        fixture.put(key, content.as_bytes()).await;
    }
    let Some(s) = server_with(backend, &fixture).await else {
        return;
    };
    let folder = synced_folder(&s, "/mirror").await;

    let first = sync(&s, &folder, json!({})).await;
    assert_eq!(first["status"], "DONE", "{first}");
    assert_eq!(counts(&first), [4, 0, 0, 0, 0, 4], "{first}");
    assert!(first["result"]["bytes_hashed"].as_u64() > Some(0));
    let catalog = items(&s, &folder).await;
    assert_eq!(catalog.len(), 4);
    assert!(catalog.iter().all(|(_, sum, tomb)| sum.len() == 64 && !tomb));
    assert_eq!(
        catalog[0].1,
        blake3::hash(b"charlie").to_hex().to_string(),
        "checksums are blake3 of the content"
    );
    // Keys with `/` became subfolders.
    let deep = s.get("/v1/folders?path=/mirror/photos/deep").await;
    assert_eq!(deep.status, StatusCode::OK);
    assert_eq!(deep.body["item_count"], 1);

    // No change: nothing is read.
    let again = sync(&s, &folder, json!({})).await;
    assert_eq!(counts(&again), [0, 0, 4, 0, 0, 4], "{again}");
    assert_eq!(again["result"]["bytes_hashed"], 0);

    // Add one, change one keeping its size, delete one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    fixture.put("photos/a.txt", b"ALPHA").await;
    fixture.delete("gone.txt").await;
    fixture.put("new.txt", b"november").await;
    let changed = sync(&s, &folder, json!({})).await;
    assert_eq!(counts(&changed), [1, 1, 2, 1, 0, 4], "{changed}");
    let catalog = items(&s, &folder).await;
    assert_eq!(catalog.len(), 5, "the deleted object's item stays, as a tombstone");
    assert!(catalog.iter().any(|(key, _, tomb)| key.ends_with("gone.txt") && *tomb));
    let alpha = catalog
        .iter()
        .find(|(key, _, _)| key.ends_with("photos/a.txt"))
        .expect("a.txt");
    assert_eq!(alpha.1, blake3::hash(b"ALPHA").to_hex().to_string());

    // The deleted object comes back: restored, not created again.
    fixture.put("gone.txt", b"doomed").await;
    let back = sync(&s, &folder, json!({})).await;
    assert_eq!(counts(&back), [0, 0, 4, 0, 1, 5], "{back}");
    assert!(items(&s, &folder).await.iter().all(|(_, _, tomb)| !tomb));

    // force_rehash reads everything and finds nothing new.
    let forced = sync(&s, &folder, json!({"force_rehash": true})).await;
    assert_eq!(counts(&forced), [0, 0, 5, 0, 0, 5], "{forced}");
    assert!(forced["result"]["bytes_hashed"].as_u64() > Some(0));
}

async fn dry_runs_change_nothing_and_the_ratio_guard_stops_mass_tombstones(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    for i in 0..120 {
        fixture
            .put(&format!("f{i:03}.txt"), format!("file {i}").as_bytes())
            .await;
    }
    let Some(s) = server_with(backend, &fixture).await else {
        return;
    };
    let folder = synced_folder(&s, "/guarded").await;

    let dry = sync(&s, &folder, json!({"dry_run": true})).await;
    assert_eq!(counts(&dry), [120, 0, 0, 0, 0, 120], "{dry}");
    assert_eq!(dry["result"]["dry_run"], true);
    assert!(items(&s, &folder).await.is_empty(), "a dry run changes nothing");
    assert_eq!(sync(&s, &folder, json!({})).await["result"]["created"], 120);

    for i in 0..70 {
        fixture.delete(&format!("f{i:03}.txt")).await;
    }
    let refused = sync(&s, &folder, json!({})).await;
    assert_eq!(refused["status"], "ERROR", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("70 of 120") && message.contains("max_tombstone_ratio"),
        "{message}"
    );
    assert!(
        items(&s, &folder).await.iter().all(|(_, _, tomb)| !tomb),
        "nothing was tombstoned"
    );

    let accepted = sync(&s, &folder, json!({"max_tombstone_ratio": 1.0})).await;
    assert_eq!(accepted["status"], "DONE", "{accepted}");
    assert_eq!(accepted["result"]["tombstoned"], 70);
    let bad = s
        .post(&format!("/v1/folders/{folder}/sync"), json!({"max_tombstone_ratio": 2}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn a_listing_that_fails_tombstones_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let fixture = Fixture::local(root.clone());
    fixture.put("keep/a.txt", b"a").await;
    fixture.put("b.txt", b"b").await;
    std::fs::write(dir.path().join("secret.txt"), "outside").expect("write");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).expect("symlink");
    let Some(s) = server_with(backend, &fixture).await else {
        return;
    };
    let folder = synced_folder(&s, "/fragile").await;
    let first = sync(&s, &folder, json!({})).await;
    assert_eq!(counts(&first), [2, 0, 0, 0, 0, 2], "{first}");
    assert_eq!(
        first["result"]["skipped"], 1,
        "the symlink out of the bucket is skipped, not followed"
    );
    assert!(items(&s, &folder).await.iter().all(|(key, _, _)| key != "escape.txt"));

    // The bucket's directory disappears (an unmounted disk): the listing fails, nothing is tombstoned.
    std::fs::rename(&root, dir.path().join("elsewhere")).expect("rename");
    let failed = sync(&s, &folder, json!({})).await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing was tombstoned"),
        "{failed}"
    );
    assert!(items(&s, &folder).await.iter().all(|(_, _, tomb)| !tomb));
}

async fn synced_folders_belong_to_their_bucket(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("sub/a.txt", b"a").await;
    let Some(s) = server_with(backend, &fixture).await else {
        return;
    };

    for (binding, field) in [
        (json!({"bucket": "nope"}), "sync.bucket"),
        (json!({"bucket": "managed"}), "sync.bucket"),
        (json!({"bucket": "src", "prefix": "../x"}), "sync.prefix"),
    ] {
        let refused = s.post("/v1/folders", json!({"path": "/bad", "sync": binding})).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{binding}");
        assert!(refused.message().contains(field), "{}", refused.message());
    }
    let plain = s.mkdir("/plain").await;
    let not_synced = s
        .post(
            &format!("/v1/folders/{}/sync", plain["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(not_synced.status, StatusCode::BAD_REQUEST);

    let folder = synced_folder(&s, "/owned").await;
    sync(&s, &folder, json!({})).await;
    let sub = s.get("/v1/folders?path=/owned/sub").await.body;
    let sub_id = sub["id"].as_str().expect("id");
    let inside = s.post("/v1/folders", json!({"path": "/owned/sub/mine"})).await;
    assert_eq!(inside.status, StatusCode::CONFLICT);
    assert!(
        inside.message().contains("belongs to the bucket"),
        "{}",
        inside.message()
    );
    assert_eq!(
        s.post(&format!("/v1/folders/{sub_id}/move"), json!({"parent_id": null}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.patch(&format!("/v1/folders/{sub_id}"), json!({"name": "renamed"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.post(
            &format!("/v1/folders/{}/move", plain["id"].as_str().expect("id")),
            json!({"parent_id": sub_id})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let upload = s.upload(sub_id, "x.txt", b"x".to_vec(), &[]).await;
    assert_eq!(upload.status, StatusCode::CONFLICT);
    // Annotating a synced folder is fine; renaming the synced root too.
    assert_eq!(
        s.patch(&format!("/v1/folders/{sub_id}"), json!({"description": "mirrored"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.patch(&format!("/v1/folders/{folder}"), json!({"name": "owned2"}))
            .await
            .status,
        StatusCode::OK
    );

    // Sync requests at once: never two syncs of one folder pending or running together.
    let url = format!("/v1/folders/{folder}/sync");
    let answers = futures::future::join_all((0..8).map(|_| s.post(&url, json!({})))).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|a| a.body["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    let mut spans = Vec::new();
    for id in &ids {
        let job = poll_job(&s.base, &s.admin_key, id, Duration::from_secs(30), |j| {
            j["status"] == "DONE"
        })
        .await;
        let at = |field: &str| {
            time::OffsetDateTime::parse(
                job[field].as_str().expect("time"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("RFC 3339")
        };
        spans.push((at("created_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two syncs of one folder overlapped: {spans:?}");
    }
    assert!(ids.len() < 8, "requests while one was active got that one: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("a.txt", b"a").await;
    fixture.put("d/b.txt", b"b").await;
    let Some(s) = server_with(Backend::Sqlite, &fixture).await else {
        return;
    };
    synced_folder(&s, "/cli-synced").await;
    let (base, key) = (s.base.clone(), s.admin_key.clone());
    let run = move |extra: &'static [&'static str]| {
        let (base, key) = (base.clone(), key.clone());
        std::thread::spawn(move || {
            let mut args = vec!["sync", "--server", &base, "--api-key", &key, "/cli-synced", "--wait"];
            args.extend(extra);
            std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
                .args(&args)
                .output()
                .expect("run")
        })
        .join()
        .expect("thread")
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", String::from_utf8_lossy(&dry.stderr));
    let text = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        text.contains("DONE: listed=2 created=2") && text.contains("(dry run)"),
        "{text}"
    );
    let real = run(&[]);
    let text = String::from_utf8_lossy(&real.stdout).into_owned();
    assert!(text.contains("created=2") && !text.contains("dry run"), "{text}");
    let folder = s.get("/v1/folders?path=/cli-synced").await.body;
    assert_eq!(items(&s, folder["id"].as_str().expect("id")).await.len(), 2);
}

async fn changes_in_a_watched_directory_reach_the_catalog_within_3_seconds(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("old.txt", b"old").await;
    let mut bucket = fixture.settings();
    bucket.watch = true;
    let Some(s) = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    })
    .await
    else {
        return;
    };
    let folder = synced_folder(&s, "/watched").await;
    assert_eq!(sync(&s, &folder, json!({})).await["result"]["created"], 1);

    let started = std::time::Instant::now();
    fixture.put("fresh/new.txt", b"new").await;
    fixture.delete("old.txt").await;
    loop {
        let catalog = items(&s, &folder).await;
        let added = catalog.iter().any(|(key, _, tomb)| key == "fresh/new.txt" && !tomb);
        let gone = catalog.iter().any(|(key, _, tomb)| key == "old.txt" && *tomb);
        if added && gone {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "not in the catalog after 3 s: {catalog:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs = s.get("/v1/jobs?kind=SYNC").await.body;
    assert!(
        jobs["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|j| j["created_by"] == "watcher")
    );
}

async fn buckets_are_listed_without_secrets_and_checked_by_admins(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    let missing = stowage::config::BucketSettings::at(format!("file://{}", dir.path().join("unmounted").display()));
    let good = fixture.settings();
    let Some(s) = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), good);
        settings.buckets.insert("gone".into(), missing);
    })
    .await
    else {
        return;
    };
    let alice = s.key_for("alice", false).await;
    let listed = s.send(reqwest::Method::GET, "/v1/buckets", Some(&alice), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<(String, String, bool)> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or("").to_owned(),
                b["kind"].as_str().unwrap_or("").to_owned(),
                b["managed"] == true,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("managed".into(), "file".into(), true),
            ("gone".into(), "file".into(), false),
            ("src".into(), "file".into(), false)
        ]
    );

    let ok = s.post("/v1/buckets/src/check", json!({})).await;
    assert_eq!(
        (ok.status, ok.body["ok"].clone()),
        (StatusCode::OK, json!(true)),
        "{:?}",
        ok.body
    );
    let bad = s.post("/v1/buckets/gone/check", json!({})).await;
    assert_eq!(bad.body["ok"], false);
    assert!(
        bad.body["message"].as_str().unwrap_or_default().contains("unmounted"),
        "{:?}",
        bad.body
    );
    assert_eq!(
        s.post("/v1/buckets/nope/check", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let refused = s
        .send(reqwest::Method::POST, "/v1/buckets/src/check", Some(&alice), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}
