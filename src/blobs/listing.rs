//! What reading a bucket yields: the entries of a listing, and an object read once to hash it.

use crate::domain::fingerprint::Fingerprint;

/// One result of a listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An object.
    Object {
        /// Its full key in the bucket.
        key: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// Something under `key` (a key prefix ending in `/`, or one key) could not be listed; the
    /// catalog below it must be left alone.
    Unreadable {
        /// The key or key prefix.
        key: String,
        /// Why.
        message: String,
    },
    /// An entry that is deliberately not an object (a symlink out of the root…).
    Skipped {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl ListEntry {
    /// The key (or key prefix) the entry is about.
    pub fn key(&self) -> &str {
        match self {
            ListEntry::Object { key, .. } | ListEntry::Unreadable { key, .. } | ListEntry::Skipped { key, .. } => key,
        }
    }
}

/// An object read once: its checksum, its size, and what the reader's `inspect` made of its first
/// bytes (the bytes themselves are not kept: most objects need only their type from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed<T> {
    /// blake3, lowercase hex.
    pub checksum: String,
    /// Bytes hashed (what was there when it was read).
    pub size: u64,
    /// What `inspect` answered for the first bytes (up to `head_bytes`) and the object's size
    /// (see [`Source::hash_many`]).
    pub inspected: T,
}

/// Reads `body` to its end: its blake3 and size, and its first `head_bytes` bytes.
pub async fn hash_stream<E>(
    mut body: impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    head_bytes: usize,
) -> Result<(Hashed<()>, Vec<u8>), E> {
    use futures::StreamExt;
    let mut hasher = blake3::Hasher::new();
    let mut head = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if head.len() < head_bytes {
            let take = (head_bytes - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
    }
    let hashed = Hashed {
        checksum: hasher.finalize().to_hex().to_string(),
        size: hasher.count(),
        inspected: (),
    };
    Ok((hashed, head))
}
