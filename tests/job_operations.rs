//! Jobs for operators, through HTTP on SQLite and PostgreSQL: retrying a job (only what did not
//! succeed, once), pausing and resuming a kind (held on every worker, in every process, until
//! resumed), the queue overview, and bulk cancel, retry and delete by filter with dry runs.

mod common;

use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, column, media, poll_job, stop_running};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stowage::domain::job::JobKind;

on_both_backends!(
    a_failed_import_retries_only_the_units_that_did_not_succeed,
    a_cancelled_sync_is_retried_with_its_parameters,
    a_paused_kind_waits_on_every_worker_until_resumed,
    bulk_actions_count_first_and_touch_only_what_they_may,
);

fn id(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

/// Waits until job `id` is finished; answers it.
async fn finished(s: &TestServer, id: &str) -> Value {
    poll_job(&s.base, &s.admin_key, id, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

/// Submits a no-op job (admin), insisting on 202.
async fn noop(s: &TestServer) -> Value {
    let answer = s.post("/v1/jobs/noop", json!({"units": 1})).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    answer.body
}

/// The queue of `kind` in `GET /v1/queues`.
async fn queue(s: &TestServer, kind: &str) -> Value {
    let answer = s.get("/v1/queues").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let queues = answer.body.as_array().expect("queues");
    assert_eq!(queues.len(), 5, "one queue per kind: {queues:?}");
    queues
        .iter()
        .find(|q| q["kind"] == kind)
        .expect("the kind's queue")
        .clone()
}

/// Pauses (`pause`) or resumes `kind` as the admin; answers its queue.
async fn set_paused(s: &TestServer, kind: &str, pause: bool) -> Value {
    let verb = if pause { "pause" } else { "resume" };
    let answer = s.post(&format!("/v1/queues/{kind}/{verb}"), json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["paused"], pause);
    answer.body
}

/// The status of job `id` now.
async fn status(s: &TestServer, id: &str) -> String {
    let job = s.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job.status, StatusCode::OK, "{:?}", job.body);
    job.body["status"].as_str().expect("status").to_owned()
}

async fn bulk(s: &TestServer, key: &str, body: Value) -> common::Answer {
    s.post_as(key, "/v1/jobs/bulk", body).await
}

async fn a_failed_import_retries_only_the_units_that_did_not_succeed(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("a.png", &media::png(8, 8)).await;
    fixture.put("c.png", &media::png(9, 9)).await;
    let bucket = fixture.settings();
    let s = server!(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    });
    let folder = s.folder("/retried").await;
    let spec = json!({"images": [
        {"objectUrl": fixture.object_url("a.png")},
        {"objectUrl": fixture.object_url("b.png")},
        {"objectUrl": fixture.object_url("c.png")},
    ]});
    let submitted = s.post(&format!("/v1/folders/{folder}/imports"), spec).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let original = finished(&s, &id(&submitted.body)).await;
    assert_eq!(original["status"], "ERROR", "{original}");
    assert_eq!(original["progress"]["units_error"], 1, "{original}");
    let message = original["message"].as_str().unwrap_or_default();
    assert!(message.contains("/retry"), "the message says how to go on: {message}");

    // Not retryable yet by someone who may not see it; retryable by its submitter once fixed.
    let stranger = s.key_for("stranger", false).await;
    let hidden = s
        .post_as(&stranger, &format!("/v1/jobs/{}/retry", id(&original)), json!({}))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{:?}", hidden.body);
    fixture.put("b.png", &media::png(10, 10)).await;
    let retry = s.post(&format!("/v1/jobs/{}/retry", id(&original)), json!({})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(retry.body["retry_of"], original["id"]);
    assert_eq!(retry.body["kind"], "IMPORT");
    assert_eq!(retry.body["params"]["units"], 1, "only the failed unit: {}", retry.body);
    let done = finished(&s, &id(&retry.body)).await;
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["result"]["created"], 1, "{done}");
    let units = s.get(&format!("/v1/jobs/{}/units", id(&done))).await;
    assert_eq!(units.status, StatusCode::OK, "{:?}", units.body);
    let positions: Vec<&Value> = units.body["items"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| &u["position"])
        .collect();
    assert_eq!(positions, [&json!(1)], "the unit keeps its place in the spec");
    let items = s.get(&format!("/v1/folders/{folder}/items")).await;
    assert_eq!(
        items.body["items"].as_array().map(Vec::len),
        Some(3),
        "{:?}",
        items.body
    );

    // Asked again, the answer is the retry already made; a job with nothing left refuses.
    let again = s.post(&format!("/v1/jobs/{}/retry", id(&original)), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["id"], done["id"]);
    let nothing = s.post(&format!("/v1/jobs/{}/retry", id(&done)), json!({})).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT, "{:?}", nothing.body);
    assert!(nothing.message().contains("nothing to retry"), "{}", nothing.message());
}

