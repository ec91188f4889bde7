//! Test harness: starts the real server on 127.0.0.1:0 over a fresh SQLite file or a fresh
//! PostgreSQL database, and speaks HTTP to it.
#![allow(dead_code)]

pub mod buckets;
pub mod media;

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Executor;
use stowage::app::{self, Running};
use stowage::config::Settings;
use stowage::services::Services;
use tempfile::TempDir;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on, from `STOWAGE_TEST_POSTGRES_URL`.
/// Without it PostgreSQL tests are skipped, except under CI where that is an error.
pub fn postgres_url() -> Option<String> {
    match std::env::var("STOWAGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but STOWAGE_TEST_POSTGRES_URL is not set; run the suite with bash tests/run.sh")
        }
        _ => None,
    }
}

/// A fresh, empty PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("stowage_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
        Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        block_on_own_thread(async move {
            if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
                let _ = conn
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            }
        });
    }
}

/// Runs `work` to its end on a thread with its own runtime: for a `Drop` that runs inside a
/// test's runtime, which cannot block on a future itself.
fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work);
    })
    .join();
}

/// The `id` of a JSON object (a folder, item or job).
pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

/// The values of `field` in each element of a page's `items`.
pub fn column(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("a page with items")
        .iter()
        .map(|row| row[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every regular file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// An item row for inserting straight into the store (for what uploads cannot make): a plain
/// text item titled `title` in folder `folder_id`, pointing at `object_key` in `bucket`.
pub fn item_row(folder_id: &str, title: &str, bucket: &str, object_key: &str) -> stowage::domain::item::Item {
    let now = time::OffsetDateTime::now_utc();
    let folder_id = uuid::Uuid::parse_str(folder_id).expect("folder id");
    stowage::domain::item::Item {
        item_type: stowage::domain::item::ItemType::PlainText,
        mime_type: "text/plain".into(),
        ..stowage::domain::item::Item::new(
            folder_id,
            title.to_owned(),
            bucket.to_owned(),
            object_key.to_owned(),
            now,
        )
    }
}

/// Polls `check` every 50 ms for up to 10 s; true once it holds.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}

/// An RFC 3339 time `seconds` from now.
pub fn in_seconds(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// Polls the async `check` every 50 ms for up to 10 s; true once it holds.
pub async fn eventually_async<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check().await
}

/// Whether the server at `addr` answers `GET /healthz` with 200 (plain TCP, no runtime needed).
pub fn healthz_ok(addr: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let mut reply = String::new();
    std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.0\r\n\r\n").is_ok()
        && std::io::Read::read_to_string(&mut stream, &mut reply).is_ok()
        && reply.split(' ').nth(1) == Some("200")
}

/// The real `stowage serve` binary in a child process, over a fresh SQLite data dir.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
    pub admin_key: String,
    pub data_dir: PathBuf,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `stowage serve` with extra environment variables and waits until it answers.
    pub fn spawn(envs: &[(&str, &str)]) -> Self {
        Self::spawn_in(tempfile::tempdir().expect("tmp"), envs)
    }

    /// Kills the process with SIGKILL and starts a new one on the same data directory.
    pub fn kill_and_restart(mut self, envs: &[(&str, &str)]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tmp");
        let kept = std::mem::replace(&mut self._dir, dir);
        Self::spawn_in(kept, envs)
    }

    /// Starts `stowage serve` over the data directory `dir/data`.
    fn spawn_in(dir: TempDir, envs: &[(&str, &str)]) -> Self {
        let data_dir = dir.path().join("data");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("addr").port()
        };
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
        cmd.args([
            "--data-dir",
            data_dir.to_str().expect("utf8"),
            "serve",
            "--listen",
            &listen,
        ])
        .env_remove("STOWAGE_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn serve");
        let started = std::time::Instant::now();
        while !healthz_ok(&listen) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let admin_key = std::fs::read_to_string(data_dir.join("admin.key"))
            .expect("admin.key")
            .trim()
            .to_owned();
        Self {
            child,
            base: format!("http://{listen}"),
            admin_key,
            data_dir,
            _dir: dir,
        }
    }

    /// The process's peak resident set (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    /// A `kB` figure of the process's `/proc/PID/status` (`RssAnon`, `VmRSS`, …).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// Stops the server with SIGTERM and answers what it logged.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut log);
        }
        log
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    pub data_dir: PathBuf,
    pub settings: Settings,
    http: reqwest::Client,
    running: Option<Running>,
    /// The managed bucket, seen the way the store's own tools see it.
    managed: buckets::Fixture,
    _pg: Option<PgDatabase>,
    _dir: TempDir,
}

