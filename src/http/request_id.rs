//! Request ids: every request gets one (the client's `X-Request-Id` when it is a plain token of
//! at most 128 characters, else a new UUIDv7). It goes back in the answer's `X-Request-Id`, into
//! every log line of the request (the request's span carries it) and into error bodies.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// The header that carries a request's id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a client.
const MAX_LEN: usize = 128;

tokio::task_local! {
    /// The id of the request being handled by this task.
    static CURRENT: String;
}

/// The id of the request this task is handling, if any (for error bodies).
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Gives the request its id (the client's, or a new one) for everything that handles it, and
/// returns it in the answer's header.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        req.headers_mut().insert(HEADER, value.clone());
    }
    let mut response = CURRENT.scope(id, next.run(req)).await;
    if let Some(value) = value {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Whether a client's id may be used as it is: 1–128 ASCII letters, digits and `-_.:/+=`
/// (nothing that could break a log line).
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_tokens_are_taken_from_clients() {
        assert!(acceptable("01a24b26-7f3e-7c3b-9d2f-1a2b3c4d5e6f"));
        assert!(acceptable("trace/abc:1+2=3"));
        assert!(!acceptable(""));
        assert!(!acceptable("two words"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}
