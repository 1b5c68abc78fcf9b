//! A watch over the store: the log after a revision, then live changes
//! from the window of recent ones ([`super::recent`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::recent::{Live, Next};
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
/// A watch that falls behind the window of recent changes re-reads the
/// log from the last revision it accounted for, so a slow reader loses
/// nothing; only if the log has been compacted past it does it end with
/// `Gone`.
pub struct Watch {
    prefix: String,
    /// The last revision delivered (or the starting point).
    last: Revision,
    /// The newest revision accounted for: delivered, read past in the
    /// log, or passed in the window under another prefix.
    seen: Revision,
    /// `seen` moved during a replay and has not been reported.
    passed_unreported: bool,
    /// The log could not be read (compacted past it): the watch has
    /// reported why and delivers nothing more.
    ended: bool,
    /// Events read from the log, not yet delivered.
    pending: VecDeque<Arc<WatchEvent>>,
    live: Live,
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
        live: Live,
        replay: Replay,
    ) -> Watch {
        Watch {
            prefix,
            last: after,
            seen: replayed.through.max(after),
            passed_unreported: replayed.through > after,
            ended: false,
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
        if self.ended {
            return None;
        }
        if let Some(step) = self.pop_pending() {
            return Some(Ok(step));
        }
        match self.live.after(self.seen, &self.prefix) {
            Next::Event(event) => {
                self.seen = event.revision;
                self.last = event.revision;
                Some(Ok(Step::Event(event)))
            }
            Next::Passed(revision) => {
                self.seen = revision;
                Some(Ok(Step::Passed(revision)))
            }
            Next::Nothing => None,
            Next::Behind => self.read_log(),
        }
    }

    /// The next step: a change, or the store's progress past others;
    /// `None` once the store has closed.
    pub async fn step(&mut self) -> Option<Result<Step>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(step) = self.try_step() {
                return Some(step);
            }
            if !self.live.changed().await {
                // Closed: what was pushed before is still delivered.
                return self.try_step();
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

    /// Reads on from the log past `seen`, what the window no longer holds.
    fn read_log(&mut self) -> Option<Result<Step>> {
        match (self.replay)(&self.prefix, self.seen) {
            Ok(replayed) => {
                self.pending.extend(replayed.events);
                if replayed.through > self.seen {
                    self.seen = replayed.through;
                    self.passed_unreported = true;
                }
                self.pop_pending().map(Ok)
            }
            Err(error) => {
                // Reported once: a reader draining the watch in a loop
                // would otherwise be handed the same error for ever.
                self.ended = true;
                Some(Err(error))
            }
        }
    }
}