/// The managed bucket tests run against: a local directory at `DATA_DIR/objects`, unless
/// `STOWAGE_TEST_MANAGED_BUCKET` names `s3` (moto), `azure` (Azurite) or `gcs`
/// (fake-gcs-server): tests/run.sh runs the item, trash, expiry and re-encode tests once more on
/// each.
pub async fn managed_fixture(data_dir: &Path) -> buckets::Fixture {
    let which = std::env::var("STOWAGE_TEST_MANAGED_BUCKET").unwrap_or_default();
    let fixture = match which.as_str() {
        "" | "file" => return buckets::Fixture::Local(data_dir.join("objects")),
        "s3" => buckets::Fixture::s3().await,
        "azure" => buckets::Fixture::azure("stowage-sync"),
        "gcs" => buckets::Fixture::gcs().await,
        other => panic!("STOWAGE_TEST_MANAGED_BUCKET={other}: use s3, azure, gcs or file"),
    };
    fixture.unwrap_or_else(|| panic!("STOWAGE_TEST_MANAGED_BUCKET={which} needs its emulator's variable"))
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The error message of an error body.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl TestServer {
    /// Starts a server; `None` when the backend is PostgreSQL and no server is configured.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after letting `adjust` change its settings.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        Self::start_over(backend, None, adjust).await
    }

    /// Starts a server with `fixture` configured as bucket `src`.
    pub async fn with_bucket(backend: Backend, fixture: &buckets::Fixture) -> Option<Self> {
        let bucket = fixture.settings();
        Self::start_with(backend, move |settings| {
            settings.buckets.insert("src".into(), bucket);
        })
        .await
    }

    /// Starts a server whose managed bucket is `managed` (else the one [`managed_fixture`]
    /// chooses), after letting `adjust` change its settings.
    pub async fn start_over(
        backend: Backend,
        managed: Option<buckets::Fixture>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            data_dir: dir.path().join("data"),
            ..Settings::default()
        };
        settings.server.listen = "127.0.0.1:0".parse().expect("addr");
        // CI runs many servers at once on two cores: a writer may wait past the default 5 s for
        // SQLite's lock there (a bulk-actions test once answered 503), so tests wait longer.
        settings.database.busy_timeout_ms = 15_000;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let Some(admin_url) = postgres_url() else {
                    eprintln!("skipping: STOWAGE_TEST_POSTGRES_URL is not set");
                    return None;
                };
                let db = PgDatabase::create(&admin_url).await;
                settings.database.url = db.url.clone();
                settings.database.max_connections = 8;
                Some(db)
            }
        };
        let managed = match managed {
            Some(managed) => managed,
            None => managed_fixture(&settings.data_dir).await,
        };
        if !managed.is_local() {
            settings
                .buckets
                .insert(stowage::config::MANAGED_BUCKET.to_owned(), managed.settings());
        }
        adjust(&mut settings);
        let settings = settings.completed().expect("valid settings");
        let running = app::start(settings.clone(), app::Roles::ALL)
            .await
            .expect("server starts");
        let admin_key = std::fs::read_to_string(settings.data_dir.join("admin.key"))
            .expect("admin.key")
            .trim()
            .to_owned();
        Some(Self {
            base: format!("http://{}", running.addr.expect("serves HTTP")),
            admin_key,
            data_dir: settings.data_dir.clone(),
            settings,
            http: reqwest::Client::new(),
            running: Some(running),
            managed,
            _pg: pg,
            _dir: dir,
        })
    }

    /// Creates an API key for user `name`.
    pub async fn key_for(&self, name: &str, admin: bool) -> String {
        let running = self.running.as_ref().expect("running");
        running
            .services
            .keys
            .create_direct(name, admin, Default::default())
            .await
            .expect("create key")
            .key
    }

    /// Sends a request with `key` (or none) and an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// GET as the admin.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Some(&self.admin_key), None).await
    }

    /// POST a JSON body as the admin.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&self.admin_key), Some(body)).await
    }

    /// PATCH a JSON body as the admin.
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(&self.admin_key), Some(body)).await
    }

    /// DELETE as the admin.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, Some(&self.admin_key), None).await
    }

    /// Creates a folder by path (with parents) as the admin and returns it.
    pub async fn mkdir(&self, path: &str) -> Value {
        let answer = self
            .post("/v1/folders", serde_json::json!({"path": path, "create_parents": true}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "mkdir {path}: {:?}", answer.body);
        answer.body
    }

    /// GETs `path` as the admin and answers the raw body, insisting on 200.
    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let resp = self
            .request(Method::GET, path, Some(&self.admin_key))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.bytes().await.expect("body").to_vec()
    }

    /// Creates a folder by path (with parents) as the admin and returns its id.
    pub async fn folder(&self, path: &str) -> String {
        id(&self.mkdir(path).await)
    }

    /// The use cases the server runs on (for set-up that the API does not offer).
    pub fn services(&self) -> &Services {
        &self.running.as_ref().expect("running").services
    }

    /// The managed bucket's directory (a test that needs it checks [`Self::managed_is_local`]).
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// Whether the managed bucket is a local directory (see [`managed_fixture`]).
    pub fn managed_is_local(&self) -> bool {
        self.managed.is_local()
    }

    /// The keys of the objects in the managed bucket (temp files of writes in progress included;
    /// the lock files that mark live processes left out).
    pub async fn object_keys(&self) -> Vec<String> {
        let mut keys = self.managed.keys().await;
        keys.retain(|key| !key.ends_with(".lock"));
        keys
    }

    /// The content of object `key` of the managed bucket, `None` when it is not there.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.managed.get(key).await
    }

    /// Whether the managed bucket holds the object of `item` (an item's JSON).
    pub async fn holds(&self, item: &Value) -> bool {
        self.object(item["object_key"].as_str().expect("object_key"))
            .await
            .is_some()
    }

    /// The managed bucket as a test fixture (to put objects in it).
    pub fn managed(&self) -> &buckets::Fixture {
        &self.managed
    }

    /// A request builder for `path` with `key`, for what `send` does not cover (multipart,
    /// headers, raw bodies).
    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// Uploads `bytes` as file `name` into folder `folder_id` with extra form fields, as `key`.
    pub async fn upload_as(
        &self,
        key: &str,
        folder_id: &str,
        name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> Answer {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let resp = self
            .request(Method::POST, &format!("/v1/folders/{folder_id}/items"), Some(key))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Uploads as the admin.
    pub async fn upload(&self, folder_id: &str, name: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> Answer {
        self.upload_as(&self.admin_key.clone(), folder_id, name, bytes, fields)
            .await
    }

    /// Uploads as the admin and insists on 201; answers the item.
    pub async fn upload_ok(&self, folder_id: &str, name: &str, bytes: Vec<u8>) -> Value {
        let answer = self.upload(folder_id, name, bytes, &[]).await;
        assert_eq!(answer.status, StatusCode::CREATED, "upload {name}: {:?}", answer.body);
        answer.body
    }

    /// Starts a second process on the same database and data directory, with workers and a
    /// scheduler but no HTTP; stop it with [`stop_running`].
    pub async fn second_worker(&self) -> Running {
        self.second_process(app::Roles {
            http: false,
            workers: true,
        })
        .await
    }

    /// Starts a second process with `roles` over the same database and buckets (on a port of its
    /// own); stop it with [`stop_running`].
    pub async fn second_process(&self, roles: app::Roles) -> Running {
        let mut second = self.settings.clone();
        second.server.listen = "127.0.0.1:0".parse().expect("addr");
        app::start(second, roles).await.expect("second process")
    }

    /// GET `path` with `key`.
    pub async fn get_as(&self, key: &str, path: &str) -> Answer {
        self.send(Method::GET, path, Some(key), None).await
    }

    /// POST the JSON `body` to `path` with `key`.
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(key), Some(body)).await
    }

    /// Stops the server gracefully and starts it again on the same database and data
    /// directory, on a new port (`base` follows).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            let _ = running.task.await;
        }
        let running = app::start(self.settings.clone(), app::Roles::ALL)
            .await
            .expect("server starts again");
        self.base = format!("http://{}", running.addr.expect("serves HTTP"));
        self.running = Some(running);
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            let _ = running.task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown.cancel();
        }
    }
}

