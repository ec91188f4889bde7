//! `GET /metrics` against a real server: who may read it, that the whole page parses as the
//! Prometheus text format, and that an upload, a sync and a failed job move the figures an
//! operator alerts on by exactly what they did. One test in this binary: the recorder is the
//! process's, so figures are compared before and after.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::buckets::Fixture;
use common::{Backend, TestServer, id, poll_job};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Every sample of the page, by metric name and labels (sorted `k=v` pairs joined by `,`).
type Samples = HashMap<(String, String), f64>;

async fn scrape(s: &TestServer, token: &str) -> Samples {
    let answer = s
        .request(Method::GET, "/metrics", Some(token))
        .send()
        .await
        .expect("a scrape");
    assert_eq!(answer.status(), StatusCode::OK);
    let content_type = answer.headers()["content-type"].to_str().unwrap_or_default().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = answer.text().await.expect("the page");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let page = prometheus_parse::Scrape::parse(lines).expect("the page parses as the Prometheus text format");
    let mut samples = Samples::new();
    for sample in page.samples {
        let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        for label in &labels {
            assert!(
                uuid::Uuid::try_parse(label.split_once('=').map_or("", |(_, v)| v)).is_err(),
                "no id in a label: {} {label}",
                sample.metric
            );
        }
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
        samples.insert((sample.metric, labels.join(",")), value);
    }
    samples
}

fn value(samples: &Samples, metric: &str, labels: &str) -> f64 {
    samples
        .get(&(metric.to_owned(), labels.to_owned()))
        .copied()
        .unwrap_or_default()
}

