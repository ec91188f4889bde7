//! Every route in /openapi.json against every kind of caller: no key, an unknown, revoked or
//! expired key, a read-only key, a user who may not see the resource, its owner, an admin. The
//! table below says what each route is (what its `{id}` names, whether it only reads, whether
//! it is for admins); a route without a row fails the test.

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
}

/// One route: method, path, what its parameter names, whether it only reads, whether only admins
/// may use it, and the body to send (a valid one where the body is checked before access).
struct Route {
    method: &'static str,
    path: &'static str,
    names: Names,
    reads: bool,
    admin_only: bool,
    body: Option<fn() -> Value>,
}

const fn route(method: &'static str, path: &'static str, names: Names, reads: bool, admin_only: bool) -> Route {
    Route {
        method,
        path,
        names,
        reads,
        admin_only,
        body: None,
    }
}

fn empty() -> Value {
    json!({})
}

fn new_user() -> Value {
    json!({"name": "made-by-matrix"})
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
        route("delete", "/v1/folders/{id}", Folder, false, false),
        with(route("post", "/v1/folders/{id}/move", Folder, false, false), empty),
        route("get", "/v1/folders/{id}/summary", Folder, true, false),
        with(route("post", "/v1/folders/{id}/sync", Folder, false, false), empty),
        with(route("post", "/v1/folders/{id}/imports", Folder, false, false), empty),
        with(
            route("post", "/v1/folders/{id}/references", Folder, false, false),
            empty,
        ),
        route("post", "/v1/folders/{id}/restore", Folder, false, false),
        route("post", "/v1/folders/{id}/items", Folder, false, false),
        route("get", "/v1/folders/{id}/items", Folder, true, false),
        with(
            route("post", "/v1/folders/{id}/items/move", Folder, false, false),
            item_ids,
        ),
        with(
            route("post", "/v1/folders/{id}/items/delete", Folder, false, false),
            item_ids,
        ),
        route("get", "/v1/items/{id}", Item, true, false),
        with(route("patch", "/v1/items/{id}", Item, false, false), empty),
        route("delete", "/v1/items/{id}", Item, false, false),
        route("get", "/v1/items/{id}/content", Item, true, false),
        route("post", "/v1/items/{id}/restore", Item, false, false),
        with(route("post", "/v1/items/download", Nothing, true, false), item_ids),
        route("get", "/v1/trash", Nothing, true, false),
        route("get", "/v1/jobs", Nothing, true, false),
        route("get", "/v1/jobs/{id}", Job, true, false),
        route("post", "/v1/jobs/{id}/cancel", Job, false, false),
        route("get", "/v1/jobs/{id}/units", Job, true, false),
        with(route("post", "/v1/jobs/noop", Nothing, false, true), empty),
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
    ]
}

/// What the routes' parameters name: the owner's private folder, item, job and key.
struct Fixtures {
    folder: String,
    item: String,
    job: String,
    key: String,
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
        });
        route.path.replace("{id}", &value).replace("{name}", &value)
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
    let fixtures = Fixtures {
        folder,
        item: id(&item.body),
        job: id(&job.body),
        key: spare_key,
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
        } else if route.names != Names::Nothing && route.names != Names::Bucket {
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
