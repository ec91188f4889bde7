//! Re-encoding videos through HTTP on SQLite and PostgreSQL, with clips made by ffmpeg's lavfi
//! sources: odd videos are transcoded to H.264 + AAC with faststart, an H.264 MP4 is remuxed by
//! stream copy, the source object stays as it was, downloads serve the rendition (the source with
//! `?original=true`), only writable videos are accepted, a corrupt video is a unit error with
//! ffmpeg's message (a retry runs only that video again), ffmpeg processes are bounded, cancel
//! kills ffmpeg and leaves no work files, and a server without ffmpeg fails the job at once.
//! Image groups imported with `createVideo` become videos of one frame per image, from a local
//! bucket and from S3 (moto).

mod common;

use std::path::Path;
use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, ServerProcess, TestServer, eventually, id, media, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    odd_videos_are_transcoded_to_h264_and_aac,
    an_h264_mp4_is_remuxed_with_faststart_unless_forced,
    only_videos_the_caller_can_change_are_accepted,
    a_corrupt_video_is_a_unit_error_with_ffmpegs_message,
    ffmpeg_processes_are_bounded_and_cancel_kills_them,
    a_variable_frame_rate_and_every_audio_track_survive_a_transcode,
    an_image_sequence_from_a_local_bucket_becomes_a_video_of_one_frame_per_image,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_sequence_on_s3_becomes_a_video_of_one_frame_per_image() {
    let Some(fixture) = Fixture::s3().await else { return };
    image_sequence_video(Backend::Sqlite, fixture).await;
}

async fn an_image_sequence_from_a_local_bucket_becomes_a_video_of_one_frame_per_image(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    image_sequence_video(backend, Fixture::local(dir.path().join("bucket"))).await;
}

