//! Webhooks: receivers told of events (a job, sync or import finished; an item made, changed,
//! tombstoned or deleted) by signed HTTP POSTs. A folder's managers make webhooks for its subtree, admins also for every
//! folder; each change is audited. Deliveries (`deliver.rs`) go out in order, retried with
//! backoff, from any process with workers.

pub mod deliver;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{folder_for, folder_roles, require, require_admin};
use super::keys::random_secret;
use super::users::standing;
use super::{Page, ServiceError, audit, decode_number_position, field, now, page_token};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, Role};
use crate::domain::page::{SortKey, page_size};
use crate::domain::webhook::{EventKind, check_url};
use crate::store::webhook_deliveries::{self as delivery_rows, AttemptRow, DeliveryRow, DeliveryStatus};
use crate::store::webhooks::{self as rows, WebhookRow};
use crate::store::{Db, Store, folders as folder_rows, from_micros, to_micros};

/// The longest description, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The ordering delivery pages use.
const DELIVERY_ORDER: &str = "created_at:desc";

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries go: an `http://` or `https://` URL on a public network.
    pub url: String,
    /// What it is told about (at least one).
    #[schema(min_items = 1)]
    pub events: Vec<EventKind>,
    /// Only events of this folder's subtree (you must manage it); without it, every folder's
    /// (admins only).
    pub folder_id: Option<Uuid>,
    /// What it is for.
    pub description: Option<String>,
}

/// Body of `PATCH /v1/webhooks/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChange {
    /// A new receiver URL.
    pub url: Option<String>,
    /// New events (at least one).
    pub events: Option<Vec<EventKind>>,
    /// A new description.
    pub description: Option<String>,
    /// `false` stops deliveries; `true` starts them again (and forgets past failures).
    pub enabled: Option<bool>,
}

/// A webhook as the API shows it (never its secret, but when it is made).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// What it is told about.
    pub events: Vec<EventKind>,
    /// Only events of this folder's subtree; `null`: every folder's.
    pub folder_id: Option<Uuid>,
    /// What it is for.
    pub description: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Why it was disabled, when deliveries kept failing.
    pub disabled_reason: Option<String>,
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            folder_id: row.folder_id,
            description: row.description,
            created_by: row.created_by,
            created_at: from_micros(row.created_at),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
        }
    }
}

/// A new webhook, with the secret that signs its deliveries (shown this once).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The HMAC-SHA256 key of the `Stowage-Signature` header; keep it, it is not shown again.
    pub secret: String,
}

/// One delivery of a webhook, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (the `Stowage-Delivery` header; the same on every attempt).
    pub id: Uuid,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub status: DeliveryStatus,
    /// Events in it.
    pub event_count: i64,
    /// Attempts made.
    pub attempts: i64,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it is tried next, while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Each attempt: when, the answer's status or the error, how long it took.
    pub attempt_log: Vec<AttemptRow>,
}

/// Webhook use cases.
#[derive(Clone)]
pub struct WebhookService {
    store: Store,
    allow_private: bool,
}

/// Checks the events of a webhook: at least one, each once.
fn checked_events(mut events: Vec<EventKind>) -> Result<Vec<EventKind>, ServiceError> {
    events.sort();
    events.dedup();
    if events.is_empty() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(ServiceError::Invalid(format!(
            "events: name at least one of {}",
            names.join(", ")
        )));
    }
    Ok(events)
}

/// Checks a description's length.
fn checked_description(description: Option<String>) -> Result<Option<String>, ServiceError> {
    match description {
        Some(text) if text.len() > MAX_DESCRIPTION_BYTES => Err(ServiceError::Invalid(format!(
            "description: at most {MAX_DESCRIPTION_BYTES} bytes, got {}",
            text.len()
        ))),
        other => Ok(other),
    }
}

impl WebhookService {
    /// The service over `store`; `allow_private` lets receivers live on private networks.
    pub fn new(store: Store, allow_private: bool) -> Self {
        Self { store, allow_private }
    }

    /// Makes a webhook (managers of its folder; admins for every folder), audited.
    pub async fn create(&self, caller: &Caller, req: NewWebhook) -> Result<CreatedWebhook, ServiceError> {
        let url = check_url(&req.url, self.allow_private).map_err(field("url"))?;
        let events = checked_events(req.events)?;
        let description = checked_description(req.description)?;
        let mut tx = self.store.write().await?;
        match req.folder_id {
            Some(folder) => {
                folder_for(&mut tx, caller, folder, Role::Manager).await?;
            }
            None => require_admin(
                caller,
                "make a webhook for every folder; give the folder_id of a folder you manage",
            )?,
        }
        let row = WebhookRow {
            id: Uuid::now_v7(),
            url: url.to_string(),
            events,
            folder_id: req.folder_id,
            description,
            created_by: caller.name.clone(),
            created_at: to_micros(now()),
            enabled: true,
            disabled_reason: None,
            event_cursor: 0,
            failed_in_a_row: 0,
        };
        let secret = random_secret("whsec_");
        rows::insert(&mut tx, &row, &secret).await?;
        let event = audited(caller, AuditAction::WebhookCreate, &row);
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(CreatedWebhook {
            webhook: row.into(),
            secret,
        })
    }