async fn a_cancelled_sync_is_retried_with_its_parameters(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("one.txt", b"one").await;
    let bucket = fixture.settings();
    let s = server!(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    });
    let folder = s
        .post(
            "/v1/folders",
            json!({"path": "/mirror", "sync": {"bucket": "src", "prefix": ""}}),
        )
        .await;
    assert_eq!(folder.status, StatusCode::CREATED, "{:?}", folder.body);
    set_paused(&s, "SYNC", true).await;
    let sync = s
        .post(
            &format!("/v1/folders/{}/sync", id(&folder.body)),
            json!({"force_rehash": true}),
        )
        .await;
    assert_eq!(sync.status, StatusCode::ACCEPTED, "{:?}", sync.body);
    let running = s.post(&format!("/v1/jobs/{}/retry", id(&sync.body)), json!({})).await;
    assert_eq!(
        running.status,
        StatusCode::CONFLICT,
        "a pending job is not retried: {:?}",
        running.body
    );
    let cancelled = s.post(&format!("/v1/jobs/{}/cancel", id(&sync.body)), json!({})).await;
    assert_eq!(cancelled.body["status"], "CANCELLED", "{:?}", cancelled.body);
    // While another sync of the folder waits, that one takes what the cancelled one missed.
    let next = s
        .post(&format!("/v1/folders/{}/sync", id(&folder.body)), json!({}))
        .await;
    assert_eq!(next.status, StatusCode::ACCEPTED, "{:?}", next.body);
    let busy = s.post(&format!("/v1/jobs/{}/retry", id(&sync.body)), json!({})).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{:?}", busy.body);
    assert!(busy.message().contains(&id(&next.body)), "{}", busy.message());
    s.post(&format!("/v1/jobs/{}/cancel", id(&next.body)), json!({})).await;

    let retry = s.post(&format!("/v1/jobs/{}/retry", id(&sync.body)), json!({})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    assert_eq!(retry.body["retry_of"], sync.body["id"]);
    assert_eq!(retry.body["folder_id"], folder.body["id"]);
    assert_eq!(retry.body["params"]["force_rehash"], true);
    set_paused(&s, "SYNC", false).await;
    let done = finished(&s, &id(&retry.body)).await;
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["result"]["created"], 1, "{done}");
}

async fn a_paused_kind_waits_on_every_worker_until_resumed(backend: Backend) {
    let s = server!(backend);
    let member = s.key_for("member", false).await;
    assert_eq!(s.get_as(&member, "/v1/queues").await.status, StatusCode::FORBIDDEN);
    let refused = s.post_as(&member, "/v1/queues/NOOP/pause", json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let unknown = s.post("/v1/queues/nothing/pause", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);

    let paused = set_paused(&s, "noop", true).await;
    assert_eq!(paused["kind"], "NOOP");
    assert!(paused["paused_at"].is_string(), "{paused}");
    // A second process with workers reads the pause when it starts, as after a restart.
    let second = s.second_worker().await;
    let held = noop(&s).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&s, &id(&held)).await, "PENDING", "no worker started it");
    let overview = queue(&s, "NOOP").await;
    assert_eq!(overview["paused"], true, "{overview}");
    assert_eq!(overview["pending"], 1, "{overview}");
    assert!(
        overview["oldest_pending_age_seconds"].as_f64().unwrap_or_default() >= 2.0,
        "{overview}"
    );
    assert!(
        overview["workers_alive"].as_u64().unwrap_or_default() >= 2,
        "both processes: {overview}"
    );
    assert_eq!(queue(&s, "SYNC").await["paused"], false, "other kinds run");

    set_paused(&s, "NOOP", false).await;
    assert_eq!(finished(&s, &id(&held)).await["status"], "DONE");
    stop_running(second).await;

    // Paused by another process (a row written straight into the database) just before a job
    // is pushed: the worker fetches it before it hears of the pause, and the database refuses
    // to start it.
    let store = &s.services().store;
    let mut tx = store.write().await.expect("tx");
    let at = stowage::store::now_micros();
    stowage::store::pauses::pause(&mut tx, JobKind::Noop, "elsewhere", at)
        .await
        .expect("pause");
    tx.commit().await.expect("commit");
    let raced = noop(&s).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&s, &id(&raced)).await, "PENDING", "the database held it");
    assert_eq!(queue(&s, "NOOP").await["paused_by"], "elsewhere");
    set_paused(&s, "NOOP", false).await;
    assert_eq!(finished(&s, &id(&raced)).await["status"], "DONE");
    let audit = s.get("/v1/audit?page_size=100").await;
    let actions = column(&audit.body, "action");
    assert!(
        actions.contains(&"queue.pause".to_owned()) && actions.contains(&"queue.resume".to_owned()),
        "{actions:?}"
    );
}

