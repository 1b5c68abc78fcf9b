//! The object store: every API object, one global revision, a revision log
//! that watches replay from.
//!
//! The shape is kine's: each write bumps one global revision (the
//! `resourceVersion` clients see), writes the object under its key and
//! appends the change to a log. A watch subscribes to live changes *before*
//! it reads the log, so nothing falls between the two. Objects are JSON
//! values; the API layer gives them meaning.
//!
//! [`Store`] is a trait so a distributed backend can replace the embedded
//! [`RedbStore`] on a multi-node cluster.

mod encode;
mod recent;
mod redb;
pub mod seal;
mod snapshots;
mod watch;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

pub use self::recent::WatchWindow;
pub use self::redb::{RedbStore, StoreOptions};
pub use self::watch::{Step, Watch};

/// A point in the store's history; also every object's `resourceVersion`.
pub type Revision = u64;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The largest object the store takes, as encoded (etcd's default request
/// limit, which bounds a Kubernetes object to the same size).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("an object already exists at {key}")]
    AlreadyExists { key: String },
    #[error("no object at {key}")]
    NotFound { key: String },
    /// The caller's precondition (resourceVersion or uid) no longer holds.
    #[error("the object at {key} has changed: {reason}")]
    Conflict { key: String, reason: String },
    /// A watch asked for history the store has compacted away.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        requested: Revision,
        oldest: Revision,
    },
    /// A page asked for the snapshot of a list the store has let go.
    #[error("the snapshot at revision {revision} is no longer held")]
    Released { revision: Revision },
    #[error("stored data is not valid JSON at {key}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The object, encoded, is larger than [`MAX_OBJECT_BYTES`].
    #[error("the object at {key} is {size} bytes, more than the store's limit of {limit}")]
    TooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    #[error("the store is closed")]
    Closed,
    #[error("store I/O failed")]
    Backend(#[source] Arc<::redb::Error>),
}

impl<E: Into<::redb::Error>> From<E> for Error {
    fn from(error: E) -> Self {
        Error::Backend(Arc::new(error.into()))
    }
}

/// What a caller requires of the current object before a write applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub revision: Option<Revision>,
    pub uid: Option<String>,
}

/// One write, applied atomically and durably before it is acknowledged.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with [`Error::AlreadyExists`] if the key is taken.
    Create { key: String, object: Value },
    /// Fails with [`Error::NotFound`] or [`Error::Conflict`].
    Update {
        key: String,
        object: Value,
        preconditions: Preconditions,
    },
    /// Removes the object; the deleted object (at the deletion's revision)
    /// is returned and sent to watchers.
    Delete {
        key: String,
        preconditions: Preconditions,
    },
}

impl Write {
    pub fn key(&self) -> &str {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }
}

/// The kind of change a [`WatchEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The byte the revision log stores for this type.
    pub(crate) fn tag(self) -> u8 {
        match self {
            EventType::Added => b'A',
            EventType::Modified => b'M',
            EventType::Deleted => b'D',
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<EventType> {
        match tag {
            b'A' => Some(EventType::Added),
            b'M' => Some(EventType::Modified),
            b'D' => Some(EventType::Deleted),
            _ => None,
        }
    }

    /// The name Kubernetes' watch protocol uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as the log and watchers see it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub revision: Revision,
    pub event_type: EventType,
    pub key: String,
    /// The object after the change (for a deletion: its last state, with
    /// the deletion's revision as `resourceVersion`).
    pub object: Arc<Value>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    /// The store's revision when the page was read.
    pub revision: Revision,
    /// The last key of this page when more follow.
    pub continue_after: Option<String>,
}

/// The store behind the API: objects by key, a global revision, watches.
pub trait Store: Send + Sync + 'static {
    /// The object at `key`, with its `resourceVersion`.
    fn get(&self, key: &str) -> Result<Option<Value>>;

    /// Objects whose key starts with `prefix`, in key order, after
    /// `start_after` when given, at most `limit` (0 = all).
    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.list_at(prefix, start_after, limit, None)
    }

    /// [`Store::list`] as of `revision`, when given: the revision of a page
    /// this store cut short (its snapshot is held for the pages after it)
    /// or the latest; any other is [`Error::Released`].
    fn list_at(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListPage>;

    /// Applies a write; resolves once it is durable. Many concurrent writes
    /// share one commit.
    fn write(&self, write: Write) -> BoxFuture<'static, Result<Value>>;

    /// Changes to keys under `prefix` after revision `after`, then live.
    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;

    /// The latest committed revision.
    fn revision(&self) -> Revision;
}

/// Writes `revision` into `metadata.resourceVersion`.
pub(crate) fn stamp_revision(object: &mut Value, revision: Revision) {
    if let Some(object) = object.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests;
