//! Webhook rows: the receivers, the events waiting for them (`webhook_event`, in the order they
//! happened), and the lease that lets one process at a time deliver to a receiver (the
//! deliveries themselves are in `webhook_deliveries.rs`).

use uuid::Uuid;

use super::clauses::push_subtree;
use super::rows::{corrupt, display_path, parse_id};
use super::sql::Sql;
use super::trash::ItemObjects;
use super::{Db, Dialect, StoreError, now_micros};
use crate::domain::folder::FolderPath;
use crate::domain::webhook::{EventKind, ItemCause};

/// A receiver of events.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    /// Its id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// What it is told about.
    pub events: Vec<EventKind>,
    /// Only events of this folder's subtree; all folders when `None`.
    pub folder_id: Option<Uuid>,
    /// What it is for.
    pub description: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When (microseconds).
    pub created_at: i64,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Why it was disabled, when it was by failing.
    pub disabled_reason: Option<String>,
    /// The last event handled (delivered, given up or not for it).
    pub event_cursor: i64,
    /// Deliveries given up in a row.
    pub failed_in_a_row: i64,
}

const COLUMNS: &str = "id, url, events, folder_id, description, created_by, created_at, enabled, disabled_reason, \
     event_cursor, failed_in_a_row";

#[derive(sqlx::FromRow)]
struct RawWebhook {
    id: String,
    url: String,
    events: String,
    folder_id: Option<String>,
    description: Option<String>,
    created_by: String,
    created_at: i64,
    enabled: i64,
    disabled_reason: Option<String>,
    event_cursor: i64,
    failed_in_a_row: i64,
}

impl TryFrom<RawWebhook> for WebhookRow {
    type Error = StoreError;

    fn try_from(raw: RawWebhook) -> Result<Self, StoreError> {
        let names: Vec<String> = serde_json::from_str(&raw.events).map_err(|e| corrupt("webhook.events", e))?;
        Ok(Self {
            id: parse_id(&raw.id)?,
            url: raw.url,
            events: names
                .iter()
                .map(|n| EventKind::parse(n).map_err(|e| corrupt("webhook.events", e)))
                .collect::<Result<_, _>>()?,
            folder_id: raw.folder_id.as_deref().map(parse_id).transpose()?,
            description: raw.description,
            created_by: raw.created_by,
            created_at: raw.created_at,
            enabled: raw.enabled != 0,
            disabled_reason: raw.disabled_reason,
            event_cursor: raw.event_cursor,
            failed_in_a_row: raw.failed_in_a_row,
        })
    }
}

fn events_json(events: &[EventKind]) -> String {
    serde_json::Value::from(events.iter().map(|e| e.as_str()).collect::<Vec<_>>()).to_string()
}

/// Records a new webhook with its signing `secret`. Its cursor starts at the newest event: it is
/// told of what happens from now on.
pub async fn insert(db: &mut dyn Db, hook: &WebhookRow, secret: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO webhook (id, url, events, folder_id, description, secret, created_by, created_at, event_cursor) VALUES (",
    );
    sql.bind(hook.id.to_string()).push(", ");
    sql.bind(hook.url.clone()).push(", ");
    sql.bind(events_json(&hook.events)).push(", ");
    sql.bind(hook.folder_id.map(|f| f.to_string())).push(", ");
    sql.bind(hook.description.clone()).push(", ");
    sql.bind(secret.to_owned()).push(", ");
    sql.bind(hook.created_by.clone()).push(", ");
    sql.bind(hook.created_at)
        .push(", (SELECT COALESCE(MAX(pos), 0) FROM webhook_event))");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// The webhook with this id, with its secret.
pub async fn by_id(db: &mut dyn Db, id: Uuid) -> Result<Option<(WebhookRow, String)>, StoreError> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS}, secret FROM webhook WHERE id = "));
    sql.bind(id.to_string());
    #[derive(sqlx::FromRow)]
    struct WithSecret {
        #[sqlx(flatten)]
        hook: RawWebhook,
        secret: String,
    }
    let row: Option<WithSecret> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(|r| Ok((WebhookRow::try_from(r.hook)?, r.secret))).transpose()
}

