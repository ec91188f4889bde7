//! Signed URLs of items' content: the daemon's own (`/o/…`, local buckets) serve the content
//! with its headers and ranges to anyone holding one, refuse expired, altered and foreign ones
//! alike, work on every process of a deployment and only for callers who may read the item;
//! list pages carry them on request; cloud buckets hand out their own presigned URLs.

mod common;

use common::buckets::Fixture;
use common::{Backend, TestServer, id, media};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stowage::domain::signed_url::{Grant, sign};

on_both_backends!(
    daemon_urls_serve_content_to_anyone_holding_them_until_they_expire,
    only_readers_get_urls_and_lists_carry_them_on_request,
);

/// `GET /v1/items/{id}/url` as `key`, with `query`.
async fn url_of(s: &TestServer, key: &str, item: &str, query: &str) -> common::Answer {
    s.send(Method::GET, &format!("/v1/items/{item}/url{query}"), Some(key), None)
        .await
}

/// GETs `url` with no API key and optional extra headers.
async fn fetch(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("get")
}

async fn daemon_urls_serve_content_to_anyone_holding_them_until_they_expire(backend: Backend) {
    let s = server!(backend);
    let f = s.folder("/shared").await;
    let png = media::png(20, 10);
    let item = s.upload_ok(&f, "cat & dog.png", png.clone()).await;
    let answer = url_of(&s, &s.admin_key, &id(&item), "").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let url = answer.body["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(&format!("{}/o/", s.base)), "{url}");
    let expires_at = time::OffsetDateTime::parse(
        answer.body["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        (expires_at - in_an_hour).abs() < time::Duration::seconds(5),
        "{expires_at}"
    );

    // No API key: the content, with the download's headers.
    let whole = fetch(&url, &[]).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "image/png");
    let etag = whole.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", item["checksum"].as_str().expect("checksum")));
    assert_eq!(
        whole.headers()["content-disposition"],
        "inline; filename*=UTF-8''cat%20%26%20dog.png"
    );
    assert!(whole.bytes().await.expect("body") == png);
    let part = fetch(&url, &[("Range", "bytes=1-4")]).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert!(part.bytes().await.expect("body") == png[1..=4]);
    let same = fetch(&url, &[("If-None-Match", &etag)]).await;
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);

    // Altered, foreign and expired URLs: 403, saying nothing of the item.
    let (prefix, token) = url.split_once("/o/").expect("token");
    let (payload, signature) = token.split_once('.').expect("two parts");
    let mut flipped = payload.as_bytes().to_vec();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let altered = format!("{prefix}/o/{}.{signature}", String::from_utf8(flipped).expect("ascii"));
    let foreign_grant = Grant {
        bucket: "managed".into(),
        key: item["object_key"].as_str().expect("key").into(),
        size: png.len() as i64,
        checksum: None,
        fingerprint: None,
        mime_type: "image/png".into(),
        file_name: "x.png".into(),
        expires: expires_at.unix_timestamp(),
        upload: false,
    };
    let foreign = format!(
        "{prefix}/o/{}",
        sign(b"not this catalog's secret at all!", &foreign_grant)
    );
    for refused in [
        altered,
        foreign,
        format!("{prefix}/o/nonsense"),
        format!("{prefix}/o/{payload}"),
    ] {
        let answer = fetch(&refused, &[]).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{refused}");
        let body: Value = answer.json().await.expect("json");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(message, "this is not a valid signed URL; ask for a new one");
    }
    let short = url_of(&s, &s.admin_key, &id(&item), "?expires_in=1").await;
    let short_url = short.body["url"].as_str().expect("url").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = fetch(&short_url, &[]).await;
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    let body: Value = expired.json().await.expect("json");
    assert_eq!(body["error"]["message"], "this signed URL expired; ask for a new one");

    // Bounds of expires_in.
    for bad in ["?expires_in=0", "?expires_in=604801", "?expires_in=soon"] {
        let answer = url_of(&s, &s.admin_key, &id(&item), bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.message().contains("expires_in"), "{}", answer.message());
    }
    let longest = url_of(&s, &s.admin_key, &id(&item), "?expires_in=604800").await;
    assert_eq!(longest.status, StatusCode::OK);

    // Another process of the same deployment checks the URLs this one signed.
    let other = s
        .second_process(stowage::app::Roles {
            http: true,
            workers: false,
        })
        .await;
    let other_base = format!("http://{}", other.addr.expect("serves HTTP"));
    let there = url.replacen(&s.base, &other_base, 1);
    let served = fetch(&there, &[]).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert!(served.bytes().await.expect("body") == png);
    common::stop_running(other).await;

    // The content gone for good: the URL finds nothing.
    s.delete(&format!("/v1/items/{}?permanent=true", id(&item))).await;
    assert_eq!(fetch(&url, &[]).await.status(), StatusCode::NOT_FOUND);
}

