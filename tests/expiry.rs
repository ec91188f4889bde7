//! TTL expiry through HTTP on SQLite and PostgreSQL: items get their folder's TTL, the EXPIRY
//! sweep deletes (or trashes) what expired and purges the trash past retention, an extended TTL
//! survives a sweep that is already running, two sweeps at once take each item once, and the
//! schedule is enqueued once per fire time with two schedulers.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, column, id, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

on_both_backends!(
    items_of_a_folder_with_a_ttl_are_gone_after_a_sweep,
    ttl_changes_recompute_expiry_and_own_expiry_wins,
    ttls_and_expiry_times_out_of_range_are_refused_and_never_break_a_read,
    an_extended_ttl_survives_a_running_sweep,
    two_sweeps_at_once_take_each_item_once,
    expired_folders_go_with_their_subtree,
    with_the_trash_action_expired_things_can_be_restored,
    the_trash_is_purged_after_its_retention,
    the_expiry_schedule_is_enqueued_once_with_two_schedulers,
);

/// A server whose sweep runs only when asked.
async fn start(backend: Backend, adjust: impl FnOnce(&mut stowage::config::Settings)) -> Option<TestServer> {
    TestServer::start_with(backend, |settings| {
        settings.expiry.schedule = String::new();
        adjust(settings);
    })
    .await
}

/// Runs a sweep and answers the finished job, which must be DONE.
async fn sweep(s: &TestServer) -> Value {
    let submitted = s.post("/v1/expiry", json!({})).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let job = finish(s, &id(&submitted.body)).await;
    assert_eq!(job["status"], "DONE", "{job}");
    job
}

