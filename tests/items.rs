//! Item API through HTTP, on SQLite and PostgreSQL: upload with type and metadata detection,
//! conflict strategies (also under concurrency), download with ranges, tar downloads, lists,
//! move, delete, access, aborted uploads and the orphan sweep.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, SystemTime};

use common::media;
use common::{Backend, TestServer, column, eventually_async, files_under, id, tar_entries};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    detects_types_and_media_metadata,
    conflict_strategies,
    concurrent_uploads_of_one_title,
    content_download_with_ranges,
    tar_download_of_many_items,
    pages_2500_items_while_others_are_added,
    every_list_order_has_an_index_behind_it,
    a_subtree_pages_the_same_folder_by_folder_as_gathered,
    searches_and_tombstones_are_read_from_their_indexes,
    list_filters_orders_and_strictness,
    patch_title_and_metadata,
    move_items_all_or_nothing,
    permanent_deletes_remove_their_objects,
    private_items_are_hidden_from_other_users,
    aborted_and_oversized_uploads_leave_nothing,
    orphan_sweep_removes_only_unreferenced_old_objects,
);

async fn folder(s: &TestServer, path: &str) -> String {
    s.folder(path).await
}

async fn detects_types_and_media_metadata(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/media").await;
    let dir = tempfile::tempdir().expect("tmp");

    let png = s.upload_ok(&f, "cat.png", media::png(64, 48)).await;
    assert_eq!(png["item_type"], "IMAGE");
    assert_eq!(png["mime_type"], "image/png");
    assert_eq!(
        (png["media"]["width"].clone(), png["media"]["height"].clone()),
        (json!(64), json!(48))
    );

    // Magic bytes beat the extension.
    let jpeg = s.upload_ok(&f, "photo.txt", media::jpeg(33, 17)).await;
    assert_eq!(jpeg["item_type"], "IMAGE");
    assert_eq!(jpeg["mime_type"], "image/jpeg");
    assert_eq!(
        (jpeg["media"]["width"].clone(), jpeg["media"]["height"].clone()),
        (json!(33), json!(17))
    );

    let pdf = s.upload_ok(&f, "doc.pdf", media::pdf(3)).await;
    assert_eq!(pdf["item_type"], "PDF");
    assert_eq!(pdf["mime_type"], "application/pdf");
    assert_eq!(pdf["media"]["page_count"], 3);

    let nii = s.upload_ok(&f, "brain.nii", media::nifti(&[4, 5, 6])).await;
    assert_eq!(nii["item_type"], "NIFTI");
    assert_eq!(nii["media"]["dimensions"], json!([4, 5, 6]));

    let dcm = s.upload_ok(&f, "scan.dcm", media::dicom()).await;
    assert_eq!(dcm["item_type"], "DICOM_FILE");
    assert_eq!(dcm["mime_type"], "application/dicom");

    let text = s.upload_ok(&f, "notes.csv", b"a,b\n1,2\n".to_vec()).await;
    assert_eq!(text["item_type"], "PLAIN_TEXT");
    assert_eq!(text["mime_type"], "text/csv");

    let other = s.upload_ok(&f, "blob.bin", vec![0, 1, 2, 3, 0xff]).await;
    assert_eq!(other["item_type"], "OTHER");
    // Undetectable bytes fall back on the extension.
    let guessed = s.upload_ok(&f, "song.mp3", vec![0, 1, 2, 3, 0xff]).await;
    assert_eq!(guessed["item_type"], "AUDIO");
    assert_eq!(guessed["mime_type"], "audio/mpeg");

    let wav_bytes = media::wav(8000, 1, 500);
    let wav = s.upload_ok(&f, "tone.wav", wav_bytes.clone()).await;
    assert_eq!(wav["item_type"], "AUDIO");
    // The checksum is blake3 as b3sum prints it; the size is exact.
    assert_eq!(wav["checksum"], media::b3sum(dir.path(), &wav_bytes));
    assert_eq!(wav["size"], wav_bytes.len());

    if media::have_ffmpeg() {
        assert_eq!(wav["media"]["sample_rate"], 8000);
        assert_eq!(wav["media"]["channels"], 1);
        assert_eq!(wav["media"]["duration_seconds"], 0.5);
        assert_eq!(wav["media"]["codec"], "pcm_s16le");

        let mp4 = s.upload_ok(&f, "clip.mp4", media::mp4(dir.path())).await;
        assert_eq!(mp4["item_type"], "VIDEO");
        assert_eq!(mp4["mime_type"], "video/mp4");
        let m = &mp4["media"];
        assert_eq!((m["width"].clone(), m["height"].clone()), (json!(320), json!(240)));
        assert_eq!(m["fps"], 25.0);
        assert_eq!(m["codec"], "h264");
        assert_eq!(m["duration_seconds"], 2.0);
    }

    // GET returns the same record.
    let fetched = s.get(&format!("/v1/items/{}", id(&pdf))).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, pdf);
    // The folder counts its items by type.
    let summary = s.get(&format!("/v1/folders/{f}/summary")).await;
    assert_eq!(summary.body["by_type"]["IMAGE"]["count"], 2);
}

