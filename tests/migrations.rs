//! Migrations over databases made by earlier versions: what a new migration does to existing
//! rows, on SQLite and PostgreSQL.

mod common;

use std::path::Path;

use common::{Backend, PgDatabase, postgres_url};
use sqlx::migrate::Migrator;
use stowage::config::DatabaseSettings;
use stowage::store::{Db, Store};

/// A store on a fresh database of `backend` (with what keeps that database alive), or `None` when
/// PostgreSQL is not configured here.
async fn fresh(backend: Backend) -> Option<(Store, Option<PgDatabase>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pg) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.path().join("old.db").display()), None),
        Backend::Postgres => {
            let db = PgDatabase::create(&postgres_url()?).await;
            (db.url.clone(), Some(db))
        }
    };
    let settings = DatabaseSettings {
        url,
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings).await.expect("connect");
    Some((store, pg, dir))
}

/// Applies the catalog's migrations up to `version`, as a build of that time did.
async fn migrate_to(store: &Store, backend: Backend, version: i64) {
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    let mut migrator = Migrator::new(source).await.expect("migrations");
    migrator.dangerous_set_table_name("_stowage_migrations");
    let mut conn = store.read().await.expect("a connection");
    migrator.run_to(version, conn.conn()).await.expect("old migrations");
}

async fn the_teams_quotas_and_item_count_migrations_give_every_tree_its_owner_usage_and_counts(backend: Backend) {
    let Some((store, _pg, _dir)) = fresh(backend).await else {
        return;
    };
    migrate_to(&store, backend, 10).await;
    // Before teams, an admin could create folders inside someone's tree, and own them.
    let folders = [
        ("/a", None, "alice"),
        ("/a/b", Some("/a"), "admin"),
        ("/a/b/c", Some("/a/b"), "bob"),
        ("/z", None, "bob"),
        ("/z/y", Some("/z"), "admin"),
    ];
    let mut ids = std::collections::BTreeMap::new();
    {
        let mut tx = store.write().await.expect("tx");
        for (path, parent, owner) in folders {
            let id = uuid::Uuid::now_v7().to_string();
            let name = path.rsplit('/').next().unwrap_or_default();
            let parent_id = parent.map(|p: &str| ids.get(p).cloned().expect("parent first"));
            sqlx::query(
                "INSERT INTO folder (id, parent_id, name, name_folded, path, owner, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3, $4, $5, 1, 1)",
            )
            .bind(id.clone())
            .bind(parent_id)
            .bind(name.to_owned())
            .bind(path.to_owned())
            .bind(owner.to_owned())
            .execute(tx.conn())
            .await
            .expect("an old folder");
            ids.insert(path, id);
        }
        // Items: live ones count toward their tree owner's usage; a tombstone and a trashed
        // item do not.
        let items = [
            ("/a/b/c", 5, 0, None),
            ("/a", 3, 0, None),
            ("/z/y", 7, 0, None),
            ("/z", 100, 1, None),
            ("/z", 1_000, 0, Some(1_i64)),
        ];
        for (n, (folder, size, tombstone, trashed_at)) in items.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO item (id, folder_id, title, bucket, object_key, item_type, mime_type, size, \
                 is_tombstone, trashed_at, trash_unit, purge_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'managed', $3, 'other', 'application/octet-stream', $4, $5, $6, \
                 CASE WHEN $6 IS NULL THEN NULL ELSE $1 END, $6, 1, 1)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(ids.get(folder).cloned().expect("a folder"))
            .bind(format!("item{n}"))
            .bind(size as i64)
            .bind(tombstone as i64)
            .bind(trashed_at)
            .execute(tx.conn())
            .await
            .expect("an old item");
        }
        tx.commit().await.expect("commit");
    }

    store.migrate().await.expect("the new migrations");

    let mut conn = store.read().await.expect("a connection");
    let owners: Vec<(String, String)> = sqlx::query_as("SELECT path, owner FROM folder ORDER BY path")
        .fetch_all(conn.conn())
        .await
        .expect("owners");
    let owners: Vec<(&str, &str)> = owners.iter().map(|(p, o)| (p.as_str(), o.as_str())).collect();
    assert_eq!(
        owners,
        [
            ("/a", "alice"),
            ("/a/b", "alice"),
            ("/a/b/c", "alice"),
            ("/z", "bob"),
            ("/z/y", "bob"),
        ]
    );
    // The quotas migration counts what each owner's trees hold now.
    let usage: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT user_name, used_bytes, used_items FROM user_usage ORDER BY user_name")
            .fetch_all(conn.conn())
            .await
            .expect("usage");
    assert_eq!(usage, [("alice".to_owned(), 8, 2), ("bob".to_owned(), 7, 1)]);
    // The tally migration (0023, after the item count's 0017) counts each folder's direct items
    // by type: a tombstone is one (its bytes are not), a trashed item is not.
    let tallies: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT f.path, t.item_type, t.items, t.tombstones, t.bytes FROM folder_tally t \
         JOIN folder f ON f.id = t.folder_id ORDER BY f.path",
    )
    .fetch_all(conn.conn())
    .await
    .expect("tallies");
    let tallies: Vec<(&str, &str, i64, i64, i64)> = tallies
        .iter()
        .map(|(p, t, n, d, b)| (p.as_str(), t.as_str(), *n, *d, *b))
        .collect();
    assert_eq!(
        tallies,
        [
            ("/a", "other", 1, 0, 3),
            ("/a/b/c", "other", 1, 0, 5),
            ("/z", "other", 1, 1, 0),
            ("/z/y", "other", 1, 0, 7),
        ]
    );
}

on_both_backends!(the_teams_quotas_and_item_count_migrations_give_every_tree_its_owner_usage_and_counts);
