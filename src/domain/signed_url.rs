//! The tokens of the URLs the daemon signs itself (`/o/TOKEN`, for objects in `file://`
//! buckets, which cannot sign): what a token grants, and its form `PAYLOAD.SIGNATURE`. Both
//! parts are base64url without padding; PAYLOAD is the JSON of a [`Grant`], SIGNATURE the
//! HMAC-SHA256 of `stowage-url-v1.PAYLOAD` keyed with the catalog's signing secret. A token
//! names its object and carries what a download of it answers (type, file name, size,
//! checksum), so serving it reads nothing from the catalog.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::fingerprint::Fingerprint;

/// What the signature covers besides the payload: the scheme's version.
const CONTEXT: &[u8] = b"stowage-url-v1.";

/// What a signed URL lets its holder read, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The bucket that holds the object.
    #[serde(rename = "b")]
    pub bucket: String,
    /// The object's key there.
    #[serde(rename = "k")]
    pub key: String,
    /// Bytes, as the catalog recorded them.
    #[serde(rename = "s")]
    pub size: i64,
    /// blake3, lowercase hex (the ETag).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The object's fingerprint at its last sync (synced objects), which a read holds it to.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The MIME type answered.
    #[serde(rename = "t")]
    pub mime_type: String,
    /// The file name answered (`Content-Disposition`).
    #[serde(rename = "n")]
    pub file_name: String,
    /// When it stops working, in Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    /// A PUT of the object's content (a direct upload of exactly `size` bytes) rather than a
    /// read of it.
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    pub upload: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a token this catalog signed (malformed, altered, or signed with another secret).
    #[error("this is not a valid signed URL; ask for a new one")]
    Invalid,
    /// A genuine token whose time is up.
    #[error("this signed URL expired; ask for a new one")]
    Expired,
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(CONTEXT);
    mac.update(payload.as_bytes());
    mac
}

/// The token of `grant`, signed with `secret`.
pub fn sign(secret: &[u8], grant: &Grant) -> String {
    let json = serde_json::to_vec(grant).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The grant of `token` if `secret` signed it and it has not expired at `now` (Unix seconds).
/// The signature is checked first (in constant time), so nothing of an altered token is read.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Grant, Refused> {
    let (payload, signature) = token.split_once('.').ok_or(Refused::Invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Refused::Invalid)?;
    mac(secret, payload)
        .verify_slice(&signature)
        .map_err(|_| Refused::Invalid)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Refused::Invalid)?;
    let grant: Grant = serde_json::from_slice(&json).map_err(|_| Refused::Invalid)?;
    if grant.expires <= now {
        return Err(Refused::Expired);
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            bucket: "managed".into(),
            key: "ab/0123".into(),
            size: 5,
            checksum: Some("c0ffee".into()),
            fingerprint: None,
            mime_type: "text/plain".into(),
            file_name: "a.txt".into(),
            expires: 1_000,
            upload: false,
        }
    }

    #[test]
    fn a_token_opens_until_it_expires_and_only_with_its_secret() {
        let token = sign(b"secret", &grant());
        assert_eq!(verify(b"secret", &token, 999), Ok(grant()));
        assert_eq!(verify(b"secret", &token, 1_000), Err(Refused::Expired));
        assert_eq!(verify(b"other", &token, 999), Err(Refused::Invalid));
    }

    #[test]
    fn an_altered_token_is_refused() {
        let token = sign(b"secret", &grant());
        let (payload, signature) = token.split_once('.').expect("two parts");
        let mut longer = grant();
        longer.expires = 9_999;
        let forged = sign(b"guess", &longer);
        let forged_payload = forged.split_once('.').expect("two parts").0;
        for bad in [
            format!("{forged_payload}.{signature}"),
            format!("{payload}.{}", &signature[1..]),
            format!("{payload}x.{signature}"),
            payload.to_owned(),
            String::new(),
            ".".into(),
        ] {
            assert_eq!(verify(b"secret", &bad, 999), Err(Refused::Invalid), "{bad}");
        }
    }
}
