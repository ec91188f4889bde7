//! The cost of the access check on a listing, against the real `stowage serve` binary on SQLite:
//! 1,000 items in a folder 10 levels deep (`/d1/…/d10`, every level public), listed a page of
//! 1,000 at a time by one client, back to back:
//!
//! 1. by the admin (no access filter),
//! 2. by another user who may read it (the folder's access, and every row's, is checked),
//! 3. by that user over the whole subtree from `/d1` (recursive: every row's folder is checked),
//! 4. and 5. as 2. and 3. once every level is private, by a user who reads them through a group
//!    granted the viewer role on `/d1` (the grants reaching the caller are read per request and
//!    every row is matched against the granted subtrees).
//!
//! It prints p50, p99 and the mean of each, and what the check costs (user minus admin). The
//! teams issue's grants must keep this cost: run it before and after a change to access rules.
//!
//! `cargo bench --bench access` (`STOWAGE_BENCH_ACCESS_ITEMS`, default 1000;
//! `STOWAGE_BENCH_ACCESS_REQUESTS`, default 300)

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::{Server, env_number, load_average, server_over_small_files};

/// How deep the listed folder is.
const DEPTH: usize = 10;

#[tokio::main]
async fn main() {
    let items = env_number("STOWAGE_BENCH_ACCESS_ITEMS", 1000);
    let requests = env_number("STOWAGE_BENCH_ACCESS_REQUESTS", 300);
    println!("load before: {}", load_average());
    let (server, _tree) = server_over_small_files("access-bench-data", items);

    // /d1/…/d9 as plain folders, /d1/…/d10 a synced folder holding the items; all public.
    let parent: String = (1..DEPTH).map(|level| format!("/d{level}")).collect();
    server
        .call(
            Method::POST,
            "/v1/folders",
            Some(json!({"path": parent, "create_parents": true})),
        )
        .await;
    let deepest = server.synced_folder(&format!("{parent}/d{DEPTH}")).await;
    let job = server.sync_once(&deepest).await;
    assert_eq!(job["result"]["created"], items, "{job}");
    let mut top = String::new();
    let mut levels = Vec::new();
    for level in 1..=DEPTH {
        let path: String = (1..=level).map(|l| format!("/d{l}")).collect();
        let folder = server
            .call(Method::GET, &format!("/v1/folders?path={path}"), None)
            .await;
        let id = folder["id"].as_str().expect("a folder id").to_owned();
        server
            .call(
                Method::PATCH,
                &format!("/v1/folders/{id}"),
                Some(json!({"visibility": "public"})),
            )
            .await;
        if level == 1 {
            top = id.clone();
        }
        levels.push(id);
    }
    server
        .call(Method::POST, "/v1/users", Some(json!({"name": "reader"})))
        .await;
    let reader = server
        .call(Method::POST, "/v1/keys", Some(json!({"user": "reader"})))
        .await;
    let reader = reader["key"].as_str().expect("a key").to_owned();
    let grantee = grantee_through_a_group(&server, &top).await;

    println!("\n{items} items in a folder {DEPTH} levels deep, pages of 1,000, one client, {requests} requests each\n");
    println!("| who | listing | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    let own = format!("/v1/folders/{deepest}/items?page_size=1000");
    let subtree = format!("/v1/folders/{top}/items?page_size=1000&recursive=true");
    let admin = measure(&server, None, &own, requests).await;
    print_row("admin", "the folder", &admin);
    let user = measure(&server, Some(&reader), &own, requests).await;
    print_row("another user (public folder)", "the folder", &user);
    let user_subtree = measure(&server, Some(&reader), &subtree, requests).await;
    print_row("another user (public folders)", "recursive from /d1", &user_subtree);
    for id in &levels {
        let private = Some(json!({"visibility": "private"}));
        server.call(Method::PATCH, &format!("/v1/folders/{id}"), private).await;
    }
    let granted = measure(&server, Some(&grantee), &own, requests).await;
    print_row("a group's member (viewer grant on /d1)", "the folder", &granted);
    let granted_subtree = measure(&server, Some(&grantee), &subtree, requests).await;
    print_row(
        "a group's member (viewer grant on /d1)",
        "recursive from /d1",
        &granted_subtree,
    );
    println!(
        "\nthe access check costs {:.2} ms at p50 on a page of 1,000 ({:.1} µs per item)",
        user.p50 - admin.p50,
        (user.p50 - admin.p50) * 1000.0 / items as f64
    );
    println!(
        "through a group's grant it costs {:.2} ms at p50 on a page of 1,000 ({:.1} µs per item)",
        granted.p50 - admin.p50,
        (granted.p50 - admin.p50) * 1000.0 / items as f64
    );
    server.stop();
}

/// A user who reads the subtree of `top` only through a group granted the viewer role on it;
/// answers their key.
async fn grantee_through_a_group(server: &Server, top: &str) -> String {
    server
        .call(Method::POST, "/v1/users", Some(json!({"name": "member"})))
        .await;
    let group = server
        .call(Method::POST, "/v1/groups", Some(json!({"name": "readers"})))
        .await;
    let group = group["id"].as_str().expect("a group id").to_owned();
    server
        .call(
            Method::PUT,
            &format!("/v1/groups/{group}/members/member"),
            Some(json!({})),
        )
        .await;
    server
        .call(
            Method::PUT,
            &format!("/v1/folders/{top}/grants"),
            Some(json!({"group": group, "role": "viewer"})),
        )
        .await;
    let key = server
        .call(Method::POST, "/v1/keys", Some(json!({"user": "member"})))
        .await;
    key["key"].as_str().expect("a key").to_owned()
}

/// Latency figures of one listing, in milliseconds.
struct Figures {
    p50: f64,
    p99: f64,
    mean: f64,
}

/// GETs `path` `requests` times back to back (with `key`, or as the admin); answers the figures.
async fn measure(server: &Server, key: Option<&str>, path: &str, requests: usize) -> Figures {
    let request = match key {
        Some(key) => server.get_request_with(path, key),
        None => server.get_request(path),
    };
    let mut latencies: Vec<Duration> = Vec::with_capacity(requests);
    for round in 0..requests + 10 {
        let started = Instant::now();
        let response = request
            .try_clone()
            .expect("a GET can be cloned")
            .send()
            .await
            .expect("an answer");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let body: serde_json::Value = response.json().await.expect("a JSON page");
        assert!(
            !body["items"].as_array().is_none_or(Vec::is_empty),
            "{path}: an empty page"
        );
        // The first ten warm the caches.
        if round >= 10 {
            latencies.push(started.elapsed());
        }
    }
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(latencies[((latencies.len() - 1) as f64 * q) as usize]);
    Figures {
        p50: at(0.5),
        p99: at(0.99),
        mean: latencies.iter().copied().map(ms).sum::<f64>() / latencies.len() as f64,
    }
}

fn print_row(who: &str, listing: &str, figures: &Figures) {
    println!(
        "| {who} | {listing} | {:.2} ms | {:.2} ms | {:.2} ms |",
        figures.p50, figures.p99, figures.mean
    );
}