/// Imports image groups with and without `createVideo` from `fixture` (bucket `src`) and
/// follows the videos the import asks for.
async fn image_sequence_video(backend: Backend, fixture: Fixture) {
    if !media::have_ffmpeg() {
        return;
    }
    // Five JPEG frames shown 48×64: the first stored 64×48 with EXIF "turn a quarter clockwise",
    // one of 30×20 (fitted into the first's shown size); and a group mixing PNG and JPEG.
    let mut frames = vec![media::with_exif_orientation(&media::jpeg(64, 48), 6)];
    frames.extend([(48, 64), (30, 20), (48, 64), (48, 64)].map(|(w, h)| media::jpeg(w, h)));
    for (n, frame) in frames.iter().enumerate() {
        fixture.put(&format!("walk/{n}.jpg"), frame).await;
    }
    fixture.put("mixed/0.png", &media::png(16, 16)).await;
    fixture.put("mixed/1.jpg", &media::jpeg(16, 16)).await;
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let folder = s.folder("/sequences").await;
    let url = |key: &str| fixture.object_url(key);
    let mut walk = json!({"title": "walk", "createVideo": true});
    for n in 0..frames.len() {
        walk[format!("objectUrl_{n}")] = json!(url(&format!("walk/{n}.jpg")));
    }
    let spec = json!({"image_groups": [
        walk,
        {"title": "mixed", "createVideo": true, "objectUrl_0": url("mixed/0.png"), "objectUrl_1": url("mixed/1.jpg")},
        {"title": "still", "objectUrl_0": url("walk/0.jpg"), "objectUrl_1": url("walk/1.jpg")},
    ]});
    let submitted = s.post(&format!("/v1/folders/{folder}/imports"), spec).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let import = finish(&s.base, &s.admin_key, &id(&submitted.body)).await;
    // The mixed group fails its unit at once, saying what to do; the others are imported.
    assert_eq!(import["status"], "ERROR", "{import}");
    assert_eq!(import["result"]["created"], 2, "{import}");
    let unit_error = &import["result"]["unit_errors"][0];
    assert_eq!(unit_error["path"], "image_groups[1]", "{import}");
    assert!(
        unit_error["error"]
            .as_str()
            .is_some_and(|e| e.contains("createVideo: frame 0 is image/png and frame 1 is image/jpeg")),
        "{import}"
    );
    assert!(
        unit_error["action_description"]
            .as_str()
            .is_some_and(|a| a.contains("without createVideo")),
        "{import}"
    );
    let video_jobs = import["result"]["video_jobs"].as_array().expect("video_jobs").clone();
    assert_eq!(video_jobs.len(), 1, "{import}");
    let videos = finish(&s.base, &s.admin_key, video_jobs[0].as_str().expect("id")).await;
    assert_eq!(videos["kind"], "REENCODE");
    assert_eq!(done_and_failed(&videos), (1, 0), "{videos}");
    assert_eq!(videos["result"]["made_from_images"], 1, "{videos}");
    let items: std::collections::BTreeMap<String, Value> =
        s.get(&format!("/v1/folders/{folder}/items")).await.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| (i["title"].as_str().expect("title").to_owned(), i.clone()))
            .collect();

    // The video: one frame per image, in the spec's order, at the first frame's shown size.
    let walk = &items["walk"];
    assert_eq!(walk["item_type"], "IMAGE_SEQUENCE");
    assert_eq!(walk["mime_type"], "video/mp4", "{walk}");
    assert_eq!(walk["frames"][0]["orientation"], 6, "{walk}");
    assert_eq!(
        (&walk["frames"][0]["width"], &walk["frames"][0]["height"]),
        (&json!(48), &json!(64))
    );
    assert_eq!(walk["original"]["object_key"], "walk/0.jpg", "{walk}");
    assert_eq!(walk["original"]["size"], frames[0].len(), "the first image's own size");
    assert_eq!(walk["original"]["media"]["orientation"], 6, "{walk}");
    let dir = tempfile::tempdir().expect("tmp");
    let mp4 = dir.path().join("walk.mp4");
    std::fs::write(&mp4, s.bytes(&format!("/v1/items/{}/content", id(walk))).await).expect("write");
    let (times, _) = media::frame_times(&mp4);
    assert_eq!(times.len(), frames.len(), "{times:?}");
    assert_eq!(
        media::streams(&mp4),
        [("video".into(), "h264".into(), 48, 64, "yuv420p".into())]
    );
    assert_eq!(walk["media"]["frame_count"], frames.len());
    assert_eq!(
        (&walk["media"]["width"], &walk["media"]["height"]),
        (&json!(48), &json!(64))
    );
    // Its images stay what `original=true` and `frames=all` serve.
    let first = s.bytes(&format!("/v1/items/{}/content?original=true", id(walk))).await;
    assert_eq!(first, frames[0]);
    let tar = s.bytes(&format!("/v1/items/{}/content?frames=all", id(walk))).await;
    let names: Vec<String> = common::tar_entries(&tar).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "walk/0000_0.jpg",
            "walk/0001_1.jpg",
            "walk/0002_2.jpg",
            "walk/0003_3.jpg",
            "walk/0004_4.jpg"
        ]
    );
    // In a download of many items, the video is named as its download is.
    let download = s
        .request(Method::POST, "/v1/items/download", Some(&s.admin_key))
        .json(&json!({"item_ids": [id(walk)]}))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let entries = common::tar_entries(&download.bytes().await.expect("tar"));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "walk.mp4");

    // A group without `createVideo` has no video and cannot be given one.
    assert_eq!(items["still"]["item_type"], "IMAGE_GROUP");
    assert_eq!(items["still"]["mime_type"], "image/jpeg");
    let refused = s.post("/v1/reencode", json!({"item_ids": [id(&items["still"])]})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("neither videos nor image sequences") && m.contains("createVideo: true")),
        "{:?}",
        refused.body
    );
}

/// Submits a re-encode and answers the finished job.
async fn reencode(s: &TestServer, body: Value) -> Value {
    let submitted = s.post("/v1/reencode", body).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    assert_eq!(submitted.body["kind"], "REENCODE");
    finish(&s.base, &s.admin_key, &id(&submitted.body)).await
}

