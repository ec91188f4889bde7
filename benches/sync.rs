//! Sync figures, against the real `stowage serve` binary on SQLite (a fresh data directory per
//! run), over generated local trees and with the page cache warm:
//!
//! 1. the initial sync of 100,000 files (log-uniform sizes between 1 KiB and 1 MiB, about
//!    15 GB) plus four 256 MiB files, beside `b3sum` hashing the same files (the hashing floor);
//!    target: within 1.5× of b3sum;
//! 2. a no-change re-sync of that tree, beside `rclone lsjson -R` listing it; target: no slower
//!    than rclone;
//! 3. the server's peak RSS (VmHWM) over the initial sync of 1,000,000 empty files; target:
//!    under 256 MiB;
//! 4. an export (NDJSON) of the catalog that sync made, beside `rclone lsjson -R` of the tree,
//!    with the server's peak RSS over it;
//! 5. that initial sync again with a webhook told of every item made (`item.created`, to a
//!    receiver in the bench on 127.0.0.1): what recording the events costs the sync, and how
//!    long after it the receiver has them all.
//!
//! 1 and 2 run in rounds (`STOWAGE_BENCH_SYNC_ROUNDS`, default 3): b3sum, then an initial sync
//! on a fresh server, three re-syncs, three rclone listings; the table compares the best of
//! each and shows the spread. Sync times run from `POST /v1/folders/{id}/sync` until a long
//! poll of the job answers DONE; the job's own run time (`started_at` to `finished_at`, without
//! queue pickup) is printed beside, and so is what was read from disk meanwhile (page cache
//! misses). Needs `b3sum` and `rclone` on the PATH.
//!
//! `cargo bench --bench sync`
//!
//! The trees are generated once (with a fixed seed) and reused while their `.complete` marker
//! is there: `STOWAGE_BENCH_DATA` chooses where (default `TARGET_DIR/sync-bench-data`; about
//! 17 GB at the default sizes). `STOWAGE_BENCH_SYNC_FILES` (default 100000),
//! `STOWAGE_BENCH_SYNC_BIG_MIB` (default 256) and `STOWAGE_BENCH_SYNC_EMPTY_FILES` (default
//! 1000000) shrink them for a quick run.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;
use support::{RssSampler, Server, env_number, group, load_average, mib, stowage_binary, target_dir};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Files per generated directory.
const FILES_PER_DIR: usize = 1000;
/// Large files beside the small ones in the tree.
const BIG_FILES: usize = 4;
/// Seed of the generated sizes and contents.
const SEED: u64 = 0x5f0a_6e5b_e7c4;
/// Runs of the no-change re-sync and of `rclone lsjson -R` in each round.
const REPEATS: usize = 3;
/// Targets.
const INITIAL_VS_B3SUM: f64 = 1.5;
const RESYNC_VS_RCLONE: f64 = 1.0;
const PEAK_RSS_LIMIT_MIB: f64 = 256.0;
/// The hashing floor, run in the tree: two single-threaded `b3sum` processes reading (not
/// mapping) different files. On the 2-core machine the README's figures come from, it beat one
/// process hashing each file on both cores, mapped (2.1-2.2 s against 5.2 s) or read (3.9 s),
/// and two mapping (2.7 s).
const B3SUM: &str = "find . -type f -print0 | xargs -0 -n 2000 -P2 b3sum --num-threads 1 --no-mmap > /dev/null";
/// The listing to beat, run in the tree.
const RCLONE: &str = "rclone lsjson -R -q . > /dev/null";

