//! Page sizes and opaque keyset cursors shared by every list endpoint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::Invalid;

/// The page size when the client names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Checks a requested page size and applies the default.
pub fn page_size(requested: Option<u32>) -> Result<u32, Invalid> {
    match requested {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(0) => Err(Invalid::new("must be at least 1")),
        Some(n) if n > MAX_PAGE_SIZE => Err(Invalid::new(format!("must be at most {MAX_PAGE_SIZE}, got {n}"))),
        Some(n) => Ok(n),
    }
}

/// The sort key of the row a page starts after.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// A text column (names, titles).
    Text(String),
    /// A number column (times in microseconds, sizes).
    Int(i64),
}

/// The position after the last row of a page: the sort key of that row and its id, plus the
/// ordering it was taken under, so a token cannot be replayed against another ordering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The ordering the token belongs to, e.g. `name:asc`.
    pub order: String,
    /// The sort key of the last row (a string or a number, by ordering).
    pub key: serde_json::Value,
    /// The id of the last row, the tie-breaker.
    pub id: String,
}

impl Cursor {
    /// Encodes the cursor as an opaque, URL-safe token.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings and a JSON value cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token and checks it was issued for `order`.
    pub fn decode(token: &str, order: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("not a token this server issued; omit it to start from the first page");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.order != order {
            return Err(Invalid::new(format!(
                "issued for ordering `{}`, not `{order}`; keep order_by and desc the same while paging",
                cursor.order
            )));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size(None), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(Some(1000)), Ok(1000));
        assert!(page_size(Some(1001)).is_err());
        assert!(page_size(Some(0)).is_err());
    }

    #[test]
    fn cursor_round_trips_and_rejects_other_orderings() {
        let cursor = Cursor {
            order: "name:asc".into(),
            key: serde_json::json!("b"),
            id: "x".into(),
        };
        let token = cursor.encode();
        assert_eq!(Cursor::decode(&token, "name:asc"), Ok(cursor));
        assert!(Cursor::decode(&token, "name:desc").is_err());
        assert!(Cursor::decode("not-a-token", "name:asc").is_err());
    }
}