/// Waits for job `id` to finish.
async fn finish(base: &str, key: &str, id: &str) -> Value {
    poll_job(base, key, id, Duration::from_secs(120), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

/// Retries finished job `job`; answers the retry once it finished.
async fn retry(s: &TestServer, job: &Value) -> Value {
    let retry = s.post(&format!("/v1/jobs/{}/retry", id(job)), json!({})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(retry.body["retry_of"], job["id"]);
    finish(&s.base, &s.admin_key, &id(&retry.body)).await
}

/// A finished job's units done and failed.
fn done_and_failed(job: &Value) -> (i64, i64) {
    let count = |what: &str| job["progress"][what].as_i64().unwrap_or(-1);
    (count("units_done"), count("units_error"))
}

/// The pids of the ffmpeg processes whose arguments name something under `dir`.
fn ffmpeg_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ffmpeg = args.first().is_some_and(|a| a.rsplit('/').next() == Some("ffmpeg"));
        if is_ffmpeg && args.iter().any(|a| a.contains(&needle)) {
            pids.push(pid);
        }
    }
    pids
}

/// The work directory of job `job`.
fn work_dir(s: &TestServer, job: &Value) -> std::path::PathBuf {
    let job = uuid::Uuid::parse_str(&id(job)).expect("uuid");
    s.services().reencode.work_dir_of(job)
}

/// Checks what a download of a re-encoded `item` serves: an H.264 (yuv420p, even dimensions)
/// MP4 with faststart, with AAC sound when `sound`, matching the item's record.
async fn check_rendition(s: &TestServer, dir: &Path, item: &Value, sound: bool) -> Vec<u8> {
    let bytes = s.bytes(&format!("/v1/items/{}/content", id(item))).await;
    assert_eq!(item["size"], bytes.len(), "{item}");
    assert_eq!(item["checksum"], media::b3sum(dir, &bytes), "{item}");
    assert_eq!(item["mime_type"], "video/mp4");
    assert_eq!(item["bucket"], "managed");
    assert_eq!(item["media"]["codec"], "h264");
    let boxes = media::top_level_boxes(&bytes);
    let at = |name: &str| boxes.iter().position(|b| b == name).unwrap_or(usize::MAX);
    assert!(at("moov") < at("mdat"), "faststart puts moov first: {boxes:?}");
    let path = dir.join(format!("{}.mp4", id(item)));
    std::fs::write(&path, &bytes).expect("write");
    let streams = media::streams(&path);
    let video = streams.iter().find(|s| s.0 == "video").expect("a video stream");
    assert_eq!((video.1.as_str(), video.4.as_str()), ("h264", "yuv420p"), "{streams:?}");
    assert!(video.2 % 2 == 0 && video.3 % 2 == 0, "even dimensions: {streams:?}");
    assert_eq!(
        (item["media"]["width"].clone(), item["media"]["height"].clone()),
        (json!(video.2), json!(video.3))
    );
    let audio: Vec<&str> = streams
        .iter()
        .filter(|s| s.0 == "audio")
        .map(|s| s.1.as_str())
        .collect();
    assert_eq!(audio, if sound { vec!["aac"] } else { vec![] }, "{streams:?}");
    bytes
}

async fn odd_videos_are_transcoded_to_h264_and_aac(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend);
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/odd").await;
    let webm_bytes = media::webm_vp9_opus(dir.path());
    let avi_bytes = media::avi_mpeg4(dir.path());
    let webm = s.upload_ok(&f, "odd.webm", webm_bytes.clone()).await;
    let avi = s.upload_ok(&f, "raw.avi", avi_bytes.clone()).await;
    assert_eq!(
        (webm["item_type"].clone(), avi["item_type"].clone()),
        (json!("VIDEO"), json!("VIDEO"))
    );
    assert_eq!(webm["media"]["codec"], "vp9");

    let job = reencode(
        &s,
        json!({"item_ids": [id(&webm), id(&avi)], "process_title": "make them play"}),
    )
    .await;
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["folder_id"], f.as_str());
    assert_eq!(job["progress"]["units_done"], 2, "{job}");
    assert_eq!(job["result"]["transcoded"], 2, "{job}");
    assert_eq!(job["result"]["process_title"], "make them play");
    assert!(!work_dir(&s, &job).exists(), "the work directory is gone");

    for (before, source) in [(&webm, &webm_bytes), (&avi, &avi_bytes)] {
        let item = s.get(&format!("/v1/items/{}", id(before))).await.body;
        assert!(item["reencoded_at"].is_string(), "{item}");
        check_rendition(&s, dir.path(), &item, true).await;
        // The source object is untouched and still served on request.
        assert_eq!(item["original"]["object_key"], before["object_key"]);
        assert_eq!(item["original"]["checksum"], before["checksum"]);
        assert_eq!(item["original"]["media"], before["media"]);
        let stored = s.object(before["object_key"].as_str().expect("key")).await;
        assert_eq!(stored.as_ref(), Some(source), "the source object is unchanged");
        let original = s
            .bytes(&format!("/v1/items/{}/content?original=true", id(before)))
            .await;
        assert_eq!(&original, source);
    }

    // A signed URL serves the rendition, or with `original=true` the source.
    let signed = |query: &'static str| {
        let s = &s;
        let id = id(&webm);
        async move {
            let answer = s.get(&format!("/v1/items/{id}/url{query}")).await;
            let url = answer.body["url"].as_str().expect("url").to_owned();
            reqwest::get(url)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body")
                .to_vec()
        }
    };
    let webm_item = s.get(&format!("/v1/items/{}", id(&webm))).await.body;
    let rendition = s.object(webm_item["object_key"].as_str().expect("key")).await;
    assert_eq!(Some(signed("").await), rendition, "the rendition");
    assert_eq!(&signed("?original=true").await, &webm_bytes, "the source");

    // The orphan sweep keeps renditions: they are referenced by their items.
    s.services().items.sweep_orphans(Duration::ZERO).await.expect("sweep");
    let item = s.get(&format!("/v1/items/{}", id(&webm))).await.body;
    check_rendition(&s, dir.path(), &item, true).await;

    // A tar serves the renditions too, or the originals.
    let tar = s
        .request(Method::POST, "/v1/items/download?original=true", Some(&s.admin_key))
        .json(&json!({"item_ids": [id(&webm)]}))
        .send()
        .await
        .expect("tar");
    assert_eq!(
        tar.bytes().await.expect("tar").len(),
        512 + webm_bytes.len().div_ceil(512) * 512 + 1024
    );

    // A permanent delete removes the rendition with the item.
    assert!(s.holds(&item).await);
    s.delete(&format!("/v1/items/{}?permanent=true", id(&webm))).await;
    assert!(!s.holds(&item).await, "the rendition went with its item");
}