#[tokio::main]
async fn main() {
    let files = env_number("STOWAGE_BENCH_SYNC_FILES", 100_000);
    let big_mib = env_number("STOWAGE_BENCH_SYNC_BIG_MIB", 256);
    let empty_files = env_number("STOWAGE_BENCH_SYNC_EMPTY_FILES", 1_000_000);
    let rounds = env_number("STOWAGE_BENCH_SYNC_ROUNDS", 3).max(1);
    let data = std::env::var_os("STOWAGE_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("sync-bench-data"));
    std::fs::create_dir_all(&data).expect("create the bench data directory");
    let binary = stowage_binary();
    println!("stowage binary: {}", binary.display());
    println!("bench data: {}", data.display());
    println!("load before: {}", load_average());

    // 1 and 2, in rounds: b3sum, then an initial sync on a fresh server right after it (the
    // page cache as warm as b3sum had it), no-change re-syncs, and rclone.
    let tree = ensure_tree(&data, files, big_mib);
    let tree_bytes = tree_size(&tree);
    let everything = (files + BIG_FILES) as u64;
    let label = format!(
        "{} files + {BIG_FILES} × {big_mib} MiB ({:.1} GB)",
        group(files as u64),
        tree_bytes as f64 / 1e9
    );
    println!("\n## tree: {label} at {}", tree.display());
    println!("warming the page cache (b3sum, untimed)…");
    run_shell(&tree, B3SUM);
    let (mut b3sum, mut initial, mut initial_job, mut resync, mut resync_job, mut rclone) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("\n### round {round} of {rounds} (load {})", load_average());
        let (took, disk) = timed(|| run_shell(&tree, B3SUM));
        println!(
            "b3sum: {took:.2} s ({:.2} GB/s), {disk} MiB read from disk",
            tree_bytes as f64 / 1e9 / took
        );
        b3sum.push(took);

        let server = Server::start(&binary, &data, &bucket_config(&tree));
        let folder = server.synced_folder("/bench").await;
        let baseline = server.status_kib("VmRSS");
        let sampler = RssSampler::start(server.pid());
        let (first, disk) = timed_async(server.sync(&folder)).await;
        let anon_peak = sampler.stop();
        first.print("initial sync", tree_bytes, disk);
        println!(
            "server RSS: {:.1} MiB before, peak {:.1} MiB (VmHWM, mapped file pages included), peak anonymous {:.1} MiB (sampled)",
            mib(baseline),
            mib(server.status_kib("VmHWM")),
            mib(anon_peak)
        );
        assert_eq!(first.result["created"].as_u64(), Some(everything), "{}", first.result);
        initial.push(first.wall);
        initial_job.push(first.job);

        for run in 1..=REPEATS {
            let (again, disk) = timed_async(server.sync(&folder)).await;
            again.print(&format!("no-change re-sync {run}"), 0, disk);
            assert_eq!(again.result["unchanged"].as_u64(), Some(everything), "{}", again.result);
            assert_eq!(again.result["bytes_hashed"].as_u64(), Some(0), "{}", again.result);
            resync.push(again.wall);
            resync_job.push(again.job);
        }
        server.stop();
        for run in 1..=REPEATS {
            let took = run_shell(&tree, RCLONE);
            println!("rclone {run}: {took:.2} s");
            rclone.push(took);
        }
    }

    // 3. Peak RSS over a million empty files.
    let empty = ensure_empty_tree(&data, empty_files);
    println!(
        "\n## empty tree: {} files at {}",
        group(empty_files as u64),
        empty.display()
    );
    let listed = warm_listing(&empty);
    println!("warmed the dentry and inode caches ({} files walked)", group(listed));
    let server = Server::start(&binary, &data, &bucket_config(&empty));
    let folder = server.synced_folder("/bench").await;
    let empty_baseline = server.status_kib("VmRSS");
    let sampler = RssSampler::start(server.pid());
    let (empty_sync, disk) = timed_async(server.sync(&folder)).await;
    let empty_anon = sampler.stop();
    let empty_peak = server.status_kib("VmHWM");
    empty_sync.print("initial sync of empty files", 0, disk);
    println!(
        "server RSS: {:.1} MiB before, peak {:.1} MiB (VmHWM), peak anonymous {:.1} MiB (sampled)",
        mib(empty_baseline),
        mib(empty_peak),
        mib(empty_anon)
    );
    assert_eq!(
        empty_sync.result["created"].as_u64(),
        Some(empty_files as u64),
        "{}",
        empty_sync.result
    );
    server.reset_peak();
    let (empty_resync, disk) = timed_async(server.sync(&folder)).await;
    empty_resync.print("no-change re-sync of empty files", 0, disk);
    println!(
        "server peak RSS over the re-sync: {:.1} MiB (VmHWM after a reset)",
        mib(server.status_kib("VmHWM"))
    );
    // 4. An export of that catalog, beside rclone listing the same tree.
    server.reset_peak();
    let export_baseline = server.status_kib("VmRSS");
    let started = Instant::now();
    let path = format!("/v1/folders/{folder}/items/export?recursive=true");
    let mut answer = server.get_request(&path).send().await.expect("export");
    let (mut exported_bytes, mut exported_lines) = (0u64, 0u64);
    while let Some(chunk) = answer.chunk().await.expect("an export chunk") {
        exported_bytes += chunk.len() as u64;
        exported_lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let export_took = started.elapsed().as_secs_f64();
    let export_peak = server.status_kib("VmHWM");
    assert_eq!(exported_lines, empty_files as u64, "every item exported");
    let rclone_empty = run_shell(&empty, RCLONE);
    println!(
        "export of {} items (NDJSON, {:.0} MB): {export_took:.2} s; server peak RSS {:.1} MiB (from {:.1}); rclone lsjson -R of the tree: {rclone_empty:.2} s",
        group(exported_lines),
        exported_bytes as f64 / 1e6,
        mib(export_peak),
        mib(export_baseline)
    );
    server.stop();

    // 5. The same initial sync with a webhook told of every item made.
    let receiver = EventCounter::start().await;
    let server = Server::start(
        &binary,
        &data,
        &format!("{}{WEBHOOKS_FOR_LOOPBACK}", bucket_config(&empty)),
    );
    let folder = server.synced_folder("/bench").await;
    let hook = serde_json::json!({"url": receiver.url, "events": ["item.created"]});
    server.call(reqwest::Method::POST, "/v1/webhooks", Some(hook)).await;
    let (hooked_sync, disk) = timed_async(server.sync(&folder)).await;
    hooked_sync.print("initial sync of empty files, a webhook told of each item", 0, disk);
    let drained = receiver.wait_for(empty_files as u64).await;
    println!(
        "the receiver had all {} events {:.2} s after the sync ended, in {} deliveries",
        group(empty_files as u64),
        drained,
        receiver.deliveries()
    );
    server.stop();
    println!("load after: {}", load_average());

    let verdict = |ok: bool| if ok { "pass" } else { "MISSED" };
    println!("\n| figure | stowage | reference | ratio | target | result |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| initial sync, {label} | {} (job {:.2} s) | b3sum {} | {:.2}× | ≤ {INITIAL_VS_B3SUM}× b3sum | {} |",
        spread(&initial),
        best(&initial_job),
        spread(&b3sum),
        best(&initial) / best(&b3sum),
        verdict(best(&initial) <= INITIAL_VS_B3SUM * best(&b3sum))
    );
    println!(
        "| no-change re-sync, same tree | {} (job {:.2} s) | rclone lsjson -R {} | {:.2}× | ≤ {RESYNC_VS_RCLONE}× rclone | {} |",
        spread(&resync),
        best(&resync_job),
        spread(&rclone),
        best(&resync) / best(&rclone),
        verdict(best(&resync) <= RESYNC_VS_RCLONE * best(&rclone))
    );
    println!(
        "| initial sync of {} empty files, a webhook on `item.created` | {:.2} s (job {:.2} s) | without {:.2} s (job {:.2} s) | {:.2}× | | |",
        group(empty_files as u64),
        hooked_sync.wall,
        hooked_sync.job,
        empty_sync.wall,
        empty_sync.job,
        hooked_sync.wall / empty_sync.wall
    );
    println!(
        "| export of {} items, NDJSON | {export_took:.2} s, peak RSS {:.1} MiB | rclone lsjson -R {rclone_empty:.2} s | {:.2}× | | |",
        group(exported_lines),
        mib(export_peak),
        export_took / rclone_empty
    );
    println!(
        "| peak RSS, initial sync of {} empty files ({:.1} s) | {:.1} MiB (from {:.1} MiB) | | | < {PEAK_RSS_LIMIT_MIB} MiB | {} |",
        group(empty_files as u64),
        empty_sync.wall,
        mib(empty_peak),
        mib(empty_baseline),
        verdict(mib(empty_peak) < PEAK_RSS_LIMIT_MIB)
    );
}

/// KiB read from block devices so far (`pgpgin` of /proc/vmstat).
fn paged_in_kib() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("pgpgin ")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// Runs `work`; answers its answer and the MiB read from disk meanwhile (page cache misses,
/// anyone's).
fn timed<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let before = paged_in_kib();
    let answer = work();
    (answer, paged_in_kib().saturating_sub(before) / 1024)
}

