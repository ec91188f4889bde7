//! Exports over HTTP on SQLite and PostgreSQL: `GET /v1/folders/{id}/items/export` answers every
//! item a caller may read in a folder or its subtree, as NDJSON (each line what
//! `GET /v1/items/{id}` answers, plus `path`) or CSV (read back with the `csv` crate), in path
//! and title order, with the list's filters; it reads one snapshot, so changes made while a
//! client is still reading do not show; and `stowage item export` writes the same bytes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, id, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    an_export_holds_every_item_the_caller_may_read,
    csv_and_filters_answer_the_same_items,
    an_export_reads_one_snapshot,
);

/// The raw answer of an export of `folder` with `query`, as `key`.
async fn export(s: &TestServer, key: &str, folder: &str, query: &str) -> (StatusCode, String, String) {
    let resp = s
        .request(
            Method::GET,
            &format!("/v1/folders/{folder}/items/export{query}"),
            Some(key),
        )
        .send()
        .await
        .expect("export");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.text().await.expect("body"))
}

/// The lines of an NDJSON export, parsed.
fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn paths(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["path"].as_str().expect("path")).collect()
}

/// Folders and items: /exp (public) with a.txt, b.png; /exp/sub (public) with c.txt;
/// /exp/private with d.txt; a trashed item in /exp.
async fn populate(s: &TestServer) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let made = s
        .post("/v1/folders", json!({"path": "/exp", "visibility": "public"}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    ids.insert("/exp", id(&made.body));
    let sub = s
        .post("/v1/folders", json!({"path": "/exp/sub", "visibility": "public"}))
        .await;
    ids.insert("/exp/sub", id(&sub.body));
    ids.insert("/exp/private", s.folder("/exp/private").await);
    let png = common::media::png(3, 2);
    for (folder, title, bytes) in [
        ("/exp", "b.png", png),
        ("/exp", "a.txt", b"a".to_vec()),
        ("/exp/sub", "c.txt", b"c".to_vec()),
        ("/exp/private", "d.txt", b"d".to_vec()),
        ("/exp", "gone.txt", b"gone".to_vec()),
    ] {
        let item = s.upload_ok(&ids[folder], title, bytes).await;
        let key: &'static str = Box::leak(format!("{folder}/{title}").into_boxed_str());
        ids.insert(key, id(&item));
    }
    let gone = s.delete(&format!("/v1/items/{}", ids["/exp/gone.txt"])).await;
    assert_eq!(gone.status, StatusCode::OK);
    ids
}

async fn an_export_holds_every_item_the_caller_may_read(backend: Backend) {
    let s = server!(backend);
    let ids = populate(&s).await;
    let star = format!("/v1/items/{}/star", ids["/exp/a.txt"]);
    let starred = s.send(Method::PUT, &star, Some(&s.admin_key), None).await;
    assert!(starred.status.is_success(), "{:?}", starred.body);
    let (status, content_type, body) = export(&s, &s.admin_key, &ids["/exp"], "?recursive=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/x-ndjson");
    let items = lines(&body);
    assert_eq!(
        paths(&items),
        ["/exp/a.txt", "/exp/b.png", "/exp/private/d.txt", "/exp/sub/c.txt"],
        "folders in path order, titles in order, nothing from the trash"
    );
    for item in &items {
        let mut alone = s
            .get(&format!("/v1/items/{}", item["id"].as_str().expect("id")))
            .await
            .body;
        alone["path"] = item["path"].clone();
        assert_eq!(item, &alone, "a line is what GET /v1/items/{{id}} answers, plus path");
    }
    assert_eq!(items[0]["starred"], true, "{}", items[0]);
    let (_, _, own) = export(&s, &s.admin_key, &ids["/exp"], "").await;
    assert_eq!(
        paths(&lines(&own)),
        ["/exp/a.txt", "/exp/b.png"],
        "without recursive: its own"
    );

    // Alice reads the public folders only: the private one is not in her export.
    let alice = s.key_for("alice", false).await;
    let (status, _, body) = export(&s, &alice, &ids["/exp"], "?recursive=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hers = lines(&body);
    assert_eq!(paths(&hers), ["/exp/a.txt", "/exp/b.png", "/exp/sub/c.txt"]);
    assert!(hers.iter().all(|i| i["my_role"] == "viewer"), "{hers:?}");
    let (status, _, body) = export(&s, &alice, &ids["/exp/private"], "").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "what she may not see does not exist: {body}"
    );

    let (status, _, body) = export(&s, &s.admin_key, &ids["/exp"], "?format=xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("format"), "the message names the parameter: {body}");
    let (status, _, _) = export(&s, &s.admin_key, &uuid::Uuid::now_v7().to_string(), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn csv_and_filters_answer_the_same_items(backend: Backend) {
    let s = server!(backend);
    let ids = populate(&s).await;
    let (status, content_type, body) = export(&s, &s.admin_key, &ids["/exp"], "?recursive=true&format=csv").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(header, stowage::services::items::CSV_COLUMNS);
    let rows: Vec<BTreeMap<String, String>> = reader.deserialize().map(|row| row.expect("a row")).collect();
    let (_, _, ndjson) = export(&s, &s.admin_key, &ids["/exp"], "?recursive=true").await;
    let items = lines(&ndjson);
    assert_eq!(rows.len(), items.len());
    for (row, item) in rows.iter().zip(&items) {
        // Every column holds what the NDJSON line holds: text as it is, null as empty, any
        // other JSON as its text.
        for column in stowage::services::items::CSV_COLUMNS {
            let expected = match &item[column] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(row[column], expected, "{column}");
        }
        assert_eq!(row["is_tombstone"], "false");
        let metadata: Value = serde_json::from_str(&row["client_metadata"]).expect("JSON in a cell");
        assert_eq!(metadata, item["client_metadata"]);
    }
    let png = rows.iter().find(|r| r["title"] == "b.png").expect("the png");
    let media: Value = serde_json::from_str(&png["media"]).expect("media JSON");
    assert_eq!(media["width"], 3, "{media}");

    for (query, expected) in [
        ("?recursive=true&search=A.T", vec!["/exp/a.txt"]),
        ("?recursive=true&item_types=IMAGE", vec!["/exp/b.png"]),
        ("?recursive=true&is_tombstone=true", vec![]),
    ] {
        let (status, _, body) = export(&s, &s.admin_key, &ids["/exp"], query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(paths(&lines(&body)), expected, "{query}");
    }
}

async fn an_export_reads_one_snapshot(backend: Backend) {
    // Enough items (about 25 MB of NDJSON) that the answer cannot all wait in buffers while the
    // client reads nothing.
    const FILES: usize = 30_000;
    const REMOVED: usize = 100;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let file = |n: usize| root.join(format!("d{}/{n:05}.txt", n % 4));
    for n in 0..FILES {
        std::fs::create_dir_all(file(n).parent().expect("dir")).expect("mkdir");
        std::fs::write(file(n), "").expect("write");
    }
    let bucket = Fixture::local(root.clone()).settings();
    let s = server!(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    });
    let synced = s
        .post(
            "/v1/folders",
            json!({"path": "/snap", "sync": {"bucket": "src", "prefix": ""}}),
        )
        .await;
    let folder = id(&synced.body);
    assert_eq!(sync(&s, &folder).await["created"], FILES);

    // Read one chunk of the export; meanwhile a sync tombstones some items and makes one.
    let path = format!("/v1/folders/{folder}/items/export?recursive=true");
    let mut resp = s
        .request(Method::GET, &path, Some(&s.admin_key))
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.chunk().await.expect("a chunk").expect("bytes").to_vec();
    for n in (0..FILES).rev().take(REMOVED) {
        std::fs::remove_file(file(n)).expect("rm");
    }
    std::fs::write(root.join("d0/new.txt"), "new").expect("write");
    let changed = sync(&s, &folder).await;
    assert_eq!(
        (changed["tombstoned"].clone(), changed["created"].clone()),
        (json!(REMOVED), json!(1))
    );
    while let Some(chunk) = resp.chunk().await.expect("a chunk") {
        body.extend_from_slice(&chunk);
    }
    let items = lines(std::str::from_utf8(&body).expect("utf-8"));
    assert_eq!(
        items.len(),
        FILES,
        "the export reads the catalog as it was when it began"
    );
    assert!(
        items
            .iter()
            .all(|i| i["is_tombstone"] == false && i["title"] != "new.txt")
    );

    let (_, _, after) = export(&s, &s.admin_key, &folder, "?recursive=true").await;
    let after = lines(&after);
    assert_eq!(after.len(), FILES + 1);
    assert_eq!(after.iter().filter(|i| i["is_tombstone"] == true).count(), REMOVED);
}

/// Syncs folder `folder` to DONE; answers the job's result.
async fn sync(s: &TestServer, folder: &str) -> Value {
    let job = s.post(&format!("/v1/folders/{folder}/sync"), json!({})).await;
    let job = poll_job(&s.base, &s.admin_key, &id(&job.body), Duration::from_secs(120), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await;
    assert_eq!(job["status"], "DONE", "{job}");
    job["result"].clone()
}
