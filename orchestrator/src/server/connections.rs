//! The API's open connections, kept below the process's file descriptor
//! limit, and which connection gives way when a new one arrives at the
//! cap.
//!
//! Idle connections cost a descriptor each. Without a cap, enough of them
//! (a thousand idle TCP connections against the usual limit of 1,024) use
//! up the descriptors, and then every accept fails: the API stops
//! answering. At the cap a new connection takes the place of an idle one:
//! first one that has never made an authenticated request (a flood of
//! idle or unauthenticated connections only pushes itself out), then the
//! longest idle. Connections with a request in flight (watches and log
//! streams included) are never closed to make room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::AbortHandle;

/// How many connections may be open at once, given the process's open file
/// limit: a quarter of the descriptors stays for the store, pods and logs.
pub fn cap_for(open_file_limit: u64) -> usize {
    let limit = usize::try_from(open_file_limit).unwrap_or(usize::MAX);
    (limit - limit / 4).clamp(16, MAX_CONNECTIONS)
}

/// The cap however many descriptors there are: each connection holds
/// buffers (and TLS state), which an edge device's memory bounds too.
const MAX_CONNECTIONS: usize = 8192;

/// The open connections.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    inner: Arc<Mutex<Inner>>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Connection>,
}

#[derive(Debug)]
struct Connection {
    /// Requests being answered (a response body still streaming counts).
    in_flight: usize,
    /// When a request last began or ended.
    last_active: Instant,
    /// Whether a request on it was authenticated.
    trusted: bool,
    /// Ends its task (and so closes it); set once the task is spawned.
    abort: Option<AbortHandle>,
}

/// What became of a new connection.
pub(crate) enum Admission {
    /// It may be served; its task ends with the guard dropped.
    Admitted(Guard),
    /// At the cap with every connection busy: it is closed at once.
    Refused,
}

impl Connections {
    pub(crate) fn new(cap: usize) -> Connections {
        Connections {
            inner: Arc::default(),
            cap,
        }
    }

    /// Makes room for a new connection (closing an idle one at the cap)
    /// and registers it.
    pub(crate) fn admit(&self) -> Admission {
        let mut inner = lock(&self.inner);
        if inner.open.len() >= self.cap {
            let victim = inner
                .open
                .iter()
                .filter(|(_, c)| c.in_flight == 0)
                .min_by_key(|(_, c)| (c.trusted, c.last_active))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Admission::Refused;
            };
            if let Some(abort) = inner.open.remove(&victim).and_then(|c| c.abort) {
                abort.abort();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.open.insert(
            id,
            Connection {
                in_flight: 0,
                last_active: Instant::now(),
                trusted: false,
                abort: None,
            },
        );
        Admission::Admitted(Guard {
            connections: self.clone(),
            id,
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).open.len()
    }

    fn with(&self, id: u64, change: impl FnOnce(&mut Connection)) {
        if let Some(connection) = lock(&self.inner).open.get_mut(&id) {
            change(connection);
        }
    }
}

/// A connection's place among the open ones, given up when dropped (the
/// connection's task ended, or was ended).
#[derive(Debug)]
pub(crate) struct Guard {
    connections: Connections,
    id: u64,
}

impl Guard {
    /// Records how to end the connection's task.
    pub(crate) fn set_abort(&self, abort: AbortHandle) {
        self.connections.with(self.id, |c| c.abort = Some(abort));
    }

    /// A request begins; it is in flight until the returned value drops.
    pub(crate) fn begin(&self) -> InFlight {
        self.connections.with(self.id, |c| {
            c.in_flight += 1;
            c.last_active = Instant::now();
        });
        InFlight {
            connections: self.connections.clone(),
            id: self.id,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        lock(&self.connections.inner).open.remove(&self.id);
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight {
    connections: Connections,
    id: u64,
}

impl InFlight {
    /// The request was authenticated: the connection is a client's.
    pub(crate) fn trust(&self) {
        self.connections.with(self.id, |c| c.trusted = true);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connections.with(self.id, |c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.last_active = Instant::now();
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Connections) -> Guard {
        match connections.admit() {
            Admission::Admitted(guard) => guard,
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn at_the_cap_an_untrusted_idle_connection_gives_way() {
        let connections = Connections::new(3);
        let spawn = |guard: &Guard| {
            let task = tokio::spawn(std::future::pending::<()>());
            guard.set_abort(task.abort_handle());
            task
        };
        let client = admitted(&connections);
        let client_task = spawn(&client);
        let request = client.begin();
        request.trust();
        drop(request);
        let mut flood: Vec<_> = (0..2)
            .map(|_| {
                let guard = admitted(&connections);
                let task = spawn(&guard);
                (guard, task)
            })
            .collect();
        assert_eq!(connections.len(), 3);
        // A fourth: the oldest idle flood connection goes, not the client.
        let _fourth = admitted(&connections);
        assert_eq!(connections.len(), 3);
        let (_guard, first_flood) = flood.remove(0);
        assert!(
            first_flood.await.unwrap_err().is_cancelled(),
            "the oldest untrusted one is closed"
        );
        assert!(!flood[0].1.is_finished());
        assert!(!client_task.is_finished(), "the client's connection stays");
    }

    #[test]
    fn busy_connections_are_never_closed_for_room() {
        let connections = Connections::new(2);
        let a = admitted(&connections);
        let b = admitted(&connections);
        let _watch_a = a.begin();
        let _watch_b = b.begin();
        assert!(matches!(connections.admit(), Admission::Refused));
        drop(_watch_b);
        assert!(matches!(connections.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(cap_for(1024), 768);
        assert_eq!(cap_for(20_000), 8192);
        assert_eq!(cap_for(10), 16);
    }
}