async fn only_readers_get_urls_and_lists_carry_them_on_request(backend: Backend) {
    let s = server!(backend);
    let f = s.folder("/private").await;
    s.patch(&format!("/v1/folders/{f}"), json!({"visibility": "private"}))
        .await;
    let a = s.upload_ok(&f, "a.txt", b"first".to_vec()).await;
    s.upload_ok(&f, "b.txt", b"second".to_vec()).await;
    let bob = s.key_for("bob", false).await;
    let denied = url_of(&s, &bob, &id(&a), "").await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND, "bob may not know it exists");
    let unknown = url_of(&s, &s.admin_key, &uuid::Uuid::new_v4().to_string(), "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.send(Method::GET, &format!("/v1/items/{}/url", id(&a)), None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let plain = s.get(&format!("/v1/folders/{f}/items")).await;
    assert!(plain.body["items"][0].get("signed_url").is_none(), "{}", plain.body);
    let listed = s.get(&format!("/v1/folders/{f}/items?signed_urls=true")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for (listed, body) in items.iter().zip([&b"first"[..], &b"second"[..]]) {
        let url = listed["signed_url"].as_str().expect("signed_url");
        assert!(fetch(url, &[]).await.bytes().await.expect("body") == body);
    }
}

/// A server over SQLite whose managed bucket is `fixture`.
async fn on(fixture: Option<Fixture>) -> Option<TestServer> {
    TestServer::start_over(Backend::Sqlite, Some(fixture?), |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_items_get_presigned_urls_of_the_bucket() {
    let Some(s) = on(Fixture::s3().await).await else { return };
    let f = s.folder("/s3").await;
    let item = s.upload_ok(&f, "notes.txt", b"from the bucket".to_vec()).await;
    let answer = url_of(&s, &s.admin_key, &id(&item), "?expires_in=600").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let url = answer.body["url"].as_str().expect("url");
    // moto checks neither signatures nor expiry (TESTING.md): check the URL's form, then that
    // the store serves it with the item's type.
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.contains("/o/"), "the bucket's own URL, not the daemon's: {url}");
    for part in [
        "X-Amz-Signature=",
        "X-Amz-Expires=600",
        "response-content-type=text%2Fplain",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    let got = fetch(url, &[]).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        got.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    assert!(got.bytes().await.expect("body") == b"from the bucket"[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_items_get_shared_access_signatures() {
    let Some(s) = on(Fixture::azure("stowage-sync")).await else {
        return;
    };
    let f = s.folder("/az").await;
    let item = s.upload_ok(&f, "notes.txt", b"from the container".to_vec()).await;
    let answer = url_of(&s, &s.admin_key, &id(&item), "").await;
    let url = answer.body["url"].as_str().expect("url");
    assert!(url.contains("sig=") && url.contains("se="), "a SAS: {url}");
    // Azurite checks the signature: an altered one is refused, the real one serves.
    let got = fetch(url, &[]).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.expect("body") == b"from the container"[..]);
    let altered = url.replacen("sig=", "sig=A", 1);
    assert_eq!(fetch(&altered, &[]).await.status(), StatusCode::FORBIDDEN);
}