async fn an_h264_mp4_is_remuxed_with_faststart_unless_forced(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend);
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/plain").await;
    let source = media::mp4_h264_aac(dir.path());
    let boxes = media::top_level_boxes(&source);
    let at = |boxes: &[String], name: &str| boxes.iter().position(|b| b == name).unwrap_or(usize::MAX);
    assert!(
        at(&boxes, "mdat") < at(&boxes, "moov"),
        "the test clip lacks faststart: {boxes:?}"
    );
    let video = s.upload_ok(&f, "plain.mp4", source.clone()).await;

    let job = reencode(&s, json!({"item_ids": [id(&video)]})).await;
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["result"]["remuxed"], 1, "{job}");
    assert_eq!(job["result"]["transcoded"], 0, "{job}");
    let item = s.get(&format!("/v1/items/{}", id(&video))).await.body;
    let remuxed = check_rendition(&s, dir.path(), &item, true).await;
    let source_path = dir.path().join("source.mp4");
    std::fs::write(&source_path, &source).expect("write");
    let remuxed_path = dir.path().join("remuxed.mp4");
    std::fs::write(&remuxed_path, &remuxed).expect("write");
    assert_eq!(
        media::video_stream_md5(&source_path),
        media::video_stream_md5(&remuxed_path),
        "a remux copies the video stream as it is"
    );
    let first_rendition = item.clone();
    assert!(s.holds(&first_rendition).await);

    let forced = reencode(&s, json!({"item_ids": [id(&video)], "force_full_reencoding": true})).await;
    assert_eq!(forced["result"]["transcoded"], 1, "{forced}");
    let item = s.get(&format!("/v1/items/{}", id(&video))).await.body;
    let transcoded = check_rendition(&s, dir.path(), &item, true).await;
    let transcoded_path = dir.path().join("transcoded.mp4");
    std::fs::write(&transcoded_path, &transcoded).expect("write");
    assert_ne!(
        media::video_stream_md5(&source_path),
        media::video_stream_md5(&transcoded_path),
        "a forced re-encode encodes the video again"
    );
    assert!(!s.holds(&first_rendition).await, "the replaced rendition is removed");
    assert_eq!(
        s.bytes(&format!("/v1/items/{}/content?original=true", id(&video)))
            .await,
        source
    );
}

