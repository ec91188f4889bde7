//! Signing secrets (`signing_secret`), one per purpose, shared by every process of a deployment.

use super::sql::Sql;
use super::{Db, StoreError};

/// The secret named `name`: the stored one, or `candidate`, stored now, when there is none yet
/// (of two processes racing to store theirs, the first wins and both answer it).
pub async fn get_or_insert(
    db: &mut dyn Db,
    name: &str,
    candidate: &str,
    now_micros: i64,
) -> Result<String, StoreError> {
    let mut sql = Sql::new("INSERT INTO signing_secret (name, secret, created_at) VALUES (");
    sql.bind(name.to_owned()).push(", ");
    sql.bind(candidate.to_owned()).push(", ").bind(now_micros);
    sql.push(") ON CONFLICT (name) DO NOTHING");
    sql.build().execute(db.conn()).await?;
    let mut sql = Sql::new("SELECT secret FROM signing_secret WHERE name = ");
    sql.bind(name.to_owned());
    let (secret,): (String,) = sql.build_as().fetch_one(db.conn()).await?;
    Ok(secret)
}