    /// The webhooks the caller manages (admins: all), oldest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<WebhookView>, ServiceError> {
        let mut conn = self.store.read().await?;
        let all = rows::list(&mut conn).await?;
        if caller.is_admin {
            return Ok(all.into_iter().map(Into::into).collect());
        }
        let roles = folder_roles(&mut conn, caller, all.iter().filter_map(|h| h.folder_id)).await?;
        Ok(all
            .into_iter()
            .filter(|h| {
                h.folder_id
                    .and_then(|f| roles.get(&f).copied().flatten())
                    .is_some_and(|role| role >= Role::Manager)
            })
            .map(Into::into)
            .collect())
    }

    /// One webhook the caller manages.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<WebhookView, ServiceError> {
        let mut conn = self.store.read().await?;
        Ok(managed(&mut conn, caller, id).await?.into())
    }

    /// Changes a webhook the caller manages, audited.
    pub async fn update(&self, caller: &Caller, id: Uuid, change: WebhookChange) -> Result<WebhookView, ServiceError> {
        let mut tx = self.store.write().await?;
        let mut row = managed(&mut tx, caller, id).await?;
        if let Some(url) = change.url {
            row.url = check_url(&url, self.allow_private).map_err(field("url"))?.to_string();
        }
        if let Some(events) = change.events {
            row.events = checked_events(events)?;
        }
        if let Some(description) = change.description {
            row.description = checked_description(Some(description))?;
        }
        if let Some(enabled) = change.enabled {
            if enabled && let Err(why) = standing_of(&mut tx, &row).await? {
                return Err(ServiceError::Conflict(format!(
                    "webhook {id} cannot be enabled: {why}; a current manager of its folder makes a new one"
                )));
            }
            row.enabled = enabled;
            if enabled {
                row.disabled_reason = None;
            }
        }
        rows::update(&mut tx, &row).await?;
        let event = audited(caller, AuditAction::WebhookUpdate, &row);
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes a webhook the caller manages, with its deliveries, audited.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        let mut tx = self.store.write().await?;
        let row = managed(&mut tx, caller, id).await?;
        rows::delete(&mut tx, id).await?;
        let event = audited(caller, AuditAction::WebhookDelete, &row);
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of a webhook's deliveries, newest first, each with its attempts.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: Uuid,
        size: Option<u32>,
        token: Option<String>,
    ) -> Result<Page<DeliveryView>, ServiceError> {
        let limit = page_size(size).map_err(field("page_size"))?;
        let before = token
            .as_deref()
            .map(|t| decode_number_position(t, DELIVERY_ORDER))
            .transpose()?;
        let mut conn = self.store.read().await?;
        managed(&mut conn, caller, id).await?;
        let found = delivery_rows::deliveries(&mut conn, id, before, limit + 1).await?;
        let token_of =
            |(d, _): &(DeliveryRow, Vec<AttemptRow>)| page_token(DELIVERY_ORDER, &SortKey::Int(d.created_at), d.id);
        Ok(Page::of(found, limit, token_of, |(d, attempt_log)| DeliveryView {
            id: d.id,
            status: d.status,
            event_count: d.event_count,
            attempts: d.attempts,
            created_at: from_micros(d.created_at),
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| from_micros(d.next_attempt_at)),
            finished_at: d.finished_at.map(from_micros),
            attempt_log,
        }))
    }
}

/// Webhook `id` when `caller` manages it (admins: any; others: one scoped to a folder they
/// manage); else 404, as if it did not exist (403 to a viewer or editor of its folder).
async fn managed(conn: &mut dyn Db, caller: &Caller, id: Uuid) -> Result<WebhookRow, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("webhook {id} not found"));
    let (row, _) = rows::by_id(conn, id).await?.ok_or_else(not_found)?;
    if caller.is_admin {
        return Ok(row);
    }
    let folder = row.folder_id.ok_or_else(not_found)?;
    let found = folder_rows::by_id(conn, folder).await?;
    require(caller, found, Role::Manager, &folder).map_err(|e| match e {
        ServiceError::NotFound(_) => not_found(),
        other => other,
    })?;
    Ok(row)
}

/// The path of the subtree `hook` is told about (`None`: every folder), while its maker may
/// still be told of it: a manager of its folder (an admin for every folder). Else why it must
/// stop (deliveries stop; enabling it again is refused).
pub(super) async fn standing_of(
    conn: &mut dyn Db,
    hook: &WebhookRow,
) -> Result<Result<Option<String>, String>, ServiceError> {
    let Some(maker) = standing(conn, &hook.created_by).await? else {
        return Ok(Err(format!("its maker ({}) is no longer a user", hook.created_by)));
    };
    let Some(folder) = hook.folder_id else {
        return Ok(if maker.is_admin {
            Ok(None)
        } else {
            Err(format!("its maker ({}) is no longer an admin", hook.created_by))
        });
    };
    let found = folder_rows::by_id(conn, folder).await?;
    Ok(match found {
        None => Err("its folder was deleted".into()),
        Some(found) if maker.role_on(&found.folder) < Some(Role::Manager) => Err(format!(
            "its maker ({}) no longer manages {}",
            hook.created_by, found.folder.path
        )),
        Some(found) => Ok(Some(found.folder.path.as_str().to_owned())),
    })
}

/// The audit event of `caller` doing `action` to webhook `row`.
fn audited(caller: &Caller, action: AuditAction, row: &WebhookRow) -> AuditEvent {
    let event = AuditEvent::by(caller, action, row.id, now()).with_detail(serde_json::json!({
        "url": row.url,
        "events": row.events,
        "enabled": row.enabled,
    }));
    match row.folder_id {
        Some(folder) => event.in_folder(folder),
        None => event,
    }
}