/// Waits for job `id` to finish.
async fn finish(s: &TestServer, id: &str) -> Value {
    poll_job(&s.base, &s.admin_key, id, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

/// An item as it is now.
async fn reread(s: &TestServer, item: &Value) -> Value {
    s.get(&format!("/v1/items/{}", id(item))).await.body
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("time"), &Rfc3339).expect("RFC 3339")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// Uploads `n` small text items named `{prefix}{i}` into `folder`.
async fn upload_many(s: &TestServer, folder: &str, prefix: &str, n: usize) -> Vec<Value> {
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        items.push(s.upload_ok(folder, &format!("{prefix}{i}.txt"), vec![b'x'; 8]).await);
    }
    items
}

async fn items_of_a_folder_with_a_ttl_are_gone_after_a_sweep(backend: Backend) {
    let Some(s) = start(backend, |_| {}).await else { return };
    let scratch = s
        .post("/v1/folders", json!({"path": "/scratch", "ttl_seconds": 1}))
        .await
        .body;
    let keep = s.folder("/keep").await;
    let items = upload_many(&s, &id(&scratch), "tmp", 3).await;
    for item in &items {
        let lifetime = time_of(&item["expires_at"]) - time_of(&item["created_at"]);
        assert_eq!(lifetime, time::Duration::seconds(1), "{item}");
    }
    let kept = s.upload_ok(&keep, "kept.txt", b"kept".to_vec()).await;
    assert_eq!(kept["expires_at"], Value::Null);
    let bob = s.key_for("bob", false).await;
    let refused = s.send(Method::POST, "/v1/expiry", Some(&bob), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = sweep(&s).await;
    assert_eq!(
        job["result"],
        json!({"items_expired": 3, "folders_expired": 0, "objects_deleted": 3, "trash_purged": 0}),
        "{job}"
    );
    assert_eq!(job["created_by"], "admin");
    let left = s.get(&format!("/v1/folders/{}/items", id(&scratch))).await.body;
    assert!(column(&left, "id").is_empty(), "{left}");
    assert_eq!(s.object_keys().await.len(), 1, "only the kept item's object is left");
    assert_eq!(s.get(&format!("/v1/items/{}", id(&kept))).await.status, StatusCode::OK);
    assert!(
        column(&s.get("/v1/trash").await.body, "id").is_empty(),
        "the delete action leaves nothing in the trash"
    );
}

async fn ttl_changes_recompute_expiry_and_own_expiry_wins(backend: Backend) {
    let Some(s) = start(backend, |_| {}).await else { return };
    let f = s.folder("/ttl").await;
    let a = s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    let b = s.upload_ok(&f, "b.txt", b"b".to_vec()).await;
    assert_eq!(a["expires_at"], Value::Null);

    let patched = s.patch(&format!("/v1/folders/{f}"), json!({"ttl_seconds": 3600})).await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let b_now = reread(&s, &b).await;
    assert_eq!(
        time_of(&b_now["expires_at"]) - time_of(&b_now["created_at"]),
        time::Duration::hours(1)
    );

    let own = OffsetDateTime::now_utc() + time::Duration::days(2);
    let set = s
        .patch(&format!("/v1/items/{}", id(&a)), json!({"expires_at": rfc3339(own)}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    let bad = s
        .patch(&format!("/v1/items/{}", id(&a)), json!({"expires_at": "tomorrow"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("expires_at"), "{}", bad.message());

    s.patch(&format!("/v1/folders/{f}"), json!({"ttl_seconds": null})).await;
    assert_eq!(
        reread(&s, &b).await["expires_at"],
        Value::Null,
        "the folder's TTL is gone"
    );
    let a_now = reread(&s, &a).await;
    assert_eq!(
        time_of(&a_now["expires_at"]).unix_timestamp(),
        own.unix_timestamp(),
        "the item's own expiry stays"
    );
    s.patch(&format!("/v1/folders/{f}"), json!({"ttl_seconds": 60})).await;
    s.patch(&format!("/v1/items/{}", id(&a)), json!({"expires_at": null}))
        .await;
    let a_now = reread(&s, &a).await;
    assert_eq!(
        time_of(&a_now["expires_at"]) - time_of(&a_now["created_at"]),
        time::Duration::minutes(1),
        "back to following its folder"
    );

    // Moved into a folder without a TTL, an item follows that folder.
    let plain = s.folder("/plain").await;
    s.post(
        &format!("/v1/folders/{f}/items/move"),
        json!({"item_ids": [id(&a)], "target_folder_id": plain}),
    )
    .await;
    assert_eq!(reread(&s, &a).await["expires_at"], Value::Null);
}

async fn an_extended_ttl_survives_a_running_sweep(backend: Backend) {
    let Some(s) = start(backend, |settings| settings.expiry.batch_size = 2).await else {
        return;
    };
    let f = s
        .post("/v1/folders", json!({"path": "/race", "ttl_seconds": 1}))
        .await
        .body;
    let mut items = upload_many(&s, &id(&f), "r", 80).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Extended before the sweep: it stays.
    let first = items.remove(0);
    let later = rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1));
    let extended = s
        .patch(&format!("/v1/items/{}", id(&first)), json!({"expires_at": later}))
        .await;
    assert_eq!(extended.status, StatusCode::OK);

    // Extended while the sweep runs, all at once: whatever it had not taken yet stays.
    let submitted = s.post("/v1/expiry", json!({})).await;
    poll_job(
        &s.base,
        &s.admin_key,
        &id(&submitted.body),
        Duration::from_secs(30),
        |j| j["status"] != "PENDING",
    )
    .await;
    let extend = items.iter().rev().map(|item| {
        let path = format!("/v1/items/{}", id(item));
        let body = json!({"expires_at": later});
        let s = &s;
        async move { (id(item), s.patch(&path, body).await) }
    });
    let mut survivors = vec![id(&first)];
    let mut gone = Vec::new();
    for (item, answer) in futures::future::join_all(extend).await {
        match answer.status {
            StatusCode::OK => survivors.push(item),
            StatusCode::NOT_FOUND => gone.push(item),
            other => panic!("PATCH during the sweep answered {other}: {:?}", answer.body),
        }
    }
    let job = finish(&s, &id(&submitted.body)).await;
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["result"]["items_expired"], gone.len(), "{job}");
    let left = s
        .get(&format!("/v1/folders/{}/items?page_size=1000", id(&f)))
        .await
        .body;
    let mut left = column(&left, "id");
    left.sort();
    survivors.sort();
    assert_eq!(left, survivors, "every extended item survived, every other one went");
    println!(
        "{backend:?}: {} items extended in time, {} taken by the sweep",
        survivors.len(),
        gone.len()
    );
}

async fn two_sweeps_at_once_take_each_item_once(backend: Backend) {
    let Some(s) = start(backend, |settings| {
        settings.expiry.batch_size = 2;
        settings.jobs.concurrency.expiry = 2;
    })
    .await
    else {
        return;
    };
    let f = s
        .post("/v1/folders", json!({"path": "/twice", "ttl_seconds": 1}))
        .await
        .body;
    let n = 80;
    upload_many(&s, &id(&f), "t", n).await;
    // A second process with its own workers on the same database.
    let other = s.second_worker().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut submitted = Vec::new();
    for key in ["sweep-1", "sweep-2", "sweep-3"] {
        let answer = s
            .request(Method::POST, "/v1/expiry", Some(&s.admin_key))
            .header("Idempotency-Key", key)
            .send()
            .await
            .expect("submit");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        submitted.push(id(&answer.json::<Value>().await.expect("job")));
    }
    let (mut expired, mut deleted) = (0, 0);
    for job in &submitted {
        let job = finish(&s, job).await;
        assert_eq!(job["status"], "DONE", "{job}");
        assert_eq!(job["errors"], json!([]), "{job}");
        expired += job["result"]["items_expired"].as_u64().expect("count");
        deleted += job["result"]["objects_deleted"].as_u64().expect("count");
    }
    common::stop_running(other).await;
    assert_eq!(expired, n as u64, "each item was expired by exactly one sweep");
    assert_eq!(deleted, n as u64, "each object was deleted by exactly one sweep");
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
}

async fn expired_folders_go_with_their_subtree(backend: Backend) {
    let Some(s) = start(backend, |_| {}).await else { return };
    let soon = rfc3339(OffsetDateTime::now_utc() + time::Duration::milliseconds(300));
    let top = s.post("/v1/folders", json!({"path": "/old", "expires_at": soon})).await;
    assert_eq!(top.status, StatusCode::CREATED, "{:?}", top.body);
    let stored = time_of(&top.body["expires_at"]) - time_of(&json!(soon));
    assert!(
        stored.abs() < time::Duration::milliseconds(1),
        "kept to the microsecond"
    );
    let inner = s.folder("/old/inner").await;
    let later = s
        .post(
            "/v1/folders",
            json!({"path": "/later", "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1))}),
        )
        .await
        .body;
    s.upload_ok(&id(&top.body), "a.txt", b"a".to_vec()).await;
    s.upload_ok(&inner, "b.txt", b"b".to_vec()).await;
    s.upload_ok(&id(&later), "c.txt", b"c".to_vec()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let job = sweep(&s).await;
    assert_eq!(
        job["result"],
        json!({"items_expired": 2, "folders_expired": 2, "objects_deleted": 2, "trash_purged": 0}),
        "{job}"
    );
    assert_eq!(s.get("/v1/folders?path=/old").await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/folders?path=/old/inner").await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/folders?path=/later").await.status, StatusCode::OK);
    assert_eq!(s.object_keys().await.len(), 1);
    assert!(column(&s.get("/v1/trash").await.body, "id").is_empty());
    // A new folder may take the path.
    s.folder("/old").await;
}

async fn with_the_trash_action_expired_things_can_be_restored(backend: Backend) {
    let Some(s) = start(backend, |settings| {
        settings.expiry.action = stowage::config::ExpiryAction::Trash;
    })
    .await
    else {
        return;
    };
    let f = s
        .post("/v1/folders", json!({"path": "/soft", "ttl_seconds": 1}))
        .await
        .body;
    let item = s.upload_ok(&id(&f), "a.txt", b"a".to_vec()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = sweep(&s).await;
    assert_eq!(job["result"]["items_expired"], 1, "{job}");
    assert_eq!(job["result"]["objects_deleted"], 0, "{job}");
    assert_eq!(column(&s.get("/v1/trash").await.body, "id"), [id(&item)]);
    assert_eq!(s.object_keys().await.len(), 1, "a trashed item keeps its object");

    let back = s
        .send(
            Method::POST,
            &format!("/v1/items/{}/restore", id(&item)),
            Some(&s.admin_key),
            None,
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(
        back.body["expires_at"],
        Value::Null,
        "a restored item does not expire again at once"
    );
    let again = sweep(&s).await;
    assert_eq!(again["result"]["items_expired"], 0, "{again}");
    assert_eq!(s.get(&format!("/v1/items/{}", id(&item))).await.status, StatusCode::OK);
}

async fn the_trash_is_purged_after_its_retention(backend: Backend) {
    let Some(s) = start(backend, |settings| settings.trash.retention_seconds = 1).await else {
        return;
    };
    let f = s.folder("/bin/f").await;
    let loose = s.folder("/bin/loose").await;
    s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    s.upload_ok(&f, "b.txt", b"b".to_vec()).await;
    let c = s.upload_ok(&loose, "c.txt", b"c".to_vec()).await;
    let d = s.upload_ok(&loose, "d.txt", b"d".to_vec()).await;
    s.delete(&format!("/v1/items/{}", id(&c))).await;
    s.delete(&format!("/v1/folders/{f}?recursive=true")).await;
    let early = sweep(&s).await;
    assert_eq!(early["result"]["trash_purged"], 0, "not past retention yet: {early}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let restore_late = s
        .send(
            Method::POST,
            &format!("/v1/items/{}/restore", id(&c)),
            Some(&s.admin_key),
            None,
        )
        .await;
    assert_eq!(
        restore_late.status,
        StatusCode::CONFLICT,
        "past retention it is being purged"
    );

    let job = sweep(&s).await;
    assert_eq!(
        job["result"],
        json!({"items_expired": 0, "folders_expired": 0, "objects_deleted": 3, "trash_purged": 2}),
        "{job}"
    );
    assert!(column(&s.get("/v1/trash").await.body, "id").is_empty());
    assert_eq!(s.object_keys().await.len(), 1);
    assert_eq!(s.get(&format!("/v1/items/{}", id(&d))).await.status, StatusCode::OK);
}

async fn the_expiry_schedule_is_enqueued_once_with_two_schedulers(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |settings| settings.expiry.schedule = "* * * * * *".into()).await
    else {
        return;
    };
    let other = s.second_worker().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::stop_running(other).await;

    let jobs = s.get("/v1/jobs?kind=EXPIRY&page_size=1000").await.body;
    let jobs = jobs["items"].as_array().expect("items");
    let mut fire_times: Vec<String> = jobs.iter().map(|j| j["params"]["scheduled_at"].to_string()).collect();
    assert!(fire_times.len() >= 2, "the schedule fired: {fire_times:?}");
    let all = fire_times.len();
    fire_times.sort();
    fire_times.dedup();
    assert_eq!(
        fire_times.len(),
        all,
        "each fire time was enqueued once: {fire_times:?}"
    );
    assert!(jobs.iter().all(|j| j["created_by"] == "scheduler"));
    assert!(
        jobs.iter()
            .all(|j| j["idempotency_key"].as_str().is_some_and(|k| k.starts_with("expiry:")))
    );
}

async fn ttls_and_expiry_times_out_of_range_are_refused_and_never_break_a_read(backend: Backend) {
    let Some(s) = start(backend, |_| {}).await else { return };
    let f = s.folder("/bounded").await;
    let item = s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    let max = stowage::domain::folder::MAX_TTL_SECONDS;
    for ttl in [
        json!(10_000_000_000_000i64),
        json!(253_402_300_799i64),
        json!(max + 1),
        json!(0),
    ] {
        for (method, path, body) in [
            (Method::PATCH, format!("/v1/folders/{f}"), json!({"ttl_seconds": ttl})),
            (
                Method::POST,
                "/v1/folders".to_owned(),
                json!({"path": "/too-long", "ttl_seconds": ttl}),
            ),
        ] {
            let refused = s.send(method, &path, Some(&s.admin_key), Some(body)).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{ttl}: {:?}", refused.body);
            assert!(
                refused.message().contains("ttl_seconds") && refused.message().contains(&max.to_string()),
                "names the field and the range: {}",
                refused.message()
            );
        }
    }
    for at in [
        "10000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
    ] {
        for (path, body) in [
            (format!("/v1/folders/{f}"), json!({"expires_at": at})),
            (format!("/v1/items/{}", id(&item)), json!({"expires_at": at})),
        ] {
            let refused = s.patch(&path, body).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{at}: {:?}", refused.body);
            assert!(
                refused.message().contains("expires_at") && refused.message().contains("9999-12-31T23:59:59Z"),
                "{}",
                refused.message()
            );
        }
    }
    // The largest TTL and the latest time are accepted, and every later read still works.
    let longest = s.patch(&format!("/v1/folders/{f}"), json!({"ttl_seconds": max})).await;
    assert_eq!(longest.status, StatusCode::OK, "{:?}", longest.body);
    let reread_item = s.get(&format!("/v1/items/{}", id(&item))).await;
    assert_eq!(reread_item.status, StatusCode::OK, "{:?}", reread_item.body);
    assert_eq!(
        time_of(&reread_item.body["expires_at"]) - time_of(&reread_item.body["created_at"]),
        time::Duration::seconds(max)
    );
    let moved_in = s.folder("/bounded-src").await;
    let other = s.upload_ok(&moved_in, "b.txt", b"b".to_vec()).await;
    let moved = s
        .post(
            &format!("/v1/folders/{moved_in}/items/move"),
            json!({"item_ids": [id(&other)], "target_folder_id": f}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    let latest = s
        .patch(
            &format!("/v1/items/{}", id(&item)),
            json!({"expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(latest.status, StatusCode::OK, "{:?}", latest.body);
    assert_eq!(latest.body["expires_at"], "9999-12-31T23:59:59Z");
    let listed = s.get(&format!("/v1/folders/{f}/items")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(column(&listed.body, "id").len(), 2);
    let far = s
        .patch(
            &format!("/v1/folders/{f}"),
            json!({"expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(far.status, StatusCode::OK, "{:?}", far.body);
    assert_eq!(s.get(&format!("/v1/folders/{f}")).await.status, StatusCode::OK);
    sweep(&s).await;
    assert_eq!(s.get(&format!("/v1/items/{}", id(&item))).await.status, StatusCode::OK);
}
