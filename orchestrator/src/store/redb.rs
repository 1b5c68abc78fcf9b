//! The embedded store: one redb file, written by a single writer thread
//! that group-commits.
//!
//! Every write waits in a queue; the writer takes everything queued, applies
//! it in one transaction (one revision per write), commits durably (one
//! fsync), and only then answers each caller and tells the watchers. So many
//! concurrent clients share one fsync, and nothing is acknowledged before it
//! is on disk. Reads use redb's snapshots and never wait for the writer.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::oneshot;

use super::encode::Encoded;
use super::recent::{Recent, WatchWindow};
use super::seal::{self, Sealer};
use super::snapshots::Snapshots;
use super::watch::Replayed;
use super::{
    Error, EventType, ListPage, Preconditions, Result, Revision, Store, Watch, WatchEvent, Write,
    stamp_revision,
};

/// key -> 8-byte big-endian revision, then the object's JSON.
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// revision -> event type byte, key length (u32 BE), key, object JSON.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// "revision" and "compacted".
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// How the store keeps its log.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How many revisions of history watches can resume from.
    pub retained_revisions: u64,
    /// How often the writer compacts the log when it is idle.
    pub compact_every: Duration,
    /// Most writes in one commit; bounds a transaction's size.
    pub max_batch: usize,
    /// Encrypts the values of the keys it covers (Secrets) at rest.
    pub sealer: Option<Arc<Sealer>>,
    /// Most memory redb keeps of the file's pages (its own default is a
    /// gigabyte, and it fills as the file grows).
    pub cache_bytes: usize,
    /// How many recent changes watches read from memory.
    pub watch_window: WatchWindow,
}

/// The page cache a host of `memory_kib` gets: a sixty-fourth of its
/// memory, from 4 MiB (a 256 MB board) to 16 MiB. The objects a server
/// reads most sit in the registry's caches, and the kernel caches the
/// file too: a larger one only holds a long-running server's RSS up.
pub fn cache_bytes_for(memory_kib: u64) -> usize {
    let bytes = usize::try_from(memory_kib.saturating_mul(1024) / 64).unwrap_or(usize::MAX);
    bytes.clamp(4 << 20, 16 << 20)
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retained_revisions: 10_000,
            compact_every: Duration::from_secs(60),
            max_batch: 1024,
            sealer: None,
            cache_bytes: cache_bytes_for(crate::host::memory_kib()),
            watch_window: WatchWindow::default(),
        }
    }
}

/// State the writer thread and the readers share.
struct Shared {
    /// Taken at close, so the file is free for the next store in this
    /// process (an embedder restarting its cluster).
    db: std::sync::RwLock<Option<Database>>,
    /// The latest committed revision.
    revision: AtomicU64,
    /// Revisions up to this one are gone from the log.
    compacted: AtomicU64,
    /// Recent committed changes, for watches to read from memory; closed
    /// with the store, which ends every watch.
    recent: Arc<Recent>,
    /// Durable commits made, to see how many writes share one.
    commits: AtomicU64,
    sealer: Option<Arc<Sealer>>,
    /// Snapshots of lists cut short, for their next pages.
    snapshots: Snapshots,
}

enum Request {
    /// Answered with the stored object, shared with the watchers (the
    /// caller, not the writer thread, copies it).
    Write(Queued, oneshot::Sender<Result<Arc<Value>>>),
    /// Compacts the log now (tests and `close`).
    Compact(oneshot::Sender<Result<()>>),
}

/// The redb-backed [`Store`]. Cloning shares the one database.
#[derive(Clone)]
pub struct RedbStore {
    shared: Arc<Shared>,
    handle: Arc<WriterHandle>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("revision", &self.revision())
            .finish()
    }
}

/// Owns the writer thread: dropping the last store handle drains the
/// queue, commits it and stops the thread.
struct WriterHandle {
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    fn close(&self) {
        self.requests.lock().unwrap().take();
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.close();
    }
}

