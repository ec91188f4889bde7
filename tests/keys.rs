//! Users and API keys over HTTP: users are records admins make; keys belong to users, carry a
//! label, a scope and an expiry, are listed without their secrets and revoked at once, on every
//! server of the deployment.

mod common;

use std::time::Duration;

use common::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;
use stowage::app;

async fn admins_record_users_and_everyone_knows_who_they_are(backend: Backend) {
    let s = server!(backend);
    let made = s.post("/v1/users", json!({"name": "alice"})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    assert_eq!(made.body["name"], "alice");
    assert_eq!(made.body["is_admin"], false);
    let again = s.post("/v1/users", json!({"name": "alice"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let bad = s.post("/v1/users", json!({"name": "a b"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().starts_with("name:"), "{}", bad.message());

    let alice = s.key_for("alice", false).await;
    assert_eq!(s.get_as(&alice, "/v1/users").await.status, StatusCode::FORBIDDEN);
    let refused = s
        .post_as(&alice, "/v1/users", json!({"name": "mallory", "is_admin": true}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let me = s.get_as(&alice, "/v1/users/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "alice");
    assert_eq!(me.body["is_admin"], false);
    assert_eq!(me.body["scope"], "write");
    assert!(me.body["key_id"].is_string());

    // The first admin and every earlier key's user are users; pages follow names.
    for name in ["bob", "carol", "dave"] {
        assert_eq!(
            s.post("/v1/users", json!({"name": name})).await.status,
            StatusCode::CREATED
        );
    }
    let first = s.get("/v1/users?page_size=2").await;
    assert_eq!(common::column(&first.body, "name"), ["admin", "alice"]);
    let token = first.body["next_page_token"].as_str().expect("more pages");
    let second = s.get(&format!("/v1/users?page_size=2&page_token={token}")).await;
    assert_eq!(common::column(&second.body, "name"), ["bob", "carol"]);
}

async fn keys_are_made_listed_scoped_and_revoked(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let _bob = s.key_for("bob", false).await;

    let made = s
        .post_as(&alice, "/v1/keys", json!({"name": "laptop", "scope": "read"}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let laptop = made.body["key"].as_str().expect("the secret, once").to_owned();
    let laptop_id = made.body["id"].as_str().expect("id").to_owned();
    assert!(laptop.starts_with("stw_"));
    let prefix = made.body["prefix"].as_str().expect("prefix");
    assert!(laptop.starts_with(prefix) && prefix.len() > "stw_".len(), "{prefix}");
    assert_eq!(made.body["user"], "alice");
    assert_eq!(made.body["scope"], "read");

    // Listed without secrets, newest first.
    let listed = s.get_as(&alice, "/v1/keys").await;
    assert_eq!(listed.status, StatusCode::OK);
    let keys = listed.body["items"].as_array().expect("array");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], laptop_id.as_str());
    assert_eq!(keys[0]["name"], "laptop");
    assert!(keys.iter().all(|k| k.get("key").is_none()), "no secret in a list");
    assert!(
        !listed.body.to_string().contains(&laptop[prefix.len()..]),
        "no secret anywhere"
    );

    // A read key reads, and refuses every change; a tar download is a read.
    assert_eq!(s.get_as(&laptop, "/v1/folders").await.status, StatusCode::OK);
    let change = s.post_as(&laptop, "/v1/folders", json!({"path": "/nope"})).await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    assert!(change.message().contains("may only read"), "{}", change.message());
    let download = s.post_as(&laptop, "/v1/items/download", json!({"item_ids": []})).await;
    assert_eq!(download.status, StatusCode::BAD_REQUEST, "{:?}", download.body);
    let revoke_with_read = s
        .send(Method::DELETE, &format!("/v1/keys/{laptop_id}"), Some(&laptop), None)
        .await;
    assert_eq!(revoke_with_read.status, StatusCode::FORBIDDEN);

    // Keys for others are for admins; unknown users are named.
    let for_bob = s.post_as(&alice, "/v1/keys", json!({"user": "bob"})).await;
    assert_eq!(for_bob.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get_as(&alice, "/v1/keys?user=bob").await.status,
        StatusCode::FORBIDDEN
    );
    let for_nobody = s.post("/v1/keys", json!({"user": "nobody"})).await;
    assert_eq!(for_nobody.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/keys?user=nobody").await.status, StatusCode::NOT_FOUND);
    let first = s.get("/v1/keys?user=alice&page_size=1").await;
    let token = first.body["next_page_token"].as_str().expect("a second page");
    let second = s
        .get(&format!("/v1/keys?user=alice&page_size=1&page_token={token}"))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let (one, two) = (common::column(&first.body, "id"), common::column(&second.body, "id"));
    assert_eq!((one.len(), two.len()), (1, 1), "{:?}", second.body);
    assert_ne!(one, two);
    let by_admin = s.post("/v1/keys", json!({"user": "alice", "name": "ci"})).await;
    assert_eq!(by_admin.status, StatusCode::CREATED);
    assert_eq!(
        s.get("/v1/keys?user=alice").await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let past = s
        .post_as(&alice, "/v1/keys", json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .await;
    assert_eq!(past.status, StatusCode::BAD_REQUEST);
    assert!(past.message().starts_with("expires_at:"), "{}", past.message());
    let unknown = s.post_as(&alice, "/v1/keys", json!({"scope": "admin"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // A use is recorded (in the background, at most once a minute).
    assert!(
        common::eventually_async(|| async {
            let keys = s.get_as(&alice, "/v1/keys").await.body;
            keys["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["id"] == laptop_id.as_str() && k["last_used_at"].is_string())
        })
        .await,
        "last_used_at is set after the key was used"
    );

    // Revoking: someone else's key does not exist for you; yours goes at once.
    let bob = s.key_for("bob", false).await;
    let path = format!("/v1/keys/{laptop_id}");
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&bob), None).await.status,
        StatusCode::NOT_FOUND
    );
    let revoked = s.send(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let refused = s.get_as(&laptop, "/v1/folders").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.message().contains("revoked"), "{}", refused.message());
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&alice), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get_as(&alice, "/v1/keys").await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

async fn an_expired_key_is_refused(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let made = s
        .post_as(&alice, "/v1/keys", json!({"expires_at": common::in_seconds(2)}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let short = made.body["key"].as_str().expect("key").to_owned();
    assert_eq!(s.get_as(&short, "/v1/users/me").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refused = s.get_as(&short, "/v1/users/me").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.message().contains("expired"), "{}", refused.message());
}

async fn a_revoked_key_is_refused_by_every_api_server(backend: Backend) {
    let s = server!(backend);
    // A second API process on the same database.
    let other = s
        .second_process(app::Roles {
            http: true,
            workers: false,
        })
        .await;
    let other_base = format!("http://{}", other.addr.expect("serves HTTP"));
    let alice = s.key_for("alice", false).await;
    let made = s.post_as(&alice, "/v1/keys", json!({"name": "shared"})).await;
    let key = made.body["key"].as_str().expect("key").to_owned();
    let id = made.body["id"].as_str().expect("id").to_owned();
    let http = reqwest::Client::new();
    let me_there = || http.get(format!("{other_base}/v1/users/me")).bearer_auth(&key).send();
    assert_eq!(me_there().await.expect("request").status(), StatusCode::OK);
    let revoked = s
        .send(Method::DELETE, &format!("/v1/keys/{id}"), Some(&alice), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me_there().await.expect("request").status(),
        StatusCode::UNAUTHORIZED,
        "the other server refuses it on the next request"
    );
    common::stop_running(other).await;
}

async fn keys_keep_their_rights_and_what_they_make_cannot_outlive_them(backend: Backend) {
    let s = server!(backend);
    // A key made for the admin user without --admin does not carry admin rights.
    let plain = s.key_for("admin", false).await;
    assert_eq!(s.get_as(&plain, "/v1/users/me").await.body["is_admin"], false);
    assert_eq!(s.get_as(&plain, "/v1/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get_as(&s.admin_key, "/v1/users").await.status, StatusCode::OK);

    // A key made with an expiring key expires with it at the latest.
    let alice = s.key_for("alice", false).await;
    let until = common::in_seconds(3600);
    let short = s.post_as(&alice, "/v1/keys", json!({"expires_at": until})).await;
    let short_key = short.body["key"].as_str().expect("key").to_owned();
    let child = s.post_as(&short_key, "/v1/keys", json!({"name": "child"})).await;
    assert_eq!(child.status, StatusCode::CREATED, "{:?}", child.body);
    assert_eq!(
        child.body["expires_at"], short.body["expires_at"],
        "inherits the expiry"
    );
    let later = s
        .post_as(&short_key, "/v1/keys", json!({"expires_at": common::in_seconds(7200)}))
        .await;
    assert_eq!(later.status, StatusCode::BAD_REQUEST);
    assert!(later.message().contains("cannot outlive it"), "{}", later.message());

    // At most 100 working keys per user.
    let have = s.get_as(&alice, "/v1/keys").await.body["items"]
        .as_array()
        .map_or(0, Vec::len);
    for _ in have..100 {
        assert_eq!(
            s.post_as(&alice, "/v1/keys", json!({})).await.status,
            StatusCode::CREATED
        );
    }
    let over = s.post_as(&alice, "/v1/keys", json!({})).await;
    assert_eq!(over.status, StatusCode::CONFLICT);
    assert!(over.message().contains("revoke some"), "{}", over.message());
}

on_both_backends!(
    admins_record_users_and_everyone_knows_who_they_are,
    keys_keep_their_rights_and_what_they_make_cannot_outlive_them,
    keys_are_made_listed_scoped_and_revoked,
    an_expired_key_is_refused,
    a_revoked_key_is_refused_by_every_api_server,
);
