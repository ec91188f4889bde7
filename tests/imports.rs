//! Imports of objects already in buckets, through HTTP: every unit kind from a local bucket and
//! from S3 (moto), trusted metadata, unit errors with and without `ignore_errors`, duplicates,
//! URLs outside the configured buckets, malformed specs, plain references, spec files in a
//! bucket, and the per-unit record.

mod common;

use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, media, poll_job};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    every_unit_kind_imports_from_a_local_bucket,
    unit_errors_fail_the_job_unless_ignored_and_keep_what_was_done,
    duplicates_are_skipped_or_upserted,
    malformed_specs_are_refused_with_the_json_path_and_store_nothing,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unit_kind_imports_from_s3() {
    let Some(fixture) = Fixture::s3().await else { return };
    every_unit_kind(Backend::Sqlite, fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_errors_on_s3_name_their_urls() {
    let Some(fixture) = Fixture::s3().await else { return };
    unit_errors(Backend::Sqlite, fixture).await;
}

async fn every_unit_kind_imports_from_a_local_bucket(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    every_unit_kind(backend, Fixture::local(dir.path().join("bucket"))).await;
}

async fn unit_errors_fail_the_job_unless_ignored_and_keep_what_was_done(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    unit_errors(backend, Fixture::local(dir.path().join("bucket"))).await;
}

/// Submits `spec` into `folder` (query `query`), insisting on 202, and waits for the job's end.
async fn import(s: &TestServer, folder: &str, spec: Value, query: &str) -> Value {
    let submitted = s.post(&format!("/v1/folders/{folder}/imports{query}"), spec).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    wait(s, submitted.body["id"].as_str().expect("id")).await
}

async fn wait(s: &TestServer, id: &str) -> Value {
    poll_job(&s.base, &s.admin_key, id, Duration::from_secs(90), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

/// Every item of `folder`, by title.
async fn items(s: &TestServer, folder: &str) -> std::collections::BTreeMap<String, Value> {
    let page = s.get(&format!("/v1/folders/{folder}/items?page_size=1000")).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["title"].as_str().expect("title").to_owned(), i.clone()))
        .collect()
}

async fn every_unit_kind(backend: Backend, fixture: Fixture) {
    let clips = tempfile::tempdir().expect("tmp");
    let video = media::have_ffmpeg().then(|| media::mp4(clips.path()));
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("media/photo one.png", media::png(64, 48)),
        ("media/voice.wav", media::wav(16_000, 1, 500)),
        ("media/notes.txt", b"plain words\n".to_vec()),
        ("media/empty.txt", Vec::new()),
        ("media/paper.pdf", media::pdf(3)),
        ("media/brain.nii", media::nifti(&[3, 4, 5, 6])),
        ("frames/f0.png", media::png(10, 20)),
        ("frames/f1.jpg", media::jpeg(10, 20)),
        ("frames/f2.png", media::png(10, 20)),
        ("scan/s0.dcm", media::dicom()),
        ("scan/s1.dcm", media::dicom()),
        // Not a video at all: only trusted metadata can make it one.
        ("media/trusted.mp4", b"these bytes are never read".to_vec()),
    ];
    for (key, bytes) in &objects {
        fixture.put(key, bytes).await;
    }
    if let Some(video) = &video {
        fixture.put("media/clip.mp4", video).await;
    }
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let folder = s.folder("/imported").await;
    let url = |key: &str| fixture.object_url(key);
    let mut videos = vec![json!({
        "objectUrl": url("media/trusted.mp4"), "title": "trusted.mp4",
        "videoMetadata": {"duration": 2.5, "fps": 25, "width": 320, "height": 240, "fileSize": 1000, "mimeType": "video/mp4"}
    })];
    if video.is_some() {
        videos.push(json!({"objectUrl": url("media/clip.mp4"), "clientMetadata": {"k": "v"}}));
    }
    let spec = json!({
        "videos": videos,
        "images": [{"objectUrl": url("media/photo%20one.png"), "clientMetadata": {"camera": 7}}],
        "audio": [{"objectUrl": url("media/voice.wav")}],
        "text": [{"objectUrl": url("media/notes.txt"), "title": "notes"}, {"objectUrl": url("media/empty.txt")}],
        "pdf": [{"objectUrl": url("media/paper.pdf")}],
        "nifti": [{"objectUrl": url("media/brain.nii")}],
        "image_groups": [
            {"title": "group", "objectUrl_2": url("frames/f2.png"), "objectUrl_0": url("frames/f0.png"), "objectUrl_1": url("frames/f1.jpg")},
            {"title": "sequence", "createVideo": true, "objectUrl_0": url("frames/f2.png"), "objectUrl_1": url("frames/f0.png")}
        ],
        "dicom_series": [{"title": "series", "objectUrl_0": url("scan/s1.dcm"), "objectUrl_1": url("scan/s0.dcm")}]
    });
    let job = import(&s, &folder, spec, "").await;
    assert_eq!(job["status"], "DONE", "{job}");
    let expected = 10 + usize::from(video.is_some());
    assert_eq!(job["result"]["created"], expected, "{job}");
    assert_eq!(job["progress"]["units_done"], expected);
    assert_eq!(job["progress"]["units_error"], 0);
    assert_eq!(job["result"]["items"].as_array().map(Vec::len), Some(expected));

    let items = items(&s, &folder).await;
    let kind = |title: &str| items[title]["item_type"].as_str().unwrap_or_default().to_owned();
    assert_eq!(kind("photo one.png"), "IMAGE");
    assert_eq!(items["photo one.png"]["media"]["width"], 64);
    assert_eq!(items["photo one.png"]["media"]["height"], 48);
    assert_eq!(items["photo one.png"]["client_metadata"], json!({"camera": 7}));
    assert_eq!(items["photo one.png"]["bucket"], "src");
    assert_eq!(kind("voice.wav"), "AUDIO");
    assert_eq!(items["voice.wav"]["media"]["sample_rate"], 16_000);
    assert_eq!(kind("notes"), "PLAIN_TEXT");
    assert_eq!(kind("empty.txt"), "PLAIN_TEXT");
    assert_eq!(items["empty.txt"]["size"], 0);
    assert_eq!(kind("paper.pdf"), "PDF");
    assert_eq!(kind("brain.nii"), "NIFTI");
    assert_eq!(items["brain.nii"]["media"]["dimensions"], json!([3, 4, 5, 6]));
    // Trusted metadata is taken as given; the bytes were never read (they are no video).
    assert_eq!(kind("trusted.mp4"), "VIDEO");
    assert_eq!(items["trusted.mp4"]["media"]["width"], 320);
    assert_eq!(items["trusted.mp4"]["media"]["fps"], 25.0);
    assert_eq!(items["trusted.mp4"]["media"]["duration_seconds"], 2.5);
    assert_eq!(items["trusted.mp4"]["mime_type"], "video/mp4");
    if video.is_some() {
        assert_eq!(kind("clip.mp4"), "VIDEO");
        assert_eq!(items["clip.mp4"]["media"]["width"], 320);
        assert_eq!(items["clip.mp4"]["media"]["fps"], 25.0);
        assert_eq!(items["clip.mp4"]["client_metadata"], json!({"k": "v"}));
    }
    let frame_keys = |title: &str| -> Vec<String> {
        items[title]["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|f| {
                f["object_key"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(kind("group"), "IMAGE_GROUP");
    assert_eq!(frame_keys("group"), ["f0.png", "f1.jpg", "f2.png"]);
    assert_eq!(items["group"]["frames"][1]["mime_type"], "image/jpeg");
    assert_eq!(items["group"]["frames"][0]["width"], 10);
    assert_eq!(kind("sequence"), "IMAGE_SEQUENCE");
    assert_eq!(frame_keys("sequence"), ["f2.png", "f0.png"]);
    assert_eq!(kind("series"), "DICOM_SERIES");
    assert_eq!(frame_keys("series"), ["s1.dcm", "s0.dcm"]);

    // The content is served from the user's bucket, where it stayed.
    let photo = items["photo one.png"]["id"].as_str().expect("id");
    assert_eq!(s.bytes(&format!("/v1/items/{photo}/content")).await, objects[0].1);

    // One object registered at once, without a job.
    let added = s
        .post(
            &format!("/v1/folders/{folder}/references"),
            json!({"url": url("frames/f1.jpg"), "client_metadata": {"by": "hand"}}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    assert_eq!(added.body["item_type"], "IMAGE");
    assert_eq!(added.body["title"], "f1.jpg");
    let again = s
        .post(
            &format!("/v1/folders/{folder}/references"),
            json!({"url": url("frames/f1.jpg")}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    let missing = s
        .post(
            &format!("/v1/folders/{folder}/references"),
            json!({"url": url("nope.png")}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.message().contains("does not exist"), "{}", missing.message());

    // A spec can live in the bucket too.
    fixture
        .put(
            "specs/one.json",
            json!({"images": [{"objectUrl": url("frames/f2.png"), "title": "from-file.png"}]})
                .to_string()
                .as_bytes(),
        )
        .await;
    let from_file = import(&s, &folder, json!({"spec_object_url": url("specs/one.json")}), "").await;
    assert_eq!(from_file["status"], "DONE", "{from_file}");
    assert_eq!(from_file["params"]["spec_object_url"], url("specs/one.json"));
    assert_eq!(from_file["result"]["items"][0]["title"], "from-file.png");
}

async fn unit_errors(backend: Backend, fixture: Fixture) {
    fixture.put("ok.png", &media::png(8, 8)).await;
    fixture.put("text.txt", b"I am text").await;
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let folder = s.folder("/errors").await;
    let missing = fixture.object_url("missing.png");
    let outside = "s3://some-other-bucket/secret.png";
    let spec = json!({"images": [
        {"objectUrl": fixture.object_url("ok.png")},
        {"objectUrl": missing},
        {"objectUrl": outside},
        {"objectUrl": fixture.object_url("text.txt")}
    ]});

    let failed = import(&s, &folder, spec.clone(), "").await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
    assert!(
        failed["message"].as_str().unwrap_or_default().contains("ignore_errors"),
        "the message says how to go on: {failed}"
    );
    assert_eq!(failed["result"]["created"], 1, "the unit done is kept: {failed}");
    assert_eq!(failed["progress"]["units_error"], 3);
    assert_eq!(items(&s, &folder).await.len(), 1);

    let other = s.folder("/errors-ignored").await;
    let ignored = import(&s, &other, spec, "?ignore_errors=true").await;
    assert_eq!(ignored["status"], "DONE", "{ignored}");
    assert_eq!(ignored["progress"]["units_done"], 1);
    assert_eq!(ignored["progress"]["units_error"], 3);
    let errors = ignored["result"]["unit_errors"].as_array().expect("unit_errors");
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["object_urls"], json!([missing]));
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{}",
        errors[0]
    );
    assert!(!errors[0]["action_description"].as_str().unwrap_or_default().is_empty());
    assert_eq!(errors[1]["object_urls"], json!([outside]));
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not inside any configured bucket"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2]["error"].as_str().unwrap_or_default().contains("PLAIN_TEXT"),
        "{}",
        errors[2]
    );
    assert!(
        errors[2]["action_description"]
            .as_str()
            .unwrap_or_default()
            .contains("`text`")
    );

    // The full record, unit by unit.
    let id = ignored["id"].as_str().expect("id");
    let units = s.get(&format!("/v1/jobs/{id}/units?state=failed&page_size=2")).await;
    assert_eq!(units.status, StatusCode::OK, "{:?}", units.body);
    assert_eq!(units.body["items"][0]["path"], "images[1]");
    assert_eq!(units.body["items"][1]["path"], "images[2]");
    let token = units.body["next_page_token"].as_str().expect("more");
    let rest = s
        .get(&format!("/v1/jobs/{id}/units?state=failed&page_token={token}"))
        .await;
    assert_eq!(rest.body["items"][0]["path"], "images[3]");
    assert!(rest.body["next_page_token"].is_null());
}

async fn duplicates_are_skipped_or_upserted(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    for i in 0..3 {
        fixture.put(&format!("img/{i}.png"), &media::png(4, 4)).await;
    }
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let folder = s.folder("/dups").await;
    let spec = |meta: Value, flags: Value| {
        let mut spec = json!({"images": (0..3).map(|i| json!({
            "objectUrl": fixture.object_url(&format!("img/{i}.png")), "clientMetadata": meta
        })).collect::<Vec<_>>()});
        if let (Some(spec), Some(flags)) = (spec.as_object_mut(), flags.as_object()) {
            spec.extend(flags.clone());
        }
        spec
    };
    let first = import(
        &s,
        &folder,
        spec(json!({"v": 1}), json!({"skip_duplicate_urls": true})),
        "",
    )
    .await;
    assert_eq!(first["result"]["created"], 3, "{first}");
    let again = import(
        &s,
        &folder,
        spec(json!({"v": 2}), json!({"skip_duplicate_urls": true})),
        "",
    )
    .await;
    assert_eq!(again["status"], "DONE");
    assert_eq!(
        [&again["result"]["created"], &again["result"]["skipped"]],
        [0, 3],
        "{again}"
    );
    assert_eq!(items(&s, &folder).await.len(), 3);
    assert_eq!(items(&s, &folder).await["0.png"]["client_metadata"], json!({"v": 1}));

    let upsert = import(&s, &folder, spec(json!({"v": 3}), json!({"upsert_metadata": true})), "").await;
    assert_eq!(
        [&upsert["result"]["created"], &upsert["result"]["updated"]],
        [0, 3],
        "{upsert}"
    );
    let now = items(&s, &folder).await;
    assert_eq!(now.len(), 3);
    assert!(now.values().all(|i| i["client_metadata"] == json!({"v": 3})));

    // Without either flag the same objects are imported again, under free titles.
    let plain = import(&s, &folder, spec(json!({}), json!({})), "").await;
    assert_eq!(plain["result"]["created"], 3, "{plain}");
    let titles: Vec<String> = items(&s, &folder).await.into_keys().collect();
    assert!(titles.contains(&"0 (1).png".to_owned()), "{titles:?}");
}

async fn malformed_specs_are_refused_with_the_json_path_and_store_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("a.png", &media::png(4, 4)).await;
    let bucket = fixture.settings();
    let Some(s) = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
        settings.import.max_spec_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let folder = s.folder("/strict").await;
    let good = json!({"objectUrl": fixture.object_url("a.png")});
    let cases = [
        (json!({"videos": [good, good, good, {"title": "no url"}]}), "videos[3]"),
        (json!({"images": [good, {"objectUrl": 7}]}), "images[1].objectUrl"),
        (
            json!({"images": [{"objectUrl": "s3://b/x/../../etc/passwd"}]}),
            "images[0].objectUrl",
        ),
        (
            json!({"images": [{"objectUrl": "ftp://host/a.png"}]}),
            "images[0].objectUrl",
        ),
        (
            json!({"images": [{"objectUrl": "s3://b/a.png", "title": "t".repeat(301)}]}),
            "images[0].title",
        ),
        (
            json!({"image_groups": [{"title": "g", "objectUrl_1": "s3://b/a.png"}]}),
            "image_groups[0].objectUrl_0",
        ),
        (json!({"imagez": [good]}), "imagez"),
        (json!({}), "the spec"),
    ];
    for (spec, path) in cases {
        let answer = s.post(&format!("/v1/folders/{folder}/imports"), spec.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{spec}: {:?}", answer.body);
        assert!(answer.message().starts_with(path), "{spec}: {}", answer.message());
    }
    let url_limit = json!({"images": [{"objectUrl": format!("s3://b/{}", "k".repeat(16 * 1024))}]});
    let big = s.post(&format!("/v1/folders/{folder}/imports"), url_limit).await;
    assert_eq!(
        big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over import.max_spec_bytes: {:?}",
        big.body
    );
    let not_json = s
        .request(
            reqwest::Method::POST,
            &format!("/v1/folders/{folder}/imports"),
            Some(&s.admin_key),
        )
        .header("content-type", "application/json")
        .body("{\"images\": [")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let untyped = s
        .request(
            reqwest::Method::POST,
            &format!("/v1/folders/{folder}/imports"),
            Some(&s.admin_key),
        )
        .body(r#"{"images": []}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let jobs = s.get("/v1/jobs?kind=IMPORT").await;
    assert_eq!(jobs.body["items"], json!([]), "nothing was queued");
    assert!(items(&s, &folder).await.is_empty());
    let mut conn = s.services().store.read().await.expect("conn");
    let (units,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM import_unit")
        .fetch_one(stowage::store::Db::conn(&mut conn))
        .await
        .expect("count");
    assert_eq!(units, 0, "no unit was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_a_local_bucket_and_the_managed_bucket_are_never_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    std::fs::write(dir.path().join("secret.png"), media::png(4, 4)).expect("secret");
    std::os::unix::fs::symlink(dir.path().join("secret.png"), dir.path().join("bucket/link.png")).expect("link");
    std::os::unix::fs::symlink(dir.path(), dir.path().join("bucket/up")).expect("dir link");
    let Some(s) = TestServer::with_bucket(Backend::Sqlite, &fixture).await else {
        return;
    };
    let folder = s.folder("/links").await;
    let uploaded = s.upload_ok(&folder, "mine.png", media::png(4, 4)).await;
    let managed_key = uploaded["object_key"].as_str().expect("key");
    let managed_url = format!("file://{}/{managed_key}", s.objects_dir().display());
    let spec = json!({"images": [
        {"objectUrl": fixture.object_url("link.png")},
        {"objectUrl": fixture.object_url("up/secret.png")},
        {"objectUrl": managed_url}
    ]});
    let job = import(&s, &folder, spec, "?ignore_errors=true").await;
    assert_eq!(job["progress"]["units_error"], 3, "{job}");
    let errors = &job["result"]["unit_errors"];
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("outside the bucket"),
        "{errors}"
    );
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("outside the bucket"),
        "{errors}"
    );
    assert!(
        errors[2]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("managed bucket"),
        "{errors}"
    );
    assert_eq!(items(&s, &folder).await.len(), 1, "only the upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_import_keeps_what_it_finished_and_stops() {
    const UNITS: usize = 20_000;
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    let text = b"a line of text\n";
    let mut units = Vec::with_capacity(UNITS);
    for i in 0..UNITS {
        let key = format!("t{:02}/{i:05}.txt", i % 20);
        if i < 20 {
            std::fs::create_dir_all(dir.path().join("bucket").join(format!("t{i:02}"))).expect("mkdir");
        }
        std::fs::write(dir.path().join("bucket").join(&key), text).expect("write");
        units.push(json!({"objectUrl": fixture.object_url(&key)}));
    }
    let Some(s) = TestServer::with_bucket(Backend::Sqlite, &fixture).await else {
        return;
    };
    let folder = s.folder("/cancelled").await;
    let submitted = s
        .post(&format!("/v1/folders/{folder}/imports"), json!({"text": units}))
        .await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let id = submitted.body["id"].as_str().expect("id").to_owned();
    poll_job(&s.base, &s.admin_key, &id, Duration::from_secs(60), |j| {
        j["progress"]["units_done"].as_i64() > Some(0)
    })
    .await;
    let cancel = s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert!(cancel.status.is_success(), "{:?}", cancel.body);
    let ended = wait(&s, &id).await;
    assert_eq!(ended["status"], "CANCELLED", "{ended}");
    let done = ended["progress"]["units_done"].as_i64().expect("done");
    assert!(done > 0 && done < UNITS as i64, "{}", ended["progress"]);
    assert_eq!(ended["progress"]["units_cancelled"].as_i64(), Some(UNITS as i64 - done));
    assert_eq!(
        ended["result"]["created"].as_i64(),
        Some(done),
        "the result counts what was kept"
    );
    let summary = s.get(&format!("/v1/folders/{folder}/summary")).await;
    assert_eq!(summary.body["item_count"].as_i64(), Some(done), "{:?}", summary.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = s.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(later.body["version"], ended["version"], "nothing runs after the cancel");
}
