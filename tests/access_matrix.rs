//! Every route in /openapi.json against every kind of caller: no key, an unknown, revoked or
//! expired key, a read-only key, a user who may not see the resource, a viewer, an editor (by a
//! user grant and through a group) and a manager of it, its owner, an admin. The table below
//! says what each route is (what its `{id}` names, whether it only reads, whether it is for
//! admins, the role it needs); a route without a row fails the test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Backend, TestServer, id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What a route's `{…}` parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Nothing,
    Folder,
    Item,
    Job,
    Key,
    Bucket,
    /// A group: groups are seen by every signed-in user, and changed by their managers.
    Group,
    /// A user (by name).
    User,
    /// A webhook (the owner's, on their folder).
    Webhook,
    /// A direct upload session (the owner's, into their folder).
    Upload,
}

/// The role a route needs on the folder, item or job it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Editor,
    Manager,
}

/// One route: method, path, what its parameter names, whether it only reads, whether only admins
/// may use it, and the body to send (a valid one where the body is checked before access).
struct Route {
    method: &'static str,
    path: &'static str,
    names: Names,
    reads: bool,
    admin_only: bool,
    need: Role,
    body: Option<fn() -> Value>,
    query: &'static str,
}

const fn route(method: &'static str, path: &'static str, names: Names, reads: bool, admin_only: bool) -> Route {
    Route {
        method,
        path,
        names,
        reads,
        admin_only,
        need: if reads { Role::Viewer } else { Role::Editor },
        body: None,
        query: "",
    }
}

/// The same route, needing the manager role.
const fn managers(mut route: Route) -> Route {
    route.need = Role::Manager;
    route
}

/// The same route, needing only the viewer role (though it is a change of the caller's own).
const fn viewers(mut route: Route) -> Route {
    route.need = Role::Viewer;
    route
}

/// The same route, called with `query`.
const fn queried(mut route: Route, query: &'static str) -> Route {
    route.query = query;
    route
}

fn empty() -> Value {
    json!({})
}

fn new_user() -> Value {
    json!({"name": "made-by-matrix"})
}

fn reference() -> Value {
    json!({"url": "s3://nowhere/x.png"})
}

fn to_root() -> Value {
    json!({"parent_id": null})
}

fn new_group() -> Value {
    json!({"name": "made-by-matrix"})
}

fn grant_to_nobody() -> Value {
    json!({"user": "nobody-such", "role": "viewer"})
}

fn bucket_to_nobody() -> Value {
    json!({"user": "nobody-such"})
}

fn a_quota() -> Value {
    json!({"max_bytes": 1_000_000})
}

fn items_to_nowhere() -> Value {
    json!({"item_ids": [uuid::Uuid::nil()], "target_folder_id": uuid::Uuid::nil()})
}

fn an_upload() -> Value {
    json!({"title": "u.bin", "size": 1})
}

fn a_webhook() -> Value {
    json!({"url": "https://example.com/hook", "events": ["job.finished"]})
}

fn a_dry_run() -> Value {
    json!({"action": "cancel", "filter": {"kind": "NOOP"}, "dry_run": true})
}

fn item_ids() -> Value {
    json!({"item_ids": [uuid::Uuid::nil()]})
}

