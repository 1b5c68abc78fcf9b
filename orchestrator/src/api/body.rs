//! Request bodies: read whole up to the API's limit, and decoded by their
//! media type with bounded work.
//!
//! A body over the limit is answered with a `RequestEntityTooLarge` Status.
//! The rest of the upload is read and thrown away first (up to a bound),
//! because a server that answers and closes while the client is still
//! sending resets the connection, and the client never reads the answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::registry::{Error, Result};

/// The largest request body accepted (the API server's own limit, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of an oversized upload is read (and dropped) so the client
/// gets its answer; past this the connection is closed instead.
const DRAIN_BYTES: usize = 16 * MAX_BODY_BYTES;
/// How long that reading may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The media types an object body may have.
const OBJECT_MEDIA_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// A whole request body of at most [`MAX_BODY_BYTES`].
#[derive(Debug)]
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        read(&parts.headers, body, MAX_BODY_BYTES)
            .await
            .map(ApiBody)
            .map_err(IntoResponse::into_response)
    }
}

/// Reads `body` whole, or fails with 413 once it passes `limit`.
async fn read(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes> {
    let too_large = || Error::TooLarge(format!("limit is {limit}"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // A client waiting for `100 Continue` has sent nothing yet, and
        // will not once it reads the answer.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits {
            drain(body).await;
        }
        return Err(too_large());
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::BadRequest(format!("error reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len() + data.len() > limit {
            drain(body).await;
            return Err(too_large());
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

/// Reads and drops what is left of an upload, within bounds.
async fn drain(mut body: Body) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            let size = frame.data_ref().map_or(0, Bytes::len);
            match left.checked_sub(size) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    })
    .await;
}

/// The request's `Content-Type`, `application/json` when there is none
/// (as the API server takes it).
pub(super) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

/// The media type alone: no parameters, lower case.
fn media_type(headers: &HeaderMap) -> String {
    content_type(headers)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body (JSON, YAML or Kubernetes protobuf) whose
/// OpenAPI schema is `schema`; other media types are 415.
pub(super) fn decode_object(headers: &HeaderMap, body: &[u8], schema: &str) -> Result<Value> {
    match media_type(headers).as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("error decoding request body as JSON: {e}"))),
        "application/yaml" => crate::yaml::from_slice_bounded(body, crate::yaml::budget_for(body))
            .map_err(|e| match e {
                crate::yaml::Error::TooLarge { .. } => Error::TooLarge(e.to_string()),
                crate::yaml::Error::Syntax(e) => {
                    Error::BadRequest(format!("error decoding YAML body: {e}"))
                }
            }),
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body, schema)
            .map_err(|e| Error::BadRequest(format!("error decoding protobuf body: {e}"))),
        _ => Err(Error::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: {OBJECT_MEDIA_TYPES}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_whole() {
        let body = Body::from(vec![b'x'; 100]);
        assert_eq!(read(&HeaderMap::new(), body, 100).await.unwrap().len(), 100);
    }

    /// Regression: an oversized upload was answered mid-upload (HTTP/1.1
    /// closed without an answer); now the rest is read and a 413 Status
    /// given.
    #[tokio::test]
    async fn an_oversized_stream_is_drained_and_refused() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        for _ in 0..10 {
            tx.unbounded_send(Ok(Bytes::from(vec![b'x'; 64]))).unwrap();
        }
        drop(tx);
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = consumed.clone();
        let body = Body::from_stream(rx.inspect(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let error = read(&HeaderMap::new(), body, 100).await.unwrap_err();
        assert_eq!(error.code(), 413);
        assert_eq!(error.to_string(), "Request entity too large: limit is 100");
        // Every chunk was read, not only those up to the limit.
        assert_eq!(consumed.load(std::sync::atomic::Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn a_declared_oversize_waiting_for_continue_is_refused_unread() {
        let headers = headers(&[
            (header::CONTENT_LENGTH, "5000"),
            (header::EXPECT, "100-continue"),
        ]);
        let error = read(&headers, Body::empty(), 100).await.unwrap_err();
        assert_eq!(error.code(), 413);
    }

    #[test]
    fn object_media_types() {
        let json = headers(&[(header::CONTENT_TYPE, "application/json; charset=utf-8")]);
        assert_eq!(decode_object(&json, b"{\"a\":1}", "").unwrap()["a"], 1);
        assert_eq!(
            decode_object(&HeaderMap::new(), b"{}", "").unwrap(),
            serde_json::json!({})
        );
        let yaml = headers(&[(header::CONTENT_TYPE, "application/yaml")]);
        assert_eq!(decode_object(&yaml, b"a: 1", "").unwrap()["a"], 1);
        let text = headers(&[(header::CONTENT_TYPE, "text/plain")]);
        let error = decode_object(&text, b"{}", "").unwrap_err();
        assert_eq!(error.code(), 415);
        assert!(error.to_string().contains("accepted media types include"));
    }
}
