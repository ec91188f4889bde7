//! Decoding what the catalog's rows store: ids, JSON objects and the trash columns, shared by
//! every table's module.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, from_micros};

/// Parses a stored UUID.
pub fn parse_id(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| corrupt("id", e))
}

/// Parses a stored JSON object.
pub fn parse_object(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("client_metadata", e))
}

/// Where a trashed row stands in the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrashMark {
    /// What the user deleted: this row itself, or the folder that carried it into the trash.
    pub unit: Uuid,
    /// When it was trashed.
    pub trashed_at: OffsetDateTime,
    /// When the sweep purges it.
    pub purge_at: OffsetDateTime,
}

/// Reads the trash columns of a row; `None` for a live one.
pub fn trash_mark(
    trashed_at: Option<i64>,
    unit: Option<&str>,
    purge_at: Option<i64>,
) -> Result<Option<TrashMark>, StoreError> {
    match (trashed_at, unit) {
        (Some(trashed_at), Some(unit)) => Ok(Some(TrashMark {
            unit: parse_id(unit)?,
            trashed_at: from_micros(trashed_at),
            purge_at: from_micros(purge_at.unwrap_or(trashed_at)),
        })),
        (None, _) => Ok(None),
        (Some(_), None) => Err(corrupt("trash_unit", "a trashed row names no trash unit")),
    }
}

/// A folder's path as users see it: the stored path without a trash unit prefix.
pub fn display_path(stored: &str) -> &str {
    match stored.find(":/") {
        Some(colon) if !stored.starts_with('/') => &stored[colon + 1..],
        _ => stored,
    }
}

/// Wraps a decode failure of a stored value into a `StoreError`.
pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}
