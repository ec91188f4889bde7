//! Import unit rows: the units of a submitted spec, what each became, and the lookups an
//! import makes in the folder it fills (objects already imported there).

use uuid::Uuid;

use super::rows::parse_id;
use super::sql::Sql;
use super::{Db, StoreError};

/// Rows per multi-row INSERT (three values each, far below either database's parameter limit).
const INSERT_CHUNK: usize = 500;

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// Not processed yet.
    Pending,
    /// It created an item.
    Created,
    /// Its object was already imported into the folder; nothing changed.
    Skipped,
    /// Its object was already imported into the folder; its client metadata was updated.
    Updated,
    /// It failed; `error` and `action` say why and what to do.
    Failed,
}

impl UnitState {
    fn code(self) -> i64 {
        match self {
            UnitState::Pending => 0,
            UnitState::Created => 1,
            UnitState::Skipped => 2,
            UnitState::Updated => 3,
            UnitState::Failed => 4,
        }
    }

    fn from_code(code: i64) -> Result<Self, StoreError> {
        Ok(match code {
            0 => UnitState::Pending,
            1 => UnitState::Created,
            2 => UnitState::Skipped,
            3 => UnitState::Updated,
            4 => UnitState::Failed,
            other => {
                return Err(StoreError::Corrupt {
                    what: "import_unit.state",
                    detail: format!("unknown code {other}"),
                });
            }
        })
    }

    /// The name the API shows (`created`, `failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Pending => "pending",
            UnitState::Created => "created",
            UnitState::Skipped => "skipped",
            UnitState::Updated => "updated",
            UnitState::Failed => "failed",
        }
    }
}

/// A unit row.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    /// Its place in the spec, from 0.
    pub position: i64,
    /// The validated unit as JSON.
    pub spec: String,
    /// Where it stands.
    pub state: UnitState,
    /// The item it created, skipped or updated.
    pub item_id: Option<Uuid>,
    /// That item's title.
    pub title: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What to do about the failure.
    pub action: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RawUnit {
    position: i64,
    spec: String,
    state: i64,
    item_id: Option<String>,
    title: Option<String>,
    error: Option<String>,
    action: Option<String>,
}

impl TryFrom<RawUnit> for UnitRow {
    type Error = StoreError;

    fn try_from(raw: RawUnit) -> Result<Self, StoreError> {
        Ok(Self {
            position: raw.position,
            spec: raw.spec,
            state: UnitState::from_code(raw.state)?,
            item_id: raw.item_id.as_deref().map(parse_id).transpose()?,
            title: raw.title,
            error: raw.error,
            action: raw.action,
        })
    }
}

/// Records units of job `job_id`: each its position in the spec and its validated JSON.
pub async fn insert_units(db: &mut dyn Db, job_id: Uuid, units: &[(i64, String)]) -> Result<(), StoreError> {
    let job = job_id.to_string();
    for chunk in units.chunks(INSERT_CHUNK) {
        let mut sql = Sql::new("INSERT INTO import_unit (job_id, position, spec) VALUES ");
        for (i, (position, spec)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(job.clone()).push(", ");
            sql.bind(*position).push(", ");
            sql.bind(spec.clone()).push(")");
        }
        sql.build().execute(db.conn()).await?;
    }
    Ok(())
}

