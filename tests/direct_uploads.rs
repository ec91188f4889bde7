//! Direct uploads: a session's URL takes the file (the daemon's own `/o/…` on a local bucket, the
//! store's presigned PUT on S3 and Azure), completing it makes the item from what was uploaded
//! (read once: size, blake3, type), and every way it can go wrong leaves nothing behind.

mod common;

use common::buckets::Fixture;
use common::{Backend, TestServer, id, media};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    a_file_put_to_its_session_url_becomes_an_item_on_completion,
    wrong_sizes_early_completes_aborts_and_strangers_leave_nothing,
);

/// Opens a direct upload into `folder` as `key`.
async fn start(s: &TestServer, key: &str, folder: &str, body: Value) -> common::Answer {
    s.send(
        Method::POST,
        &format!("/v1/folders/{folder}/uploads"),
        Some(key),
        Some(body),
    )
    .await
}

/// PUTs `bytes` to a session's URL with its headers, no API key.
async fn put(session: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .put(session["url"].as_str().expect("url"))
        .body(bytes);
    for (name, value) in session["headers"].as_object().expect("headers") {
        req = req.header(name.as_str(), value.as_str().expect("header value"));
    }
    req.send().await.expect("put")
}

async fn complete(s: &TestServer, key: &str, session: &Value) -> common::Answer {
    complete_parts(s, key, session, None).await
}

/// Completes `session` as `key`, naming `parts` (number and ETag) when given.
async fn complete_parts(s: &TestServer, key: &str, session: &Value, parts: Option<Value>) -> common::Answer {
    let path = format!("/v1/uploads/{}/complete", id(session));
    s.send(
        Method::POST,
        &path,
        Some(key),
        parts.map(|parts| json!({ "parts": parts })),
    )
    .await
}

async fn a_file_put_to_its_session_url_becomes_an_item_on_completion(backend: Backend) {
    let s = server!(backend);
    let f = s.folder("/direct").await;
    let png = media::png(30, 20);
    let session = start(
        &s,
        &s.admin_key,
        &f,
        json!({"title": "shot.png", "size": png.len(), "client_metadata": {"camera": 2}}),
    )
    .await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    let session = session.body;
    assert_eq!(session["method"], "PUT");
    assert!(
        session["url"]
            .as_str()
            .expect("url")
            .starts_with(&format!("{}/o/", s.base))
    );
    assert_eq!(session["headers"], json!({}));
    // Reading with the upload's URL is refused, like any URL that is not a read's.
    let read = reqwest::get(session["url"].as_str().expect("url")).await.expect("get");
    assert_eq!(read.status(), StatusCode::FORBIDDEN);

    let stored = put(&session, png.clone()).await;
    assert_eq!(stored.status(), StatusCode::OK);
    let stored: Value = stored.json().await.expect("json");
    let checksum = blake3::hash(&png).to_hex().to_string();
    assert_eq!(stored, json!({"size": png.len(), "checksum": checksum}));

    // The orphan sweep leaves an open session's file alone, however old.
    s.services()
        .items
        .sweep_orphans(std::time::Duration::ZERO)
        .await
        .expect("sweep");
    let item = complete(&s, &s.admin_key, &session).await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    let item = item.body;
    assert_eq!(item["title"], "shot.png");
    assert_eq!(item["size"], png.len());
    assert_eq!(item["checksum"], checksum.as_str());
    assert_eq!(item["item_type"], "IMAGE");
    assert_eq!(
        (item["media"]["width"].clone(), item["media"]["height"].clone()),
        (json!(30), json!(20))
    );
    assert_eq!(item["client_metadata"], json!({"camera": 2}));
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&item))).await == png);
    let again = complete(&s, &s.admin_key, &session).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a session completes once");

    // The session's conflict strategy: `new` finds a free title, `error` refuses and cleans up.
    let second = start(
        &s,
        &s.admin_key,
        &f,
        json!({"title": "shot.png", "size": 3, "conflict_strategy": "new"}),
    )
    .await;
    put(&second.body, b"abc".to_vec()).await;
    let renamed = complete(&s, &s.admin_key, &second.body).await;
    assert_eq!(renamed.status, StatusCode::CREATED);
    assert_eq!(renamed.body["title"], "shot (1).png");
    // A title taken already is refused before the file is sent...
    let early = start(&s, &s.admin_key, &f, json!({"title": "shot.png", "size": 3})).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    assert!(early.message().contains("conflict_strategy"), "{}", early.message());
    // ...and one taken while the file was on its way, at completion.
    let clash = start(&s, &s.admin_key, &f, json!({"title": "late.png", "size": 3})).await;
    assert_eq!(clash.status, StatusCode::CREATED, "{:?}", clash.body);
    s.upload_ok(&f, "late.png", b"taken meanwhile".to_vec()).await;
    put(&clash.body, b"xyz".to_vec()).await;
    let refused = complete(&s, &s.admin_key, &clash.body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        common::eventually_async(|| async { s.object_keys().await.len() == 3 }).await,
        "the refused file is removed: {:?}",
        s.object_keys().await
    );

    // The session's URL stays valid until it expires, but no longer reaches the item.
    overwrite_after_completion(&s, &session, &item, &png).await;
}

