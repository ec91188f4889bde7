//! Downloads serve an item's bytes only while they are the bytes the catalog describes: a synced
//! file changed on disk since the last sync is a 409 `STALE` for a single download and for a tar
//! (until a sync records it), a file that changes while it is streamed cuts the connection off
//! (so neither a download nor a tar can pass for complete), and a file swapped for a symlink out
//! of the bucket is a 4xx that the next sync treats like any skipped symlink.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, poll_job, tar_entries};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    a_file_changed_since_the_sync_is_stale_until_synced,
    a_file_swapped_for_a_symlink_out_of_the_bucket_is_refused,
);

/// A server with `root` configured as bucket `src`, and a folder `/m` mirroring it, synced once.
async fn mirrored(backend: Backend, root: &std::path::Path) -> Option<(TestServer, String)> {
    let bucket = Fixture::local(root.to_owned()).settings();
    let s = TestServer::start_with(backend, move |settings| {
        settings.buckets.insert("src".into(), bucket);
    })
    .await?;
    let created = s
        .post("/v1/folders", json!({"path": "/m", "sync": {"bucket": "src"}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let folder = created.body["id"].as_str().expect("id").to_owned();
    let job = sync(&s, &folder).await;
    assert_eq!(job["status"], "DONE", "{job}");
    Some((s, folder))
}

async fn sync(s: &TestServer, folder: &str) -> Value {
    let submitted = s.post(&format!("/v1/folders/{folder}/sync"), json!({})).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{:?}", submitted.body);
    let id = submitted.body["id"].as_str().expect("id").to_owned();
    poll_job(&s.base, &s.admin_key, &id, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR"))
    })
    .await
}

/// The id of the item titled `title` in folder `folder`.
async fn item_titled(s: &TestServer, folder: &str, title: &str) -> String {
    let page = s.get(&format!("/v1/folders/{folder}/items")).await.body;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["title"] == title)
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("no item {title} in {page}"))
        .to_owned()
}

async fn tar_of(s: &TestServer, ids: &[&str]) -> reqwest::Response {
    s.request(Method::POST, "/v1/items/download", Some(&s.admin_key))
        .json(&json!({"item_ids": ids}))
        .send()
        .await
        .expect("tar request")
}

async fn a_file_changed_since_the_sync_is_stale_until_synced(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).expect("bucket");
    std::fs::write(root.join("grows.txt"), vec![b'a'; 1000]).expect("write");
    std::fs::write(root.join("same.txt"), b"unchanged").expect("write");
    let Some((s, folder)) = mirrored(backend, &root).await else {
        return;
    };
    let grows = item_titled(&s, &folder, "grows.txt").await;
    let same = item_titled(&s, &folder, "same.txt").await;

    // Rewritten with other bytes of another size: no download may serve it as the item.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(root.join("grows.txt"), b"short").expect("rewrite");
    let single = s.get(&format!("/v1/items/{grows}/content")).await;
    assert_eq!(single.status, StatusCode::CONFLICT, "{:?}", single.body);
    assert_eq!(single.code(), "STALE");
    assert!(single.message().contains("sync its folder"), "{}", single.message());
    let ranged = s
        .request(Method::GET, &format!("/v1/items/{grows}/content"), Some(&s.admin_key))
        .header("Range", "bytes=0-3")
        .send()
        .await
        .expect("ranged");
    assert_eq!(ranged.status(), StatusCode::CONFLICT);
    let tar = tar_of(&s, &[&same, &grows]).await;
    assert_eq!(
        tar.status(),
        StatusCode::CONFLICT,
        "the archive is refused before it starts"
    );
    let body: Value = tar.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "STALE");

    // The same size but other bytes (a newer modification time) is a change too.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(root.join("same.txt"), b"UNCHANGED").expect("rewrite");
    assert_eq!(s.get(&format!("/v1/items/{same}/content")).await.code(), "STALE");

    // The next sync records what the files are now, and they download again.
    let job = sync(&s, &folder).await;
    assert_eq!(job["result"]["updated"], 2, "{job}");
    assert_eq!(s.bytes(&format!("/v1/items/{grows}/content")).await, b"short");
    assert_eq!(s.bytes(&format!("/v1/items/{same}/content")).await, b"UNCHANGED");
    let tar = tar_of(&s, &[&same, &grows]).await;
    assert_eq!(tar.status(), StatusCode::OK);
    let bytes = tar.bytes().await.expect("tar").to_vec();
    assert_eq!(
        tar_entries(&bytes),
        [
            ("same.txt".to_owned(), b"UNCHANGED".to_vec()),
            ("grows.txt".to_owned(), b"short".to_vec())
        ]
    );
}

