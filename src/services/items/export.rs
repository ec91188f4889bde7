//! Exports: every item of a folder (or of its subtree) in one streamed answer, NDJSON or CSV,
//! read from one snapshot of the catalog: the manifest a training job or a labelling import
//! reads. Memory stays flat however many items there are: the catalog is read a folder at a
//! time, a batch at a time, and the bytes wait in a small bounded channel for the client.

use std::panic::AssertUnwindSafe;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ItemService, ItemView};
use crate::domain::caller::{Caller, Role};
use crate::domain::folder::Folder;
use crate::domain::item::{ItemOrder, ItemType};
use crate::domain::page::SortKey;
use crate::services::access::folder_for;
use crate::services::{Context, ServiceError};
use crate::store::Snapshot;
use crate::store::clauses::Reader;
use crate::store::folders as folder_rows;
use crate::store::item_pages::{self as pages, ItemQuery, Listed};

/// Items read per statement.
const ITEMS_PER_BATCH: u32 = 2000;
/// Folders read per statement.
const FOLDERS_PER_BATCH: u32 = 500;
/// Bytes gathered before they are handed to the client.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks waiting for the client at most (so at most about 1 MiB per export).
const CHUNKS_IN_FLIGHT: usize = 4;

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON object per line: what `GET /v1/items/{id}` answers, plus `path`.
    #[default]
    Ndjson,
    /// A header line, then one row per item (see [`CSV_COLUMNS`]).
    Csv,
}

impl ExportFormat {
    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Csv => "csv",
        }
    }
}

/// The columns of a CSV export, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "path",
    "id",
    "folder_id",
    "title",
    "item_type",
    "mime_type",
    "size",
    "checksum",
    "bucket",
    "object_key",
    "is_tombstone",
    "created_at",
    "updated_at",
    "expires_at",
    "client_metadata",
    "media",
];

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportItems {
    /// The whole subtree (the folders below the caller may read), not only the folder's own.
    pub recursive: bool,
    /// NDJSON or CSV.
    pub format: ExportFormat,
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    /// Only these types; all when empty.
    pub item_types: Vec<ItemType>,
    /// Only tombstones (`true`) or only live items (`false`).
    pub is_tombstone: Option<bool>,
}

/// A started export: its folder (for the file name) and its bytes as they come. A failure
/// after the first byte ends the stream with an error, so the answer is cut off rather than
/// complete-looking.
pub struct Export {
    /// The folder exported.
    pub folder: Folder,
    /// The bytes.
    pub body: ReceiverStream<Result<Bytes, ServiceError>>,
}

impl ItemService {
    /// Starts an export of folder `folder_id`: the folder and the request are checked here (an
    /// error answers before any byte), then the items stream from one snapshot of the catalog,
    /// a folder at a time in path order, each folder's items by title.
    pub async fn export(&self, caller: &Caller, folder_id: Uuid, mut req: ExportItems) -> Result<Export, ServiceError> {
        req.search = req.search.filter(|s| !s.is_empty());
        let mut snapshot = self.store.snapshot().await?;
        let folder = folder_for(&mut snapshot, caller, folder_id, Role::Viewer).await?;
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let writer = Writer {
            sender,
            format: req.format,
            buffer: BytesMut::with_capacity(CHUNK_BYTES * 2),
        };
        let job = Exporter {
            caller: caller.clone(),
            req,
            snapshot,
        };
        let top = folder.clone();
        tokio::spawn(async move {
            let mut writer = writer;
            // A panic must cut the answer off too, not end it like a complete one.
            let outcome = AssertUnwindSafe(job.run(top, &mut writer))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(Stop::Failed(ServiceError::Internal(
                        "the export stopped unexpectedly".into(),
                    )))
                });
            writer.finish(outcome).await;
        });
        Ok(Export {
            folder,
            body: ReceiverStream::new(receiver),
        })
    }
}

/// The reading side of an export, on its snapshot.
struct Exporter {
    caller: Caller,
    req: ExportItems,
    snapshot: Snapshot,
}

