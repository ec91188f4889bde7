//! The `stowage` binary: configuration, keys, folder, item, job, re-encode, trash and expiry verbs
//! against a running server, shutdown.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, healthz_ok, id};
use reqwest::StatusCode;

fn stowage(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.args(args)
        .env_remove("STOWAGE_API_KEY")
        .env_remove("STOWAGE_CONFIG")
        .env("RUST_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run stowage")
}

/// Runs the CLI against `s` with a key, on a thread of its own (the server answers on the test's
/// runtime meanwhile).
fn client_of(s: &TestServer) -> impl Fn(&str, &[&str]) -> Output {
    let base = s.base.clone();
    move |key: &str, args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--server".into(), base.clone(), "--api-key".into(), key.to_owned()]);
        std::thread::spawn(move || stowage(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[]))
            .join()
            .expect("thread")
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").expect("write");
    let out = stowage(&["--config", file.to_str().expect("utf8"), "print-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));

    std::fs::write(&file, "[server]\nmax_body_bytes = \"lots\"\n").expect("write");
    let out = stowage(&["--config", file.to_str().expect("utf8"), "print-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_body_bytes"), "{}", stderr(&out));

    let out = stowage(&["print-config"], &[("STOWAGE__BUCKETS__RAW__URL", "ftp://nope/x")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("buckets.raw.url"), "{}", stderr(&out));

    let out = stowage(&["--config", "/definitely/missing.toml", "print-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"));
}

#[test]
fn print_config_layers_sources_and_masks_secrets() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:9000\"\nmax_body_bytes = 10\n[database]\nurl = \"postgres://u:hunter2@db/x\"\n",
    )
    .expect("write");
    let out = stowage(
        &[
            "--config",
            file.to_str().expect("utf8"),
            "--data-dir",
            "/srv/st",
            "print-config",
        ],
        &[("STOWAGE__SERVER__MAX_BODY_BYTES", "20")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("listen = \"127.0.0.1:9000\""),
        "file overrides defaults: {text}"
    );
    assert!(text.contains("max_body_bytes = 20"), "env overrides the file: {text}");
    assert!(text.contains("data_dir = \"/srv/st\""), "flags override all: {text}");
    assert!(
        text.contains("file:///srv/st/objects"),
        "managed bucket follows data_dir: {text}"
    );
    assert!(!text.contains("hunter2") && text.contains("u:****@db"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_verbs_against_a_running_server() {
    let s = server!(Backend::Sqlite);
    let base = s.base.clone();
    let key = s.admin_key.clone();
    let run = move |args: Vec<&'static str>| {
        let base = base.clone();
        let key = key.clone();
        std::thread::spawn(move || {
            let mut all = vec!["folder", "--server", &base, "--api-key", &key];
            all.extend(args);
            stowage(&all, &[])
        })
        .join()
        .expect("thread")
    };
    let out = run(vec!["create", "/cli/a/b", "--parents", "--description", "made by cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("/cli/a/b\t"), "{}", stdout(&out));
    assert_eq!(
        s.get("/v1/folders?path=/cli/a/b").await.body["description"],
        "made by cli"
    );

    let out = run(vec!["create", "/cli/a/b"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists at /cli/a/b"), "{}", stderr(&out));

    run(vec!["create", "/cli/dest"]);
    let out = run(vec!["list", "/cli", "--recursive"]);
    let text = stdout(&out);
    let listed: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
    assert_eq!(listed, ["/cli/a", "/cli/a/b", "/cli/dest"]);

    let out = run(vec!["move", "/cli/a", "--to", "/cli/dest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.get("/v1/folders?path=/cli/dest/a/b").await.status, StatusCode::OK);

    let out = run(vec!["show", "/cli/dest/a"]);
    assert!(stdout(&out).starts_with("/cli/dest/a\t"), "{}", stdout(&out));
    let out = run(vec!["show", "/cli/dest/a", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(shown["path"], "/cli/dest/a");
    assert_eq!(stdout(&out).lines().count(), 1, "one object per line: {}", stdout(&out));

    let out = run(vec!["rm", "/cli/dest"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("recursive"), "{}", stderr(&out));
    let out = run(vec!["rm", "/cli/dest", "--recursive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("/cli/dest\t") && stdout(&out).trim_end().ends_with("\ttrashed\tfolders=3\titems=0"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.get("/v1/folders?path=/cli/dest").await.status, StatusCode::NOT_FOUND);

    // A wrong key: non-zero exit with the server's message.
    let out = stowage(&["folder", "--server", &s.base, "--api-key", "wrong", "list"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not valid"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("from --api-key or STOWAGE_API_KEY was refused") && stderr(&out).contains("admin.key"),
        "says where the key came from and how to give another: {}",
        stderr(&out)
    );
    // No key anywhere: the 401 says where the CLI looked.
    let empty = tempfile::tempdir().expect("tmp");
    let data = empty.path().display().to_string();
    let out = stowage(&["--data-dir", &data, "folder", "--server", &s.base, "list"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no API key was given") && stderr(&out).contains(&format!("{data}/admin.key")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_creates_a_key_then_keys_create_adds_users_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8").to_owned();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["--data-dir", &data_arg, "serve", "--listen", &listen])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let started = Instant::now();
    while !healthz_ok(&listen) {
        assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin_key = std::fs::read_to_string(data.join("admin.key")).expect("admin.key written on first start");

    // Not where the server's catalog is: refused, nothing created.
    let elsewhere = dir.path().join("elsewhere");
    let elsewhere_arg = elsewhere.display().to_string();
    let out = stowage(
        &["--data-dir", &elsewhere_arg, "keys", "create", "--name", "carol"],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no catalog at"), "{}", stderr(&out));
    assert!(!elsewhere.join("stowage.db").exists(), "no empty catalog was made");

    let out = stowage(&["--data-dir", &data_arg, "keys", "create", "--name", "carol"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let carol = stdout(&out).trim().to_owned();
    assert!(carol.starts_with("stw_"));
    let base = format!("http://{listen}");
    let out = stowage(
        &["folder", "--server", &base, "--api-key", &carol, "create", "/carols"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stowage(
        &["folder", "--server", &base, "--api-key", &carol, "show", "/carols"],
        &[],
    );
    assert!(stdout(&out).starts_with("/carols\t"), "{}", stdout(&out));
    // Without --api-key the CLI falls back to DATA_DIR/admin.key.
    let out = stowage(&["--data-dir", &data_arg, "folder", "--server", &base, "list"], &[]);
    assert!(stdout(&out).contains("/carols"), "{}", stderr(&out));

    // Keys through the server: carol makes a read key, lists hers, revokes it.
    let carol_keys = ["--server", base.as_str(), "--api-key", carol.as_str()];
    fn with<'a>(verb: &[&'a str], client: &[&'a str]) -> Vec<&'a str> {
        [&["keys"][..], verb, client].concat()
    }
    let out = stowage(&with(&["create", "--label", "ci", "--scope", "read"], &carol_keys), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ci = stdout(&out).trim().to_owned();
    assert!(ci.starts_with("stw_") && !ci.contains('\t'), "only the key: {ci}");
    let out = stowage(&with(&["list"], &carol_keys), &[]);
    let listed = stdout(&out);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let ci_line = listed.lines().next().expect("newest first");
    assert!(ci_line.contains("scope=read\tlabel=ci"), "{ci_line}");
    assert!(!listed.contains(&ci[10..]), "no secret in the list");
    let ci_id = ci_line.split('\t').next().expect("id").to_owned();
    let out = stowage(&with(&["revoke", &ci_id], &carol_keys), &[]);
    assert_eq!(stdout(&out).trim(), format!("{ci_id}\trevoked"), "{}", stderr(&out));
    let out = stowage(&["folder", "--server", &base, "--api-key", &ci, "list"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(10), "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful shutdown exits 0");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut log).expect("log");
    assert!(log.contains("admin.key"), "the log names the key file: {log}");
    assert!(!log.contains(admin_key.trim()), "the log never contains the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_verbs_upload_a_directory_list_by_type_download_and_remove() {
    let s = server!(Backend::Sqlite);
    let dir = tempfile::tempdir().expect("tmp");
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(shots.join("sounds")).expect("mkdir");
    let png = common::media::png(20, 10);
    std::fs::write(shots.join("a.png"), &png).expect("write");
    std::fs::write(shots.join("b.jpg"), common::media::jpeg(8, 8)).expect("write");
    std::fs::write(shots.join("notes.txt"), b"some notes\n").expect("write");
    std::fs::write(shots.join("doc.pdf"), common::media::pdf(2)).expect("write");
    std::fs::write(shots.join("sounds/tone.wav"), common::media::wav(8000, 1, 200)).expect("write");
    let loose = dir.path().join("loose.png");
    std::fs::write(&loose, common::media::png(3, 3)).expect("write");

    let (base, key) = (s.base.clone(), s.admin_key.clone());
    let run = move |args: Vec<String>| {
        let (base, key) = (base.clone(), key.clone());
        std::thread::spawn(move || {
            let mut all = vec!["item".to_owned(), "--server".into(), base, "--api-key".into(), key];
            all.extend(args);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            stowage(&all, &[])
        })
        .join()
        .expect("thread")
    };
    let path = |p: &std::path::Path| p.to_str().expect("utf8").to_owned();

    let out = run(vec![
        "upload".into(),
        path(&shots),
        path(&loose),
        "--folder".into(),
        "/cli-items".into(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 6, "{}", stdout(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("/cli-items/shots/sounds/tone.wav\t")),
        "uploads print paths: {}",
        stdout(&out)
    );
    // The directory became a subfolder, its subdirectory a subfolder of that.
    assert_eq!(
        s.get("/v1/folders?path=/cli-items/shots/sounds").await.status,
        StatusCode::OK
    );

    let out = run(vec![
        "list".into(),
        "/cli-items".into(),
        "-r".into(),
        "--type".into(),
        "IMAGE".into(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let titles: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
    assert_eq!(
        titles,
        [
            "/cli-items/shots/a.png",
            "/cli-items/shots/b.jpg",
            "/cli-items/loose.png"
        ]
    );
    let out = run(vec!["list".into(), "/cli-items/shots/sounds".into()]);
    assert!(
        stdout(&out).starts_with("/cli-items/shots/sounds/tone.wav\t") && stdout(&out).contains("\tAUDIO\t"),
        "{}",
        stdout(&out)
    );

    let a_id = text
        .lines()
        .find(|l| l.starts_with("/cli-items/shots/a.png\t"))
        .and_then(|l| l.split('\t').nth(1))
        .expect("a.png listed")
        .to_owned();
    let target = dir.path().join("copy.png");
    let out = run(vec!["download".into(), a_id.clone(), "--out".into(), path(&target)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&target).expect("downloaded"), png, "byte-identical");
    // Into a directory: named by the title.
    let out = run(vec!["download".into(), a_id.clone(), "--out".into(), path(dir.path())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("a.png")).expect("downloaded"), png);
    // Through a direct upload session: the same item, checked the same way.
    let direct = dir.path().join("direct.png");
    std::fs::write(&direct, &png).expect("write");
    let out = run(vec![
        "upload".into(),
        path(&direct),
        "--folder".into(),
        "/cli-items".into(),
        "--direct".into(),
        "--json".into(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let uploaded: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(uploaded["title"], "direct.png");
    assert_eq!(uploaded["item_type"], "IMAGE");
    // The same title again: refused before the file is sent, in the CLI's words.
    let again = run(vec![
        "upload".into(),
        path(&direct),
        "--folder".into(),
        "/cli-items".into(),
        "--direct".into(),
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("upload with --conflict-strategy new, skip or replace"),
        "{}",
        stderr(&again)
    );
    assert_eq!(uploaded["checksum"], blake3::hash(&png).to_hex().as_str());
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&uploaded))).await == png);
    let metrics = String::from_utf8(s.bytes("/metrics").await).expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stowage_http_requests_total") && l.contains("/o/") && l.contains("PUT")),
        "the file went to the session's URL"
    );

    // A URL anyone can read it by, for a while.
    let out = run(vec!["url".into(), a_id.clone(), "--expires-in".into(), "60".into()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = stdout(&out).split('\t').next().expect("url").to_owned();
    assert!(stdout(&out).contains("\texpires_at="), "{}", stdout(&out));
    let fetched = reqwest::get(&url).await.expect("get").bytes().await.expect("body");
    assert!(fetched == png, "the URL serves the content");

    // A clash fails with the server's message; another strategy resolves it.
    let out = run(vec![
        "upload".into(),
        path(&loose),
        "--folder".into(),
        "/cli-items".into(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = run(vec![
        "upload".into(),
        path(&loose),
        "--folder".into(),
        "/cli-items".into(),
        "--conflict-strategy".into(),
        "new".into(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("/cli-items/loose (1).png\t"),
        "{}",
        stdout(&out)
    );

    let out = run(vec!["rm".into(), a_id.clone()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.get(&format!("/v1/items/{a_id}")).await.status, StatusCode::NOT_FOUND);
    let out = run(vec!["download".into(), a_id, "--out".into(), path(&target)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_verbs_wait_with_exit_codes() {
    let s = server!(Backend::Sqlite, |settings| settings.jobs.concurrency.noop = 1);
    let (base, key) = (s.base.clone(), s.admin_key.clone());
    let run = move |args: Vec<String>| {
        let (base, key) = (base.clone(), key.clone());
        std::thread::spawn(move || {
            let mut all = vec!["job".to_owned(), "--server".into(), base, "--api-key".into(), key];
            all.extend(args);
            stowage(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        })
        .join()
        .expect("thread")
    };
    let out = run(vec![
        "noop".into(),
        "--units".into(),
        "3".into(),
        "--unit-millis".into(),
        "50".into(),
        "--wait".into(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\tNOOP\tDONE\tdone=3"), "{}", stdout(&out));

    // A long job, cancelled while `job wait` follows it: exit code 4.
    let out = run(vec![
        "noop".into(),
        "--units".into(),
        "100".into(),
        "--unit-millis".into(),
        "100".into(),
        "--json".into(),
    ]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = job["id"].as_str().expect("id").to_owned();
    let waiter = {
        let run = run.clone();
        let id = id.clone();
        std::thread::spawn(move || run(vec!["wait".into(), id]))
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = run(vec!["cancel".into(), id.clone()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let waited = waiter.join().expect("waiter");
    assert_eq!(waited.status.code(), Some(4), "{}{}", stdout(&waited), stderr(&waited));
    assert!(stdout(&waited).contains("CANCELLED"));

    let out = run(vec!["list".into(), "--status".into(), "CANCELLED".into()]);
    assert!(stdout(&out).starts_with(&id), "{}", stdout(&out));
    let out = run(vec!["show".into(), "not-an-id".into()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a valid id"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_verbs_reencode_trash_and_expiry() {
    if !common::media::have_ffmpeg() {
        return;
    }
    let s = server!(Backend::Sqlite, |settings| settings.expiry.schedule = String::new());
    let (base, key) = (s.base.clone(), s.admin_key.clone());
    let run = move |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--server".into(), base.clone(), "--api-key".into(), key.clone()]);
        std::thread::spawn(move || stowage(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[]))
            .join()
            .expect("thread")
    };
    let dir = tempfile::tempdir().expect("tmp");
    let f = s.folder("/cli-life").await;
    let video = common::id(&s.upload_ok(&f, "raw.avi", common::media::avi_mpeg4(dir.path())).await);
    let note = common::id(&s.upload_ok(&f, "note.txt", b"note".to_vec()).await);

    let out = run(&["reencode", &video, "--title", "cli", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\tREENCODE\tDONE\t"), "{}", stdout(&out));
    assert!(stdout(&out).contains("\ttranscoded=1"), "{}", stdout(&out));
    let item = s.get(&format!("/v1/items/{video}")).await.body;
    assert_eq!(item["media"]["codec"], "h264");
    let out = run(&["reencode", &note]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("neither videos nor image sequences"),
        "{}",
        stderr(&out)
    );

    let out = run(&["item", "rm", &note]);
    assert_eq!(stdout(&out), format!("{note}\ttrashed\n"));
    let out = run(&["trash", "list"]);
    assert!(
        stdout(&out).starts_with(&format!("/cli-life/note.txt\t{note}\tITEM\tpurge_at=")),
        "{}",
        stdout(&out)
    );
    let out = run(&["trash", "restore", &note]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.get(&format!("/v1/items/{note}")).await.status, StatusCode::OK);
    let out = run(&["trash", "restore", &note]);
    assert!(stderr(&out).contains("not in your trash"), "{}", stderr(&out));

    let out = run(&["folder", "rm", "/cli-life", "--recursive"]);
    assert!(
        stdout(&out).trim_end().ends_with("\ttrashed\tfolders=1\titems=2"),
        "{}",
        stdout(&out)
    );
    let out = run(&["trash", "purge", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("/cli-life\t")
            && stdout(&out).contains("\tFOLDER\t")
            && stdout(&out).trim_end().ends_with("\tpurged"),
        "{}",
        stdout(&out)
    );
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
    let out = run(&["trash", "list"]);
    assert_eq!(stdout(&out), "");

    let out = run(&["expiry", "run", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\tEXPIRY\tDONE\t"), "{}", stdout(&out));
    assert!(stdout(&out).contains("\titems_expired=0"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_verb_imports_a_spec_file_and_exits_like_job_wait() {
    let dir = tempfile::tempdir().expect("tmp");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket");
    std::fs::write(bucket.join("a.png"), common::media::png(3, 2)).expect("png");
    let settings = stowage::config::BucketSettings::at(format!("file://{}", bucket.display()));
    let s = server!(Backend::Sqlite, move |c| {
        c.buckets.insert("src".into(), settings);
    });
    s.mkdir("/imported").await;
    let spec = dir.path().join("spec.json");
    let write_spec = |images: serde_json::Value| {
        std::fs::write(&spec, serde_json::json!({ "images": images }).to_string()).expect("spec");
    };
    let run = |extra: &[&str]| {
        let spec = spec.to_str().expect("utf8").to_owned();
        let mut all: Vec<String> = [
            "import",
            "--server",
            &s.base,
            "--api-key",
            &s.admin_key,
            &spec,
            "--folder",
            "/imported",
            "--wait",
        ]
        .map(String::from)
        .to_vec();
        all.extend(extra.iter().map(|a| a.to_string()));
        std::thread::spawn(move || stowage(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[]))
            .join()
            .expect("thread")
    };
    write_spec(serde_json::json!([{"objectUrl": format!("file://{}/a.png", bucket.display())}]));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("\tIMPORT\tDONE\t") && stdout(&out).contains("\tcreated=1"),
        "{}",
        stdout(&out)
    );

    // A missing object: exit 3 (ERROR), the unit error and how to go on printed.
    write_spec(serde_json::json!([{"objectUrl": format!("file://{}/missing.png", bucket.display())}]));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("error: images[0]: object"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("--ignore-errors") && !stdout(&out).contains("ignore_errors"),
        "the CLI names its own flag: {}",
        stdout(&out)
    );
    // With --ignore-errors the units that can be are imported: DONE, exit 0. (When every unit
    // fails, nothing was done: ERROR, exit 3, --ignore-errors or not.)
    let out = run(&["--ignore-errors"]);
    assert_eq!(out.status.code(), Some(3), "{}{}", stdout(&out), stderr(&out));
    std::fs::write(bucket.join("b.png"), common::media::png(2, 2)).expect("png");
    write_spec(serde_json::json!([
        {"objectUrl": format!("file://{}/b.png", bucket.display())},
        {"objectUrl": format!("file://{}/missing.png", bucket.display())}
    ]));
    let out = run(&["--ignore-errors"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("\tfailed=1"), "{}", stdout(&out));

    // A malformed spec: the server's 400 with the JSON path, exit 1.
    write_spec(serde_json::json!([{"objectUrl": 5}]));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("images[0].objectUrl"), "{}", stderr(&out));
}

/// `stowage folder list | head -0`: the reader goes away before the first line; the CLI ends
/// quietly with status 0 instead of panicking on the broken pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_the_cli_quietly() {
    let s = server!(Backend::Sqlite);
    for i in 0..20 {
        s.mkdir(&format!("/piped/{i}")).await;
    }
    let (base, key) = (s.base.clone(), s.admin_key.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["folder", "list", "-r", "--server", &base, "--api-key", &key])
            .env_remove("STOWAGE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("thread");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_share_verbs_give_a_team_its_roles() {
    let s = server!(Backend::Sqlite);
    let lea = s.key_for("lea", false).await;
    let max = s.key_for("max", false).await;
    s.key_for("noa", false).await;
    let run = client_of(&s);
    assert!(run(&lea, &["folder", "create", "/studio"]).status.success());
    let out = run(&lea, &["group", "create", "reviewers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("reviewers\t"), "{}", stdout(&out));
    let out = run(&lea, &["group", "add", "reviewers", "noa"]);
    assert!(stdout(&out).contains("lea:manager,noa:member"), "{}", stdout(&out));

    let out = run(
        &lea,
        &["folder", "share", "/studio", "--user", "max", "--role", "editor"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &lea,
        &["folder", "share", "/studio", "--group", "reviewers", "--role", "viewer"],
    );
    assert!(
        stdout(&out).contains("owner=lea\tvisibility=private\tuser:max=editor,group:reviewers=viewer"),
        "{}",
        stdout(&out)
    );
    // Max edits the shared folder; the role is refused where it falls short, in words.
    let out = run(&max, &["folder", "create", "/studio/takes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &max,
        &["folder", "share", "/studio", "--user", "noa", "--role", "manager"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("needs the manager role"), "{}", stderr(&out));
    let out = run(
        &lea,
        &["folder", "share", "/studio", "--user", "noa", "--role", "owner"],
    );
    assert_eq!(out.status.code(), Some(2), "clap refuses a role that is not one");

    let out = run(&lea, &["folder", "unshare", "/studio", "--user", "max"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&max, &["folder", "show", "/studio"]);
    assert!(!out.status.success(), "max no longer sees it");
    let out = run(&lea, &["folder", "grants", "/studio/takes"]);
    assert!(
        stdout(&out).contains("group:reviewers=viewer@/studio"),
        "{}",
        stdout(&out)
    );
    let out = run(&max, &["folder", "star", "/studio/takes"]);
    assert!(!out.status.success(), "max lost the folder with his grant");
    let out = run(&lea, &["folder", "star", "/studio/takes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&lea, &["folder", "shelf", "starred"]);
    assert!(stdout(&out).starts_with("/studio/takes\t"), "{}", stdout(&out));
    let out = run(&lea, &["folder", "shelf", "home"]);
    assert!(stdout(&out).starts_with("/studio\t"), "{}", stdout(&out));
    let out = run(&lea, &["group", "delete", "reviewers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&lea, &["group", "list"]);
    assert_eq!(stdout(&out), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_verbs_set_show_and_refuse_past_a_limit() {
    let s = server!(Backend::Sqlite);
    let lea = s.key_for("lea", false).await;
    let run = client_of(&s);
    let admin = s.admin_key.clone();
    assert!(run(&lea, &["folder", "create", "/shots"]).status.success());
    let out = run(&lea, &["quota", "folder", "/shots", "--max-bytes", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/shots\tmax_bytes=5\tmax_items=null\tbytes=0\titems=0\n");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("big.txt");
    std::fs::write(&file, b"0123456789").expect("write");
    let out = run(
        &lea,
        &[
            "item",
            "upload",
            "--folder",
            "/shots",
            file.to_str().unwrap_or_default(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the quota of folder /shots allows 5 bytes"),
        "{}",
        stderr(&out)
    );
    let out = run(&admin, &["quota", "user", "lea", "--max-bytes", "100"]);
    assert_eq!(
        stdout(&out),
        "lea\tmax_bytes=100\tbytes=0\titems=0\n",
        "{}",
        stderr(&out)
    );
    let out = run(&lea, &["quota", "usage"]);
    assert_eq!(
        stdout(&out),
        "lea\tmax_bytes=100\tbytes=0\titems=0\n",
        "{}",
        stderr(&out)
    );
    let out = run(&lea, &["quota", "user", "lea", "--max-bytes", "1000"]);
    assert!(stderr(&out).contains("admin"), "{}", stderr(&out));
    let out = run(&lea, &["quota", "folder", "/shots", "--remove"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&lea, &["quota", "folder", "/shots"]);
    assert_eq!(
        stdout(&out),
        "/shots\tno quota (set one with --max-bytes and/or --max-items)\n"
    );
    assert!(
        run(&lea, &["quota", "folder", "/shots", "--max-items", "3"])
            .status
            .success()
    );
    let out = run(&lea, &["quota", "folder", "/shots", "--max-bytes", "7"]);
    assert_eq!(
        stdout(&out),
        "/shots\tmax_bytes=7\tmax_items=3\tbytes=0\titems=0\n",
        "a limit not given keeps its value: {}",
        stderr(&out)
    );
    let out = run(&admin, &["quota", "recount"]);
    assert_eq!(stdout(&out), "recounted\tdrifted=0\t\n", "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_bulk_job_verbs_pause_count_cancel_retry_and_delete() {
    let s = server!(Backend::Sqlite);
    let run = client_of(&s);
    let admin = s.admin_key.clone();
    let out = run(&admin, &["queue", "pause", "noop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("NOOP\tpaused\tpending=0\trunning=0"),
        "{}",
        stdout(&out)
    );
    let out = run(&admin, &["job", "noop", "--json"]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = job["id"].as_str().expect("id").to_owned();
    let out = run(&admin, &["queue", "list"]);
    let noop_line = stdout(&out).lines().find(|l| l.starts_with("NOOP")).map(str::to_owned);
    assert!(
        noop_line
            .as_deref()
            .is_some_and(|l| l.contains("\tpaused\tpending=1\t")),
        "{}",
        stdout(&out)
    );

    let out = run(
        &admin,
        &["job", "cancel", "--kind", "NOOP", "--status", "PENDING", "--dry-run"],
    );
    assert_eq!(
        stdout(&out),
        "cancel (dry run)\tmatched=1\ttouched=1\n",
        "{}",
        stderr(&out)
    );
    let out = run(&admin, &["job", "cancel", "--kind", "NOOP", "--status", "PENDING"]);
    assert_eq!(stdout(&out), "cancel\tmatched=1\ttouched=1\n", "{}", stderr(&out));
    let out = run(&admin, &["job", "cancel", &id, "--kind", "NOOP"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not both"), "{}", stderr(&out));

    assert!(run(&admin, &["queue", "resume", "NOOP"]).status.success());
    let out = run(&admin, &["job", "retry", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\tNOOP\tDONE\t"), "{}", stdout(&out));
    let out = run(&admin, &["job", "delete", "--status", "CANCELLED"]);
    assert_eq!(stdout(&out), "delete\tmatched=1\ttouched=1\n", "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_verbs_make_show_change_and_delete_a_webhook() {
    let s = server!(Backend::Sqlite);
    let run = client_of(&s);
    let admin = s.admin_key.clone();
    assert!(run(&admin, &["folder", "create", "/watched"]).status.success());
    let out = run(
        &admin,
        &[
            "webhook",
            "create",
            "https://hooks.example.com/in",
            "--event",
            "sync.finished",
            "--event",
            "job.finished",
            "--folder",
            "/watched",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    assert!(
        first.contains("\tenabled\thttps://hooks.example.com/in\tjob.finished,sync.finished\tfolder="),
        "{text}"
    );
    assert!(lines.next().is_some_and(|l| l.starts_with("secret\twhsec_")), "{text}");
    let id = first.split('\t').next().unwrap_or_default().to_owned();
    let out = run(&admin, &["webhook", "update", &id, "--disable"]);
    assert!(
        stdout(&out).contains("\tdisabled\t"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = run(&admin, &["webhook", "list"]);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let out = run(&admin, &["webhook", "deliveries", &id]);
    assert!(out.status.success() && stdout(&out).is_empty(), "{}", stderr(&out));
    let out = run(
        &admin,
        &["webhook", "create", "http://10.0.0.1/x", "--event", "job.finished"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("private"), "{}", stderr(&out));
    assert!(run(&admin, &["webhook", "delete", &id]).status.success());
    let out = run(&admin, &["webhook", "show", &id]);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_export_writes_what_the_api_answers() {
    let s = server!(Backend::Sqlite);
    let run = client_of(&s);
    let admin = s.admin_key.clone();
    let top = s.folder("/manifest").await;
    let below = s.folder("/manifest/below").await;
    s.upload_ok(&top, "one.txt", b"1".to_vec()).await;
    s.upload_ok(&below, "two.txt", b"2".to_vec()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("manifest.csv");
    let out = run(
        &admin,
        &[
            "item",
            "export",
            "/manifest",
            "--recursive",
            "--format",
            "csv",
            "--out",
            file.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read(&file).expect("the file");
    let answered = s
        .bytes(&format!("/v1/folders/{top}/items/export?recursive=true&format=csv"))
        .await;
    assert_eq!(written, answered);
    let rows = String::from_utf8(written).expect("utf-8");
    assert_eq!(rows.lines().count(), 3, "a header and two rows: {rows}");
    assert!(rows.contains("/manifest/below/two.txt"), "{rows}");

    let out = run(&admin, &["item", "export", "/manifest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len(), 1, "its own items only without --recursive");
    assert_eq!(lines[0]["path"], "/manifest/one.txt");

    let out = run(&admin, &["item", "export", "/manifest", "--format", "xml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("format"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The session answers four parts and no `url`: a CLI that sent the file any other way than
/// part by part would fail.
async fn item_upload_sends_a_large_file_in_parts_straight_into_a_cloud_bucket() {
    let Some(fixture) = common::buckets::Fixture::s3().await else {
        return;
    };
    let Some(s) = TestServer::start_over(Backend::Sqlite, Some(fixture), |settings| {
        settings.signed_urls.upload_part_bytes = 5 << 20;
    })
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let big = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..(17u32 << 20) / 4 + 1).flat_map(u32::to_le_bytes).collect();
    std::fs::write(&big, &bytes).expect("write");
    let cli = client_of(&s);
    let out = cli(
        &s.admin_key,
        &[
            "item",
            "upload",
            big.to_str().expect("utf8"),
            "--folder",
            "/big",
            "--direct",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let uploaded: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(uploaded["size"], bytes.len());
    assert_eq!(uploaded["checksum"], blake3::hash(&bytes).to_hex().as_str());
    assert!(s.bytes(&format!("/v1/items/{}/content", id(&uploaded))).await == bytes);
    assert_eq!(s.object_keys().await.len(), 1, "no part left behind");
}