async fn a_file_swapped_for_a_symlink_out_of_the_bucket_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).expect("bucket");
    std::fs::write(root.join("a.txt"), b"inside").expect("write");
    std::fs::write(root.join("b.txt"), b"fine").expect("write");
    std::fs::write(dir.path().join("secret.txt"), b"outside").expect("write");
    let Some((s, folder)) = mirrored(backend, &root).await else {
        return;
    };
    let a = item_titled(&s, &folder, "a.txt").await;
    let b = item_titled(&s, &folder, "b.txt").await;

    std::fs::remove_file(root.join("a.txt")).expect("remove");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("a.txt")).expect("symlink");
    let single = s.get(&format!("/v1/items/{a}/content")).await;
    assert_eq!(single.status, StatusCode::CONFLICT, "{:?}", single.body);
    assert!(single.message().contains("symlink"), "{}", single.message());
    assert!(!single.message().contains("outside\""), "never the target's bytes");
    let tar = tar_of(&s, &[&b, &a]).await;
    assert_eq!(tar.status(), StatusCode::CONFLICT);

    let job = sync(&s, &folder).await;
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["result"]["tombstoned"], 1, "{job}");
    let gone = s.get(&format!("/v1/items/{a}/content")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);
    assert_eq!(s.bytes(&format!("/v1/items/{b}/content")).await, b"fine");
}

/// A file that changes while it is streamed never reaches the client as if complete: truncated,
/// or rewritten in place at the same size, the transfer breaks off before its last bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_while_streamed_cuts_the_transfer_off() {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).expect("bucket");
    for name in ["cut.bin", "rewritten.bin", "in-tar.bin"] {
        std::fs::write(root.join(name), vec![7u8; SIZE]).expect("write");
    }
    let Some((s, folder)) = mirrored(Backend::Sqlite, &root).await else {
        return;
    };

    let single = |id: String| {
        s.request(Method::GET, &format!("/v1/items/{id}/content"), Some(&s.admin_key))
            .send()
    };
    let cut = item_titled(&s, &folder, "cut.bin").await;
    let rewritten = item_titled(&s, &folder, "rewritten.bin").await;
    let in_tar = item_titled(&s, &folder, "in-tar.bin").await;

    let change_cut = || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("cut.bin"))
            .expect("open");
        file.set_len(1 << 20).expect("truncate");
    };
    let change_rewritten = || {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("rewritten.bin"))
            .expect("open");
        file.seek(SeekFrom::Start((SIZE - 4096) as u64)).expect("seek");
        file.write_all(&[9u8; 4096]).expect("overwrite");
    };
    let change_in_tar = || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("in-tar.bin"))
            .expect("open");
        file.set_len(1 << 20).expect("truncate");
    };
    let transfers: [(reqwest::Response, &dyn Fn()); 3] = [
        (single(cut).await.expect("get"), &change_cut),
        (single(rewritten).await.expect("get"), &change_rewritten),
        (tar_of(&s, &[&in_tar]).await, &change_in_tar),
    ];
    for (mut response, change) in transfers {
        assert_eq!(response.status(), StatusCode::OK);
        let mut received = response.chunk().await.expect("first chunk").map_or(0, |c| c.len());
        change();
        let ended = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert!(
            ended.is_err(),
            "the transfer broke off (got {received} bytes and a clean end)"
        );
    }
}
