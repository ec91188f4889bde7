//! Item rows: lookups, inserts that respect unique titles, in-place replaces, moves, deletes,
//! keyset lists, TTLs and re-encoded renditions. Trashed rows (see [`super::trash`]) are left out
//! of everything here unless a function says otherwise.

use std::collections::HashSet;

use uuid::Uuid;

use super::clauses::{FolderTtl, push_folder_expiry};
use super::rows::{TrashMark, corrupt, parse_id, parse_object, trash_mark};
use super::sql::{Sql, Value};
use super::{Db, StoreError, from_micros, to_micros};
use crate::domain::item::{Encoded, Item, ItemType, Media, split_extension};

/// The columns every item query selects.
pub(super) const COLUMNS: &str = "i.id, i.folder_id, i.title, i.bucket, i.object_key, i.item_type, i.mime_type, i.size, \
     i.checksum, i.is_tombstone, i.client_metadata, i.width, i.height, i.duration_us, i.frame_rate, i.codec, \
     i.sample_rate, i.channels, i.page_count, i.dimensions, i.created_at, i.updated_at, i.expires_at, i.expires_own, \
     i.encoded_key, i.encoded_size, i.encoded_checksum, i.encoded_mime_type, i.encoded_media, i.encoded_at, \
     i.trashed_at, i.trash_unit, i.purge_at, i.frames, i.fingerprint, i.frame_count, i.dicom, \
     i.orientation, i.audio_tracks";

/// An item row, as sqlx reads it by column name, or as serde reads it from a JSON array of
/// [`COLUMNS`] in their order (a list page aggregated into one row, see [`list`]).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct ItemRow {
    id: String,
    folder_id: String,
    title: String,
    bucket: String,
    object_key: String,
    item_type: String,
    mime_type: String,
    size: i64,
    checksum: Option<String>,
    is_tombstone: i64,
    client_metadata: String,
    width: Option<i64>,
    height: Option<i64>,
    duration_us: Option<i64>,
    frame_rate: Option<String>,
    codec: Option<String>,
    sample_rate: Option<i64>,
    channels: Option<i64>,
    page_count: Option<i64>,
    dimensions: Option<String>,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    expires_own: i64,
    encoded_key: Option<String>,
    encoded_size: Option<i64>,
    encoded_checksum: Option<String>,
    encoded_mime_type: Option<String>,
    encoded_media: Option<String>,
    encoded_at: Option<i64>,
    trashed_at: Option<i64>,
    trash_unit: Option<String>,
    purge_at: Option<i64>,
    frames: Option<String>,
    fingerprint: Option<String>,
    frame_count: Option<i64>,
    dicom: Option<String>,
    orientation: Option<i64>,
    audio_tracks: Option<String>,
}

/// A JSON column's value, read back.
fn json_column<T: serde::de::DeserializeOwned>(
    text: Option<&str>,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    text.map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt(column, e))
}

impl TryFrom<ItemRow> for (Item, Option<TrashMark>) {
    type Error = StoreError;

    fn try_from(row: ItemRow) -> Result<Self, StoreError> {
        let dimensions: Option<Vec<i64>> = json_column(row.dimensions.as_deref(), "dimensions")?;
        let encoded = match (
            row.encoded_key,
            row.encoded_checksum,
            row.encoded_mime_type,
            row.encoded_at,
        ) {
            (Some(object_key), Some(checksum), Some(mime_type), Some(at)) => Some(Encoded {
                object_key,
                size: row.encoded_size.unwrap_or_default(),
                checksum,
                mime_type,
                media: row
                    .encoded_media
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| corrupt("encoded_media", e))?
                    .unwrap_or_default(),
                encoded_at: from_micros(at),
            }),
            _ => None,
        };
        let frames = json_column(row.frames.as_deref(), "frames")?.unwrap_or_default();
        let fingerprint = json_column(row.fingerprint.as_deref(), "fingerprint")?;
        let dicom = json_column(row.dicom.as_deref(), "dicom")?;
        let audio_tracks = json_column(row.audio_tracks.as_deref(), "audio_tracks")?;
        let mark = trash_mark(row.trashed_at, row.trash_unit.as_deref(), row.purge_at)?;
        let item = Item {
            id: parse_id(&row.id)?,
            folder_id: parse_id(&row.folder_id)?,
            title: row.title,
            bucket: row.bucket,
            object_key: row.object_key,
            item_type: ItemType::parse(&row.item_type).map_err(|e| corrupt("item_type", e))?,
            mime_type: row.mime_type,
            size: row.size,
            checksum: row.checksum,
            is_tombstone: row.is_tombstone != 0,
            client_metadata: parse_object(&row.client_metadata)?,
            media: Media {
                width: row.width,
                height: row.height,
                duration_us: row.duration_us,
                frame_rate: row.frame_rate,
                codec: row.codec,
                sample_rate: row.sample_rate,
                channels: row.channels,
                page_count: row.page_count,
                dimensions,
                frame_count: row.frame_count,
                dicom,
                orientation: row.orientation,
                audio_tracks,
            },
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            expires_at: row.expires_at.map(from_micros),
            expires_own: row.expires_own != 0,
            encoded,
            frames,
            fingerprint,
        };
        Ok((item, mark))
    }
}

