//! One-way in-memory byte pipes with a bounded buffer: what joins the two
//! ends of a pod-local TCP connection and an exec session's stdio to its
//! guest. Writes that do not fit wait (backpressure); closing the write side
//! makes the reader see end-of-file after the data already sent; closing the
//! read side makes the writer's next write fail (broken pipe). Nothing
//! written is lost when a side closes.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A one-way byte pipe with a bounded buffer.
#[derive(Debug)]
pub(crate) struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Debug)]
struct PipeState {
    buf: VecDeque<u8>,
    capacity: usize,
    write_closed: bool,
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl PipeState {
    /// Whether a write may go ahead: not once the reader left or the
    /// writer shut its side down.
    fn writable(&self) -> io::Result<()> {
        if self.read_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if self.write_closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the sending side was shut down",
            ));
        }
        Ok(())
    }
}

/// What a non-blocking read found.
pub(crate) enum Read {
    Data(Bytes),
    Empty,
    Eof,
}

impl Pipe {
    pub(crate) fn new(capacity: usize) -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(PipeState {
                buf: VecDeque::new(),
                capacity,
                write_closed: false,
                read_closed: false,
                reader: None,
                writer: None,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn try_read(&self, max: usize) -> Read {
        let mut s = self.state();
        if s.buf.is_empty() {
            return if s.write_closed {
                Read::Eof
            } else {
                Read::Empty
            };
        }
        let n = max.min(s.buf.len());
        let data: Vec<u8> = s.buf.drain(..n).collect();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        Read::Data(Bytes::from(data))
    }

    /// Ready when there is data or the writer has closed.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state();
        if !s.buf.is_empty() || s.write_closed {
            return Poll::Ready(());
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Free space; an error once the reader is gone.
    pub(crate) fn space(&self) -> io::Result<usize> {
        let s = self.state();
        s.writable()?;
        Ok(s.capacity.saturating_sub(s.buf.len()))
    }

    /// Appends what fits; the number of bytes taken.
    pub(crate) fn write(&self, data: &[u8]) -> io::Result<usize> {
        let mut s = self.state();
        s.writable()?;
        let n = data.len().min(s.capacity.saturating_sub(s.buf.len()));
        s.buf.extend(&data[..n]);
        if n > 0
            && let Some(r) = s.reader.take()
        {
            r.wake();
        }
        Ok(n)
    }

    /// Ready when there is room or the reader has gone (the write then fails).
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state();
        if s.read_closed || s.write_closed || s.buf.len() < s.capacity {
            return Poll::Ready(());
        }
        s.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn close_write(&self) {
        let mut s = self.state();
        s.write_closed = true;
        if let Some(r) = s.reader.take() {
            r.wake();
        }
    }

    pub(crate) fn close_read(&self) {
        let mut s = self.state();
        s.read_closed = true;
        s.buf.clear();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }
}

impl Pipe {
    /// Appends all of `data` whatever the room: for a terminal's echo and
    /// line endings, bounded by what was typed or allowed.
    pub(crate) fn push(&self, data: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        s.writable()?;
        s.buf.extend(data);
        if let Some(r) = s.reader.take() {
            r.wake();
        }
        Ok(())
    }

    /// Drops what was written and not read yet.
    pub(crate) fn clear(&self) {
        let mut s = self.state();
        s.buf.clear();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }

    /// Waits for data: at most `max` bytes, or `None` at end of file.
    pub(crate) async fn read(&self, max: usize) -> Option<Bytes> {
        loop {
            match self.try_read(max) {
                Read::Data(bytes) => return Some(bytes),
                Read::Eof => return None,
                Read::Empty => std::future::poll_fn(|cx| self.poll_readable(cx)).await,
            }
        }
    }

    /// Writes all of `data`, waiting for room; fails once the reader is gone.
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.write(data)?;
            data = &data[n..];
            if n == 0 {
                std::future::poll_fn(|cx| self.poll_writable(cx)).await;
            }
        }
        Ok(())
    }
}
