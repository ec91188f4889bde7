//! Jobs across real processes: SIGKILL and restart, SIGTERM, and several workers sharing one
//! PostgreSQL queue.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{PgDatabase, Process, free_port, poll_job, postgres_url, wait_healthy};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Settings that make a dead worker's jobs recoverable within a few seconds.
fn fast_recovery(db_url: Option<&str>) -> Vec<(&'static str, String)> {
    let mut envs = vec![
        ("STOWAGE__JOBS__HEARTBEAT_SECONDS", "1".to_owned()),
        ("STOWAGE__JOBS__MISSED_HEARTBEATS", "2".to_owned()),
        ("STOWAGE__JOBS__POLL_INTERVAL_MS", "200".to_owned()),
        ("STOWAGE__JOBS__SHUTDOWN_TIMEOUT_SECONDS", "10".to_owned()),
    ];
    if let Some(url) = db_url {
        envs.push(("STOWAGE__DATABASE__URL", url.to_owned()));
    }
    envs
}

fn serve(data: &Path, port: u16, envs: &[(&str, String)], extra: &[&str]) -> Process {
    let data = data.to_str().expect("utf8");
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--data-dir", data, "serve", "--listen", &listen];
    args.extend(extra);
    Process::spawn(&args, envs, &Path::new(data).join("serve.log"))
}

/// Sends `method url` with `key` (and a JSON body when given); answers the status and JSON body.
async fn call(method: reqwest::Method, url: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("request");
    (resp.status(), resp.json().await.expect("JSON answer"))
}

async fn get_job(base: &str, key: &str, id: &str) -> Value {
    call(reqwest::Method::GET, &format!("{base}/v1/jobs/{id}"), key, None)
        .await
        .1
}

/// Starts `serve` and waits until it answers; returns the process and the admin key.
async fn serve_ready(data: &Path, port: u16, envs: &[(&str, String)], extra: &[&str]) -> (Process, String) {
    let process = serve(data, port, envs, extra);
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    let key = std::fs::read_to_string(data.join("admin.key"))
        .expect("admin.key")
        .trim()
        .to_owned();
    (process, key)
}

/// Once a long-polling client sees job `id` RUNNING with at least `units` units done, kills `process` with SIGKILL and starts the server again on the same data;
/// returns the new process. Fails if the job ends before it is seen midway.
async fn kill_midway_and_restart(
    process: Process,
    data: &Path,
    port: u16,
    envs: &[(&str, String)],
    (key, id): (&str, &str),
    units: i64,
) -> Process {
    let base = format!("http://127.0.0.1:{port}");
    let midway = |j: &Value| j["status"] == "RUNNING" && j["progress"]["units_done"].as_i64() >= Some(units);
    let seen = poll_job(&base, key, id, Duration::from_secs(120), |j| {
        midway(j) || j["status"] == "DONE"
    })
    .await;
    assert!(midway(&seen), "the job ended before it was seen midway: {seen}");
    process.signal("-KILL");
    drop(process);
    serve_ready(data, port, envs, &[]).await.0
}

/// Every item of folder `folder_id` (its whole subtree with `recursive`), following every page.
async fn all_items(base: &str, key: &str, folder_id: &str, recursive: bool) -> Vec<Value> {
    let list = format!("{base}/v1/folders/{folder_id}/items?recursive={recursive}&page_size=1000");
    let mut url = list.clone();
    let mut items = Vec::new();
    loop {
        let (_, page) = call(reqwest::Method::GET, &url, key, None).await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_page_token"].as_str() {
            Some(token) => url = format!("{list}&page_token={token}"),
            None => return items,
        }
    }
}