/// Runs a query that selects one text column.
async fn fetch_texts(db: &mut dyn Db, sql: Sql) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// Runs an item query, keeping where each row stands in the trash.
async fn fetch_marked(db: &mut dyn Db, sql: Sql) -> Result<Vec<(Item, Option<TrashMark>)>, StoreError> {
    let rows = sql.build_as::<ItemRow>().fetch_all(db.conn()).await?;
    rows.into_iter().map(TryFrom::try_from).collect()
}

async fn fetch_all(db: &mut dyn Db, sql: Sql) -> Result<Vec<Item>, StoreError> {
    Ok(fetch_marked(db, sql).await?.into_iter().map(|(item, _)| item).collect())
}

/// The live item with this id.
pub async fn by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<Item>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM item i WHERE i.id = "));
    sql.bind(id.to_string()).push(" AND i.trashed_at IS NULL");
    Ok(fetch_all(db, sql).await?.pop())
}

/// The item with this id, live or trashed, and where it stands in the trash.
pub async fn by_id_any(db: &mut dyn Db, id: Uuid) -> Result<Option<(Item, Option<TrashMark>)>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM item i WHERE i.id = "));
    sql.bind(id.to_string());
    Ok(fetch_marked(db, sql).await?.pop())
}

/// The live items with these ids (in no particular order; missing ids are left out).
pub async fn by_ids(db: &mut dyn Db, ids: &[Uuid]) -> Result<Vec<Item>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM item i WHERE i.trashed_at IS NULL AND i.id IN ("
    ));
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    fetch_all(db, sql).await
}

/// The live item titled `title` in the folder.
pub async fn by_title(db: &mut dyn Db, folder_id: Uuid, title: &str) -> Result<Option<Item>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM item i WHERE i.folder_id = "));
    sql.bind(folder_id.to_string())
        .push(" AND i.title = ")
        .bind(title.to_owned())
        .push(" AND i.trashed_at IS NULL");
    Ok(fetch_all(db, sql).await?.pop())
}

/// The titles in the folder that start like alternatives of `title` (`stem (…`), found through
/// the (folder_id, title) index as a byte range.
pub async fn alternative_titles(db: &mut dyn Db, folder_id: Uuid, title: &str) -> Result<Vec<String>, StoreError> {
    let (stem, _) = split_extension(title);
    let mut sql = Sql::new("SELECT title FROM item WHERE folder_id = ");
    sql.bind(folder_id.to_string());
    // `)` is the byte after `(`: the range holds every title that starts with `stem (`.
    sql.push(" AND title >= ").bind(format!("{stem} ("));
    sql.push(" AND title < ").bind(format!("{stem} )"));
    sql.push(" AND trashed_at IS NULL");
    fetch_texts(db, sql).await
}

/// The content columns of `item` (everything but id, folder, title, client metadata and
/// times), in the order of [`CONTENT_COLUMNS`].
pub(crate) fn content_values(item: &Item) -> [Value; 21] {
    let media = &item.media;
    let text = |t: &str| Value::Text(Some(t.to_owned()));
    [
        text(&item.bucket),
        text(&item.object_key),
        text(item.item_type.as_str()),
        text(&item.mime_type),
        Value::Int(Some(item.size)),
        Value::Text(item.checksum.clone()),
        Value::Int(Some(i64::from(item.is_tombstone))),
        Value::Int(media.width),
        Value::Int(media.height),
        Value::Int(media.duration_us),
        Value::Text(media.frame_rate.clone()),
        Value::Text(media.codec.clone()),
        Value::Int(media.sample_rate),
        Value::Int(media.channels),
        Value::Int(media.page_count),
        Value::Text(
            media
                .dimensions
                .as_ref()
                .map(|d| serde_json::Value::from(d.clone()).to_string()),
        ),
        Value::Text((!item.frames.is_empty()).then(|| serde_json::to_string(&item.frames).unwrap_or_default())),
        Value::Int(media.frame_count),
        Value::Text(
            media
                .dicom
                .as_ref()
                .map(|d| serde_json::to_string(d).unwrap_or_default()),
        ),
        Value::Int(media.orientation),
        Value::Text(
            media
                .audio_tracks
                .as_ref()
                .map(|t| serde_json::to_string(t).unwrap_or_default()),
        ),
    ]
}

