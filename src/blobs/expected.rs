//! Reads that serve an object only while it is the object the catalog describes. A file in a
//! bucket can change under the catalog at any time (an edit, a truncation, a rename over it);
//! serving it then would hand a client bytes that are not the item under the item's size and
//! ETag. So an object is checked against the catalog's record when it is opened (a mismatch is
//! [`BlobError::Changed`]), and a stream that delivers fewer or more bytes than recorded, or
//! whose file changed while it was read, ends with an error in place of its last chunk, so the
//! connection is cut and no client can take what it got for a whole object.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::{BlobError, ByteStream};
use crate::domain::fingerprint::Fingerprint;

/// What the catalog records of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its size in bytes.
    pub size: u64,
    /// Its fingerprint at the last sync, when it was synced.
    pub fingerprint: Option<Fingerprint>,
}

impl Expected {
    /// How many bytes a read of `range` (the whole object when `None`) must deliver.
    pub fn length_of(&self, range: Option<&std::ops::Range<u64>>) -> u64 {
        match range {
            Some(r) => r.end.min(self.size).saturating_sub(r.start),
            None => self.size,
        }
    }

    /// Fails with [`BlobError::Changed`] unless `current` (seen when the object was opened)
    /// shows the recorded version: the same size, and every part both sides know equal.
    /// Modification times compare exactly for local files (`exact_mtime`) and to the second for
    /// cloud stores, whose listings and downloads give them at different precisions.
    pub fn check(&self, key: &str, current: &Fingerprint, exact_mtime: bool) -> Result<(), BlobError> {
        let changed = |what: String| Err(BlobError::Changed(format!("`{key}` changed: {what}")));
        if current.size != self.size {
            return changed(format!(
                "it is {} bytes now; the catalog recorded {}",
                current.size, self.size
            ));
        }
        let Some(recorded) = &self.fingerprint else {
            return Ok(());
        };
        let differ = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        if differ(&current.etag, &recorded.etag) || differ(&current.version, &recorded.version) {
            return changed("its ETag or version is not the one the catalog recorded".into());
        }
        let seconds = |micros: i64| micros.div_euclid(1_000_000);
        if let (Some(now), Some(then)) = (current.modified_micros, recorded.modified_micros) {
            let same = if exact_mtime {
                now == then
            } else {
                seconds(now) == seconds(then)
            };
            if !same {
                return changed("it was modified after the catalog recorded it".into());
            }
        }
        Ok(())
    }
}

/// A check run when a stream has read its last byte: `Err` with what changed.
pub type Recheck = Box<dyn FnMut() -> Result<(), String> + Send>;

/// Wraps `body`, which must yield exactly `want` bytes of object `key`. The last chunk is held
/// back until the stream ended with the right count and `recheck` (if any) passed; otherwise
/// the stream ends with an error instead.
pub fn exactly(body: ByteStream<'static>, want: u64, key: &str, recheck: Option<Recheck>) -> ByteStream<'static> {
    Box::pin(Exactly {
        body,
        left: want,
        held: None,
        recheck,
        key: key.to_owned(),
        done: false,
    })
}

struct Exactly {
    body: ByteStream<'static>,
    left: u64,
    held: Option<Bytes>,
    recheck: Option<Recheck>,
    key: String,
    done: bool,
}

impl Exactly {
    fn fail(&mut self, why: String) -> Poll<Option<std::io::Result<Bytes>>> {
        self.done = true;
        self.held = None;
        tracing::warn!(key = %self.key, %why, "a download was cut off: the object changed while it was read");
        Poll::Ready(Some(Err(std::io::Error::other(format!(
            "`{}` changed while it was read ({why}); the transfer is incomplete",
            self.key
        )))))
    }
}

impl Stream for Exactly {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let len = chunk.len() as u64;
                    if len > this.left {
                        return this.fail("it grew".into());
                    }
                    this.left -= len;
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(None) => {
                    if this.left > 0 {
                        let short = this.left;
                        return this.fail(format!("{short} bytes fewer than recorded"));
                    }
                    if let Some(recheck) = this.recheck.as_mut()
                        && let Err(why) = recheck()
                    {
                        return this.fail(why);
                    }
                    this.done = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn body(chunks: &[&'static [u8]]) -> ByteStream<'static> {
        let chunks: Vec<std::io::Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn collect(stream: ByteStream<'static>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    #[tokio::test]
    async fn only_the_recorded_length_ends_cleanly_and_a_failure_replaces_the_last_chunk() {
        assert_eq!(
            collect(exactly(body(&[b"ab", b"cd"]), 4, "k", None)).await,
            (b"abcd".to_vec(), true)
        );
        assert_eq!(collect(exactly(body(&[]), 0, "k", None)).await, (Vec::new(), true));
        assert_eq!(
            collect(exactly(body(&[b"ab", b"cd"]), 5, "k", None)).await,
            (b"ab".to_vec(), false),
            "short: the last chunk is never sent"
        );
        assert_eq!(
            collect(exactly(body(&[b"ab", b"cd"]), 3, "k", None)).await,
            (Vec::new(), false),
            "grown: fails at the chunk past the end, and drops the one it held"
        );
        let recheck: Recheck = Box::new(|| Err("modified".into()));
        assert_eq!(
            collect(exactly(body(&[b"ab", b"cd"]), 4, "k", Some(recheck))).await,
            (b"ab".to_vec(), false)
        );
    }

    #[test]
    fn a_changed_size_etag_or_time_is_a_change() {
        let fp = |size: u64, micros: i64, etag: &str| Fingerprint {
            size,
            modified_micros: Some(micros),
            etag: Some(etag.into()),
            version: None,
        };
        let recorded = Expected {
            size: 10,
            fingerprint: Some(fp(10, 5_250_000, "e")),
        };
        assert!(recorded.check("k", &fp(10, 5_250_000, "e"), true).is_ok());
        assert!(
            recorded.check("k", &fp(10, 5_000_000, "e"), false).is_ok(),
            "same second"
        );
        assert!(recorded.check("k", &fp(10, 5_000_000, "e"), true).is_err());
        assert!(recorded.check("k", &fp(10, 6_250_000, "e"), false).is_err());
        assert!(recorded.check("k", &fp(11, 5_250_000, "e"), true).is_err());
        assert!(recorded.check("k", &fp(10, 5_250_000, "f"), true).is_err());
        let size_only = Expected {
            size: 10,
            fingerprint: None,
        };
        assert!(size_only.check("k", &fp(10, 1, "x"), true).is_ok());
        assert!(size_only.check("k", &fp(9, 1, "x"), true).is_err());
    }
}
