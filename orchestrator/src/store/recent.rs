//! The recent changes every watch reads from memory, as the API server's
//! watch cache: one window of committed events, in revision order, shared
//! by all watches, that keeps a few seconds of history under load. A watch
//! that falls behind the window re-reads the log (and decodes every object
//! again), so the window must outlast the time a busy process leaves a
//! watcher unpolled: with a fixed ring of 1,024 events, 3,000 pods starting
//! at once kept every watcher re-reading the log, and a Deployment took
//! 24 s to reach them instead of 10 s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Revision, WatchEvent};

/// How much the window keeps.
#[derive(Debug, Clone, Copy)]
pub struct WatchWindow {
    /// Events always kept, however old (the old versions of objects they
    /// hold stay in memory until pushed out).
    pub at_least: usize,
    /// Events younger than this are kept while there is room...
    pub keep_for: Duration,
    /// ...up to this many.
    pub at_most: usize,
}

impl Default for WatchWindow {
    fn default() -> Self {
        WatchWindow {
            at_least: 1024,
            keep_for: Duration::from_secs(10),
            at_most: 65_536,
        }
    }
}

impl WatchWindow {
    /// A window of the last `events` changes, however young (for tests
    /// whose watches must fall behind).
    #[cfg(test)]
    pub(crate) fn last(events: usize) -> WatchWindow {
        WatchWindow {
            at_least: events,
            keep_for: Duration::ZERO,
            at_most: events,
        }
    }
}

/// The window, shared by the store (which pushes) and its watches.
#[derive(Debug)]
pub(super) struct Recent {
    limits: WatchWindow,
    state: Mutex<State>,
    /// The newest revision pushed; dropped at close, which ends every
    /// watch once it has read what the window still holds.
    newest: Mutex<Option<watch::Sender<Revision>>>,
}

#[derive(Debug)]
struct State {
    events: VecDeque<(Instant, Arc<WatchEvent>)>,
    /// Events up to this revision are not in the window (pushed out, or
    /// committed before the store opened).
    gone_through: Revision,
}

/// What a watch finds in the window after the revision it has seen.
#[derive(Debug)]
pub(super) enum Next {
    /// The first change under its prefix.
    Event(Arc<WatchEvent>),
    /// Only changes under other prefixes, up to this revision.
    Passed(Revision),
    /// Nothing newer yet.
    Nothing,
    /// Changes it has not seen were pushed out: read the log.
    Behind,
}

impl Recent {
    /// An empty window for a store at `revision`.
    pub(super) fn new(revision: Revision, limits: WatchWindow) -> Arc<Recent> {
        Arc::new(Recent {
            limits,
            state: Mutex::new(State {
                events: VecDeque::new(),
                gone_through: revision,
            }),
            newest: Mutex::new(Some(watch::channel(revision).0)),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds committed events (in revision order) and wakes the watches.
    pub(super) fn push(&self, events: impl IntoIterator<Item = Arc<WatchEvent>>) {
        let now = Instant::now();
        let newest = {
            let mut state = self.state();
            state.events.extend(events.into_iter().map(|e| (now, e)));
            state.trim(&self.limits, now);
            state.events.back().map(|(_, e)| e.revision)
        };
        if let (Some(revision), Some(sender)) = (newest, &*self.sender()) {
            sender.send_replace(revision);
        }
    }

    /// Lets go of events older than the window (when no writes come to
    /// push them out).
    pub(super) fn trim(&self) {
        self.state().trim(&self.limits, Instant::now());
    }

    /// Ends every watch once it has read what the window holds.
    pub(super) fn close(&self) {
        self.sender().take();
    }

    fn sender(&self) -> MutexGuard<'_, Option<watch::Sender<Revision>>> {
        self.newest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader for one watch; `None` once the store has closed.
    pub(super) fn subscribe(self: &Arc<Recent>) -> Option<Live> {
        let changed = self.sender().as_ref()?.subscribe();
        Some(Live {
            recent: Arc::clone(self),
            changed,
        })
    }

    /// How many events the window holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.state().events.len()
    }
}

impl State {
    fn trim(&mut self, limits: &WatchWindow, now: Instant) {
        while self.events.len() > limits.at_least {
            let (pushed, event) = &self.events[0];
            if self.events.len() <= limits.at_most
                && now.saturating_duration_since(*pushed) < limits.keep_for
            {
                break;
            }
            self.gone_through = event.revision;
            self.events.pop_front();
        }
    }
}

/// One watch's reader of the window.
#[derive(Debug)]
pub(super) struct Live {
    recent: Arc<Recent>,
    changed: watch::Receiver<Revision>,
}

impl Live {
    /// What the window holds after `seen` for a watch of `prefix`.
    pub(super) fn after(&mut self, seen: Revision, prefix: &str) -> Next {
        // Marked first: a push after the look below wakes `changed`.
        self.changed.borrow_and_update();
        let state = self.recent.state();
        if seen < state.gone_through {
            return Next::Behind;
        }
        let from = state.events.partition_point(|(_, e)| e.revision <= seen);
        let mut passed = None;
        for (_, event) in state.events.range(from..) {
            if event.key.starts_with(prefix) {
                return Next::Event(Arc::clone(event));
            }
            passed = Some(event.revision);
        }
        passed.map_or(Next::Nothing, Next::Passed)
    }

    /// Waits for a push after the last look; false once the store has
    /// closed.
    pub(super) async fn changed(&mut self) -> bool {
        self.changed.changed().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventType;

    fn event(revision: Revision, key: &str) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            event_type: EventType::Added,
            key: key.to_string(),
            revision,
            object: Arc::new(serde_json::json!({})),
        })
    }