async fn submit(base: &str, key: &str, body: Value) -> Value {
    let (status, job) = call(reqwest::Method::POST, &format!("{base}/v1/jobs/noop"), key, Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    job
}

async fn killed_mid_job_then_restarted_finishes_once(db_url: Option<String>) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = fast_recovery(db_url.as_deref());
    let (first, key) = serve_ready(&data, port, &envs, &[]).await;
    let job = submit(&base, &key, json!({"units": 20, "unit_millis": 150})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    let _second = kill_midway_and_restart(first, &data, port, &envs, (&key, &id), 3).await;
    let done = poll_job(&base, &key, &id, Duration::from_secs(90), |j| j["status"] == "DONE").await;
    assert_eq!(
        done["attempts"], 2,
        "the killed attempt and the one that finished: {done}"
    );
    assert_eq!(done["result"]["attempt"], 2);
    assert_eq!(done["progress"]["units_done"], 20);
    // Nothing runs it again afterwards.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = get_job(&base, &key, &id).await;
    assert_eq!(
        later["version"], done["version"],
        "the finished job never changed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_job_killed_mid_run_finishes_once_after_restart() {
    killed_mid_job_then_restarted_finishes_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_job_killed_mid_run_finishes_once_after_restart() {
    let Some(admin) = postgres_url() else { return };
    let db = PgDatabase::create(&admin).await;
    killed_mid_job_then_restarted_finishes_once(Some(db.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_unit_and_leaves_the_rest_for_the_next_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = fast_recovery(None);
    let (mut first, key) = serve_ready(&data, port, &envs, &[]).await;
    let job = submit(&base, &key, json!({"units": 40, "unit_millis": 100})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    poll_job(&base, &key, &id, Duration::from_secs(30), |j| {
        j["progress"]["units_done"].as_i64() >= Some(2)
    })
    .await;
    first.signal("-TERM");
    let status = first.wait_exit(Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(status.success());

    let (_second, _) = serve_ready(&data, port, &envs, &[]).await;
    let resumed = get_job(&base, &key, &id).await;
    assert!(
        resumed["status"] == "PENDING" && resumed["message"].as_str().unwrap_or("").contains("shutdown")
            || resumed["status"] == "RUNNING",
        "left for the next start: {resumed}"
    );
    let done = poll_job(&base, &key, &id, Duration::from_secs(60), |j| j["status"] == "DONE").await;
    assert_eq!(done["attempts"], 2);
}

/// Marks job `id`'s apalis task as `Done`, as if a worker had finished with it: a task no
/// worker takes again. In the PostgreSQL database `db_url`, or the SQLite catalog under `data`.
async fn strand_task(db_url: Option<&str>, data: &Path, id: &str) {
    let task = ulid::Ulid::from_bytes(*uuid::Uuid::parse_str(id).expect("uuid").as_bytes()).to_string();
    let changed = match db_url {
        Some(url) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .expect("connect");
            sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE id = $1")
                .bind(task)
                .execute(&mut conn)
                .await
                .expect("strand the task")
                .rows_affected()
        }
        None => {
            let url = format!("sqlite://{}", data.join("stowage.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .expect("open the catalog");
            sqlx::query("UPDATE Jobs SET status = 'Done', done_at = strftime('%s', 'now') WHERE id = ?1")
                .bind(task)
                .execute(&mut conn)
                .await
                .expect("strand the task")
                .rows_affected()
        }
    };
    assert_eq!(changed, 1, "the job's task is in the queue");
}

/// A job submitted where no worker runs, whose queue task is then left where no worker takes
/// it, still runs once a worker starts: the reconciler releases the task.
async fn stranded_task_runs_after_all(db_url: Option<String>) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = fast_recovery(db_url.as_deref());
    let (mut api, key) = serve_ready(&data, port, &envs, &["--no-workers"]).await;
    let job = submit(&base, &key, json!({"units": 1, "unit_millis": 10})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    api.signal("-TERM");
    assert!(api.wait_exit(Duration::from_secs(15)).expect("exits").success());
    strand_task(db_url.as_deref(), &data, &id).await;

    let (_server, _) = serve_ready(&data, port, &envs, &[]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        get_job(&base, &key, &id).await["status"],
        "PENDING",
        "no worker takes a stranded task"
    );
    // The reconciler looks every 30 s at jobs pending for 30 s.
    let done = poll_job(&base, &key, &id, Duration::from_secs(90), |j| j["status"] == "DONE").await;
    assert_eq!(done["attempts"], 1, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pending_job_whose_queue_task_was_stranded_runs_after_all() {
    stranded_task_runs_after_all(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pending_job_whose_queue_task_was_stranded_runs_after_all() {
    let Some(admin) = postgres_url() else { return };
    let db = PgDatabase::create(&admin).await;
    stranded_task_runs_after_all(Some(db.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_200_jobs_on_postgres_without_running_any_twice() {
    let Some(admin) = postgres_url() else { return };
    let db = PgDatabase::create(&admin).await;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = fast_recovery(Some(&db.url));
    let (_api, key) = serve_ready(&data, port, &envs, &["--no-workers"]).await;
    let data_arg = data.to_str().expect("utf8").to_owned();
    let _workers: Vec<Process> = (0..2)
        .map(|_| Process::spawn(&["--data-dir", &data_arg, "worker"], &envs, &data.join("worker.log")))
        .collect();

    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(
            submit(&base, &key, json!({"units": 1, "unit_millis": 20})).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let mut pids = HashMap::new();
    for id in &ids {
        let done = poll_job(&base, &key, id, Duration::from_secs(120), |j| j["status"] == "DONE").await;
        assert_eq!(done["attempts"], 1, "no job ran twice: {done}");
        *pids.entry(done["result"]["pid"].as_u64().expect("pid")).or_insert(0) += 1;
    }
    let worker_pids: HashSet<u64> = pids.keys().copied().collect();
    assert_eq!(worker_pids.len(), 2, "both workers took jobs: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_midway_and_run_again_converges_to_the_bucket() {
    const OBJECTS: i64 = 20_000;
    // Each object is 256 KiB, mostly a hole: cheap to write, yet hashing them keeps the sync
    // running for seconds (tiny files synced in under one, too fast to catch midway).
    const OBJECT_BYTES: u64 = 256 * 1024;
    let dir = tempfile::tempdir().expect("tmp");
    let bucket = dir.path().join("bucket");
    for i in 0..OBJECTS {
        let path = bucket.join(format!("d{:02}/f{i:05}.bin", i % 40));
        if i < 40 {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        }
        let mut file = std::fs::File::create(path).expect("create");
        file.write_all(format!("object {i}").as_bytes()).expect("write");
        file.set_len(OBJECT_BYTES).expect("extend");
    }
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut envs = fast_recovery(None);
    envs.push(("STOWAGE__BUCKETS__SRC__URL", format!("file://{}", bucket.display())));
    let (first, key) = serve_ready(&data, port, &envs, &[]).await;
    let body = json!({"path": "/big", "sync": {"bucket": "src"}});
    let (_, folder) = call(reqwest::Method::POST, &format!("{base}/v1/folders"), &key, Some(body)).await;
    let folder_id = folder["id"].as_str().expect("id").to_owned();
    let sync_url = format!("{base}/v1/folders/{folder_id}/sync");
    let (_, job) = call(reqwest::Method::POST, &sync_url, &key, None).await;
    let id = job["id"].as_str().expect("id").to_owned();

    // A long-polling client sees the sync's progress move; the kill lands midway.
    let _second = kill_midway_and_restart(first, &data, port, &envs, (&key, &id), 1).await;

    // The killed sync is picked up again and finishes.
    let done = poll_job(&base, &key, &id, Duration::from_secs(300), |j| j["status"] == "DONE").await;
    assert!(done["attempts"].as_i64() >= Some(2), "{done}");
    let (_, again) = call(reqwest::Method::POST, &sync_url, &key, None).await;
    let again = poll_job(
        &base,
        &key,
        again["id"].as_str().expect("id"),
        Duration::from_secs(300),
        |j| j["status"] == "DONE",
    )
    .await;
    assert_eq!(again["result"]["unchanged"], OBJECTS, "{again}");
    assert_eq!(again["result"]["created"], 0);

    // The catalog holds each object exactly once.
    let mut keys = HashSet::new();
    for item in all_items(&base, &key, &folder_id, true).await {
        assert!(
            keys.insert(item["object_key"].as_str().expect("key").to_owned()),
            "duplicate item {item}"
        );
        assert_eq!(item["is_tombstone"], false);
    }
    assert_eq!(keys.len() as i64, OBJECTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_and_restarted_creates_every_item_exactly_once() {
    const UNITS: usize = 50_000;
    let dir = tempfile::tempdir().expect("tmp");
    let bucket = dir.path().join("bucket");
    let png = common::media::png(1, 1);
    let mut images = Vec::with_capacity(UNITS);
    for i in 0..UNITS {
        let key = format!("d{:02}/img{i:05}.png", i % 50);
        let path = bucket.join(&key);
        if i < 50 {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        }
        std::fs::write(&path, &png).expect("write");
        images.push(json!({"objectUrl": format!("file://{}/{key}", bucket.display())}));
    }
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut envs = fast_recovery(None);
    envs.push(("STOWAGE__BUCKETS__SRC__URL", format!("file://{}", bucket.display())));
    let (first, key) = serve_ready(&data, port, &envs, &[]).await;
    let body = json!({"path": "/imported"});
    let (_, folder) = call(reqwest::Method::POST, &format!("{base}/v1/folders"), &key, Some(body)).await;
    let folder_id = folder["id"].as_str().expect("id").to_owned();
    let spec = json!({ "images": images });
    let (status, job) = call(
        reqwest::Method::POST,
        &format!("{base}/v1/folders/{folder_id}/imports"),
        &key,
        Some(spec),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let _second = kill_midway_and_restart(first, &data, port, &envs, (&key, &id), 5_000).await;
    let done = poll_job(&base, &key, &id, Duration::from_secs(300), |j| j["status"] == "DONE").await;
    assert!(done["attempts"].as_i64() >= Some(2), "{done}");
    assert_eq!(done["progress"]["units_done"], UNITS, "{}", done["progress"]);
    assert_eq!(done["result"]["created"], UNITS);

    // Exactly one item per object, under its own title.
    let mut titles = HashSet::new();
    for item in all_items(&base, &key, &folder_id, false).await {
        let title = item["title"].as_str().expect("title").to_owned();
        assert!(!title.contains(" ("), "a second copy was renamed: {title}");
        assert!(titles.insert(title), "duplicate item {item}");
    }
    assert_eq!(titles.len(), UNITS);
}
