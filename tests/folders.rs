//! Folder API through HTTP, on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use common::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    create_by_path_and_by_parent,
    create_rejects_bad_input_and_writes_nothing,
    pages_250_folders_without_loss_or_repeat,
    search_and_recursive_listing,
    concurrent_creates_of_one_path_yield_one_folder,
    rename_moves_a_deep_subtree,
    rename_onto_a_taken_path_changes_nothing,
    move_between_parents_and_to_root,
    delete_needs_recursive_for_non_empty_folders,
    summary_counts_subfolders,
    patch_updates_attributes,
    names_are_stored_nfc_and_misleading_ones_refused,
    text_with_a_nul_character_is_refused_on_both_databases,
    item_counts_follow_every_change_and_the_recount_corrects_them,
    item_writers_that_lock_in_opposite_orders_do_not_deadlock,
);

fn id(folder: &Value) -> &str {
    folder["id"].as_str().expect("id")
}

async fn create_by_path_and_by_parent(backend: Backend) {
    let s = server!(backend);
    let created = s
        .post(
            "/v1/folders",
            json!({"path": "/data/cats", "create_parents": true, "description": "cats", "client_metadata": {"k": 1}, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let cats = created.body;
    assert_eq!(cats["path"], "/data/cats");
    assert_eq!(cats["name"], "cats");
    assert_eq!(cats["description"], "cats");
    assert_eq!(cats["client_metadata"], json!({"k": 1}));
    assert_eq!(cats["ttl_seconds"], 60);
    assert_eq!(cats["visibility"], "private");
    assert_eq!(cats["owner"], "admin");
    assert_eq!(cats["path_to_root"].as_array().map(Vec::len), Some(1));
    assert_eq!(cats["path_to_root"][0]["name"], "data");

    let data = s.get("/v1/folders?path=/data").await;
    assert_eq!(data.status, StatusCode::OK);
    assert_eq!(data.body["subfolder_count"], 1);
    assert_eq!(cats["parent_id"], data.body["id"]);

    // By parent + name.
    let dogs = s
        .post("/v1/folders", json!({"parent_id": data.body["id"], "name": "dogs"}))
        .await;
    assert_eq!(dogs.status, StatusCode::CREATED, "{:?}", dogs.body);
    assert_eq!(dogs.body["path"], "/data/dogs");
    // At the root by name alone.
    let top = s.post("/v1/folders", json!({"name": "top"})).await;
    assert_eq!(top.body["path"], "/top");
    assert_eq!(top.body["parent_id"], Value::Null);

    // Get by id returns the same folder.
    let fetched = s.get(&format!("/v1/folders/{}", id(&cats))).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, cats);

    // The same path again is a conflict; a missing parent without create_parents is 404.
    let again = s.post("/v1/folders", json!({"path": "/data/cats"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.message().contains("/data/cats"), "{}", again.message());
    let orphan = s.post("/v1/folders", json!({"path": "/nowhere/x"})).await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert!(orphan.message().contains("create_parents"), "{}", orphan.message());
    let missing_parent = s
        .post("/v1/folders", json!({"parent_id": uuid::Uuid::new_v4(), "name": "x"}))
        .await;
    assert_eq!(missing_parent.status, StatusCode::NOT_FOUND);

    // Unknown ids and paths are 404, malformed ids 400.
    assert_eq!(
        s.get(&format!("/v1/folders/{}", uuid::Uuid::new_v4())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get("/v1/folders?path=/nope").await.status, StatusCode::NOT_FOUND);
    let bad_id = s.get("/v1/folders/not-a-uuid").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert!(bad_id.message().contains("not-a-uuid"));
}

async fn create_rejects_bad_input_and_writes_nothing(backend: Backend) {
    // A small body limit, so the oversized body below fits in socket buffers and the client reads
    // the 413 instead of a reset connection.
    let s = server!(backend, |settings| settings.server.max_body_bytes = 4096);
    let long = format!("/{}", "x".repeat(1030));
    let cases = [
        (json!({"path": "/a/../b", "create_parents": true}), "path"),
        (json!({"path": "/a/./b", "create_parents": true}), "path"),
        (json!({"path": "/a//b", "create_parents": true}), "path"),
        (json!({"path": "/a/b/", "create_parents": true}), "path"),
        (json!({"path": "/a\u{0}b"}), "path"),
        (json!({"path": "relative"}), "path"),
        (json!({"path": long}), "path"),
        (json!({"name": "a/b"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "..\\..\\evil"}), "name"),
        (json!({"name": "txt\u{202E}exe.txt"}), "name"),
        (json!({"path": "/a\u{2066}b"}), "path"),
        (json!({"path": "/ok", "client_metadata": [1, 2]}), "client_metadata"),
        (json!({"path": "/ok", "client_metadata": "text"}), "client_metadata"),
        (json!({"path": "/ok", "ttl_seconds": -5}), "ttl_seconds"),
        (json!({"path": "/ok", "visibility": "secret"}), "visibility"),
        (json!({"path": "/ok", "name": "ok"}), "path"),
        (json!({"path": "/ok", "colour": "red"}), "colour"),
        (json!({}), "path"),
    ];
    for (body, field) in cases {
        let answer = s.post("/v1/folders", body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {:?}", answer.body);
        assert_eq!(answer.code(), "INVALID_ARGUMENT");
        assert!(
            answer.message().contains(field),
            "{body}: message {:?} should name {field}",
            answer.message()
        );
    }

    // Malformed JSON and an oversized body.
    let raw = reqwest::Client::new()
        .post(format!("{}/v1/folders", s.base))
        .bearer_auth(&s.admin_key)
        .header("content-type", "application/json")
        .body("{\"path\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.expect("json");
    assert!(
        body["error"]["message"].as_str().unwrap_or_default().contains("JSON"),
        "{body}"
    );
    // A JSON body must say it is JSON; nothing is created otherwise.
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/folders", s.base))
            .bearer_auth(&s.admin_key)
            .body(r#"{"path": "/typed"}"#);
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let untyped = req.send().await.expect("send");
        assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        let body: Value = untyped.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Content-Type: application/json"),
            "{body}"
        );
    }
    assert_eq!(s.get("/v1/folders?path=/typed").await.status, StatusCode::NOT_FOUND);
    for probe in ["/healthz?x=1", "/readyz?verbose=true"] {
        let refused = s.send(reqwest::Method::GET, probe, None, None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{probe}");
    }

    let huge = json!({"path": "/big", "description": "d".repeat(16 * 1024)});
    let answer = s.post("/v1/folders", huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", answer.body);

    // Nothing was created by any of those requests.
    let all = s.get("/v1/folders?recursive=true").await;
    assert_eq!(all.body["items"], json!([]), "{:?}", all.body);
}

async fn pages_250_folders_without_loss_or_repeat(backend: Backend) {
    let s = server!(backend);
    let parent = s.mkdir("/many").await;
    let mut expected = HashSet::new();
    for i in 0..250 {
        let name = format!("f{:03}", (i * 7919) % 250);
        let answer = s
            .post("/v1/folders", json!({"parent_id": parent["id"], "name": name}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        expected.insert(name);
    }
    for (order, desc) in [
        ("name", false),
        ("name", true),
        ("created_at", false),
        ("created_at", true),
    ] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!(
                "/v1/folders?parent_id={}&page_size=100&order_by={order}&desc={desc}",
                id(&parent)
            );
            if let Some(t) = &token {
                url.push_str(&format!("&page_token={t}"));
            }
            let page = s.get(&url).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            pages += 1;
            for f in page.body["items"].as_array().expect("items") {
                seen.push(f["name"].as_str().expect("name").to_owned());
            }
            match page.body["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3, "{order} desc={desc}");
        assert_eq!(seen.len(), 250, "{order} desc={desc}: nothing repeated");
        assert_eq!(
            seen.iter().cloned().collect::<HashSet<_>>(),
            expected,
            "{order} desc={desc}: nothing lost"
        );
        if order == "name" {
            let mut sorted = seen.clone();
            sorted.sort();
            if desc {
                sorted.reverse();
            }
            assert_eq!(seen, sorted, "ordered by name desc={desc}");
        }
    }
    // A token cannot be used under another ordering; page_size is bounded.
    let first = s
        .get(&format!("/v1/folders?parent_id={}&page_size=10", id(&parent)))
        .await;
    let token = first.body["next_page_token"].as_str().expect("token").to_owned();
    let other = s
        .get(&format!(
            "/v1/folders?parent_id={}&order_by=created_at&page_token={token}",
            id(&parent)
        ))
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.get("/v1/folders?page_token=garbage").await.status,
        StatusCode::BAD_REQUEST
    );
    let too_big = s.get("/v1/folders?page_size=1001").await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);
    assert!(too_big.message().contains("page_size"));
}

async fn names_are_stored_nfc_and_misleading_ones_refused(backend: Backend) {
    let s = server!(backend);
    let composed = s.mkdir("/caf\u{e9}").await;
    let again = s.post("/v1/folders", json!({"path": "/cafe\u{301}"})).await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "decomposed is the same name: {:?}",
        again.body
    );
    let found = s.get("/v1/folders?path=/cafe%CC%81").await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["id"], composed["id"]);
    let f = composed["id"].as_str().expect("id");
    let a = s.upload_ok(f, "r\u{e9}sum\u{e9}.txt", b"1".to_vec()).await;
    assert_eq!(a["title"], "r\u{e9}sum\u{e9}.txt");
    let clash = s
        .upload(
            f,
            "re\u{301}sume\u{301}.txt",
            b"2".to_vec(),
            &[("conflict_strategy", "error")],
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    for bad in ["..\\..\\evil.txt", "txt\u{202E}exe.txt"] {
        let refused = s.upload(f, "x.txt", b"3".to_vec(), &[("title", bad)]).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad:?}: {:?}", refused.body);
        assert!(refused.message().contains("title"), "{}", refused.message());
        let renamed = s
            .patch(
                &format!("/v1/items/{}", a["id"].as_str().expect("id")),
                json!({"title": bad}),
            )
            .await;
        assert_eq!(renamed.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let listed = s.get(&format!("/v1/folders/{f}/items")).await.body;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
}

async fn search_and_recursive_listing(backend: Backend) {
    let s = server!(backend);
    s.mkdir("/zoo/Cats/big_CATS").await;
    s.mkdir("/zoo/dogs").await;
    s.mkdir("/zoo-annex/catalogue").await;
    s.mkdir("/other/100%_cat").await;
    s.mkdir("/Écoles/ÉTÉ").await;
    let zoo = s.get("/v1/folders?path=/zoo").await.body;

    let children = s.get(&format!("/v1/folders?parent_id={}", id(&zoo))).await.body;
    let names = common::column(&children, "name");
    assert_eq!(names, ["Cats", "dogs"]);

    let below = s
        .get(&format!("/v1/folders?parent_id={}&recursive=true&search=cat", id(&zoo)))
        .await
        .body;
    let paths = common::column(&below, "path");
    assert_eq!(
        paths,
        ["/zoo/Cats", "/zoo/Cats/big_CATS"],
        "recursive stays inside /zoo, search ignores case"
    );

    let everywhere = s.get("/v1/folders?recursive=true&search=cat").await.body;
    assert_eq!(everywhere["items"].as_array().map(Vec::len), Some(4));
    // `%` and `_` match literally.
    let literal = s.get("/v1/folders?recursive=true&search=0%25_").await.body;
    let paths = common::column(&literal, "path");
    assert_eq!(paths, ["/other/100%_cat"]);

    // Case folding covers more than ASCII.
    let unicode = s.get("/v1/folders?recursive=true&search=%C3%A9t%C3%A9").await.body;
    assert_eq!(common::column(&unicode, "path"), ["/Écoles/ÉTÉ"]);
    let roots = s.get("/v1/folders?search=o").await.body;
    let names = common::column(&roots, "name");
    assert_eq!(names, ["other", "zoo", "zoo-annex", "Écoles"]);

    // Unknown query parameters are refused with the valid ones listed; `path` stands alone.
    let unknown = s.get("/v1/folders?parent=1").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.message().contains("parent_id") && unknown.message().contains("page_token"),
        "{}",
        unknown.message()
    );
    let mixed = s.get("/v1/folders?path=/zoo&recursive=true").await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    let bad_order = s.get("/v1/folders?order_by=size").await;
    assert_eq!(bad_order.status, StatusCode::BAD_REQUEST);
    assert!(bad_order.message().contains("order_by"));
}

async fn concurrent_creates_of_one_path_yield_one_folder(backend: Backend) {
    let s = server!(backend);
    let attempts = (0..20).map(|_| s.post("/v1/folders", json!({"path": "/race/a/b", "create_parents": true})));
    let answers = futures::future::join_all(attempts).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let conflicts = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).count();
    assert_eq!(
        (created, conflicts),
        (1, 19),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let all = s.get("/v1/folders?recursive=true").await.body;
    let mut paths = common::column(&all, "path");
    paths.sort();
    assert_eq!(paths, ["/race", "/race/a", "/race/a/b"]);
}

async fn rename_moves_a_deep_subtree(backend: Backend) {
    let s = server!(backend);
    let deep = "/r/old/l1/l2/l3/l4/l5/l6/l7/l8";
    s.mkdir(deep).await;
    s.mkdir("/r/old/side").await;
    s.mkdir("/r/old-sibling/keep").await;
    s.mkdir("/r/olden").await;
    let old = s.get("/v1/folders?path=/r/old").await.body;
    let renamed = s
        .patch(&format!("/v1/folders/{}", id(&old)), json!({"name": "new"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(renamed.body["path"], "/r/new");
    assert_eq!(renamed.body["id"], old["id"]);

    let moved = s
        .get(&format!("/v1/folders?path={}", deep.replace("/old/", "/new/")))
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    let ancestors: Vec<&str> = moved.body["path_to_root"]
        .as_array()
        .expect("path")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ancestors, ["r", "new", "l1", "l2", "l3", "l4", "l5", "l6", "l7"]);
    assert_eq!(
        s.get(&format!("/v1/folders?path={deep}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get("/v1/folders?path=/r/new/side").await.status, StatusCode::OK);
    // Folders that only share a prefix of the name are untouched.
    assert_eq!(
        s.get("/v1/folders?path=/r/old-sibling/keep").await.status,
        StatusCode::OK
    );
    assert_eq!(s.get("/v1/folders?path=/r/olden").await.status, StatusCode::OK);
    let all = s.get("/v1/folders?recursive=true&page_size=1000").await.body;
    let stale = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|f| f["path"].as_str().unwrap_or("").starts_with("/r/old/"))
        .count();
    assert_eq!(stale, 0);
}

async fn rename_onto_a_taken_path_changes_nothing(backend: Backend) {
    let s = server!(backend);
    s.mkdir("/t/a/inner").await;
    s.mkdir("/t/b").await;
    let a = s.get("/v1/folders?path=/t/a").await.body;
    let clash = s
        .patch(
            &format!("/v1/folders/{}", id(&a)),
            json!({"name": "b", "description": "changed"}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    let after = s.get(&format!("/v1/folders/{}", id(&a))).await.body;
    assert_eq!(after["path"], "/t/a");
    assert_eq!(
        after["description"], "",
        "the failed rename rolled back the other changes too"
    );
    assert_eq!(s.get("/v1/folders?path=/t/a/inner").await.status, StatusCode::OK);
    let bad = s.patch(&format!("/v1/folders/{}", id(&a)), json!({"name": ".."})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn move_between_parents_and_to_root(backend: Backend) {
    let s = server!(backend);
    s.mkdir("/m/src/child/grandchild").await;
    s.mkdir("/m/dst").await;
    let src = s.get("/v1/folders?path=/m/src").await.body;
    let dst = s.get("/v1/folders?path=/m/dst").await.body;
    let grandchild = s.get("/v1/folders?path=/m/src/child/grandchild").await.body;

    let into_self = s
        .post(
            &format!("/v1/folders/{}/move", id(&src)),
            json!({"parent_id": grandchild["id"]}),
        )
        .await;
    assert_eq!(into_self.status, StatusCode::BAD_REQUEST);
    assert!(into_self.message().contains("own subtree"), "{}", into_self.message());
    let onto_self = s
        .post(
            &format!("/v1/folders/{}/move", id(&src)),
            json!({"parent_id": src["id"]}),
        )
        .await;
    assert_eq!(onto_self.status, StatusCode::BAD_REQUEST);

    let moved = s
        .post(
            &format!("/v1/folders/{}/move", id(&src)),
            json!({"parent_id": dst["id"]}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["path"], "/m/dst/src");
    assert_eq!(moved.body["parent_id"], dst["id"]);
    assert_eq!(
        s.get("/v1/folders?path=/m/dst/src/child/grandchild").await.body["id"],
        grandchild["id"]
    );

    let to_root = s
        .post(&format!("/v1/folders/{}/move", id(&src)), json!({"parent_id": null}))
        .await;
    assert_eq!(to_root.body["path"], "/src");
    assert_eq!(to_root.body["parent_id"], Value::Null);

    s.mkdir("/m/dst/src").await;
    let clash = s
        .post(
            &format!("/v1/folders/{}/move", id(&src)),
            json!({"parent_id": dst["id"]}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(
        s.get("/v1/folders?path=/src/child").await.status,
        StatusCode::OK,
        "nothing moved"
    );

    let missing = s.post(&format!("/v1/folders/{}/move", id(&src)), json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.message().contains("parent_id"));
}

async fn delete_needs_recursive_for_non_empty_folders(backend: Backend) {
    let s = server!(backend);
    s.mkdir("/d/a/b/c").await;
    s.mkdir("/d/a/b2").await;
    s.mkdir("/d/keep").await;
    let a = s.get("/v1/folders?path=/d/a").await.body;
    let refused = s.delete(&format!("/v1/folders/{}", id(&a))).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.message().contains("recursive=true"), "{}", refused.message());
    assert_eq!(s.get("/v1/folders?path=/d/a/b/c").await.status, StatusCode::OK);

    let removed = s.delete(&format!("/v1/folders/{}?recursive=true", id(&a))).await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    assert_eq!(removed.body["folders_deleted"], 4);
    for path in ["/d/a", "/d/a/b", "/d/a/b/c", "/d/a/b2"] {
        assert_eq!(
            s.get(&format!("/v1/folders?path={path}")).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(s.get("/v1/folders?path=/d/keep").await.status, StatusCode::OK);

    let keep = s.get("/v1/folders?path=/d/keep").await.body;
    let empty = s.delete(&format!("/v1/folders/{}", id(&keep))).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(
        s.delete(&format!("/v1/folders/{}", id(&keep))).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown = s.delete(&format!("/v1/folders/{}?force=true", id(&keep))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

async fn summary_counts_subfolders(backend: Backend) {
    let s = server!(backend);
    s.mkdir("/s/a/x").await;
    s.mkdir("/s/b").await;
    let top = s.get("/v1/folders?path=/s").await.body;
    let direct = s.get(&format!("/v1/folders/{}/summary", id(&top))).await;
    assert_eq!(direct.status, StatusCode::OK, "{:?}", direct.body);
    assert_eq!(direct.body["subfolder_count"], 2);
    assert_eq!(direct.body["item_count"], 0);
    assert_eq!(direct.body["total_size"], 0);
    assert_eq!(direct.body["by_type"], json!({}));
    let all = s.get(&format!("/v1/folders/{}/summary?recursive=true", id(&top))).await;
    assert_eq!(all.body["subfolder_count"], 3);
    assert_eq!(all.body["recursive"], true);
}

async fn patch_updates_attributes(backend: Backend) {
    let s = server!(backend);
    let f = s.mkdir("/p").await;
    let url = format!("/v1/folders/{}", id(&f));
    let patched = s
        .patch(
            &url,
            json!({"description": "hello", "client_metadata": {"a": [1]}, "ttl_seconds": 3600, "visibility": "public"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["description"], "hello");
    assert_eq!(patched.body["client_metadata"], json!({"a": [1]}));
    assert_eq!(patched.body["ttl_seconds"], 3600);
    assert_eq!(patched.body["visibility"], "public");
    assert_ne!(patched.body["updated_at"], f["updated_at"]);
    // Absent fields stay; null clears the TTL.
    let cleared = s.patch(&url, json!({"ttl_seconds": null})).await;
    assert_eq!(cleared.body["ttl_seconds"], Value::Null);
    assert_eq!(cleared.body["description"], "hello");
    let bad = s.patch(&url, json!({"client_metadata": 5})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("client_metadata"));
    let unknown = s.patch(&url, json!({"owner": "me"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

/// PostgreSQL cannot store a NUL character in text (it answered 500); both databases now refuse
/// it in any query parameter or body string, naming where it is, and store nothing.
async fn text_with_a_nul_character_is_refused_on_both_databases(backend: Backend) {
    let s = server!(backend);
    let body = s
        .post("/v1/folders", json!({"path": "/n", "description": "a\u{0}b"}))
        .await;
    assert_eq!(body.status, StatusCode::BAD_REQUEST, "{:?}", body.body);
    assert!(body.message().starts_with("description: "), "{}", body.message());
    let nested = s
        .post(
            "/v1/folders",
            json!({"path": "/n", "client_metadata": {"tags": ["x\u{0}"]}}),
        )
        .await;
    assert_eq!(nested.status, StatusCode::BAD_REQUEST);
    assert!(
        nested.message().starts_with("client_metadata.tags[0]: "),
        "{}",
        nested.message()
    );
    assert_eq!(
        s.get("/v1/folders?path=/n").await.status,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
    for query in ["/v1/folders?search=a%00b", "/v1/keys?user=a%00", "/v1/audit?actor=%00"] {
        let answer = s.get(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {:?}", answer.body);
        assert!(answer.message().contains("NUL"), "{query}: {}", answer.message());
    }
}

/// Runs `sql` as it is on `db` (changes the API does not make).
async fn run_sql(db: &mut dyn stowage::store::Db, sql: String) {
    use sqlx::Executor;
    if let Err(e) = db.conn().execute(sqlx::AssertSqlSafe(sql.clone())).await {
        panic!("{sql}: {e}");
    }
}

async fn item_count(s: &common::TestServer, folder: &str) -> i64 {
    let answer = s.get(&format!("/v1/folders/{folder}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["item_count"].as_i64().expect("item_count")
}

/// A folder's `item_count` is kept by the database as items change (not counted when read), so
/// it must follow uploads, moves, the trash, restores and permanent deletes, and the recount
/// must find and correct a count that was changed behind its back.
async fn item_counts_follow_every_change_and_the_recount_corrects_them(backend: Backend) {
    let s = server!(backend);
    let a = id(&s.mkdir("/a").await).to_owned();
    let b = id(&s.mkdir("/b").await).to_owned();
    let mut items = Vec::new();
    for name in ["1.txt", "2.txt", "3.txt", "4.txt"] {
        let up = s.upload(&a, name, name.as_bytes().to_vec(), &[]).await;
        assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
        items.push(common::id(&up.body));
    }
    assert_eq!(item_count(&s, &a).await, 4);

    let moved = s
        .post(
            &format!("/v1/folders/{a}/items/move"),
            json!({"item_ids": [items[0]], "target_folder_id": b}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!((item_count(&s, &a).await, item_count(&s, &b).await), (3, 1));

    assert_eq!(
        s.delete(&format!("/v1/items/{}", items[1])).await.status,
        StatusCode::OK
    );
    assert_eq!(item_count(&s, &a).await, 2, "a trashed item is not counted");
    let restored = s.post(&format!("/v1/items/{}/restore", items[1]), json!({})).await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(item_count(&s, &a).await, 3, "a restored one is again");
    let gone = s.delete(&format!("/v1/items/{}?permanent=true", items[2])).await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert_eq!(item_count(&s, &a).await, 2);

    // A folder in the trash keeps its items; restored, it counts them as before.
    assert_eq!(
        s.delete(&format!("/v1/folders/{b}?recursive=true")).await.status,
        StatusCode::OK
    );
    let back = s.post(&format!("/v1/folders/{b}/restore"), json!({})).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(item_count(&s, &b).await, 1);

    let recount = s.post("/v1/usage/recount", json!({})).await;
    assert_eq!(recount.status, StatusCode::OK, "{:?}", recount.body);
    assert_eq!(recount.body["item_counts_drifted"], json!([]), "the counts were exact");

    // A count changed behind the catalog's back is found, reported and corrected.
    // So are tombstones and bytes changed behind its back: a summary shows what is kept.
    let summary_of_a = || async {
        let summary = s.get(&format!("/v1/folders/{a}/summary")).await;
        assert_eq!(summary.status, StatusCode::OK, "{:?}", summary.body);
        let counts = &summary.body["by_type"]["PLAIN_TEXT"];
        (
            summary.body["item_count"].as_i64(),
            counts["tombstones"].as_i64(),
            counts["size"].as_i64(),
        )
    };
    assert_eq!(summary_of_a().await, (Some(2), Some(0), Some(10)));
    let mut conn = s.services().store.read().await.expect("conn");
    run_sql(
        &mut conn,
        format!(
            "UPDATE folder_tally SET items = items + 97, tombstones = 3, bytes = bytes + 5 WHERE folder_id = '{a}'"
        ),
    )
    .await;
    drop(conn);
    assert_eq!(item_count(&s, &a).await, 99);
    assert_eq!(summary_of_a().await, (Some(99), Some(3), Some(15)));
    let recount = s.post("/v1/usage/recount", json!({})).await;
    assert_eq!(
        recount.body["item_counts_drifted"],
        json!([{"folder_id": a, "path": "/a", "counted": 99, "actual": 2}])
    );
    assert_eq!(item_count(&s, &a).await, 2);
    assert_eq!(summary_of_a().await, (Some(2), Some(0), Some(10)));
}

/// Keeping a folder's item count must not make item writers deadlock: one that locks a
/// folder's items and then writes the folder (a PATCH that sets the items' expiry) beside one
/// that inserts into the folder and then updates an item the first holds (an import's metadata
/// upsert). A count kept in the folder's row, locked from the insert to the commit, deadlocked
/// them on PostgreSQL.
async fn item_writers_that_lock_in_opposite_orders_do_not_deadlock(backend: Backend) {
    let s = server!(backend);
    let folder = s.folder("/f").await;
    let held = s.upload(&folder, "held.txt", b"held".to_vec(), &[]).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let held = common::id(&held.body);
    let store = s.services().store.clone();

    let mut first = store.write().await.expect("first transaction");
    // The first locks the folder's items.
    run_sql(
        &mut first,
        format!("UPDATE item SET expires_at = 1 WHERE folder_id = '{folder}'"),
    )
    .await;
    let second = tokio::spawn({
        let (store, folder, held) = (store.clone(), folder.clone(), held.clone());
        async move {
            let mut second = store.write().await.expect("second transaction");
            let new = common::item_row(&folder, "new.txt", "managed", "fake/new");
            assert!(
                stowage::store::items::insert_if_title_free(&mut second, &new)
                    .await
                    .expect("the second inserts into the folder")
            );
            // Waits for the first to commit, then updates the item it held.
            let update = format!("UPDATE item SET client_metadata = '{{\"k\": 1}}' WHERE id = '{held}'");
            run_sql(&mut second, update).await;
            second.commit().await.expect("the second commits");
        }
    });
    // Let the second insert and wait on the held item (on SQLite it waits for its turn).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // The first writes the folder.
    run_sql(
        &mut first,
        format!("UPDATE folder SET description = 'changed' WHERE id = '{folder}'"),
    )
    .await;
    first.commit().await.expect("the first commits");
    tokio::time::timeout(std::time::Duration::from_secs(20), second)
        .await
        .expect("the second finishes")
        .expect("the second succeeds");
    assert_eq!(item_count(&s, &folder).await, 2);
}