impl RedbStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<RedbStore> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)?;
        RedbStore::with_database(db, options)
    }

    /// A store that lives in memory only (an embedded cluster's, a test's):
    /// the same transactions, revisions and watches, gone when it closes.
    pub fn in_memory(options: StoreOptions) -> Result<RedbStore> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create_with_backend(::redb::backends::InMemoryBackend::new())?;
        RedbStore::with_database(db, options)
    }

    fn with_database(db: Database, options: StoreOptions) -> Result<RedbStore> {
        let txn = db.begin_write()?;
        let (revision, compacted) = {
            txn.open_table(OBJECTS)?;
            txn.open_table(LOG)?;
            let meta = txn.open_table(META)?;
            let revision = meta.get("revision")?.map(|v| v.value()).unwrap_or(0);
            let compacted = meta.get("compacted")?.map(|v| v.value()).unwrap_or(0);
            (revision, compacted)
        };
        txn.commit()?;
        let shared = Arc::new(Shared {
            db: std::sync::RwLock::new(Some(db)),
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            recent: Recent::new(revision, options.watch_window),
            commits: AtomicU64::new(0),
            sealer: options.sealer.clone(),
            snapshots: Snapshots::default(),
        });
        let (sender, receiver) = mpsc::channel();
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_shared, &receiver, &options))
            .map_err(|e| Error::Backend(Arc::new(::redb::Error::Io(e))))?;
        Ok(RedbStore {
            shared,
            handle: Arc::new(WriterHandle {
                requests: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Commits what is queued and stops the writer; later reads and writes
    /// fail with [`Error::Closed`], open watches end, and the file is
    /// released.
    pub fn close(&self) {
        self.handle.close();
        self.shared
            .db
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.shared.recent.close();
        // Last: a list that began before the database went may still have
        // held its snapshot, which keeps the file open.
        self.shared.snapshots.clear();
    }

    /// Compacts the log to the retained window now.
    pub async fn compact(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Compact(reply))?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// How many write transactions have been committed since opening (each
    /// holds every write that was waiting).
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// The oldest revision a watch may resume after.
    pub fn compacted(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    fn send(&self, request: Request) -> Result<()> {
        let requests = self.handle.requests.lock().unwrap();
        let sender = requests.as_ref().ok_or(Error::Closed)?;
        sender.send(request).map_err(|_| Error::Closed)
    }
}

impl Shared {
    fn begin_read(&self) -> Result<::redb::ReadTransaction> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        Ok(db.as_ref().ok_or(Error::Closed)?.begin_read()?)
    }

    fn begin_write(&self) -> Result<::redb::WriteTransaction> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        Ok(db.as_ref().ok_or(Error::Closed)?.begin_write()?)
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Value>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        match table.get(key)? {
            Some(bytes) => Ok(Some(decode_object(&self.shared, key, bytes.value())?.1)),
            None => Ok(None),
        }
    }

    fn list_at(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<ListPage> {
        let held = at.and_then(|revision| self.shared.snapshots.get(revision));
        let txn = match held {
            Some(txn) => txn,
            None => Arc::new(self.shared.begin_read()?),
        };
        let revision = txn
            .open_table(META)?
            .get("revision")?
            .map(|v| v.value())
            .unwrap_or(0);
        if let Some(wanted) = at
            && wanted != revision
        {
            return Err(Error::Released { revision: wanted });
        }
        let table = txn.open_table(OBJECTS)?;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut items = Vec::new();
        let mut last_key = String::new();
        let mut continue_after = None;
        for entry in table.range::<&str>((lower, Bound::Unbounded))? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if limit != 0 && items.len() == limit {
                continue_after = Some(std::mem::take(&mut last_key));
                break;
            }
            items.push(decode_object(&self.shared, key, value.value())?.1);
            last_key.clear();
            last_key.push_str(key);
        }
        drop(table);
        if continue_after.is_some() {
            self.shared.snapshots.hold(revision, txn);
        }
        Ok(ListPage {
            items,
            revision,
            continue_after,
        })
    }

    fn write(&self, write: Write) -> BoxFuture<'static, Result<Value>> {
        let (reply, answer) = oneshot::channel();
        let sent = Queued::new(write).and_then(|queued| self.send(Request::Write(queued, reply)));
        Box::pin(async move {
            sent?;
            answer
                .await
                .map_err(|_| Error::Closed)?
                .map(Arc::unwrap_or_clone)
        })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        // Subscribe first: anything committed from here on reaches `live`,
        // and the log read below covers everything before.
        let live = self.shared.recent.subscribe().ok_or(Error::Closed)?;
        let shared = self.shared.clone();
        let replay = Arc::new(move |prefix: &str, after: Revision| replay(&shared, prefix, after));
        let pending = replay(prefix, after)?;
        Ok(Watch::new(prefix.to_string(), after, pending, live, replay))
    }

    fn revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
    }
}