async fn conflict_strategies(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/c").await;
    let first = s.upload_ok(&f, "a.txt", b"one".to_vec()).await;
    assert_eq!(s.object_keys().await.len(), 1);

    // error (the default): 409, and the rejected upload leaves no object.
    let clash = s.upload(&f, "a.txt", b"two".to_vec(), &[]).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(clash.message().contains("conflict_strategy"), "{}", clash.message());
    let explicit = s
        .upload(&f, "a.txt", b"two".to_vec(), &[("conflict_strategy", "error")])
        .await;
    assert_eq!(explicit.status, StatusCode::CONFLICT);
    assert_eq!(s.object_keys().await.len(), 1);

    // skip: 200 with the existing item, unchanged.
    let skipped = s
        .upload(&f, "a.txt", b"two".to_vec(), &[("conflict_strategy", "skip")])
        .await;
    assert_eq!(skipped.status, StatusCode::OK);
    assert_eq!(skipped.body, first);
    assert_eq!(s.object_keys().await.len(), 1);

    // new: the next free alternative title, keeping the extension.
    let mut titles = Vec::new();
    for _ in 0..2 {
        let made = s
            .upload(&f, "a.txt", b"three".to_vec(), &[("conflict_strategy", "new")])
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        titles.push(made.body["title"].as_str().expect("title").to_owned());
    }
    assert_eq!(titles, ["a (1).txt", "a (2).txt"]);
    // A title given in the form wins over the file name, even after the file part.
    let titled = s
        .request(Method::POST, &format!("/v1/folders/{f}/items"), Some(&s.admin_key))
        .multipart(
            reqwest::multipart::Form::new()
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(b"t".to_vec()).file_name("ignored.txt"),
                )
                .text("title", "a.txt")
                .text("conflict_strategy", "new"),
        )
        .send()
        .await
        .expect("upload");
    assert_eq!(titled.status(), StatusCode::CREATED);
    let titled: Value = titled.json().await.expect("json");
    assert_eq!(titled["title"], "a (3).txt");

    // replace: same id, new content; the old object is gone.
    assert!(s.holds(&first).await);
    let replaced = s
        .upload(
            &f,
            "a.txt",
            b"replacement".to_vec(),
            &[("conflict_strategy", "replace"), ("client_metadata", r#"{"v":2}"#)],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.body);
    assert_eq!(replaced.body["id"], first["id"]);
    assert_eq!(replaced.body["created_at"], first["created_at"]);
    assert_eq!(replaced.body["size"], 11);
    assert_eq!(replaced.body["client_metadata"], json!({"v": 2}));
    assert_ne!(replaced.body["checksum"], first["checksum"]);
    assert!(
        eventually_async(|| async { !s.holds(&first).await }).await,
        "the replaced object is removed"
    );
    assert_eq!(
        s.bytes(&format!("/v1/items/{}/content", id(&first))).await,
        b"replacement"
    );
    // replace with a free title simply creates.
    let fresh = s
        .upload(&f, "b.txt", b"b".to_vec(), &[("conflict_strategy", "replace")])
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED);

    // One object per item, nothing else.
    let listed = s.get(&format!("/v1/folders/{f}/items")).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(s.object_keys().await.len(), 5);

    // Bad strategies and forms are 400s that say what to send.
    let bad = s
        .upload(&f, "a.txt", b"x".to_vec(), &[("conflict_strategy", "overwrite")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message().contains("error, skip, new or replace"),
        "{}",
        bad.message()
    );
    let unknown = s.upload(&f, "a.txt", b"x".to_vec(), &[("colour", "red")]).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.message().contains("colour"), "{}", unknown.message());
    let bad_meta = s
        .upload(&f, "z.txt", b"x".to_vec(), &[("client_metadata", "[1]")])
        .await;
    assert_eq!(bad_meta.status, StatusCode::BAD_REQUEST);
    let bad_title = s.upload(&f, "z.txt", b"x".to_vec(), &[("title", "a/b")]).await;
    assert_eq!(bad_title.status, StatusCode::BAD_REQUEST);
    let no_file = s
        .request(Method::POST, &format!("/v1/folders/{f}/items"), Some(&s.admin_key))
        .multipart(reqwest::multipart::Form::new().text("title", "x"))
        .send()
        .await
        .expect("upload");
    assert_eq!(no_file.status(), StatusCode::BAD_REQUEST);
    let not_multipart = s.post(&format!("/v1/folders/{f}/items"), json!({"file": "x"})).await;
    assert_eq!(not_multipart.status, StatusCode::BAD_REQUEST);
    assert!(
        not_multipart.message().contains("multipart"),
        "{}",
        not_multipart.message()
    );
    assert!(
        eventually_async(|| async { s.object_keys().await.len() == 5 }).await,
        "failed uploads leave no objects"
    );
}

async fn concurrent_uploads_of_one_title(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/race").await;
    let uploads = (0..6).map(|i| {
        s.upload(
            &f,
            "same.txt",
            format!("body {i}").into_bytes(),
            &[("conflict_strategy", "new")],
        )
    });
    let answers = futures::future::join_all(uploads).await;
    let mut titles: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
            a.body["title"].as_str().expect("title").to_owned()
        })
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "same (1).txt",
            "same (2).txt",
            "same (3).txt",
            "same (4).txt",
            "same (5).txt",
            "same.txt"
        ]
    );

    let uploads = (0..6).map(|i| s.upload(&f, "once.txt", format!("body {i}").into_bytes(), &[]));
    let answers = futures::future::join_all(uploads).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let conflicts = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 5), "{answers:?}");
    assert!(
        eventually_async(|| async { s.object_keys().await.len() == 7 }).await,
        "losers leave no object"
    );
}

