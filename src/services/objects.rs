//! Removing the objects catalog rows held, and naming new ones, in the managed bucket. Objects
//! are removed only after the rows that pointed at them are gone (the item and trash use cases keep that order); what a
//! failed removal leaves is an orphan the sweep removes later. Other buckets are never written.

use uuid::Uuid;

use crate::blobs::{Bucket, Buckets, ObjectKey};
use crate::config::MANAGED_BUCKET;
use crate::domain::item::Item;

/// The `(bucket, key)` pairs of the objects an item holds: its source and its rendition.
pub fn objects_of(item: &Item) -> Vec<(String, String)> {
    let mut pairs = vec![(item.bucket.clone(), item.object_key.clone())];
    if let Some(encoded) = &item.encoded {
        pairs.push((MANAGED_BUCKET.to_owned(), encoded.object_key.clone()));
    }
    pairs
}

/// Deletes one object, logging (not failing on) errors: what is left is an orphan the sweep
/// removes later. True when the object is gone.
pub async fn remove_object(bucket: &dyn Bucket, key: &ObjectKey) -> bool {
    match bucket.delete(key).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(bucket = bucket.name(), %key, %error, "cannot delete an object; the orphan sweep will retry");
            false
        }
    }
}

/// Deletes the managed objects among `(bucket, key)` pairs; other buckets are never written.
/// Answers how many managed objects it removed (or found already gone).
pub async fn remove_managed_objects(buckets: &Buckets, objects: impl IntoIterator<Item = (String, String)>) -> u64 {
    let managed = buckets.managed();
    let mut removed = 0;
    for (bucket, key) in objects {
        if bucket != MANAGED_BUCKET {
            continue;
        }
        match ObjectKey::parse(&key) {
            Ok(key) => {
                if remove_object(managed.as_ref(), &key).await {
                    removed += 1;
                }
            }
            Err(error) => tracing::warn!(%key, %error, "an item held an invalid object key"),
        }
    }
    removed
}

/// A fresh key for a managed object: a random UUID under a two-hex-digit shard directory.
pub fn new_object_key() -> ObjectKey {
    let id = Uuid::new_v4().simple().to_string();
    // A UUID's hex form always makes a valid key.
    ObjectKey::parse(&format!("{}/{id}", &id[..2])).unwrap_or_else(|_| unreachable!("uuid keys are valid"))
}
