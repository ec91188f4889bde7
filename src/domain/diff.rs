//! The sync diff: a merge of the bucket listing and the catalog, both in key order, into what
//! each key needs. It streams: neither side is held in memory.

use std::cmp::Ordering;
use std::iter::Peekable;

use super::fingerprint::Fingerprint;

/// One object from a bucket listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key relative to the synced prefix.
    pub key: String,
    /// Its current fingerprint.
    pub fingerprint: Fingerprint,
}

/// One bucket-backed item of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The item's id.
    pub id: uuid::Uuid,
    /// Its object key relative to the synced prefix.
    pub key: String,
    /// The fingerprint recorded at the last sync.
    pub fingerprint: Fingerprint,
    /// The content checksum recorded at the last sync.
    pub checksum: Option<String>,
    /// Whether the object was gone at the last sync.
    pub is_tombstone: bool,
}

/// What one key needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// New in the bucket: read it and create an item.
    Create(Listed),
    /// Known and live, but the fingerprint moved (or a rehash was asked for): read it and
    /// compare checksums (update, or only refresh the fingerprint).
    Check(Listed, Known),
    /// Known, live, same fingerprint: nothing to read.
    Unchanged(Known),
    /// Gone from the bucket: mark the item a tombstone (never delete it).
    Tombstone(Known),
    /// Back after being gone: read it, restore the item, update it if the content changed.
    Restore(Listed, Known),
}

/// Merges `listed` and `known`, both sorted by key bytewise with no duplicates, into steps in
/// key order. With `force_rehash` every live object is checked. Tombstones that stay gone
/// produce no step.
pub fn diff<L, K>(listed: L, known: K, force_rehash: bool) -> Diff<L::IntoIter, K::IntoIter>
where
    L: IntoIterator<Item = Listed>,
    K: IntoIterator<Item = Known>,
{
    Diff {
        listed: listed.into_iter().peekable(),
        known: known.into_iter().peekable(),
        force_rehash,
    }
}

/// The iterator [`diff`] returns.
pub struct Diff<L: Iterator<Item = Listed>, K: Iterator<Item = Known>> {
    listed: Peekable<L>,
    known: Peekable<K>,
    force_rehash: bool,
}

impl<L: Iterator<Item = Listed>, K: Iterator<Item = Known>> Iterator for Diff<L, K> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        loop {
            let order = match (self.listed.peek(), self.known.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(l), Some(k)) => l.key.as_bytes().cmp(k.key.as_bytes()),
            };
            let step = match order {
                Ordering::Less => self.listed.next().map(Step::Create),
                Ordering::Greater => match self.known.next() {
                    Some(known) if known.is_tombstone => continue,
                    other => other.map(Step::Tombstone),
                },
                Ordering::Equal => match (self.listed.next(), self.known.next()) {
                    (Some(l), Some(k)) => Some(if k.is_tombstone {
                        Step::Restore(l, k)
                    } else if !self.force_rehash && l.fingerprint.matches(&k.fingerprint) {
                        Step::Unchanged(k)
                    } else {
                        Step::Check(l, k)
                    }),
                    _ => None,
                },
            };
            return step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64) -> Listed {
        Listed {
            key: key.into(),
            fingerprint: Fingerprint {
                size,
                modified_micros: Some(7),
                etag: None,
                version: None,
            },
        }
    }

    fn known(key: &str, size: u64, tombstone: bool) -> Known {
        Known {
            id: uuid::Uuid::nil(),
            key: key.into(),
            fingerprint: Fingerprint {
                size,
                modified_micros: Some(7),
                etag: None,
                version: None,
            },
            checksum: None,
            is_tombstone: tombstone,
        }
    }

    fn names(steps: Vec<Step>) -> Vec<String> {
        steps
            .into_iter()
            .map(|s| match s {
                Step::Create(l) => format!("create {}", l.key),
                Step::Check(l, _) => format!("check {}", l.key),
                Step::Unchanged(k) => format!("unchanged {}", k.key),
                Step::Tombstone(k) => format!("tombstone {}", k.key),
                Step::Restore(l, _) => format!("restore {}", l.key),
            })
            .collect()
    }

    #[test]
    fn every_case_in_key_order() {
        let bucket = vec![listed("a", 1), listed("b", 2), listed("c", 3), listed("e", 5)];
        let catalog = vec![
            known("b", 2, false),
            known("c", 9, false),
            known("d", 4, false),
            known("e", 5, true),
            known("f", 6, true),
        ];
        assert_eq!(
            names(diff(bucket, catalog, false).collect()),
            ["create a", "unchanged b", "check c", "tombstone d", "restore e"]
        );
    }

    #[test]
    fn force_rehash_checks_every_live_object() {
        let steps = diff(vec![listed("b", 2)], vec![known("b", 2, false)], true).collect();
        assert_eq!(names(steps), ["check b"]);
    }

    #[test]
    fn keys_compare_as_bytes_like_s3() {
        // `a-b` sorts before `a/x` in S3 key order; both sides agree, so nothing is mismatched.
        let bucket = vec![listed("a-b", 1), listed("a/x", 1)];
        let catalog = vec![known("a-b", 1, false), known("a/x", 1, false)];
        assert_eq!(
            names(diff(bucket, catalog, false).collect()),
            ["unchanged a-b", "unchanged a/x"]
        );
    }

    #[test]
    fn empty_listing_tombstones_everything_live() {
        let steps = diff(Vec::new(), vec![known("a", 1, false), known("b", 1, true)], false).collect();
        assert_eq!(names(steps), ["tombstone a"]);
    }
}
