//! The audit log: every recorded change leaves one event (who, with which key, what, on what,
//! when) written with the change itself; admins read it filtered and paged; old events go.

mod common;

use common::{Backend, TestServer, id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stowage::domain::audit::{AuditAction, AuditEvent};
use stowage::domain::caller::Caller;

/// The events `query` selects, newest first (as the admin).
async fn events(s: &TestServer, query: &str) -> Vec<Value> {
    let page = s.get(&format!("/v1/audit{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["items"].as_array().cloned().unwrap_or_default()
}

/// The admin key's id.
async fn admin_key_id(s: &TestServer) -> String {
    s.get("/v1/users/me").await.body["key_id"]
        .as_str()
        .expect("key id")
        .to_owned()
}

async fn every_change_leaves_one_event_with_its_actor_and_key(backend: Backend) {
    let s = server!(backend);
    let admin_key = admin_key_id(&s).await;

    assert_eq!(
        s.post("/v1/users", json!({"name": "bob"})).await.status,
        StatusCode::CREATED
    );
    let first = events(&s, "?action=user.create&actor=first%20start").await;
    assert_eq!(
        common::column(&json!({"items": first}), "target_id"),
        ["admin"],
        "the first admin too"
    );
    let made = events(&s, "?action=user.create&actor=admin").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["actor"], "admin");
    assert_eq!(made[0]["key_id"], admin_key.as_str());
    assert_eq!(made[0]["target_kind"], "user");
    assert_eq!(made[0]["target_id"], "bob");

    // A key made on the database directly, then one made and revoked through the API.
    let bob = s.key_for("bob", false).await;
    let direct = events(&s, "?action=key.create&actor=stowage%20keys%20create").await;
    assert_eq!(direct.len(), 1, "{direct:?}");
    assert_eq!(direct[0]["detail"]["user"], "bob");
    // The direct command records a new user, and a promotion, as such.
    s.key_for("carol", false).await;
    s.key_for("bob", true).await;
    let by_command = events(&s, "?actor=stowage%20keys%20create").await;
    let actions: Vec<&str> = by_command.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["key.create", "user.promote", "key.create", "user.create", "key.create"]
    );
    assert_eq!(by_command[1]["target_id"], "bob");
    assert_eq!(by_command[3]["target_id"], "carol");
    let key = s
        .send(
            Method::POST,
            "/v1/keys",
            Some(&bob),
            Some(json!({"name": "ci", "scope": "read"})),
        )
        .await;
    let key_id = key.body["id"].as_str().expect("id").to_owned();
    let revoked = s
        .send(Method::DELETE, &format!("/v1/keys/{key_id}"), Some(&bob), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let by_bob = events(&s, "?actor=bob").await;
    let actions: Vec<&str> = by_bob.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["key.revoke", "key.create"], "newest first");
    assert_eq!(by_bob[1]["detail"]["scope"], "read");
    assert_eq!(by_bob[0]["target_id"], key_id.as_str());
    // A revoke that finds nothing records nothing.
    let missing = s.delete(&format!("/v1/keys/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(events(&s, "?action=key.revoke").await.len(), 1);

    // Visibility changes (not a PATCH that keeps it), permanent deletes and purges.
    let folder = s.folder("/shared").await;
    assert_eq!(
        s.patch(&format!("/v1/folders/{folder}"), json!({"visibility": "public"}))
            .await
            .status,
        StatusCode::OK
    );
    let kept = s
        .patch(
            &format!("/v1/folders/{folder}"),
            json!({"visibility": "public", "description": "x"}),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK);
    // A change that fails records nothing: its event rolls back with it.
    s.folder("/taken").await;
    let failed = s
        .patch(
            &format!("/v1/folders/{folder}"),
            json!({"visibility": "private", "name": "taken"}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::CONFLICT, "{:?}", failed.body);
    assert_eq!(
        s.get(&format!("/v1/folders/{folder}")).await.body["visibility"],
        "public"
    );
    let seen = events(&s, &format!("?folder_id={folder}")).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["action"], "folder.visibility");
    assert_eq!(
        seen[0]["detail"],
        json!({"path": "/shared", "from": "private", "to": "public"})
    );

    let gone = s.upload_ok(&folder, "gone.txt", b"gone".to_vec()).await;
    let trashed = s.upload_ok(&folder, "trashed.txt", b"trashed".to_vec()).await;
    assert_eq!(
        s.delete(&format!("/v1/items/{}?permanent=true", id(&gone)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.delete(&format!("/v1/items/{}", id(&trashed))).await.status,
        StatusCode::OK
    );
    assert!(
        events(&s, "?action=item.delete").await.len() == 1,
        "into the trash is no event"
    );
    assert_eq!(
        s.delete(&format!("/v1/items/{}?permanent=true", id(&trashed)))
            .await
            .status,
        StatusCode::OK
    );
    let deleted = events(&s, "?action=item.delete").await;
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0]["target_id"], id(&trashed).as_str());
    assert_eq!(deleted[0]["folder_id"], folder.as_str());
    assert_eq!(deleted[0]["detail"]["title"], "trashed.txt");

    let path = format!("/v1/folders/{folder}?recursive=true&permanent=true");
    assert_eq!(s.delete(&path).await.status, StatusCode::OK);
    let folder_gone = events(&s, "?action=folder.delete").await;
    assert_eq!(folder_gone.len(), 1);
    assert_eq!(folder_gone[0]["detail"]["path"], "/shared");
    assert_eq!(folder_gone[0]["detail"]["from_trash"], false);
}

async fn only_admins_read_it_filtered_and_paged(backend: Backend) {
    let s = server!(backend);
    let bob = s.key_for("bob", false).await;
    let refused = s.send(Method::GET, "/v1/audit", Some(&bob), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = s.get("/v1/audit?action=key.steal").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("`action`"), "{}", bad.message());

    for name in ["u1", "u2", "u3", "u4", "u5"] {
        s.post("/v1/users", json!({"name": name})).await;
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut query = "?action=user.create&actor=admin&page_size=2".to_owned();
    loop {
        let page = s.get(&format!("/v1/audit{query}")).await;
        let ids = common::column(&page.body, "target_id");
        assert!(ids.len() <= 2, "{ids:?}");
        pages += 1;
        seen.extend(ids);
        match page.body["next_page_token"].as_str() {
            Some(token) => query = format!("?action=user.create&actor=admin&page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, ["u5", "u4", "u3", "u2", "u1"]);
    assert_eq!(pages, 3);
}

async fn events_past_their_retention_are_removed(backend: Backend) {
    let s = server!(backend);
    s.post("/v1/users", json!({"name": "recent"})).await;
    let old = AuditEvent::by(
        &Caller::user("someone", false),
        AuditAction::UserCreate,
        "ancient",
        time::OffsetDateTime::now_utc() - time::Duration::days(400),
    );
    let store = &s.services().store;
    let mut tx = store.write().await.expect("tx");
    stowage::services::audit::record(&mut tx, &old).await.expect("record");
    tx.commit().await.expect("commit");
    assert_eq!(events(&s, "?actor=someone").await.len(), 1);

    let removed = s.services().audit.remove_expired().await.expect("sweep");
    assert_eq!(removed, 1, "the default keeps a year");
    assert!(events(&s, "?actor=someone").await.is_empty());
    assert_eq!(
        events(&s, "?action=user.create&actor=admin").await.len(),
        1,
        "recent events stay"
    );
}

on_both_backends!(
    every_change_leaves_one_event_with_its_actor_and_key,
    only_admins_read_it_filtered_and_paged,
    events_past_their_retention_are_removed,
);
