//! Prometheus metrics: the process's one recorder, and every metric stowage records, by name, in
//! one place. Code that counts something calls a function here, so names, labels and units stay
//! consistent (`_total` counters, `_seconds` and `_bytes` units, labels of low cardinality:
//! route templates, job kinds, outcomes; never ids).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The buckets of every `_seconds` histogram: 5 ms to 30 minutes.
const SECONDS_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often [`Upkeep`] drains the histograms.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Drains the recorder's histograms into their buckets. The recorder keeps every sample until
/// then (or until a scrape renders them): a server nobody scrapes would otherwise grow by the
/// samples of every request for ever.
pub struct Upkeep;

impl crate::background::Periodic for Upkeep {
    async fn round(&mut self) {
        recorder().run_upkeep();
    }
}

/// The process's recorder, installed at the first call (every later call, e.g. a second server
/// in one test process, shares it): what `GET /metrics` renders.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS) {
                Ok(with_buckets) => with_buckets,
                Err(error) => {
                    tracing::warn!(%error, "histogram buckets refused; durations are summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows only what reaches this one");
            }
            describe();
            zero_alerted_series();
            handle
        })
        .clone()
}

/// The help text of every metric.
fn describe() {
    describe_counter!(
        "stowage_http_requests_total",
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        "stowage_http_request_duration_seconds",
        "Time to answer an HTTP request (to its first body byte), by route template and method."
    );
    describe_counter!("stowage_job_attempts_total", "Job attempts started, by kind.");
    describe_counter!(
        "stowage_job_retries_total",
        "Job attempts that failed and will be retried, by kind."
    );
    describe_counter!(
        "stowage_jobs_finished_total",
        "Jobs that ended, by kind and final status."
    );
    describe_histogram!(
        "stowage_job_run_duration_seconds",
        "Run time of a job attempt, by kind and outcome."
    );
    describe_histogram!(
        "stowage_job_queue_wait_seconds",
        "Time from a job's submission to its first attempt's start, by kind."
    );
    describe_gauge!("stowage_jobs", "Jobs now, by kind and status (PENDING or RUNNING).");
    describe_gauge!(
        "stowage_job_oldest_pending_age_seconds",
        "Age of the oldest pending job, by kind (0 when none waits)."
    );
    describe_counter!(
        "stowage_sync_objects_total",
        "Objects finished syncs met, by outcome (listed, created, updated, unchanged, tombstoned, restored, skipped, failed)."
    );
    describe_counter!(
        "stowage_sync_hashed_bytes_total",
        "Bytes finished syncs read to hash objects."
    );
    describe_counter!(
        "stowage_import_units_total",
        "Import units of finished imports, by outcome (created, updated, skipped, failed, not_attempted)."
    );
    describe_counter!(
        "stowage_expiry_items_total",
        "Items and folders finished TTL sweeps took, by what (items, folders, purged)."
    );
    describe_gauge!("stowage_uploads_in_flight", "Uploads being received now.");
    describe_counter!("stowage_upload_received_bytes_total", "Bytes of uploads stored.");
    describe_gauge!("stowage_job_long_polls", "Clients waiting on a job's long poll now.");
    describe_counter!(
        "stowage_quota_refusals_total",
        "Changes refused by a quota, by holder (folder or user)."
    );
    describe_gauge!(
        "stowage_db_connections",
        "Database pool connections, by state (in_use or idle)."
    );
    describe_counter!(
        "stowage_db_errors_total",
        "Database statements that failed, by kind (conflict: a uniqueness rule, usually a race the caller resolves; unavailable: no connection, or SQLite busy; error)."
    );
    describe_counter!(
        "stowage_webhook_attempts_total",
        "Webhook delivery attempts, by outcome (delivered; retrying: failed, tried again later; failed: failed, the delivery given up)."
    );
    describe_histogram!(
        "stowage_webhook_attempt_duration_seconds",
        "Time a webhook delivery attempt took, to the receiver's answer or the error."
    );
    describe_counter!(
        "stowage_bucket_operations_total",
        "Bucket operations, by backend (file, s3, gs, az), operation (list, head, read, write, delete) and outcome (ok, not_found, error)."
    );
    describe_histogram!(
        "stowage_bucket_operation_duration_seconds",
        "Time a bucket operation took (a read: to open it, or to read and hash it whole when syncing; a list: the whole listing), by backend and operation."
    );
}