/// Every webhook, oldest first.
pub async fn list(db: &mut dyn Db) -> Result<Vec<WebhookRow>, StoreError> {
    let sql = Sql::new(&format!("SELECT {COLUMNS} FROM webhook ORDER BY created_at, id"));
    let rows: Vec<RawWebhook> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(WebhookRow::try_from).collect()
}

/// Writes a webhook's URL, events, description and enabled flag; enabling it clears why it was
/// disabled and its failures.
pub async fn update(db: &mut dyn Db, hook: &WebhookRow) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE webhook SET url = ");
    sql.bind(hook.url.clone());
    sql.push(", events = ").bind(events_json(&hook.events));
    sql.push(", description = ").bind(hook.description.clone());
    sql.push(", enabled = ").bind(i64::from(hook.enabled));
    if hook.enabled {
        sql.push(", disabled_reason = NULL, failed_in_a_row = 0");
    }
    sql.push(" WHERE id = ").bind(hook.id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Removes a webhook with its deliveries and their attempts.
pub async fn delete(db: &mut dyn Db, id: Uuid) -> Result<bool, StoreError> {
    let mut attempts = Sql::new(
        "DELETE FROM webhook_attempt WHERE delivery_id IN (SELECT id FROM webhook_delivery WHERE webhook_id = ",
    );
    attempts.bind(id.to_string()).push(")");
    attempts.build().execute(db.conn()).await?;
    let mut deliveries = Sql::new("DELETE FROM webhook_delivery WHERE webhook_id = ");
    deliveries.bind(id.to_string());
    deliveries.build().execute(db.conn()).await?;
    let mut hook = Sql::new("DELETE FROM webhook WHERE id = ");
    hook.bind(id.to_string());
    Ok(hook.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Whether any webhook is enabled: else no event is recorded (no receiver could want it).
async fn any_enabled(db: &mut dyn Db, items_only: bool) -> Result<bool, StoreError> {
    let sql = Sql::new(if items_only {
        "SELECT COUNT(*) FROM (SELECT 1 FROM webhook WHERE enabled = 1 AND events LIKE '%\"item.%' LIMIT 1) AS w"
    } else {
        "SELECT COUNT(*) FROM (SELECT 1 FROM webhook WHERE enabled = 1 LIMIT 1) AS w"
    });
    let (found,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(found > 0)
}

/// Whether any webhook is enabled: only then are a finished job's events recorded (and the job
/// read for them).
pub async fn jobs_wanted(db: &mut dyn Db) -> Result<bool, StoreError> {
    any_enabled(db, false).await
}

/// Records the events of `job`, which just finished: `job.finished`, and `sync.finished` or
/// `import.finished` for those kinds. For callers that asked [`jobs_wanted`].
pub async fn job_finished(db: &mut dyn Db, job: &crate::domain::job::Job) -> Result<(), StoreError> {
    let data = serde_json::json!({
        "job_id": job.id,
        "kind": job.kind.as_str(),
        "status": job.status.as_str(),
        "folder_id": job.folder_id,
        "created_by": job.created_by,
        "message": job.message,
        "progress": job.progress,
        "result": job.result,
        "retry_of": job.retry_of,
        "finished_at": job.finished_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
    });
    let mut kinds = vec![EventKind::JobFinished];
    match job.kind {
        crate::domain::job::JobKind::Sync => kinds.push(EventKind::SyncFinished),
        crate::domain::job::JobKind::Import => kinds.push(EventKind::ImportFinished),
        _ => {}
    }
    for kind in kinds {
        record(db, kind, job.folder_id, &data).await?;
    }
    Ok(())
}

/// Records one event about folder `folder_id` (its path now goes with it).
async fn record(
    db: &mut dyn Db,
    kind: EventKind,
    folder_id: Option<Uuid>,
    data: &serde_json::Value,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO webhook_event (id, kind, folder_id, folder_path, data, created_at) SELECT ");
    sql.bind(Uuid::now_v7().to_string()).push(", ");
    sql.bind(kind.as_str().to_owned()).push(", ");
    sql.bind(folder_id.map(|f| f.to_string())).push(", ");
    sql.push("(SELECT f.path FROM folder f WHERE f.id = ")
        .bind(folder_id.map(|f| f.to_string()))
        .push("), ");
    sql.bind(data.to_string()).push(", ");
    sql.bind(now_micros());
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// An event about one item, to record with others.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemEvent {
    /// What happened to it.
    pub kind: EventKind,
    /// The item.
    pub item_id: Uuid,
    /// Its folder.
    pub folder_id: Uuid,
    /// Its title.
    pub title: String,
    /// For `item.deleted`: deleted for good (else into the trash).
    pub permanent: bool,
    /// Why, when the change was not made to the item itself.
    pub cause: Option<ItemCause>,
}

impl ItemEvent {
    /// `kind` happened to item `item_id`, titled `title`, in `folder_id`.
    pub fn about(kind: EventKind, item_id: Uuid, folder_id: Uuid, title: String) -> Self {
        Self {
            kind,
            item_id,
            folder_id,
            title,
            permanent: false,
            cause: None,
        }
    }

    /// `kind` happened to `item`.
    pub fn of(kind: EventKind, item: &crate::domain::item::Item) -> Self {
        Self::about(kind, item.id, item.folder_id, item.title.clone())
    }

    /// What the receiver is told of it.
    fn data(&self) -> serde_json::Value {
        let mut data = serde_json::json!({"item_id": self.item_id, "title": self.title});
        if self.kind == EventKind::ItemDeleted {
            data["permanent"] = serde_json::Value::Bool(self.permanent);
        }
        if let Some(cause) = self.cause {
            data["cause"] = serde_json::Value::from(cause.as_str());
        }
        data
    }
}

/// Records `item.deleted` (for `cause`; `permanent`: for good, else into the trash) about the
/// item rows `objects` taken, while an enabled webhook wants item events; before their folders
/// go, whose paths the events keep.
pub async fn record_deleted(
    db: &mut dyn Db,
    objects: &[ItemObjects],
    permanent: bool,
    cause: ItemCause,
) -> Result<(), StoreError> {
    if objects.is_empty() || !items_wanted(db).await? {
        return Ok(());
    }
    let events = objects
        .iter()
        .map(|object| {
            let item = parse_id(&object.id)?;
            Ok(ItemEvent {
                permanent,
                cause: Some(cause),
                ..ItemEvent::about(
                    EventKind::ItemDeleted,
                    item,
                    parse_id(&object.folder_id)?,
                    object.title.clone(),
                )
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    insert_items(db, &events).await
}

/// Item events per statement (six values each).
const ITEM_EVENTS_PER_INSERT: usize = 100;

/// Whether an enabled webhook wants item events: only then are they recorded (a sync of a
/// million objects writes no event nobody asked for).
pub async fn items_wanted(db: &mut dyn Db) -> Result<bool, StoreError> {
    any_enabled(db, true).await
}

/// Records `events` while an enabled webhook wants item events.
pub async fn record_items(db: &mut dyn Db, events: &[ItemEvent]) -> Result<(), StoreError> {
    if events.is_empty() || !items_wanted(db).await? {
        return Ok(());
    }
    insert_items(db, events).await
}

/// Records `events` (each with its folder's path now), a few statements for a batch; for
/// callers that asked [`items_wanted`] already.
async fn insert_items(db: &mut dyn Db, events: &[ItemEvent]) -> Result<(), StoreError> {
    let now = now_micros();
    for chunk in events.chunks(ITEM_EVENTS_PER_INSERT) {
        let mut sql =
            Sql::new("INSERT INTO webhook_event (id, kind, folder_id, folder_path, data, created_at) VALUES ");
        for (i, event) in chunk.iter().enumerate() {
            let data = event.data();
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Uuid::now_v7().to_string()).push(", ");
            sql.bind(event.kind.as_str().to_owned()).push(", ");
            sql.bind(event.folder_id.to_string()).push(", ");
            sql.push("(SELECT f.path FROM folder f WHERE f.id = ")
                .bind(event.folder_id.to_string())
                .push("), ");
            sql.bind(data.to_string()).push(", ").bind(now).push(")");
        }
        sql.build().execute(db.conn()).await?;
    }
    Ok(())
}

/// Records `kind` (for `cause`) about every item not in the trash in the folders of the live
/// subtree at `path`, in one statement, while an enabled webhook wants item events: a folder
/// renamed, moved, trashed or restored may hold millions. An `item.deleted` here is into the
/// trash (a subtree deleted for good is told of by its purge).
pub async fn record_subtree_items(
    db: &mut dyn Db,
    kind: EventKind,
    cause: ItemCause,
    path: &FolderPath,
) -> Result<(), StoreError> {
    if !items_wanted(db).await? {
        return Ok(());
    }
    insert_selected(db, kind, Some(cause), |sql| {
        sql.push("i.trashed_at IS NULL AND ");
        push_subtree(sql, "f.path", path.as_str(), true);
    })
    .await
}

/// Records `kind` about the items of synced root `root` at `keys`, in one statement; for callers
/// that asked [`items_wanted`] already (a sync, once per batch).
pub async fn insert_synced_items(
    db: &mut dyn Db,
    root: Uuid,
    keys: &[&str],
    kind: EventKind,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let dialect = db.dialect();
    insert_selected(db, kind, None, |sql| {
        sql.push("i.sync_root_id = ").bind(root.to_string()).push(" AND ");
        sql.push_in_json(dialect, "i.object_key", keys.iter().map(|k| (*k).to_owned()));
    })
    .await
}

/// Records `kind` about each item `i` (in folder `f`) that `push_where` selects, the events
/// made by the database: ids, JSON data and the folder's path, without a round trip per item.
async fn insert_selected(
    db: &mut dyn Db,
    kind: EventKind,
    cause: Option<ItemCause>,
    push_where: impl FnOnce(&mut Sql),
) -> Result<(), StoreError> {
    let dialect = db.dialect();
    let mut sql = Sql::new("INSERT INTO webhook_event (id, kind, folder_id, folder_path, data, created_at) SELECT ");
    sql.push(dialect.random_uuid()).push(", ");
    sql.bind(kind.as_str().to_owned()).push(", i.folder_id, f.path, ");
    let mut fields = vec![("item_id", "i.id"), ("title", "i.title")];
    if kind == EventKind::ItemDeleted {
        fields.push(("permanent", dialect.json_false()));
    }
    let constants: Vec<(&str, &str)> = cause.iter().map(|c| ("cause", c.as_str())).collect();
    sql.push(&dialect.json_object(&fields, &constants));
    sql.push(", ").bind(now_micros());
    sql.push(" FROM item i JOIN folder f ON f.id = i.folder_id WHERE ");
    push_where(&mut sql);
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// An event waiting for webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Its place in the order of events.
    pub seq: i64,
    /// Its id (receivers de-duplicate by it).
    pub id: Uuid,
    /// What happened.
    pub kind: EventKind,
    /// The folder it is about.
    pub folder_id: Option<Uuid>,
    /// That folder's path when it happened.
    pub folder_path: Option<String>,
    /// What the receiver is told.
    pub data: serde_json::Value,
    /// When it happened (microseconds).
    pub created_at: i64,
}

/// Up to `limit` events after `after`, in order.
pub async fn events_after(db: &mut dyn Db, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    let mut sql =
        Sql::new("SELECT pos, id, kind, folder_id, folder_path, data, created_at FROM webhook_event WHERE pos > ");
    sql.bind(after).push(" ORDER BY pos LIMIT ").bind(limit);
    type Raw = (i64, String, String, Option<String>, Option<String>, String, i64);
    let rows: Vec<Raw> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(seq, id, kind, folder_id, folder_path, data, created_at)| {
            Ok(EventRow {
                seq,
                id: parse_id(&id)?,
                kind: EventKind::parse(&kind).map_err(|e| corrupt("webhook_event.kind", e))?,
                folder_id: folder_id.as_deref().map(parse_id).transpose()?,
                folder_path: folder_path.as_deref().map(|p| display_path(p).to_owned()),
                data: serde_json::from_str(&data).map_err(|e| corrupt("webhook_event.data", e))?,
                created_at,
            })
        })
        .collect()
}

/// The key of PostgreSQL's advisory lock that lets one process at a time put events in order.
const ORDER_LOCK_KEY: i64 = 0x5354_4f57_0002;

/// Gives the committed events that have none their place in the order webhooks read
/// (`pos`), in the order they were recorded; answers how many. Run by one process at a time
/// (an advisory lock on PostgreSQL; SQLite's writers take turns anyway), each run after the
/// last one committed, so an event that commits late is put after every event a webhook may
/// already be past, never behind it. On SQLite commit order is record order, so `pos = seq`.
pub async fn order_events(db: &mut dyn Db) -> Result<u64, StoreError> {
    let sql = match db.dialect() {
        Dialect::Sqlite => Sql::new("UPDATE webhook_event SET pos = seq WHERE pos IS NULL"),
        Dialect::Postgres => {
            let mut lock = Sql::new("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(");
            lock.bind(ORDER_LOCK_KEY).push(")) AS l");
            lock.build().execute(db.conn()).await?;
            Sql::new(
                "UPDATE webhook_event e SET pos = o.pos FROM (SELECT seq, nextval('webhook_event_pos_seq') AS pos \
                 FROM (SELECT seq FROM webhook_event WHERE pos IS NULL ORDER BY seq) AS u) AS o WHERE e.seq = o.seq",
            )
        }
    };
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Removes the events every enabled webhook is past (all of them when none is enabled).
pub async fn prune_events(db: &mut dyn Db) -> Result<u64, StoreError> {
    let sql = Sql::new(
        "DELETE FROM webhook_event WHERE pos <= (SELECT COALESCE(MIN(event_cursor), (SELECT COALESCE(MAX(pos), 0) FROM webhook_event)) FROM webhook WHERE enabled = 1)",
    );
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// The enabled webhooks no process holds now.
pub async fn deliverable(db: &mut dyn Db, now: i64) -> Result<Vec<Uuid>, StoreError> {
    let mut sql = Sql::new("SELECT id FROM webhook WHERE enabled = 1 AND lease_until < ");
    sql.bind(now).push(" ORDER BY id");
    let rows: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.iter().map(|(id,)| parse_id(id)).collect()
}

/// Takes webhook `id` until `until` unless another process holds it; answers whether taken.
pub async fn lease(db: &mut dyn Db, id: Uuid, now: i64, until: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE webhook SET lease_until = ");
    sql.bind(until).push(" WHERE id = ").bind(id.to_string());
    sql.push(" AND enabled = 1 AND lease_until < ").bind(now);
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Keeps holding webhook `id`, held until `held` (the lease's value is its holder's token),
/// until `until`; false when the lease lapsed and another process took it.
pub async fn renew(db: &mut dyn Db, id: Uuid, held: i64, until: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE webhook SET lease_until = ");
    sql.bind(until).push(" WHERE id = ").bind(id.to_string());
    sql.push(" AND lease_until = ").bind(held);
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Lets go of webhook `id`, held until `held`; a lease another process took since is its own.
pub async fn release(db: &mut dyn Db, id: Uuid, held: i64) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE webhook SET lease_until = 0 WHERE id = ");
    sql.bind(id.to_string()).push(" AND lease_until = ").bind(held);
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Moves webhook `id` past event `seq` (events it was not for, or a delivery that ended).
pub async fn advance(db: &mut dyn Db, id: Uuid, seq: i64) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE webhook SET event_cursor = ");
    sql.bind(seq).push(" WHERE id = ").bind(id.to_string());
    sql.push(" AND event_cursor < ").bind(seq);
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Records how the latest delivery of webhook `id` ended: delivered (failures reset) or given
/// up (one more failure in a row); disables it with `disable` as the reason when given.
pub async fn delivery_ended(
    db: &mut dyn Db,
    id: Uuid,
    delivered: bool,
    disable: Option<&str>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(if delivered {
        "UPDATE webhook SET failed_in_a_row = 0"
    } else {
        "UPDATE webhook SET failed_in_a_row = failed_in_a_row + 1"
    });
    if let Some(reason) = disable {
        sql.push(", enabled = 0, disabled_reason = ").bind(reason.to_owned());
    }
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}
