//! `stowage item upload|list|show|download|rm`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Subcommand;
use futures::TryStreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::client::{Client, ClientError};
use super::direct_upload::{DIRECT_UPLOAD_BYTES, upload_direct};
use super::export::{self, ExportArgs};
use super::folder::folder_id;

/// Item verbs. An item is named by its id.
#[derive(Debug, Subcommand)]
pub enum ItemCommand {
    /// Upload files into a folder. A directory is uploaded with everything inside it into a
    /// subfolder of the same name (like `cp -r`); missing folders are created.
    Upload {
        /// Files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The folder to upload into (path or id); created when a missing path.
        #[arg(long)]
        folder: String,
        /// When a title is taken: error (default), skip, new or replace.
        #[arg(long, default_value = "error")]
        conflict_strategy: String,
        /// Send every file through a direct upload session (files of 64 MiB and more always
        /// go that way when the server offers it): into the bucket itself on a cloud bucket.
        #[arg(long)]
        direct: bool,
    },
    /// List the items of a folder, every page.
    List {
        /// Folder path or id.
        folder: String,
        /// Items of the whole subtree.
        #[arg(short, long)]
        recursive: bool,
        /// Only these types, comma-separated (e.g. IMAGE,VIDEO).
        #[arg(long = "type")]
        item_types: Option<String>,
        /// Only titles containing this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
        /// title (default), created_at or size.
        #[arg(long)]
        order_by: Option<String>,
        /// Descending order.
        #[arg(long)]
        desc: bool,
    },
    /// Write every item of a folder (or its subtree) as NDJSON or CSV, from one snapshot of
    /// the catalog: a manifest for a training job or a labelling import.
    Export(ExportArgs),
    /// Show one item's JSON.
    Show {
        /// Item id.
        id: String,
    },
    /// Download an item's content, checking its blake3 checksum.
    Download {
        /// Item id.
        id: String,
        /// The file to write, or an existing directory to write `TITLE` into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a URL that reads an item's content without an API key until it expires (share it
    /// with a data loader or a labelling tool).
    Url {
        /// Item id.
        id: String,
        /// How long it works, in seconds (default: the server's `signed_urls.default_seconds`).
        #[arg(long)]
        expires_in: Option<u64>,
        /// For a re-encoded video, the source object instead of the rendition.
        #[arg(long)]
        original: bool,
    },
    /// Delete items: into the trash, or with --permanent for good (with their uploaded content).
    Rm {
        /// Item ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Delete for good at once instead of moving into the trash.
        #[arg(long)]
        permanent: bool,
    },
}

/// One line describing an item: its path (`folder`'s path and its title, or only the title when
/// the folder's path is not known), id, type, size, and `tombstone` when its object is gone.
fn line(item: &Value, folder: Option<&str>) -> String {
    let title = item["title"].as_str().unwrap_or("?");
    let mut line = format!(
        "{}\t{}\t{}\tsize={}",
        folder.map_or_else(|| title.to_owned(), |folder| format!("{folder}/{title}")),
        item["id"].as_str().unwrap_or("?"),
        item["item_type"].as_str().unwrap_or("?"),
        item["size"]
    );
    if item["is_tombstone"] == true {
        line.push_str("\ttombstone");
    }
    line
}

/// Prints an item in folder `folder` (its path) as a line or raw JSON.
fn print(item: &Value, folder: Option<&str>, raw_json: bool) {
    super::show(item, raw_json, |item| line(item, folder));
}

/// The path of folder `id`.
pub(super) async fn folder_path(client: &Client, id: &str) -> Result<String, ClientError> {
    let folder: Value = client
        .call(Method::GET, &format!("/v1/folders/{id}"), &[], None::<&()>)
        .await?;
    Ok(folder["path"].as_str().unwrap_or_default().to_owned())
}

/// The paths of folder `id` and, with `recursive`, of every folder below it, by id.
async fn folder_paths(client: &Client, id: &str, recursive: bool) -> Result<HashMap<String, String>, ClientError> {
    let mut paths = HashMap::from([(id.to_owned(), folder_path(client, id).await?)]);
    if recursive {
        let query = vec![
            ("parent_id", id.to_owned()),
            ("recursive", "true".to_owned()),
            ("page_size", "1000".to_owned()),
        ];
        client
            .each_item("/v1/folders", query, |f| {
                paths.insert(
                    f["id"].as_str().unwrap_or_default().to_owned(),
                    f["path"].as_str().unwrap_or_default().to_owned(),
                );
            })
            .await?;
    }
    Ok(paths)
}

/// Runs an item verb and prints its result.
pub async fn run(client: &Client, command: ItemCommand, raw_json: bool) -> Result<(), ClientError> {
    match command {
        ItemCommand::Upload {
            files,
            folder,
            conflict_strategy,
            direct,
        } => upload(client, &files, &folder, &conflict_strategy, direct, raw_json).await,
        ItemCommand::List {
            folder,
            recursive,
            item_types,
            search,
            order_by,
            desc,
        } => {
            let id = folder_id(client, &folder).await?;
            let paths = folder_paths(client, &id, recursive).await?;
            let mut query = vec![
                ("recursive", recursive.to_string()),
                ("desc", desc.to_string()),
                ("page_size", "1000".to_owned()),
            ];
            for (name, value) in [("item_types", item_types), ("search", search), ("order_by", order_by)] {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            loop {
                let page: Value = client
                    .call(Method::GET, &format!("/v1/folders/{id}/items"), &query, None::<&()>)
                    .await?;
                for item in page["items"].as_array().into_iter().flatten() {
                    let folder = item["folder_id"].as_str().and_then(|f| paths.get(f));
                    print(item, folder.map(String::as_str), raw_json);
                }
                match page["next_page_token"].as_str() {
                    Some(token) => {
                        query.retain(|(k, _)| *k != "page_token");
                        query.push(("page_token", token.to_owned()));
                    }
                    None => return Ok(()),
                }
            }
        }
        ItemCommand::Export(args) => {
            let out = args.out.clone();
            let written = export::run(client, args).await?;
            if let Some(out) = out {
                let done = json!({"file": out, "bytes": written});
                super::show(&done, raw_json, |_| format!("{}	{written} bytes", out.display()));
            }
            Ok(())
        }
        ItemCommand::Show { id } => {
            let item: Value = client
                .call(Method::GET, &format!("/v1/items/{id}"), &[], None::<&()>)
                .await?;
            let folder = folder_path(client, item["folder_id"].as_str().unwrap_or_default()).await?;
            print(&item, Some(&folder), raw_json);
            Ok(())
        }
        ItemCommand::Url {
            id,
            expires_in,
            original,
        } => {
            let mut query = Vec::new();
            query.extend(expires_in.map(|s| ("expires_in", s.to_string())));
            query.extend(original.then(|| ("original", "true".to_owned())));
            let signed: Value = client
                .call(Method::GET, &format!("/v1/items/{id}/url"), &query, None::<&()>)
                .await?;
            super::show(&signed, raw_json, |v| {
                format!(
                    "{}\texpires_at={}",
                    v["url"].as_str().unwrap_or_default(),
                    v["expires_at"].as_str().unwrap_or_default()
                )
            });
            Ok(())
        }
        ItemCommand::Download { id, out } => {
            let (written, size) = download(client, &id, &out).await?;
            let done = json!({"id": id, "file": written, "size": size});
            super::show(&done, raw_json, |_| format!("{}\t{id}\tsize={size}", written.display()));
            Ok(())
        }
        ItemCommand::Rm { ids, permanent } => {
            for id in ids {
                client
                    .call::<Value>(
                        Method::DELETE,
                        &format!("/v1/items/{id}"),
                        &[("permanent", permanent.to_string())],
                        None::<&()>,
                    )
                    .await?;
                let how = if permanent { "deleted" } else { "trashed" };
                super::show(&json!({"id": id, "deleted": how}), raw_json, |_| format!("{id}\t{how}"));
            }
            Ok(())
        }
    }
}

/// A file to upload and the folder path (relative to `--folder`) it goes into.
struct Planned {
    file: PathBuf,
    subfolder: Vec<String>,
    size: u64,
}

/// Expands the arguments: files as they are, directories with every file below them.
fn plan(files: &[PathBuf]) -> Result<Vec<Planned>, ClientError> {
    let usage = |p: &Path, e: &dyn std::fmt::Display| ClientError::Usage(format!("{}: {e}", p.display()));
    let mut out = Vec::new();
    for arg in files {
        let meta = std::fs::metadata(arg).map_err(|e| usage(arg, &e))?;
        if meta.is_file() {
            out.push(Planned {
                file: arg.clone(),
                subfolder: Vec::new(),
                size: meta.len(),
            });
            continue;
        }
        let top = arg
            .canonicalize()
            .map_err(|e| usage(arg, &e))?
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| usage(arg, &"a directory to upload needs a UTF-8 name"))?;
        let mut entries: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(arg)
            .sort_by_file_name()
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| usage(arg, &e))?;
        entries.retain(|e| e.file_type().is_file());
        for entry in entries {
            let relative = entry.path().strip_prefix(arg).unwrap_or(entry.path());
            let mut subfolder = vec![top.clone()];
            if let Some(parent) = relative.parent() {
                for part in parent.components() {
                    let name = part
                        .as_os_str()
                        .to_str()
                        .ok_or_else(|| usage(entry.path(), &"folder names must be UTF-8"))?;
                    subfolder.push(name.to_owned());
                }
            }
            let size = entry.metadata().map_err(|e| usage(entry.path(), &e))?.len();
            out.push(Planned {
                file: entry.path().to_owned(),
                subfolder,
                size,
            });
        }
    }
    Ok(out)
}

