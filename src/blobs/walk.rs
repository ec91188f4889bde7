//! Lists a local directory the way a sync needs it: every regular file under a root, in S3 key
//! order (bytewise, a directory's name compared as if it ended in `/`), from `lstat` (never
//! following a symlink out of the root), with per-entry errors instead of one error that ends
//! the walk. A directory that cannot be read is reported as such, so the sync knows nothing
//! below it may be tombstoned.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::listing::ListEntry;
use crate::domain::fingerprint::Fingerprint;

/// A directory entry waiting to be visited: its sort name and path.
struct Pending {
    /// The name as it sorts: `name` for files, `name/` for directories.
    sort_key: Vec<u8>,
    key: String,
    path: PathBuf,
    is_dir: bool,
    /// The entry's own metadata (a symlink's, not its target's), read through the open
    /// directory when it was listed: cheaper than a `lstat` that walks the whole path again.
    metadata: Option<std::io::Result<fs::Metadata>>,
}

/// Walks `root` and hands every entry, in key order, to `emit`, each key starting with
/// `key_prefix`; stops early when `emit` returns false. Symlinks are judged against `root`.
/// Runs synchronously: call it from a blocking thread.
pub fn walk(root: &Path, key_prefix: &str, mut emit: impl FnMut(ListEntry) -> bool) {
    let canonical_root = match fs::canonicalize(root) {
        Ok(path) => path,
        Err(e) => {
            emit(ListEntry::Unreadable {
                key: key_prefix.to_owned(),
                message: format!("cannot open {}: {e}", root.display()),
            });
            return;
        }
    };
    // A stack of sorted directory listings, deepest last; each listing is consumed from its end.
    let mut stack: Vec<Vec<Pending>> = Vec::new();
    match read_sorted(&canonical_root, key_prefix) {
        Ok(entries) => stack.push(entries),
        Err(message) => {
            emit(ListEntry::Unreadable {
                key: key_prefix.to_owned(),
                message,
            });
            return;
        }
    }
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.pop() else {
            stack.pop();
            continue;
        };
        if entry.is_dir {
            let prefix = format!("{}/", entry.key);
            match read_sorted(&entry.path, &prefix) {
                Ok(children) => stack.push(children),
                Err(message) => {
                    if !emit(ListEntry::Unreadable { key: prefix, message }) {
                        return;
                    }
                }
            }
            continue;
        }
        let out = describe(&canonical_root, entry);
        if let Some(out) = out
            && !emit(out)
        {
            return;
        }
    }
}

/// Walks only `keys` below `root`: a key naming a directory is walked whole, one naming a file
/// is described, a missing one yields nothing. Entries come out in key order, each once.
pub fn walk_keys(root: &Path, keys: &[String]) -> Vec<ListEntry> {
    let Ok(canonical_root) = fs::canonicalize(root) else {
        return vec![ListEntry::Unreadable {
            key: String::new(),
            message: format!("cannot open {}", root.display()),
        }];
    };
    let mut out = Vec::new();
    for key in keys {
        let path = canonical_root.join(key);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, &format!("{key}/"), |entry| {
                out.push(entry);
                true
            }),
            Ok(meta) => out.extend(describe(
                &canonical_root,
                Pending {
                    sort_key: Vec::new(),
                    key: key.clone(),
                    path,
                    is_dir: false,
                    metadata: Some(Ok(meta)),
                },
            )),
            Err(_) => {}
        }
    }
    out.sort_by(|a, b| a.key().cmp(b.key()));
    out.dedup_by(|a, b| a.key() == b.key());
    out
}