/// [`timed`] for a future.
async fn timed_async<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = paged_in_kib();
    let answer = work.await;
    (answer, paged_in_kib().saturating_sub(before) / 1024)
}

/// The smallest of `runs`.
fn best(runs: &[f64]) -> f64 {
    runs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// `runs` as "best s (best–worst, N runs)".
fn spread(runs: &[f64]) -> String {
    let worst = runs.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.2} s ({:.2}–{worst:.2} s, {} runs)",
        best(runs),
        best(runs),
        runs.len()
    )
}

/// Runs `command` with `sh -c` in `dir`, insisting it succeeds; answers its wall time in seconds.
fn run_shell(dir: &Path, command: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    let took = started.elapsed().as_secs_f64();
    assert!(status.success(), "`{command}` failed: {status}");
    took
}

/// The path of file `i` of a generated tree below `dir`.
fn file_path(dir: &Path, i: usize, extension: &str) -> PathBuf {
    dir.join(format!("d{:04}", i / FILES_PER_DIR))
        .join(format!("f{i:07}.{extension}"))
}

/// The tree of `files` files of log-uniform sizes between 1 KiB and 1 MiB (random content,
/// `FILES_PER_DIR` to a directory) and `BIG_FILES` files of `big_mib` MiB, made unless a
/// complete one is there.
fn ensure_tree(data: &Path, files: usize, big_mib: usize) -> PathBuf {
    generate_once(
        data,
        &format!("tree-{files}-{big_mib}m"),
        files,
        "random",
        |dir, files| {
            let started = Instant::now();
            let mut rng = SmallRng::seed_from_u64(SEED);
            let mut buffer = vec![0u8; 1 << 20];
            for_each_file(dir, files, "bin", |i, path| {
                let exponent: f64 = rng.random();
                let size = (1024.0 * 1024f64.powf(exponent)).round() as usize;
                rng.fill_bytes(&mut buffer[..size]);
                std::fs::write(path, &buffer[..size]).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
                if (i + 1).is_multiple_of(10_000) {
                    println!(
                        "  {} files, {:.0} s",
                        group(i as u64 + 1),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
            let big = dir.join("big");
            std::fs::create_dir_all(&big).expect("create the big files' directory");
            for i in 0..BIG_FILES {
                let path = big.join(format!("big{i}.bin"));
                let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create a big file"));
                for _ in 0..big_mib {
                    rng.fill_bytes(&mut buffer);
                    std::io::Write::write_all(&mut out, &buffer).expect("write a big file");
                }
                std::io::Write::flush(&mut out).expect("write a big file");
            }
            format!("seed {SEED}\n")
        },
    )
}

/// The tree of `files` empty files, `FILES_PER_DIR` to a directory, made unless a complete one
/// is there.
fn ensure_empty_tree(data: &Path, files: usize) -> PathBuf {
    generate_once(data, &format!("empty-{files}"), files, "empty", |dir, files| {
        for_each_file(dir, files, "txt", |_, path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        });
        "empty\n".to_owned()
    })
}

/// The tree `name` under `data`, made by `generate` (which answers the text of its marker)
/// unless its `.complete` marker shows a finished one is there.
fn generate_once(
    data: &Path,
    name: &str,
    files: usize,
    kind: &str,
    generate: impl FnOnce(&Path, usize) -> String,
) -> PathBuf {
    let dir = data.join(name);
    let marker = data.join(format!("{name}.complete"));
    if marker.exists() {
        return dir;
    }
    println!(
        "generating {} {kind} files into {} (once)…",
        group(files as u64),
        dir.display()
    );
    let started = Instant::now();
    let marker_text = generate(&dir, files);
    std::fs::write(&marker, marker_text).expect("write the tree's marker");
    println!("generated in {:.0} s", started.elapsed().as_secs_f64());
    dir
}

/// Calls `make` with the index and path of each of `files` files below `dir`, creating their
/// directories first.
fn for_each_file(dir: &Path, files: usize, extension: &str, mut make: impl FnMut(usize, &Path)) {
    for i in 0..files {
        let path = file_path(dir, i, extension);
        if i.is_multiple_of(FILES_PER_DIR) {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a tree directory");
        }
        make(i, &path);
    }
}

/// Bytes in the regular files below `dir`.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    walk_files(dir, &mut |meta| total += meta.len());
    total
}

/// Walks `dir` (reading every file's metadata); answers how many files it saw.
fn warm_listing(dir: &Path) -> u64 {
    let mut count = 0;
    walk_files(dir, &mut |_| count += 1);
    count
}

fn walk_files(dir: &Path, each: &mut impl FnMut(&std::fs::Metadata)) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            walk_files(&entry.path(), each);
        } else if meta.is_file() {
            each(&meta);
        }
    }
}