async fn content_download_with_ranges(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/dl").await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let item = s.upload_ok(&f, "data.bin", bytes.clone()).await;
    let path = format!("/v1/items/{}/content", id(&item));
    let get = |range: Option<&str>| {
        let mut req = s.request(Method::GET, &path, Some(&s.admin_key));
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        req.send()
    };
    let whole = get(None).await.expect("get");
    assert_eq!(whole.status(), StatusCode::OK);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    let etag = format!("\"{}\"", item["checksum"].as_str().expect("checksum"));
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.expect("body").as_ref(), bytes.as_slice());

    let part = get(Some("bytes=1000-1999")).await.expect("get");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(part.headers()["content-length"], "1000");
    assert_eq!(part.bytes().await.expect("body").as_ref(), &bytes[1000..2000]);

    let tail = get(Some("bytes=-10")).await.expect("get");
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.expect("body").as_ref(), &bytes[299_990..]);
    let open = get(Some("bytes=299000-")).await.expect("get");
    assert_eq!(open.bytes().await.expect("body").len(), 1000);

    let beyond = get(Some("bytes=300000-")).await.expect("get");
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers()["content-range"], "bytes */300000");

    // Several ranges are not served: the whole content comes back.
    let multi = get(Some("bytes=0-1,5-6")).await.expect("get");
    assert_eq!(multi.status(), StatusCode::OK);

    let cached = s
        .request(Method::GET, &path, Some(&s.admin_key))
        .header("If-None-Match", etag.as_str())
        .send()
        .await
        .expect("get");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    let text = s.upload_ok(&f, "t.txt", b"hi".to_vec()).await;
    let resp = s
        .request(
            Method::GET,
            &format!("/v1/items/{}/content", id(&text)),
            Some(&s.admin_key),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let missing = s.get(&format!("/v1/items/{}/content", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn tar_download_of_many_items(backend: Backend) {
    let s = server!(backend);
    let a = folder(&s, "/t/a").await;
    let b = folder(&s, "/t/b").await;
    let one = s.upload_ok(&a, "same.txt", b"from a".to_vec()).await;
    let two = s.upload_ok(&b, "same.txt", b"from b".to_vec()).await;
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 13) as u8).collect();
    let three = s.upload_ok(&a, "big.bin", big.clone()).await;
    let ids = json!({"item_ids": [id(&one), id(&two), id(&three)]});

    let resp = s
        .request(Method::POST, "/v1/items/download", Some(&s.admin_key))
        .json(&ids)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let tar = resp.bytes().await.expect("body");
    let entries = tar_entries(&tar);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["same.txt", "same (1).txt", "big.bin"]);
    assert_eq!(entries[0].1, b"from a");
    assert_eq!(entries[1].1, b"from b");
    assert_eq!(entries[2].1, big);

    let resp = s
        .request(Method::POST, "/v1/items/download?gzip=true", Some(&s.admin_key))
        .json(&ids)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let gz = resp.bytes().await.expect("body");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(gz.as_ref())
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, tar.as_ref());

    let ghost = uuid::Uuid::new_v4().to_string();
    let missing = s
        .post("/v1/items/download", json!({"item_ids": [id(&one), ghost]}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.message().contains(&ghost), "{}", missing.message());
    let empty = s.post("/v1/items/download", json!({"item_ids": []})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let unknown = s
        .post("/v1/items/download?zip=1", json!({"item_ids": [id(&one)]}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

/// Inserts `n` items titled `{prefix}{i:05}` straight into the store (uploading thousands
/// through HTTP would only slow the test down; paging is what is tested).
async fn insert_rows(s: &TestServer, folder_id: &str, prefix: &str, range: std::ops::Range<usize>) {
    let store = &s.services().store;
    let mut tx = store.write().await.expect("tx");
    for i in range {
        let mut item = common::item_row(folder_id, &format!("{prefix}{i:05}"), "managed", &format!("fake/{i}"));
        if i % 2 == 0 {
            item.item_type = stowage::domain::item::ItemType::Image;
        }
        item.mime_type = "application/octet-stream".into();
        item.size = (i % 97) as i64;
        item.is_tombstone = i % 10 == 0;
        assert!(
            stowage::store::items::insert_if_title_free(&mut tx, &item)
                .await
                .expect("insert")
        );
    }
    tx.commit().await.expect("commit");
}

async fn pages_2500_items_while_others_are_added(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/many").await;
    insert_rows(&s, &f, "item-", 0..2500).await;
    for (order, desc) in [("title", false), ("created_at", true), ("size", false), ("size", true)] {
        let mut seen: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        let mut keys: Vec<Value> = Vec::new();
        loop {
            let mut path = format!("/v1/folders/{f}/items?page_size=1000&order_by={order}&desc={desc}");
            if let Some(t) = &token {
                path.push_str(&format!("&page_token={t}"));
            }
            let page = s.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            pages += 1;
            for row in page.body["items"].as_array().expect("items") {
                keys.push(row[order].clone());
            }
            seen.extend(column(&page.body, "title"));
            // Others keep arriving while we page, before and after the cursor.
            insert_rows(&s, &f, &format!("new-{order}-{desc}-{pages}-"), 0..20).await;
            match page.body["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        let originals: Vec<&String> = seen.iter().filter(|t| t.starts_with("item-")).collect();
        let unique: HashSet<&&String> = originals.iter().collect();
        assert_eq!(
            originals.len(),
            2500,
            "{order} desc={desc}: every original exactly once"
        );
        assert_eq!(unique.len(), 2500);
        if order == "size" {
            let sizes: Vec<i64> = keys.iter().map(|k| k.as_i64().expect("size")).collect();
            let mut sorted = sizes.clone();
            sorted.sort();
            if desc {
                sorted.reverse();
            }
            assert_eq!(sizes, sorted, "sorted by size");
        }
        if order == "title" {
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted);
        }
    }
}

async fn every_list_order_has_an_index_behind_it(backend: Backend) {
    use stowage::domain::item::ItemOrder;
    use stowage::store::item_pages::{ItemQuery, explain_list};
    use stowage::store::{Db, Dialect};
    let s = server!(backend);
    let big = folder(&s, "/indexed").await;
    let small = folder(&s, "/small").await;
    insert_rows(&s, &big, "i-", 0..3000).await;
    insert_rows(&s, &small, "s-", 0..10).await;
    let store = &s.services().store;
    let mut conn = store.read().await.expect("conn");
    let dialect = store.dialect();
    match dialect {
        Dialect::Sqlite => {
            sqlx::query("ANALYZE").execute(conn.conn()).await.expect("analyze");
        }
        Dialect::Postgres => {
            sqlx::query("ANALYZE item").execute(conn.conn()).await.expect("analyze");
            // On a table this small a scan and a sort are cheap; make the planner show the index it
            // would use for a big one (a sort still shows when no index gives the order).
            for set in [
                "SET enable_seqscan = off",
                "SET enable_bitmapscan = off",
                "SET enable_sort = off",
            ] {
                sqlx::query(set).execute(conn.conn()).await.expect("set");
            }
        }
    }
    for order in [ItemOrder::Title, ItemOrder::CreatedAt, ItemOrder::Size] {
        for desc in [false, true] {
            let query = ItemQuery {
                folder_id: uuid::Uuid::parse_str(&big).expect("uuid"),
                subtree: None,
                visible_to: None,
                search: Some("i-".into()),
                item_types: vec![stowage::domain::item::ItemType::Image],
                is_tombstone: Some(false),
                starred_by: None,
                stars_of: Some("admin".into()),
                order,
                desc,
                // Page two: after a position, as a page token gives it.
                after: Some((
                    match order {
                        ItemOrder::Title => stowage::domain::page::SortKey::Text("i-01000".into()),
                        _ => stowage::domain::page::SortKey::Int(5),
                    },
                    uuid::Uuid::nil(),
                )),
                limit: 101,
            };
            let plan = explain_list(&mut conn, &query).await.expect("explain");
            let sorted_without_index = match dialect {
                Dialect::Sqlite => plan.contains("TEMP B-TREE") || !plan.contains("INDEX"),
                Dialect::Postgres => plan.contains("Sort") || !plan.contains("Index"),
            };
            assert!(!sorted_without_index, "{order:?} desc={desc} needs a sort:\n{plan}");
            if std::env::var("SHOW_PLANS").is_ok() {
                println!("{order:?} desc={desc}:\n{plan}");
            }
        }
    }
}

/// Every page of `path` (which ends in a query) at `page_size`, followed to the end: the ids.
async fn all_pages(s: &TestServer, path: &str, page_size: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{path}&page_size={page_size}");
        if let Some(token) = &token {
            url.push_str(&format!("&page_token={token}"));
        }
        let page = s.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {:?}", page.body);
        ids.extend(column(&page.body, "id"));
        match page.body["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return ids,
        }
    }
}

async fn a_subtree_pages_the_same_folder_by_folder_as_gathered(backend: Backend) {
    use stowage::domain::item::ItemOrder;
    use stowage::store::item_pages::{ItemQuery, explain_list};
    let s = server!(backend);
    // Four folders whose items share their titles (ties broken by id): pages of 2 and 7 are
    // read folder by folder (4 folders × 7 < 400 items), pages of 1,000 by gathering. Pages of
    // 2 are bounded by the folders' first items, pages of 7 (more than the folders) are not.
    let top = folder(&s, "/tree").await;
    insert_rows(&s, &top, "x-", 0..100).await;
    for path in ["/tree/a", "/tree/a/b", "/tree/c"] {
        let id = folder(&s, path).await;
        insert_rows(&s, &id, "x-", 0..100).await;
    }
    let query = |limit| ItemQuery {
        folder_id: uuid::Uuid::parse_str(&top).expect("uuid"),
        subtree: Some(stowage::domain::folder::FolderPath::parse("/tree").expect("path")),
        visible_to: None,
        search: None,
        item_types: Vec::new(),
        is_tombstone: None,
        starred_by: None,
        stars_of: None,
        order: ItemOrder::Title,
        desc: false,
        after: None,
        limit,
    };
    {
        let mut conn = s.services().store.read().await.expect("conn");
        let by_folder = explain_list(&mut conn, &query(2)).await.expect("explain");
        let gathered = explain_list(&mut conn, &query(1000)).await.expect("explain");
        assert_ne!(by_folder, gathered, "two plans:\n{by_folder}\n---\n{gathered}");
        assert!(
            by_folder.contains("page_bound"),
            "bounded by the folders' firsts:\n{by_folder}"
        );
        // No folder holds a video: the kept tallies say so, and the list gathers (reading every
        // folder to its end for a first video would cost more).
        let videos = ItemQuery {
            item_types: vec![stowage::domain::item::ItemType::Video],
            ..query(2)
        };
        let plan = explain_list(&mut conn, &videos).await.expect("explain");
        assert!(!plan.contains("page_bound"), "gathered:\n{plan}");
    }
    for (order, desc, filter) in [
        ("title", false, ""),
        ("title", true, "&search=x-0001"),
        ("created_at", false, "&item_types=IMAGE"),
        ("created_at", true, ""),
        ("size", false, "&is_tombstone=false"),
        ("size", true, "&item_types=IMAGE"),
        ("title", false, "&is_tombstone=true"),
    ] {
        let path = format!("/v1/folders/{top}/items?recursive=true&order_by={order}&desc={desc}{filter}");
        let gathered = all_pages(&s, &path, 1000).await;
        assert!(!gathered.is_empty(), "{path}");
        for page_size in [2, 7] {
            let by_folder = all_pages(&s, &path, page_size).await;
            assert_eq!(by_folder, gathered, "{path}, pages of {page_size}");
        }
    }
}

/// Titles of every item a recursive list of `folder` with `filter` answers, in order.
async fn listed_titles(s: &TestServer, folder: &str, filter: &str) -> Vec<String> {
    let path = format!("/v1/folders/{folder}/items?recursive=true{filter}&page_size=1000");
    let page = s.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{path}: {:?}", page.body);
    assert!(page.body["next_page_token"].is_null(), "{path}: one page");
    column(&page.body, "title")
}

/// A search of three characters or more is read from the titles' trigram index and a list of
/// tombstones from their partial index (issue 20: without them both read the whole subtree);
/// what they answer is what a substring test of every title answers, and the index follows
/// renames and deletes in the same transaction.
async fn searches_and_tombstones_are_read_from_their_indexes(backend: Backend) {
    use stowage::store::item_pages::{ItemQuery, explain_list};
    use stowage::store::{Db, Dialect};
    let s = server!(backend);
    let top = folder(&s, "/s").await;
    let sub = folder(&s, "/s/sub").await;
    insert_rows(&s, &top, "i-", 0..3000).await;
    let odd = ["50%_off \"Sale\".txt", "Résumé.PDF", "ab.txt", "x%y.txt"];
    let mut titles: Vec<String> = (0..3000).map(|i| format!("i-{i:05}")).collect();
    for title in odd {
        s.upload_ok(&sub, title, title.as_bytes().to_vec()).await;
        titles.push(title.to_owned());
    }
    titles.sort();

    let query = |search: Option<&str>, is_tombstone: Option<bool>| ItemQuery {
        folder_id: uuid::Uuid::parse_str(&top).expect("uuid"),
        subtree: Some(stowage::domain::folder::FolderPath::parse("/s").expect("path")),
        visible_to: None,
        search: search.map(str::to_owned),
        item_types: Vec::new(),
        is_tombstone,
        starred_by: None,
        stars_of: None,
        order: stowage::domain::item::ItemOrder::Title,
        desc: false,
        after: None,
        limit: 100,
    };
    {
        let store = &s.services().store;
        let mut conn = store.read().await.expect("conn");
        if store.dialect() == Dialect::Postgres {
            // On a table this small a scan is cheap; show the index a big one would use.
            sqlx::query("ANALYZE item").execute(conn.conn()).await.expect("analyze");
            sqlx::query("SET enable_seqscan = off")
                .execute(conn.conn())
                .await
                .expect("set");
        }
        let searched = explain_list(&mut conn, &query(Some("i-0100"), None))
            .await
            .expect("explain");
        assert!(
            searched.contains("item_title_search"),
            "a search reads its index:\n{searched}"
        );
        let short = explain_list(&mut conn, &query(Some("i-"), None))
            .await
            .expect("explain");
        assert!(
            !short.contains("item_title_search"),
            "two characters have no trigram:\n{short}"
        );
        // A folder of four items reads those four rather than the 3,000 titles holding `i-0`.
        let small = ItemQuery {
            folder_id: uuid::Uuid::parse_str(&sub).expect("uuid"),
            subtree: None,
            ..query(Some("i-0"), None)
        };
        let small = explain_list(&mut conn, &small).await.expect("explain");
        assert!(!small.contains("item_title_search"), "a small folder:\n{small}");
        // 300 tombstones in two folders: fewer than a page of 1,000 from each.
        let few = ItemQuery {
            limit: 1000,
            ..query(None, Some(true))
        };
        let tombstones = explain_list(&mut conn, &few).await.expect("explain");
        assert!(
            tombstones.contains("item_folder_tombstones"),
            "tombstones:\n{tombstones}"
        );
    }

    for search in [
        "i-0100", "I-0299", "50%_", "\"sale\"", "RÉSUMÉ", "%y", "x%y", "ab", "i-029", "zz-none",
    ] {
        let expected: Vec<&String> = titles
            .iter()
            .filter(|t| t.to_lowercase().contains(&search.to_lowercase()))
            .collect();
        let encoded = url::form_urlencoded::byte_serialize(search.as_bytes()).collect::<String>();
        let listed = listed_titles(&s, &top, &format!("&search={encoded}")).await;
        assert_eq!(listed.iter().collect::<Vec<_>>(), expected, "search={search}");
    }
    let tombstones = listed_titles(&s, &top, "&is_tombstone=true&order_by=size").await;
    assert_eq!(tombstones.len(), 300, "every tenth row is a tombstone");

    // Renamed, an item is found by its new title only; deleted, by none.
    let found = |search: &'static str| {
        let s = &s;
        let top = top.clone();
        async move { listed_titles(s, &top, &format!("&search={search}")).await }
    };
    let resume = s.get(&format!("/v1/folders/{sub}/items?search=sum")).await;
    let resume = column(&resume.body, "id").remove(0);
    let renamed = s
        .patch(&format!("/v1/items/{resume}"), json!({"title": "CV-2026.pdf"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(found("sum").await, Vec::<String>::new());
    assert_eq!(found("v-2026").await, ["CV-2026.pdf"]);
    let gone = s.delete(&format!("/v1/items/{resume}?permanent=true")).await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert_eq!(found("v-2026").await, Vec::<String>::new());
}

async fn list_filters_orders_and_strictness(backend: Backend) {
    let s = server!(backend);
    let top = folder(&s, "/l").await;
    let sub = folder(&s, "/l/sub").await;
    s.upload_ok(&top, "Zebra.PNG", media::png(2, 2)).await;
    s.upload_ok(&top, "apple.txt", b"apple".to_vec()).await;
    s.upload_ok(&top, "ÉCLAIR.txt", b"much longer text".to_vec()).await;
    s.upload_ok(&sub, "deep zebra.txt", b"z".to_vec()).await;
    let list = |q: &str| {
        let path = format!("/v1/folders/{top}/items?{q}");
        let s = &s;
        async move { s.get(&path).await }
    };

    assert_eq!(
        column(&list("").await.body, "title"),
        ["Zebra.PNG", "apple.txt", "ÉCLAIR.txt"]
    );
    assert_eq!(column(&list("search=zebra").await.body, "title"), ["Zebra.PNG"]);
    assert_eq!(column(&list("search=éclair").await.body, "title"), ["ÉCLAIR.txt"]);
    assert_eq!(
        column(&list("search=zebra&recursive=true").await.body, "title"),
        ["Zebra.PNG", "deep zebra.txt"]
    );
    assert_eq!(column(&list("item_types=IMAGE").await.body, "title"), ["Zebra.PNG"]);
    assert_eq!(
        column(
            &list("item_types=PLAIN_TEXT,IMAGE&order_by=size&desc=true").await.body,
            "title"
        ),
        ["Zebra.PNG", "ÉCLAIR.txt", "apple.txt"]
    );
    assert_eq!(
        column(&list("order_by=created_at&desc=true").await.body, "title")[0],
        "ÉCLAIR.txt"
    );
    assert_eq!(column(&list("is_tombstone=true").await.body, "title").len(), 0);
    assert_eq!(column(&list("is_tombstone=false").await.body, "title").len(), 3);

    // Each item says whether the caller starred it, in every order and page.
    let apple = list("search=apple").await.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let star = s
        .send(
            Method::PUT,
            &format!("/v1/items/{apple}/star"),
            Some(&s.admin_key),
            None,
        )
        .await;
    assert!(star.status.is_success(), "{:?}", star.body);
    for q in [
        "",
        "order_by=size&desc=true",
        "recursive=true&order_by=created_at",
        "page_size=2&desc=true",
    ] {
        let page = list(q).await.body;
        let starred: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|item| item["starred"] == true)
            .map(|item| item["title"].as_str().expect("title").to_owned())
            .collect();
        let has_apple = column(&page, "title").contains(&"apple.txt".to_owned());
        assert_eq!(
            starred,
            if has_apple {
                vec!["apple.txt".to_owned()]
            } else {
                vec![]
            },
            "{q}: {page}"
        );
    }

    let bad = list("item_types=IMAGE,GIF").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message().contains("GIF") && bad.message().contains("DICOM_FILE"),
        "{}",
        bad.message()
    );
    let unknown = list("sort=title").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.message().contains("order_by"), "{}", unknown.message());
    assert_eq!(list("page_size=1001").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(list("order_by=name").await.status, StatusCode::BAD_REQUEST);
    let page = list("page_size=1").await;
    let token = page.body["next_page_token"].as_str().expect("token").to_owned();
    let other_order = list(&format!("page_size=1&order_by=size&page_token={token}")).await;
    assert_eq!(other_order.status, StatusCode::BAD_REQUEST);
    assert!(
        other_order.message().contains("page_token"),
        "{}",
        other_order.message()
    );
    assert_eq!(list("page_token=garbage").await.status, StatusCode::BAD_REQUEST);
    let missing = s.get(&format!("/v1/folders/{}/items", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn patch_title_and_metadata(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/p").await;
    let a = s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    s.upload_ok(&f, "b.txt", b"b".to_vec()).await;
    let path = format!("/v1/items/{}", id(&a));
    let renamed = s
        .patch(&path, json!({"title": "c.txt", "client_metadata": {"tag": "x"}}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(renamed.body["title"], "c.txt");
    assert_eq!(renamed.body["client_metadata"], json!({"tag": "x"}));
    assert_eq!(s.get(&path).await.body, renamed.body);
    let clash = s.patch(&path, json!({"title": "b.txt"})).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(clash.message().contains("b.txt"), "{}", clash.message());
    assert_eq!(
        s.patch(&path, json!({"title": ""})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.patch(&path, json!({"size": 3})).await.status, StatusCode::BAD_REQUEST);
    // The renamed title is searchable.
    let found = s.get(&format!("/v1/folders/{f}/items?search=C.TXT")).await;
    assert_eq!(column(&found.body, "title"), ["c.txt"]);
}

async fn move_items_all_or_nothing(backend: Backend) {
    let s = server!(backend);
    let src = folder(&s, "/m/src").await;
    let dst = folder(&s, "/m/dst").await;
    let elsewhere = folder(&s, "/m/else").await;
    let a = s.upload_ok(&src, "a.txt", b"a".to_vec()).await;
    let b = s.upload_ok(&src, "b.txt", b"b".to_vec()).await;
    let c = s.upload_ok(&src, "c.txt", b"c".to_vec()).await;
    let stranger = s.upload_ok(&elsewhere, "x.txt", b"x".to_vec()).await;
    s.upload_ok(&dst, "c.txt", b"taken".to_vec()).await;
    let move_path = format!("/v1/folders/{src}/items/move");

    // An item that is not a direct child: 404 naming it, nothing moves.
    let bad = s
        .post(
            &move_path,
            json!({"item_ids": [id(&a), id(&stranger)], "target_folder_id": dst}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert!(
        bad.message().contains(&id(&stranger)) && !bad.message().contains(&id(&a)),
        "{}",
        bad.message()
    );
    // A title taken in the target: 409 naming it, nothing moves.
    let clash = s
        .post(
            &move_path,
            json!({"item_ids": [id(&a), id(&c)], "target_folder_id": dst}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(clash.message().contains("c.txt"), "{}", clash.message());
    assert_eq!(
        column(&s.get(&format!("/v1/folders/{src}/items")).await.body, "title").len(),
        3
    );

    let moved = s
        .post(
            &move_path,
            json!({"item_ids": [id(&a), id(&b), id(&a)], "target_folder_id": dst}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["moved"], 2);
    assert_eq!(
        column(&s.get(&format!("/v1/folders/{src}/items")).await.body, "title"),
        ["c.txt"]
    );
    assert_eq!(
        column(&s.get(&format!("/v1/folders/{dst}/items")).await.body, "title"),
        ["a.txt", "b.txt", "c.txt"]
    );
    assert_eq!(s.get(&format!("/v1/items/{}", id(&a))).await.body["folder_id"], dst);
    // Content still reads after the move.
    let content = s
        .request(
            Method::GET,
            &format!("/v1/items/{}/content", id(&a)),
            Some(&s.admin_key),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(content.bytes().await.expect("bytes").as_ref(), b"a");

    let missing_target = s
        .post(
            &move_path,
            json!({"item_ids": [id(&c)], "target_folder_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(missing_target.status, StatusCode::NOT_FOUND);
    let no_ids = s
        .post(&move_path, json!({"item_ids": [], "target_folder_id": dst}))
        .await;
    assert_eq!(no_ids.status, StatusCode::BAD_REQUEST);
    let too_many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let big = s
        .post(&move_path, json!({"item_ids": too_many, "target_folder_id": dst}))
        .await;
    assert_eq!(big.status, StatusCode::BAD_REQUEST);
    assert!(big.message().contains("1000"), "{}", big.message());
}

async fn permanent_deletes_remove_their_objects(backend: Backend) {
    let s = server!(backend);
    let f = folder(&s, "/d").await;
    let other = folder(&s, "/d2").await;
    let a = s.upload_ok(&f, "a.txt", b"a".to_vec()).await;
    let b = s.upload_ok(&f, "b.txt", b"b".to_vec()).await;
    let c = s.upload_ok(&f, "c.txt", b"c".to_vec()).await;
    let x = s.upload_ok(&other, "x.txt", b"x".to_vec()).await;
    let delete_path = format!("/v1/folders/{f}/items/delete?permanent=true");

    let bad = s.post(&delete_path, json!({"item_ids": [id(&a), id(&x)]})).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND, "x is not an item of this folder");
    assert!(bad.message().contains(&id(&x)), "{}", bad.message());
    assert!(s.holds(&a).await && s.get(&format!("/v1/items/{}", id(&a))).await.status == StatusCode::OK);

    let deleted = s.post(&delete_path, json!({"item_ids": [id(&a), id(&b)]})).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["deleted"], 2);
    assert_eq!(
        s.get(&format!("/v1/items/{}", id(&a))).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!s.holds(&a).await && !s.holds(&b).await, "objects go with their items");
    assert!(s.holds(&c).await);

    // DELETE /v1/items/{id}?permanent=true.
    let one = s.delete(&format!("/v1/items/{}?permanent=true", id(&c))).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["trashed"], false);
    assert!(!s.holds(&c).await);
    assert_eq!(
        s.delete(&format!("/v1/items/{}?permanent=true", id(&c))).await.status,
        StatusCode::NOT_FOUND
    );

    // A permanent recursive folder delete removes the objects of every item in the subtree.
    let deep = folder(&s, "/d2/deeper").await;
    let y = s.upload_ok(&deep, "y.txt", b"y".to_vec()).await;
    let gone = s
        .delete(&format!("/v1/folders/{other}?recursive=true&permanent=true"))
        .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(gone.body["items_deleted"], 2);
    assert!(!s.holds(&x).await && !s.holds(&y).await);
    assert!(s.object_keys().await.is_empty(), "{:?}", s.object_keys().await);
}

async fn private_items_are_hidden_from_other_users(backend: Backend) {
    let s = server!(backend);
    let bob = s.key_for("bob", false).await;
    let private = folder(&s, "/private").await;
    let secret = s.upload_ok(&private, "secret.txt", b"s".to_vec()).await;
    let item_path = format!("/v1/items/{}", id(&secret));
    for (method, path) in [
        (Method::GET, item_path.clone()),
        (Method::GET, format!("{item_path}/content")),
        (Method::DELETE, item_path.clone()),
        (Method::GET, format!("/v1/folders/{private}/items")),
    ] {
        let answer = s.send(method.clone(), &path, Some(&bob), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let patch = s
        .send(Method::PATCH, &item_path, Some(&bob), Some(json!({"title": "mine"})))
        .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    let tar = s
        .send(
            Method::POST,
            "/v1/items/download",
            Some(&bob),
            Some(json!({"item_ids": [id(&secret)]})),
        )
        .await;
    assert_eq!(tar.status, StatusCode::NOT_FOUND);
    let upload = s.upload_as(&bob, &private, "x.txt", b"x".to_vec(), &[]).await;
    assert_eq!(upload.status, StatusCode::NOT_FOUND);
    let moved = s
        .send(
            Method::POST,
            &format!("/v1/folders/{private}/items/delete"),
            Some(&bob),
            Some(json!({"item_ids": [id(&secret)]})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NOT_FOUND);

    // A public folder: bob reads, but cannot change.
    let public = s
        .post("/v1/folders", json!({"path": "/public", "visibility": "public"}))
        .await
        .body;
    let public = id(&public);
    let shared = s.upload_ok(&public, "shared.txt", b"hello".to_vec()).await;
    let read = s
        .send(Method::GET, &format!("/v1/items/{}", id(&shared)), Some(&bob), None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let upload = s.upload_as(&bob, &public, "x.txt", b"x".to_vec(), &[]).await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN);
    let patch = s
        .send(
            Method::PATCH,
            &format!("/v1/items/{}", id(&shared)),
            Some(&bob),
            Some(json!({"title": "m"})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);
    // A recursive list by bob leaves out private folders below a public one.
    let hidden = s.post("/v1/folders", json!({"path": "/public/hidden"})).await.body;
    s.upload_ok(&id(&hidden), "hidden.txt", b"h".to_vec()).await;
    let listed = s
        .send(
            Method::GET,
            &format!("/v1/folders/{public}/items?recursive=true"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(column(&listed.body, "title"), ["shared.txt"]);
    let listed = s.get(&format!("/v1/folders/{public}/items?recursive=true")).await;
    assert_eq!(column(&listed.body, "title"), ["hidden.txt", "shared.txt"]);
    assert!(s.object_keys().await.len() == 3, "refused uploads leave nothing");
}

async fn aborted_and_oversized_uploads_leave_nothing(backend: Backend) {
    let s = server!(backend, |settings: &mut stowage::config::Settings| {
        settings.server.max_upload_bytes = 1024 * 1024;
    });
    let f = folder(&s, "/abort").await;
    // Cut off after 600 KiB of an announced 900 KiB.
    tokio::task::block_in_place(|| common::cut_off_upload(&s, &f, 900 * 1024, 600 * 1024));
    assert!(
        eventually_async(|| async { s.object_keys().await.is_empty() }).await,
        "an upload cut off midway leaves no object and no temp file: {:?}",
        s.object_keys().await
    );
    let listed = s.get(&format!("/v1/folders/{f}/items")).await;
    assert_eq!(listed.body["items"], json!([]));

    // Over server.max_upload_bytes: 413, nothing left.
    let over = s.upload(&f, "big.bin", vec![7u8; 2 * 1024 * 1024], &[]).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", over.body);
    assert!(over.message().contains("max_upload_bytes"), "{}", over.message());
    assert!(eventually_async(|| async { s.object_keys().await.is_empty() }).await);
    // Under the limit still works, and the JSON limit does not apply to uploads.
    let ok = s.upload(&f, "ok.bin", vec![7u8; 900 * 1024], &[]).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
}

/// Sets a file's modification time to `age` ago.
fn age(path: &std::path::Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - age).expect("set mtime");
}

async fn orphan_sweep_removes_only_unreferenced_old_objects(backend: Backend) {
    // Left behind by a crash before this start: swept at start-up.
    let s = server!(backend, |settings: &mut stowage::config::Settings| {
        let objects = settings.data_dir.join("objects");
        std::fs::create_dir_all(objects.join("zz")).expect("mkdir");
        std::fs::create_dir_all(objects.join(".stowage-tmp")).expect("mkdir");
        std::fs::write(objects.join("zz/crashed"), b"orphan").expect("write");
        age(&objects.join("zz/crashed"), Duration::from_secs(7200));
        std::fs::write(objects.join(".stowage-tmp/x.part"), b"partial").expect("write");
        age(&objects.join(".stowage-tmp/x.part"), Duration::from_secs(7200));
    });
    assert!(
        eventually_async(|| async { s.object_keys().await.is_empty() }).await,
        "start-up sweep: {:?}",
        s.object_keys().await
    );
    if !s.managed_is_local() {
        return cloud_orphan_sweep(&s).await;
    }

    let f = folder(&s, "/sweep").await;
    let kept = s.upload_ok(&f, "kept.txt", b"kept".to_vec()).await;
    let kept_path = s.objects_dir().join(kept["object_key"].as_str().expect("key"));
    age(&kept_path, Duration::from_secs(7200));
    let old_orphan = s.objects_dir().join("ab/old-orphan");
    std::fs::create_dir_all(old_orphan.parent().expect("parent")).expect("mkdir");
    std::fs::write(&old_orphan, b"o").expect("write");
    age(&old_orphan, Duration::from_secs(7200));
    let young_orphan = s.objects_dir().join("ab/young-orphan");
    std::fs::write(&young_orphan, b"y").expect("write");

    let swept = s
        .services()
        .items
        .sweep_orphans(Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!((swept.orphans, swept.incomplete_writes), (1, 0));
    assert!(kept_path.exists(), "an object with a row stays");
    assert!(!old_orphan.exists(), "an old object without a row goes");
    assert!(
        young_orphan.exists(),
        "a young one may belong to an upload still committing"
    );

    // A bucket that is mostly orphans belongs to another catalog: the sweep refuses to empty it.
    // Not a two-hex-digit shard, so no upload of this test can land among them.
    let foreign = s.objects_dir().join("foreign-catalog");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    for i in 0..150 {
        let path = foreign.join(format!("foreign-{i}"));
        std::fs::write(&path, b"f").expect("write");
        age(&path, Duration::from_secs(7200));
    }
    let refused = s.services().items.sweep_orphans(Duration::from_secs(3600)).await;
    let message = refused.expect_err("refuses").to_string();
    assert!(message.contains("another catalog"), "{message}");
    assert_eq!(files_under(&foreign).len(), 150, "nothing was deleted");
    assert!(kept_path.exists());
}

/// The orphan sweep over a cloud managed bucket, whose objects' ages a test cannot set: every
/// object is young to a sweep with an hour's grace, and old to one with none.
async fn cloud_orphan_sweep(s: &TestServer) {
    let f = folder(s, "/sweep").await;
    let kept = s.upload_ok(&f, "kept.txt", b"kept".to_vec()).await;
    s.managed().put("ab/orphan", b"o").await;
    let sweep = |grace: u64| s.services().items.sweep_orphans(Duration::from_secs(grace));
    let young = sweep(3600).await.expect("sweep");
    assert_eq!((young.orphans, young.incomplete_writes), (0, 0), "young objects stay");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let swept = sweep(0).await.expect("sweep");
    assert_eq!(swept.orphans, 1);
    assert!(s.holds(&kept).await, "an object with a row stays");
    assert_eq!(s.object("ab/orphan").await, None, "an object without a row goes");

    for i in 0..150 {
        s.managed().put(&format!("foreign-catalog/foreign-{i}"), b"f").await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let message = sweep(0).await.expect_err("refuses").to_string();
    assert!(message.contains("another catalog"), "{message}");
    assert_eq!(s.object_keys().await.len(), 151, "nothing was deleted");
}
