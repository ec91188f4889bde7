//! The trash through HTTP on SQLite and PostgreSQL: deletes move folders and items into it,
//! trashed things vanish from lists, lookups and counts, restore brings them back (409 onto a
//! taken path or title, or into another folder), permanent deletes remove managed objects and
//! never objects of other buckets.

mod common;

use common::{Backend, TestServer, id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    trashed_items_vanish_and_come_back,
    trashed_folders_vanish_with_their_subtree_and_come_back,
    a_folder_trashed_twice_at_one_path_restores_each_time,
    permanent_deletes_remove_managed_objects,
    purging_never_touches_other_buckets,
    the_trash_is_per_owner_and_paged,
);

async fn folder(s: &TestServer, path: &str) -> String {
    s.folder(path).await
}

/// The trash as the admin sees it: (kind, path) of each entry, newest first.
async fn trash(s: &TestServer) -> Vec<(String, String)> {
    let page = s.get("/v1/trash").await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
            )
        })
        .collect()
}

/// POSTs a restore with an optional body.
async fn restore(s: &TestServer, what: &str, id: &str, body: Option<Value>) -> common::Answer {
    s.send(
        Method::POST,
        &format!("/v1/{what}/{id}/restore"),
        Some(&s.admin_key),
        body,
    )
    .await
}

async fn trashed_items_vanish_and_come_back(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/t").await;
    let other = folder(&s, "/elsewhere").await;
    let a = s.upload_ok(&f, "a.txt", b"first".to_vec()).await;

    let deleted = s.delete(&format!("/v1/items/{}", id(&a))).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body, json!({"deleted": 1, "trashed": true}));
    assert!(s.holds(&a).await, "a trashed item keeps its object");
    s.services()
        .items
        .sweep_orphans(std::time::Duration::ZERO)
        .await
        .expect("orphan sweep");
    assert!(s.holds(&a).await, "the orphan sweep keeps the objects of trashed items");
    assert_eq!(
        s.get(&format!("/v1/items/{}", id(&a))).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v1/items/{}/content", id(&a))).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = s.get(&format!("/v1/folders/{f}/items")).await.body;
    assert!(listed["items"].as_array().expect("items").is_empty(), "{listed}");
    assert_eq!(s.get(&format!("/v1/folders/{f}")).await.body["item_count"], 0);
    assert_eq!(s.get(&format!("/v1/folders/{f}/summary")).await.body["item_count"], 0);
    assert_eq!(
        s.delete(&format!("/v1/items/{}", id(&a))).await.status,
        StatusCode::NOT_FOUND,
        "a trashed item is not there to delete again"
    );
    assert_eq!(trash(&s).await, [("ITEM".to_owned(), "/t/a.txt".to_owned())]);
    let entry = &s.get("/v1/trash").await.body["items"][0];
    assert_eq!(entry["id"], a["id"]);
    assert_eq!(entry["parent_id"], f.as_str());
    assert_eq!(entry["item_type"], "PLAIN_TEXT");
    assert!(entry["purge_at"].as_str().expect("purge_at") > entry["trashed_at"].as_str().expect("trashed_at"));

    // The title is free again; restoring onto it is a conflict that says what to do.
    let newer = s.upload_ok(&f, "a.txt", b"second".to_vec()).await;
    let clash = restore(&s, "items", &id(&a), None).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    assert!(clash.message().contains("target_parent_id"), "{}", clash.message());
    assert_eq!(
        restore(&s, "items", &id(&newer), None).await.status,
        StatusCode::CONFLICT,
        "a live item is not in the trash"
    );

    let moved = restore(&s, "items", &id(&a), Some(json!({"target_parent_id": other}))).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["folder_id"], other.as_str());
    assert_eq!(s.bytes(&format!("/v1/items/{}/content", id(&a))).await, b"first");
    assert!(trash(&s).await.is_empty());

    // Batch deletes go to the trash too, and come back where they were.
    let batch = s
        .post(
            &format!("/v1/folders/{f}/items/delete"),
            json!({"item_ids": [id(&newer)]}),
        )
        .await;
    assert_eq!(batch.body, json!({"deleted": 1, "trashed": true}));
    let back = restore(&s, "items", &id(&newer), Some(json!({}))).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(back.body["folder_id"], f.as_str());
}

