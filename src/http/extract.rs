//! Strict extractors: query strings that reject unknown parameters, JSON bodies whose errors
//! name the field, and ids that must be UUIDs. Every rejection is an `ApiError`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;

/// A query string deserialized into `T`, which should `deny_unknown_fields` so an unknown
/// parameter is a 400 listing the valid ones.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad_request(format!(
                "query parameter `{}`: {NO_NUL}",
                name.replace('\0', "\\0")
            )));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(StrictQuery).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ApiError::bad_request(format!("query string: {inner}"))
            } else {
                ApiError::bad_request(format!("query parameter `{path}`: {inner}"))
            }
        })
    }
}

/// For routes that take no query parameters: any parameter is a 400.
pub struct NoQuery;

/// The empty set of query parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match StrictQuery::<Nothing>::from_request_parts(parts, state).await {
            Ok(_) => Ok(NoQuery),
            Err(_) => Err(ApiError::bad_request(format!(
                "{} takes no query parameters; remove `?{}`",
                parts.uri.path(),
                parts.uri.query().unwrap_or_default()
            ))),
        }
    }
}

/// A JSON body deserialized into `T`; errors name the JSON path of the problem, bodies over the
/// limit are 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = declared_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        declared?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Checks that a request declares a JSON body (`Content-Type: application/json`, or another
/// `+json` type); 415 otherwise. (Asked only once a body is there: an empty one needs no type.)
fn declared_json(req: &Request) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        return Ok(());
    }
    let got = if declared.is_empty() {
        "none".to_owned()
    } else {
        format!("`{declared}`")
    };
    Err(ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        format!("send the body as JSON with `Content-Type: application/json` (got {got})"),
    ))
}

/// Reads a request body, mapping an over-size body to 413.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    limited_body(
        req,
        state,
        "request body is over the size limit (server.max_body_bytes)",
    )
    .await
}

/// An import spec as sent, up to the route's body limit (`import.max_spec_bytes`); a larger one
/// is 413.
pub struct SpecBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for SpecBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let message = "the spec is over the size limit (import.max_spec_bytes); split it into several imports";
        let declared = declared_json(&req);
        let bytes = limited_body(req, state, message).await?;
        if !bytes.is_empty() {
            declared?;
        }
        Ok(SpecBody(bytes))
    }
}

/// Reads a request body; over the route's limit is a 413 saying `too_large`.
async fn limited_body<S: Send + Sync>(req: Request, state: &S, too_large: &str) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(too_large)
        } else {
            ApiError::bad_request(format!("cannot read request body: {rejection}"))
        }
    })
}

/// Deserializes a JSON body; errors name the JSON path of the problem. A whole number written
/// with a fraction (`3.0`) is a whole number, as JSON Schema's `integer` says.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    if !value.is_object() {
        // serde would also read a struct from an array of its fields, in order.
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    if let Some(path) = path_to_nul(&value) {
        return Err(ApiError::bad_request(format!("{path}: {NO_NUL}")));
    }
    whole_numbers_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("malformed JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("{path}: {inner}"))
        }
    })
}

/// Why text with a NUL character is refused, wherever it is (PostgreSQL cannot store one, and
/// both databases must take the same requests).
const NO_NUL: &str = "text must not contain NUL characters (\\u0000)";

/// The JSON path (`client_metadata.tags[2]`) of the first string or key in `value` that holds a
/// NUL character.
fn path_to_nul(value: &serde_json::Value) -> Option<String> {
    nul_steps(value).map(|steps| steps.trim_start_matches('.').to_owned())
}

/// The steps (`.key`, `[index]`) from `value` down to the first NUL character in it.
fn nul_steps(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(String::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_steps(item).map(|rest| format!("[{i}]{rest}"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(format!(".{}", key.replace('\0', "\\u0000")));
            }
            nul_steps(item).map(|rest| format!(".{key}{rest}"))
        }),
        _ => None,
    }
}

/// Rewrites every number of `value` that is whole and exactly representable (`3.0`, `-7e2`)
/// as an integer, so integer fields accept it.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    /// Beyond 2^53 a float no longer says which integer it means.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = declared_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        declared?;
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// The `{id}` segment of a route, which must be a UUID.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("path: {e}")))?;
        parse_id(&raw).map(IdPath)
    }
}

/// Reads an id a client put in a path; a 400 that shows the form otherwise.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request(format!(
            "`{raw}` is not a valid id; ids are UUIDs such as 0190f1c2-7a4e-7c3b-9d2f-1a2b3c4d5e6f"
        ))
    })
}

/// The optional `Idempotency-Key` header of a job submission.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(value) => value
                .to_str()
                .map(|key| IdempotencyKey(Some(key.trim().to_owned())))
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII text")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::path_to_nul;

    #[test]
    fn a_nul_anywhere_in_a_body_is_found_by_its_path() {
        assert_eq!(path_to_nul(&json!({"name": "ok", "tags": ["a"]})), None);
        assert_eq!(
            path_to_nul(&json!({"description": "x\u{0}y"})).as_deref(),
            Some("description")
        );
        assert_eq!(
            path_to_nul(&json!({"client_metadata": {"tags": ["a", "b\u{0}"]}})).as_deref(),
            Some("client_metadata.tags[1]")
        );
        assert_eq!(
            path_to_nul(&json!({"client_metadata": {"k\u{0}": 1}})).as_deref(),
            Some("client_metadata.k\\u0000")
        );
    }
}
