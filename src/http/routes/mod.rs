//! Route handlers, one file per resource. Handlers translate HTTP to service calls and back.

pub mod audit;
pub mod buckets;
pub mod content;
pub mod exports;
pub mod folders;
pub mod grants;
pub mod groups;
pub mod imports;
pub mod items;
pub mod jobs;
pub mod keys;
pub mod ops;
pub mod queues;
pub mod quotas;
pub mod signed;
pub mod trash;
pub mod uploads;
pub mod users;
pub mod views;
pub mod webhooks;

/// The query of a list that takes nothing but paging (`GET /v1/trash`, `GET /v1/users`).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}
