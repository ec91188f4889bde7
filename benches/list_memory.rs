//! Memory and speed under list load, against the real `stowage serve` binary on SQLite: a synced
//! folder of 10,000 items, then 32 clients asking `GET /v1/folders/{id}/items` back to back for
//! 20 s in each of several shapes (pages of 100, pages of 1,000, ordered by size with a search,
//! a recursive listing). For each load it prints requests per second, p50/p99 latency, and the
//! server's resident memory before, at its peak during (anonymous pages, sampled every 20 ms),
//! 2 s after and 15 s after (the allocator hands freed memory back within seconds). Target:
//! under 150 MiB 15 s after any of them.
//!
//! `cargo bench --bench list_memory` (`STOWAGE_BENCH_LIST_ITEMS`, default 10000;
//! `STOWAGE_BENCH_LIST_SECONDS`, default 20; `STOWAGE_BENCH_LIST_CLIENTS`, default 32)

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{RssSampler, Server, env_number, load_average, mib, millis_at, server_over_small_files};

/// The memory every load must come back under.
const AFTER_LIMIT_MIB: f64 = 150.0;

#[tokio::main]
async fn main() {
    let items = env_number("STOWAGE_BENCH_LIST_ITEMS", 10_000);
    let seconds = env_number("STOWAGE_BENCH_LIST_SECONDS", 20) as u64;
    let clients = env_number("STOWAGE_BENCH_LIST_CLIENTS", 32);
    println!("load before: {}", load_average());
    let (server, _tree) = server_over_small_files("list-bench-data", items);
    let folder = server.synced_folder("/bench").await;
    let job = server.sync_once(&folder).await;
    assert_eq!(job["result"]["created"], items, "{job}");

    println!(
        "\n{items} items in one folder; {clients} clients for {seconds} s per load; server RSS after the sync: {:.1} MiB\n",
        mib(server.status_kib("VmRSS"))
    );
    println!("| load | req/s | p50 | p99 | RSS before | peak anon during | RSS 2 s after | RSS 15 s after (anon) |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst_after = 0.0f64;
    for (name, query) in [
        ("pages of 100", "page_size=100"),
        ("pages of 1,000", "page_size=1000"),
        ("by size, descending, search", "order_by=size&desc=true&search=9"),
        ("recursive, pages of 1,000", "recursive=true&page_size=1000"),
    ] {
        let before = server.status_kib("VmRSS");
        let sampler = RssSampler::start(server.pid());
        let path = format!("/v1/folders/{folder}/items?{query}");
        let mut latencies = load(&server, &path, clients, Duration::from_secs(seconds)).await;
        let peak = sampler.stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let soon_after = mib(server.status_kib("VmRSS"));
        tokio::time::sleep(Duration::from_secs(13)).await;
        let after = mib(server.status_kib("VmRSS"));
        let after_anon = mib(server.status_kib("RssAnon"));
        worst_after = worst_after.max(after);
        latencies.sort_unstable();
        let at = |q: f64| millis_at(&latencies, q);
        println!(
            "| {name} | {:.0} | {:.1} ms | {:.1} ms | {:.1} MiB | {:.1} MiB | {soon_after:.1} MiB | {after:.1} MiB ({after_anon:.1}) |",
            latencies.len() as f64 / seconds as f64,
            at(0.5),
            at(0.99),
            mib(before),
            mib(peak),
        );
    }
    println!(
        "\nworst RSS 15 s after a load: {worst_after:.1} MiB (target under {AFTER_LIMIT_MIB} MiB: {})",
        if worst_after < AFTER_LIMIT_MIB { "met" } else { "MISSED" }
    );
    server.stop();
}

/// `clients` tasks GET `path` back to back for `length`; answers every request's latency.
async fn load(server: &Server, path: &str, clients: usize, length: Duration) -> Vec<Duration> {
    let deadline = Instant::now() + length;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let request = server.get_request(path);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let response = request
                        .try_clone()
                        .expect("a GET can be cloned")
                        .send()
                        .await
                        .expect("an answer");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.expect("a body");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a client"));
    }
    all
}
