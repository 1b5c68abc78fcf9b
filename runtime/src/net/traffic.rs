//! What a pod's network carried across the pod's edge: the bytes its
//! `eth0` would count on a node. Traffic between a pod's own containers
//! stays on its loopback and is not counted, as cAdvisor leaves `lo` out.
//!
//! Each end of a connection that crosses the edge carries a [`Meter`] of
//! the pod it belongs to; what is read through that end is received, what
//! is written is transmitted.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pod network's cumulative byte counters.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    received: AtomicU64,
    transmitted: AtomicU64,
}

impl Traffic {
    pub(crate) fn counts(&self) -> NetworkCounts {
        NetworkCounts {
            receive_bytes: self.received.load(Ordering::Relaxed),
            transmit_bytes: self.transmitted.load(Ordering::Relaxed),
        }
    }
}

/// A pod network's byte counters at one moment, since the pod started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkCounts {
    /// Bytes that came into the pod.
    pub receive_bytes: u64,
    /// Bytes that left the pod.
    pub transmit_bytes: u64,
}

/// Where one end of a connection counts its bytes: a pod's counters, or
/// nowhere (loopback within a pod, the host's side of a connection).
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Option<Arc<Traffic>>);

impl Meter {
    pub(crate) fn of(traffic: &Arc<Traffic>) -> Meter {
        Meter(Some(Arc::clone(traffic)))
    }

    pub(crate) fn received(&self, bytes: usize) {
        if let Some(t) = &self.0 {
            t.received.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn transmitted(&self, bytes: usize) {
        if let Some(t) = &self.0 {
            t.transmitted.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

/// A stream whose bytes a pod counts: a guest's HTTP connection out of
/// the pod.
pub(crate) struct Metered<S> {
    inner: S,
    meter: Meter,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, meter: Meter) -> Self {
        Metered { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.meter.received(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.meter.transmitted(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
