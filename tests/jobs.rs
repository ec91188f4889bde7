//! Jobs through HTTP on SQLite and PostgreSQL: running, long polling, cancel, retries,
//! idempotency, listing and schedules.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

on_both_backends!(
    a_job_runs_and_its_waiter_wakes_when_it_completes,
    a_job_submitted_to_this_process_starts_before_the_next_poll,
    a_waiter_without_change_returns_after_its_wait,
    cancel_pending_and_running_jobs,
    failed_attempts_are_retried_then_error,
    idempotency_keys_return_the_same_job,
    listing_filters_pages_and_hides_other_users_jobs,
    scheduled_syncs_are_enqueued_once_with_two_schedulers,
    finished_jobs_are_removed_after_their_retention,
);

fn id(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

async fn noop(s: &common::TestServer, params: Value) -> Value {
    let answer = s.post("/v1/jobs/noop", params).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    answer.body
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("time"), &Rfc3339).expect("RFC 3339")
}

async fn a_job_runs_and_its_waiter_wakes_when_it_completes(backend: Backend) {
    let s = server!(backend);
    let job = noop(&s, json!({"units": 3, "unit_millis": 200})).await;
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["version"], 1);
    // Follow it with long polls, as a client would; every answer is newer than the last.
    let mut version = 1;
    let finished = loop {
        let answer = s
            .get(&format!(
                "/v1/jobs/{}?wait_seconds=30&since_version={version}",
                id(&job)
            ))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let seen = answer.body["version"].as_i64().expect("version");
        assert!(seen > version, "a long poll answers only with news");
        version = seen;
        if answer.body["status"] == "DONE" {
            break (answer.body, OffsetDateTime::now_utc());
        }
    };
    let (done, received) = finished;
    // Woken by the completion itself, not by the fallback re-check (every 2 s) or the 30 s
    // wait: well under a second even on a loaded machine (benches/jobs.rs measures it).
    let late = received - time_of(&done["finished_at"]);
    assert!(
        late < time::Duration::seconds(1),
        "the waiter woke {late} after completion"
    );
    assert_eq!(
        done["progress"],
        json!({"units_pending": 0, "units_done": 3, "units_error": 0, "units_cancelled": 0})
    );
    assert_eq!(done["result"]["units_slept"], 3);
    assert_eq!(done["attempts"], 1);
    assert!(done["started_at"].is_string());

    // A finished job answers at once, however long the wait.
    let started = Instant::now();
    let again = s.get(&format!("/v1/jobs/{}?wait_seconds=30", id(&job))).await;
    assert_eq!(again.body["status"], "DONE");
    assert!(started.elapsed() < Duration::from_secs(2));
}

async fn a_job_submitted_to_this_process_starts_before_the_next_poll(backend: Backend) {
    let s = server!(backend, |settings: &mut stowage::config::Settings| settings
        .jobs
        .poll_interval_ms =
        20_000);
    // Let the worker's first fetch (at start) pass, so that only the push can wake it. This
    // tells most on SQLite: on PostgreSQL NOTIFY wakes the worker as well.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let job = noop(&s, json!({"units": 1, "unit_millis": 1})).await;
        let done = poll_job(&s.base, &s.admin_key, &id(&job), Duration::from_secs(30), |j| {
            j["status"] == "DONE"
        })
        .await;
        assert_eq!(done["status"], "DONE", "{done}");
        let waited = time_of(&done["started_at"]) - time_of(&done["created_at"]);
        assert!(
            waited < time::Duration::seconds(2),
            "the job waited {waited} to start with a 20 s poll interval"
        );
    }
}

async fn a_waiter_without_change_returns_after_its_wait(backend: Backend) {
    let s = server!(backend);
    let job = noop(&s, json!({"units": 1, "unit_millis": 4000})).await;
    let running = poll_job(&s.base, &s.admin_key, &id(&job), Duration::from_secs(30), |j| {
        j["status"] == "RUNNING"
    })
    .await;
    let version = running["version"].as_i64().expect("version");
    let started = Instant::now();
    let answer = s
        .get(&format!("/v1/jobs/{}?wait_seconds=1&since_version={version}", id(&job)))
        .await;
    let waited = started.elapsed();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["version"], version, "nothing changed");
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );

    // Bad waits are refused.
    let too_long = s.get(&format!("/v1/jobs/{}?wait_seconds=601", id(&job))).await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    let negative = s
        .get(&format!("/v1/jobs/{}?wait_seconds=1&since_version=-1", id(&job)))
        .await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);
    // Without a wait, since_version changes nothing: the job at once.
    let lonely = s.get(&format!("/v1/jobs/{}?since_version=1", id(&job))).await;
    assert_eq!(lonely.status, StatusCode::OK);
    assert_eq!(lonely.body["version"], version);

    // A wait ends promptly when the server shuts down.
    let url = format!(
        "{}/v1/jobs/{}?wait_seconds=60&since_version={version}",
        s.base,
        id(&job)
    );
    let key = s.admin_key.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let status = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .map(|r| r.status());
        (status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await;
    let (status, waited) = waiter.await.expect("waiter");
    assert!(
        waited < Duration::from_secs(10),
        "the wait ended {waited:?} after it began"
    );
    assert_eq!(
        status.ok(),
        Some(StatusCode::OK),
        "the waiter got the job's state, not an error"
    );
}

