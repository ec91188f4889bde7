//! List figures at catalog scale (issue 20), against the real `stowage serve` binary on SQLite
//! and, when `STOWAGE_TEST_POSTGRES_URL` names a server, on PostgreSQL (a fresh database, dropped
//! after). The catalog: `STOWAGE_BENCH_CATALOG_ITEMS` items (default 10,000,000) in 1,024 leaf
//! folders (`/catalog/dNN/dMM`), made by syncing a seed tree of ten empty files per folder
//! through the server and then copying those item rows inside the database: every copy gets a
//! new id, its title and object key a `~NNNNN` suffix, a random size and a later creation time
//! (PostgreSQL is then `ANALYZE`d, as autovacuum would soon do; SQLite has no statistics, as a
//! server's catalog has none).
//!
//! For each list shape the API offers it prints p50 and p99 of `STOWAGE_BENCH_CATALOG_REPEATS`
//! (default 12) requests of the first page of 100 and of page 51 (reached with pages of 1,000,
//! whose token is only a position), and of the recursive summary. A shape whose first page
//! takes over `SLOW_SECONDS` is measured three times and not paged.
//!
//! `cargo bench --bench catalog` (`STOWAGE_BENCH_CATALOG_ITEMS=1000000` for a quicker run;
//! `STOWAGE_BENCH_BINARY` to measure another build side by side;
//! `STOWAGE_BENCH_CATALOG_SKIP_SQLITE=1` for PostgreSQL alone).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{AnyConnection, Connection, Executor, Row};
use support::{
    Server, drop_postgres_database, env_number, fresh_postgres_database, group, load_average, millis_at,
    stowage_binary, target_dir,
};

/// Leaf folders, as 32 × 32.
const FANOUT: usize = 32;
/// Empty files synced into each leaf folder, the rows every copy repeats.
const SEED_PER_FOLDER: usize = 10;
/// Copies made by one INSERT statement.
const COPIES_PER_STATEMENT: usize = 20;
/// A first page slower than this is measured three times, and not paged.
const SLOW_SECONDS: f64 = 5.0;

/// The list shapes: a name and the query after `/v1/folders/{root}/items?page_size=N`.
const SHAPES: [(&str, &str); 7] = [
    ("recursive, by title", "&recursive=true"),
    (
        "recursive, `order_by=size&desc=true`",
        "&recursive=true&order_by=size&desc=true",
    ),
    (
        "recursive, `order_by=created_at`",
        "&recursive=true&order_by=created_at",
    ),
    ("recursive, `item_types=OTHER`", "&recursive=true&item_types=OTHER"),
    ("recursive, `search=0999`", "&recursive=true&search=0999"),
    (
        "recursive, `is_tombstone=true` (none are)",
        "&recursive=true&is_tombstone=true",
    ),
    (
        "recursive, `order_by=size&search=~0`",
        "&recursive=true&order_by=size&search=~0",
    ),
];

#[tokio::main]
async fn main() {
    let items = env_number("STOWAGE_BENCH_CATALOG_ITEMS", 10_000_000);
    let repeats = env_number("STOWAGE_BENCH_CATALOG_REPEATS", 12).max(1);
    println!("stowage binary: {}", stowage_binary().display());
    println!("load before: {}", load_average());
    sqlx::any::install_default_drivers();
    // `STOWAGE_BENCH_CATALOG_SKIP_SQLITE=1` measures PostgreSQL alone (the SQLite catalog takes
    // about ten minutes to make at 10,000,000 items).
    if std::env::var_os("STOWAGE_BENCH_CATALOG_SKIP_SQLITE").is_none() {
        bench("SQLite", None, items, repeats).await;
    }
    if let Ok(admin) = std::env::var("STOWAGE_TEST_POSTGRES_URL") {
        let (name, url) = fresh_postgres_database(&admin, "stowage_catalog").await;
        bench("PostgreSQL", Some(url), items, repeats).await;
        drop_postgres_database(&admin, &name).await;
    }
}

