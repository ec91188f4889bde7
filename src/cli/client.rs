//! A small HTTP client for the CLI verbs: bearer auth, JSON in and out, server errors as text.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a client call failed; the message is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status}: {code}: {message}{}", .request_id.as_ref().map_or_else(String::new, |id| format!(" (request {id})")))]
    Server {
        /// HTTP status.
        status: StatusCode,
        /// The error code from the body.
        code: String,
        /// The server's message.
        message: String,
        /// The request's id, which finds the server's log lines about it.
        request_id: Option<String>,
    },
    /// The server could not be reached, or its answer could not be read; `context` says which.
    #[error("{context}")]
    Http {
        /// What failed, and what to check.
        context: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The server's answer is not JSON of the expected shape.
    #[error("unreadable answer from the server: {0}")]
    Unreadable(#[source] serde_json::Error),
    /// The server's answer, or the download, is not what the command expects.
    #[error("{0}")]
    Unexpected(String),
    /// The command was given something unusable.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The answer's body broke off.
    fn read_answer(source: reqwest::Error) -> Self {
        ClientError::Http {
            context: "cannot read the server's answer".into(),
            source,
        }
    }
}

/// Talks to one server with one key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    /// Where the key came from, for the hint a 401 gets (e.g. `--api-key or STOWAGE_API_KEY`).
    key_origin: String,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) using `key`, which came from
    /// `key_origin` (said when the server refuses it).
    pub fn new(base: &str, key: Option<String>, key_origin: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            key_origin: key_origin.into(),
        }
    }

    /// What a 401 adds: where the refused key came from, and how to give another.
    fn key_hint(&self) -> String {
        let used = match &self.key {
            Some(_) => format!("the API key from {} was refused", self.key_origin),
            None => format!("no API key was given ({})", self.key_origin),
        };
        format!(
            "{used}; pass --api-key KEY or set STOWAGE_API_KEY (a key `stowage keys create` printed, or the admin.key in the server's data directory)"
        )
    }

    /// A request to `path` (below the base URL) carrying the key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// A request to an absolute `url` without the key (a signed URL carries its own rights).
    pub fn unauthenticated(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends `req`; an error status becomes a [`ClientError::Server`] with the server's message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Http {
            context: format!(
                "cannot reach {}; is the server running there? (--server URL or STOWAGE_SERVER names another)",
                self.base
            ),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.map_err(ClientError::read_answer)?;
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v["error"][name].as_str())
                .map(str::to_owned)
        };
        let mut message =
            super::in_cli_terms(&field("message").unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()));
        if status == StatusCode::UNAUTHORIZED {
            message = format!("{message}; {}", self.key_hint());
        }
        Err(ClientError::Server {
            status,
            code: field("code").unwrap_or_else(|| "ERROR".into()),
            message,
            request_id: field("request_id"),
        })
    }

    /// Reads a JSON answer.
    pub async fn json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let bytes = resp.bytes().await.map_err(ClientError::read_answer)?;
        serde_json::from_slice(&bytes).map_err(ClientError::Unreadable)
    }

    /// Sends a request to `path` (below the base URL) with an optional JSON body and query.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let mut req = self.request(method, path).query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        Self::json(self.send(req).await?).await
    }

    /// GETs every page of the list at `path`, following `next_page_token`, and hands each
    /// item to `each`.
    pub async fn each_item(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        mut each: impl FnMut(&serde_json::Value),
    ) -> Result<(), ClientError> {
        loop {
            let page: serde_json::Value = self.call(Method::GET, path, &query, None::<&()>).await?;
            page["items"].as_array().into_iter().flatten().for_each(&mut each);
            match page["next_page_token"].as_str() {
                Some(token) => {
                    query.retain(|(k, _)| *k != "page_token");
                    query.push(("page_token", token.to_owned()));
                }
                None => return Ok(()),
            }
        }
    }
}
