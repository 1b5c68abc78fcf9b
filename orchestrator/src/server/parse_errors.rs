//! Status bodies for the requests HTTP/1.1 cannot even read.
//!
//! hyper answers a request whose target or headers are too long for it
//! (414, 431) by itself, with a bare head, before any handler runs.
//! Kubernetes clients read every error as a `Status` object; this wraps a
//! connection and gives those answers one. The head hyper writes for them
//! is recognised as a whole write that starts a response with that status
//! and ends with the blank line (a response body never does: bodies are
//! either written together with their own head or chunk-framed), and
//! replaced by the same status with a Status body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose bare parse-error answers get Status bodies.
pub(super) struct WithStatus<T> {
    inner: T,
    /// A replacement answer still being written: the bytes and how many
    /// are out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> WithStatus<T> {
    pub(super) fn new(inner: T) -> WithStatus<T> {
        WithStatus {
            inner,
            pending: None,
        }
    }
}

/// The answer with a Status body for a bare head of hyper's, if `head` is
/// one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (code, line, message) = if head.starts_with(b"HTTP/1.1 414 ") {
        (
            414,
            "414 URI Too Long",
            "the request URI is longer than the server reads (65534 bytes): send what it selects in the body, or select less",
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "431 Request Header Fields Too Large",
            "the request's headers are larger than the server reads",
        )
    } else {
        return None;
    };
    let status = crate::registry::Error::Unreadable(code, message.into())
        .status()
        .to_string();
    Some(
        format!(
            "HTTP/1.1 {line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{status}",
            status.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> WithStatus<T> {
    /// Writes out what is left of a replacement.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WithStatus<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WithStatus<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(answer) = replacement(buf) {
            self.pending = Some((answer, 0));
            // The head counts as written; the replacement follows.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Regression: a request URI over hyper's limit got a 414 without a
    /// body.
    #[tokio::test]
    async fn a_long_uri_is_answered_with_a_status() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let service = hyper::service::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(WithStatus::new(server));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
        let (mut read, mut write) = tokio::io::split(client);
        let long = "a".repeat(70_000);
        write
            .write_all(format!("GET /api?{long} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        read.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let status: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 414);
    }

    #[test]
    fn only_whole_bare_heads_are_replaced() {
        assert!(replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n").is_some());
        assert!(
            replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 5\r\n\r\nhello").is_none()
        );
        assert!(replacement(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(replacement(b"5\r\nHTTP/1.1 414 \r\n\r\n").is_none());
    }
}