/// Shuts a process from [`TestServer::second_worker`] down and waits for it.
pub async fn stop_running(running: Running) {
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Sends the first `sent` bytes of a multipart upload that announces `total` bytes, then hangs
/// up, over a raw connection.
pub fn cut_off_upload(s: &TestServer, folder_id: &str, total: usize, sent: usize) {
    use std::io::Write;
    let addr = s.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let boundary = "XBOUNDARYX";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let request = format!(
        "POST /v1/folders/{folder_id}/items HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        s.admin_key,
        head.len() + total
    );
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(head.as_bytes()).expect("write");
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).expect("write");
        left -= n;
    }
    stream.flush().expect("flush");
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(stream);
}

/// Generates one test per backend for each named `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Starts a server for `backend`, or returns from the test when it cannot run here.
#[macro_export]
macro_rules! server {
    ($backend:expr) => {
        match $crate::common::TestServer::start($backend).await {
            Some(server) => server,
            None => return,
        }
    };
    ($backend:expr, $adjust:expr) => {
        match $crate::common::TestServer::start_with($backend, $adjust).await {
            Some(server) => server,
            None => return,
        }
    };
}

/// A `stowage` process started by a test; killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    /// Where the process logs; its end is printed when a test fails with the process alive.
    log: std::path::PathBuf,
}