/// Every route, with what it is. A route missing here fails the test.
fn table() -> Vec<Route> {
    use Names::*;
    let with = |mut r: Route, body: fn() -> Value| {
        r.body = Some(body);
        r
    };
    vec![
        with(route("post", "/v1/folders", Nothing, false, false), empty),
        route("get", "/v1/folders", Nothing, true, false),
        route("get", "/v1/folders/{id}", Folder, true, false),
        with(route("patch", "/v1/folders/{id}", Folder, false, false), empty),
        managers(route("delete", "/v1/folders/{id}", Folder, false, false)),
        managers(with(
            route("post", "/v1/folders/{id}/move", Folder, false, false),
            to_root,
        )),
        route("get", "/v1/folders/{id}/summary", Folder, true, false),
        with(route("post", "/v1/folders/{id}/sync", Folder, false, false), empty),
        with(route("post", "/v1/folders/{id}/imports", Folder, false, false), empty),
        with(
            route("post", "/v1/folders/{id}/references", Folder, false, false),
            reference,
        ),
        managers(route("post", "/v1/folders/{id}/restore", Folder, false, false)),
        managers(route("get", "/v1/folders/{id}/grants", Folder, true, false)),
        managers(with(
            route("put", "/v1/folders/{id}/grants", Folder, false, false),
            grant_to_nobody,
        )),
        managers(queried(
            route("delete", "/v1/folders/{id}/grants", Folder, false, false),
            "?user=nobody-such",
        )),
        route("post", "/v1/folders/{id}/items", Folder, false, false),
        route("get", "/v1/folders/{id}/items", Folder, true, false),
        route("get", "/v1/folders/{id}/items/export", Folder, true, false),
        with(
            route("post", "/v1/folders/{id}/items/move", Folder, false, false),
            items_to_nowhere,
        ),
        with(
            route("post", "/v1/folders/{id}/items/delete", Folder, false, false),
            item_ids,
        ),
        route("get", "/v1/items/{id}", Item, true, false),
        with(route("patch", "/v1/items/{id}", Item, false, false), empty),
        route("delete", "/v1/items/{id}", Item, false, false),
        route("get", "/v1/items/{id}/content", Item, true, false),
        route("get", "/v1/items/{id}/url", Item, true, false),
        with(
            route("post", "/v1/folders/{id}/uploads", Folder, false, false),
            an_upload,
        ),
        route("post", "/v1/uploads/{id}/complete", Upload, false, false),
        route("delete", "/v1/uploads/{id}", Upload, false, false),
        route("post", "/v1/items/{id}/restore", Item, false, false),
        with(route("post", "/v1/items/download", Nothing, true, false), item_ids),
        route("get", "/v1/trash", Nothing, true, false),
        route("get", "/v1/jobs", Nothing, true, false),
        route("get", "/v1/jobs/{id}", Job, true, false),
        route("post", "/v1/jobs/{id}/cancel", Job, false, false),
        route("get", "/v1/jobs/{id}/units", Job, true, false),
        with(route("post", "/v1/jobs/noop", Nothing, false, true), empty),
        route("post", "/v1/jobs/{id}/retry", Job, false, false),
        with(route("post", "/v1/jobs/bulk", Nothing, false, false), a_dry_run),
        route("get", "/v1/queues", Nothing, true, true),
        route("post", "/v1/queues/{kind}/pause", Nothing, false, true),
        route("post", "/v1/queues/{kind}/resume", Nothing, false, true),
        with(route("post", "/v1/webhooks", Nothing, false, false), a_webhook),
        route("get", "/v1/webhooks", Nothing, true, false),
        route("get", "/v1/webhooks/{id}", Webhook, true, false),
        with(route("patch", "/v1/webhooks/{id}", Webhook, false, false), empty),
        route("delete", "/v1/webhooks/{id}", Webhook, false, false),
        route("get", "/v1/webhooks/{id}/deliveries", Webhook, true, false),
        with(route("post", "/v1/reencode", Nothing, false, false), item_ids),
        route("post", "/v1/expiry", Nothing, false, true),
        route("get", "/v1/buckets", Nothing, true, false),
        route("post", "/v1/buckets/{name}/check", Bucket, true, true),
        with(route("post", "/v1/users", Nothing, false, true), new_user),
        route("get", "/v1/users", Nothing, true, true),
        route("get", "/v1/users/me", Nothing, true, false),
        with(route("post", "/v1/keys", Nothing, false, false), empty),
        route("get", "/v1/keys", Nothing, true, false),
        route("delete", "/v1/keys/{id}", Key, false, false),
        route("get", "/v1/audit", Nothing, true, true),
        viewers(route("put", "/v1/folders/{id}/star", Folder, false, false)),
        viewers(route("delete", "/v1/folders/{id}/star", Folder, false, false)),
        viewers(route("put", "/v1/items/{id}/star", Item, false, false)),
        viewers(route("delete", "/v1/items/{id}/star", Item, false, false)),
        route("get", "/v1/views/home", Nothing, true, false),
        route("get", "/v1/views/shared", Nothing, true, false),
        route("get", "/v1/views/starred", Nothing, true, false),
        with(route("post", "/v1/groups", Nothing, false, false), new_group),
        route("get", "/v1/groups", Nothing, true, false),
        route("get", "/v1/groups/{id}", Group, true, false),
        route("delete", "/v1/groups/{id}", Group, false, false),
        with(
            route("put", "/v1/groups/{id}/members/{user}", Group, false, false),
            empty,
        ),
        route("delete", "/v1/groups/{id}/members/{user}", Group, false, false),
        route("get", "/v1/buckets/{name}/grants", Bucket, true, true),
        with(
            route("put", "/v1/buckets/{name}/grants", Bucket, false, true),
            bucket_to_nobody,
        ),
        queried(
            route("delete", "/v1/buckets/{name}/grants", Bucket, false, true),
            "?user=nobody-such",
        ),
        route("get", "/v1/folders/{id}/quota", Folder, true, false),
        managers(with(
            route("put", "/v1/folders/{id}/quota", Folder, false, false),
            a_quota,
        )),
        managers(route("delete", "/v1/folders/{id}/quota", Folder, false, false)),
        with(route("put", "/v1/users/{name}/quota", User, false, true), a_quota),
        route("delete", "/v1/users/{name}/quota", User, false, true),
        route("get", "/v1/usage", Nothing, true, false),
        route("post", "/v1/usage/recount", Nothing, false, true),
    ]
}