async fn bench(label: &str, database: Option<String>, items: usize, repeats: usize) {
    let data = target_dir().join("catalog-bench");
    std::fs::create_dir_all(&data).expect("create the bench data directory");
    let tree = seed_tree(&data);
    let mut config = format!("[buckets.bench]\nurl = \"file://{}\"\n", tree.path().display());
    if let Some(url) = &database {
        config.push_str(&format!("\n[database]\nurl = \"{url}\"\n"));
    }
    let server = Server::start(&stowage_binary(), &data, &config);
    let root = server.synced_folder("/catalog").await;
    let synced = server.sync_once(&root).await;
    assert_eq!(synced["status"], "DONE", "{synced}");
    let url = database.unwrap_or_else(|| format!("sqlite://{}", server.data_dir().join("stowage.db").display()));
    let started = Instant::now();
    let made = multiply(&url, items).await;
    println!(
        "\n{label}: {} items made in {:.1} s (seed of {} synced, then copied in the database)",
        group(made),
        started.elapsed().as_secs_f64(),
        group((FANOUT * FANOUT * SEED_PER_FOLDER) as u64)
    );
    let leaf = first_leaf(&server).await;
    println!(
        "\n| {label}, {} items | first page p50 | p99 | page 51 p50 | p99 |",
        group(made)
    );
    println!("|---|---|---|---|---|");
    let one_folder = format!("/v1/folders/{leaf}/items?page_size=");
    measure(&server, "one folder, by title", &one_folder, repeats).await;
    let all = format!("/v1/folders/{root}/items?page_size=");
    for (name, query) in SHAPES {
        let path = format!("{all}{{SIZE}}{query}");
        measure(&server, name, &path, repeats).await;
    }
    let summary = format!("/v1/folders/{root}/summary?recursive=true");
    let (times, _) = timed(&server, &summary, repeats).await;
    println!(
        "| summary, recursive | {:.1} ms | {:.1} ms | | |",
        millis_at(&times, 0.5),
        millis_at(&times, 0.99)
    );
    server.stop();
}

/// The seed tree: `FANOUT` × `FANOUT` leaf directories of `SEED_PER_FOLDER` empty files.
fn seed_tree(data: &std::path::Path) -> tempfile::TempDir {
    let tree = tempfile::tempdir_in(data).expect("a tree directory");
    for a in 0..FANOUT {
        for b in 0..FANOUT {
            let dir = tree.path().join(format!("d{a:02}/d{b:02}"));
            std::fs::create_dir_all(&dir).expect("create a seed directory");
            for f in 0..SEED_PER_FOLDER {
                std::fs::write(dir.join(format!("f{f:04}.bin")), b"").expect("write a seed file");
            }
        }
    }
    tree
}

/// Copies the synced item rows in the database at `url` until it holds about `items` items;
/// answers how many it holds.
async fn multiply(url: &str, items: usize) -> u64 {
    let mut db = AnyConnection::connect(url).await.expect("connect to the catalog");
    let postgres = url.starts_with("postgres");
    if !postgres {
        db.execute("PRAGMA busy_timeout = 60000; PRAGMA cache_size = -1000000")
            .await
            .expect("pragmas");
    }
    let columns: Vec<String> = {
        let sql = match postgres {
            true => {
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'item' ORDER BY ordinal_position"
            }
            false => "SELECT name FROM pragma_table_info('item')",
        };
        db.fetch_all(sql)
            .await
            .expect("item columns")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect()
    };
    db.execute("CREATE TEMP TABLE seed AS SELECT * FROM item")
        .await
        .expect("seed rows");
    let seed = FANOUT * FANOUT * SEED_PER_FOLDER;
    let copies = items.div_ceil(seed).saturating_sub(1);
    let values: Vec<String> = columns.iter().map(|c| copied(c, postgres)).collect();
    let mut first = 1;
    while first <= copies {
        let last = (first + COPIES_PER_STATEMENT - 1).min(copies);
        let numbers = match postgres {
            true => format!("generate_series({first}, {last}) AS c(k)"),
            false => format!(
                "(WITH RECURSIVE n(k) AS (SELECT {first} UNION ALL SELECT k + 1 FROM n WHERE k < {last}) SELECT k FROM n) AS c"
            ),
        };
        let sql = format!(
            "INSERT INTO item ({}) SELECT {} FROM seed s, {numbers}",
            columns.join(", "),
            values.join(", ")
        );
        db.execute(sqlx::AssertSqlSafe(sql)).await.expect("copy item rows");
        if !postgres {
            // The server keeps its own connections open, so SQLite's automatic checkpoints
            // never reset the WAL: without this it grows by the whole catalog (30 GB at 10M).
            let busy: i64 = db
                .fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .expect("checkpoint")
                .get(0);
            assert_eq!(busy, 0, "the WAL could not be checkpointed");
        }
        first = last + 1;
    }
    if postgres {
        db.execute("ANALYZE").await.expect("analyze");
    }
    let count: i64 = db.fetch_one("SELECT COUNT(*) FROM item").await.expect("count").get(0);
    u64::try_from(count).unwrap_or_default()
}