/// Reads one directory, sorted so that popping from the end yields key order.
fn read_sorted(dir: &Path, prefix: &str) -> Result<Vec<Pending>, String> {
    let reader = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut entries = Vec::new();
    for item in reader {
        let item = item.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = item.path();
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            let shown = name.to_string_lossy().into_owned();
            entries.push(Pending {
                sort_key: shown.clone().into_bytes(),
                key: format!("{prefix}{shown}\u{0}"),
                path,
                is_dir: false,
                metadata: None,
            });
            continue;
        };
        let is_dir = match item.file_type() {
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        let mut sort_key = name.as_bytes().to_vec();
        if is_dir {
            sort_key.push(b'/');
        }
        entries.push(Pending {
            sort_key,
            key: format!("{prefix}{name}"),
            path,
            is_dir,
            metadata: (!is_dir).then(|| item.metadata()),
        });
    }
    entries.sort_unstable_by(|a, b| b.sort_key.cmp(&a.sort_key));
    Ok(entries)
}

/// What a non-directory entry becomes.
fn describe(root: &Path, entry: Pending) -> Option<ListEntry> {
    if entry.key.ends_with('\u{0}') {
        let key = entry.key.trim_end_matches('\u{0}').to_owned();
        return Some(ListEntry::Unreadable {
            key,
            message: "the file name is not valid UTF-8".into(),
        });
    }
    let meta = match entry.metadata.unwrap_or_else(|| fs::symlink_metadata(&entry.path)) {
        Ok(meta) => meta,
        Err(e) => {
            return Some(ListEntry::Unreadable {
                key: entry.key,
                message: format!("cannot stat: {e}"),
            });
        }
    };
    let meta = if meta.file_type().is_symlink() {
        match fs::canonicalize(&entry.path) {
            Ok(target) if !target.starts_with(root) => {
                return Some(ListEntry::Skipped {
                    key: entry.key,
                    reason: "symlink points outside the bucket".into(),
                });
            }
            Ok(target) => match fs::metadata(&target) {
                Ok(m) if m.is_file() => m,
                Ok(_) => {
                    return Some(ListEntry::Skipped {
                        key: entry.key,
                        reason: "symlink to a directory".into(),
                    });
                }
                Err(e) => {
                    return Some(ListEntry::Unreadable {
                        key: entry.key,
                        message: format!("cannot stat link target: {e}"),
                    });
                }
            },
            Err(_) => {
                return Some(ListEntry::Skipped {
                    key: entry.key,
                    reason: "dangling symlink".into(),
                });
            }
        }
    } else if meta.is_file() {
        meta
    } else {
        return None; // sockets, fifos, devices: not objects
    };
    Some(ListEntry::Object {
        key: entry.key,
        fingerprint: file_fingerprint(&meta),
    })
}

/// The fingerprint of a local file: its size and modification time.
pub(super) fn file_fingerprint(meta: &fs::Metadata) -> Fingerprint {
    Fingerprint {
        size: meta.len(),
        modified_micros: Some(meta.mtime() * 1_000_000 + meta.mtime_nsec() / 1000),
        etag: None,
        version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        walk(root, "p/", |entry| {
            out.push(match entry {
                ListEntry::Object { key, .. } => key,
                ListEntry::Unreadable { key, .. } => format!("unreadable {key}"),
                ListEntry::Skipped { key, .. } => format!("skipped {key}"),
            });
            true
        });
        out
    }

    #[test]
    fn lists_in_s3_key_order_and_never_leaves_the_root() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("root");
        for path in ["a/x", "a-b", "b", "a/y/z", "c/.hidden"] {
            let file = root.join(path);
            fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            fs::write(&file, path).expect("write");
        }
        fs::write(dir.path().join("outside"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(root.join("b"), root.join("inside")).expect("symlink");
        assert_eq!(
            keys(&root),
            [
                "p/a-b",
                "p/a/x",
                "p/a/y/z",
                "p/b",
                "p/c/.hidden",
                "skipped p/escape",
                "p/inside"
            ]
        );
    }

    #[test]
    fn a_missing_root_is_unreadable_not_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(keys(&dir.path().join("gone")), ["unreadable p/"]);
    }
}
