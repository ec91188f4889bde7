//! Hashing a local file with BLAKE3, its first bytes inspected on the way. Every read goes
//! through a 64 KiB buffer its thread keeps: small enough that the kernel's copy is still in the
//! CPU's cache when blake3 reads it (1 MiB reads made a sync 1.5× slower), and kept because
//! allocating and zeroing one per file showed in profiles.
//!
//! A large file is hashed on every core without memory-mapping it: it is split along BLAKE3's
//! own tree into subtrees, rayon's threads each read theirs with positioned reads, and the
//! subtrees' chaining values are merged up to the root. A memory-mapped file that shrinks while
//! it is hashed (a `cp` over it during a sync) raises SIGBUS, which kills the whole process;
//! here a read that comes up short only fails this file.

use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::Path;

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

use super::listing::Hashed;

/// Files at least this large are hashed on all cores.
const PARALLEL_HASH_FROM: u64 = 4 * 1024 * 1024;
/// Subtrees up to this size are read and hashed by one thread.
const LEAF_BYTES: u64 = 1024 * 1024;
/// Bytes a thread reads at once.
const READ_BUFFER: usize = 64 * 1024;

thread_local! {
    /// This thread's read buffer (tokio's blocking threads and rayon's keep theirs between files).
    static READ_INTO: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's read buffer, at least `len` bytes long. `f` must not hash a file
/// itself (the buffer is borrowed meanwhile).
fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_INTO.with_borrow_mut(|buffer| {
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        f(buffer)
    })
}

/// Hashes a local file, handing its head (read into this thread's buffer, not kept) and its size
/// as the file system gives it to `inspect`: on all cores when large (its first `size` bytes),
/// otherwise the rest read through the same buffer up to the file's end. The size answered is
/// the bytes hashed.
pub fn hash_file<T>(
    path: &Path,
    head_bytes: usize,
    inspect: impl FnOnce(&[u8], u64) -> T,
) -> std::io::Result<Hashed<T>> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let (small, inspected) = with_buffer(READ_BUFFER.max(head_bytes), |buffer| {
        // Only the head the size promises: a file shorter than a head needs no read to find its end.
        let wanted = usize::try_from(size).unwrap_or(usize::MAX).min(head_bytes);
        let head = fill_at(&file, 0, &mut buffer[..wanted])?;
        let inspected = inspect(&buffer[..head], size);
        if size >= PARALLEL_HASH_FROM {
            return Ok::<_, Error>((None, inspected));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&buffer[..head]);
        if head == head_bytes {
            hash_to_end(&file, head as u64, &mut hasher, &mut buffer[..READ_BUFFER])?;
        }
        Ok((Some(hasher), inspected))
    })?;
    // A large file is hashed once this thread's buffer is given back.
    let (hash, hashed) = match small {
        Some(hasher) => (hasher.finalize(), hasher.count()),
        None => (hash_prefix(&file, size)?, size),
    };
    Ok(Hashed {
        checksum: hash.to_hex().to_string(),
        size: hashed,
        inspected,
    })
}

/// Hashes `file` from `offset` to its end through `buffer`.
fn hash_to_end(file: &File, mut offset: u64, hasher: &mut blake3::Hasher, buffer: &mut [u8]) -> std::io::Result<()> {
    loop {
        let filled = fill_at(file, offset, buffer)?;
        hasher.update(&buffer[..filled]);
        if filled < buffer.len() {
            return Ok(());
        }
        offset += filled as u64;
    }
}

/// Reads `file` at `offset` until `buffer` is full or the file ends; answers the bytes read.
fn fill_at(file: &File, offset: u64, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The BLAKE3 hash of the first `len` bytes of `file`, read on rayon's threads. Fails when the
/// file holds fewer than `len` bytes by the time a range is read.
fn hash_prefix(file: &File, len: u64) -> std::io::Result<blake3::Hash> {
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

/// A hasher that has read the `len` bytes of `file` at `offset`, as the subtree starting there,
/// through this thread's buffer.
fn leaf(file: &File, offset: u64, len: u64) -> std::io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    with_buffer(READ_BUFFER, |buffer| {
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let wanted = usize::try_from(end - at).unwrap_or(usize::MAX).min(READ_BUFFER);
            let filled = fill_at(file, at, &mut buffer[..wanted])?;
            if filled < wanted {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("the file changed while it was read: it has fewer than {end} bytes now"),
                ));
            }
            hasher.update(&buffer[..filled]);
            at += filled as u64;
        }
        Ok(hasher)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn hash_file_reads_every_byte_across_head_buffer_and_parallel_sizes() {
        let dir = tempfile::tempdir().expect("tmp");
        // One thread, one buffer: a large head first grows it, smaller ones then reuse it.
        for head_bytes in [2 * READ_BUFFER, READ_BUFFER, 100] {
            let sizes = [
                0,
                1,
                head_bytes - 1,
                head_bytes,
                head_bytes + 1,
                head_bytes + READ_BUFFER,
                3 * READ_BUFFER + 17,
                PARALLEL_HASH_FROM as usize + 5,
            ];
            for size in sizes {
                let bytes = content(size as u64);
                let path = dir.path().join(format!("f{size}"));
                std::fs::write(&path, &bytes).expect("write");
                let hashed = hash_file(&path, head_bytes, |head, size| (head.to_vec(), size)).expect("hash");
                let case = format!("head {head_bytes}, size {size}");
                assert_eq!(hashed.checksum, blake3::hash(&bytes).to_hex().to_string(), "{case}");
                assert_eq!(hashed.size, size as u64, "{case}");
                assert_eq!(
                    hashed.inspected,
                    (bytes[..size.min(head_bytes)].to_vec(), size as u64),
                    "{case}"
                );
            }
        }
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
