//! One configured bucket (`[buckets.NAME]`): where it is, how to reach it, who may use it, and
//! the checks its settings must pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, MANAGED_BUCKET};

/// One named bucket. Credentials are never written here: `credentials_env` names the
/// environment variables that hold them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// `file:///abs/dir`, `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    pub url: String,
    /// Custom endpoint for S3-compatible stores and emulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow plain http endpoints (emulators).
    #[serde(default)]
    pub allow_http: bool,
    /// Backend option name (e.g. `access_key_id`) to the environment variable that holds it.
    #[serde(default)]
    pub credentials_env: BTreeMap<String, String>,
    /// Other backend options by name, as object_store spells them (e.g. `use_emulator = "true"`
    /// for Azurite); never secrets: those go in `credentials_env`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Watch a local bucket for changes and sync what was touched.
    #[serde(default)]
    pub watch: bool,
    /// Users besides the admins who may use this bucket: sync folders over it, import from it
    /// and register references to its objects. Nobody else sees that it exists.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// The supported bucket URL schemes.
pub const BUCKET_SCHEMES: [&str; 4] = ["file", "s3", "gs", "az"];

impl BucketSettings {
    /// A bucket at `url` with every other setting at its default.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            endpoint: None,
            region: None,
            allow_http: false,
            credentials_env: BTreeMap::new(),
            options: BTreeMap::new(),
            watch: false,
            allow: Vec::new(),
        }
    }

    /// Checks the bucket's name and URL.
    pub(super) fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("buckets.{name}.{key}"),
            message,
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid("", "bucket names use only a-z, 0-9, `-` and `_`".into()));
        }
        let url =
            url::Url::parse(&self.url).map_err(|e| invalid("url", format!("`{}` is not a URL: {e}", self.url)))?;
        if !BUCKET_SCHEMES.contains(&url.scheme()) {
            return Err(invalid(
                "url",
                format!(
                    "scheme `{}` is not supported; use one of file, s3, gs, az",
                    url.scheme()
                ),
            ));
        }
        if url.scheme() == "file" && (url.host_str().is_some_and(|h| !h.is_empty()) || !url.path().starts_with('/')) {
            return Err(invalid("url", "a local bucket is `file:///absolute/directory`".into()));
        }
        if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("url", format!("`{}` names no bucket or container", self.url)));
        }
        if let Some(endpoint) = &self.endpoint
            && endpoint.starts_with("http://")
            && !self.allow_http
        {
            return Err(invalid(
                "endpoint",
                format!("`{endpoint}` is plain http; set allow_http = true (an emulator), or use https"),
            ));
        }
        if name == MANAGED_BUCKET && !self.allow.is_empty() {
            return Err(invalid(
                "allow",
                "every user uploads into the managed bucket; an allow list means nothing there".into(),
            ));
        }
        if self.allow.iter().any(|user| user.trim().is_empty()) {
            return Err(invalid("allow", "user names must not be empty".into()));
        }
        if self.watch && url.scheme() != "file" {
            return Err(invalid("watch", "only local (file://) buckets can be watched".into()));
        }
        Ok(())
    }
}
