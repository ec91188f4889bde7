//! Quotas and usage over HTTP on both databases: folder quotas over subtrees (set by managers,
//! nested inside their ancestors'), users' byte quotas (set by admins), refusals that name the
//! quota, the usage and the limit and leave nothing behind, concurrent uploads at the edge,
//! usage that follows trash, restore, moves, syncs and imports, and the recount that checks it.

mod common;

use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, column, id, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(s: &TestServer, key: &str, path: &str, body: Value) -> common::Answer {
    s.send(Method::PUT, path, Some(key), Some(body)).await
}

async fn created(s: &TestServer, key: &str, body: Value) -> String {
    let answer = s.post_as(key, "/v1/folders", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    id(&answer.body)
}

/// The usage `{bytes, items}` a folder's quota counts, as `[bytes, items]`.
async fn folder_usage(s: &TestServer, folder: &str) -> [i64; 2] {
    let quota = s.get(&format!("/v1/folders/{folder}/quota")).await;
    assert_eq!(quota.status, StatusCode::OK, "{:?}", quota.body);
    let usage = &quota.body["usage"];
    [
        usage["bytes"].as_i64().unwrap_or(-1),
        usage["items"].as_i64().unwrap_or(-1),
    ]
}

/// Moves folder `id` into the trash with everything inside.
async fn trash_folder(s: &TestServer, key: &str, id: &str) -> common::Answer {
    let path = format!("/v1/folders/{id}?recursive=true");
    s.send(Method::DELETE, &path, Some(key), None).await
}

/// Runs the recount and insists that no counter had drifted.
async fn assert_no_drift(s: &TestServer) {
    let recount = s.post("/v1/usage/recount", json!({})).await;
    assert_eq!(recount.status, StatusCode::OK, "{:?}", recount.body);
    assert_eq!(recount.body["drifted"], json!([]), "the counters were exact");
    assert_eq!(
        recount.body["item_counts_drifted"],
        json!([]),
        "the folders' item counts too"
    );
}

fn assert_refused(answer: &common::Answer, names: &[&str]) {
    assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
    assert_eq!(answer.code(), "QUOTA_EXCEEDED");
    for name in names {
        assert!(answer.message().contains(name), "`{name}` in: {}", answer.message());
    }
}

async fn a_folder_quota_refuses_what_would_pass_it_and_counts_exactly(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let q = created(&s, &alice, json!({"path": "/q"})).await;
    let other = created(&s, &alice, json!({"path": "/other"})).await;
    let set = put(
        &s,
        &alice,
        &format!("/v1/folders/{q}/quota"),
        json!({"max_bytes": 10, "max_items": 3}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.body["usage"], json!({"bytes": 0, "items": 0}));

    let first = s.upload_as(&alice, &q, "a.txt", b"aaaa".to_vec(), &[]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let second = s.upload_as(&alice, &q, "b.txt", b"bbbb".to_vec(), &[]).await;
    assert_eq!(second.status, StatusCode::CREATED);
    let objects = s.object_keys().await.len();
    let over = s.upload_as(&alice, &q, "c.txt", b"cccc".to_vec(), &[]).await;
    assert_refused(&over, &["folder /q", "allows 10 bytes", "8 bytes are used", "adds 4"]);
    assert_eq!(
        s.object_keys().await.len(),
        objects,
        "the refused upload's object is gone"
    );
    let listed = s.get_as(&alice, &format!("/v1/folders/{q}/items")).await;
    assert_eq!(column(&listed.body, "title"), ["a.txt", "b.txt"]);
    let summary = s.get_as(&alice, &format!("/v1/folders/{q}/summary")).await;
    assert_eq!(summary.body["quota"]["quota"], json!({"max_bytes": 10, "max_items": 3}));
    assert_eq!(summary.body["quota"]["usage"], json!({"bytes": 8, "items": 2}));

    // Items count too: a small file passes the bytes but not the items.
    let small = s.upload_as(&alice, &q, "d.txt", b"d".to_vec(), &[]).await;
    assert_eq!(small.status, StatusCode::CREATED);
    let fourth = s.upload_as(&alice, &q, "e.txt", b"e".to_vec(), &[]).await;
    assert_refused(&fourth, &["allows 3 items", "3 items are used"]);

    // The trash frees what it takes; a restore that would not fit is refused.
    let a = id(&first.body);
    let trashed = s
        .send(Method::DELETE, &format!("/v1/items/{a}"), Some(&alice), None)
        .await;
    assert_eq!(trashed.status, StatusCode::OK);
    assert_eq!(folder_usage(&s, &q).await, [5, 2]);
    let filler = s.upload_as(&alice, &q, "f.txt", b"fff".to_vec(), &[]).await;
    assert_eq!(filler.status, StatusCode::CREATED);
    let restore = s.post_as(&alice, &format!("/v1/items/{a}/restore"), json!({})).await;
    assert_refused(&restore, &["folder /q"]);
    assert_eq!(folder_usage(&s, &q).await, [8, 3]);

    // Moving items in is refused as a whole; replacing content counts the difference.
    let outside = s
        .upload_as(&alice, &other, "big.txt", b"0123456789".to_vec(), &[])
        .await;
    let moved = s
        .post_as(
            &alice,
            &format!("/v1/folders/{other}/items/move"),
            json!({"item_ids": [id(&outside.body)], "target_folder_id": q}),
        )
        .await;
    assert_refused(&moved, &["folder /q"]);
    assert_eq!(
        column(
            &s.get_as(&alice, &format!("/v1/folders/{other}/items")).await.body,
            "title"
        ),
        ["big.txt"]
    );
    let replaced = s
        .upload_as(&alice, &q, "f.txt", b"f".to_vec(), &[("conflict_strategy", "replace")])
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.body);
    assert_eq!(folder_usage(&s, &q).await, [6, 3]);
    let deleted = s
        .send(
            Method::DELETE,
            &format!("/v1/items/{}?permanent=true", id(&small.body)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(folder_usage(&s, &q).await, [5, 2]);

    let mine = s.get_as(&alice, "/v1/usage").await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["user"], "alice");
    assert_eq!(
        mine.body["usage"],
        json!({"bytes": 15, "items": 3}),
        "both trees, live items only"
    );
    assert_no_drift(&s).await;
    let audit = s.get_as(&alice, &format!("/v1/audit?folder_id={q}")).await;
    assert!(
        column(&audit.body, "action").contains(&"folder.quota".to_owned()),
        "{:?}",
        audit.body
    );
}

async fn twenty_parallel_uploads_at_the_edge_never_overshoot(backend: Backend) {
    let s = server!(backend);
    let edge = s.folder("/edge").await;
    let set = put(
        &s,
        &s.admin_key,
        &format!("/v1/folders/{edge}/quota"),
        json!({"max_items": 10}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    let names: Vec<String> = (0..20).map(|n| format!("{n}.bin")).collect();
    let uploads = names.iter().map(|name| s.upload(&edge, name, vec![7; 100], &[]));
    let answers = futures::future::join_all(uploads).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
        10,
        "{statuses:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status != StatusCode::CREATED)
            .all(|a| a.code() == "QUOTA_EXCEEDED"),
        "{statuses:?}"
    );
    assert_eq!(folder_usage(&s, &edge).await, [1_000, 10]);
    let listed = s.get(&format!("/v1/folders/{edge}/items?page_size=100")).await;
    assert_eq!(column(&listed.body, "title").len(), 10);
    assert_no_drift(&s).await;
}

async fn quotas_nest_and_subtrees_take_their_usage_along(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    let a = created(&s, &alice, json!({"path": "/a"})).await;
    let b = created(&s, &alice, json!({"path": "/a/b"})).await;
    let c = created(&s, &alice, json!({"path": "/c"})).await;
    let quota = |f: &str| format!("/v1/folders/{f}/quota");
    // Only managers set quotas; an editor may not.
    let shared = put(
        &s,
        &alice,
        &format!("/v1/folders/{a}/grants"),
        json!({"user": "bob", "role": "editor"}),
    )
    .await;
    assert_eq!(shared.status, StatusCode::OK);
    assert_eq!(
        put(&s, &bob, &quota(&a), json!({"max_bytes": 1})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&s, &alice, &quota(&a), json!({"max_bytes": 100})).await.status,
        StatusCode::OK
    );
    let wider = put(&s, &alice, &quota(&b), json!({"max_bytes": 200})).await;
    assert_eq!(wider.status, StatusCode::BAD_REQUEST);
    assert!(
        wider.message().contains("exceeds the quota of /a"),
        "{}",
        wider.message()
    );
    assert_eq!(
        put(&s, &alice, &quota(&b), json!({"max_bytes": 50})).await.status,
        StatusCode::OK
    );
    let narrower = put(&s, &alice, &quota(&a), json!({"max_bytes": 40})).await;
    assert_eq!(narrower.status, StatusCode::BAD_REQUEST);
    assert!(narrower.message().contains("/a/b"), "{}", narrower.message());
    assert_eq!(
        put(&s, &alice, &quota(&a), json!({})).await.status,
        StatusCode::BAD_REQUEST,
        "a quota needs a limit"
    );

    // An upload deep inside counts on every quota above it.
    assert_eq!(
        s.upload_as(&bob, &b, "x", vec![1; 30], &[]).await.status,
        StatusCode::CREATED
    );
    assert_eq!(folder_usage(&s, &a).await, [30, 1]);
    assert_eq!(folder_usage(&s, &b).await, [30, 1]);
    let deep = s.upload_as(&bob, &b, "y", vec![1; 30], &[]).await;
    assert_refused(&deep, &["folder /a/b", "allows 50 bytes"]);

    // A subtree that would not fit is not moved in; one that fits takes its usage along.
    assert_eq!(
        s.upload_as(&alice, &c, "z", vec![1; 80], &[]).await.status,
        StatusCode::CREATED
    );
    let moved = s
        .post_as(&alice, &format!("/v1/folders/{c}/move"), json!({"parent_id": a}))
        .await;
    assert_refused(
        &moved,
        &["folder /a", "allows 100 bytes", "30 bytes are used", "adds 80"],
    );
    assert_eq!(s.get_as(&alice, &format!("/v1/folders/{c}")).await.body["path"], "/c");
    let trashed = trash_folder(&s, &alice, &b).await;
    assert_eq!(trashed.status, StatusCode::OK, "{:?}", trashed.body);
    assert_eq!(folder_usage(&s, &a).await, [0, 0]);
    let moved = s
        .post_as(&alice, &format!("/v1/folders/{c}/move"), json!({"parent_id": a}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(folder_usage(&s, &a).await, [80, 1]);
    let restored = s.post_as(&alice, &format!("/v1/folders/{b}/restore"), json!({})).await;
    assert_refused(&restored, &["folder /a", "adds 30"]);
    let back = s
        .post_as(&alice, &format!("/v1/folders/{c}/move"), json!({"parent_id": null}))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    let restored = s.post_as(&alice, &format!("/v1/folders/{b}/restore"), json!({})).await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(folder_usage(&s, &a).await, [30, 1]);
    assert_eq!(folder_usage(&s, &b).await, [30, 1]);
    // A folder with a quota of its own moves with it, however full (30 of 50 here).
    let x = created(&s, &alice, json!({"path": "/a/x"})).await;
    let moved = s
        .post_as(&alice, &format!("/v1/folders/{b}/move"), json!({"parent_id": x}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(folder_usage(&s, &a).await, [30, 1]);
    assert_eq!(folder_usage(&s, &b).await, [30, 1]);

    // A folder whose own quota is wider than the one it would land under stays where it is.
    assert_eq!(
        put(&s, &alice, &quota(&c), json!({"max_bytes": 500})).await.status,
        StatusCode::OK
    );
    let nested = s
        .post_as(&alice, &format!("/v1/folders/{c}/move"), json!({"parent_id": a}))
        .await;
    assert_eq!(nested.status, StatusCode::CONFLICT, "{:?}", nested.body);
    assert!(
        nested.message().contains("would exceed the quota of /a"),
        "{}",
        nested.message()
    );
    let removed = s.send(Method::DELETE, &quota(&c), Some(&alice), None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get_as(&alice, &quota(&c)).await.status, StatusCode::NOT_FOUND);

    // A folder in the trash keeps its quota; lowering the one above meanwhile does not keep it
    // there (its own cannot be changed in the trash), and both apply once it is back.
    let trashed = trash_folder(&s, &alice, &b).await;
    assert_eq!(trashed.status, StatusCode::OK);
    assert_eq!(
        put(&s, &alice, &quota(&a), json!({"max_bytes": 40})).await.status,
        StatusCode::OK
    );
    let restored = s.post_as(&alice, &format!("/v1/folders/{b}/restore"), json!({})).await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(folder_usage(&s, &a).await, [30, 1]);
    assert_no_drift(&s).await;
}

async fn a_user_quota_caps_the_trees_they_own(backend: Backend) {
    let s = server!(backend);
    let bob = s.key_for("bob", false).await;
    let alice = s.key_for("alice", false).await;
    let home = created(&s, &bob, json!({"path": "/bob"})).await;
    let set = put(&s, &s.admin_key, "/v1/users/bob/quota", json!({"max_bytes": 10})).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.body["max_bytes"], 10);
    assert_eq!(
        put(&s, &bob, "/v1/users/bob/quota", json!({"max_bytes": 1000}))
            .await
            .status,
        StatusCode::FORBIDDEN,
        "only admins set users' quotas"
    );
    assert_eq!(
        put(&s, &s.admin_key, "/v1/users/nobody/quota", json!({"max_bytes": 1}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.upload_as(&bob, &home, "a", vec![1; 8], &[]).await.status,
        StatusCode::CREATED
    );
    let over = s.upload_as(&bob, &home, "b", vec![1; 4], &[]).await;
    assert_refused(&over, &["user bob", "allows 10 bytes", "ask an admin"]);
    // Someone bob shares his folder with hears whose quota is full, not what bob holds.
    let shared = put(
        &s,
        &bob,
        &format!("/v1/folders/{home}/grants"),
        json!({"user": "alice", "role": "editor"}),
    )
    .await;
    assert_eq!(shared.status, StatusCode::OK);
    let theirs = s.upload_as(&alice, &home, "c", vec![1; 4], &[]).await;
    assert_refused(&theirs, &["user bob", "adds 4 bytes", "ask bob"]);
    assert!(!theirs.message().contains("8 bytes"), "{}", theirs.message());
    let mine = s.get_as(&bob, "/v1/usage").await;
    assert_eq!(mine.body["max_bytes"], 10);
    assert_eq!(mine.body["usage"], json!({"bytes": 8, "items": 1}));
    assert_eq!(
        s.get_as(&alice, "/v1/usage?user=bob").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.get("/v1/usage?user=bob").await.body["usage"]["bytes"], 8);
    assert_eq!(s.get("/v1/usage?user=nobody").await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/usage?user=").await.status, StatusCode::BAD_REQUEST);
    // An admin's upload into bob's tree counts as bob's.
    let by_admin = s.upload(&home, "c", vec![1; 4], &[]).await;
    assert_refused(&by_admin, &["user bob"]);
    let removed = s
        .send(Method::DELETE, "/v1/users/bob/quota", Some(&s.admin_key), None)
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(removed.body["max_bytes"], Value::Null);
    let again = s
        .send(Method::DELETE, "/v1/users/bob/quota", Some(&s.admin_key), None)
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "removing no quota changes nothing: {:?}",
        again.body
    );
    assert_eq!(again.body["max_bytes"], Value::Null);
    assert_eq!(
        s.upload_as(&bob, &home, "b", vec![1; 4], &[]).await.status,
        StatusCode::CREATED
    );
    let audit = s.get("/v1/audit?action=user.quota").await;
    assert_eq!(
        column(&audit.body, "target_id"),
        ["bob", "bob"],
        "set, then removed: {:?}",
        audit.body
    );
    assert_no_drift(&s).await;
}

async fn syncs_and_imports_record_what_fits_and_fail_the_rest(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    for n in 0..5 {
        fixture.put(&format!("synced/{n}.txt"), &[b'x'; 10]).await;
        fixture.put(&format!("imported/{n}.txt"), &[b'y'; 10]).await;
    }
    let Some(s) = TestServer::with_bucket(backend, &fixture).await else {
        return;
    };
    let top = s.folder("/top").await;
    let set = put(
        &s,
        &s.admin_key,
        &format!("/v1/folders/{top}/quota"),
        json!({"max_items": 3}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    let synced = s
        .post(
            "/v1/folders",
            json!({"path": "/top/mirror", "sync": {"bucket": "src", "prefix": "synced/"}}),
        )
        .await;
    assert_eq!(synced.status, StatusCode::CREATED, "{:?}", synced.body);
    let job = finished(
        &s,
        &s.post(&format!("/v1/folders/{}/sync", id(&synced.body)), json!({}))
            .await,
    )
    .await;
    assert_eq!(job["result"]["created"], 3, "{job}");
    assert_eq!(job["result"]["errors"], 2, "{job}");
    assert_eq!(job["progress"]["units_error"], 2, "{job}");
    let message = job["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the quota of folder /top allows 3 items"), "{job}");
    assert_eq!(folder_usage(&s, &top).await, [30, 3]);

    // Freeing room lets the next sync record the rest.
    let raised = put(
        &s,
        &s.admin_key,
        &format!("/v1/folders/{top}/quota"),
        json!({"max_items": 7}),
    )
    .await;
    assert_eq!(raised.status, StatusCode::OK);
    let job = finished(
        &s,
        &s.post(&format!("/v1/folders/{}/sync", id(&synced.body)), json!({}))
            .await,
    )
    .await;
    assert_eq!(job["result"]["created"], 2, "{job}");
    assert_eq!(folder_usage(&s, &top).await, [50, 5]);

    // An import's units past the quota fail one by one; the rest are imported.
    let into = s.folder("/top/imports").await;
    let images: Vec<Value> = (0..5)
        .map(|n| json!({"objectUrl": fixture.object_url(&format!("imported/{n}.txt"))}))
        .collect();
    let submitted = s
        .post(
            &format!("/v1/folders/{into}/imports?ignore_errors=true"),
            json!({"text": images}),
        )
        .await;
    let job = finished(&s, &submitted).await;
    assert_eq!(job["result"]["created"], 2, "{job}");
    assert_eq!(job["progress"]["units_error"], 3, "{job}");
    assert!(
        job.to_string().contains("QUOTA") || job.to_string().contains("the quota of folder /top"),
        "{job}"
    );
    assert_eq!(folder_usage(&s, &top).await, [70, 7]);

    // A unit refused by the owner's quota leaves no count behind on the folder's, which
    // admitted it first.
    assert_eq!(
        put(
            &s,
            &s.admin_key,
            &format!("/v1/folders/{top}/quota"),
            json!({"max_items": 100})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        put(&s, &s.admin_key, "/v1/users/admin/quota", json!({"max_bytes": 75}))
            .await
            .status,
        StatusCode::OK
    );
    let one = json!({"text": [{"objectUrl": fixture.object_url("imported/0.txt"), "title": "again"}]});
    let job = finished(&s, &s.post(&format!("/v1/folders/{into}/imports"), one).await).await;
    assert_eq!(job["progress"]["units_error"], 1, "{job}");
    assert_eq!(folder_usage(&s, &top).await, [70, 7]);
    assert_no_drift(&s).await;
}

/// Waits for the job a 202 answer started to finish.
async fn finished(s: &TestServer, submitted: &common::Answer) -> Value {
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let job = id(&submitted.body);
    poll_job(&s.base, &s.admin_key, &job, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}

on_both_backends!(
    a_folder_quota_refuses_what_would_pass_it_and_counts_exactly,
    twenty_parallel_uploads_at_the_edge_never_overshoot,
    quotas_nest_and_subtrees_take_their_usage_along,
    a_user_quota_caps_the_trees_they_own,
    syncs_and_imports_record_what_fits_and_fail_the_rest,
);
