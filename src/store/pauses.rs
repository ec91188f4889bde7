//! Paused job kinds (`job_kind_pause`): an admin's pause holds until resumed, across restarts
//! and on every worker; [`super::jobs::start_attempt`] will not start a job of a paused kind.

use super::rows::corrupt;
use super::sql::Sql;
use super::{Db, StoreError, from_micros};
use crate::domain::job::JobKind;

/// A paused kind: since when and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The kind.
    pub kind: JobKind,
    /// When it was paused.
    pub paused_at: time::OffsetDateTime,
    /// The admin that paused it.
    pub paused_by: String,
}

/// Pauses `kind`; answers false when it already was (the first pause is kept).
pub async fn pause(db: &mut dyn Db, kind: JobKind, by: &str, at_micros: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new("INSERT INTO job_kind_pause (kind, paused_at, paused_by) VALUES (");
    sql.bind(kind.as_str().to_owned()).push(", ");
    sql.bind(at_micros).push(", ").bind(by.to_owned());
    sql.push(") ON CONFLICT (kind) DO NOTHING");
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Resumes `kind`; answers false when it was not paused.
pub async fn resume(db: &mut dyn Db, kind: JobKind) -> Result<bool, StoreError> {
    let mut sql = Sql::new("DELETE FROM job_kind_pause WHERE kind = ");
    sql.bind(kind.as_str().to_owned());
    Ok(sql.build().execute(db.conn()).await?.rows_affected() == 1)
}

/// Every paused kind.
pub async fn paused(db: &mut dyn Db) -> Result<Vec<Pause>, StoreError> {
    let sql = Sql::new("SELECT kind, paused_at, paused_by FROM job_kind_pause ORDER BY kind");
    let rows: Vec<(String, i64, String)> = sql.build_as().fetch_all(db.conn()).await?;
    rows.into_iter()
        .map(|(kind, at, by)| {
            Ok(Pause {
                kind: JobKind::parse(&kind).map_err(|e| corrupt("job_kind_pause.kind", e))?,
                paused_at: from_micros(at),
                paused_by: by,
            })
        })
        .collect()
}

/// Whether `kind` is paused.
pub async fn is_paused(db: &mut dyn Db, kind: JobKind) -> Result<bool, StoreError> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM job_kind_pause WHERE kind = ");
    sql.bind(kind.as_str().to_owned());
    let (n,): (i64,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(n > 0)
}