/// What the routes' parameters name: the owner's private folder, item, job and key.
struct Fixtures {
    folder: String,
    item: String,
    job: String,
    key: String,
    group: String,
    webhook: String,
    upload: String,
}

impl Fixtures {
    fn path(&self, route: &Route, pick: Option<&str>) -> String {
        let value = pick.map(str::to_owned).unwrap_or_else(|| match route.names {
            Names::Nothing => String::new(),
            Names::Folder => self.folder.clone(),
            Names::Item => self.item.clone(),
            Names::Job => self.job.clone(),
            Names::Key => self.key.clone(),
            Names::Bucket => "lake".into(),
            Names::Group => self.group.clone(),
            Names::User => "nobody-such".into(),
            Names::Webhook => self.webhook.clone(),
            Names::Upload => self.upload.clone(),
        });
        let path = route.path.replace("{id}", &value).replace("{name}", &value);
        let path = path.replace("{user}", "nobody-such").replace("{kind}", "NOOP");
        format!("{path}{}", route.query)
    }
}

async fn call(s: &TestServer, route: &Route, key: Option<&str>, path: &str) -> common::Answer {
    let method: Method = route.method.to_uppercase().parse().expect("method");
    s.send(method, path, key, route.body.map(|make| make())).await
}

async fn every_route_answers_every_kind_of_caller_as_the_table_says(backend: Backend) {
    let lake = tempfile::tempdir().expect("a bucket directory");
    let lake_url = format!("file://{}", lake.path().display());
    let s = server!(backend, |settings| {
        settings
            .buckets
            .insert("lake".into(), stowage::config::BucketSettings::at(lake_url));
    });

    // Every documented route has a row, and every row a documented route.
    let doc = s.send(Method::GET, "/openapi.json", None, None).await.body;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    let table = table();
    let known: BTreeSet<(String, String)> = table.iter().map(|r| (r.method.into(), r.path.into())).collect();
    let missing: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the access table: {missing:?}"
    );
    let stale: Vec<_> = known.difference(&documented).collect();
    assert!(stale.is_empty(), "rows for routes that no longer exist: {stale:?}");

    // The callers.
    let owner = s.key_for("owner", false).await;
    let other = s.key_for("other", false).await;
    let made = |body: Value| {
        let (s, owner) = (&s, owner.clone());
        async move {
            let key = s.send(Method::POST, "/v1/keys", Some(&owner), Some(body)).await;
            assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
            (id(&key.body), key.body["key"].as_str().expect("key").to_owned())
        }
    };
    let (_, reader) = made(json!({"scope": "read"})).await;
    let (revoked_id, revoked) = made(json!({})).await;
    let (_, expired) = made(json!({"expires_at": common::in_seconds(1)})).await;
    let (spare_key, _) = made(json!({"name": "spare"})).await;
    let revoke = s
        .send(Method::DELETE, &format!("/v1/keys/{revoked_id}"), Some(&owner), None)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);

    // The owner's private things.
    let folder = s
        .send(
            Method::POST,
            "/v1/folders",
            Some(&owner),
            Some(json!({"path": "/private"})),
        )
        .await;
    let folder = id(&folder.body);
    let quota = s
        .send(
            Method::PUT,
            &format!("/v1/folders/{folder}/quota"),
            Some(&owner),
            Some(a_quota()),
        )
        .await;
    assert_eq!(quota.status, StatusCode::OK, "{:?}", quota.body);
    let item = s.upload_as(&owner, &folder, "a.txt", b"secret".to_vec(), &[]).await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    let spec = json!({"images": [{"objectUrl": "s3://nowhere/x.png"}]});
    let job = s
        .send(
            Method::POST,
            &format!("/v1/folders/{folder}/imports"),
            Some(&owner),
            Some(spec),
        )
        .await;
    assert!(job.status.is_success(), "{:?}", job.body);
    let webhook = s
        .send(
            Method::POST,
            "/v1/webhooks",
            Some(&owner),
            Some(json!({"url": "https://example.com/hook", "events": ["job.finished"], "folder_id": folder})),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{:?}", webhook.body);
    let webhook = id(&webhook.body);
    let upload = s
        .send(
            Method::POST,
            &format!("/v1/folders/{folder}/uploads"),
            Some(&owner),
            Some(an_upload()),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{:?}", upload.body);
    let upload = id(&upload.body);
    // Who the owner shares the folder with: a viewer, an editor, a manager (user grants) and a
    // group of editors.
    let viewer = s.key_for("viewer", false).await;
    let editor = s.key_for("editor", false).await;
    let manager = s.key_for("manager", false).await;
    let member = s.key_for("member", false).await;
    let team = s.post_as(&owner, "/v1/groups", json!({"name": "editors"})).await;
    assert_eq!(team.status, StatusCode::CREATED, "{:?}", team.body);
    let team = id(&team.body);
    let joined = s
        .send(
            Method::PUT,
            &format!("/v1/groups/{team}/members/member"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{:?}", joined.body);
    for grant in [
        json!({"user": "viewer", "role": "viewer"}),
        json!({"user": "editor", "role": "editor"}),
        json!({"user": "manager", "role": "manager"}),
        json!({"group": team, "role": "editor"}),
    ] {
        let granted = s
            .send(
                Method::PUT,
                &format!("/v1/folders/{folder}/grants"),
                Some(&owner),
                Some(grant),
            )
            .await;
        assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    }
    let roles = [
        (Role::Viewer, "viewer", &viewer),
        (Role::Editor, "editor", &editor),
        (Role::Editor, "group member", &member),
        (Role::Manager, "manager", &manager),
    ];
    let fixtures = Fixtures {
        folder,
        item: id(&item.body),
        job: id(&job.body),
        key: spare_key,
        group: team,
        webhook,
        upload,
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for route in &table {
        let path = fixtures.path(route, None);
        let what = format!("{} {}", route.method, route.path);
        // No key, an unknown one, a revoked one, an expired one: 401, whatever the route.
        for key in [
            None,
            Some("stw_unknown"),
            Some(revoked.as_str()),
            Some(expired.as_str()),
        ] {
            let answer = call(&s, route, key, &path).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{what} with {key:?}: {:?}",
                answer.body
            );
        }
        // A read-only key: reads pass the scope check, everything else is refused.
        let answer = call(&s, route, Some(&reader), &path).await;
        if route.reads && route.method == "get" && !route.admin_only {
            // The owner's own read key reads what the owner reads.
            assert!(answer.status.is_success(), "{what} with a read key: {:?}", answer.body);
        } else if route.reads {
            assert!(
                !answer.message().contains("may only read"),
                "{what} with a read key: {:?}",
                answer.body
            );
        } else {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what} with a read key");
            assert!(
                answer.message().contains("may only read"),
                "{what}: {}",
                answer.message()
            );
        }
        // Another user: admin routes are 403; the owner's things answer exactly as things that
        // do not exist (same status, same message but for the id).
        let answer = call(&s, route, Some(&other), &path).await;
        if route.admin_only {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what} by another user");
        } else if matches!(
            route.names,
            Names::Folder | Names::Item | Names::Job | Names::Key | Names::Webhook | Names::Upload
        ) {
            let missing_id = uuid::Uuid::new_v4().to_string();
            let nothing = call(&s, route, Some(&other), &fixtures.path(route, Some(&missing_id))).await;
            let real_id = path.split('/').find(|p| p.len() == 36).unwrap_or_default().to_owned();
            if matches!(route.method, "get" | "delete") {
                assert_eq!(nothing.status, StatusCode::NOT_FOUND, "{what}: a missing id");
            }
            assert_eq!(
                answer.status, nothing.status,
                "{what}: another user tells the owner's thing from nothing"
            );
            assert_eq!(
                answer.message().replace(&real_id, "ID"),
                nothing.message().replace(&missing_id, "ID"),
                "{what}: another user tells the owner's thing from nothing"
            );
        } else {
            assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{what} by another user");
        }
        // Roles given by grants: a weaker role than the route needs is refused (403, naming the
        // role it needs); a strong enough one reads (changes are not made here: they would
        // change the fixtures).
        if matches!(route.names, Names::Folder | Names::Item | Names::Job) {
            for (role, who, key) in roles {
                let reads = route.reads && route.method == "get";
                if role >= route.need && !reads {
                    continue;
                }
                let answer = if route.method == "post" && route.path == "/v1/folders/{id}/items" {
                    // An upload: a real multipart body, so the access check is what answers.
                    s.upload_as(key, &fixtures.folder, "m.txt", b"m".to_vec(), &[]).await
                } else {
                    call(&s, route, Some(key), &path).await
                };
                if role < route.need {
                    assert_eq!(
                        answer.status,
                        StatusCode::FORBIDDEN,
                        "{what} by a {who}: {:?}",
                        answer.body
                    );
                    assert!(
                        answer.message().contains("needs the"),
                        "{what} by a {who}: {}",
                        answer.message()
                    );
                } else {
                    assert!(answer.status.is_success(), "{what} by a {who}: {:?}", answer.body);
                }
            }
        }
        // Admin-only routes refuse the owner; reads by the owner and the admin are allowed.
        if route.admin_only {
            let answer = call(&s, route, Some(&owner), &path).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what} by the owner");
        }
        if route.reads && route.method == "get" {
            for (who, key) in [("owner", &owner), ("admin", &s.admin_key)] {
                if route.admin_only && who == "owner" {
                    continue;
                }
                let answer = call(&s, route, Some(key), &path).await;
                assert!(answer.status.is_success(), "{what} by the {who}: {:?}", answer.body);
            }
        }
    }
}

on_both_backends!(every_route_answers_every_kind_of_caller_as_the_table_says);