    #[test]
    fn a_watch_gets_its_prefix_and_word_of_the_rest() {
        let recent = Recent::new(10, WatchWindow::default());
        let mut live = recent.subscribe().unwrap();
        assert!(matches!(live.after(10, "/a/"), Next::Nothing));
        recent.push([event(11, "/b/x"), event(12, "/a/y"), event(13, "/b/z")]);
        assert!(matches!(live.after(10, "/a/"), Next::Event(e) if e.revision == 12));
        assert!(matches!(live.after(12, "/a/"), Next::Passed(13)));
        assert!(matches!(live.after(13, "/a/"), Next::Nothing));
        // Before the store opened: the log has it, the window does not.
        assert!(matches!(live.after(9, "/a/"), Next::Behind));
    }

    #[test]
    fn the_window_keeps_recent_events_and_lets_old_ones_go() {
        let limits = WatchWindow::default();
        let recent = Recent::new(0, limits);
        let mut live = recent.subscribe().unwrap();
        let many = limits.at_least as Revision * 3;
        recent.push((1..=many).map(|r| event(r, "/a/x")));
        // Young: all kept, so a watch at the start still reads memory.
        assert_eq!(recent.len(), many as usize);
        assert!(matches!(live.after(0, "/a/"), Next::Event(e) if e.revision == 1));
        // Old: down to the floor, and a watch that far back must read the log.
        recent
            .state()
            .trim(&limits, Instant::now() + limits.keep_for);
        assert_eq!(recent.len(), limits.at_least);
        assert!(matches!(live.after(0, "/a/"), Next::Behind));
        let first_kept = many - limits.at_least as Revision;
        assert!(
            matches!(live.after(first_kept, "/a/"), Next::Event(e) if e.revision == first_kept + 1)
        );
    }

    #[test]
    fn the_window_never_holds_more_than_its_ceiling() {
        let limits = WatchWindow::default();
        let recent = Recent::new(0, limits);
        recent.push((1..=limits.at_most as Revision + 10).map(|r| event(r, "/a/x")));
        assert_eq!(recent.len(), limits.at_most);
    }

    #[tokio::test]
    async fn closing_ends_watches_after_what_the_window_holds() {
        let recent = Recent::new(0, WatchWindow::default());
        let mut live = recent.subscribe().unwrap();
        recent.push([event(1, "/a/x")]);
        recent.close();
        assert!(recent.subscribe().is_none());
        assert!(matches!(live.after(0, "/a/"), Next::Event(_)));
        assert!(!live.changed().await);
    }
}