impl Process {
    /// Starts `stowage ARGS` with `envs`, logging to `log`.
    pub fn spawn(args: &[&str], envs: &[(&str, String)], log: &std::path::Path) -> Self {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).expect("log directory");
        }
        let log_path = log.to_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
        cmd.args(args)
            .env_remove("STOWAGE_API_KEY")
            .env_remove("STOWAGE_CONFIG")
            .env("RUST_LOG", "info,sqlx=warn,stowage::queue=debug")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("spawn stowage"),
            log: log_path,
        }
    }

    /// Sends a signal (`-KILL`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The server's side of a failed test: the last lines it logged, leaving out the
            // requests that went well (a polling test logs little else).
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|line| !(line.contains("finished processing request") && line.contains("status=2")))
                .collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!(
                "--- last lines of {}, without its successful requests ---\n{tail}",
                self.log.display()
            );
            if let Some(db) = self.log.parent().map(|dir| dir.join("stowage.db"))
                && db.exists()
            {
                print_queue(&db);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints the job queue of the SQLite catalog at `db` (apalis's tasks and workers, stowage's
/// unfinished jobs): where a job that never started got stuck.
fn print_queue(db: &Path) {
    const QUERIES: [&str; 3] = [
        "SELECT id, job_type, status, attempts, max_attempts, run_at, lock_by, lock_at, done_at, last_result FROM Jobs WHERE status <> 'Done'",
        "SELECT id, worker_type, last_seen, started_at FROM Workers",
        "SELECT id, kind, status, attempts, version, created_at, updated_at FROM job WHERE status NOT IN ('DONE', 'ERROR', 'CANCELLED')",
    ];
    let url = format!("sqlite://{}?mode=ro", db.display());
    block_on_own_thread(async move {
        let Ok(mut conn) = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await else {
            return;
        };
        for query in QUERIES {
            eprintln!("--- {query} ---");
            match sqlx::query(query).fetch_all(&mut conn).await {
                Ok(rows) => {
                    for row in rows {
                        let cells: Vec<String> = (0..sqlx::Row::len(&row))
                            .map(|i| {
                                sqlx::Row::try_get::<String, _>(&row, i)
                                    .or_else(|_| sqlx::Row::try_get::<i64, _>(&row, i).map(|n| n.to_string()))
                                    .unwrap_or_else(|_| "NULL".into())
                            })
                            .collect();
                        eprintln!("{}", cells.join(" | "));
                    }
                }
                Err(e) => eprintln!("{e}"),
            }
        }
    });
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until `base` answers `/healthz`.
pub async fn wait_healthy(base: &str) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(resp) = reqwest::get(format!("{base}/healthz")).await
            && resp.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{base} did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Polls job `id` through `server` until `done(job)` holds, at most `limit`.
pub async fn poll_job(
    server: &str,
    key: &str,
    id: &str,
    limit: std::time::Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = std::time::Instant::now();
    let client = reqwest::Client::new();
    loop {
        let job: Value = client
            .get(format!("{server}/v1/jobs/{id}?wait_seconds=1"))
            .bearer_auth(key)
            .send()
            .await
            .expect("get job")
            .json()
            .await
            .expect("job json");
        if done(&job) {
            return job;
        }
        assert!(start.elapsed() < limit, "job never reached the expected state: {job}");
    }
}

/// The entries of a tar: name and content.
pub fn tar_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|b| *b != 0) {
        let header = &bytes[at..at + 512];
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size = usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8).expect("size");
        let data = bytes[at + 512..at + 512 + size].to_vec();
        out.push((name, data));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}
