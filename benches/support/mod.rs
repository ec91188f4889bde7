//! What the benches share: the `stowage serve` binary in a child process, its memory as
//! `/proc` tells it, and small helpers. Each bench includes this file as a module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A positive number from environment variable `name`, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value} is not a number: {e}")),
        Err(_) => default,
    }
}

/// The cargo target directory this bench was built in (`TARGET/release/deps/sync-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.ancestors()
        .nth(3)
        .expect("the bench runs from TARGET/PROFILE/deps")
        .to_path_buf()
}

/// The stowage binary a bench runs: its own build, or the one `STOWAGE_BENCH_BINARY` names
/// (another build, to measure it side by side with the same bench, data and machine).
pub fn stowage_binary() -> PathBuf {
    std::env::var_os("STOWAGE_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stowage")))
}

/// `n` with thousands separators.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `q` quantile (0 to 1) of `sorted` latencies, in milliseconds.
pub fn millis_at(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

/// A fresh PostgreSQL database on the server `admin` connects to (a URL naming any database
/// there); answers its name and URL. Drop it with [`drop_postgres_database`].
pub async fn fresh_postgres_database(admin: &str, prefix: &str) -> (String, String) {
    use sqlx::{Connection, Executor};
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to PostgreSQL");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    let url = format!("{base}/{name}");
    (name, url)
}

/// Drops database `name` made by [`fresh_postgres_database`].
pub async fn drop_postgres_database(admin: &str, name: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to PostgreSQL");
    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .await
        .expect("drop database");
}

/// Mebibytes from kibibytes.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Reads `field` (a `kB` figure) of `/proc/PID/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's anonymous resident memory every 20 ms and keeps the largest value.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = proc_status_kib(pid, "RssAnon") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self { stop, peak, thread }
    }

    /// Stops sampling; answers the peak in KiB.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler");
        self.peak.load(Ordering::Relaxed)
    }
}

/// `stowage serve` (the bench's own build) over a bucket `bench` of `items` small text files
/// (`f000000.txt`, …), both in a directory `name` below the target directory; answers the
/// server and the bucket's directory (removed when dropped).
pub fn server_over_small_files(name: &str, items: usize) -> (Server, tempfile::TempDir) {
    let data = target_dir().join(name);
    std::fs::create_dir_all(&data).expect("create the bench data directory");
    let tree = tempfile::tempdir_in(&data).expect("a tree directory");
    for i in 0..items {
        std::fs::write(tree.path().join(format!("f{i:06}.txt")), format!("item {i}\n")).expect("write a file");
    }
    let config = format!("[buckets.bench]\nurl = \"file://{}\"\n", tree.path().display());
    (Server::start(&stowage_binary(), &data, &config), tree)
}

/// `stowage serve` in a child process over a fresh SQLite data directory; killed when dropped.
pub struct Server {
    child: Child,
    base: String,
    key: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `binary` in a run directory below `data`, with `config` (TOML) added to a config
    /// file that sets its port and quiets its log; waits until it answers.
    pub fn start(binary: &Path, data: &Path, config: &str) -> Self {
        let dir = tempfile::tempdir_in(data).expect("a run directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port")
            .port();
        let config_file = dir.path().join("stowage.toml");
        std::fs::write(
            &config_file,
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n[log]\nfilter = \"warn\"\n\n{config}"),
        )
        .expect("write the config file");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("create the server log");
        let data_dir = dir.path().join("data");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_file)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("serve")
            .env_remove("STOWAGE_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn stowage serve");
        let key_file = data_dir.join("admin.key");
        let started = Instant::now();
        let key = loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up && let Ok(key) = std::fs::read_to_string(&key_file) {
                break key.trim().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "stowage serve did not start; see {}",
                dir.path().join("serve.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            key,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// The server's data directory (its SQLite catalog is `stowage.db` in it).
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of the server's `/proc/PID/status`, in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid(), field).unwrap_or_else(|| panic!("no {field} for the server"))
    }

    /// Resets the server's VmHWM to its current RSS.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("reset the peak RSS");
    }

    /// Sends `method path` with an optional JSON body as the admin; answers the JSON answer,
    /// insisting on a success status.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("a request to the server");
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// A GET of `path` as the admin, ready to send (or clone and send many times).
    pub fn get_request(&self, path: &str) -> reqwest::RequestBuilder {
        self.get_request_with(path, &self.key)
    }

    /// A GET of `path` with API key `key`, ready to send (or clone and send many times).
    pub fn get_request_with(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(key)
    }

    /// Creates a folder at `path` synced with the whole bucket `bench`; answers its id.
    pub async fn synced_folder(&self, path: &str) -> String {
        let body = serde_json::json!({"path": path, "sync": {"bucket": "bench", "prefix": ""}});
        let folder = self.call(reqwest::Method::POST, "/v1/folders", Some(body)).await;
        folder["id"].as_str().expect("a folder id").to_owned()
    }

    /// Syncs `folder` and waits until the job is finished; answers the job.
    pub async fn sync_once(&self, folder: &str) -> Value {
        let path = format!("/v1/folders/{folder}/sync");
        let job = self
            .call(reqwest::Method::POST, &path, Some(serde_json::json!({})))
            .await;
        self.finish(job).await
    }

    /// Long-polls `job` (as its submission answered) until it is finished; answers it.
    pub async fn finish(&self, mut job: Value) -> Value {
        let id = job["id"].as_str().expect("a job id").to_owned();
        while !matches!(job["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED")) {
            let version = job["version"].as_i64().expect("a job version");
            job = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/jobs/{id}?wait_seconds=30&since_version={version}"),
                    None,
                )
                .await;
        }
        job
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
/// A 1×1 PNG.
pub fn tiny_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(1, 1)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}
