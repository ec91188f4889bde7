//! Access decisions about configured buckets: which ones a caller may use (sync folders over,
//! import from, reference objects in). A bucket the caller may not use is answered exactly like
//! one that is not configured, so nobody learns that it exists.

use std::sync::Arc;

use crate::blobs::source::Source;
use crate::blobs::{BlobError, Buckets, ObjectKey};
use crate::domain::caller::Caller;

/// The configured bucket `name` (not `managed`), when `caller` may use it.
pub fn usable_source(buckets: &Buckets, caller: &Caller, name: &str) -> Option<Arc<Source>> {
    buckets
        .source(name)
        .filter(|source| caller.may_use_bucket(source.allowed_users()))
}

/// Every configured bucket (not `managed`) that `caller` may use, by name.
pub fn usable_sources(buckets: &Buckets, caller: &Caller) -> Vec<Arc<Source>> {
    buckets
        .sources()
        .filter(|source| caller.may_use_bucket(source.allowed_users()))
        .cloned()
        .collect()
}

/// The bucket and key of object URL `url`, among the buckets `caller` may use.
pub fn locate_usable(buckets: &Buckets, caller: &Caller, url: &str) -> Result<(Arc<Source>, ObjectKey), BlobError> {
    buckets.locate_among(url, |source| caller.may_use_bucket(source.allowed_users()))
}
