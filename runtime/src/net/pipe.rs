//! In-memory TCP connections: two bounded one-way [`Pipe`]s, one each way
//! (half-close and broken pipe as the pipe defines them).

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::traffic::Meter;
use crate::pipe::{Pipe, Read};

/// One end of a connection: what it reads and what it writes, and where
/// that is counted.
#[derive(Debug, Clone)]
pub(crate) struct End {
    pub(crate) rx: Arc<Pipe>,
    pub(crate) tx: Arc<Pipe>,
    pub(crate) meter: Meter,
}

impl End {
    /// A connected pair of ends with `window` bytes of buffer each way,
    /// counted nowhere.
    pub(crate) fn pair(window: usize) -> (End, End) {
        let (a, b) = (Pipe::new(window), Pipe::new(window));
        (
            End {
                rx: Arc::clone(&a),
                tx: Arc::clone(&b),
                meter: Meter::default(),
            },
            End {
                rx: b,
                tx: a,
                meter: Meter::default(),
            },
        )
    }

    /// This end, counting its bytes on `meter`.
    pub(crate) fn metered(self, meter: Meter) -> End {
        End { meter, ..self }
    }

    /// The guest's streams of this end.
    pub(crate) fn streams(&self) -> (PipeInput, PipeOutput) {
        (
            PipeInput {
                pipe: Arc::clone(&self.rx),
                meter: self.meter.clone(),
            },
            PipeOutput {
                pipe: Arc::clone(&self.tx),
                meter: self.meter.clone(),
            },
        )
    }

    /// Closes both directions.
    pub(crate) fn close(&self) {
        self.tx.close_write();
        self.rx.close_read();
    }
}

/// The guest's input stream of a connection.
pub(crate) struct PipeInput {
    pipe: Arc<Pipe>,
    meter: Meter,
}

/// The guest's output stream of a connection.
pub(crate) struct PipeOutput {
    pipe: Arc<Pipe>,
    meter: Meter,
}

impl Drop for PipeInput {
    fn drop(&mut self) {
        self.pipe.close_read();
    }
}

impl Drop for PipeOutput {
    fn drop(&mut self) {
        self.pipe.close_write();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PipeInput {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.pipe.poll_readable(cx)).await
    }
}

impl InputStream for PipeInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.pipe.try_read(size) {
            Read::Data(bytes) => {
                self.meter.received(bytes.len());
                Ok(bytes)
            }
            Read::Empty => Ok(Bytes::new()),
            Read::Eof => Err(StreamError::Closed),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PipeOutput {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.pipe.poll_writable(cx)).await
    }
}

impl OutputStream for PipeOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // The guest may write only what `check_write` allowed, and that fits.
        match self.pipe.write(&bytes) {
            Ok(n) if n == bytes.len() => {
                self.meter.transmitted(n);
                Ok(())
            }
            Ok(_) => Err(StreamError::trap("write exceeded the permitted size")),
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are already in the peer's buffer.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.pipe
            .space()
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }
}

/// The host's end of a connection into a pod (from [`super::PodNet::dial`]):
/// an ordinary tokio stream. Dropping it closes the connection.
#[derive(Debug)]
pub struct PodConnection {
    end: End,
}

impl PodConnection {
    pub(crate) fn new(end: End) -> Self {
        PodConnection { end }
    }

    /// This connection, its bytes counted on `meter` (a pod's, when the
    /// caller is a guest of another pod).
    pub(crate) fn metered(mut self, meter: Meter) -> Self {
        self.end.meter = meter;
        self
    }
}

impl Drop for PodConnection {
    fn drop(&mut self) {
        self.end.close();
    }
}

impl AsyncRead for PodConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.end.rx.try_read(buf.remaining()) {
                Read::Data(bytes) => {
                    self.end.meter.received(bytes.len());
                    buf.put_slice(&bytes);
                    return Poll::Ready(Ok(()));
                }
                Read::Eof => return Poll::Ready(Ok(())),
                Read::Empty => {
                    if self.end.rx.poll_readable(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for PodConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.end.tx.write(data) {
                Ok(0) if !data.is_empty() => {
                    if self.end.tx.poll_writable(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Ok(n) => {
                    self.end.meter.transmitted(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.end.tx.close_write();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn half_close_delivers_everything_then_eof() {
        let (a, b) = End::pair(8);
        let mut host = PodConnection::new(a);
        let (mut guest_in, mut guest_out) = b.streams();
        // Backpressure: only the window fits.
        assert_eq!(guest_out.check_write().unwrap(), 8);
        guest_out.write(Bytes::from_static(b"12345678")).unwrap();
        assert_eq!(guest_out.check_write().unwrap(), 0);
        drop(guest_out); // the guest is done sending
        let mut got = Vec::new();
        host.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"12345678");
        // The other direction is still open.
        host.write_all(b"hi").await.unwrap();
        host.shutdown().await.unwrap();
        assert_eq!(&guest_in.read(10).unwrap()[..], b"hi");
        assert!(matches!(guest_in.read(10), Err(StreamError::Closed)));
    }

    #[tokio::test]
    async fn writes_wait_for_room_and_fail_once_the_reader_is_gone() {
        let (a, b) = End::pair(4);
        let mut host = PodConnection::new(a);
        let writer = tokio::spawn(async move {
            host.write_all(b"0123456789").await.unwrap();
            host
        });
        let (mut input, _output) = b.streams();
        let mut got = Vec::new();
        while got.len() < 10 {
            input.ready().await;
            got.extend_from_slice(&input.read(3).unwrap());
        }
        assert_eq!(got, b"0123456789");
        let mut host = writer.await.unwrap();
        drop(input);
        assert_eq!(
            host.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