/// PUTs other bytes of the same size to a completed session's URL: the item keeps its content.
async fn overwrite_after_completion(s: &TestServer, session: &Value, item: &Value, content: &[u8]) {
    let other: Vec<u8> = content.iter().map(|b| b ^ 0xff).collect();
    put(session, other).await;
    let content_path = format!("/v1/items/{}/content", id(item));
    assert!(
        s.bytes(&content_path).await == content,
        "the item's content is what was completed"
    );
}

async fn wrong_sizes_early_completes_aborts_and_strangers_leave_nothing(backend: Backend) {
    let s = server!(backend, |settings: &mut stowage::config::Settings| {
        settings.server.max_upload_bytes = 1000;
    });
    let f = s.folder("/careful").await;
    let open = |size: usize| start(&s, &s.admin_key, &f, json!({"title": "f.bin", "size": size}));

    let early = open(4).await.body;
    let answer = complete(&s, &s.admin_key, &early).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(
        answer.message().contains("nothing was uploaded"),
        "{}",
        answer.message()
    );
    let short = put(&early, b"abc".to_vec()).await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let long = put(&early, b"abcde".to_vec()).await;
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    let body: Value = long.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4 bytes"),
        "{body}"
    );
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);

    // Strangers: another user neither completes nor aborts it; a viewer cannot start one.
    put(&early, b"abcd".to_vec()).await;
    let bob = s.key_for("bob", false).await;
    assert_eq!(complete(&s, &bob, &early).await.status, StatusCode::NOT_FOUND);
    let abort_path = format!("/v1/uploads/{}", id(&early));
    assert_eq!(
        s.send(Method::DELETE, &abort_path, Some(&bob), None).await.status,
        StatusCode::NOT_FOUND
    );
    s.patch(&format!("/v1/folders/{f}"), json!({"visibility": "public"}))
        .await;
    let viewer = start(&s, &bob, &f, json!({"title": "b.bin", "size": 1})).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{:?}", viewer.body);

    // Aborting removes the file; the session is gone.
    assert_eq!(s.delete(&abort_path).await.status, StatusCode::NO_CONTENT);
    assert!(s.object_keys().await.is_empty());
    assert_eq!(complete(&s, &s.admin_key, &early).await.status, StatusCode::NOT_FOUND);

    // Bad sessions are 4xx that say what to change.
    let over = open(1001).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(over.message().contains("max_upload_bytes"), "{}", over.message());
    let bad_title = start(&s, &s.admin_key, &f, json!({"title": "a/b", "size": 1})).await;
    assert_eq!(bad_title.status, StatusCode::BAD_REQUEST);
    let unknown = start(&s, &s.admin_key, &f, json!({"title": "a", "size": 1, "colour": 1})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // A file of the announced size that changed size afterwards is refused at completion.
    let sized = open(4).await.body;
    put(&sized, b"abcd".to_vec()).await;
    if s.managed_is_local() {
        let key = s.object_keys().await.pop().expect("the upload");
        std::fs::write(s.objects_dir().join(&key), b"abcdef").expect("rewrite");
        let refused = complete(&s, &s.admin_key, &sized).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.message().contains("announced 4"), "{}", refused.message());
        assert!(s.object_keys().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_swept_with_their_files() {
    let s = server!(Backend::Sqlite, |settings: &mut stowage::config::Settings| {
        settings.signed_urls.upload_seconds = 1;
    });
    let f = s.folder("/late").await;
    let session = start(&s, &s.admin_key, &f, json!({"title": "late.bin", "size": 2}))
        .await
        .body;
    assert_eq!(put(&session, b"hi".to_vec()).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        put(&session, b"hi".to_vec()).await.status(),
        StatusCode::FORBIDDEN,
        "the URL expired"
    );
    let swept = s.services().items.sweep_expired_uploads().await.expect("sweep");
    assert_eq!(swept, 1);
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
    assert_eq!(complete(&s, &s.admin_key, &session).await.status, StatusCode::NOT_FOUND);
}

/// Uploads straight into a cloud managed bucket through the store's presigned PUT.
async fn straight_into(fixture: Option<Fixture>, headers: Value) {
    let Some(fixture) = fixture else { return };
    let Some(s) = TestServer::start_over(Backend::Sqlite, Some(fixture), |_| {}).await else {
        return;
    };
    let f = s.folder("/cloud").await;
    let bytes = b"straight into the bucket".to_vec();
    let session = start(&s, &s.admin_key, &f, json!({"title": "notes.txt", "size": bytes.len()})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    let session = session.body;
    let url = session["url"].as_str().expect("url");
    assert!(!url.contains("/o/"), "the store's URL: {url}");
    assert_eq!(session["headers"], headers);
    let stored = put(&session, bytes.clone()).await;
    assert!(stored.status().is_success(), "{}", stored.status());
    let item = complete(&s, &s.admin_key, &session).await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    assert_eq!(item.body["checksum"], blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(item.body["item_type"], "PLAIN_TEXT");
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&item.body))).await == bytes);
    overwrite_after_completion(&s, &session, &item.body, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_go_straight_into_the_bucket() {
    straight_into(Fixture::s3().await, json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_uploads_go_straight_into_the_container() {
    straight_into(Fixture::azure("stowage-sync"), json!({"x-ms-blob-type": "BlockBlob"})).await;
}

/// A file larger than `signed_urls.upload_part_bytes` goes in parts, each PUT straight into the
/// store at a URL of its own, in any order; completing assembles them (with the ETags on S3).
async fn in_parts(fixture: Option<Fixture>) {
    const MIB: usize = 1 << 20;
    let Some(fixture) = fixture else { return };
    let Some(s) = TestServer::start_over(Backend::Sqlite, Some(fixture), |settings| {
        settings.signed_urls.upload_part_bytes = 5 * MIB as u64;
    })
    .await
    else {
        return;
    };
    let s3 = s.managed().settings().url.starts_with("s3://");
    let f = s.folder("/parts").await;
    let bytes: Vec<u8> = (0..(12 * MIB / 4) as u32).flat_map(u32::to_le_bytes).collect();
    let session = start(&s, &s.admin_key, &f, json!({"title": "big.bin", "size": bytes.len()})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    let session = session.body;
    assert!(session["url"].is_null(), "{session}");
    assert_eq!(session["headers"], json!({}));
    let parts = session["parts"].as_array().expect("parts").clone();
    let layout: Vec<(u64, u64, u64)> = parts
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().expect("number"),
                p["offset"].as_u64().expect("offset"),
                p["size"].as_u64().expect("size"),
            )
        })
        .collect();
    let mib = MIB as u64;
    assert_eq!(layout, [(1, 0, 5 * mib), (2, 5 * mib, 5 * mib), (3, 10 * mib, 2 * mib)]);

    let put_part = |part: &Value, content: &[u8]| {
        reqwest::Client::new()
            .put(part["url"].as_str().expect("part url"))
            .body(content.to_vec())
            .send()
    };
    let mut sent = Vec::new();
    for part in parts.iter().rev() {
        let offset = part["offset"].as_u64().expect("offset") as usize;
        let size = part["size"].as_u64().expect("size") as usize;
        let stored = put_part(part, &bytes[offset..offset + size]).await.expect("put part");
        assert!(
            stored.status().is_success(),
            "part {}: {}",
            part["number"],
            stored.status()
        );
        let etag = stored
            .headers()
            .get("etag")
            .map(|v| v.to_str().expect("ascii").to_owned());
        sent.push(json!({"number": part["number"], "etag": etag.unwrap_or_default()}));
    }
    if s3 {
        // Every part must be named once, with the ETag its PUT answered; the session stays open.
        let missing = complete(&s, &s.admin_key, &session).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{:?}", missing.body);
        assert!(
            missing.message().contains("each of the 3 parts"),
            "{}",
            missing.message()
        );
        let mut wrong = sent.clone();
        wrong[0]["etag"] = json!("\"0123456789abcdef0123456789abcdef\"");
        let refused = complete_parts(&s, &s.admin_key, &session, Some(json!(wrong))).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
        assert!(
            refused.message().contains("could not assemble"),
            "{}",
            refused.message()
        );
    }
    let named = s3.then(|| json!(sent));
    let item = complete_parts(&s, &s.admin_key, &session, named.clone()).await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    assert_eq!(item.body["size"], bytes.len());
    assert_eq!(item.body["checksum"], blake3::hash(&bytes).to_hex().as_str());
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&item.body))).await == bytes);
    assert_eq!(s.object_keys().await.len(), 1, "{:?}", s.object_keys().await);

    // A part's URL, still unexpired, no longer changes the item: S3's ended with its upload;
    // Azure's SAS still writes the blob it names (here as a whole blob), but the item moved.
    let again = put_part(&parts[0], &vec![b'x'; 5 * MIB]).await.expect("put again");
    if s3 {
        // S3 answers 404 NoSuchUpload; moto an error of its own.
        assert!(!again.status().is_success(), "the upload is over: {}", again.status());
    } else {
        let mut whole_blob = url::Url::parse(parts[0]["url"].as_str().expect("url")).expect("url");
        let sas: Vec<(String, String)> = whole_blob
            .query_pairs()
            .filter(|(k, _)| k != "comp" && k != "blockid")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        whole_blob.query_pairs_mut().clear().extend_pairs(sas);
        let overwritten = reqwest::Client::new()
            .put(whole_blob)
            .header("x-ms-blob-type", "BlockBlob")
            .body(b"overwritten".to_vec())
            .send()
            .await
            .expect("put blob");
        assert!(overwritten.status().is_success(), "{}", overwritten.status());
    }
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&item.body))).await == bytes);
    assert_eq!(
        complete_parts(&s, &s.admin_key, &session, named).await.status,
        StatusCode::NOT_FOUND
    );

    // An aborted session leaves no unfinished multipart upload behind.
    let aborted = start(&s, &s.admin_key, &f, json!({"title": "gone.bin", "size": bytes.len()}))
        .await
        .body;
    let stored = put_part(&aborted["parts"][0], &bytes[..5 * MIB])
        .await
        .expect("put part");
    assert!(stored.status().is_success());
    let gone = s
        .send(
            Method::DELETE,
            &format!("/v1/uploads/{}", id(&aborted)),
            Some(&s.admin_key),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    if s3 {
        assert_eq!(s.managed().unfinished_uploads().await, 0);
        assert_eq!(s.object_keys().await.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_uploads_go_in_parts() {
    in_parts(Fixture::s3().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_large_uploads_go_in_blocks() {
    in_parts(Fixture::azure("stowage-sync")).await;
}
