//! Webhooks over HTTP on SQLite and PostgreSQL, against a real receiver on 127.0.0.1: signed
//! deliveries in order, retried with the same id and body after 500s until delivered, a
//! receiver that keeps failing disabled with the reason, and receivers on private networks
//! refused unless the operator allows them.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::buckets::Fixture;
use common::{Backend, TestServer, eventually_async, poll_job, stop_running};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

on_both_backends!(
    deliveries_are_signed_in_order_and_retried_until_delivered,
    a_delivery_pending_at_a_restart_goes_on_after_it,
    item_events_come_in_batches_of_at_most_a_thousand,
    folder_changes_restores_expiry_and_purges_tell_of_their_items,
    a_rendition_is_told_as_an_update,
    a_receiver_that_was_down_gets_the_delivery_once_it_is_up,
    an_item_expired_for_good_is_told_as_deleted_for_good,
    an_api_process_records_and_a_worker_process_delivers,
    a_receiver_that_keeps_failing_is_disabled_and_says_why,
    receivers_must_be_public_and_webhooks_belong_to_managers,
);

#[tokio::test]
async fn an_event_that_commits_after_a_later_one_is_still_delivered() {
    use sqlx::Connection;
    let s = server!(Backend::Postgres, settings_for_tests);
    let receiver = Receiver::default();
    let url = receiver.start().await;
    webhook(&s, &url, &["job.finished"]).await;
    // A transaction records an event (taking its place in the insert order) and stays open
    // while a job ends, whose event is recorded, committed and delivered first.
    let mut slow = sqlx::PgConnection::connect(&s.settings.database.url)
        .await
        .expect("connect");
    let mut tx = slow.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO webhook_event (id, kind, folder_id, folder_path, data, created_at) \
         VALUES ($1, 'job.finished', NULL, NULL, '{\"job_id\": \"late\"}', 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&mut *tx)
    .await
    .expect("insert");
    let job = s.post("/v1/jobs/noop", json!({"units": 1})).await;
    finished(&s, job.body["id"].as_str().expect("id")).await;
    let told = |n: usize| {
        let events = accepted_events(&receiver);
        async move { events.len() >= n }
    };
    assert!(eventually_async(|| told(1)).await, "the job's event is delivered");
    tx.commit().await.expect("commit");
    assert!(
        eventually_async(|| told(2)).await,
        "the event that committed later is delivered too: {:?}",
        accepted_events(&receiver)
    );
    let jobs: Vec<Value> = accepted_events(&receiver)
        .iter()
        .map(|e| e["data"]["job_id"].clone())
        .collect();
    assert_eq!(jobs, [job.body["id"].clone(), json!("late")]);
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    signature: String,
    body: String,
    answered: u16,
}

/// A receiver on 127.0.0.1: answers each request with the next scripted status (200 once the
/// script runs out) and records it.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    always: Arc<Mutex<Option<u16>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> AxumStatus {
    let status = r
        .always
        .lock()
        .expect("lock")
        .or_else(|| r.script.lock().expect("lock").pop_front())
        .unwrap_or(200);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.got.lock().expect("lock").push(Received {
        delivery: header("stowage-delivery"),
        signature: header("stowage-signature"),
        body,
        answered: status,
    });
    AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK)
}

impl Receiver {
    /// Starts it; answers its URL.
    async fn start(&self) -> String {
        self.start_on(0).await
    }