/// Binds the content columns of `item`, comma-separated, in the order of [`CONTENT_COLUMNS`].
pub(crate) fn bind_content(sql: &mut Sql, item: &Item) {
    for (i, value) in content_values(item).into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_value(value);
    }
}

/// The columns [`content_values`] gives.
pub(crate) const CONTENT_COLUMNS: [&str; 21] = [
    "bucket",
    "object_key",
    "item_type",
    "mime_type",
    "size",
    "checksum",
    "is_tombstone",
    "width",
    "height",
    "duration_us",
    "frame_rate",
    "codec",
    "sample_rate",
    "channels",
    "page_count",
    "dimensions",
    "frames",
    "frame_count",
    "dicom",
    "orientation",
    "audio_tracks",
];

/// Inserts `item` unless its folder already holds a live item with its title; true when
/// inserted. Never fails on the title (the transaction stays usable on PostgreSQL too).
pub async fn insert_if_title_free(db: &mut dyn Db, item: &Item) -> Result<bool, StoreError> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO item (id, folder_id, title, title_folded, client_metadata, created_at, updated_at, expires_at, \
         expires_own, {}) VALUES (",
        CONTENT_COLUMNS.join(", ")
    ));
    sql.bind(item.id.to_string()).push(", ");
    sql.bind(item.folder_id.to_string()).push(", ");
    sql.bind(item.title.clone()).push(", ");
    sql.bind(item.title.to_lowercase()).push(", ");
    sql.bind(serde_json::Value::Object(item.client_metadata.clone()).to_string())
        .push(", ");
    sql.bind(to_micros(item.created_at)).push(", ");
    sql.bind(to_micros(item.updated_at)).push(", ");
    sql.bind(item.expires_at.map(to_micros)).push(", ");
    sql.bind(i64::from(item.expires_own)).push(", ");
    bind_content(&mut sql, item);
    // The conflict target repeats the partial unique index's predicate, which names it.
    sql.push(") ON CONFLICT (folder_id, title) WHERE trashed_at IS NULL DO NOTHING");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Points item `id` at `with`'s content (object, type, size, checksum, media metadata) and