#[tokio::test]
async fn metrics_are_served_to_operators_and_count_what_happened() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Fixture::local(dir.path().join("bucket"));
    for n in 0..3 {
        fixture.put(&format!("d/{n}.txt"), b"synced").await;
    }
    let bucket = fixture.settings();
    let Some(s) = TestServer::start_with(Backend::Sqlite, move |settings| {
        settings.buckets.insert("src".into(), bucket);
        settings.metrics.token = "scrape-me".into();
        settings.jobs.max_attempts = 2;
        settings.jobs.retry_backoff_ms = 10;
    })
    .await
    else {
        return;
    };
    // Who may read it: the token and admins; nobody else learns anything.
    let bob = s.key_for("bob", false).await;
    let anonymous = s.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.message().contains("metrics.token"), "{}", anonymous.message());
    assert_eq!(
        s.send(Method::GET, "/metrics", Some("wrong"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.send(Method::GET, "/metrics", Some(&bob), None).await.status,
        StatusCode::FORBIDDEN
    );
    let before = scrape(&s, &s.admin_key).await;
    for (metric, labels) in [
        ("stowage_jobs_finished_total", "kind=SYNC,status=ERROR"),
        ("stowage_sync_objects_total", "outcome=failed"),
        (
            "stowage_bucket_operations_total",
            "backend=s3,operation=read,outcome=error",
        ),
        ("stowage_webhook_attempts_total", "outcome=failed"),
        ("stowage_db_errors_total", "kind=unavailable"),
    ] {
        assert!(
            before.contains_key(&(metric.to_owned(), labels.to_owned())),
            "what an alert watches is on the page before it first happens: {metric}{{{labels}}}"
        );
    }

    let folder = s.folder("/up").await;
    let upload = s.upload(&folder, "a.bin", vec![1; 1_234], &[]).await;
    assert_eq!(upload.status, StatusCode::CREATED);
    let synced = s
        .post(
            "/v1/folders",
            json!({"path": "/mirror", "sync": {"bucket": "src", "prefix": "d/"}}),
        )
        .await;
    let job = s
        .post(&format!("/v1/folders/{}/sync", id(&synced.body)), json!({}))
        .await;
    let done = finished(&s, &id(&job.body)).await;
    assert_eq!(done["status"], "DONE", "{done}");
    let item = id(&upload.body);
    assert_eq!(s.bytes(&format!("/v1/items/{item}/content")).await.len(), 1_234);
    let twice = s.post("/v1/folders", json!({"path": "/up"})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{:?}", twice.body);
    let failing = s.post("/v1/jobs/noop", json!({"units": 1, "fail_attempts": 5})).await;
    let failed = finished(&s, &id(&failing.body)).await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
    // A job cancelled before any worker took it ends too.
    let paused = s.post("/v1/queues/NOOP/pause", json!({})).await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    let waiting = s.post("/v1/jobs/noop", json!({"units": 1})).await;
    let cancelled = s
        .post(&format!("/v1/jobs/{}/cancel", id(&waiting.body)), json!({}))
        .await;
    assert_eq!(cancelled.body["status"], "CANCELLED", "{:?}", cancelled.body);

    // A job's end is counted just after its record shows it finished: wait for the count.
    let mut after = scrape(&s, "scrape-me").await;
    for _ in 0..100 {
        let finished_jobs = |samples: &Samples| value(samples, "stowage_jobs_finished_total", "kind=NOOP,status=ERROR");
        if finished_jobs(&after) > finished_jobs(&before) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&s, "scrape-me").await;
    }
    let delta = |metric: &str, labels: &str| value(&after, metric, labels) - value(&before, metric, labels);
    assert_eq!(
        delta(
            "stowage_http_requests_total",
            "method=POST,route=/v1/folders/:id/items,status=201"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "stowage_http_requests_total",
            "method=GET,route=/metrics,status=403"
        ),
        1.0,
        "refused scrapes count too"
    );
    assert_eq!(delta("stowage_upload_received_bytes_total", ""), 1_234.0);
    assert_eq!(delta("stowage_sync_objects_total", "outcome=created"), 3.0);
    assert_eq!(delta("stowage_sync_objects_total", "outcome=listed"), 3.0);
    assert_eq!(delta("stowage_sync_hashed_bytes_total", ""), 18.0);
    assert_eq!(delta("stowage_jobs_finished_total", "kind=SYNC,status=DONE"), 1.0);
    // Bucket operations: the upload's write, its read of the first bytes to type it and its
    // download's read in the managed bucket; the sync's listing and its three reads.
    let bucket_ops = |operation: &str| {
        delta(
            "stowage_bucket_operations_total",
            &format!("backend=file,operation={operation},outcome=ok"),
        )
    };
    assert_eq!(bucket_ops("write"), 1.0);
    assert_eq!(bucket_ops("read"), 5.0);
    assert_eq!(bucket_ops("list"), 1.0);
    assert!(
        after.keys().any(
            |(metric, labels)| metric.starts_with("stowage_bucket_operation_duration_seconds")
                && labels.contains("operation=read")
        ),
        "bucket operation latency"
    );
    assert!(
        delta("stowage_db_errors_total", "kind=conflict") >= 1.0,
        "the second /up broke a uniqueness rule"
    );
    assert_eq!(delta("stowage_jobs_finished_total", "kind=NOOP,status=ERROR"), 1.0);
    assert_eq!(delta("stowage_jobs_finished_total", "kind=NOOP,status=CANCELLED"), 1.0);
    assert_eq!(delta("stowage_job_attempts_total", "kind=NOOP"), 2.0);
    assert_eq!(delta("stowage_job_retries_total", "kind=NOOP"), 1.0);
    assert_eq!(
        after.get(&("stowage_jobs".into(), "kind=SYNC,status=PENDING".into())),
        Some(&0.0),
        "the queue's gauges are there, and nothing waits"
    );
    assert!(
        after.contains_key(&("stowage_job_oldest_pending_age_seconds".into(), "kind=IMPORT".into())),
        "every kind has its queue figures"
    );
    assert!(
        value(&after, "stowage_db_connections", "state=idle") + value(&after, "stowage_db_connections", "state=in_use")
            >= 1.0
    );
    assert!(
        after.keys().any(
            |(metric, labels)| metric.starts_with("stowage_http_request_duration_seconds")
                && labels.contains("route=/v1/folders/:id/sync")
        ),
        "request durations by route template"
    );
    assert!(
        after
            .keys()
            .any(|(metric, _)| metric.starts_with("stowage_job_queue_wait_seconds")),
        "time from submission to start"
    );

    // A worker serves no API: `metrics.listen` is how it is scraped, with the same access.
    let mut settings = s.settings.clone();
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.metrics.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let worker = stowage::app::start(
        settings,
        stowage::app::Roles {
            http: false,
            workers: true,
        },
    )
    .await
    .expect("a worker");
    let at = format!("http://{}/metrics", worker.metrics_addr.expect("the metrics address"));
    let http = reqwest::Client::new();
    let refused = http.get(&at).send().await.expect("an answer");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let page = http.get(&at).bearer_auth("scrape-me").send().await.expect("an answer");
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.expect("the page");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("it parses");
    assert!(
        parsed.samples.iter().any(|s| s.metric == "stowage_db_connections"),
        "the worker's page carries its own pool's figures"
    );
    common::stop_running(worker).await;
}

/// Waits for job `job` to finish.
async fn finished(s: &TestServer, job: &str) -> serde_json::Value {
    poll_job(&s.base, &s.admin_key, job, Duration::from_secs(60), |j| {
        matches!(j["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED"))
    })
    .await
}