/// An HTTP request answered: `route` is its template (`/v1/folders/{id}`), never a concrete path.
/// It is labelled `/v1/folders/:id`: braces inside label values trip some text-format parsers.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    let (requests, duration) = request_metrics(route, method, status);
    requests.increment(1);
    duration.record(took);
}

/// The request counter and duration histogram of one route, method and status, registered the
/// first time and kept: a burst of answers (a thousand long polls woken at once) then costs one
/// lookup each, no allocation and no registry lookup.
fn request_metrics(route: &str, method: &str, status: u16) -> (Counter, Histogram) {
    type ByRoute = HashMap<&'static str, Vec<(&'static str, u16, Counter, Histogram)>>;
    static KNOWN: OnceLock<Mutex<ByRoute>> = OnceLock::new();
    let mut known = KNOWN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, _, requests, duration)) = known
        .get(route)
        .and_then(|seen| seen.iter().find(|(m, s, _, _)| *m == method && *s == status))
    {
        return (requests.clone(), duration.clone());
    }
    let label = route.replace('{', ":").replace('}', "");
    let requests = counter!("stowage_http_requests_total", "route" => label.clone(), "method" => method.to_owned(), "status" => status.to_string());
    let duration = histogram!("stowage_http_request_duration_seconds", "route" => label, "method" => method.to_owned());
    let route: &'static str = match known.get_key_value(route) {
        Some((key, _)) => key,
        None => Box::leak(route.to_owned().into_boxed_str()),
    };
    let method: &'static str = Box::leak(method.to_owned().into_boxed_str());
    known
        .entry(route)
        .or_default()
        .push((method, status, requests.clone(), duration.clone()));
    (requests, duration)
}

/// A job attempt started; `queued` is the time since submission for a first attempt.
pub fn job_attempt_started(kind: &'static str, queued: Option<Duration>) {
    counter!("stowage_job_attempts_total", "kind" => kind).increment(1);
    if let Some(queued) = queued {
        histogram!("stowage_job_queue_wait_seconds", "kind" => kind).record(queued);
    }
}

/// A job attempt ended with `status` after `took`; `retrying` when another attempt follows.
pub fn job_attempt_ended(kind: &'static str, status: &'static str, took: Duration, retrying: bool) {
    histogram!("stowage_job_run_duration_seconds", "kind" => kind, "outcome" => status).record(took);
    if retrying {
        counter!("stowage_job_retries_total", "kind" => kind).increment(1);
    }
}

/// A job ended for good: its final status, and the counts of its result that have metrics.
pub fn job_finished(kind: &'static str, status: &'static str, result: &serde_json::Value) {
    counter!("stowage_jobs_finished_total", "kind" => kind, "status" => status).increment(1);
    count_result(kind, result);
}

/// Makes the series the README's alerts watch exist at 0 from the start: `increase()` does not
/// count a series born at 1, so the first failure after a start would otherwise go unseen.
fn zero_alerted_series() {
    for kind in crate::domain::job::JobKind::ALL {
        for status in ["DONE", "ERROR", "CANCELLED"] {
            counter!("stowage_jobs_finished_total", "kind" => kind.as_str(), "status" => status).increment(0);
        }
        count_result(kind.as_str(), &serde_json::Value::Null);
    }
    for outcome in ["delivered", "retrying", "failed"] {
        counter!("stowage_webhook_attempts_total", "outcome" => outcome).increment(0);
    }
    for kind in ["conflict", "unavailable", "error"] {
        counter!("stowage_db_errors_total", "kind" => kind).increment(0);
    }
    for backend in ["file", "s3", "gs", "az"] {
        for operation in ["list", "head", "read", "write", "delete"] {
            counter!("stowage_bucket_operations_total", "backend" => backend, "operation" => operation, "outcome" => "error")
                .increment(0);
        }
    }
}