/// The id of the folder at `path`, creating it (and its parents) when missing.
async fn ensure_folder(client: &Client, path: &str) -> Result<String, ClientError> {
    match folder_id(client, path).await {
        Err(ClientError::Server { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
            let created: Result<Value, ClientError> = client
                .call(
                    Method::POST,
                    "/v1/folders",
                    &[],
                    Some(&json!({"path": path, "create_parents": true})),
                )
                .await;
            match created {
                Ok(folder) => Ok(folder["id"].as_str().unwrap_or_default().to_owned()),
                // Created meanwhile by someone else: look it up again.
                Err(ClientError::Server { status, .. }) if status == reqwest::StatusCode::CONFLICT => {
                    folder_id(client, path).await
                }
                Err(other) => Err(other),
            }
        }
        other => other,
    }
}

/// Uploads files and directories, with one progress bar on a terminal: files done of all, and
/// bytes sent of all (the time left follows the files: with many small files the requests,
/// not the bytes, take the time).
async fn upload(
    client: &Client,
    files: &[PathBuf],
    folder: &str,
    strategy: &str,
    direct: bool,
    raw_json: bool,
) -> Result<(), ClientError> {
    let planned = plan(files)?;
    let bytes = Arc::new(ByteCount {
        sent: AtomicU64::new(0),
        total: planned.iter().map(|p| p.size).sum(),
    });
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(planned.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files, {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let base = if folder.starts_with('/') {
        folder.trim_end_matches('/').to_owned()
    } else {
        String::new()
    };
    // The id and path of each target folder, by its path below --folder.
    let mut targets: HashMap<Vec<String>, (String, String)> = HashMap::new();
    let mut failures = 0;
    for item in planned {
        let (target, target_path) = match targets.get(&item.subfolder) {
            Some(found) => found.clone(),
            None => {
                let found = if item.subfolder.is_empty() {
                    if base.is_empty() {
                        let id = folder_id(client, folder).await?;
                        let path = folder_path(client, &id).await?;
                        (id, path)
                    } else {
                        (ensure_folder(client, &base).await?, base.clone())
                    }
                } else if base.is_empty() {
                    return Err(ClientError::Usage(
                        "to upload a directory, name --folder by path (e.g. /datasets)".into(),
                    ));
                } else {
                    let path = format!("{base}/{}", item.subfolder.join("/"));
                    (ensure_folder(client, &path).await?, path)
                };
                targets.insert(item.subfolder.clone(), found.clone());
                found
            }
        };
        let name = item
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        let shown = Shown {
            bar: bar.clone(),
            bytes: Arc::clone(&bytes),
            name: name.clone(),
        };
        shown.update(0);
        match upload_one(client, &target, &item, &name, strategy, shown, direct).await {
            Ok(uploaded) => bar.suspend(|| print(&uploaded, Some(&target_path), raw_json)),
            Err(e) => {
                failures += 1;
                bar.suspend(|| eprintln!("error: {}: {e}", item.file.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failures > 0 {
        return Err(ClientError::Usage(format!("{failures} file(s) were not uploaded")));
    }
    Ok(())
}

/// Bytes sent of all the bytes an upload run sends.
struct ByteCount {
    sent: AtomicU64,
    total: u64,
}

/// What the progress bar shows of the file being sent.
struct Shown {
    bar: ProgressBar,
    bytes: Arc<ByteCount>,
    name: String,
}

impl Shown {
    /// Counts `sent` more bytes and shows the totals and the file's name.
    fn update(&self, sent: u64) {
        let done = self.bytes.sent.fetch_add(sent, Ordering::Relaxed) + sent;
        self.bar.set_message(format!(
            "{} of {} ({})",
            HumanBytes(done),
            HumanBytes(self.bytes.total),
            self.name
        ));
    }
}

/// Sends one file to the server: through a direct upload session when `direct` asks for one or
/// the file is large (see [`DIRECT_UPLOAD_BYTES`]) and the server offers it, else streamed.
async fn upload_one(
    client: &Client,
    folder_id: &str,
    item: &Planned,
    name: &str,
    strategy: &str,
    shown: Shown,
    direct: bool,
) -> Result<Value, ClientError> {
    let (path, size) = (item.file.as_path(), item.size);
    let shown = Arc::new(shown);
    if direct || size >= DIRECT_UPLOAD_BYTES {
        let counted = Arc::clone(&shown);
        let uploaded = upload_direct(client, folder_id, path, name, size, strategy, move |n| {
            counted.update(n)
        })
        .await?;
        if let Some(uploaded) = uploaded {
            return Ok(uploaded);
        }
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ClientError::Usage(format!("cannot open {}: {e}", path.display())))?;
    let body = ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| shown.update(chunk.len() as u64));
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(body), size).file_name(name.to_owned());
    let form = Form::new()
        .text("conflict_strategy", strategy.to_owned())
        .part("file", part);
    let req = client
        .request(Method::POST, &format!("/v1/folders/{folder_id}/items"))
        .multipart(form);
    Client::json(client.send(req).await?).await
}

/// Streams an item's content to `out` (or `out/TITLE` when `out` is a directory) through a temp
/// file, checking the blake3 checksum before renaming it into place.
async fn download(client: &Client, id: &str, out: &Path) -> Result<(PathBuf, u64), ClientError> {
    let item: Value = client
        .call(Method::GET, &format!("/v1/items/{id}"), &[], None::<&()>)
        .await?;
    let dest = if out.is_dir() {
        out.join(item["title"].as_str().unwrap_or(id))
    } else {
        out.to_owned()
    };
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write {}: {e}", dest.display()));
    let partial = dest.with_file_name(format!(
        ".{}.partial",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("download")
    ));
    let resp = client
        .send(client.request(Method::GET, &format!("/v1/items/{id}/content")))
        .await?;
    let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut body = resp.bytes_stream();
    let result = async {
        while let Some(chunk) = body.try_next().await.map_err(|source| ClientError::Http {
            context: "the download broke off".into(),
            source,
        })? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        let checksum = hasher.finalize().to_hex().to_string();
        match item["checksum"].as_str() {
            Some(expected) if expected != checksum => Err(ClientError::Unexpected(format!(
                "checksum mismatch: the server announced {expected}, the download hashes to {checksum}"
            ))),
            _ => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => {
            tokio::fs::rename(&partial, &dest).await.map_err(io)?;
            Ok((dest, item["size"].as_u64().unwrap_or_default()))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}
