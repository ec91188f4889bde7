//! Users: the people and services that hold API keys. Admins record them and list them; anyone
//! can ask who they are.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::require_admin;
use super::audit;
use super::{Page, ServiceError, decode_text_position, field, page_token};
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::caller::{Caller, KeyScope, check_user_name};
use crate::domain::page::{SortKey, page_size};
use crate::store::users::{self, UserRecord};
use crate::store::{Store, now_micros};

/// The one order users are listed in (the order part of their page tokens).
const USER_ORDER: &str = "name:asc";

/// Body of `POST /v1/users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user name: 1-64 letters, digits, `.`, `_`, `-` or `@`; folders and jobs record it.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub name: String,
    /// Whether the user is an admin (sees and changes everything).
    #[serde(default)]
    pub is_admin: bool,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserView {
    /// The user name.
    pub name: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
    /// When the user was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            name: user.name,
            is_admin: user.is_admin,
            created_at: user.created_at,
        }
    }
}

/// Who the caller is, and with which key. `is_admin` says whether this request has admin
/// rights: the user is an admin and the key may use that (a key made as a non-admin key may not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    #[serde(flatten)]
    pub user: UserView,
    /// The key this request came with.
    pub key_id: Option<Uuid>,
    /// What that key may do.
    pub scope: KeyScope,
}

/// User use cases.
#[derive(Clone)]
pub struct UserService {
    store: Store,
}

impl UserService {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records a user (admins only); 409 when the name is taken.
    pub async fn create(&self, caller: &Caller, req: NewUser) -> Result<UserView, ServiceError> {
        require_admin(caller, "create users")?;
        check_user_name(&req.name).map_err(field("name"))?;
        let mut tx = self.store.write().await?;
        if !users::insert_if_absent(&mut tx, &req.name, req.is_admin, now_micros()).await? {
            return Err(ServiceError::Conflict(format!(
                "a user named `{}` exists already",
                req.name
            )));
        }
        let user = users::by_name(&mut tx, &req.name)
            .await?
            .ok_or_else(|| ServiceError::Internal("the new user vanished".into()))?;
        let event = AuditEvent::by(caller, AuditAction::UserCreate, &req.name, user.created_at)
            .with_detail(serde_json::json!({ "is_admin": req.is_admin }));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        tracing::info!(user = %req.name, admin = req.is_admin, by = %caller.name, "recorded a user");
        Ok(user.into())
    }

    /// One page of the users in name order (admins only).
    pub async fn list(
        &self,
        caller: &Caller,
        requested_size: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<UserView>, ServiceError> {
        require_admin(caller, "list users")?;
        let limit = page_size(requested_size).map_err(field("page_size"))?;
        let after = token
            .map(|token| decode_text_position(token, USER_ORDER).map(|(name, _)| name))
            .transpose()?;
        let mut conn = self.store.read().await?;
        let found = users::list(&mut conn, after.as_deref(), limit + 1).await?;
        let token_of = |last: &UserRecord| page_token(USER_ORDER, &SortKey::Text(last.name.clone()), Uuid::nil());
        Ok(Page::of(found, limit, token_of, UserView::from))
    }

    /// Who the caller is.
    pub async fn me(&self, caller: &Caller) -> Result<Me, ServiceError> {
        let mut conn = self.store.read().await?;
        let user = users::by_name(&mut conn, &caller.name)
            .await?
            .map(UserView::from)
            .unwrap_or_else(|| UserView {
                name: caller.name.clone(),
                is_admin: caller.is_admin,
                created_at: OffsetDateTime::UNIX_EPOCH,
            });
        Ok(Me {
            user: UserView {
                is_admin: caller.is_admin,
                ..user
            },
            key_id: caller.key_id,
            scope: caller.scope,
        })
    }
}

/// User `name` as they stand now, as a caller with their admin flag and the grants that reach
/// them (what work done in their name, such as a webhook's deliveries, may still see); `None`
/// when there is no such user.
pub async fn standing(conn: &mut dyn crate::store::Db, name: &str) -> Result<Option<Caller>, ServiceError> {
    let Some(user) = users::by_name(conn, name).await? else {
        return Ok(None);
    };
    let (grants, bucket_grants) = crate::store::teams::reaching(conn, name).await?;
    let mut caller = Caller::user(user.name, user.is_admin);
    caller.grants = grants.into();
    caller.bucket_grants = bucket_grants.into();
    Ok(Some(caller))
}

/// 404 unless user `name` is recorded (`user: no user named …`).
pub async fn require_user(conn: &mut dyn crate::store::Db, name: &str) -> Result<(), ServiceError> {
    match users::by_name(conn, name).await? {
        Some(_) => Ok(()),
        None => Err(ServiceError::NotFound(format!("user: no user named `{name}`"))),
    }
}
