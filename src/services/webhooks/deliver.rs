//! Delivering webhook events. Every process with workers runs a [`Deliverer`]; each round it
//! takes the enabled webhooks no other process holds (a lease in the database, so one process
//! at a time delivers to a receiver and its deliveries stay in order) and, for each, retries
//! its pending delivery when due, or batches its next events (up to [`MAX_BATCH`], those it is
//! for, in the order they happened) into a new delivery and sends it.
//!
//! A delivery is a POST of `{"delivery_id", "webhook_id", "events": [...]}` with
//! `Stowage-Delivery`, and `Stowage-Signature: t=UNIX,v1=HMAC` (see
//! [`crate::domain::webhook::signature`]); a 2xx answer delivers it. Otherwise it is tried
//! again after a backoff that doubles, with the same id and body, until the retry window
//! ends; then it is given up and the webhook goes on with the next events (after
//! `disable_after_failed_deliveries` given up in a row it is disabled, saying why). Redirects
//! are not followed, and the address a receiver's name resolves to is checked on every attempt
//! (no private networks unless allowed), so a receiver cannot be pointed at the machine's own
//! network after it was made.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use uuid::Uuid;

use crate::background::Periodic;
use crate::config::WebhookSettings;
use crate::domain::folder::path_is_within;
use crate::domain::webhook::{reachable, signature};
use crate::services::{Context, ServiceError};
use crate::store::webhook_deliveries::{self as delivery_rows, DeliveryRow, DeliveryStatus};
use crate::store::webhooks::{self as rows, EventRow, WebhookRow};
use crate::store::{Store, from_micros, now_micros};

/// The most events one delivery carries.
pub const MAX_BATCH: usize = 1000;
/// Events read per look for a webhook's next batch.
const SCAN: i64 = 5000;
/// How long a process holds a webhook it delivers to, from its last attempt's start (renewed
/// before each attempt; a process that died lets go of it after this).
const LEASE: Duration = Duration::from_secs(60);
/// How often the events every webhook is past are removed (a write, so not every round).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The most of an error kept in an attempt's record.
const MAX_ERROR_BYTES: usize = 500;

/// Resolves receivers' names, keeping only the addresses deliveries may go to.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| reachable(a.ip(), allow_private))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses on this machine's own, a private or a reserved network ({})",
                    found.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Delivers webhook events, a round at a time.
pub struct Deliverer {
    store: Store,
    client: reqwest::Client,
    settings: WebhookSettings,
    /// When events every webhook is past were last removed.
    pruned: Option<Instant>,
}

/// How one attempt went.
struct Attempt {
    status_code: Option<u16>,
    error: Option<String>,
    took: Duration,
}