/// Removes every unit of job `job_id`, a submission that did not become a job: nothing when the
/// job was recorded after all (its units are its work).
pub async fn delete_units(db: &mut dyn Db, job_id: Uuid) -> Result<(), StoreError> {
    let mut sql = Sql::new("DELETE FROM import_unit WHERE job_id = ");
    sql.bind(job_id.to_string());
    sql.push(" AND NOT EXISTS (SELECT 1 FROM job WHERE id = ")
        .bind(job_id.to_string())
        .push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Copies the units of job `from` in `states` to job `to` as pending units at the same
/// positions; answers how many.
pub async fn copy_units(db: &mut dyn Db, from: Uuid, to: Uuid, states: &[UnitState]) -> Result<u64, StoreError> {
    let mut sql = Sql::new("INSERT INTO import_unit (job_id, position, spec) SELECT ");
    sql.bind(to.to_string());
    sql.push(", position, spec FROM import_unit WHERE job_id = ")
        .bind(from.to_string());
    sql.push(" AND state IN (")
        .bind_list(states.iter().map(|s| s.code()))
        .push(")");
    Ok(sql.build().execute(db.conn()).await?.rows_affected())
}

/// Up to `limit` units of the job after position `after`, in position order; only those in
/// `states` unless it is empty.
pub async fn units_after(
    db: &mut dyn Db,
    job_id: Uuid,
    states: &[UnitState],
    after: i64,
    limit: i64,
) -> Result<Vec<UnitRow>, StoreError> {
    let mut sql =
        Sql::new("SELECT position, spec, state, item_id, title, error, action FROM import_unit WHERE job_id = ");
    sql.bind(job_id.to_string());
    sql.push(" AND position > ").bind(after);
    if !states.is_empty() {
        sql.push(" AND state IN (")
            .bind_list(states.iter().map(|s| s.code()))
            .push(")");
    }
    sql.push(" ORDER BY position LIMIT ").bind(limit);
    let rows = sql.build_as::<RawUnit>().fetch_all(db.conn()).await?;
    rows.into_iter().map(TryFrom::try_from).collect()
}

/// What a processed unit became.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished<'a> {
    /// Its new state (not `Pending`).
    pub state: UnitState,
    /// The item it created, skipped or updated.
    pub item: Option<(Uuid, &'a str)>,
    /// Why it failed, and what to do.
    pub failure: Option<(&'a str, &'a str)>,
}

/// Records what unit `position` of the job became.
pub async fn finish(db: &mut dyn Db, job_id: Uuid, position: i64, done: &Finished<'_>) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE import_unit SET state = ");
    sql.bind(done.state.code());
    sql.push(", item_id = ").bind(done.item.map(|(id, _)| id.to_string()));
    sql.push(", title = ")
        .bind(done.item.map(|(_, title)| title.to_owned()));
    sql.push(", error = ")
        .bind(done.failure.map(|(error, _)| error.to_owned()));
    sql.push(", action = ")
        .bind(done.failure.map(|(_, action)| action.to_owned()));
    sql.push(" WHERE job_id = ").bind(job_id.to_string());
    sql.push(" AND position = ").bind(position);
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// How many units of the job are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Not processed yet.
    pub pending: i64,
    /// Created an item.
    pub created: i64,
    /// Skipped as already imported.
    pub skipped: i64,
    /// Updated an imported item's metadata.
    pub updated: i64,
    /// Failed.
    pub failed: i64,
}

/// Counts the job's units by state.
pub async fn tally(db: &mut dyn Db, job_id: Uuid) -> Result<Tally, StoreError> {
    let mut sql = Sql::new("SELECT state, COUNT(*) FROM import_unit WHERE job_id = ");
    sql.bind(job_id.to_string());
    sql.push(" GROUP BY state");
    let rows: Vec<(i64, i64)> = sql.build_as().fetch_all(db.conn()).await?;
    let mut tally = Tally::default();
    for (state, n) in rows {
        *match UnitState::from_code(state)? {
            UnitState::Pending => &mut tally.pending,
            UnitState::Created => &mut tally.created,
            UnitState::Skipped => &mut tally.skipped,
            UnitState::Updated => &mut tally.updated,
            UnitState::Failed => &mut tally.failed,
        } += n;
    }
    Ok(tally)
}

/// The items of type `item_type` that units of job `job_id` created and that are not in the
/// trash, in the spec's order.
pub async fn created_items(db: &mut dyn Db, job_id: Uuid, item_type: &str) -> Result<Vec<Uuid>, StoreError> {
    let mut sql = Sql::new("SELECT u.item_id FROM import_unit u JOIN item i ON i.id = u.item_id WHERE u.job_id = ");
    sql.bind(job_id.to_string());
    sql.push(" AND u.state = ").bind(UnitState::Created.code());
    sql.push(" AND i.item_type = ").bind(item_type.to_owned());
    sql.push(" AND i.trashed_at IS NULL ORDER BY u.position");
    let rows: Vec<(String,)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter().map(|(id,)| parse_id(&id)).collect()
}

/// The live item of folder `folder_id` that points at object `key` of `bucket`, if any: its id
/// and title.
pub async fn imported_item(
    db: &mut dyn Db,
    folder_id: Uuid,
    bucket: &str,
    key: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    let mut sql = Sql::new("SELECT id, title FROM item WHERE folder_id = ");
    sql.bind(folder_id.to_string());
    sql.push(" AND object_key = ").bind(key.to_owned());
    sql.push(" AND bucket = ").bind(bucket.to_owned());
    sql.push(" AND trashed_at IS NULL AND is_tombstone = 0 ORDER BY created_at LIMIT 1");
    let row: Option<(String, String)> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(|(id, title)| Ok((parse_id(&id)?, title))).transpose()
}

/// Replaces the client metadata of item `id`.
pub async fn set_client_metadata(
    db: &mut dyn Db,
    id: Uuid,
    metadata: &serde_json::Map<String, serde_json::Value>,
    now_micros: i64,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE item SET client_metadata = ");
    sql.bind(serde_json::Value::Object(metadata.clone()).to_string());
    sql.push(", updated_at = ").bind(now_micros);
    sql.push(" WHERE id = ").bind(id.to_string());
    sql.build().execute(db.conn()).await?;
    Ok(())
}