/// A finished sync: wall time from submission to DONE, the job's own run time, its result.
struct Synced {
    wall: f64,
    job: f64,
    result: Value,
}

impl Synced {
    /// Prints the figures; `bytes` (when not 0) gives a rate, `disk` is the MiB read from disk.
    fn print(&self, what: &str, bytes: u64, disk: u64) {
        let rate = if bytes > 0 {
            format!(" ({:.2} GB/s)", bytes as f64 / 1e9 / self.wall)
        } else {
            String::new()
        };
        println!(
            "{what}: {:.2} s{rate} submitted to DONE, job ran {:.2} s, {disk} MiB read from disk; {}",
            self.wall, self.job, self.result
        );
    }
}

/// Lets webhooks reach the bench's own receiver on 127.0.0.1, polled as often as the default.
const WEBHOOKS_FOR_LOOPBACK: &str = "\n[webhooks]\nallow_private_networks = true\n";

/// A webhook receiver on 127.0.0.1 that answers 200 and counts deliveries and events.
struct EventCounter {
    url: String,
    events: Arc<AtomicU64>,
    deliveries: Arc<AtomicU64>,
}

impl EventCounter {
    async fn start() -> Self {
        let (events, deliveries) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counts = (events.clone(), deliveries.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let (events, deliveries) = counts.clone();
                async move {
                    let told: Value = serde_json::from_str(&body).unwrap_or_default();
                    let n = told["events"].as_array().map_or(0, Vec::len) as u64;
                    events.fetch_add(n, Ordering::Relaxed);
                    deliveries.fetch_add(1, Ordering::Relaxed);
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook"),
            events,
            deliveries,
        }
    }

    /// Waits until `count` events arrived; answers how long that took.
    async fn wait_for(&self, count: u64) -> f64 {
        let started = Instant::now();
        while self.events.load(Ordering::Relaxed) < count {
            assert!(
                started.elapsed().as_secs() < 600,
                "only {} of {count} events arrived",
                self.events.load(Ordering::Relaxed)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        started.elapsed().as_secs_f64()
    }

    fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }
}

/// The configuration of bucket `bench`: the local directory `tree`.
fn bucket_config(tree: &Path) -> String {
    let tree = std::path::absolute(tree).expect("the tree's absolute path");
    format!("[buckets.bench]\nurl = \"file://{}\"\n", tree.display())
}

impl Server {
    /// Syncs `folder` and waits for the job to be DONE.
    async fn sync(&self, folder: &str) -> Synced {
        let started = Instant::now();
        let job = self.sync_once(folder).await;
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(job["status"], "DONE", "{job}");
        let at = |field: &str| {
            OffsetDateTime::parse(job[field].as_str().expect("a job timestamp"), &Rfc3339).expect("an RFC 3339 time")
        };
        Synced {
            wall,
            job: (at("finished_at") - at("started_at")).as_seconds_f64(),
            result: job["result"].clone(),
        }
    }
}
