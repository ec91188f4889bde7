//! What identifies an object's version without reading it (size, modification time, ETag or
//! version id), and its content checksum (blake3).

use serde::{Deserialize, Serialize};

/// The cheap identity of an object's current version, from a listing. Two fingerprints are
/// equal only when every part either side knows is equal; an ETag is never taken for a content
/// hash (multipart and SSE ETags are not MD5s), only for a version marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, microseconds since the Unix epoch, when the store reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_micros: Option<i64>,
    /// The store's ETag, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The store's version id, when versioning is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Fingerprint {
    /// Whether `self` (from a listing) shows the same object version as `stored` (from the
    /// catalog). Unknown parts on either side do not count as equal: a missing mtime or ETag
    /// means "cannot tell", and the object gets read.
    pub fn matches(&self, stored: &Fingerprint) -> bool {
        let same = |a: &Option<String>, b: &Option<String>| a == b;
        self.size == stored.size
            && self.modified_micros.is_some()
            && self.modified_micros == stored.modified_micros
            && same(&self.etag, &stored.etag)
            && same(&self.version, &stored.version)
    }
}

/// A blake3 checksum of an object's content, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checksum(pub String);

impl Checksum {
    /// The checksum of a finished hasher.
    pub fn of(hasher: &blake3::Hasher) -> Self {
        Checksum(hasher.finalize().to_hex().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(size: u64, modified: Option<i64>, etag: Option<&str>) -> Fingerprint {
        Fingerprint {
            size,
            modified_micros: modified,
            etag: etag.map(str::to_owned),
            version: None,
        }
    }

    #[test]
    fn equal_only_when_every_known_part_agrees() {
        assert!(fp(5, Some(1), Some("e")).matches(&fp(5, Some(1), Some("e"))));
        assert!(fp(5, Some(1), None).matches(&fp(5, Some(1), None)));
        assert!(!fp(5, Some(1), Some("e")).matches(&fp(6, Some(1), Some("e"))), "size");
        assert!(!fp(5, Some(2), Some("e")).matches(&fp(5, Some(1), Some("e"))), "mtime");
        assert!(!fp(5, Some(1), Some("f")).matches(&fp(5, Some(1), Some("e"))), "etag");
        assert!(!fp(5, None, None).matches(&fp(5, None, None)), "no mtime: cannot tell");
    }
}