    /// Starts it on `port` (any free one when 0); answers its URL.
    async fn start_on(&self, port: u16) -> String {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

/// Checks a `Stowage-Signature` against `secret` the way a receiver would: HMAC-SHA256 over
/// `TIMESTAMP.BODY`, and a timestamp within five minutes.
fn verify(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header.strip_prefix("t=").and_then(|rest| rest.split_once(",v1=")) else {
        return false;
    };
    let Ok(timestamp) = t.parse::<i64>() else { return false };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (now - timestamp).abs() < 300 && expected == v1
}

fn settings_for_tests(settings: &mut stowage::config::Settings) {
    settings.webhooks.allow_private_networks = true;
    settings.webhooks.retry_backoff_ms = 100;
    settings.webhooks.poll_interval_ms = 100;
}

async fn finished(s: &TestServer, id: &str) -> Value {
    poll_job(&s.base, &s.admin_key, id, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

async fn deliveries_are_signed_in_order_and_retried_until_delivered(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    fixture.put("a.txt", b"a").await;
    let bucket = fixture.settings();
    let s = server!(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
        settings_for_tests(settings);
    });
    let receiver = Receiver::default();
    receiver.script.lock().expect("lock").extend([500, 503]);
    let url = receiver.start().await;
    let folder = s
        .post(
            "/v1/folders",
            json!({"path": "/mirror", "sync": {"bucket": "src", "prefix": ""}}),
        )
        .await;
    let folder_id = folder.body["id"].as_str().expect("id").to_owned();
    let made = s
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": ["sync.finished", "job.finished"], "folder_id": folder_id}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let secret = made.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hook = made.body["id"].as_str().expect("id").to_owned();
    assert_eq!(s.get(&format!("/v1/webhooks/{hook}")).await.body.get("secret"), None);

    let mut jobs = Vec::new();
    for file in ["b.txt", "c.txt"] {
        fixture.put(file, b"more").await;
        let sync = s.post(&format!("/v1/folders/{folder_id}/sync"), json!({})).await;
        let id = sync.body["id"].as_str().expect("id").to_owned();
        assert_eq!(finished(&s, &id).await["status"], "DONE");
        jobs.push(id);
    }
    let delivered_all = || {
        let got = receiver.got();
        async move {
            got.iter()
                .filter(|r| r.answered == 200)
                .map(|r| {
                    serde_json::from_str::<Value>(&r.body).expect("json")["events"]
                        .as_array()
                        .map_or(0, Vec::len)
                })
                .sum::<usize>()
                == 4
        }
    };
    assert!(eventually_async(delivered_all).await, "{:?}", receiver.got());

    let got = receiver.got();
    assert!(
        got.iter().all(|r| verify(&secret, &r.signature, &r.body)),
        "every request is signed"
    );
    // The two failed attempts and the success are one delivery: same id, same body.
    assert_eq!((got[0].answered, got[1].answered, got[2].answered), (500, 503, 200));
    assert!(
        got[..3]
            .iter()
            .all(|r| r.delivery == got[0].delivery && r.body == got[0].body)
    );
    // Every event once, in the order it happened: the first sync's, then the second's.
    let events: Vec<Value> = got
        .iter()
        .filter(|r| r.answered == 200)
        .flat_map(|r| {
            serde_json::from_str::<Value>(&r.body).expect("json")["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let order: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["job_id"].as_str().unwrap_or_default().to_owned(),
                e["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (jobs[0].clone(), "job.finished".to_owned()),
            (jobs[0].clone(), "sync.finished".to_owned()),
            (jobs[1].clone(), "job.finished".to_owned()),
            (jobs[1].clone(), "sync.finished".to_owned()),
        ]
    );
    let ids: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 4, "each event has its own id");
    assert_eq!(events[1]["data"]["result"]["created"], 2, "{}", events[1]);
    assert_eq!(events[1]["folder_path"], "/mirror");

    let deliveries = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
    assert_eq!(deliveries.status, StatusCode::OK, "{:?}", deliveries.body);
    let items = deliveries.body["items"].as_array().expect("items");
    let first = items.last().expect("the first delivery");
    assert_eq!(first["status"], "DELIVERED", "{first}");
    let metrics = s
        .request(reqwest::Method::GET, "/metrics", Some(&s.admin_key))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("stowage_webhook_attempts_total{outcome=\"retrying\"}"),
        "failed attempts are counted"
    );
    let codes: Vec<&Value> = first["attempt_log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(503), &json!(200)], "{first}");
}

async fn a_delivery_pending_at_a_restart_goes_on_after_it(backend: Backend) {
    let mut s = server!(backend, settings_for_tests);
    let receiver = Receiver::default();
    *receiver.always.lock().expect("lock") = Some(500);
    let url = receiver.start().await;
    let made = s
        .post("/v1/webhooks", json!({"url": url, "events": ["job.finished"]}))
        .await;
    let hook = made.body["id"].as_str().expect("id").to_owned();
    let job = s.post("/v1/jobs/noop", json!({"units": 1})).await;
    finished(&s, job.body["id"].as_str().expect("id")).await;
    let tried_twice = || {
        let got = receiver.got();
        async move { got.len() >= 2 }
    };
    assert!(eventually_async(tried_twice).await);

    s.restart().await;
    *receiver.always.lock().expect("lock") = None;
    let delivered = || {
        let got = receiver.got();
        async move { got.last().is_some_and(|r| r.answered == 200) }
    };
    assert!(eventually_async(delivered).await, "{:?}", receiver.got());
    let got = receiver.got();
    assert!(
        got.iter().all(|r| r.delivery == got[0].delivery),
        "one delivery, before and after"
    );
    let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
    let delivery = &page.body["items"][0];
    assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
    assert_eq!(
        delivery["attempt_log"].as_array().map(Vec::len),
        Some(got.len()),
        "every attempt is on record: {delivery}"
    );
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
}

/// Every event the receiver accepted, in the order received.
fn accepted_events(receiver: &Receiver) -> Vec<Value> {
    receiver
        .got()
        .iter()
        .filter(|r| r.answered == 200)
        .flat_map(|r| {
            serde_json::from_str::<Value>(&r.body).expect("json")["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

async fn item_events_come_in_batches_of_at_most_a_thousand(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    for n in 0..1200 {
        let path = root.join(format!("f/{n:04}.txt"));
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, n.to_string()).expect("write");
    }
    let fixture = Fixture::local(root.clone());
    let bucket = fixture.settings();
    let s = server!(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
        settings_for_tests(settings);
    });
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let made = s
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": ["item.created", "item.updated", "item.tombstoned", "item.deleted"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let folder = s
        .post(
            "/v1/folders",
            json!({"path": "/mirror", "sync": {"bucket": "src", "prefix": ""}}),
        )
        .await;
    let folder_id = folder.body["id"].as_str().expect("id").to_owned();
    let sync = s.post(&format!("/v1/folders/{folder_id}/sync"), json!({})).await;
    assert_eq!(
        finished(&s, sync.body["id"].as_str().expect("id")).await["status"],
        "DONE"
    );
    let all_created = || {
        let events = accepted_events(&receiver);
        async move { events.len() >= 1200 }
    };
    assert!(
        eventually_async(all_created).await,
        "{} events",
        accepted_events(&receiver).len()
    );
    let got = receiver.got();
    let sizes: Vec<usize> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).expect("json")["events"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert!(sizes.iter().all(|n| *n <= 1000), "{sizes:?}");
    assert!(got.len() < 50, "batched, not one request per item: {}", got.len());
    let events = accepted_events(&receiver);
    let ids: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["data"]["item_id"].as_str()).collect();
    assert_eq!(ids.len(), 1200);
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "item.created" && e["folder_path"] == "/mirror/f")
    );

    // An object changed in the bucket, and one gone from it: its item becomes a tombstone.
    std::fs::write(root.join("f/0002.txt"), "changed").expect("write");
    std::fs::remove_file(root.join("f/0007.txt")).expect("rm");
    let sync = s.post(&format!("/v1/folders/{folder_id}/sync"), json!({})).await;
    assert_eq!(
        finished(&s, sync.body["id"].as_str().expect("id")).await["status"],
        "DONE"
    );
    // An upload, then its deletion into the trash.
    let plain = s.folder("/plain").await;
    let upload = s.upload(&plain, "note.txt", b"hello".to_vec(), &[]).await;
    let item = upload.body["id"].as_str().expect("id").to_owned();
    assert_eq!(s.delete(&format!("/v1/items/{item}")).await.status, StatusCode::OK);
    // A reference, a rename and a move.
    let referenced = s
        .post(
            &format!("/v1/folders/{plain}/references"),
            json!({"url": fixture.object_url("f/0001.txt")}),
        )
        .await;
    assert_eq!(referenced.status, StatusCode::CREATED, "{:?}", referenced.body);
    let renamed = s
        .patch(
            &format!("/v1/items/{}", referenced.body["id"].as_str().expect("id")),
            json!({"title": "one.txt"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    let elsewhere = s.folder("/elsewhere").await;
    let moved = s
        .post(
            &format!("/v1/folders/{plain}/items/move"),
            json!({"item_ids": [referenced.body["id"]], "target_folder_id": elsewhere}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    let rest = || {
        let events = accepted_events(&receiver);
        async move { events.len() >= 1207 }
    };
    assert!(eventually_async(rest).await);
    let tail: Vec<(String, String)> = accepted_events(&receiver)[1200..]
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["data"]["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("item.updated".to_owned(), "0002.txt".to_owned()),
            ("item.tombstoned".to_owned(), "0007.txt".to_owned()),
            ("item.created".to_owned(), "note.txt".to_owned()),
            ("item.deleted".to_owned(), "note.txt".to_owned()),
            ("item.created".to_owned(), "0001.txt".to_owned()),
            ("item.updated".to_owned(), "one.txt".to_owned()),
            ("item.updated".to_owned(), "one.txt".to_owned()),
        ]
    );
    assert_eq!(
        accepted_events(&receiver)[1206]["folder_path"],
        "/elsewhere",
        "a move is told where to"
    );
    assert_eq!(accepted_events(&receiver)[1203]["data"]["permanent"], false);
}

/// What a test compares of an item event: type, title, folder path, cause, permanent.
type Told = (String, String, String, String, String);

/// Waits for the receiver to have accepted `count` events after the `seen` it had; answers
/// them (sorted: a folder's items come in no set order) and moves `seen` past them.
async fn next_events(receiver: &Receiver, seen: &mut usize, count: usize) -> Vec<Told> {
    let want = *seen + count;
    let arrived = || {
        let events = accepted_events(receiver);
        async move { events.len() >= want }
    };
    assert!(
        eventually_async(arrived).await,
        "{:?}",
        &accepted_events(receiver)[*seen..]
    );
    let events = accepted_events(receiver);
    assert_eq!(events.len(), want, "no more than expected: {:?}", &events[*seen..]);
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut told: Vec<Told> = events[*seen..]
        .iter()
        .map(|e| {
            (
                text(&e["type"]),
                text(&e["data"]["title"]),
                text(&e["folder_path"]),
                text(&e["data"]["cause"]),
                text(&e["data"]["permanent"]),
            )
        })
        .collect();
    told.sort();
    *seen = want;
    told
}

fn told(kind: &str, title: &str, path: &str, cause: &str, permanent: &str) -> Told {
    (kind.into(), title.into(), path.into(), cause.into(), permanent.into())
}

async fn folder_changes_restores_expiry_and_purges_tell_of_their_items(backend: Backend) {
    let s = server!(backend, |settings| {
        settings_for_tests(settings);
        settings.expiry.schedule = String::new();
        settings.expiry.action = stowage::config::ExpiryAction::Trash;
        settings.trash.retention_seconds = 4;
    });
    let receiver = Receiver::default();
    let url = receiver.start().await;
    webhook(&s, &url, &["item.created", "item.updated", "item.deleted"]).await;
    let mut seen = 0;
    let a = s.folder("/a").await;
    let b = s.folder("/a/b").await;
    let x = s.upload_ok(&a, "x.txt", b"x".to_vec()).await["id"].clone();
    s.upload_ok(&b, "y.txt", b"y".to_vec()).await;
    let z = s.upload_ok(&a, "z.txt", b"z".to_vec()).await["id"].clone();
    assert_eq!(
        s.delete(&format!("/v1/items/{}", z.as_str().expect("id"))).await.status,
        StatusCode::OK
    );
    next_events(&receiver, &mut seen, 4).await;

    // A rename and a move tell of every item below (not of one in the trash).
    assert_eq!(
        s.patch(&format!("/v1/folders/{a}"), json!({"name": "r"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        next_events(&receiver, &mut seen, 2).await,
        [
            told("item.updated", "x.txt", "/r", "folder", "null"),
            told("item.updated", "y.txt", "/r/b", "folder", "null"),
        ]
    );
    let other = s.folder("/other").await;
    let moved = s
        .post(&format!("/v1/folders/{b}/move"), json!({"parent_id": other}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.updated", "y.txt", "/other/b", "folder", "null")]
    );

    // Into the trash with the folder, back with it, and one restored on its own.
    assert_eq!(
        s.delete(&format!("/v1/folders/{a}?recursive=true")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.deleted", "x.txt", "/r", "folder", "false")]
    );
    let restored = s.post(&format!("/v1/folders/{a}/restore"), json!({})).await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    let restored = s
        .post(&format!("/v1/items/{}/restore", z.as_str().expect("id")), json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(
        next_events(&receiver, &mut seen, 2).await,
        [
            told("item.created", "x.txt", "/r", "restore", "null"),
            told("item.created", "z.txt", "/r", "restore", "null"),
        ]
    );

    // A folder deleted for good.
    let gone = s
        .delete(&format!("/v1/folders/{b}?recursive=true&permanent=true"))
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.deleted", "y.txt", "/other/b", "folder", "true")]
    );

    // TTL expiry (into the trash, as configured), then the trash's retention running out.
    let x_path = format!("/v1/items/{}", x.as_str().expect("id"));
    let expiring = s.patch(&x_path, json!({"expires_at": common::in_seconds(1)})).await;
    assert_eq!(expiring.status, StatusCode::OK, "{:?}", expiring.body);
    next_events(&receiver, &mut seen, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sweep(&s).await;
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.deleted", "x.txt", "/r", "expiry", "false")]
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    sweep(&s).await;
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.deleted", "x.txt", "/r", "trash_purge", "true")]
    );
}

async fn a_rendition_is_told_as_an_update(backend: Backend) {
    if !common::media::have_ffmpeg() {
        return;
    }
    let s = server!(backend, settings_for_tests);
    let receiver = Receiver::default();
    let url = receiver.start().await;
    webhook(&s, &url, &["item.updated"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/videos").await;
    let video = s.upload_ok(&f, "clip.avi", common::media::avi_mpeg4(dir.path())).await;
    let job = s.post("/v1/reencode", json!({"item_ids": [video["id"]]})).await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{:?}", job.body);
    assert_eq!(
        finished(&s, job.body["id"].as_str().expect("id")).await["status"],
        "DONE"
    );
    let mut seen = 0;
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.updated", "clip.avi", "/videos", "rendition", "null")]
    );
}

async fn a_receiver_that_was_down_gets_the_delivery_once_it_is_up(backend: Backend) {
    let s = server!(backend, settings_for_tests);
    let port = {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        taken.local_addr().expect("addr").port()
    };
    let (hook, job) = told_of_a_finished_job(&s, &format!("http://127.0.0.1:{port}/hook")).await;
    let refused_twice = || {
        let s = &s;
        let hook = hook.clone();
        async move {
            let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
            page.body["items"][0]["attempt_log"].as_array().map_or(0, Vec::len) >= 2
        }
    };
    assert!(eventually_async(refused_twice).await);
    let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
    let delivery = &page.body["items"][0];
    assert_eq!(delivery["status"], "PENDING", "{delivery}");
    let attempt = &delivery["attempt_log"][0];
    assert_eq!(attempt["status_code"], Value::Null, "no answer: {attempt}");
    assert!(
        attempt["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the attempt says why: {attempt}"
    );

    let receiver = Receiver::default();
    receiver.start_on(port).await;
    let delivered = || {
        let got = receiver.got();
        async move { got.iter().any(|r| r.answered == 200) }
    };
    assert!(eventually_async(delivered).await);
    let events = accepted_events(&receiver);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["job_id"], job.as_str());
    let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
    assert_eq!(page.body["items"][0]["status"], "DELIVERED", "{}", page.body);
}

/// Makes a webhook told of finished jobs at `url`, and runs a job to its end; answers the
/// webhook's id and the job's.
async fn told_of_a_finished_job(s: &TestServer, url: &str) -> (String, String) {
    let hook = webhook(s, url, &["job.finished"]).await;
    let job = s.post("/v1/jobs/noop", json!({"units": 1})).await;
    let job = job.body["id"].as_str().expect("id").to_owned();
    finished(s, &job).await;
    (hook, job)
}

/// Makes a webhook told of `events` at `url`; answers its id.
async fn webhook(s: &TestServer, url: &str, events: &[&str]) -> String {
    let made = s.post("/v1/webhooks", json!({"url": url, "events": events})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    made.body["id"].as_str().expect("id").to_owned()
}

async fn an_item_expired_for_good_is_told_as_deleted_for_good(backend: Backend) {
    let s = server!(backend, |settings| {
        settings_for_tests(settings);
        settings.expiry.schedule = String::new();
        settings.expiry.action = stowage::config::ExpiryAction::Delete;
    });
    let receiver = Receiver::default();
    let url = receiver.start().await;
    webhook(&s, &url, &["item.deleted"]).await;
    let folder = s.folder("/brief").await;
    let item = s.upload_ok(&folder, "short.txt", b"s".to_vec()).await;
    let path = format!("/v1/items/{}", item["id"].as_str().expect("id"));
    let expiring = s.patch(&path, json!({"expires_at": common::in_seconds(1)})).await;
    assert_eq!(expiring.status, StatusCode::OK, "{:?}", expiring.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sweep(&s).await;
    let mut seen = 0;
    assert_eq!(
        next_events(&receiver, &mut seen, 1).await,
        [told("item.deleted", "short.txt", "/brief", "expiry", "true")]
    );
}

/// Runs a TTL sweep to its end.
async fn sweep(s: &TestServer) {
    let submitted = s.post("/v1/expiry", json!({})).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let job = finished(s, submitted.body["id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "DONE", "{job}");
}

async fn an_api_process_records_and_a_worker_process_delivers(backend: Backend) {
    let s = server!(backend, settings_for_tests);
    // The API alone, no workers, on the same database: what it records, `s`'s workers deliver.
    let api = s
        .second_process(stowage::app::Roles {
            http: true,
            workers: false,
        })
        .await;
    let api_base = format!("http://{}", api.addr.expect("serves HTTP"));
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let client = reqwest::Client::new();
    let made: Value = client
        .post(format!("{api_base}/v1/webhooks"))
        .bearer_auth(&s.admin_key)
        .json(&json!({"url": url, "events": ["item.created"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    assert!(made["secret"].is_string(), "{made}");
    let folder: Value = client
        .post(format!("{api_base}/v1/folders"))
        .bearer_auth(&s.admin_key)
        .json(&json!({"path": "/split"}))
        .send()
        .await
        .expect("folder")
        .json()
        .await
        .expect("json");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"via the api".to_vec()).file_name("api.txt"),
    );
    let uploaded = client
        .post(format!(
            "{api_base}/v1/folders/{}/items",
            folder["id"].as_str().expect("id")
        ))
        .bearer_auth(&s.admin_key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let delivered = || {
        let events = accepted_events(&receiver);
        async move { events.iter().any(|e| e["data"]["title"] == "api.txt") }
    };
    assert!(eventually_async(delivered).await, "{:?}", receiver.got());
    stop_running(api).await;
}

async fn a_receiver_that_keeps_failing_is_disabled_and_says_why(backend: Backend) {
    let s = server!(backend, |settings| {
        settings_for_tests(settings);
        settings.webhooks.retry_window_seconds = 1;
        settings.webhooks.disable_after_failed_deliveries = 2;
    });
    let receiver = Receiver::default();
    *receiver.always.lock().expect("lock") = Some(500);
    let url = receiver.start().await;
    let made = s
        .post("/v1/webhooks", json!({"url": url, "events": ["job.finished"]}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let hook = made.body["id"].as_str().expect("id").to_owned();
    for _ in 0..2 {
        let job = s.post("/v1/jobs/noop", json!({"units": 1})).await;
        finished(&s, job.body["id"].as_str().expect("id")).await;
        // The next job's event comes after this delivery was given up: a delivery of its own.
        let given_up = || {
            let s = &s;
            let hook = hook.clone();
            async move {
                let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
                page.body["items"][0]["status"] == "FAILED"
            }
        };
        assert!(eventually_async(given_up).await);
    }
    let disabled = || {
        let s = &s;
        let hook = hook.clone();
        async move { s.get(&format!("/v1/webhooks/{hook}")).await.body["enabled"] == false }
    };
    assert!(eventually_async(disabled).await);
    let shown = s.get(&format!("/v1/webhooks/{hook}")).await.body;
    let reason = shown["disabled_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("2 deliveries in a row") && reason.contains("500"),
        "{reason}"
    );
    let enabled = s.patch(&format!("/v1/webhooks/{hook}"), json!({"enabled": true})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{:?}", enabled.body);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
}

async fn receivers_must_be_public_and_webhooks_belong_to_managers(backend: Backend) {
    let s = server!(backend, |settings| settings.webhooks.poll_interval_ms = 100);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "ftp://example.com/hook",
    ] {
        let refused = s
            .post("/v1/webhooks", json!({"url": url, "events": ["job.finished"]}))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}: {:?}", refused.body);
        assert!(refused.message().starts_with("url:"), "{}", refused.message());
    }
    let none = s
        .post("/v1/webhooks", json!({"url": "https://example.com/h", "events": []}))
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST, "{:?}", none.body);

    // A webhook whose folder is gone cannot be enabled again: it would stop at once.
    let watched = s.folder("/watched").await;
    let scoped = s
        .post(
            "/v1/webhooks",
            json!({"url": "https://example.com/h", "events": ["job.finished"], "folder_id": watched}),
        )
        .await;
    assert_eq!(scoped.status, StatusCode::CREATED, "{:?}", scoped.body);
    assert_eq!(s.delete(&format!("/v1/folders/{watched}")).await.status, StatusCode::OK);
    let path = format!("/v1/webhooks/{}", scoped.body["id"].as_str().expect("id"));
    let enabled = s.patch(&path, json!({"enabled": true})).await;
    assert_eq!(enabled.status, StatusCode::CONFLICT, "{:?}", enabled.body);
    assert!(
        enabled.message().contains("its folder was deleted"),
        "{}",
        enabled.message()
    );

    // A name is checked where it resolves, on every attempt: localhost is this machine.
    let receiver = Receiver::default();
    let url = receiver.start().await.replace("127.0.0.1", "localhost");
    let (hook, _) = told_of_a_finished_job(&s, &url).await;
    let refused = || {
        let s = &s;
        let hook = hook.clone();
        async move {
            let page = s.get(&format!("/v1/webhooks/{hook}/deliveries")).await;
            page.body["items"][0]["attempt_log"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("private"))
        }
    };
    assert!(eventually_async(refused).await);
    assert!(receiver.got().is_empty(), "nothing reached the machine's own network");

    // Only managers of a folder make webhooks for it; others learn nothing of it.
    let owner = s.key_for("owner", false).await;
    let viewer = s.key_for("viewer", false).await;
    let stranger = s.key_for("stranger", false).await;
    let folder = s.post_as(&owner, "/v1/folders", json!({"path": "/mine"})).await;
    let folder_id = folder.body["id"].as_str().expect("id").to_owned();
    let grant = s
        .send(
            reqwest::Method::PUT,
            &format!("/v1/folders/{folder_id}/grants"),
            Some(&owner),
            Some(json!({"user": "viewer", "role": "viewer"})),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{:?}", grant.body);
    let body = json!({"url": "https://example.com/h", "events": ["job.finished"], "folder_id": folder_id});
    assert_eq!(
        s.post_as(&stranger, "/v1/webhooks", body.clone()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.post_as(&viewer, "/v1/webhooks", body.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let everywhere = json!({"url": "https://example.com/h", "events": ["job.finished"]});
    assert_eq!(
        s.post_as(&owner, "/v1/webhooks", everywhere).await.status,
        StatusCode::FORBIDDEN
    );
    let mine = s.post_as(&owner, "/v1/webhooks", body).await;
    assert_eq!(mine.status, StatusCode::CREATED, "{:?}", mine.body);
    let listed = s.get_as(&owner, "/v1/webhooks").await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "{:?}", listed.body);
    let theirs = s
        .get_as(
            &stranger,
            &format!("/v1/webhooks/{}", mine.body["id"].as_str().unwrap_or_default()),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let audit = s.get("/v1/audit?action=webhook.create").await;
    assert_eq!(
        audit.body["items"].as_array().map(Vec::len),
        Some(3),
        "{:?}",
        audit.body
    );
}