async fn cancel_pending_and_running_jobs(backend: Backend) {
    let s = server!(backend, |settings| settings.jobs.concurrency.noop = 1);
    let running = noop(&s, json!({"units": 200, "unit_millis": 50})).await;
    let queued = noop(&s, json!({"units": 1})).await;
    poll_job(&s.base, &s.admin_key, &id(&running), Duration::from_secs(30), |j| {
        j["status"] == "RUNNING" && j["progress"]["units_done"].as_i64() >= Some(2)
    })
    .await;

    let cancelled = s.post(&format!("/v1/jobs/{}/cancel", id(&queued)), json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(
        cancelled.body["status"], "CANCELLED",
        "a pending job is cancelled at once"
    );

    let asked = s.post(&format!("/v1/jobs/{}/cancel", id(&running)), json!({})).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert_eq!(asked.body["cancel_requested"], true);
    let stopped = poll_job(&s.base, &s.admin_key, &id(&running), Duration::from_secs(10), |j| {
        j["status"] != "RUNNING"
    })
    .await;
    assert_eq!(stopped["status"], "CANCELLED");
    let done = stopped["progress"]["units_done"].as_i64().expect("done");
    assert!((2..200).contains(&done), "finished units are kept: {done}");
    assert_eq!(stopped["progress"]["units_cancelled"].as_i64(), Some(200 - done));
    assert_eq!(stopped["result"]["units_slept"].as_i64(), Some(done));

    // The cancelled pending job never starts, even once the worker is free.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let never = s.get(&format!("/v1/jobs/{}", id(&queued))).await.body;
    assert_eq!(never["status"], "CANCELLED");
    assert_eq!(never["attempts"], 0);
    assert_eq!(never["started_at"], Value::Null);

    let twice = s.post(&format!("/v1/jobs/{}/cancel", id(&running)), json!({})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(twice.message().contains("CANCELLED"));
}

async fn failed_attempts_are_retried_then_error(backend: Backend) {
    let s = server!(backend, |settings| {
        settings.jobs.max_attempts = 3;
        settings.jobs.retry_backoff_ms = 100;
    });
    let flaky = noop(&s, json!({"units": 1, "fail_attempts": 1})).await;
    let hopeless = noop(&s, json!({"units": 1, "fail_attempts": 10})).await;
    let flaky = poll_job(&s.base, &s.admin_key, &id(&flaky), Duration::from_secs(30), |j| {
        j["status"] == "DONE"
    })
    .await;
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(flaky["message"], Value::Null);
    let hopeless = poll_job(&s.base, &s.admin_key, &id(&hopeless), Duration::from_secs(30), |j| {
        j["status"] == "ERROR"
    })
    .await;
    assert_eq!(hopeless["attempts"], 3);
    let message = hopeless["message"].as_str().expect("message");
    assert!(
        message.contains("failed after 3 attempts") && message.contains("on purpose"),
        "{message}"
    );
    assert!(hopeless["finished_at"].is_string());
}

async fn idempotency_keys_return_the_same_job(backend: Backend) {
    let s = server!(backend);
    let send = |key: &str, idem: &str| {
        let request = reqwest::Client::new()
            .post(format!("{}/v1/jobs/noop", s.base))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&json!({"units": 1}));
        async move {
            let resp = request.send().await.expect("send");
            (resp.status(), resp.json::<Value>().await.expect("json"))
        }
    };
    let (first_status, first) = send(&s.admin_key, "nightly-42").await;
    let (second_status, second) = send(&s.admin_key, "nightly-42").await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::OK);
    assert_eq!(first["id"], second["id"]);
    let other_admin = s.key_for("ops", true).await;
    let (_, theirs) = send(&other_admin, "nightly-42").await;
    assert_ne!(theirs["id"], first["id"], "keys are per user");
    let (status, _) = send(&s.admin_key, &"k".repeat(300)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let jobs = s.get("/v1/jobs?kind=NOOP").await.body;
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(2));
}

