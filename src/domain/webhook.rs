//! Webhooks: the events a receiver may subscribe to (jobs that finished, items made, changed,
//! tombstoned or deleted), what makes a receiver URL acceptable
//! (http or https, and by default no address on the machine's own or a private network), and
//! the signature a receiver checks.

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::Invalid;

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    /// A job ended (DONE, ERROR or CANCELLED), whatever its kind.
    #[serde(rename = "job.finished")]
    JobFinished,
    /// A sync ended, with its counts.
    #[serde(rename = "sync.finished")]
    SyncFinished,
    /// An import ended, with its counts.
    #[serde(rename = "import.finished")]
    ImportFinished,
    /// An item was made: uploaded, found by a sync, imported.
    #[serde(rename = "item.created")]
    ItemCreated,
    /// An item's content changed: replaced by an upload, changed in its bucket.
    #[serde(rename = "item.updated")]
    ItemUpdated,
    /// A synced item's object is gone from its bucket: the item is a tombstone.
    #[serde(rename = "item.tombstoned")]
    ItemTombstoned,
    /// An item was deleted: into the trash, or for good (`permanent`).
    #[serde(rename = "item.deleted")]
    ItemDeleted,
}

impl EventKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [EventKind; 7] = [
        EventKind::JobFinished,
        EventKind::SyncFinished,
        EventKind::ImportFinished,
        EventKind::ItemCreated,
        EventKind::ItemUpdated,
        EventKind::ItemTombstoned,
        EventKind::ItemDeleted,
    ];

    /// The stored and shown name, e.g. `job.finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::JobFinished => "job.finished",
            EventKind::SyncFinished => "sync.finished",
            EventKind::ImportFinished => "import.finished",
            EventKind::ItemCreated => "item.created",
            EventKind::ItemUpdated => "item.updated",
            EventKind::ItemTombstoned => "item.tombstoned",
            EventKind::ItemDeleted => "item.deleted",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            Invalid::new(format!("`{text}` is not a webhook event; one of: {}", names.join(", ")))
        })
    }
}

/// Why an item event happened when the change was not made to the item itself (sent as the
/// event's `cause`; events without one tell of a change to the item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemCause {
    /// Its folder (or one above) was renamed, moved or deleted, and the item with it.
    Folder,
    /// It was brought back from the trash (on its own or with its folder).
    Restore,
    /// Its time to live ran out (or its folder's).
    Expiry,
    /// It was removed from the trash for good because its time there ran out.
    TrashPurge,
    /// A re-encode made its rendition.
    Rendition,
}

impl ItemCause {
    /// The name receivers see.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemCause::Folder => "folder",
            ItemCause::Restore => "restore",
            ItemCause::Expiry => "expiry",
            ItemCause::TrashPurge => "trash_purge",
            ItemCause::Rendition => "rendition",
        }
    }
}

/// The longest receiver URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks a receiver URL: absolute `http` or `https` with a host, no credentials in it, at
/// most [`MAX_URL_BYTES`]; an address written into it must be one [`reachable`] allows.
pub fn check_url(text: &str, allow_private: bool) -> Result<url::Url, Invalid> {
    if text.len() > MAX_URL_BYTES {
        return Err(Invalid::new(format!("at most {MAX_URL_BYTES} bytes")));
    }
    let url = url::Url::parse(text).map_err(|e| Invalid::new(format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Invalid::new(format!("`{text}` must be an http:// or https:// URL")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "must not carry credentials; the receiver checks the signature instead",
        ));
    }
    let literal = match url.host() {
        None => return Err(Invalid::new(format!("`{text}` has no host"))),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = literal
        && !reachable(ip, allow_private)
    {
        return Err(Invalid::new(format!(
            "{ip} is on this machine's own, a private or a reserved network; receivers must be public (an operator may allow private networks with webhooks.allow_private_networks)"
        )));
    }
    Ok(url)
}

/// Whether a delivery may go to `ip`: any public address; loopback, private (RFC 1918, unique
/// local), link-local (cloud metadata services live there), shared (CGNAT), unspecified,
/// multicast, broadcast and documentation addresses only with `allow_private`.
pub fn reachable(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => reachable(IpAddr::V4(v4), false),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

/// The `Stowage-Signature` header of a delivery of `body` at `timestamp` (Unix seconds):
/// `t=TIMESTAMP,v1=HEX`, HEX being HMAC-SHA256 with the webhook's secret over
/// `TIMESTAMP.BODY`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_from_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Ok(kind));
        }
        assert!(EventKind::parse("item.exploded").is_err());
    }

    #[test]
    fn receivers_must_be_public_unless_allowed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = private.parse().expect("ip");
            assert!(!reachable(ip, false), "{private}");
            assert!(reachable(ip, true), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(reachable(public.parse().expect("ip"), false), "{public}");
        }
        assert!(check_url("http://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check_url("http://[::1]:8080/hook", false).is_err());
        assert!(check_url("ftp://example.com/hook", false).is_err());
        assert!(check_url("https://user:pw@example.com/hook", false).is_err());
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_and_body() {
        // What Python's hmac module computes for HMAC-SHA256(b"key", b"1.{}").
        let signed = signature("key", 1, b"{}");
        assert_eq!(
            signed,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(signature("other", 1, b"{}"), signed);
        assert_ne!(signature("key", 2, b"{}"), signed);
    }
}