async fn only_videos_the_caller_can_change_are_accepted(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend);
    let dir = tempfile::tempdir().expect("tmp");
    let shared = s
        .post("/v1/folders", json!({"path": "/shared", "visibility": "public"}))
        .await
        .body;
    let video = s.upload_ok(&id(&shared), "clip.mp4", media::mp4(dir.path())).await;
    let image = s.upload_ok(&id(&shared), "pic.png", media::png(4, 4)).await;
    let nobody = uuid::Uuid::new_v4().to_string();

    let mixed = s
        .post("/v1/reencode", json!({"item_ids": [id(&video), id(&image), nobody]}))
        .await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    let message = mixed.message();
    assert!(
        message.contains(&format!("neither videos nor image sequences: {}", id(&image))),
        "{message}"
    );
    assert!(message.contains(&format!("not found: {nobody}")), "{message}");
    assert!(!message.contains(&id(&video)), "{message}");
    let missing = s.post("/v1/reencode", json!({"item_ids": [nobody]})).await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "only items that do not exist: 404"
    );

    let bob = s.key_for("bob", false).await;
    let read_only = s
        .send(
            Method::POST,
            "/v1/reencode",
            Some(&bob),
            Some(json!({"item_ids": [id(&video)]})),
        )
        .await;
    assert_eq!(read_only.status, StatusCode::BAD_REQUEST);
    assert!(read_only.message().contains("only read"), "{}", read_only.message());
    let empty = s.post("/v1/reencode", json!({"item_ids": []})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let unknown = s
        .post("/v1/reencode", json!({"item_ids": [id(&video)], "codec": "av1"}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.message().contains("codec"), "{}", unknown.message());
    let jobs = s.get("/v1/jobs?kind=REENCODE").await.body;
    assert!(common::column(&jobs, "id").is_empty(), "nothing was submitted");
}

async fn a_corrupt_video_is_a_unit_error_with_ffmpegs_message(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend);
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/broken").await;
    let bad = s.upload_ok(&f, "bad.mp4", media::corrupt_mp4(dir.path())).await;
    assert_eq!(bad["item_type"], "VIDEO");
    let good = s.upload_ok(&f, "good.avi", media::avi_mpeg4(dir.path())).await;

    let job = reencode(&s, json!({"item_ids": [id(&bad), id(&good)]})).await;
    assert_eq!(job["status"], "DONE", "one bad video does not fail the job: {job}");
    assert_eq!(job["progress"]["units_done"], 1, "{job}");
    assert_eq!(job["progress"]["units_error"], 1, "{job}");
    let error = &job["errors"][0];
    assert_eq!(error["object"], id(&bad).as_str());
    let message = error["message"].as_str().expect("message");
    println!("{backend:?}: the unit error reads: {message}");
    assert!(message.starts_with("ffmpeg failed:"), "{message}");
    assert!(
        message.contains("Invalid data found when processing input"),
        "{message}"
    );
    assert!(
        !message.contains(s.data_dir.to_str().expect("utf8")),
        "no server paths: {message}"
    );
    let item = s.get(&format!("/v1/items/{}", id(&bad))).await.body;
    assert_eq!(item["original"], Value::Null, "nothing was recorded");
    assert!(!work_dir(&s, &job).exists());

    // A retry runs again only the video that failed; once it is fixed, a retry of that works.
    let retried = retry(&s, &job).await;
    assert_eq!(retried["status"], "ERROR", "{retried}");
    assert_eq!(
        done_and_failed(&retried),
        (0, 1),
        "the good video, done before, is not re-encoded again: {retried}"
    );
    assert_eq!(retried["errors"][0]["object"], id(&bad).as_str());
    let fixed = s
        .upload(
            &f,
            "bad.mp4",
            media::avi_mpeg4(dir.path()),
            &[("conflict_strategy", "replace")],
        )
        .await;
    assert!(fixed.status.is_success(), "{:?}", fixed.body);
    assert_eq!(fixed.body["id"], bad["id"], "replaced in place");
    let again = retry(&s, &retried).await;
    assert_eq!(again["status"], "DONE", "{again}");
    assert_eq!(done_and_failed(&again), (1, 0), "{again}");
    let item = s.get(&format!("/v1/items/{}", id(&bad))).await.body;
    assert_eq!(item["media"]["codec"], "h264", "now re-encoded: {item}");

    // When every video fails, the job did nothing: ERROR, not DONE.
    let worse = s.upload_ok(&f, "worse.mp4", media::corrupt_mp4(dir.path())).await;
    let alone = reencode(&s, json!({"item_ids": [id(&worse)]})).await;
    assert_eq!(alone["status"], "ERROR", "{alone}");
    assert!(
        alone["message"]
            .as_str()
            .unwrap_or_default()
            .contains("every unit failed (1)"),
        "{alone}"
    );
}