/// Adds the counts of a finished job's `result` that have metrics.
fn count_result(kind: &'static str, result: &serde_json::Value) {
    let count = |field: &str| result[field].as_u64().unwrap_or(0);
    match kind {
        "SYNC" => {
            for outcome in [
                "listed",
                "created",
                "updated",
                "unchanged",
                "tombstoned",
                "restored",
                "skipped",
            ] {
                counter!("stowage_sync_objects_total", "outcome" => outcome).increment(count(outcome));
            }
            counter!("stowage_sync_objects_total", "outcome" => "failed").increment(count("errors"));
            counter!("stowage_sync_hashed_bytes_total").increment(count("bytes_hashed"));
        }
        "IMPORT" => {
            for outcome in ["created", "updated", "skipped", "failed", "not_attempted"] {
                counter!("stowage_import_units_total", "outcome" => outcome).increment(count(outcome));
            }
        }
        "EXPIRY" => {
            for (what, field) in [
                ("items", "items_expired"),
                ("folders", "folders_expired"),
                ("purged", "trash_purged"),
            ] {
                counter!("stowage_expiry_items_total", "what" => what).increment(count(field));
            }
        }
        _ => {}
    }
}

/// Jobs of `kind` now: how many wait and run, and how long the oldest waiting one has waited.
pub fn jobs_now(kind: &'static str, pending: u64, running: u64, oldest_pending: Duration) {
    gauge!("stowage_jobs", "kind" => kind, "status" => "PENDING").set(pending as f64);
    gauge!("stowage_jobs", "kind" => kind, "status" => "RUNNING").set(running as f64);
    gauge!("stowage_job_oldest_pending_age_seconds", "kind" => kind).set(oldest_pending.as_secs_f64());
}

/// The database pool now.
pub fn db_connections(in_use: u32, idle: u32) {
    gauge!("stowage_db_connections", "state" => "in_use").set(f64::from(in_use));
    gauge!("stowage_db_connections", "state" => "idle").set(f64::from(idle));
}

/// A database statement failed; `kind` is `conflict`, `unavailable` or `error`.
pub fn db_error(kind: &'static str) {
    counter!("stowage_db_errors_total", "kind" => kind).increment(1);
}

/// A bucket operation ended: `backend` (`file`, `s3`, `gs`, `az`), `operation` (`list`,
/// `head`, `read`, `write`, `delete`), `outcome` (`ok`, `not_found`, `error`). The handles of
/// each label set are kept (a sync of a local bucket counts one read per file).
pub fn bucket_operation(backend: &str, operation: &'static str, outcome: &'static str, took: Duration) {
    type Known = HashMap<(&'static str, &'static str, &'static str), (Counter, Histogram)>;
    static KNOWN: OnceLock<Mutex<Known>> = OnceLock::new();
    let backend: &'static str = match backend {
        "file" => "file",
        "s3" => "s3",
        "gs" => "gs",
        "az" | "azure" => "az",
        _ => "other",
    };
    let (count, duration) = {
        let mut known = KNOWN
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known
            .entry((backend, operation, outcome))
            .or_insert_with(|| {
                (
                    counter!("stowage_bucket_operations_total", "backend" => backend, "operation" => operation, "outcome" => outcome),
                    histogram!("stowage_bucket_operation_duration_seconds", "backend" => backend, "operation" => operation),
                )
            })
            .clone()
    };
    count.increment(1);
    duration.record(took);
}

/// A webhook delivery attempt ended: `outcome` is `delivered`, `retrying` or `failed`.
pub fn webhook_attempt(outcome: &'static str, took: Duration) {
    counter!("stowage_webhook_attempts_total", "outcome" => outcome).increment(1);
    histogram!("stowage_webhook_attempt_duration_seconds").record(took);
}

/// A change refused by a quota of `holder` (`folder` or `user`).
pub fn quota_refused(holder: &'static str) {
    counter!("stowage_quota_refusals_total", "holder" => holder).increment(1);
}

/// Counts one thing in flight (an upload being received, a long poll waiting) while it lives.
pub struct InFlight(&'static str);

impl InFlight {
    /// An upload being received.
    pub fn upload() -> Self {
        Self::start("stowage_uploads_in_flight")
    }

    /// A client waiting on a job's long poll.
    pub fn long_poll() -> Self {
        Self::start("stowage_job_long_polls")
    }

    fn start(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

/// `bytes` of an upload stored.
pub fn upload_received(bytes: u64) {
    counter!("stowage_upload_received_bytes_total").increment(bytes);
}
