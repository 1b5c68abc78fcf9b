//! Read snapshots held for paged lists. A list cut short by its limit
//! keeps its read transaction, so the pages after it read the same
//! revision: the pages together are one consistent list, as the API
//! server's pages are one etcd revision. A snapshot is let go a minute
//! after its last page, and at most [`HELD`] are kept (the oldest goes
//! first); a page asking for one that is gone is told so, and the client
//! starts its list again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redb::ReadTransaction;

use super::Revision;

/// How long a snapshot outlives its last page.
const IDLE: Duration = Duration::from_secs(60);
/// Snapshots held at once.
const HELD: usize = 16;

struct Held {
    revision: Revision,
    txn: Arc<ReadTransaction>,
    used: Instant,
}

#[derive(Default)]
pub(super) struct Snapshots {
    held: Mutex<Vec<Held>>,
}

impl Snapshots {
    /// The snapshot at `revision`, if still held.
    pub(super) fn get(&self, revision: Revision) -> Option<Arc<ReadTransaction>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        held.retain(|h| now.duration_since(h.used) < IDLE);
        let found = held.iter_mut().find(|h| h.revision == revision)?;
        found.used = now;
        Some(Arc::clone(&found.txn))
    }

    /// Keeps `txn` (at `revision`) for the pages that follow.
    pub(super) fn hold(&self, revision: Revision, txn: Arc<ReadTransaction>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(found) = held.iter_mut().find(|h| h.revision == revision) {
            found.used = now;
            return;
        }
        if held.len() >= HELD {
            held.sort_by_key(|h| h.used);
            held.remove(0);
        }
        held.push(Held {
            revision,
            txn,
            used: now,
        });
    }

    /// Lets every snapshot go (the store is closing).
    pub(super) fn clear(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
