//! The deployment README.md's "A cloud-only deployment" describes, run as it says: one
//! PostgreSQL, moto as the managed bucket and as a synced bucket, API processes started with
//! `serve --no-workers` and two `stowage worker` processes, each with a data directory of its
//! own (nothing shared on disk), all with the same `stowage.toml`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::buckets::Fixture;
use common::{PgDatabase, Process, free_port, poll_job, postgres_url, tar_entries, wait_healthy};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stowage::config::BucketSettings;

/// Objects in the synced bucket: enough for a sync to run for many seconds against moto.
const SYNCED_OBJECTS: usize = 20_000;

/// The part of `stowage.toml` this test writes.
#[derive(serde::Serialize)]
struct ConfigFile {
    database: BTreeMap<&'static str, String>,
    buckets: BTreeMap<&'static str, BucketSettings>,
}

/// A cloud-only deployment under construction: its configuration and its processes.
struct Deployment {
    config: PathBuf,
    root: tempfile::TempDir,
    db_url: String,
}

impl Deployment {
    /// Writes `stowage.toml` for database `db_url` and the two buckets.
    fn new(db_url: &str, managed: &Fixture, raw: &Fixture) -> Self {
        let root = tempfile::tempdir().expect("tmp");
        let file = ConfigFile {
            database: BTreeMap::from([("url", db_url.to_owned())]),
            buckets: BTreeMap::from([("managed", managed.settings()), ("raw", raw.settings())]),
        };
        let config = root.path().join("stowage.toml");
        std::fs::write(&config, toml::to_string(&file).expect("toml")).expect("write stowage.toml");
        Self {
            config,
            root,
            db_url: db_url.to_owned(),
        }
    }

    /// The data directory of the process called `name`.
    fn data_dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// `stowage --config stowage.toml --data-dir DATA ARGS`, with `envs`, for process `name`.
    fn args(&self, name: &str, rest: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--config".to_owned(),
            self.config.to_str().expect("utf8").to_owned(),
            "--data-dir".to_owned(),
            self.data_dir(name).to_str().expect("utf8").to_owned(),
        ];
        args.extend(rest.iter().map(|a| (*a).to_owned()));
        args
    }

    /// Runs a one-shot command (`migrate`, `keys create`) to its end; answers its stdout.
    fn run(&self, rest: &[&str]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(self.args("admin", rest))
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_API_KEY")
            .output()
            .expect("run stowage");
        assert!(
            out.status.success(),
            "stowage {rest:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Starts a long-running process `name` (`serve --no-workers …` or `worker`) with a host
    /// name of its own, as a container would have.
    fn start(&self, name: &str, rest: &[&str]) -> Process {
        let envs = [
            ("HOSTNAME", name.to_owned()),
            ("STOWAGE__JOBS__HEARTBEAT_SECONDS", "1".to_owned()),
            ("STOWAGE__JOBS__MISSED_HEARTBEATS", "2".to_owned()),
            ("STOWAGE__JOBS__POLL_INTERVAL_MS", "200".to_owned()),
        ];
        let args = self.args(name, rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Process::spawn(&args, &envs, &self.data_dir(name).join("process.log"))
    }

    /// Starts an API process (`serve --no-workers`) called `name`; answers it and its URL.
    async fn api(&self, name: &str) -> (Process, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let process = self.start(name, &["serve", "--no-workers", "--listen", &listen]);
        let base = format!("http://{listen}");
        wait_healthy(&base).await;
        (process, base)
    }

    /// The worker name of the process holding job `id`'s queue task, as apalis recorded it.
    async fn task_holder(&self, id: &str) -> Option<String> {
        let task = ulid::Ulid::from_bytes(*uuid::Uuid::parse_str(id).expect("uuid").as_bytes()).to_string();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db_url)
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT lock_by FROM apalis.jobs WHERE id = $1")
            .bind(task)
            .fetch_one(&mut conn)
            .await
            .expect("the job's task")
    }
}

/// A client of one API process with one key.
struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// `method path` with an optional JSON body; answers the status and the JSON answer.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.expect("request");
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// `method path` that must answer `expected`; answers the JSON answer.
    async fn expect(&self, method: Method, path: &str, body: Option<Value>, expected: StatusCode) -> Value {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    /// The bytes `GET path` answers, with request headers `headers`.
    async fn bytes(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Vec<u8>) {
        let mut request = self.request(Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let resp = request.send().await.expect("request");
        (resp.status(), resp.bytes().await.expect("body").to_vec())
    }

    /// Uploads `bytes` as `name` into folder `folder`; answers the new item.
    async fn upload(&self, folder: &str, name: &str, bytes: Vec<u8>) -> Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let resp = self
            .request(Method::POST, &format!("/v1/folders/{folder}/items"))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), StatusCode::CREATED, "upload {name}");
        resp.json().await.expect("item")
    }

    /// Waits until job `id` is finished; answers it.
    async fn finished(&self, id: &str, limit: Duration) -> Value {
        poll_job(&self.base, &self.key, id, limit, |j| {
            matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
        })
        .await
    }
}

fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// Every file under `dir` that is not a process log: what a process kept on its own disk.
fn kept_on_disk(dir: &Path) -> Vec<PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|path| path.extension().is_none_or(|ext| ext != "log"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_only_deployment_of_api_and_worker_processes_shares_nothing_but_postgres_and_buckets() {
    let Some(admin) = postgres_url() else { return };
    let (Some(managed), Some(raw)) = (Fixture::s3().await, Fixture::s3().await) else {
        return;
    };
    let db = PgDatabase::create(&admin).await;
    let deployment = Deployment::new(&db.url, &managed, &raw);

    // Steps 3 to 5 of the README: migrations, the first admin key, the processes.
    deployment.run(&["migrate"]);
    let admin_key = deployment
        .run(&["keys", "create", "--name", "ops", "--admin"])
        .trim()
        .to_owned();
    let (_api_a, base_a) = deployment.api("api-a").await;
    let (_api_b, base_b) = deployment.api("api-b").await;
    let mut workers = BTreeMap::from([
        ("worker-1", deployment.start("worker-1", &["worker"])),
        ("worker-2", deployment.start("worker-2", &["worker"])),
    ]);
    let a = Client::new(&base_a, &admin_key);
    let b = Client::new(&base_b, &admin_key);

    // An upload through one API process lands in the managed bucket and is served by the other:
    // content, a range, a tar and a signed URL that needs no key.
    let folder = id(&a
        .expect(
            Method::POST,
            "/v1/folders",
            Some(json!({"path": "/uploads"})),
            StatusCode::CREATED,
        )
        .await);
    let notes: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let item = a.upload(&folder, "notes.bin", notes.clone()).await;
    let item_id = id(&item);
    assert_eq!(managed.keys().await.len(), 1, "the upload is in the managed bucket");
    assert_eq!(
        b.bytes(&format!("/v1/items/{item_id}/content"), &[]).await,
        (StatusCode::OK, notes.clone())
    );
    let (status, range) = b
        .bytes(&format!("/v1/items/{item_id}/content"), &[("range", "bytes=1000-1999")])
        .await;
    assert_eq!(
        (status, range.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &notes[1000..2000])
    );
    let tar = b
        .request(Method::POST, "/v1/items/download")
        .json(&json!({"item_ids": [item_id]}))
        .send()
        .await
        .expect("tar");
    assert_eq!(tar.status(), StatusCode::OK);
    let entries = tar_entries(&tar.bytes().await.expect("tar body"));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, notes, "the tar holds the upload");
    let signed = b
        .expect(Method::GET, &format!("/v1/items/{item_id}/url"), None, StatusCode::OK)
        .await;
    let url = signed["url"].as_str().expect("url");
    assert!(
        url.starts_with("http://127.0.0.1:5000/"),
        "moto's own presigned URL: {url}"
    );
    let fetched = reqwest::get(url).await.expect("signed GET");
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.expect("body").to_vec(), notes);

    // A key made on one API process works on the other until it is revoked there.
    let made = a
        .expect(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "laptop"})),
            StatusCode::CREATED,
        )
        .await;
    let laptop = Client::new(&base_b, made["key"].as_str().expect("secret"));
    laptop.expect(Method::GET, "/v1/keys", None, StatusCode::OK).await;
    a.expect(
        Method::DELETE,
        &format!("/v1/keys/{}", id(&made)),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let refused = laptop
        .expect(Method::GET, "/v1/keys", None, StatusCode::UNAUTHORIZED)
        .await;
    assert!(
        refused["error"]["message"].as_str().unwrap_or("").contains("revoked"),
        "{refused}"
    );

    // A video uploaded through the API is re-encoded by a worker, which reads it from the bucket
    // and writes the rendition back; the other API process serves the rendition.
    if common::media::have_ffmpeg() {
        let video = common::media::webm_vp9_opus(deployment.root.path());
        let clip = a.upload(&folder, "clip.webm", video.clone()).await;
        let job = a
            .expect(
                Method::POST,
                "/v1/reencode",
                Some(json!({"item_ids": [id(&clip)]})),
                StatusCode::ACCEPTED,
            )
            .await;
        let done = a.finished(&id(&job), Duration::from_secs(120)).await;
        assert_eq!(done["status"], "DONE", "{done}");
        assert_eq!(done["progress"]["units_done"], 1, "{done}");
        let holder = deployment.task_holder(&id(&job)).await.unwrap_or_default();
        assert!(holder.starts_with("worker-"), "a worker process ran it: {holder:?}");
        let (status, rendition) = b.bytes(&format!("/v1/items/{}/content", id(&clip)), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            common::media::top_level_boxes(&rendition).contains(&"ftyp".to_owned()),
            "an MP4 rendition"
        );
        let (_, original) = b
            .bytes(&format!("/v1/items/{}/content?original=true", id(&clip)), &[])
            .await;
        assert_eq!(original, video);
        assert_eq!(managed.keys().await.len(), 3, "upload, video and its rendition");
    }

    // A sync of 20,000 objects: the worker running it is killed midway and the other one
    // finishes it, with exact counts and no duplicates.
    let clock = std::time::Instant::now();
    futures::stream::iter(0..SYNCED_OBJECTS)
        .for_each_concurrent(32, |i| {
            let raw = &raw;
            async move {
                raw.put(&format!("d{:02}/f{i:05}.txt", i % 40), format!("object {i}").as_bytes())
                    .await
            }
        })
        .await;
    eprintln!("{SYNCED_OBJECTS} objects put into moto in {:?}", clock.elapsed());
    let synced = id(&a
        .expect(
            Method::POST,
            "/v1/folders",
            Some(json!({"path": "/raw", "sync": {"bucket": "raw"}})),
            StatusCode::CREATED,
        )
        .await);
    let sync_path = format!("/v1/folders/{synced}/sync");
    let job = id(&a.expect(Method::POST, &sync_path, None, StatusCode::ACCEPTED).await);
    let midway = |j: &Value| j["status"] == "RUNNING" && j["progress"]["units_done"].as_i64() >= Some(1);
    let seen = poll_job(&base_a, &admin_key, &job, Duration::from_secs(120), |j| {
        midway(j) || j["status"] == "DONE"
    })
    .await;
    assert!(midway(&seen), "the sync ended before it was seen midway: {seen}");
    let holder = deployment.task_holder(&job).await.expect("a worker holds the sync");
    let (&killed, _) = workers
        .iter()
        .find(|(name, _)| holder.starts_with(&format!("{name}-")))
        .unwrap_or_else(|| panic!("no worker called {holder}"));
    let victim = workers.remove(killed).expect("worker");
    victim.signal("-KILL");
    drop(victim);
    eprintln!("{killed} killed {:?} into the sync: {seen}", clock.elapsed());
    let done = a.finished(&job, Duration::from_secs(300)).await;
    eprintln!("the sync finished {:?} after it started: {done}", clock.elapsed());
    assert_eq!(done["status"], "DONE", "{done}");
    assert!(done["attempts"].as_i64() >= Some(2), "{done}");
    let survivor = deployment.task_holder(&job).await.unwrap_or_default();
    assert!(
        !survivor.starts_with(&format!("{killed}-")),
        "the other worker finished it: {survivor}"
    );
    assert_eq!(done["result"]["listed"], SYNCED_OBJECTS, "{done}");
    assert_eq!(done["result"]["tombstoned"], 0, "{done}");

    // The catalog holds each object exactly once, and a second sync finds nothing to do.
    let mut keys = HashSet::new();
    let listing = format!("/v1/folders/{synced}/items?recursive=true&page_size=1000");
    let mut page = b.expect(Method::GET, &listing, None, StatusCode::OK).await;
    loop {
        for item in page["items"].as_array().expect("items") {
            let key = item["object_key"].as_str().expect("key").to_owned();
            assert!(keys.insert(key), "duplicate item {item}");
            assert_eq!(item["is_tombstone"], false);
        }
        let Some(token) = page["next_page_token"].as_str() else {
            break;
        };
        page = b
            .expect(
                Method::GET,
                &format!("{listing}&page_token={token}"),
                None,
                StatusCode::OK,
            )
            .await;
    }
    assert_eq!(keys.len(), SYNCED_OBJECTS);
    let again = id(&b.expect(Method::POST, &sync_path, None, StatusCode::ACCEPTED).await);
    let again = b.finished(&again, Duration::from_secs(300)).await;
    eprintln!("a second sync finished {:?} after the first started", clock.elapsed());
    assert_eq!(again["result"]["unchanged"], SYNCED_OBJECTS, "{again}");
    assert_eq!(again["result"]["created"], 0, "{again}");

    // No process kept anything on its own disk but its log.
    for name in ["api-a", "api-b", "worker-1", "worker-2"] {
        let kept = kept_on_disk(&deployment.data_dir(name));
        assert!(kept.is_empty(), "{name} kept {kept:?}");
    }
}