async fn ffmpeg_processes_are_bounded_and_cancel_kills_them(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend, |settings| settings.reencode.max_processes = 2);
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/long").await;
    let clip = media::long_avi(dir.path(), 30, "1280x720");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(id(&s.upload_ok(&f, &format!("long-{i}.avi"), clip.clone()).await));
    }
    let objects_before = s.object_keys().await;

    let job = s
        .post("/v1/reencode", json!({"item_ids": ids, "force_full_reencoding": true}))
        .await
        .body;
    let work = work_dir(&s, &job);
    let submitted = std::time::Instant::now();
    let seen = eventually(|| ffmpeg_under(&work).len() == 2).await;
    let started = s.get(&format!("/v1/jobs/{}", id(&job))).await.body;
    println!(
        "{backend:?}: two ffmpeg seen after {:?} (job created {}, started {})",
        submitted.elapsed(),
        started["created_at"],
        started["started_at"]
    );
    assert!(seen, "two ffmpeg processes run: {:?}", ffmpeg_under(&work));
    for _ in 0..20 {
        assert!(ffmpeg_under(&work).len() <= 2, "at most reencode.max_processes at once");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pids = ffmpeg_under(&work);
    let asked = std::time::Instant::now();
    let cancelled = s.post(&format!("/v1/jobs/{}/cancel", id(&job)), json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let job = finish(&s.base, &s.admin_key, &id(&job)).await;
    assert_eq!(job["status"], "CANCELLED", "{job}");
    println!(
        "{backend:?}: cancel to CANCELLED with two ffmpeg killed: {:?}",
        asked.elapsed()
    );
    assert_eq!(job["progress"]["units_cancelled"], 3, "{job}");
    assert!(ffmpeg_under(&work).is_empty(), "cancel killed ffmpeg");
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "ffmpeg {pid} is gone");
    }
    assert!(!work.exists(), "no work files are left");
    assert_eq!(s.object_keys().await, objects_before, "no rendition was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffmpeg_the_job_fails_at_once() {
    if !media::have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let clip = media::mp4(dir.path());
    let empty_path = tempfile::tempdir().expect("tmp");
    let server = ServerProcess::spawn(&[("PATH", empty_path.path().to_str().expect("utf8"))]);
    let http = reqwest::Client::new();
    let folder: Value = http
        .post(format!("{}/v1/folders", server.base))
        .bearer_auth(&server.admin_key)
        .json(&json!({"path": "/videos"}))
        .send()
        .await
        .expect("mkdir")
        .json()
        .await
        .expect("folder");
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(clip).file_name("clip.mp4"));
    let item: Value = http
        .post(format!("{}/v1/folders/{}/items", server.base, id(&folder)))
        .bearer_auth(&server.admin_key)
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("item");
    assert_eq!(item["item_type"], "VIDEO", "{item}");
    let job: Value = http
        .post(format!("{}/v1/reencode", server.base))
        .bearer_auth(&server.admin_key)
        .json(&json!({"item_ids": [id(&item)]}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("job");
    let job = finish(&server.base, &server.admin_key, &id(&job)).await;
    assert_eq!(job["status"], "ERROR", "{job}");
    assert_eq!(job["message"], "ffmpeg not found on PATH", "{job}");
    assert_eq!(job["attempts"], 1, "not retried: {job}");
    assert_eq!(job["progress"]["units_error"], 0, "not one error per item: {job}");
    assert_eq!(job["errors"], json!([]));
    server.stop();
}

async fn a_variable_frame_rate_and_every_audio_track_survive_a_transcode(backend: Backend) {
    if !media::have_ffmpeg() {
        return;
    }
    let s = server!(backend);
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/phone").await;
    let source = media::vfr_hevc_two_tracks(dir.path());
    let source_path = dir.path().join("vfr.mp4");
    let (source_times, _) = media::frame_times(&source_path);
    assert_eq!(source_times.len(), 60);
    let clip = s.upload_ok(&f, "phone.mp4", source).await;
    assert_eq!(clip["media"]["codec"], "hevc");
    let job = reencode(&s, json!({"item_ids": [id(&clip)]})).await;
    assert_eq!(done_and_failed(&job), (1, 0), "{job}");
    let item = s.get(&format!("/v1/items/{}", id(&clip))).await.body;
    assert_eq!(item["media"]["codec"], "h264", "{item}");
    let rendition = dir.path().join("rendition.mp4");
    std::fs::write(&rendition, s.bytes(&format!("/v1/items/{}/content", id(&item))).await).expect("write");
    let (times, tick) = media::frame_times(&rendition);
    assert_eq!(times.len(), source_times.len(), "every frame once, none made up");
    for (at, (got, want)) in times.iter().zip(&source_times).enumerate() {
        assert!(
            (got - want).abs() <= tick,
            "frame {at} at {got} s, the source's at {want} s"
        );
    }
    assert_eq!(media::audio_languages(&rendition), ["eng", "deu"], "every audio track");
}
