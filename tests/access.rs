//! Authentication and ownership between users, on SQLite and PostgreSQL.

mod common;

use common::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends!(
    internal_folders_are_read_by_every_user_and_changed_by_their_owner,
    requests_without_a_valid_key_are_401,
    private_public_and_admin_access,
    listing_shows_only_visible_folders
);

async fn requests_without_a_valid_key_are_401(backend: Backend) {
    let s = server!(backend);
    for key in [None, Some("stw_not-a-real-key")] {
        let answer = s.send(Method::GET, "/v1/folders", key, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(answer.code(), "UNAUTHENTICATED");
    }
    let raw = reqwest::Client::new()
        .get(format!("{}/v1/folders", s.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);
    // The first admin key is in a file only its owner can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data_dir.join("admin.key"))
            .expect("admin.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Operational routes need no key.
    assert_eq!(s.send(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(s.send(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
}

async fn private_public_and_admin_access(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    let mkdir = |key: String, body: serde_json::Value| {
        let s = &s;
        async move { s.send(Method::POST, "/v1/folders", Some(&key), Some(body)).await }
    };
    let private = mkdir(alice.clone(), json!({"path": "/alice-private"})).await;
    assert_eq!(private.status, StatusCode::CREATED);
    assert_eq!(private.body["owner"], "alice");
    let public = mkdir(alice.clone(), json!({"path": "/alice-public", "visibility": "public"})).await;
    let private_url = format!("/v1/folders/{}", private.body["id"].as_str().expect("id"));
    let public_url = format!("/v1/folders/{}", public.body["id"].as_str().expect("id"));

    // Bob cannot learn the private folder exists: every route is 404, as for a missing folder.
    for (method, url, body) in [
        (Method::GET, private_url.clone(), None),
        (Method::PATCH, private_url.clone(), Some(json!({"description": "x"}))),
        (Method::DELETE, private_url.clone(), None),
        (Method::GET, format!("{private_url}/summary"), None),
        (
            Method::POST,
            format!("{private_url}/move"),
            Some(json!({"parent_id": null})),
        ),
        (Method::GET, "/v1/folders?path=/alice-private".to_owned(), None),
    ] {
        let answer = s.send(method.clone(), &url, Some(&bob), body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {url}");
    }
    let inside = mkdir(bob.clone(), json!({"path": "/alice-private/sneaky"})).await;
    assert_eq!(inside.status, StatusCode::NOT_FOUND);
    let inside_deep = mkdir(
        bob.clone(),
        json!({"path": "/alice-private/a/b", "create_parents": true}),
    )
    .await;
    assert_eq!(inside_deep.status, StatusCode::NOT_FOUND);

    // The public folder reads but does not write.
    assert_eq!(
        s.send(Method::GET, &public_url, Some(&bob), None).await.status,
        StatusCode::OK
    );
    let write_attempts = [
        (
            Method::PATCH,
            public_url.clone(),
            Some(json!({"description": "mine now"})),
        ),
        (Method::DELETE, public_url.clone(), None),
        (
            Method::POST,
            format!("{public_url}/move"),
            Some(json!({"parent_id": null})),
        ),
        (
            Method::POST,
            "/v1/folders".to_owned(),
            Some(json!({"path": "/alice-public/bobs"})),
        ),
        (
            Method::POST,
            "/v1/folders".to_owned(),
            Some(json!({"path": "/alice-public/x/y", "create_parents": true})),
        ),
        (
            Method::POST,
            "/v1/folders".to_owned(),
            Some(json!({"parent_id": public.body["id"], "name": "z"})),
        ),
    ];
    for (method, url, body) in write_attempts {
        let answer = s.send(method.clone(), &url, Some(&bob), body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {url}: {:?}",
            answer.body
        );
        assert!(answer.message().contains("alice"), "{}", answer.message());
    }
    let unchanged = s.send(Method::GET, &public_url, Some(&alice), None).await;
    assert_eq!(unchanged.body["description"], "");
    assert_eq!(
        unchanged.body["subfolder_count"], 0,
        "no folder was created inside by bob"
    );

    // Bob cannot move his own folder into Alice's folders either.
    let bobs = mkdir(bob.clone(), json!({"path": "/bobs"})).await;
    let bobs_move = format!("/v1/folders/{}/move", bobs.body["id"].as_str().expect("id"));
    let into_public = s
        .send(
            Method::POST,
            &bobs_move,
            Some(&bob),
            Some(json!({"parent_id": public.body["id"]})),
        )
        .await;
    assert_eq!(into_public.status, StatusCode::FORBIDDEN);
    let into_private = s
        .send(
            Method::POST,
            &bobs_move,
            Some(&bob),
            Some(json!({"parent_id": private.body["id"]})),
        )
        .await;
    assert_eq!(into_private.status, StatusCode::NOT_FOUND);

    // Admins see and change everything.
    assert_eq!(s.get(&private_url).await.status, StatusCode::OK);
    let admin_patch = s.patch(&private_url, json!({"description": "by admin"})).await;
    assert_eq!(admin_patch.status, StatusCode::OK);
    let second_admin = s.key_for("ops", true).await;
    assert_eq!(
        s.send(Method::GET, &private_url, Some(&second_admin), None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn listing_shows_only_visible_folders(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    for (key, body) in [
        (&alice, json!({"path": "/a-private"})),
        (&alice, json!({"path": "/a-public", "visibility": "public"})),
        (&bob, json!({"path": "/b-private"})),
    ] {
        assert_eq!(
            s.send(Method::POST, "/v1/folders", Some(key), Some(body)).await.status,
            StatusCode::CREATED
        );
    }
    let names = |answer: common::Answer| common::column(&answer.body, "name");
    assert_eq!(
        names(s.send(Method::GET, "/v1/folders", Some(&bob), None).await),
        ["a-public", "b-private"]
    );
    assert_eq!(
        names(
            s.send(Method::GET, "/v1/folders?recursive=true", Some(&alice), None)
                .await
        ),
        ["a-private", "a-public"]
    );
    assert_eq!(
        names(s.get("/v1/folders").await),
        ["a-private", "a-public", "b-private"]
    );
}

async fn internal_folders_are_read_by_every_user_and_changed_by_their_owner(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    let made = s
        .send(
            Method::POST,
            "/v1/folders",
            Some(&alice),
            Some(json!({"path": "/team", "visibility": "internal"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    assert_eq!(made.body["visibility"], "internal");
    let folder = made.body["id"].as_str().expect("id").to_owned();
    let item = s.upload_as(&alice, &folder, "plan.txt", b"plan".to_vec(), &[]).await;
    assert_eq!(item.status, StatusCode::CREATED);

    // Bob reads the folder, lists it among the root's, lists and downloads its items.
    let read = s
        .send(Method::GET, &format!("/v1/folders/{folder}"), Some(&bob), None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let root = s.send(Method::GET, "/v1/folders", Some(&bob), None).await;
    assert_eq!(common::column(&root.body, "path"), ["/team"]);
    let items = s
        .send(Method::GET, &format!("/v1/folders/{folder}/items"), Some(&bob), None)
        .await;
    assert_eq!(common::column(&items.body, "title"), ["plan.txt"]);
    let item_id = item.body["id"].as_str().expect("id");
    let content = s
        .request(Method::GET, &format!("/v1/items/{item_id}/content"), Some(&bob))
        .send()
        .await;
    assert_eq!(content.expect("download").status(), StatusCode::OK);
    // He cannot change it.
    let change = s
        .send(
            Method::PATCH,
            &format!("/v1/folders/{folder}"),
            Some(&bob),
            Some(json!({"description": "mine now"})),
        )
        .await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    let upload = s.upload_as(&bob, &folder, "x.txt", b"x".to_vec(), &[]).await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN);
    // Back to private: gone for Bob, as if it never existed.
    let private = s
        .send(
            Method::PATCH,
            &format!("/v1/folders/{folder}"),
            Some(&alice),
            Some(json!({"visibility": "private"})),
        )
        .await;
    assert_eq!(private.status, StatusCode::OK);
    let hidden = s
        .send(Method::GET, &format!("/v1/folders/{folder}"), Some(&bob), None)
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
}