/// client metadata, keeping its id, folder, title, creation time and expiry. A re-encoded
/// rendition of the old content is dropped. False when it is no longer live.
pub async fn replace_content(db: &mut dyn Db, id: Uuid, with: &Item) -> Result<bool, StoreError> {
    let mut sql = Sql::new(&format!("UPDATE item SET ({}) = (", CONTENT_COLUMNS.join(", ")));
    bind_content(&mut sql, with);
    sql.push(&format!("), {CLEAR_ENCODED}, client_metadata = "))
        .bind(serde_json::Value::Object(with.client_metadata.clone()).to_string());
    sql.push(", updated_at = ").bind(to_micros(with.updated_at));
    sql.push(" WHERE trashed_at IS NULL AND id = ").bind(id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Sets the rendition columns to NULL.
const CLEAR_ENCODED: &str = "encoded_key = NULL, encoded_size = NULL, encoded_checksum = NULL, \
     encoded_mime_type = NULL, encoded_media = NULL, encoded_at = NULL";

/// Writes a live item's title, client metadata and expiry; a title taken in its folder is a
/// `Conflict`. False when the item is gone, trashed (it expired meanwhile, say) or no longer in
/// `item.folder_id` (moved meanwhile, perhaps where the caller may not see it).
pub async fn update_attributes(db: &mut dyn Db, item: &Item) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE item SET title = ");
    sql.bind(item.title.clone());
    sql.push(", title_folded = ").bind(item.title.to_lowercase());
    sql.push(", client_metadata = ")
        .bind(serde_json::Value::Object(item.client_metadata.clone()).to_string());
    sql.push(", expires_at = ").bind(item.expires_at.map(to_micros));
    sql.push(", expires_own = ").bind(i64::from(item.expires_own));
    sql.push(", updated_at = ").bind(to_micros(item.updated_at));
    sql.push(" WHERE id = ")
        .bind(item.id.to_string())
        .push(" AND folder_id = ")
        .bind(item.folder_id.to_string())
        .push(" AND trashed_at IS NULL");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Gives the items of folder `folder_id` that follow its TTL the expiry `ttl_seconds` makes.
pub async fn apply_folder_ttl(db: &mut dyn Db, folder_id: Uuid, ttl_seconds: Option<i64>) -> Result<u64, StoreError> {
    let mut sql = Sql::new("UPDATE item SET ");
    push_folder_expiry(&mut sql, FolderTtl::Of(ttl_seconds));
    sql.push(" WHERE expires_own = 0 AND folder_id = ")
        .bind(folder_id.to_string());
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Records `encoded` as the rendition of live item `source`, as long as the item still holds the
/// content it was made from. False when it does not (replaced, trashed or deleted meanwhile).
pub async fn set_encoded(db: &mut dyn Db, source: &Item, encoded: &Encoded) -> Result<bool, StoreError> {
    let media = serde_json::to_string(&encoded.media).map_err(|e| corrupt("encoded_media", e))?;
    let mut sql = Sql::new("UPDATE item SET encoded_key = ");
    sql.bind(encoded.object_key.clone());
    sql.push(", encoded_size = ").bind(encoded.size);
    sql.push(", encoded_checksum = ").bind(encoded.checksum.clone());
    sql.push(", encoded_mime_type = ").bind(encoded.mime_type.clone());
    sql.push(", encoded_media = ").bind(media);
    sql.push(", encoded_at = ").bind(to_micros(encoded.encoded_at));
    sql.push(", updated_at = ").bind(to_micros(encoded.encoded_at));
    sql.push(" WHERE id = ").bind(source.id.to_string());
    sql.push(" AND trashed_at IS NULL AND bucket = ")
        .bind(source.bucket.clone());
    sql.push(" AND object_key = ").bind(source.object_key.clone());
    sql.push(" AND size = ").bind(source.size);
    sql.push(" AND COALESCE(checksum, '') = ")
        .bind(source.checksum.clone().unwrap_or_default());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// The live titles in `folder_id` among `titles`.
pub async fn taken_titles(db: &mut dyn Db, folder_id: Uuid, titles: &[String]) -> Result<Vec<String>, StoreError> {
    if titles.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT title FROM item WHERE folder_id = ");
    sql.bind(folder_id.to_string())
        .push(" AND trashed_at IS NULL AND title IN (");
    sql.bind_list(titles.iter().cloned()).push(") ORDER BY title");
    fetch_texts(db, sql).await
}

/// Moves the live items into `target`, whose TTL is `target_ttl`; a title taken there is a
/// `Conflict`.
pub async fn move_to(
    db: &mut dyn Db,
    ids: &[Uuid],
    target: Uuid,
    target_ttl: Option<i64>,
    now: time::OffsetDateTime,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("UPDATE item SET folder_id = ");
    sql.bind(target.to_string())
        .push(", updated_at = ")
        .bind(to_micros(now))
        .push(", ");
    push_folder_expiry(&mut sql, FolderTtl::Of(target_ttl));
    sql.push(" WHERE trashed_at IS NULL AND id IN (")
        .bind_list(ids.iter().map(Uuid::to_string))
        .push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Deletes the items, live or trashed.
pub async fn delete(db: &mut dyn Db, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("DELETE FROM item WHERE id IN (");
    sql.bind_list(ids.iter().map(Uuid::to_string)).push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Which of `keys` some item in `bucket` points at, trashed items included; in the managed
/// bucket (`managed`) re-encoded renditions and the objects of open direct uploads count too.
pub async fn referenced_keys(
    db: &mut dyn Db,
    bucket: &str,
    keys: &[String],
    managed: bool,
) -> Result<HashSet<String>, StoreError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let mut sql = Sql::new("SELECT object_key FROM item WHERE bucket = ");
    sql.bind(bucket.to_owned()).push(" AND object_key IN (");
    sql.bind_list(keys.iter().cloned()).push(")");
    if managed {
        sql.push(" UNION SELECT encoded_key FROM item WHERE encoded_key IN (");
        sql.bind_list(keys.iter().cloned()).push(")");
        // The object of an open direct upload has no row yet, but is not an orphan.
        sql.push(" UNION SELECT object_key FROM upload_session WHERE object_key IN (");
        sql.bind_list(keys.iter().cloned()).push(")");
    }
    Ok(fetch_texts(db, sql).await?.into_iter().collect())
}