/// The value of `column` in copy `c.k` of seed row `s`.
fn copied(column: &str, postgres: bool) -> String {
    let suffix = match postgres {
        true => "'~' || lpad(c.k::text, 5, '0')",
        false => "'~' || printf('%05d', c.k)",
    };
    match (column, postgres) {
        ("id", true) => "gen_random_uuid()::text".into(),
        ("id", false) => "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-8' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))".into(),
        ("title" | "title_folded" | "object_key", _) => format!("s.{column} || {suffix}"),
        ("size", true) => "(random() * 1000000)::bigint".into(),
        ("size", false) => "abs(random() % 1000000)".into(),
        ("created_at" | "updated_at", _) => format!("s.{column} + c.k"),
        (other, _) => format!("s.{other}"),
    }
}

/// The id of the first leaf folder, `/catalog/d00/d00`.
async fn first_leaf(server: &Server) -> String {
    let folder = server
        .call(reqwest::Method::GET, "/v1/folders?path=/catalog/d00/d00", None)
        .await;
    folder["id"].as_str().expect("the leaf folder").to_owned()
}

/// Prints p50 and p99 of the first page of 100 of `path` (`{SIZE}` stands for the page size),
/// then of page 51.
async fn measure(server: &Server, name: &str, path: &str, repeats: usize) {
    let path = if path.contains("{SIZE}") {
        path.to_owned()
    } else {
        format!("{path}{{SIZE}}")
    };
    let first = path.replace("{SIZE}", "100");
    let probe = Instant::now();
    let _ = get(server, &first).await;
    let slow = probe.elapsed().as_secs_f64() > SLOW_SECONDS;
    let (times, _) = timed(server, &first, if slow { 3 } else { repeats }).await;
    let mut line = format!(
        "| {name} | {:.1} ms | {:.1} ms |",
        millis_at(&times, 0.5),
        millis_at(&times, 0.99)
    );
    if slow {
        line.push_str(&format!(
            " not paged: the first page took over {SLOW_SECONDS} s (3 runs) | |"
        ));
        println!("{line}");
        return;
    }
    // Five pages of 1,000 reach the position after item 5,000: page 51 of 100.
    let mut token: Option<String> = None;
    for _ in 0..5 {
        let mut page_path = path.replace("{SIZE}", "1000");
        if let Some(token) = &token {
            page_path.push_str(&format!("&page_token={token}"));
        }
        token = get(server, &page_path).await["next_page_token"]
            .as_str()
            .map(str::to_owned);
    }
    match token {
        Some(token) => {
            let deep = format!("{first}&page_token={token}");
            let (times, _) = timed(server, &deep, repeats).await;
            line.push_str(&format!(
                " {:.1} ms | {:.1} ms |",
                millis_at(&times, 0.5),
                millis_at(&times, 0.99)
            ));
        }
        None => line.push_str(" fewer than 5,000 items | |"),
    }
    println!("{line}");
}

/// `repeats` GETs of `path`, one after another: their sorted times and the last answer.
async fn timed(server: &Server, path: &str, repeats: usize) -> (Vec<Duration>, Value) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = Value::Null;
    for _ in 0..repeats {
        let started = Instant::now();
        last = get(server, path).await;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    (times, last)
}

/// A GET of `path` as the admin, insisting on 200.
async fn get(server: &Server, path: &str) -> Value {
    server.call(reqwest::Method::GET, path, None).await
}
