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
    a_watched_bucket_left_idle_makes_no_job,
    schedules_need_a_synced_folder_a_sane_interval_and_pause_when_failing,
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

/// Starts a server with `fixture` configured as bucket `src`, watched for changes.
async fn watched_server(backend: Backend, fixture: &Fixture) -> Option<TestServer> {
    let mut bucket = fixture.settings();
    bucket.watch = true;
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
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
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
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
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
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
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
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
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
    // Schedules fire at most once a minute by default.
    let hasty = s
        .post(
            "/v1/folders",
            json!({"path": "/hasty", "sync": {"bucket": "src"}, "sync_schedule": "*/5 * * * * *"}),
        )
        .await;
    assert_eq!(hasty.status, StatusCode::BAD_REQUEST, "{:?}", hasty.body);
    assert!(
        hasty.message().contains("min_schedule_interval_seconds"),
        "{}",
        hasty.message()
    );
    let plain = s.mkdir("/plain").await;
    let not_synced = s
        .post(
            &format!("/v1/folders/{}/sync", plain["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(not_synced.status, StatusCode::CONFLICT);

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

    // Sync requests at once: never two syncs of one folder pending or running together. The
    // database holds that by construction (a partial unique index over a folder's PENDING and
    // RUNNING syncs), across processes too; what the client sees is that no sync started before
    // the one before it finished. (A job's created_at is taken before its insert, which may wait
    // for the write lock while the previous sync runs and ends: it says nothing about overlap.)
    let url = format!("/v1/folders/{folder}/sync");
    let other = s.second_worker().await;
    let admin = stowage::domain::caller::Caller::user("admin", true);
    let folder_id = uuid::Uuid::parse_str(&folder).expect("uuid");
    let via_http = futures::future::join_all((0..6).map(|_| s.post(&url, json!({}))));
    let via_other = futures::future::join_all(
        (0..6).map(|_| other.services.sync.submit(&admin, folder_id, Default::default(), None)),
    );
    let (answers, others) = tokio::join!(via_http, via_other);
    let mut ids: Vec<String> = answers
        .iter()
        .map(|a| a.body["id"].as_str().expect("id").to_owned())
        .chain(
            others
                .into_iter()
                .map(|r| r.expect("submitted in the other process").job.id.to_string()),
        )
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
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two syncs of one folder overlapped: {spans:?}");
    }
    assert!(ids.len() < 12, "requests while one was active got that one: {ids:?}");
    common::stop_running(other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("a.txt", b"a").await;
    fixture.put("d/b.txt", b"b").await;
    let Some(s) = TestServer::with_bucket(Backend::Sqlite, &fixture).await else {
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
    let fields: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(fields[1..3], ["SYNC", "DONE"], "{text}");
    for wanted in ["listed=2", "created=2", "dry_run=true"] {
        assert!(fields.contains(&wanted), "{wanted} in {text}");
    }
    let real = run(&[]);
    let text = String::from_utf8_lossy(&real.stdout).into_owned();
    assert!(
        text.contains("\tcreated=2\t") && text.contains("\tdry_run=false"),
        "{text}"
    );
    let folder = s.get("/v1/folders?path=/cli-synced").await.body;
    assert_eq!(items(&s, folder["id"].as_str().expect("id")).await.len(), 2);
}

async fn changes_in_a_watched_directory_reach_the_catalog_within_3_seconds(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("old.txt", b"old").await;
    let Some(s) = watched_server(backend, &fixture).await else {
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

async fn schedules_need_a_synced_folder_a_sane_interval_and_pause_when_failing(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let fixture = Fixture::local(root.clone());
    fixture.put("a.txt", b"a").await;
    let bucket = fixture.settings();
    let Some(s) = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
        settings.sync.min_schedule_interval_seconds = 1;
        settings.sync.pause_schedule_after_failures = 2;
        settings.jobs.max_attempts = 1;
    })
    .await
    else {
        return;
    };
    // A schedule needs a synced folder, on create and on PATCH.
    let plain = s
        .post("/v1/folders", json!({"path": "/x", "sync_schedule": "* * * * * *"}))
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST, "{:?}", plain.body);
    assert!(
        plain.message().contains("sync_schedule") && plain.message().contains("synced folder"),
        "{}",
        plain.message()
    );
    let plain = s.mkdir("/plain").await;
    let patched = s
        .patch(
            &format!("/v1/folders/{}", plain["id"].as_str().expect("id")),
            json!({"sync_schedule": "0 * * * *"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::BAD_REQUEST, "{:?}", patched.body);

    // A synced folder whose syncs keep failing: after two failures in a row its schedule pauses.
    let folder = synced_folder(&s, "/failing").await;
    std::fs::rename(&root, dir.path().join("unmounted")).expect("rename");
    let scheduled = s
        .patch(
            &format!("/v1/folders/{folder}"),
            json!({"sync_schedule": "* * * * * *"}),
        )
        .await;
    assert_eq!(scheduled.status, StatusCode::OK, "{:?}", scheduled.body);
    assert_eq!(scheduled.body["schedule_paused"], Value::Null);
    let started = std::time::Instant::now();
    let paused = loop {
        let now = s.get(&format!("/v1/folders/{folder}")).await.body;
        if !now["schedule_paused"].is_null() {
            break now;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never paused: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        paused["schedule_paused"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing was tombstoned"),
        "{paused}"
    );
    assert!(paused["schedule_paused"]["since"].is_string(), "{paused}");
    let runs = |jobs: &Value| jobs["items"].as_array().map_or(0, Vec::len);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = runs(&s.get(&format!("/v1/jobs?kind=SYNC&folder_id={folder}")).await.body);
    assert_eq!(before, 2, "two failed runs, then the pause");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = runs(&s.get(&format!("/v1/jobs?kind=SYNC&folder_id={folder}")).await.body);
    assert_eq!(after, before, "a paused schedule makes no jobs");

    // Mended and set again, it runs again; a success keeps it running.
    std::fs::rename(dir.path().join("unmounted"), &root).expect("rename back");
    let resumed = s
        .patch(
            &format!("/v1/folders/{folder}"),
            json!({"sync_schedule": "* * * * * *"}),
        )
        .await;
    assert_eq!(resumed.body["schedule_paused"], Value::Null, "{:?}", resumed.body);
    let started = std::time::Instant::now();
    loop {
        let jobs = s
            .get(&format!("/v1/jobs?kind=SYNC&folder_id={folder}&status=DONE"))
            .await
            .body;
        if runs(&jobs) > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the resumed schedule never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_watched_bucket_left_idle_makes_no_job(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    for i in 0..20 {
        fixture.put(&format!("d{}/f{i}.txt", i % 3), b"same").await;
    }
    let Some(s) = watched_server(backend, &fixture).await else {
        return;
    };
    let folder = synced_folder(&s, "/idle").await;
    assert_eq!(sync(&s, &folder, json!({})).await["result"]["created"], 20);
    // A full re-read opens and reads every file, as the first sync did.
    sync(&s, &folder, json!({"force_rehash": true})).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let jobs = s.get("/v1/jobs?kind=SYNC").await.body;
    let made_by: Vec<&str> = jobs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["created_by"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(made_by, ["admin", "admin"], "no file changed, so no sync was started");
}

async fn buckets_are_listed_without_secrets_and_checked_by_admins(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("private/a.txt", b"secret").await;
    fixture.put("spec.json", br#"{"images": [{"objectUrl": "x"}]}"#).await;
    let missing = stowage::config::BucketSettings::at(format!("file://{}", dir.path().join("unmounted").display()));
    let mut good = fixture.settings();
    good.allow = vec!["alice".into()];
    let Some(s) = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), good);
        settings.buckets.insert("gone".into(), missing);
    })
    .await
    else {
        return;
    };
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    let listing = |key: &str| {
        let key = key.to_owned();
        let s = &s;
        async move {
            let listed = s.send(reqwest::Method::GET, "/v1/buckets", Some(&key), None).await;
            assert_eq!(listed.status, StatusCode::OK);
            listed
                .body
                .as_array()
                .expect("list")
                .iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap_or("").to_owned(),
                        b["kind"].as_str().unwrap_or("").to_owned(),
                        b["managed"] == true,
                        b["url"].is_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let admin_key = s.admin_key.clone();
    assert_eq!(
        listing(&admin_key).await,
        [
            ("managed".into(), "file".into(), true, true),
            ("gone".into(), "file".into(), false, true),
            ("src".into(), "file".into(), false, true)
        ]
    );
    assert_eq!(
        listing(&alice).await,
        [
            ("managed".into(), "file".into(), true, false),
            ("src".into(), "file".into(), false, false)
        ],
        "a user sees the buckets open to them, and no server paths"
    );
    assert_eq!(listing(&bob).await, [("managed".into(), "file".into(), true, false)]);

    // Bob may use none of the configured buckets: each one answers as if it did not exist.
    let bobs = s
        .send(
            reqwest::Method::POST,
            "/v1/folders",
            Some(&bob),
            Some(json!({"path": "/bob"})),
        )
        .await;
    let bobs = bobs.body["id"].as_str().expect("bob's folder").to_owned();
    for bucket in ["src", "gone", "nope"] {
        let refused = s
            .send(
                reqwest::Method::POST,
                "/v1/folders",
                Some(&bob),
                Some(json!({"path": format!("/mirror-{bucket}"), "sync": {"bucket": bucket}})),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bucket}: {:?}", refused.body);
        assert!(
            refused.message().contains(&format!(
                "no bucket named `{bucket}` is configured for you; you may use: []"
            )),
            "{}",
            refused.message()
        );
    }
    let url = fixture.object_url("private/a.txt");
    let reference = s
        .send(
            reqwest::Method::POST,
            &format!("/v1/folders/{bobs}/references"),
            Some(&bob),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(reference.status, StatusCode::BAD_REQUEST, "{:?}", reference.body);
    assert!(
        reference
            .message()
            .contains("not inside any configured bucket you may use"),
        "{}",
        reference.message()
    );
    assert!(
        !reference.message().contains("src"),
        "names no bucket bob may not use: {}",
        reference.message()
    );
    let import = s
        .send(
            reqwest::Method::POST,
            &format!("/v1/folders/{bobs}/imports"),
            Some(&bob),
            Some(json!({"images": [{"objectUrl": url}]})),
        )
        .await;
    assert_eq!(import.status, StatusCode::BAD_REQUEST, "{:?}", import.body);
    assert!(
        import
            .message()
            .contains("not inside any configured bucket you may use"),
        "{}",
        import.message()
    );
    let spec = s
        .send(
            reqwest::Method::POST,
            &format!("/v1/folders/{bobs}/imports"),
            Some(&bob),
            Some(json!({"spec_object_url": fixture.object_url("spec.json")})),
        )
        .await;
    assert_eq!(spec.status, StatusCode::BAD_REQUEST, "{:?}", spec.body);
    assert!(
        spec.message().contains("not inside any configured bucket you may use"),
        "{}",
        spec.message()
    );
    let items = s
        .send(
            reqwest::Method::GET,
            &format!("/v1/folders/{bobs}/items"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(items.body["items"], json!([]), "nothing was stored");

    // Alice, on the allow list, may mirror it and reference its objects.
    let mirrored = s
        .send(
            reqwest::Method::POST,
            "/v1/folders",
            Some(&alice),
            Some(json!({"path": "/alice-mirror", "sync": {"bucket": "src"}})),
        )
        .await;
    assert_eq!(mirrored.status, StatusCode::CREATED, "{:?}", mirrored.body);
    let alices = s
        .send(
            reqwest::Method::POST,
            "/v1/folders",
            Some(&alice),
            Some(json!({"path": "/alice"})),
        )
        .await;
    let alices = alices.body["id"].as_str().expect("alice's folder").to_owned();
    let referenced = s
        .send(
            reqwest::Method::POST,
            &format!("/v1/folders/{alices}/references"),
            Some(&alice),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(referenced.status, StatusCode::CREATED, "{:?}", referenced.body);
    let gone = s
        .send(
            reqwest::Method::POST,
            "/v1/folders",
            Some(&alice),
            Some(json!({"path": "/alice-gone", "sync": {"bucket": "gone"}})),
        )
        .await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST);
    assert!(gone.message().contains("you may use: [src]"), "{}", gone.message());

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
