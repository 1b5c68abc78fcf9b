//! A watch over the store: the log after a revision, then live changes.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Result, Revision, WatchEvent};

/// What a read of the log found: the events under the prefix, and the
/// newest revision it looked at (matching or not).
pub(super) struct Replayed {
    pub events: Vec<Arc<WatchEvent>>,
    pub through: Revision,
}

type Replay = Arc<dyn Fn(&str, Revision) -> Result<Replayed> + Send + Sync>;

/// One step of a watch: a change under its prefix, or word that the store
/// has got to a revision without one (so a reader knows how current it is).
#[derive(Debug, Clone)]
pub enum Step {
    Event(Arc<WatchEvent>),
    Passed(Revision),
}

/// Changes under one key prefix, in revision order, each exactly once.
///
/// A watch that falls behind the live channel re-reads the log from the
/// last revision it delivered, so a slow reader loses nothing; only if the
/// log has been compacted past it does it end with `Gone`.
pub struct Watch {
    prefix: String,
    /// The last revision delivered (or the starting point).
    last: Revision,
    /// The newest revision accounted for: delivered, read past in the
    /// log, or seen live under another prefix.
    seen: Revision,
    /// `seen` moved during a replay and has not been reported.
    passed_unreported: bool,
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
            .field("seen", &self.seen)
            .finish()
    }
}

impl Watch {
    pub(super) fn new(
        prefix: String,
        after: Revision,
        replayed: Replayed,
        live: broadcast::Receiver<Arc<WatchEvent>>,
        replay: Replay,
    ) -> Watch {
        Watch {
            prefix,
            last: after,
            seen: replayed.through.max(after),
            passed_unreported: replayed.through > after,
            pending: replayed.events.into(),
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
        loop {
            match self.try_step()? {
                Ok(Step::Event(event)) => return Some(Ok(event)),
                Ok(Step::Passed(_)) => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// The next change; `None` once the store has closed.
    pub async fn next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        loop {
            match self.step().await? {
                Ok(Step::Event(event)) => return Some(Ok(event)),
                Ok(Step::Passed(_)) => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// The next step, without waiting: `None` when nothing new has been
    /// committed (or the store has closed).
    pub fn try_step(&mut self) -> Option<Result<Step>> {
        use broadcast::error::TryRecvError;
        loop {
            if let Some(step) = self.pop_pending() {
                return Some(Ok(step));
            }
            let received = match self.live.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(_)) => Err(()),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            };
            if let Some(step) = self.take(received) {
                return Some(step);
            }
        }
    }

    /// The next step: a change, or the store's progress past others;
    /// `None` once the store has closed.
    pub async fn step(&mut self) -> Option<Result<Step>> {
        use broadcast::error::RecvError;
        loop {
            if let Some(step) = self.pop_pending() {
                return Some(Ok(step));
            }
            let received = match self.live.recv().await {
                Ok(event) => Ok(event),
                Err(RecvError::Lagged(_)) => Err(()),
                Err(RecvError::Closed) => return None,
            };
            if let Some(step) = self.take(received) {
                return Some(step);
            }
        }
    }

    /// The next event read from the log, then the revision the read got
    /// to, if either is waiting.
    fn pop_pending(&mut self) -> Option<Step> {
        if let Some(event) = self.pending.pop_front() {
            self.last = event.revision;
            return Some(Step::Event(event));
        }
        if std::mem::take(&mut self.passed_unreported) {
            return Some(Step::Passed(self.seen));
        }
        None
    }

    /// Handles one live event (`Err`: the channel lagged): the step to
    /// report, a replay failure, or `None` to read on.
    fn take(&mut self, received: Result<Arc<WatchEvent>, ()>) -> Option<Result<Step>> {
        match received {
            Ok(event) => {
                if event.revision <= self.seen {
                    // Already read from the log.
                    return None;
                }
                self.seen = event.revision;
                if event.key.starts_with(&self.prefix) {
                    self.last = event.revision;
                    Some(Ok(Step::Event(event)))
                } else {
                    Some(Ok(Step::Passed(event.revision)))
                }
            }
            // Everything up to `seen` is accounted for: read on from there.
            Err(()) => match (self.replay)(&self.prefix, self.seen) {
                Ok(replayed) => {
                    self.pending.extend(replayed.events);
                    if replayed.through > self.seen {
                        self.seen = replayed.through;
                        self.passed_unreported = true;
                    }
                    self.pop_pending().map(Ok)
                }
                Err(error) => Some(Err(error)),
            },
        }
    }
}