fn replay(shared: &Shared, prefix: &str, after: Revision) -> Result<Replayed> {
    let txn = shared.begin_read()?;
    let compacted = txn
        .open_table(META)?
        .get("compacted")?
        .map(|v| v.value())
        .unwrap_or(0);
    if after < compacted {
        return Err(Error::Gone {
            requested: after,
            oldest: compacted + 1,
        });
    }
    let log = txn.open_table(LOG)?;
    let mut events = Vec::new();
    let mut through = after;
    for entry in log.range(after + 1..)? {
        let (revision, bytes) = entry?;
        through = revision.value();
        if let Some(event) = decode_event(shared, through, bytes.value(), prefix)? {
            events.push(Arc::new(event));
        }
    }
    Ok(Replayed { events, through })
}

fn writer_loop(shared: &Shared, requests: &mpsc::Receiver<Request>, options: &StoreOptions) {
    let mut last_compaction = Instant::now();
    loop {
        let first = match requests.recv_timeout(idle_wakeup(options)) {
            Ok(request) => request,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: old changes leave memory without new ones to push
                // them out.
                shared.recent.trim();
                if last_compaction.elapsed() >= options.compact_every {
                    let _ = compact(shared, options.retained_revisions);
                    last_compaction = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut writes = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Write(write, reply) => writes.push((write, reply)),
                Request::Compact(reply) => {
                    let _ = reply.send(compact(shared, options.retained_revisions));
                    last_compaction = Instant::now();
                }
            }
            next = if writes.len() < options.max_batch {
                requests.try_recv().ok()
            } else {
                None
            };
        }
        if !writes.is_empty() {
            commit_batch(shared, writes);
        }
        if last_compaction.elapsed() >= options.compact_every {
            let _ = compact(shared, options.retained_revisions);
            last_compaction = Instant::now();
        }
    }
}

/// How long the writer waits for a write before it tidies up: the watch
/// window trimmed, the log compacted when due.
fn idle_wakeup(options: &StoreOptions) -> Duration {
    options
        .compact_every
        .min(options.watch_window.keep_for)
        .max(Duration::from_secs(1))
}

/// A write on its way to the writer thread, its object already serialised
/// by the caller (the writer only splices in the revision).
struct Queued {
    write: Write,
    encoded: Option<Encoded>,
}

impl Queued {
    fn new(mut write: Write) -> Result<Queued> {
        let encoded = match &mut write {
            Write::Create { key, object } | Write::Update { key, object, .. } => {
                if let Some(top) = object.as_object_mut() {
                    top.entry("metadata")
                        .or_insert_with(|| Value::Object(Default::default()));
                }
                let encoded = Encoded::new(object).map_err(|source| Error::Corrupt {
                    key: key.clone(),
                    source,
                })?;
                let size = encoded.len_with_revision();
                if size > super::MAX_OBJECT_BYTES {
                    return Err(Error::TooLarge {
                        key: key.clone(),
                        size,
                        limit: super::MAX_OBJECT_BYTES,
                    });
                }
                Some(encoded)
            }
            Write::Delete { .. } => None,
        };
        Ok(Queued { write, encoded })
    }
}

type Outcome = Result<WatchEvent>;

