//! Job queue figures: no-op jobs per second through the queue, and how fast 1,000 concurrent
//! long-polling waiters wake when their jobs finish. Runs against SQLite, and against
//! PostgreSQL when `STOWAGE_TEST_POSTGRES_URL` names a server (a fresh database is made).
//!
//! `cargo bench --bench jobs`

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use stowage::app::{self, Roles};
use stowage::config::Settings;
use stowage::domain::caller::Caller;
use stowage::domain::job::JobKind;
use stowage::services::jobs::Submission;
use support::{drop_postgres_database, fresh_postgres_database};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const THROUGHPUT_JOBS: usize = 2000;
const WAIT_JOBS: usize = 20;
const WAITERS_PER_JOB: usize = 50;

#[tokio::main]
async fn main() {
    println!(
        "| storage | submitted/s | no-op jobs/s end to end ({THROUGHPUT_JOBS} jobs) | waiter wake-up p50 | p99 | max ({} waiters) |",
        WAIT_JOBS * WAITERS_PER_JOB
    );
    println!("|---|---|---|---|---|---|");
    bench("SQLite", None).await;
    if let Ok(admin) = std::env::var("STOWAGE_TEST_POSTGRES_URL") {
        let (name, url) = fresh_postgres_database(&admin, "stowage_bench").await;
        bench("PostgreSQL", Some(url)).await;
        drop_postgres_database(&admin, &name).await;
    }
}

async fn bench(label: &str, database_url: Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.log.filter = "warn".into();
    settings.jobs.concurrency.noop = WAIT_JOBS;
    settings.jobs.poll_interval_ms = 100;
    if let Some(url) = database_url {
        settings.database.url = url;
    }
    let settings = settings.completed().expect("settings");
    let running = app::start(settings.clone(), Roles::ALL).await.expect("start");
    let admin = Caller::user("admin", true);
    let jobs = running.services.jobs.clone();

    // Throughput: 16 concurrent submitters put no-op jobs straight to the service, then every
    // job is waited for.
    let started = Instant::now();
    let ids: Vec<_> = futures::stream::iter(0..THROUGHPUT_JOBS)
        .map(|_| {
            let jobs = jobs.clone();
            async move {
                let submission = Submission {
                    kind: JobKind::Noop,
                    folder_id: None,
                    params: json!({}),
                    idempotency_key: None,
                    retry_of: None,
                };
                jobs.submit("admin", submission).await.expect("submit").job.id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let submitted = started.elapsed();
    for id in &ids {
        while !jobs
            .wait(&admin, *id, None, Duration::from_secs(60))
            .await
            .expect("wait")
            .job
            .status
            .is_terminal()
        {}
    }
    let per_second = THROUGHPUT_JOBS as f64 / started.elapsed().as_secs_f64();

    // Wake-up latency: many HTTP long polls on jobs that finish together.
    let base = format!("http://{}", running.addr.expect("http"));
    let key = std::fs::read_to_string(settings.data_dir.join("admin.key"))
        .expect("key")
        .trim()
        .to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WAIT_JOBS * WAITERS_PER_JOB)
        .build()
        .expect("client");
    let mut waiters = Vec::new();
    for _ in 0..WAIT_JOBS {
        let submission = Submission {
            kind: JobKind::Noop,
            folder_id: None,
            params: json!({"units": 1, "unit_millis": 3000}),
            idempotency_key: None,
            retry_of: None,
        };
        let id = jobs.submit("admin", submission).await.expect("submit").job.id;
        for _ in 0..WAITERS_PER_JOB {
            let (client, url, key) = (client.clone(), format!("{base}/v1/jobs/{id}"), key.clone());
            waiters.push(tokio::spawn(async move { wait_until_done(&client, &url, &key).await }));
        }
    }
    let mut lateness: Vec<f64> = Vec::new();
    for waiter in waiters {
        lateness.push(waiter.await.expect("waiter"));
    }
    lateness.sort_by(f64::total_cmp);
    let pct = |p: f64| lateness[((lateness.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "| {label} | {:.0} | {per_second:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
        THROUGHPUT_JOBS as f64 / submitted.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        lateness.last().copied().unwrap_or_default()
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Long-polls a job until it is DONE; returns how many milliseconds after it finished the
/// waiter learned of it.
async fn wait_until_done(client: &reqwest::Client, url: &str, key: &str) -> f64 {
    let mut since = None;
    loop {
        let mut query = vec![("wait_seconds", "60".to_owned())];
        query.extend(since.map(|v: i64| ("since_version", v.to_string())));
        let job: Value = client
            .get(url)
            .bearer_auth(key)
            .query(&query)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        let received = OffsetDateTime::now_utc();
        if job["status"] == "DONE" {
            let finished =
                OffsetDateTime::parse(job["finished_at"].as_str().expect("finished_at"), &Rfc3339).expect("time");
            return (received - finished).as_seconds_f64() * 1000.0;
        }
        since = job["version"].as_i64();
    }
}
