//! A watch over the store: the log after a revision, then live changes.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Result, Revision, WatchEvent};

type Replay = Arc<dyn Fn(&str, Revision) -> Result<Vec<Arc<WatchEvent>>> + Send + Sync>;

/// Changes under one key prefix, in revision order, each exactly once.
///
/// A watch that falls behind the live channel re-reads the log from the
/// last revision it delivered, so a slow reader loses nothing; only if the
/// log has been compacted past it does it end with `Gone`.
pub struct Watch {
    prefix: String,
    /// The last revision delivered (or the starting point).
    last: Revision,
    /// Events read from the log, not yet delivered.
    pending: VecDeque<Arc<WatchEvent>>,
    live: broadcast::Receiver<Arc<WatchEvent>>,
    replay: Replay,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("last", &self.last)
            .finish()
    }
}

impl Watch {
    pub(super) fn new(
        prefix: String,
        after: Revision,
        pending: Vec<Arc<WatchEvent>>,
        live: broadcast::Receiver<Arc<WatchEvent>>,
        replay: Replay,
    ) -> Watch {
        Watch {
            prefix,
            last: after,
            pending: pending.into(),
            live,
            replay,
        }
    }

    /// The last revision this watch has delivered.
    pub fn revision(&self) -> Revision {
        self.last
    }

    /// The next change already committed, without waiting: `None` when
    /// there is none yet (or the store has closed).
    ///
    /// The store tells watchers before it answers the writer, so after an
    /// acknowledged write, draining a watch is guaranteed to see it.
    pub fn try_next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        use broadcast::error::TryRecvError;
        loop {
            if let Some(event) = self.pop_pending() {
                return Some(Ok(event));
            }
            let received = match self.live.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(_)) => Err(()),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            };
            if let Some(delivered) = self.take(received) {
                return Some(delivered);
            }
        }
    }

    /// The next change; `None` once the store has closed.
    pub async fn next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        use broadcast::error::RecvError;
        loop {
            if let Some(event) = self.pop_pending() {
                return Some(Ok(event));
            }
            let received = match self.live.recv().await {
                Ok(event) => Ok(event),
                Err(RecvError::Lagged(_)) => Err(()),
                Err(RecvError::Closed) => return None,
            };
            if let Some(delivered) = self.take(received) {
                return Some(delivered);
            }
        }
    }

    /// The next event read from the log, if any.
    fn pop_pending(&mut self) -> Option<Arc<WatchEvent>> {
        let event = self.pending.pop_front()?;
        self.last = event.revision;
        Some(event)
    }

    /// Handles one live event (`Err`: the channel lagged): the event to
    /// deliver, a replay failure, or `None` to read on.
    fn take(&mut self, received: Result<Arc<WatchEvent>, ()>) -> Option<Result<Arc<WatchEvent>>> {
        match received {
            Ok(event) => {
                if event.revision > self.last && event.key.starts_with(&self.prefix) {
                    self.last = event.revision;
                    return Some(Ok(event));
                }
                None
            }
            Err(()) => match (self.replay)(&self.prefix, self.last) {
                Ok(events) => {
                    self.pending.extend(events);
                    self.pop_pending().map(Ok)
                }
                Err(error) => Some(Err(error)),
            },
        }
    }
}
