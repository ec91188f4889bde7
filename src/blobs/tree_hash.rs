//! Hashing a large local file on every core without memory-mapping it. The file is split along
//! BLAKE3's own tree into subtrees; rayon's threads each read theirs with positioned reads
//! through a small buffer of their own (the kernel's copy stays in the CPU's cache until it is
//! hashed) and the subtrees' chaining values are merged up to the root.
//!
//! A memory-mapped file that shrinks while it is hashed (a `cp` over it during a sync) raises
//! SIGBUS, which kills the whole process; here a read that comes up short only fails this file.

use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::unix::fs::FileExt;

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

/// Subtrees up to this size are read and hashed by one thread.
const LEAF_BYTES: u64 = 1024 * 1024;
/// Bytes a thread reads at once (small enough to stay in the CPU's cache until hashed).
const READ_BYTES: usize = 64 * 1024;

thread_local! {
    /// This thread's read buffer (rayon's threads keep theirs between files).
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The BLAKE3 hash of the first `len` bytes of `file`, read on rayon's threads. Fails when the
/// file holds fewer than `len` bytes by the time a range is read.
pub fn hash_prefix(file: &File, len: u64) -> std::io::Result<blake3::Hash> {
    if len <= LEAF_BYTES {
        return Ok(leaf(file, 0, len)?.finalize());
    }
    let (left, right) = halves(file, 0, len)?;
    Ok(merge_subtrees_root(&left, &right, Mode::Hash))
}

/// The chaining value of the subtree of `len` bytes at `offset` (a subtree of the whole file's
/// tree, as [`halves`] splits it).
fn subtree(file: &File, offset: u64, len: u64) -> std::io::Result<ChainingValue> {
    if len <= LEAF_BYTES {
        return Ok(leaf(file, offset, len)?.finalize_non_root());
    }
    let (left, right) = halves(file, offset, len)?;
    Ok(merge_subtrees_non_root(&left, &right, Mode::Hash))
}

/// The chaining values of the two halves BLAKE3's tree splits `len` bytes at `offset` into
/// (the left one a power of two of chunks), each computed on whichever rayon thread is free.
fn halves(file: &File, offset: u64, len: u64) -> std::io::Result<(ChainingValue, ChainingValue)> {
    let left = left_subtree_len(len);
    let (left_cv, right_cv) = rayon_core::join(
        || subtree(file, offset, left),
        || subtree(file, offset + left, len - left),
    );
    Ok((left_cv?, right_cv?))
}

/// A hasher that has read the `len` bytes of `file` at `offset`, as the subtree starting there.
fn leaf(file: &File, offset: u64, len: u64) -> std::io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    read_range(file, offset, len, &mut hasher)?;
    Ok(hasher)
}

/// Feeds `len` bytes of `file` at `offset` to `hasher`, through this thread's buffer.
fn read_range(file: &File, offset: u64, len: u64, hasher: &mut blake3::Hasher) -> std::io::Result<()> {
    BUFFER.with_borrow_mut(|buffer| {
        buffer.resize(READ_BYTES, 0);
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let wanted = usize::try_from(end - at).unwrap_or(usize::MAX).min(READ_BYTES);
            match file.read_at(&mut buffer[..wanted], at) {
                Ok(0) => {
                    return Err(Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "the file changed while it was read: it ends before byte {end}, at byte {at} or earlier"
                        ),
                    ));
                }
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    at += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_split_of_the_tree_gives_blake3s_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let chunk = blake3::CHUNK_LEN as u64;
        let sizes = [
            0,
            1,
            chunk,
            chunk + 1,
            LEAF_BYTES - 1,
            LEAF_BYTES,
            LEAF_BYTES + 1,
            LEAF_BYTES + chunk,
            2 * LEAF_BYTES,
            3 * LEAF_BYTES + 17,
            4 * LEAF_BYTES + 5,
            9 * LEAF_BYTES + chunk - 1,
        ];
        for size in sizes {
            let bytes = content(size);
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &bytes).expect("write");
            let file = File::open(&path).expect("open");
            let hash = hash_prefix(&file, size).expect("hash");
            assert_eq!(hash, blake3::hash(&bytes), "size {size}");
        }
        // Only the prefix counts: a file that grew while it was hashed.
        let path = dir.path().join("grown");
        let bytes = content(5 * LEAF_BYTES);
        std::fs::write(&path, &bytes).expect("write");
        let file = File::open(&path).expect("open");
        let hash = hash_prefix(&file, 3 * LEAF_BYTES).expect("hash");
        assert_eq!(hash, blake3::hash(&bytes[..3 * LEAF_BYTES as usize]));
    }

    #[test]
    fn a_file_that_shrank_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("shrunk");
        std::fs::write(&path, content(3 * LEAF_BYTES)).expect("write");
        let file = File::open(&path).expect("open");
        // As if the file had 8 MiB when it was listed and opened, then was cut to 3 MiB.
        let error = hash_prefix(&file, 8 * LEAF_BYTES).expect_err("a short file");
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("changed while it was read"), "{error}");
    }
}