/// Why an export stopped early.
enum Stop {
    /// The client went away: nothing more to do.
    Gone,
    /// Reading failed.
    Failed(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for Stop {
    fn from(err: E) -> Self {
        Stop::Failed(err.into())
    }
}

impl Exporter {
    /// Writes every item, folder by folder.
    async fn run(mut self, top: Folder, writer: &mut Writer) -> Result<(), Stop> {
        writer.header()?;
        if !self.req.recursive {
            return self.folder(&top, writer).await;
        }
        let reader = Reader::of(&self.caller);
        let mut after: Option<String> = None;
        loop {
            let folders = folder_rows::subtree_in_path_order(
                &mut self.snapshot,
                &top.path,
                reader.as_ref(),
                after.as_deref(),
                FOLDERS_PER_BATCH,
            )
            .await?;
            for folder in &folders {
                self.folder(&folder.folder, writer).await?;
            }
            match folders.last() {
                Some(last) if folders.len() == FOLDERS_PER_BATCH as usize => {
                    after = Some(last.folder.path.as_str().to_owned());
                }
                _ => return Ok(()),
            }
        }
    }

    /// Writes the items of one folder, a batch at a time.
    async fn folder(&mut self, folder: &Folder, writer: &mut Writer) -> Result<(), Stop> {
        let Some(role) = self.caller.role_on(folder) else {
            return Ok(());
        };
        let mut query = ItemQuery {
            folder_id: folder.id,
            subtree: None,
            visible_to: None,
            search: self.req.search.clone(),
            item_types: self.req.item_types.clone(),
            is_tombstone: self.req.is_tombstone,
            starred_by: None,
            // CSV has no `starred` column.
            stars_of: (self.req.format == ExportFormat::Ndjson).then(|| self.caller.name.clone()),
            order: ItemOrder::Title,
            desc: false,
            after: None,
            limit: ITEMS_PER_BATCH,
        };
        loop {
            let items = pages::list(&mut self.snapshot, &query).await?;
            let full = items.len() == ITEMS_PER_BATCH as usize;
            query.after = items
                .last()
                .map(|last| (SortKey::Text(last.item.title.clone()), last.item.id));
            for Listed { item, starred } in items {
                let mut view = ItemView::new(item, role);
                view.starred = starred;
                writer.item(folder, &view)?;
                writer.flush_full().await?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// The writing side: lines into a buffer, full chunks to the client.
struct Writer {
    sender: mpsc::Sender<Result<Bytes, ServiceError>>,
    format: ExportFormat,
    buffer: BytesMut,
}

impl Writer {
    /// The CSV header line (nothing for NDJSON).
    fn header(&mut self) -> Result<(), Stop> {
        if self.format == ExportFormat::Csv {
            self.csv_row(CSV_COLUMNS.iter().map(|c| (*c).to_owned()).collect())?;
        }
        Ok(())
    }

    /// Writes one item of `folder`.
    fn item(&mut self, folder: &Folder, view: &ItemView) -> Result<(), Stop> {
        let path = format!("{}/{}", folder.path.as_str(), view.title);
        match self.format {
            ExportFormat::Ndjson => {
                let line = Line {
                    path: &path,
                    item: view,
                };
                serde_json::to_writer((&mut self.buffer).writer(), &line).context("cannot write an item as JSON")?;
                self.buffer.put_u8(b'\n');
            }
            ExportFormat::Csv => {
                let text = |value: &serde_json::Value| match value {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let json = serde_json::to_value(view).context("cannot write an item as JSON")?;
                let mut row = vec![path];
                row.extend(CSV_COLUMNS[1..].iter().map(|column| text(&json[*column])));
                self.csv_row(row)?;
            }
        }
        Ok(())
    }

    /// Appends one CSV row (RFC 4180 quoting).
    fn csv_row(&mut self, fields: Vec<String>) -> Result<(), Stop> {
        let mut csv = csv::WriterBuilder::new()
            .buffer_capacity(1024)
            .from_writer((&mut self.buffer).writer());
        csv.write_record(&fields).context("cannot write a CSV row")?;
        csv.flush().context("cannot write a CSV row")?;
        Ok(())
    }

    /// Hands the buffer to the client once it is a full chunk.
    async fn flush_full(&mut self) -> Result<(), Stop> {
        if self.buffer.len() < CHUNK_BYTES {
            return Ok(());
        }
        self.send().await
    }

    async fn send(&mut self) -> Result<(), Stop> {
        let chunk = self.buffer.split().freeze();
        self.sender.send(Ok(chunk)).await.map_err(|_| Stop::Gone)
    }

    /// Ends the export: the rest of the bytes, or the error that cuts the answer off.
    async fn finish(mut self, outcome: Result<(), Stop>) {
        match outcome {
            Ok(()) => {
                if !self.buffer.is_empty() {
                    let _ = self.send().await;
                }
            }
            Err(Stop::Gone) => {}
            Err(Stop::Failed(err)) => {
                tracing::warn!(error = %crate::telemetry::ErrorChain(&err), "an export failed part way; its answer was cut off");
                let _ = self.sender.send(Err(err)).await;
            }
        }
    }
}

/// One NDJSON line: the item and its full path.
#[derive(Serialize)]
struct Line<'a> {
    path: &'a str,
    #[serde(flatten)]
    item: &'a ItemView,
}
