//! An exec session's standard streams as its guest sees them: stdin read
//! from a [`Pipe`] the client fills, stdout and stderr written into pipes
//! the client drains (or, with a terminal, into the terminal's output with
//! `\n` as `\r\n`). Handles never close a pipe when dropped: a guest may
//! open and drop its stdin many times; the session closes the pipes when
//! the guest ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::pipe::{Pipe, Read};
use crate::terminal::Terminal;

/// The guest's stdin.
#[derive(Clone)]
pub(crate) struct GuestInput {
    pipe: Arc<Pipe>,
    /// Where a Ctrl-D typed at the start of a line is one end of input.
    terminal: Option<Arc<Terminal>>,
}

impl GuestInput {
    pub(crate) fn new(pipe: Arc<Pipe>, terminal: Option<Arc<Terminal>>) -> Self {
        GuestInput { pipe, terminal }
    }

    fn try_read(&self, size: usize) -> StreamResult<Bytes> {
        match self.pipe.try_read(size) {
            Read::Data(bytes) => Ok(bytes),
            Read::Eof => Err(StreamError::Closed),
            // A terminal's end of input is read once; reading goes on after.
            Read::Empty if self.terminal.as_ref().is_some_and(|t| t.take_end()) => {
                Err(StreamError::Closed)
            }
            Read::Empty => Ok(Bytes::new()),
        }
    }

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Register first, then look for an end of input, so that one typed
        // in between still wakes us.
        let ready = self.pipe.poll_readable(cx);
        if ready.is_ready() || self.terminal.as_ref().is_some_and(|t| t.has_end()) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl IsTerminal for GuestInput {
    fn is_terminal(&self) -> bool {
        self.terminal.is_some()
    }
}

impl StdinStream for GuestInput {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestInput {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

impl InputStream for GuestInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.try_read(size)
    }
}

impl AsyncRead for GuestInput {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.try_read(buf.remaining()) {
                Ok(bytes) if bytes.is_empty() => {
                    if self.poll_ready(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Ok(bytes) => {
                    buf.put_slice(&bytes);
                    return Poll::Ready(Ok(()));
                }
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The guest's stdout or stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    pipe: Arc<Pipe>,
    /// Written to a terminal: `\n` leaves as `\r\n`.
    terminal: bool,
}

impl GuestOutput {
    pub(crate) fn new(pipe: Arc<Pipe>, terminal: bool) -> Self {
        GuestOutput { pipe, terminal }
    }

    /// Takes all of `bytes`: `check_write` bounded them by the room there
    /// was, though two handles (stdout and stderr on one terminal) may
    /// each have been told the same room.
    fn put(&self, bytes: &[u8]) -> io::Result<()> {
        if self.terminal {
            self.pipe.push(&Terminal::translate_output(bytes))
        } else {
            self.pipe.push(bytes)
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        self.terminal
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.pipe.poll_writable(cx)).await
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.put(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.pipe
            .space()
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.pipe.space() {
            Err(e) => Poll::Ready(Err(e)),
            Ok(0) if !data.is_empty() => {
                if self.pipe.poll_writable(cx).is_pending() {
                    return Poll::Pending;
                }
                let n = data.len().min(self.pipe.space()?.max(1));
                Poll::Ready(self.put(&data[..n]).map(|()| n))
            }
            Ok(room) => {
                let n = data.len().min(room);
                Poll::Ready(self.put(&data[..n]).map(|()| n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
