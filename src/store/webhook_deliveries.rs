//! Webhook deliveries: each a batch of events POSTed with the same id and body until it is
//! delivered or given up, and every attempt of it.

use uuid::Uuid;

use super::rows::{corrupt, parse_id};
use super::sql::{Sql, push_page};
use super::{Db, StoreError, from_micros};
use crate::domain::page::SortKey;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the retry window.
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "PENDING" => Ok(DeliveryStatus::Pending),
            "DELIVERED" => Ok(DeliveryStatus::Delivered),
            "FAILED" => Ok(DeliveryStatus::Failed),
            other => Err(corrupt("webhook_delivery.status", other)),
        }
    }
}

/// One delivery: a batch of events POSTed with the same id and body until it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// Its id (the `Stowage-Delivery` header).
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// The last event it covers: the webhook moves past it once the delivery ends.
    pub last_seq: i64,
    /// Events in it.
    pub event_count: i64,
    /// The exact body sent.
    pub body: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When it is tried next (microseconds).
    pub next_attempt_at: i64,
    /// When it was made (microseconds).
    pub created_at: i64,
    /// When it ended (microseconds).
    pub finished_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str =
    "id, webhook_id, last_seq, event_count, body, status, attempts, next_attempt_at, created_at, finished_at";

type RawDelivery = (String, String, i64, i64, String, String, i64, i64, i64, Option<i64>);

fn delivery(raw: RawDelivery) -> Result<DeliveryRow, StoreError> {
    let (id, webhook_id, last_seq, event_count, body, status, attempts, next_attempt_at, created_at, finished_at) = raw;
    Ok(DeliveryRow {
        id: parse_id(&id)?,
        webhook_id: parse_id(&webhook_id)?,
        last_seq,
        event_count,
        body,
        status: DeliveryStatus::parse(&status)?,
        attempts,
        next_attempt_at,
        created_at,
        finished_at,
    })
}

/// Records a new pending delivery.
pub async fn insert_delivery(db: &mut dyn Db, d: &DeliveryRow) -> Result<(), StoreError> {
    let mut sql = Sql::new(&format!("INSERT INTO webhook_delivery ({DELIVERY_COLUMNS}) VALUES ("));
    sql.bind(d.id.to_string()).push(", ");
    sql.bind(d.webhook_id.to_string()).push(", ");
    sql.bind(d.last_seq).push(", ").bind(d.event_count).push(", ");
    sql.bind(d.body.clone()).push(", ");
    sql.bind(d.status.as_str().to_owned()).push(", ");
    sql.bind(d.attempts).push(", ").bind(d.next_attempt_at).push(", ");
    sql.bind(d.created_at).push(", ").bind(d.finished_at).push(")");
    sql.build().execute(db.conn()).await?;
    Ok(())
}

/// Webhook `id`'s delivery still pending, if any (there is at most one: deliveries go in order).
pub async fn pending_delivery(db: &mut dyn Db, id: Uuid) -> Result<Option<DeliveryRow>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_delivery WHERE webhook_id = "
    ));
    sql.bind(id.to_string()).push(" AND status = 'PENDING'");
    let row: Option<RawDelivery> = sql.build_as().fetch_optional(db.conn()).await?;
    row.map(delivery).transpose()
}

/// Records attempt number `attempt` of delivery `id` and where the delivery stands after it.
#[allow(clippy::too_many_arguments)]
pub async fn record_attempt(
    db: &mut dyn Db,
    id: Uuid,
    attempt: i64,
    at: i64,
    status_code: Option<u16>,
    latency_ms: i64,
    error: Option<&str>,
    status: DeliveryStatus,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    let mut sql =
        Sql::new("INSERT INTO webhook_attempt (delivery_id, attempt, at, status_code, latency_ms, error) VALUES (");
    sql.bind(id.to_string())
        .push(", ")
        .bind(attempt)
        .push(", ")
        .bind(at)
        .push(", ");
    sql.bind(status_code.map(i64::from))
        .push(", ")
        .bind(latency_ms)
        .push(", ");
    sql.bind(error.map(str::to_owned)).push(")");
    sql.build().execute(db.conn()).await?;
    let mut update = Sql::new("UPDATE webhook_delivery SET attempts = ");
    update
        .bind(attempt)
        .push(", status = ")
        .bind(status.as_str().to_owned());
    update.push(", next_attempt_at = ").bind(next_attempt_at);
    if status != DeliveryStatus::Pending {
        update.push(", finished_at = ").bind(at);
    }
    update.push(" WHERE id = ").bind(id.to_string());
    update.build().execute(db.conn()).await?;
    Ok(())
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    /// Its number, from 1.
    pub attempt: i64,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: time::OffsetDateTime,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// How long it took, in milliseconds.
    pub latency_ms: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Up to `limit` deliveries of webhook `id` made before `before` (microseconds), newest first,
/// each with its attempts.
pub async fn deliveries(
    db: &mut dyn Db,
    id: Uuid,
    before: Option<(i64, Uuid)>,
    limit: u32,
) -> Result<Vec<(DeliveryRow, Vec<AttemptRow>)>, StoreError> {
    let mut sql = Sql::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_delivery WHERE webhook_id = "
    ));
    sql.bind(id.to_string());
    let before = before.map(|(at, last)| (SortKey::Int(at), last));
    push_page(&mut sql, "created_at", "id", true, before.as_ref(), limit);
    let rows: Vec<RawDelivery> = sql.build_as().fetch_all(db.conn()).await?;
    let deliveries: Vec<DeliveryRow> = rows.into_iter().map(delivery).collect::<Result<_, _>>()?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempts = Sql::new(
        "SELECT delivery_id, attempt, at, status_code, latency_ms, error FROM webhook_attempt WHERE delivery_id IN (",
    );
    attempts
        .bind_list(deliveries.iter().map(|d| d.id.to_string()))
        .push(") ORDER BY delivery_id, attempt");
    type RawAttempt = (String, i64, i64, Option<i64>, i64, Option<String>);
    let raw: Vec<RawAttempt> = attempts.build_as().fetch_all(db.conn()).await?;
    let mut by_delivery: std::collections::HashMap<Uuid, Vec<AttemptRow>> = std::collections::HashMap::new();
    for (delivery_id, attempt, at, status_code, latency_ms, error) in raw {
        by_delivery
            .entry(parse_id(&delivery_id)?)
            .or_default()
            .push(AttemptRow {
                attempt,
                at: from_micros(at),
                status_code,
                latency_ms,
                error,
            });
    }
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let attempts = by_delivery.remove(&d.id).unwrap_or_default();
            (d, attempts)
        })
        .collect())
}