/// Applies `writes` in one durable transaction, then answers each.
fn commit_batch(shared: &Shared, writes: Vec<(Queued, oneshot::Sender<Result<Arc<Value>>>)>) {
    let start = shared.revision.load(Ordering::Acquire);
    let (replies, writes): (Vec<_>, Vec<_>) = writes.into_iter().map(|(w, r)| (r, w)).unzip();
    let result = (|| -> Result<(Vec<Outcome>, Revision)> {
        let txn = shared.begin_write()?;
        let mut revision = start;
        let mut outcomes = Vec::with_capacity(writes.len());
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut log = txn.open_table(LOG)?;
            for write in writes {
                outcomes.push(apply(shared, &mut objects, &mut log, revision + 1, write)?);
                if matches!(outcomes.last(), Some(Ok(_))) {
                    revision += 1;
                }
            }
            txn.open_table(META)?.insert("revision", revision)?;
        }
        txn.commit()?;
        shared.commits.fetch_add(1, Ordering::Relaxed);
        Ok((outcomes, revision))
    })();
    match result {
        Ok((outcomes, revision)) => {
            shared.revision.store(revision, Ordering::Release);
            let outcomes: Vec<Result<Arc<WatchEvent>>> =
                outcomes.into_iter().map(|o| o.map(Arc::new)).collect();
            // Watchers are told before writers are answered.
            shared
                .recent
                .push(outcomes.iter().filter_map(|o| o.as_ref().ok().cloned()));
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                let _ = reply.send(outcome.map(|event| Arc::clone(&event.object)));
            }
        }
        Err(error) => {
            let shared_error = match error {
                Error::Backend(e) => e,
                other => Arc::new(::redb::Error::Corrupted(other.to_string())),
            };
            for reply in replies {
                let _ = reply.send(Err(Error::Backend(shared_error.clone())));
            }
        }
    }
}

/// Applies one write at `revision`. The outer `Result` is a backend failure
/// that aborts the batch; the inner one is this write's own answer.
fn apply(
    shared: &Shared,
    objects: &mut ::redb::Table<&str, &[u8]>,
    log: &mut ::redb::Table<u64, &[u8]>,
    revision: Revision,
    queued: Queued,
) -> Result<Outcome> {
    let Queued { write, encoded } = queued;
    // The current object stays unparsed unless a deletion needs it: the
    // writer thread is the one serial part.
    let current = match objects.get(write.key())? {
        Some(bytes) => Some(Current::read(shared, write.key(), bytes.value())?),
        None => None,
    };
    let (key, event_type, mut object) = match write {
        Write::Create { key, object } => {
            if current.is_some() {
                return Ok(Err(Error::AlreadyExists { key }));
            }
            (key, EventType::Added, object)
        }
        Write::Update {
            key,
            object,
            preconditions,
        } => {
            let Some(current) = current else {
                return Ok(Err(Error::NotFound { key }));
            };
            if let Err(reason) = check(&key, &preconditions, &current)? {
                return Ok(Err(Error::Conflict { key, reason }));
            }
            (key, EventType::Modified, object)
        }
        Write::Delete { key, preconditions } => {
            let Some(current) = current else {
                return Ok(Err(Error::NotFound { key }));
            };
            if let Err(reason) = check(&key, &preconditions, &current)? {
                return Ok(Err(Error::Conflict { key, reason }));
            }
            let last = current.value(&key)?;
            (key, EventType::Deleted, last)
        }
    };
    stamp_revision(&mut object, revision);
    let encoded = match encoded {
        Some(encoded) => encoded,
        None => Encoded::new(&object).map_err(|source| Error::Corrupt {
            key: key.clone(),
            source,
        })?,
    };
    let mut entry = Vec::with_capacity(5 + key.len() + encoded.len_with_revision());
    entry.push(event_type.tag());
    entry.extend_from_slice(&(key.len() as u32).to_be_bytes());
    entry.extend_from_slice(key.as_bytes());
    let json_at = entry.len();
    match shared.sealer.as_deref().filter(|s| s.covers(&key)) {
        Some(sealer) => {
            let mut json = Vec::with_capacity(encoded.len_with_revision());
            encoded.write_with_revision(&mut json, revision);
            sealer.seal(&key, &json, &mut entry);
        }
        None => encoded.write_with_revision(&mut entry, revision),
    }
    if event_type == EventType::Deleted {
        objects.remove(key.as_str())?;
    } else {
        let json = &entry[json_at..];
        let mut stored = Vec::with_capacity(8 + json.len());
        stored.extend_from_slice(&revision.to_be_bytes());
        stored.extend_from_slice(json);
        objects.insert(key.as_str(), stored.as_slice())?;
    }
    log.insert(revision, entry.as_slice())?;
    Ok(Ok(WatchEvent {
        revision,
        event_type,
        key,
        object: Arc::new(object),
    }))
}

