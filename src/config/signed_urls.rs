//! `[signed_urls]`: how long the URLs handed out for items' content stay valid, and what the
//! daemon signs its own (`/o/…`) with.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Signed URLs (`GET /v1/items/{id}/url`, `signed_urls=true` on lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignedUrlSettings {
    /// How long a URL stays valid when the request does not say, in seconds.
    pub default_seconds: u64,
    /// The longest validity a request may ask for, in seconds.
    pub max_seconds: u64,
    /// How long a direct upload session (and its PUT URL) stays open, in seconds.
    pub upload_seconds: u64,
    /// A direct upload into a cloud managed bucket larger than this goes in parts of this many
    /// bytes (more when the file would need over 10,000), each PUT to a URL of its own.
    pub upload_part_bytes: u64,
    /// The address clients reach this daemon at (`https://stowage.example.com`), which the URLs
    /// it serves itself start with; unset: `http://` and the request's `Host`.
    pub base_url: Option<String>,
    /// What the daemon signs its own URLs with; unset: a random secret made once and kept in the
    /// catalog, shared by every process. Changing it invalidates every URL handed out.
    pub secret: Option<String>,
}

/// The smallest part S3 takes (all but the last part of an upload).
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// The largest part S3 takes.
pub const MAX_PART_BYTES: u64 = 5 << 30;

impl Default for SignedUrlSettings {
    fn default() -> Self {
        Self {
            default_seconds: 3600,
            max_seconds: 7 * 24 * 3600,
            upload_seconds: 24 * 3600,
            upload_part_bytes: 64 << 20,
            base_url: None,
            secret: None,
        }
    }
}

impl SignedUrlSettings {
    /// Checks the validities and the base URL.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("signed_urls.{key}"),
            message,
        };
        if self.default_seconds == 0 || self.default_seconds > self.max_seconds {
            return Err(invalid(
                "default_seconds",
                format!("must be between 1 and max_seconds ({})", self.max_seconds),
            ));
        }
        if self.upload_seconds == 0 {
            return Err(invalid("upload_seconds", "must be at least 1".into()));
        }
        if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&self.upload_part_bytes) {
            return Err(invalid(
                "upload_part_bytes",
                format!(
                    "must be between {MIN_PART_BYTES} (5 MiB) and {MAX_PART_BYTES} (5 GiB): the stores take parts of those sizes"
                ),
            ));
        }
        if let Some(base) = &self.base_url {
            let url = url::Url::parse(base).map_err(|e| invalid("base_url", format!("`{base}` is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(invalid(
                    "base_url",
                    format!("`{base}` must be an http(s) address without a query"),
                ));
            }
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid("secret", "must be at least 32 characters".into()));
        }
        Ok(())
    }
}