impl Attempt {
    fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

impl Deliverer {
    /// A deliverer over `store` with `settings`.
    pub fn new(store: Store, settings: WebhookSettings) -> Result<Self, ServiceError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private_networks,
            }))
            .user_agent(concat!("stowage-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self {
            store,
            client,
            settings,
            pruned: None,
        })
    }

    /// Delivers what is due to every webhook this process can take now.
    async fn deliver_all(&mut self) -> Result<(), ServiceError> {
        let due = {
            let mut conn = self.store.read().await?;
            rows::deliverable(&mut conn, now_micros()).await?
        };
        if !due.is_empty() {
            // Only a process about to deliver orders what committed (no write while idle).
            let mut tx = self.store.write().await?;
            rows::order_events(&mut tx).await?;
            tx.commit().await?;
        }
        for id in due {
            // Read now, not before the loop: delivering to the webhooks before may take minutes.
            let now = now_micros();
            let mut until = self.lease_until(now);
            let taken = {
                let mut tx = self.store.write().await?;
                let taken = rows::lease(&mut tx, id, now, until).await?;
                tx.commit().await?;
                taken
            };
            if !taken {
                continue;
            }
            let delivered = self.deliver_to(id, &mut until).await;
            let mut tx = self.store.write().await?;
            rows::release(&mut tx, id, until).await?;
            tx.commit().await?;
            if let Err(error) = delivered {
                tracing::warn!(webhook = %id, error = %crate::telemetry::ErrorChain(&error), "webhook delivery failed");
            }
        }
        if self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            let mut tx = self.store.write().await?;
            rows::prune_events(&mut tx).await?;
            tx.commit().await?;
            self.pruned = Some(Instant::now());
        }
        Ok(())
    }

    /// Until when a lease taken `now` holds: long enough for an attempt that times out.
    fn lease_until(&self, now: i64) -> i64 {
        let lease = LEASE.max(Duration::from_secs(self.settings.timeout_seconds.saturating_mul(3)));
        now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
    }

    /// Sends webhook `id`'s deliveries while they succeed (a failed one waits for its retry, so
    /// later events never overtake it) and this process holds its lease (held `until`, renewed
    /// before each attempt).
    async fn deliver_to(&self, id: Uuid, until: &mut i64) -> Result<(), ServiceError> {
        loop {
            let (hook, secret) = {
                let mut conn = self.store.read().await?;
                match rows::by_id(&mut conn, id).await? {
                    Some(found) if found.0.enabled => found,
                    _ => return Ok(()),
                }
            };
            let pending = {
                let mut conn = self.store.read().await?;
                delivery_rows::pending_delivery(&mut conn, id).await?
            };
            let delivery = match pending {
                Some(delivery) => delivery,
                None => match self.next_delivery(&hook).await? {
                    Some(delivery) => delivery,
                    None => return Ok(()),
                },
            };
            let now = now_micros();
            if delivery.next_attempt_at > now {
                return Ok(());
            }
            {
                let renewed = self.lease_until(now);
                let mut tx = self.store.write().await?;
                let held = rows::renew(&mut tx, id, *until, renewed).await?;
                tx.commit().await?;
                if !held {
                    // It lapsed and another process took it: that one goes on.
                    return Ok(());
                }
                *until = renewed;
            }
            let attempt = self.send(&hook, &secret, &delivery).await;
            let delivered = attempt.delivered();
            self.record(&hook, &delivery, &attempt).await?;
            if !delivered {
                return Ok(());
            }
        }
    }

    /// Batches the next events `hook` is for into a new pending delivery; `None` when there are
    /// none (it is moved past the events it is not for).
    async fn next_delivery(&self, hook: &WebhookRow) -> Result<Option<DeliveryRow>, ServiceError> {
        let mut conn = self.store.read().await?;
        let scope = match super::standing_of(&mut conn, hook).await? {
            Ok(scope) => scope,
            Err(reason) => {
                drop(conn);
                let mut tx = self.store.write().await?;
                rows::delivery_ended(&mut tx, hook.id, false, Some(&reason)).await?;
                tx.commit().await?;
                return Ok(None);
            }
        };
        let events = rows::events_after(&mut conn, hook.event_cursor, SCAN).await?;
        drop(conn);
        let Some(last_scanned) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let mut chosen: Vec<&EventRow> = Vec::new();
        let mut last_seq = last_scanned;
        for event in &events {
            if !hook.events.contains(&event.kind) || !in_scope(event, scope.as_deref()) {
                continue;
            }
            chosen.push(event);
            if chosen.len() == MAX_BATCH {
                last_seq = event.seq;
                break;
            }
        }
        let mut tx = self.store.write().await?;
        if chosen.is_empty() {
            rows::advance(&mut tx, hook.id, last_seq).await?;
            tx.commit().await?;
            return Ok(None);
        }
        let id = Uuid::now_v7();
        let body = serde_json::json!({
            "delivery_id": id,
            "webhook_id": hook.id,
            "events": chosen.iter().map(|e| serde_json::json!({
                "id": e.id,
                "type": e.kind.as_str(),
                "occurred_at": crate::services::rfc3339(from_micros(e.created_at)),
                "folder_id": e.folder_id,
                "folder_path": e.folder_path,
                "data": e.data,
            })).collect::<Vec<_>>(),
        });
        let now = now_micros();
        let delivery = DeliveryRow {
            id,
            webhook_id: hook.id,
            last_seq,
            event_count: chosen.len() as i64,
            body: body.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            finished_at: None,
        };
        delivery_rows::insert_delivery(&mut tx, &delivery).await?;
        tx.commit().await?;
        Ok(Some(delivery))
    }

    /// POSTs `delivery` to `hook`, signed now.
    async fn send(&self, hook: &WebhookRow, secret: &str, delivery: &DeliveryRow) -> Attempt {
        let started = Instant::now();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let answer = self
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Stowage-Delivery", delivery.id.to_string())
            .header(
                "Stowage-Signature",
                signature(secret, timestamp, delivery.body.as_bytes()),
            )
            .body(delivery.body.clone())
            .send()
            .await;
        let (status_code, error) = match answer {
            Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
            Ok(response) => (
                Some(response.status().as_u16()),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(e) => (None, Some(crate::telemetry::ErrorChain(&e).to_string())),
        };
        Attempt {
            status_code,
            error: error.map(|mut e| {
                e.truncate(MAX_ERROR_BYTES);
                e
            }),
            took: started.elapsed(),
        }
    }

    /// Records `attempt` of `delivery` and what follows: delivered, retried later, or given up
    /// (and the webhook disabled after too many given up in a row).
    async fn record(&self, hook: &WebhookRow, delivery: &DeliveryRow, attempt: &Attempt) -> Result<(), ServiceError> {
        let now = now_micros();
        let number = delivery.attempts + 1;
        let window = i64::try_from(self.settings.retry_window_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let wait = self.backoff(number);
        let next = now + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
        let status = if attempt.delivered() {
            DeliveryStatus::Delivered
        } else if next - delivery.created_at > window {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        };
        let outcome = match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retrying",
            DeliveryStatus::Failed => "failed",
        };
        crate::metrics::webhook_attempt(outcome, attempt.took);
        if let Some(error) = &attempt.error {
            tracing::warn!(webhook = %hook.id, delivery = %delivery.id, attempt = number, outcome, %error, "a webhook delivery attempt failed");
        }
        let mut tx = self.store.write().await?;
        delivery_rows::record_attempt(
            &mut tx,
            delivery.id,
            number,
            now,
            attempt.status_code,
            i64::try_from(attempt.took.as_millis()).unwrap_or(i64::MAX),
            attempt.error.as_deref(),
            status,
            next,
        )
        .await?;
        if status != DeliveryStatus::Pending {
            rows::advance(&mut tx, hook.id, delivery.last_seq).await?;
            let failures = hook.failed_in_a_row + 1;
            let disable = (status == DeliveryStatus::Failed
                && failures >= i64::from(self.settings.disable_after_failed_deliveries))
            .then(|| {
                format!(
                    "{failures} deliveries in a row were given up after retrying for {} s; the last attempt: {}",
                    self.settings.retry_window_seconds,
                    attempt.error.as_deref().unwrap_or("failed")
                )
            });
            rows::delivery_ended(
                &mut tx,
                hook.id,
                status == DeliveryStatus::Delivered,
                disable.as_deref(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The wait after failed attempt number `attempt`.
    fn backoff(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(30);
        Duration::from_millis(self.settings.retry_backoff_ms)
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(Duration::from_millis(self.settings.retry_backoff_max_ms))
    }
}

/// Whether `event` is about a folder in the subtree at `scope` (every event when `None`).
fn in_scope(event: &EventRow, scope: Option<&str>) -> bool {
    match (scope, event.folder_path.as_deref()) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(root), Some(path)) => path_is_within(path, root),
    }
}

impl Periodic for Deliverer {
    async fn round(&mut self) {
        if let Err(error) = self.deliver_all().await {
            tracing::warn!(error = %crate::telemetry::ErrorChain(&error), "webhook deliveries failed this round");
        }
    }
}