async fn bulk_actions_count_first_and_touch_only_what_they_may(backend: Backend) {
    let s = server!(backend);
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let before = before
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    set_paused(&s, "NOOP", true).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(id(&noop(&s).await));
    }
    let pending = json!({"kind": "NOOP", "status": "PENDING"});
    let admin = s.admin_key.clone();

    let empty = bulk(&s, &admin, json!({"action": "cancel", "filter": {}})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{:?}", empty.body);
    let bob = s.key_for("bob", false).await;
    let unseen = bulk(&s, &bob, json!({"action": "cancel", "filter": pending})).await;
    assert_eq!(unseen.status, StatusCode::OK, "{:?}", unseen.body);
    assert_eq!(unseen.body["matched"], 0, "bob sees none of them: {:?}", unseen.body);

    let dry = bulk(
        &s,
        &admin,
        json!({"action": "cancel", "filter": pending, "dry_run": true}),
    )
    .await;
    assert_eq!(
        (dry.body["matched"].clone(), dry.body["touched"].clone()),
        (json!(4), json!(4)),
        "{:?}",
        dry.body
    );
    assert_eq!(status(&s, &ids[0]).await, "PENDING", "a dry run changes nothing");
    let cancel = bulk(&s, &admin, json!({"action": "cancel", "filter": pending})).await;
    assert_eq!(cancel.body["touched"], 4, "{:?}", cancel.body);
    for job in &ids {
        assert_eq!(status(&s, job).await, "CANCELLED");
    }

    let cancelled = json!({"kind": "NOOP", "status": "CANCELLED", "submitted_after": before});
    let retry = bulk(&s, &admin, json!({"action": "retry", "filter": cancelled})).await;
    assert_eq!(retry.body["touched"], 4, "{:?}", retry.body);
    let again = bulk(
        &s,
        &admin,
        json!({"action": "retry", "filter": cancelled, "dry_run": true}),
    )
    .await;
    assert_eq!(again.body["touched"], 0, "{:?}", again.body);
    assert_eq!(
        again.body["skipped"][0]["reason"], "already retried",
        "{:?}",
        again.body
    );
    assert_eq!(again.body["skipped"][0]["jobs"], 4, "{:?}", again.body);

    let not_admin = bulk(&s, &bob, json!({"action": "delete", "filter": cancelled})).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN, "{:?}", not_admin.body);
    let unfinished = bulk(
        &s,
        &admin,
        json!({"action": "delete", "filter": pending, "dry_run": true}),
    )
    .await;
    assert_eq!(unfinished.body["matched"], 4, "the retries wait: {:?}", unfinished.body);
    assert_eq!(unfinished.body["touched"], 0, "{:?}", unfinished.body);
    let delete = bulk(&s, &admin, json!({"action": "delete", "filter": cancelled})).await;
    assert_eq!(delete.body["touched"], 4, "{:?}", delete.body);
    assert_eq!(
        s.get(&format!("/v1/jobs/{}", ids[0])).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = s.get("/v1/audit?action=jobs.delete").await;
    assert_eq!(audit.body["items"][0]["detail"]["deleted"], 4, "{:?}", audit.body);

    // The list takes the same time filters; the retries run once resumed.
    let listed = s.get(&format!("/v1/jobs?kind=NOOP&submitted_before={before}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert!(column(&listed.body, "id").is_empty(), "{:?}", listed.body);
    set_paused(&s, "NOOP", false).await;
    let listed = s.get("/v1/jobs?kind=NOOP").await;
    let retries: Vec<Value> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|job| job["retry_of"].is_string())
        .cloned()
        .collect();
    assert_eq!(retries.len(), 4, "{:?}", listed.body);
    for job in &retries {
        assert_eq!(finished(&s, &id(job)).await["status"], "DONE");
    }
}
