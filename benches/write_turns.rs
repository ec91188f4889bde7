//! Write latency while long write streams run, against the real `stowage serve` binary on
//! SQLite: a sync of 100,000 new files and an import of 100,000 image references run at once,
//! and meanwhile an API write (`PATCH /v1/folders/{id}`) goes every 100 ms and a no-op job is
//! submitted every second (its time from submission to DONE is the job queue's fetch under
//! load). Prints the sync's and the import's run times and p50 / p99 / max of both latencies.
//! SQLite has one write lock; without fair turns (store/turns.rs) these waits reached seconds.
//!
//! `cargo bench --bench write_turns` (`STOWAGE_BENCH_WRITE_OBJECTS`, default 100000)

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, env_number, load_average, stowage_binary, target_dir, tiny_png};

#[tokio::main]
async fn main() {
    let objects = env_number("STOWAGE_BENCH_WRITE_OBJECTS", 100_000);
    let binary = stowage_binary();
    let data = target_dir().join("write-bench-data");
    std::fs::create_dir_all(&data).expect("create the bench data directory");
    let trees = tempfile::tempdir_in(&data).expect("a tree directory");
    let (synced, imported) = (trees.path().join("synced"), trees.path().join("imported"));
    let png = tiny_png();
    for i in 0..objects {
        write_file(&synced, &format!("d{:03}/f{i:06}.txt", i % 100), b"");
        write_file(&imported, &format!("d{:03}/i{i:06}.png", i % 100), &png);
    }
    println!("load before: {}", load_average());
    let config = format!(
        "[buckets.synced]\nurl = \"file://{}\"\n\n[buckets.imported]\nurl = \"file://{}\"\n",
        synced.display(),
        imported.display()
    );
    let server = Server::start(&binary, &data, &config);
    let mirror = post(
        &server,
        "/v1/folders",
        json!({"path": "/mirror", "sync": {"bucket": "synced"}}),
    )
    .await;
    let target = post(&server, "/v1/folders", json!({"path": "/imported"})).await;
    let probe = post(&server, "/v1/folders", json!({"path": "/probe"})).await;
    let (mirror, target, probe) = (id(&mirror), id(&target), id(&probe));
    let spec = json!({"images": (0..objects)
        .map(|i| json!({"objectUrl": format!("file://{}/d{:03}/i{i:06}.png", imported.display(), i % 100)}))
        .collect::<Vec<_>>()});

    let started = Instant::now();
    let sync = post(&server, &format!("/v1/folders/{mirror}/sync"), json!({})).await;
    let import = post(&server, &format!("/v1/folders/{target}/imports"), spec).await;
    let (mut writes, mut noops) = (Vec::new(), Vec::new());
    let mut next_noop = Instant::now();
    let jobs = [id(&sync), id(&import)];
    while !finished(&server, &jobs).await {
        let at = Instant::now();
        server
            .call(
                reqwest::Method::PATCH,
                &format!("/v1/folders/{probe}"),
                Some(json!({"description": format!("probe {}", writes.len())})),
            )
            .await;
        writes.push(at.elapsed());
        if at >= next_noop {
            next_noop = at + Duration::from_secs(1);
            let submitted = Instant::now();
            let job = post(&server, "/v1/jobs/noop", json!({"units": 1})).await;
            server.finish(job).await;
            noops.push(submitted.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(at.elapsed())).await;
    }
    let sync = server.finish(sync).await;
    let import = server.finish(import).await;
    println!(
        "\n{objects} files synced and {objects} images imported at once in {:.1} s (sync job {:.1} s, {}; import job {:.1} s, {})\n",
        started.elapsed().as_secs_f64(),
        ran(&sync),
        sync["status"],
        ran(&import),
        import["status"],
    );
    println!("| meanwhile | count | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (what, mut latencies) in [
        ("API write (PATCH a folder)", writes),
        ("no-op job, submitted to DONE", noops),
    ] {
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "| {what} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
            latencies.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    server.stop();
}

/// Writes `content` at `key` below `root`, creating its directory.
fn write_file(root: &Path, key: &str, content: &[u8]) {
    let path = root.join(key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create a directory");
    }
    std::fs::write(path, content).expect("write a file");
}

/// POSTs `body` to `path` as the admin; answers the JSON answer.
async fn post(server: &Server, path: &str, body: Value) -> Value {
    server.call(reqwest::Method::POST, path, Some(body)).await
}

/// The `id` of a JSON answer.
fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Whether every one of `jobs` is finished.
async fn finished(server: &Server, jobs: &[String]) -> bool {
    for job in jobs {
        let job = server
            .call(reqwest::Method::GET, &format!("/v1/jobs/{job}"), None)
            .await;
        if !matches!(job["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED")) {
            return false;
        }
    }
    true
}

/// How long a finished job ran, in seconds.
fn ran(job: &Value) -> f64 {
    let at = |field: &str| {
        time::OffsetDateTime::parse(
            job[field].as_str().unwrap_or_default(),
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
        .unwrap_or(f64::NAN)
    };
    at("finished_at") - at("started_at")
}