/// A stored object as read by the writer: its revision, its JSON unparsed.
struct Current {
    revision: Revision,
    json: Vec<u8>,
}

impl Current {
    fn read(shared: &Shared, key: &str, bytes: &[u8]) -> Result<Current> {
        if bytes.len() < 8 {
            return Err(Error::Backend(Arc::new(::redb::Error::Corrupted(format!(
                "object at {key} is truncated"
            )))));
        }
        Ok(Current {
            revision: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            json: open(shared, key, &bytes[8..])?.into_owned(),
        })
    }

    fn value(&self, key: &str) -> Result<Value> {
        serde_json::from_slice(&self.json).map_err(|source| Error::Corrupt {
            key: key.to_string(),
            source,
        })
    }
}

/// Whether the preconditions hold (inner `Err` says why not); the outer
/// `Result` is a corrupt stored object.
fn check(
    key: &str,
    preconditions: &Preconditions,
    current: &Current,
) -> Result<Result<(), String>> {
    if let Some(revision) = preconditions.revision
        && revision != current.revision
    {
        return Ok(Err(format!(
            "resourceVersion {revision} is stale, the latest is {}",
            current.revision
        )));
    }
    if let Some(uid) = &preconditions.uid {
        let value = current.value(key)?;
        let actual = value.pointer("/metadata/uid").and_then(Value::as_str);
        if actual != Some(uid.as_str()) {
            return Ok(Err(format!(
                "uid {uid} does not match the object's uid {}",
                actual.unwrap_or("<none>")
            )));
        }
    }
    Ok(Ok(()))
}

/// Drops log entries older than the retained window, in one transaction.
fn compact(shared: &Shared, retained: u64) -> Result<()> {
    let revision = shared.revision.load(Ordering::Acquire);
    let target = revision.saturating_sub(retained);
    let compacted = shared.compacted.load(Ordering::Acquire);
    if target <= compacted {
        return Ok(());
    }
    let txn = shared.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        log.retain_in(..=target, |_, _| false)?;
        txn.open_table(META)?.insert("compacted", target)?;
        tracing::debug!(target, remaining = log.len()?, "compacted the revision log");
    }
    txn.commit()?;
    shared.compacted.store(target, Ordering::Release);
    Ok(())
}

/// The JSON of a value stored at `key`, decrypted if it was sealed.
fn open<'a>(shared: &Shared, key: &str, stored: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    seal::open_with(shared.sealer.as_deref(), key, stored)
        .map_err(|e| Error::Backend(Arc::new(::redb::Error::Corrupted(e.to_string()))))
}

fn decode_object(shared: &Shared, key: &str, bytes: &[u8]) -> Result<(Revision, Value)> {
    if bytes.len() < 8 {
        return Err(Error::Backend(Arc::new(::redb::Error::Corrupted(format!(
            "object at {key} is truncated"
        )))));
    }
    let revision = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let json = open(shared, key, &bytes[8..])?;
    let object = serde_json::from_slice(&json).map_err(|source| Error::Corrupt {
        key: key.to_string(),
        source,
    })?;
    Ok((revision, object))
}

/// A log entry as a watch event, if its key is under `prefix` (others are
/// not parsed).
fn decode_event(
    shared: &Shared,
    revision: Revision,
    bytes: &[u8],
    prefix: &str,
) -> Result<Option<WatchEvent>> {
    let corrupt = || {
        Error::Backend(Arc::new(::redb::Error::Corrupted(format!(
            "log entry {revision} is malformed"
        ))))
    };
    let event_type = bytes
        .first()
        .and_then(|tag| EventType::from_tag(*tag))
        .ok_or_else(corrupt)?;
    let len = bytes
        .get(1..5)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(corrupt)?;
    let key = bytes
        .get(5..5 + len)
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or_else(corrupt)?;
    if !key.starts_with(prefix) {
        return Ok(None);
    }
    let json = open(shared, key, &bytes[5 + len..])?;
    let object = serde_json::from_slice(&json).map_err(|source| Error::Corrupt {
        key: key.to_string(),
        source,
    })?;
    Ok(Some(WatchEvent {
        revision,
        event_type,
        key: key.to_string(),
        object: Arc::new(object),
    }))
}