async fn listing_filters_pages_and_hides_other_users_jobs(backend: Backend) {
    let s = server!(backend);
    for _ in 0..5 {
        noop(&s, json!({"units": 1})).await;
    }
    let mut seen = Vec::new();
    let mut url = "/v1/jobs?kind=NOOP&page_size=2".to_owned();
    loop {
        let page = s.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(common::column(&page.body, "id"));
        match page.body["next_page_token"].as_str() {
            Some(token) => url = format!("/v1/jobs?kind=NOOP&page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(s.get("/v1/jobs?kind=SYNC").await.body["items"], json!([]));
    assert_eq!(s.get("/v1/jobs?status=DONE&kind=NOOP").await.status, StatusCode::OK);
    let bad = s.get("/v1/jobs?kind=COPY").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("kind"));
    let unknown = s.get("/v1/jobs?owner=me").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.message().contains("folder_id"));

    let alice = s.key_for("alice", false).await;
    let theirs = s.send(Method::GET, "/v1/jobs", Some(&alice), None).await;
    assert_eq!(theirs.body["items"], json!([]), "alice sees none of the admin's jobs");
    let one = s
        .send(Method::GET, &format!("/v1/jobs/{}", seen[0]), Some(&alice), None)
        .await;
    assert_eq!(one.status, StatusCode::NOT_FOUND);
    let cancel = s
        .send(
            Method::POST,
            &format!("/v1/jobs/{}/cancel", seen[0]),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let submit = s
        .send(Method::POST, "/v1/jobs/noop", Some(&alice), Some(json!({"units": 1})))
        .await;
    assert_eq!(submit.status, StatusCode::FORBIDDEN);
    let missing = s.get(&format!("/v1/jobs/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn scheduled_syncs_are_enqueued_once_with_two_schedulers(backend: Backend) {
    let bucket = tempfile::tempdir().expect("tmp");
    let url = format!("file://{}", bucket.path().display());
    let s = server!(backend, |settings: &mut stowage::config::Settings| {
        settings
            .buckets
            .insert("src".into(), stowage::config::BucketSettings::at(url));
        settings.sync.min_schedule_interval_seconds = 1;
    });
    let bad = s
        .post(
            "/v1/folders",
            json!({"path": "/nightly", "sync_schedule": "every night"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("sync_schedule"), "{}", bad.message());
    let bad = s
        .post(
            "/v1/folders",
            json!({"path": "/nightly", "sync_schedule": "0 99 * * *"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message().contains("not a valid cron expression"),
        "{}",
        bad.message()
    );

    let folder = s
        .post(
            "/v1/folders",
            json!({"path": "/nightly", "sync": {"bucket": "src"}, "sync_schedule": "* * * * * *"}),
        )
        .await;
    assert_eq!(folder.status, StatusCode::CREATED, "{:?}", folder.body);
    assert_eq!(folder.body["sync_schedule"], "* * * * * *");
    let folder_id = folder.body["id"].as_str().expect("id").to_owned();

    // A second process with workers and a scheduler on the same database.
    let other = s.second_worker().await;

    // Cancel each scheduled sync as it appears, so every tick can submit a new one.
    let until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < until {
        let pending = s
            .get(&format!("/v1/jobs?kind=SYNC&status=PENDING&folder_id={folder_id}"))
            .await
            .body;
        for job in common::column(&pending, "id") {
            s.post(&format!("/v1/jobs/{job}/cancel"), json!({})).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleared = s
        .patch(&format!("/v1/folders/{folder_id}"), json!({"sync_schedule": null}))
        .await;
    assert_eq!(cleared.body["sync_schedule"], Value::Null);
    common::stop_running(other).await;

    let jobs = s.get(&format!("/v1/jobs?kind=SYNC&folder_id={folder_id}")).await.body;
    let fire_times: Vec<String> = jobs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["params"]["scheduled_at"].to_string())
        .collect();
    assert!(fire_times.len() >= 2, "the schedule fired: {fire_times:?}");
    let mut unique = fire_times.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        fire_times.len(),
        "each fire time was enqueued once: {fire_times:?}"
    );
    assert!(
        jobs["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|j| j["created_by"] == "scheduler")
    );
}

async fn finished_jobs_are_removed_after_their_retention(backend: Backend) {
    let s = server!(backend);
    let done = noop(&s, json!({"units": 1})).await;
    let waited = common::poll_job(
        &s.base,
        &s.admin_key,
        &id(&done),
        std::time::Duration::from_secs(30),
        |j| j["status"] == "DONE",
    )
    .await;
    assert_eq!(waited["status"], "DONE", "{waited:?}");
    let running = noop(&s, json!({"units": 200, "unit_millis": 100})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let retention = stowage::services::jobs::retention::JobRetention {
        store: s.services().store.clone(),
        retention: std::time::Duration::from_secs(1),
    };
    assert_eq!(
        retention.run_once().await.expect("retention"),
        1,
        "only the finished job"
    );
    assert_eq!(
        s.get(&format!("/v1/jobs/{}", id(&done))).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v1/jobs/{}", id(&running))).await.status,
        StatusCode::OK
    );
    assert_eq!(retention.run_once().await.expect("retention"), 0);
    let cancel = s.post(&format!("/v1/jobs/{}/cancel", id(&running)), json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK);
}
