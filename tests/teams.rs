//! Teams over HTTP on both databases: groups and their managers, roles granted on folders (to
//! users and through groups) covering subtrees, `my_role` in answers, one owner per tree, and
//! configured buckets granted under a prefix.

mod common;

use common::{Backend, TestServer, column, id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(s: &TestServer, key: &str, path: &str, body: Option<Value>) -> common::Answer {
    s.send(Method::PUT, path, Some(key), body).await
}

async fn delete(s: &TestServer, key: &str, path: &str) -> common::Answer {
    s.send(Method::DELETE, path, Some(key), None).await
}

async fn created(s: &TestServer, key: &str, path: &str, body: Value) -> Value {
    let answer = s.post_as(key, path, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "POST {path}: {:?}", answer.body);
    answer.body
}

async fn a_team_of_three_works_in_one_folder_by_role(backend: Backend) {
    let s = server!(backend);
    let alice = s.key_for("alice", false).await;
    let bob = s.key_for("bob", false).await;
    let carol = s.key_for("carol", false).await;
    let dan = s.key_for("dan", false).await;
    let vision = created(
        &s,
        &alice,
        "/v1/folders",
        json!({"path": "/projects/vision", "create_parents": true}),
    )
    .await;
    let vision = id(&vision);
    let train = created(&s, &alice, "/v1/folders", json!({"name": "train", "parent_id": vision})).await;
    let train = id(&train);
    let photo = s.upload_as(&alice, &train, "cat.txt", b"meow".to_vec(), &[]).await;
    assert_eq!(photo.status, StatusCode::CREATED);
    assert_eq!(photo.body["my_role"], "manager", "the owner manages");

    // Alice makes a group of labelers with carol, and shares: bob edits, the labelers view.
    let labelers = created(&s, &alice, "/v1/groups", json!({"name": "labelers"})).await;
    assert_eq!(labelers["my_role"], "manager");
    let labelers = id(&labelers);
    let joined = put(
        &s,
        &alice,
        &format!("/v1/groups/{labelers}/members/carol"),
        Some(json!({})),
    )
    .await;
    assert_eq!(joined.status, StatusCode::OK, "{:?}", joined.body);
    assert_eq!(joined.body["member_count"], 2);
    let grants = format!("/v1/folders/{vision}/grants");
    let shared = put(&s, &alice, &grants, Some(json!({"user": "bob", "role": "editor"}))).await;
    assert_eq!(shared.status, StatusCode::OK, "{:?}", shared.body);
    let shared = put(&s, &alice, &grants, Some(json!({"group": labelers, "role": "viewer"}))).await;
    assert_eq!(shared.status, StatusCode::OK, "{:?}", shared.body);
    assert_eq!(
        column(&json!({"items": shared.body["grants"]}), "role"),
        ["editor", "viewer"]
    );

    // Carol views the subtree through her group: folders, items, content; no uploads.
    let seen = s.get_as(&carol, &format!("/v1/folders/{train}")).await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.body);
    assert_eq!(seen.body["my_role"], "viewer");
    assert_eq!(seen.body["owner"], "alice");
    let above: Vec<&str> = seen.body["path_to_root"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(above, ["vision"], "/projects, which carol may not see, is left out");
    let items = s
        .get_as(&carol, &format!("/v1/folders/{vision}/items?recursive=true"))
        .await;
    assert_eq!(column(&items.body, "title"), ["cat.txt"]);
    assert_eq!(items.body["items"][0]["my_role"], "viewer");
    let renamed = s
        .send(
            Method::PATCH,
            &format!("/v1/folders/{train}"),
            Some(&carol),
            Some(json!({"name": "t2"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::FORBIDDEN);
    assert!(
        renamed
            .message()
            .contains("manager role on it or the editor role on the folder it is in"),
        "a refusal names what a rename needs: {}",
        renamed.message()
    );
    let refused = s.upload_as(&carol, &train, "dog.txt", b"woof".to_vec(), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.message().contains("needs the editor role"),
        "{}",
        refused.message()
    );
    // What is shared with her shows in a recursive listing from the root; /projects does not.
    let listed = s.get_as(&carol, "/v1/folders?recursive=true").await;
    assert_eq!(
        column(&listed.body, "path"),
        ["/projects/vision/train", "/projects/vision"],
        "by name"
    );
    let above = s
        .get_as(
            &carol,
            &format!(
                "/v1/folders/{}",
                listed.body["items"][1]["parent_id"].as_str().unwrap_or_default()
            ),
        )
        .await;
    assert_eq!(above.status, StatusCode::NOT_FOUND);

    // Bob edits: uploads, makes and removes subfolders (they stay alice's tree), but neither
    // deletes nor re-shares the folder he was given.
    let dog = s.upload_as(&bob, &train, "dog.txt", b"woof".to_vec(), &[]).await;
    assert_eq!(dog.status, StatusCode::CREATED, "{:?}", dog.body);
    assert_eq!(dog.body["my_role"], "editor");
    // What bob deletes in the shared folder is in his trash (he may restore it) and alice's,
    // not in the viewer carol's.
    let trashed = delete(&s, &bob, &format!("/v1/items/{}", id(&dog.body))).await;
    assert_eq!(trashed.status, StatusCode::OK, "{:?}", trashed.body);
    for (who, key, seen) in [("bob", &bob, 1), ("alice", &alice, 1), ("carol", &carol, 0)] {
        let trash = s.get_as(key, "/v1/trash").await;
        assert_eq!(
            column(&trash.body, "name").len(),
            seen,
            "{who}'s trash: {:?}",
            trash.body
        );
    }
    let back = s
        .post_as(&bob, &format!("/v1/items/{}/restore", id(&dog.body)), json!({}))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    let scratch = created(&s, &bob, "/v1/folders", json!({"name": "scratch", "parent_id": train})).await;
    assert_eq!(scratch["owner"], "alice", "a tree has one owner");
    assert_eq!(scratch["my_role"], "editor");
    let gone = delete(&s, &bob, &format!("/v1/folders/{}", id(&scratch))).await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    let kept = delete(&s, &bob, &format!("/v1/folders/{vision}?recursive=true")).await;
    assert_eq!(kept.status, StatusCode::FORBIDDEN);
    assert!(kept.message().contains("manager role"), "{}", kept.message());
    let public = s
        .send(
            Method::PATCH,
            &format!("/v1/folders/{vision}"),
            Some(&bob),
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(public.status, StatusCode::FORBIDDEN);
    let itself = put(&s, &alice, &grants, Some(json!({"user": "alice", "role": "viewer"}))).await;
    assert_eq!(itself.status, StatusCode::BAD_REQUEST, "the owner manages it already");
    let regrant = put(&s, &bob, &grants, Some(json!({"user": "dan", "role": "viewer"}))).await;
    assert_eq!(regrant.status, StatusCode::FORBIDDEN);
    let open = s
        .post_as(
            &bob,
            "/v1/folders",
            json!({"name": "open", "parent_id": train, "visibility": "internal"}),
        )
        .await;
    assert_eq!(open.status, StatusCode::FORBIDDEN);
    assert!(
        open.message().contains("may be `internal` only by a manager"),
        "{}",
        open.message()
    );
    let described = s
        .send(
            Method::PATCH,
            &format!("/v1/folders/{vision}"),
            Some(&bob),
            Some(json!({"description": "cats"})),
        )
        .await;
    assert_eq!(described.status, StatusCode::OK, "{:?}", described.body);

    // Jobs tell each caller's role too: bob submitted this import (editor), carol views it.
    let spec = json!({"images": [{"objectUrl": "s3://nowhere/x.png"}]});
    let job = s.post_as(&bob, &format!("/v1/folders/{vision}/imports"), spec).await;
    assert!(job.status.is_success(), "{:?}", job.body);
    assert_eq!(job.body["my_role"], "editor");
    let seen = s.get_as(&carol, &format!("/v1/jobs/{}", id(&job.body))).await;
    assert_eq!(seen.body["my_role"], "viewer", "{:?}", seen.body);
    let listed = s.get_as(&carol, "/v1/jobs").await;
    assert_eq!(column(&listed.body, "my_role"), ["viewer"]);
    let cancel = s
        .post_as(&carol, &format!("/v1/jobs/{}/cancel", id(&job.body)), json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);

    // Dan has no role: everything of alice's answers as if it did not exist.
    let hidden = s.get_as(&dan, &format!("/v1/folders/{vision}")).await;
    let missing = s.get_as(&dan, &format!("/v1/folders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(
        (hidden.status, missing.status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(
        column(&s.get_as(&dan, "/v1/folders?recursive=true").await.body, "path").len(),
        0
    );
    let inside = s
        .post_as(&dan, "/v1/folders", json!({"path": "/projects/vision/x"}))
        .await;
    let nowhere = s.post_as(&dan, "/v1/folders", json!({"path": "/nothing/here/x"})).await;
    assert_eq!(
        (inside.status, nowhere.status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(
        inside.message().replace("/projects/vision", "P"),
        nowhere.message().replace("/nothing/here", "P"),
        "a hidden parent answers as a missing one"
    );

    // A stronger grant below wins there: carol manages train, and still only views vision.
    let promoted = put(
        &s,
        &alice,
        &format!("/v1/folders/{train}/grants"),
        Some(json!({"user": "carol", "role": "manager"})),
    )
    .await;
    assert_eq!(promoted.status, StatusCode::OK);
    let inherited: Vec<bool> = promoted.body["grants"]
        .as_array()
        .map(|g| g.iter().map(|g| g["inherited"] == true).collect())
        .unwrap_or_default();
    assert_eq!(inherited, [false, true, true], "its own grant first, then vision's");
    assert_eq!(
        s.get_as(&carol, &format!("/v1/folders/{train}")).await.body["my_role"],
        "manager"
    );
    assert_eq!(
        s.get_as(&carol, &format!("/v1/folders/{vision}")).await.body["my_role"],
        "viewer"
    );

    // Taking back a grant works at the next request: carol's group view goes, bob's edits stay.
    let revoked = delete(&s, &alice, &format!("{grants}?group={labelers}")).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let gone = s.get_as(&carol, &format!("/v1/folders/{vision}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.message(), format!("folder {vision} not found"));
    let again = delete(&s, &alice, &format!("{grants}?group={labelers}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "nothing left to take back");

    // Alice, a manager, reads what happened in her folder and below it; bob, an editor, may not.
    let log = s.get_as(&alice, &format!("/v1/audit?folder_id={vision}")).await;
    assert_eq!(log.status, StatusCode::OK, "{:?}", log.body);
    let targets = column(&log.body, "target_id");
    assert!(
        targets.contains(&train),
        "the grant on train, below vision: {targets:?}"
    );
    assert!(targets.iter().all(|t| *t == vision || *t == train), "{targets:?}");
    let refused = s.get_as(&bob, &format!("/v1/audit?folder_id={vision}")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get_as(&alice, "/v1/audit").await.status,
        StatusCode::FORBIDDEN,
        "the whole log is the admins'"
    );
    let hidden = s.get_as(&dan, &format!("/v1/audit?folder_id={vision}")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);

    // Every change to who may do what is in the audit log.
    let audit = s.get("/v1/audit?page_size=100").await;
    let actions = column(&audit.body, "action");
    for action in ["group.create", "group.member.put", "folder.grant", "folder.revoke"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

async fn groups_are_run_by_their_managers(backend: Backend) {
    let s = server!(backend);
    let erin = s.key_for("erin", false).await;
    let finn = s.key_for("finn", false).await;
    let gus = s.key_for("gus", false).await;
    let team = created(&s, &erin, "/v1/groups", json!({"name": "ml team"})).await;
    let team = id(&team);
    let taken = s.post_as(&finn, "/v1/groups", json!({"name": "ml team"})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let bad = s.post_as(&finn, "/v1/groups", json!({"name": " spaced"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let members = format!("/v1/groups/{team}/members");

    // Only managers add members; an unknown user is 404.
    let refused = put(&s, &finn, &format!("{members}/finn"), Some(json!({}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let nobody = put(&s, &erin, &format!("{members}/nobody"), Some(json!({}))).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    assert!(
        put(&s, &erin, &format!("{members}/finn"), Some(json!({})))
            .await
            .status
            .is_success()
    );
    let made = put(&s, &erin, &format!("{members}/gus"), Some(json!({"role": "manager"}))).await;
    assert_eq!(made.status, StatusCode::OK);
    assert_eq!(made.body["member_count"], 3);

    // Everyone sees the group; only members and admins see who is in it.
    let inside = s.get_as(&finn, &format!("/v1/groups/{team}")).await;
    assert_eq!(
        column(&json!({"items": inside.body["members"]}), "user"),
        ["erin", "finn", "gus"]
    );
    assert_eq!(inside.body["my_role"], "member");
    let outsider = s.key_for("hana", false).await;
    let outside = s.get_as(&outsider, &format!("/v1/groups/{team}")).await;
    assert_eq!(outside.status, StatusCode::OK);
    assert_eq!(outside.body["members"], Value::Null);
    assert_eq!(outside.body["my_role"], Value::Null);
    let mine = s.get_as(&outsider, "/v1/groups?mine=true").await;
    assert_eq!(column(&mine.body, "name").len(), 0);
    let all = s.get_as(&outsider, "/v1/groups").await;
    assert_eq!(column(&all.body, "name"), ["ml team"]);

    // A member leaves on their own; the last manager cannot leave.
    assert_eq!(
        delete(&s, &finn, &format!("{members}/finn")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&s, &gus, &format!("{members}/erin")).await.status,
        StatusCode::NO_CONTENT
    );
    let last = delete(&s, &gus, &format!("{members}/gus")).await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert!(last.message().contains("last manager"), "{}", last.message());

    // Deleting a group takes back what was granted to it.
    let folder = created(&s, &erin, "/v1/folders", json!({"path": "/erin"})).await;
    let folder = id(&folder);
    assert!(
        put(&s, &erin, &format!("{members}/finn"), Some(json!({}))).await.status == StatusCode::FORBIDDEN,
        "erin left"
    );
    assert!(
        put(&s, &gus, &format!("{members}/finn"), Some(json!({})))
            .await
            .status
            .is_success()
    );
    let grant = put(
        &s,
        &erin,
        &format!("/v1/folders/{folder}/grants"),
        Some(json!({"group": team, "role": "viewer"})),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK);
    assert_eq!(
        s.get_as(&finn, &format!("/v1/folders/{folder}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        delete(&s, &finn, &format!("/v1/groups/{team}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(&s, &gus, &format!("/v1/groups/{team}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get_as(&finn, &format!("/v1/folders/{folder}")).await.status,
        StatusCode::NOT_FOUND
    );
    let grants = s.get_as(&erin, &format!("/v1/folders/{folder}/grants")).await;
    assert_eq!(grants.body["grants"], json!([]));
}

async fn a_folder_moved_into_another_tree_joins_its_owner(backend: Backend) {
    let s = server!(backend);
    let ivy = s.key_for("ivy", false).await;
    let jon = s.key_for("jon", false).await;
    let shared = created(&s, &ivy, "/v1/folders", json!({"path": "/shared"})).await;
    let shared = id(&shared);
    let grant = put(
        &s,
        &ivy,
        &format!("/v1/folders/{shared}/grants"),
        Some(json!({"user": "jon", "role": "editor"})),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK);
    let mine = created(
        &s,
        &jon,
        "/v1/folders",
        json!({"path": "/drafts/week1", "create_parents": true}),
    )
    .await;
    let drafts = mine["parent_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        s.get_as(&ivy, &format!("/v1/folders/{drafts}")).await.status,
        StatusCode::NOT_FOUND
    );

    let moved = s
        .post_as(
            &jon,
            &format!("/v1/folders/{drafts}/move"),
            json!({"parent_id": shared}),
        )
        .await;
    assert_eq!(
        moved.status,
        StatusCode::OK,
        "{:?} (drafts {drafts}, shared {shared})",
        moved.body
    );
    assert_eq!(moved.body["owner"], "ivy");
    assert_eq!(moved.body["my_role"], "editor", "jon edits what is now ivy's");
    let week = s.get_as(&ivy, &format!("/v1/folders/{}", id(&mine))).await;
    assert_eq!(week.body["owner"], "ivy", "the whole subtree changed hands");
    assert_eq!(week.body["my_role"], "manager");
    // Ivy's folders do not go into a third tree by jon's hand, though he edits both places.
    let kai = s.key_for("kai", false).await;
    let other = created(&s, &kai, "/v1/folders", json!({"path": "/kai"})).await;
    let grant = put(
        &s,
        &kai,
        &format!("/v1/folders/{}/grants", id(&other)),
        Some(json!({"user": "jon", "role": "editor"})),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK);
    let away = s
        .post_as(
            &jon,
            &format!("/v1/folders/{drafts}/move"),
            json!({"parent_id": id(&other)}),
        )
        .await;
    assert_eq!(away.status, StatusCode::FORBIDDEN, "{:?}", away.body);
    assert!(away.message().contains("would give it to kai"), "{}", away.message());
    // Out of ivy's tree to the root only ivy (or an admin) may move it: at the root it would
    // start a tree of ivy's that jon cannot see.
    let back = s
        .post_as(&jon, &format!("/v1/folders/{drafts}/move"), json!({"parent_id": null}))
        .await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{:?}", back.body);
    let back = s
        .post_as(&ivy, &format!("/v1/folders/{drafts}/move"), json!({"parent_id": null}))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(back.body["owner"], "ivy", "out of the tree it stays ivy's, at the root");
    assert_eq!(
        s.get_as(&jon, &format!("/v1/folders/{drafts}")).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_bucket_grant_opens_a_prefix_of_a_configured_bucket(backend: Backend) {
    let lake = tempfile::tempdir().expect("a bucket directory");
    for key in ["team/a/one.txt", "other/two.txt"] {
        let path = lake.path().join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"data").expect("write");
    }
    let lake_url = format!("file://{}", lake.path().display());
    let s = server!(backend, |settings| {
        settings
            .buckets
            .insert("lake".into(), stowage::config::BucketSettings::at(lake_url));
    });
    let kim = s.key_for("kim", false).await;
    let synced = |prefix: &str| json!({"path": format!("/lake-{}", prefix.replace('/', "-")), "sync": {"bucket": "lake", "prefix": prefix}});
    let refused = s.post_as(&kim, "/v1/folders", synced("team/a/")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.get_as(&kim, "/v1/buckets").await.body.as_array().map(Vec::len),
        Some(1),
        "only managed"
    );

    // Admins grant kim `team/` of the lake.
    let grants = "/v1/buckets/lake/grants";
    let mine = put(&s, &kim, grants, Some(json!({"user": "kim", "prefix": "team"}))).await;
    assert_eq!(mine.status, StatusCode::FORBIDDEN, "only admins grant buckets");
    let granted = put(&s, &s.admin_key, grants, Some(json!({"user": "kim", "prefix": "team"}))).await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    assert_eq!(granted.body["grants"][0]["prefix"], "team/");
    let unknown = put(&s, &s.admin_key, "/v1/buckets/sea/grants", Some(json!({"user": "kim"}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let folder = s.post_as(&kim, "/v1/folders", synced("team/a/")).await;
    assert_eq!(folder.status, StatusCode::CREATED, "{:?}", folder.body);
    let outside = s.post_as(&kim, "/v1/folders", synced("other/")).await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST);
    assert!(outside.message().contains("not granted"), "{}", outside.message());
    let whole = s.post_as(&kim, "/v1/folders", synced("")).await;
    assert_eq!(
        whole.status,
        StatusCode::BAD_REQUEST,
        "the grant is not the whole bucket"
    );
    let plain = created(&s, &kim, "/v1/folders", json!({"path": "/refs"})).await;
    let refs = format!("/v1/folders/{}/references", id(&plain));
    let inside = s
        .post_as(
            &kim,
            &refs,
            json!({"url": format!("file://{}/team/a/one.txt", lake.path().display())}),
        )
        .await;
    assert_eq!(inside.status, StatusCode::CREATED, "{:?}", inside.body);
    let beyond = s
        .post_as(
            &kim,
            &refs,
            json!({"url": format!("file://{}/other/two.txt", lake.path().display())}),
        )
        .await;
    assert_eq!(beyond.status, StatusCode::BAD_REQUEST);
    assert!(beyond.message().contains("team/"), "{}", beyond.message());

    // Taking it back closes the bucket again at the next request.
    let revoked = delete(&s, &s.admin_key, &format!("{grants}?user=kim&prefix=team/")).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = s.post_as(&kim, "/v1/folders", synced("team/b/")).await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST);
    let audit = s.get("/v1/audit?action=bucket.grant").await;
    assert_eq!(column(&audit.body, "action"), ["bucket.grant"]);
}

async fn stars_and_shelves_find_what_each_user_works_on(backend: Backend) {
    let s = server!(backend);
    let lou = s.key_for("lou", false).await;
    let mia = s.key_for("mia", false).await;
    let own = created(
        &s,
        &lou,
        "/v1/folders",
        json!({"path": "/lou/inbox", "create_parents": true}),
    )
    .await;
    let team = created(
        &s,
        &mia,
        "/v1/folders",
        json!({"path": "/mia/team/raw", "create_parents": true}),
    )
    .await;
    let team_root = team["parent_id"].as_str().unwrap_or_default().to_owned();
    let open = created(
        &s,
        &mia,
        "/v1/folders",
        json!({"path": "/open", "visibility": "internal"}),
    )
    .await;
    let grant = put(
        &s,
        &mia,
        &format!("/v1/folders/{team_root}/grants"),
        Some(json!({"user": "lou", "role": "editor"})),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK);

    // Home: lou's own top-level folders; shared: what was granted to lou, not what is merely
    // visible to everyone.
    assert_eq!(column(&s.get_as(&lou, "/v1/views/home").await.body, "path"), ["/lou"]);
    assert_eq!(
        column(&s.get_as(&lou, "/v1/views/shared").await.body, "path"),
        ["/mia/team"]
    );
    assert_eq!(column(&s.get_as(&mia, "/v1/views/shared").await.body, "path").len(), 0);
    assert_eq!(
        column(&s.get_as(&mia, "/v1/views/home").await.body, "path"),
        ["/mia", "/open"]
    );
    let strict = s.get_as(&lou, "/v1/views/home?recursive=true").await;
    assert_eq!(
        strict.status,
        StatusCode::BAD_REQUEST,
        "views take the listing parameters only"
    );

    // Stars are each user's own, on anything they see.
    let starred = put(&s, &lou, &format!("/v1/folders/{}/star", id(&team)), None).await;
    assert_eq!(starred.status, StatusCode::OK, "{:?}", starred.body);
    assert_eq!(starred.body["starred"], true);
    assert_eq!(
        put(&s, &lou, &format!("/v1/folders/{}/star", id(&open)), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        put(&s, &lou, &format!("/v1/folders/{}/star", id(&own)), None)
            .await
            .status,
        StatusCode::OK
    );
    let hidden = created(&s, &mia, "/v1/folders", json!({"path": "/mia/private"})).await;
    let refused = put(&s, &lou, &format!("/v1/folders/{}/star", id(&hidden)), None).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "nothing to star that lou cannot see"
    );
    let shelf = s.get_as(&lou, "/v1/views/starred?order_by=created_at").await;
    assert_eq!(column(&shelf.body, "path"), ["/lou/inbox", "/mia/team/raw", "/open"]);
    assert_eq!(
        s.get_as(&mia, &format!("/v1/folders/{}", id(&team))).await.body["starred"],
        false,
        "mia did not star it"
    );
    let filtered = s
        .get_as(&lou, "/v1/folders?recursive=true&starred=true&owner=mia")
        .await;
    assert_eq!(column(&filtered.body, "path"), ["/open", "/mia/team/raw"], "by name");
    let internal = s.get_as(&lou, "/v1/folders?recursive=true&visibility=internal").await;
    assert_eq!(column(&internal.body, "path"), ["/open"]);
    let unstarred = delete(&s, &lou, &format!("/v1/folders/{}/star", id(&open))).await;
    assert_eq!(unstarred.body["starred"], false);

    // Items too: starred=true lists them, recursively from where you look.
    let photo = s.upload_as(&lou, &id(&team), "p.txt", b"p".to_vec(), &[]).await;
    let other = s.upload_as(&lou, &id(&team), "q.txt", b"q".to_vec(), &[]).await;
    assert_eq!(other.body["starred"], false);
    let marked = put(&s, &lou, &format!("/v1/items/{}/star", id(&photo.body)), None).await;
    assert_eq!(marked.body["starred"], true);
    let items = s
        .get_as(
            &lou,
            &format!("/v1/folders/{team_root}/items?recursive=true&starred=true"),
        )
        .await;
    assert_eq!(column(&items.body, "title"), ["p.txt"]);
    assert_eq!(
        s.get_as(&lou, &format!("/v1/items/{}", id(&photo.body))).await.body["starred"],
        true
    );
    assert_eq!(
        s.get_as(&mia, &format!("/v1/items/{}", id(&photo.body))).await.body["starred"],
        false
    );

    // A star outlives nothing: once the item is deleted for good, the hourly cleanup drops it.
    let gone = delete(&s, &lou, &format!("/v1/items/{}?permanent=true", id(&photo.body))).await;
    assert_eq!(gone.status, StatusCode::OK);
    let cleanup = stowage::services::stars::StarCleanup(s.services().store.clone());
    assert_eq!(cleanup.run_once().await.expect("cleanup"), 1);
    assert_eq!(cleanup.run_once().await.expect("cleanup"), 0);
    assert_eq!(
        column(&s.get_as(&lou, "/v1/views/starred").await.body, "path").len(),
        2,
        "folder stars stay"
    );
}

async fn grants_do_not_reach_into_the_trash_through_a_reused_path(backend: Backend) {
    let s = server!(backend);
    let ada = s.key_for("ada", false).await;
    let max = s.key_for("max", false).await;
    let ben = s.key_for("ben", false).await;
    // Ada shares /team with ben as an editor; ben deletes a subfolder and may bring it back.
    let team = created(
        &s,
        &ada,
        "/v1/folders",
        json!({"path": "/team/sub", "create_parents": true}),
    )
    .await;
    let team_id = team["parent_id"].as_str().unwrap_or_default().to_owned();
    let shared = put(
        &s,
        &ada,
        &format!("/v1/folders/{team_id}/grants"),
        Some(json!({"user": "ben", "role": "editor"})),
    )
    .await;
    assert_eq!(shared.status, StatusCode::OK);
    assert_eq!(
        delete(&s, &ben, &format!("/v1/folders/{}", id(&team))).await.status,
        StatusCode::OK
    );
    assert_eq!(column(&s.get_as(&ben, "/v1/trash").await.body, "name"), ["sub"]);
    let back = s
        .post_as(&ben, &format!("/v1/folders/{}/restore", id(&team)), json!({}))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);

    // Ada trashes /team; max takes the free path and shares it with ben.
    s.upload_as(&ada, &team_id, "plan.txt", b"secret".to_vec(), &[]).await;
    assert_eq!(
        delete(&s, &ada, &format!("/v1/folders/{team_id}?recursive=true"))
            .await
            .status,
        StatusCode::OK
    );
    let mine = created(&s, &max, "/v1/folders", json!({"path": "/team"})).await;
    let regrant = put(
        &s,
        &max,
        &format!("/v1/folders/{}/grants", id(&mine)),
        Some(json!({"user": "ben", "role": "manager"})),
    )
    .await;
    assert_eq!(regrant.status, StatusCode::OK);
    // Neither max (the new /team's owner) nor ben (its manager) reaches ada's trashed /team.
    for (who, key) in [("max", &max), ("ben", &ben)] {
        assert_eq!(
            column(&s.get_as(key, "/v1/trash").await.body, "name").len(),
            0,
            "{who}'s trash"
        );
        let restore = s
            .post_as(
                key,
                &format!("/v1/folders/{team_id}/restore"),
                json!({"target_parent_id": id(&mine)}),
            )
            .await;
        let missing = s
            .post_as(
                key,
                &format!("/v1/folders/{}/restore", uuid::Uuid::now_v7()),
                json!({"target_parent_id": id(&mine)}),
            )
            .await;
        assert_eq!(
            (restore.status, missing.status),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            "{who}"
        );
        let purge = delete(&s, key, &format!("/v1/folders/{team_id}?permanent=true")).await;
        assert_eq!(purge.status, StatusCode::NOT_FOUND, "{who} purging");
    }
    let restored = s
        .post_as(&ada, &format!("/v1/folders/{team_id}/restore"), json!({}))
        .await;
    assert_eq!(
        restored.status,
        StatusCode::CONFLICT,
        "max's /team holds the path: {:?}",
        restored.body
    );
}

async fn a_reader_with_many_grants_lists_as_one_with_few(backend: Backend) {
    let s = server!(backend);
    let owner = s.key_for("own", false).await;
    let reader = s.key_for("rea", false).await;
    // More grants than a list names inline (100): the filter goes through the grant tables.
    let mut first = String::new();
    for n in 0..120 {
        let folder = created(
            &s,
            &owner,
            "/v1/folders",
            json!({"path": format!("/many/f{n:03}"), "create_parents": true}),
        )
        .await;
        let grant = put(
            &s,
            &owner,
            &format!("/v1/folders/{}/grants", id(&folder)),
            Some(json!({"user": "rea", "role": "editor"})),
        )
        .await;
        assert_eq!(grant.status, StatusCode::OK);
        if n == 0 {
            first = id(&folder);
        }
    }
    let hidden = created(&s, &owner, "/v1/folders", json!({"path": "/many/hidden"})).await;
    let listed = s.get_as(&reader, "/v1/folders?recursive=true&page_size=1000").await;
    let paths = column(&listed.body, "path");
    assert_eq!(paths.len(), 120, "{:?}", listed.body);
    assert!(!paths.contains(&"/many/hidden".to_owned()) && !paths.contains(&"/many".to_owned()));
    assert_eq!(
        column(&s.get_as(&reader, "/v1/views/shared?page_size=1000").await.body, "path").len(),
        120
    );
    let item = s.upload_as(&reader, &first, "x.txt", b"x".to_vec(), &[]).await;
    assert_eq!(
        delete(&s, &reader, &format!("/v1/items/{}", id(&item.body)))
            .await
            .status,
        StatusCode::OK
    );
    let other = s.upload_as(&owner, &id(&hidden), "y.txt", b"y".to_vec(), &[]).await;
    assert_eq!(
        delete(&s, &owner, &format!("/v1/items/{}", id(&other.body)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(column(&s.get_as(&reader, "/v1/trash").await.body, "name"), ["x.txt"]);
}

on_both_backends!(
    a_reader_with_many_grants_lists_as_one_with_few,
    grants_do_not_reach_into_the_trash_through_a_reused_path,
    stars_and_shelves_find_what_each_user_works_on,
    a_team_of_three_works_in_one_folder_by_role,
    groups_are_run_by_their_managers,
    a_folder_moved_into_another_tree_joins_its_owner,
    a_bucket_grant_opens_a_prefix_of_a_configured_bucket,
);
