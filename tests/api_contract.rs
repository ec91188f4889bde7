//! The API's shape: every route is in /openapi.json, unknown routes are JSON 404s.

mod common;

use common::Backend;
use reqwest::{Method, StatusCode};

/// Every route the server serves. A route added without documentation fails this test.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/folders"),
    ("get", "/v1/folders"),
    ("get", "/v1/folders/{id}"),
    ("patch", "/v1/folders/{id}"),
    ("delete", "/v1/folders/{id}"),
    ("post", "/v1/folders/{id}/move"),
    ("get", "/v1/folders/{id}/summary"),
    ("post", "/v1/folders/{id}/sync"),
    ("post", "/v1/folders/{id}/imports"),
    ("post", "/v1/folders/{id}/references"),
    ("get", "/v1/jobs/{id}/units"),
    ("get", "/v1/buckets"),
    ("post", "/v1/buckets/{name}/check"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/noop"),
    ("post", "/v1/jobs/{id}/retry"),
    ("post", "/v1/jobs/bulk"),
    ("get", "/v1/queues"),
    ("post", "/v1/queues/{kind}/pause"),
    ("post", "/v1/queues/{kind}/resume"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("post", "/v1/folders/{id}/items"),
    ("get", "/v1/folders/{id}/items"),
    ("post", "/v1/folders/{id}/items/move"),
    ("post", "/v1/folders/{id}/items/delete"),
    ("get", "/v1/items/{id}"),
    ("patch", "/v1/items/{id}"),
    ("delete", "/v1/items/{id}"),
    ("get", "/v1/items/{id}/content"),
    ("get", "/v1/items/{id}/url"),
    ("post", "/v1/folders/{id}/uploads"),
    ("post", "/v1/uploads/{id}/complete"),
    ("delete", "/v1/uploads/{id}"),
    ("post", "/v1/items/download"),
    ("get", "/v1/folders/{id}/items/export"),
    ("post", "/v1/folders/{id}/restore"),
    ("post", "/v1/items/{id}/restore"),
    ("get", "/v1/trash"),
    ("post", "/v1/reencode"),
    ("post", "/v1/expiry"),
    ("post", "/v1/users"),
    ("get", "/v1/users"),
    ("get", "/v1/users/me"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/audit"),
    ("put", "/v1/folders/{id}/star"),
    ("delete", "/v1/folders/{id}/star"),
    ("put", "/v1/items/{id}/star"),
    ("delete", "/v1/items/{id}/star"),
    ("get", "/v1/views/home"),
    ("get", "/v1/views/shared"),
    ("get", "/v1/views/starred"),
    ("post", "/v1/groups"),
    ("get", "/v1/groups"),
    ("get", "/v1/groups/{id}"),
    ("delete", "/v1/groups/{id}"),
    ("put", "/v1/groups/{id}/members/{user}"),
    ("delete", "/v1/groups/{id}/members/{user}"),
    ("get", "/v1/folders/{id}/grants"),
    ("put", "/v1/folders/{id}/grants"),
    ("delete", "/v1/folders/{id}/grants"),
    ("get", "/v1/buckets/{name}/grants"),
    ("put", "/v1/buckets/{name}/grants"),
    ("delete", "/v1/buckets/{name}/grants"),
    ("get", "/v1/folders/{id}/quota"),
    ("put", "/v1/folders/{id}/quota"),
    ("delete", "/v1/folders/{id}/quota"),
    ("put", "/v1/users/{name}/quota"),
    ("delete", "/v1/users/{name}/quota"),
    ("get", "/v1/usage"),
    ("post", "/v1/usage/recount"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/o/{token}"),
    ("put", "/o/{token}"),
];

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_served() {
    let s = server!(Backend::Sqlite);
    let doc = s.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from /openapi.json"
        );
        // And the server really routes it (anything but the fallback's 404 "no route").
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let answer = s
            .send(
                method.to_uppercase().parse().expect("method"),
                &concrete,
                Some(&s.admin_key),
                None,
            )
            .await;
        assert!(
            !answer.message().starts_with("no route"),
            "{method} {path} is documented but not served"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().map_or(0, |m| m.len())).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes this test does not know: {:?}",
        paths.keys()
    );
}

#[tokio::test]
async fn routes_without_parameters_refuse_a_query_string() {
    let s = server!(Backend::Sqlite);
    let folder = s.mkdir("/q").await;
    let answer = s
        .get(&format!("/v1/folders/{}?verbose=1", folder["id"].as_str().expect("id")))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.message().contains("verbose"), "{}", answer.message());
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let s = server!(Backend::Sqlite);
    let answer = s.send(Method::PUT, "/v1/folders", Some(&s.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let s = server!(Backend::Sqlite);
    let answer = s.get("/v1/nothing-here").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "NOT_FOUND");
    assert!(answer.message().contains("/v1/nothing-here"));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_that_errors_repeat() {
    let s = server!(Backend::Sqlite);
    let ask = |id: Option<&'static str>| {
        let mut req = s.request(Method::GET, "/v1/folders/not-an-id", Some(&s.admin_key));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        async move {
            let resp = req.send().await.expect("an answer");
            let header = resp.headers()["x-request-id"].to_str().expect("text").to_owned();
            let body: serde_json::Value = resp.json().await.expect("a JSON error");
            (
                header,
                body["error"]["request_id"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    // None given: the server makes one.
    let (made, in_body) = ask(None).await;
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    assert_eq!(in_body, made);
    // A client's id comes back, in the header and the error body.
    assert_eq!(
        ask(Some("trace-42.a")).await,
        ("trace-42.a".to_owned(), "trace-42.a".to_owned())
    );
    // One that could break a log line is replaced.
    let (replaced, _) = ask(Some("two words")).await;
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    // Answers that are not errors carry one too.
    let health = s.request(Method::GET, "/healthz", None).send().await.expect("healthz");
    assert!(health.headers().contains_key("x-request-id"));
}
