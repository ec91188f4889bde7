//! Serving one item's content over HTTP: `GET /v1/items/{id}/content`, and what the daemon's
//! own signed URLs answer with the same headers (`ETag`, one `Range`, `Content-Disposition`).

use std::ops::Range;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::blobs::ByteStream;
use crate::domain::item::{content_disposition, portable_file_name};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{IdPath, StrictQuery};
use crate::services::ServiceError;
use crate::services::items::{ItemService, Served, served};

/// Query of `GET /v1/items/{id}/content`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContentParams {
    /// For a re-encoded video, the source object instead of the rendition.
    pub original: Option<bool>,
    /// `all`: every frame of an image group, image sequence or DICOM series, as one tar (a
    /// directory named by the title holding `0000_NAME`, `0001_NAME`, … in order).
    pub frames: Option<Frames>,
}

/// Which frames of a multi-object item to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frames {
    /// All of them.
    All,
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeAsk {
    /// No usable single range: send everything (200).
    Whole,
    /// These bytes (206).
    Part(Range<u64>),
    /// A range that lies outside the object (416).
    Unsatisfiable,
}

/// Reads a `Range` header. Only one `bytes` range is served; anything else (several ranges,
/// another unit, bad syntax) is ignored as RFC 9110 allows, and the whole object is sent.
fn range_ask(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), parse(first), parse(last)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(size.saturating_sub(n)..size)
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|e| e < start) {
                return RangeAsk::Whole;
            }
            if start >= size {
                return RangeAsk::Unsatisfiable;
            }
            let end = end.map_or(size, |e| e.saturating_add(1).min(size));
            RangeAsk::Part(start..end)
        }
        _ => RangeAsk::Whole,
    }
}

/// Builds a header value from text this module produced (always valid).
pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Download an item's content (a re-encoded video's rendition unless `original=true`): streamed,
/// with `ETag` (the blake3 checksum) and single-range `Range` support; with `frames=all`, every
/// frame of an image group, image sequence or DICOM series as one tar.
#[utoipa::path(get, path = "/items/{id}/content", tag = "items", params(("id" = Uuid, Path), ContentParams,
    ("Range" = Option<String>, Header, description = "one range, e.g. `bytes=0-1023`, `bytes=100-` or `bytes=-500`")), responses(
    (status = 200, description = "the whole content, as the item's MIME type (a tar with `frames=all`)", content_type = "*/*"),
    (status = 400, body = ErrorBody, description = "`frames=all` for an item of one file"),
    (status = 206, description = "the requested range", content_type = "*/*"),
    (status = 304, description = "`If-None-Match` matches the ETag"),
    (status = 404, body = ErrorBody), (status = 416, body = ErrorBody, description = "the range lies outside the content"),
))]
pub async fn item_content(
    State(state): State<AppState>,
    Auth(caller): Auth,
    StrictQuery(q): StrictQuery<ContentParams>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let items = &state.services.items;
    let item = items.readable(&caller, id).await?;
    if q.frames == Some(Frames::All) {
        if item.frames.is_empty() {
            return Err(ServiceError::Invalid(format!(
                "frames=all: item {id} is one file, not an image group, image sequence or DICOM series; leave frames out"
            ))
            .into());
        }
        // The frames themselves (`original`), also of an image sequence that has its video.
        let stream = items.archive(&caller, vec![id], false, true).await?;
        return Ok(tar_response(stream, false, &portable_file_name(&item.title)));
    }
    let content = served(&item, q.original.unwrap_or(false));
    serve(items, &content, &headers).await
}

/// A streamed tar (tar.gz with `gzip`) answered as a download named `STEM.tar` (`.tar.gz`).
pub(crate) fn tar_response(stream: ByteStream<'static>, gzip: bool, stem: &str) -> Response {
    let (mime, extension) = match gzip {
        true => ("application/gzip", "tar.gz"),
        false => ("application/x-tar", "tar"),
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(mime)),
        (
            CONTENT_DISPOSITION,
            header_value(&content_disposition("attachment", &format!("{stem}.{extension}"))),
        ),
    ];
    (headers, Body::from_stream(stream)).into_response()
}

/// Answers a GET of `content` (streamed, with `ETag`, `If-None-Match` and one `Range`) for
/// `GET /v1/items/{id}/content` and the daemon's signed URLs alike.
pub(crate) async fn serve(items: &ItemService, content: &Served, headers: &HeaderMap) -> Result<Response, ApiError> {
    let size = u64::try_from(content.size).unwrap_or_default();
    let etag = content.checksum.as_deref().map(|c| format!("\"{c}\""));
    let mut out = HeaderMap::new();
    if let Some(etag) = &etag {
        out.insert(ETAG, header_value(etag));
        let matches = headers
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if matches {
            return Ok((StatusCode::NOT_MODIFIED, out).into_response());
        }
    }
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let ask = range_ask(headers.get(RANGE).and_then(|v| v.to_str().ok()), size);
    let (status, range) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0..size),
        RangeAsk::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        RangeAsk::Unsatisfiable => {
            out.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            let err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("the content has {size} bytes; ask for a range that starts below {size}"),
            );
            return Ok((out, err).into_response());
        }
    };
    if status == StatusCode::PARTIAL_CONTENT {
        let last = range.end.saturating_sub(1);
        out.insert(
            CONTENT_RANGE,
            header_value(&format!("bytes {}-{last}/{size}", range.start)),
        );
    }
    out.insert(CONTENT_TYPE, header_value(&content.mime_type));
    out.insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    out.insert(
        CONTENT_DISPOSITION,
        header_value(&content_disposition("inline", &content.file_name)),
    );
    let body = items
        .read_content(content, (status == StatusCode::PARTIAL_CONTENT).then_some(range))
        .await?;
    Ok((status, out, Body::from_stream(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let ask = |h: &str| range_ask(Some(h), 100);
        assert_eq!(ask("bytes=0-9"), RangeAsk::Part(0..10));
        assert_eq!(ask("bytes=90-"), RangeAsk::Part(90..100));
        assert_eq!(ask("bytes=90-1000"), RangeAsk::Part(90..100));
        assert_eq!(ask("bytes=-10"), RangeAsk::Part(90..100));
        assert_eq!(ask("bytes=-1000"), RangeAsk::Part(0..100));
        assert_eq!(ask("bytes=100-"), RangeAsk::Unsatisfiable);
        assert_eq!(ask("bytes=-0"), RangeAsk::Unsatisfiable);
        assert_eq!(ask("bytes=5-1"), RangeAsk::Whole);
        assert_eq!(ask("bytes=0-1,5-6"), RangeAsk::Whole);
        assert_eq!(ask("items=0-1"), RangeAsk::Whole);
        assert_eq!(ask("bytes=x-1"), RangeAsk::Whole);
        assert_eq!(range_ask(None, 100), RangeAsk::Whole);
        assert_eq!(range_ask(Some("bytes=0-"), 0), RangeAsk::Unsatisfiable);
    }
}