async fn trashed_folders_vanish_with_their_subtree_and_come_back(backend: Backend) {
    let s = server!(backend);
    let root = folder(&s, "/f").await;
    let a = folder(&s, "/f/a").await;
    let b = folder(&s, "/f/a/b").await;
    let target = folder(&s, "/g").await;
    let x = s.upload_ok(&a, "x.txt", b"x".to_vec()).await;
    let y = s.upload_ok(&b, "y.txt", b"y".to_vec()).await;
    let lone = s.upload_ok(&b, "lone.txt", b"lone".to_vec()).await;
    // Trashed on its own first: it stays its own entry when its folder goes.
    s.delete(&format!("/v1/items/{}", id(&lone))).await;

    let refused = s.delete(&format!("/v1/folders/{a}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.message().contains("recursive=true"), "{}", refused.message());
    let trashed = s.delete(&format!("/v1/folders/{a}?recursive=true")).await;
    assert_eq!(
        trashed.body,
        json!({"folders_deleted": 2, "items_deleted": 2, "trashed": true})
    );
    for gone in [
        format!("/v1/folders/{a}"),
        format!("/v1/folders/{b}"),
        "/v1/folders?path=/f/a".to_owned(),
        "/v1/folders?path=/f/a/b".to_owned(),
        format!("/v1/items/{}", id(&y)),
    ] {
        assert_eq!(s.get(&gone).await.status, StatusCode::NOT_FOUND, "{gone}");
    }
    let parent = s.get(&format!("/v1/folders/{root}")).await.body;
    assert_eq!(parent["subfolder_count"], 0);
    let recursive = s
        .get(&format!("/v1/folders?parent_id={root}&recursive=true"))
        .await
        .body;
    assert!(recursive["items"].as_array().expect("items").is_empty(), "{recursive}");
    let all = s.get("/v1/folders?recursive=true").await.body;
    assert_eq!(common::column(&all, "path"), ["/f", "/g"]);
    let summary = s.get(&format!("/v1/folders/{root}/summary?recursive=true")).await.body;
    assert_eq!(
        (summary["subfolder_count"].clone(), summary["item_count"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        trash(&s).await,
        [
            ("FOLDER".to_owned(), "/f/a".to_owned()),
            ("ITEM".to_owned(), "/f/a/b/lone.txt".to_owned())
        ]
    );

    // A new folder takes the path; the old one cannot come back there, but elsewhere.
    let newer = folder(&s, "/f/a").await;
    let clash = restore(&s, "folders", &a, None).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    assert!(clash.message().contains("/f/a"), "{}", clash.message());
    let item_first = restore(&s, "items", &id(&lone), None).await;
    assert_eq!(item_first.status, StatusCode::CONFLICT, "its folder is in the trash");
    assert!(
        item_first.message().contains("restore the folder"),
        "{}",
        item_first.message()
    );

    let moved = restore(&s, "folders", &a, Some(json!({"target_parent_id": target}))).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["path"], "/g/a");
    assert_eq!(moved.body["item_count"], 1);
    assert_eq!(s.get(&format!("/v1/folders/{b}")).await.body["path"], "/g/a/b");
    let in_b = s.get(&format!("/v1/folders/{b}/items")).await.body;
    assert_eq!(
        common::column(&in_b, "title"),
        ["y.txt"],
        "the separately trashed item stays in the trash"
    );
    assert_eq!(s.get(&format!("/v1/items/{}", id(&x))).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("/v1/folders/{newer}")).await.body["path"], "/f/a");
    let back = restore(&s, "items", &id(&lone), None).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(back.body["folder_id"], b.as_str());

    // Trashed again, it comes back where it was while that place is free.
    s.delete(&format!("/v1/folders/{a}?recursive=true")).await;
    let home = restore(&s, "folders", &a, None).await;
    assert_eq!(home.status, StatusCode::OK, "{:?}", home.body);
    assert_eq!(home.body["path"], "/g/a");
    assert_eq!(
        restore(&s, "folders", &a, None).await.status,
        StatusCode::CONFLICT,
        "a live folder is not in the trash"
    );
}

async fn a_folder_trashed_twice_at_one_path_restores_each_time(backend: Backend) {
    let s = server!(backend);
    let first = folder(&s, "/p/same").await;
    s.upload_ok(&first, "one.txt", b"1".to_vec()).await;
    s.delete(&format!("/v1/folders/{first}?recursive=true")).await;
    let second = folder(&s, "/p/same").await;
    s.delete(&format!("/v1/folders/{second}")).await;
    assert_eq!(
        trash(&s).await,
        [
            ("FOLDER".to_owned(), "/p/same".to_owned()),
            ("FOLDER".to_owned(), "/p/same".to_owned())
        ]
    );
    let back = restore(&s, "folders", &second, None).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(
        back.body["item_count"], 0,
        "the other trashed folder's item stays with it"
    );
    assert_eq!(restore(&s, "folders", &first, None).await.status, StatusCode::CONFLICT);
    s.delete(&format!("/v1/folders/{second}")).await;
    let other = restore(&s, "folders", &first, None).await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);
    assert_eq!(other.body["item_count"], 1);
}

async fn permanent_deletes_remove_managed_objects(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/perm").await;
    let sub = folder(&s, "/perm/sub").await;
    let a = s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    let b = s.upload_ok(&sub, "b.txt", b"b".to_vec()).await;
    let c = s.upload_ok(&sub, "c.txt", b"c".to_vec()).await;

    let gone = s.delete(&format!("/v1/items/{}?permanent=true", id(&a))).await;
    assert_eq!(gone.body, json!({"deleted": 1, "trashed": false}));
    assert!(!s.holds(&a).await);
    assert!(trash(&s).await.is_empty());

    // Purging what is in the trash: the folder with everything its delete took along, and an
    // item trashed on its own inside it before.
    s.delete(&format!("/v1/items/{}", id(&c))).await;
    s.delete(&format!("/v1/folders/{f}?recursive=true")).await;
    assert!(s.holds(&b).await && s.holds(&c).await);
    let inner = s.delete(&format!("/v1/folders/{sub}?permanent=true")).await;
    assert_eq!(
        inner.status,
        StatusCode::CONFLICT,
        "only whole trash entries are purged"
    );
    let purged = s.delete(&format!("/v1/folders/{f}?permanent=true")).await;
    assert_eq!(purged.status, StatusCode::OK, "{:?}", purged.body);
    assert_eq!(
        purged.body,
        json!({"folders_deleted": 2, "items_deleted": 2, "trashed": false})
    );
    assert!(!s.holds(&b).await && !s.holds(&c).await);
    assert!(trash(&s).await.is_empty(), "{:?}", trash(&s).await);
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
    assert_eq!(restore(&s, "folders", &f, None).await.status, StatusCode::NOT_FOUND);
}

async fn purging_never_touches_other_buckets(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/mixed").await;
    let managed = s.upload_ok(&f, "managed.txt", b"keep me".to_vec()).await;
    let key = managed["object_key"].as_str().expect("key").to_owned();
    // An item of another bucket whose key happens to name the managed object.
    let store = &s.services().store;
    let mut tx = store.write().await.expect("tx");
    let foreign = common::item_row(&f, "foreign.txt", "raw", &key);
    assert!(
        stowage::store::items::insert_if_title_free(&mut tx, &foreign)
            .await
            .expect("insert")
    );
    tx.commit().await.expect("commit");

    let gone = s.delete(&format!("/v1/items/{}?permanent=true", foreign.id)).await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert!(
        s.object(&key).await.is_some(),
        "the managed object is not the raw item's"
    );
    assert_eq!(
        s.get(&format!("/v1/items/{}/content", id(&managed))).await.status,
        StatusCode::OK
    );
}

async fn the_trash_is_per_owner_and_paged(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let mine = s
        .send(
            Method::POST,
            "/v1/folders",
            Some(&alice),
            Some(json!({"path": "/alice"})),
        )
        .await;
    let mine = id(&mine.body);
    for name in ["1.txt", "2.txt", "3.txt"] {
        let item = s.upload_as(&alice, &mine, name, b"x".to_vec(), &[]).await.body;
        s.send(Method::DELETE, &format!("/v1/items/{}", id(&item)), Some(&alice), None)
            .await;
    }
    let admins = folder(&s, "/admin-only").await;
    s.delete(&format!("/v1/folders/{admins}")).await;

    let mut seen = Vec::new();
    let mut url = "/v1/trash?page_size=2".to_owned();
    loop {
        let page = s.send(Method::GET, &url, Some(&alice), None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(common::column(&page.body, "path"));
        match page.body["next_page_token"].as_str() {
            Some(token) => url = format!("/v1/trash?page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["/alice/3.txt", "/alice/2.txt", "/alice/1.txt"],
        "newest first, hers only"
    );
    assert_eq!(trash(&s).await.len(), 4, "admins see everything");
    let denied = s
        .send(
            Method::POST,
            &format!("/v1/folders/{admins}/restore"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);
    let unknown = s.send(Method::GET, "/v1/trash?kind=ITEM", Some(&alice), None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}
