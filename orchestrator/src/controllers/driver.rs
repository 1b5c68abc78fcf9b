//! The loop controllers share: watch some resources, mark the namespace of
//! every change dirty, reconcile each dirty namespace as a whole, and come
//! back when a reconcile asks to (a deadline, a pod turning available) or
//! when the periodic pass repairs what a lost watch missed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::registry::metadata::text;
use crate::registry::{Error, ListOptions, Registry, Resource, Result};

/// What a controller does with one namespace.
pub trait Reconciler: Send + Sync + 'static {
    /// Brings `namespace` in line; `Ok(Some(d))` asks to be called again
    /// for it after `d` even if nothing changes.
    fn reconcile(&self, namespace: &str) -> impl Future<Output = Result<Option<Duration>>> + Send;
}

/// When a namespace's pass should come back, from what its objects'
/// syncs said: the soonest time one asked for, soon after a lost race (the
/// object changed or went meanwhile); any other error ends the pass.
#[derive(Debug, Default)]
pub struct Again(Option<Duration>);

impl Again {
    pub fn note(&mut self, result: Result<Option<Duration>>) -> Result<()> {
        match result {
            Ok(Some(after)) => self.within(after),
            Ok(None) => {}
            Err(Error::NotFound { .. } | Error::Conflict { .. } | Error::AlreadyExists { .. }) => {
                self.within(Duration::from_millis(100))
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn within(&mut self, after: Duration) {
        self.0 = Some(self.0.map_or(after, |a| a.min(after)));
    }

    pub fn when(self) -> Option<Duration> {
        self.0
    }
}

/// How often a controller looks: a full pass at least every `resync`,
/// and passes at most every `batch` (changes meanwhile wait and are done
/// together, so a burst of writes costs a few passes, not one each).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub resync: Duration,
    pub batch: Duration,
}

/// A resource a controller follows, and which of its changes concern it.
#[derive(Clone)]
pub struct Watched {
    pub resource: Resource,
    /// Whether a change to this object can give the controller work
    /// (deletions always can).
    pub relevant: fn(&Value) -> bool,
}

impl From<Resource> for Watched {
    /// Every change is relevant.
    fn from(resource: Resource) -> Watched {
        Watched {
            resource,
            relevant: |_| true,
        }
    }
}

/// Runs `reconciler` over the namespaces of `watched` until `stop` turns
/// true.
pub async fn run<R: Reconciler>(
    registry: Registry,
    name: &'static str,
    watched: Vec<Watched>,
    pace: Pace,
    reconciler: R,
    mut stop: watch::Receiver<bool>,
) {
    let (changes, mut changed) = mpsc::unbounded_channel::<Option<String>>();
    let mut watchers = tokio::task::JoinSet::new();
    for watch in watched {
        let registry = registry.clone();
        let changes = changes.clone();
        watchers.spawn(follow(registry, watch, changes));
    }
    let mut tick = tokio::time::interval(pace.resync);
    let mut last_pass = Instant::now() - pace.batch;
    let mut dirty = BTreeSet::new();
    let mut due: BTreeMap<String, Instant> = BTreeMap::new();
    let mut everything = true;
    loop {
        if everything {
            dirty.extend(namespaces(&registry));
            everything = false;
        }
        if !dirty.is_empty() {
            let since = last_pass.elapsed();
            if since < pace.batch {
                tokio::time::sleep(pace.batch - since).await;
                while let Ok(more) = changed.try_recv() {
                    match more {
                        Some(namespace) => {
                            dirty.insert(namespace);
                        }
                        None => dirty.extend(namespaces(&registry)),
                    }
                }
            }
            last_pass = Instant::now();
        }
        for namespace in std::mem::take(&mut dirty) {
            let again = match reconciler.reconcile(&namespace).await {
                Ok(again) => again,
                Err(e) => {
                    tracing::debug!("{name}: namespace {namespace}: {e}; retrying");
                    Some(Duration::from_millis(500))
                }
            };
            if let Some(after) = again {
                let at = Instant::now() + after;
                let entry = due.entry(namespace).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
        let next = due.values().min().copied();
        tokio::select! {
            change = changed.recv() => {
                let mut all = vec![change.flatten()];
                let mut lost = false;
                while let Ok(more) = changed.try_recv() {
                    all.push(more);
                }
                for change in all {
                    match change {
                        Some(namespace) => { dirty.insert(namespace); }
                        None => lost = true,
                    }
                }
                everything |= lost;
            }
            _ = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let ready: Vec<String> = due.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
                for namespace in ready {
                    due.remove(&namespace);
                    dirty.insert(namespace);
                }
            }
            _ = tick.tick() => everything = true,
            _ = stop.changed() => {
                watchers.abort_all();
                return;
            }
        }
    }
}

/// Sends the namespace of every relevant change to the watched resource;
/// `None` when the watch had to start again (changes may have been missed).
async fn follow(
    registry: Registry,
    watched: Watched,
    changes: mpsc::UnboundedSender<Option<String>>,
) {
    loop {
        let revision = registry.store().revision();
        let Ok(mut watch) = registry.watch(&watched.resource, None, revision) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok(event)) = watch.next().await {
            // A deletion always counts: what was deleted may be an owner.
            let deleted = event.event_type == crate::store::EventType::Deleted;
            if !deleted && !(watched.relevant)(&event.object) {
                continue;
            }
            let namespace = event
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if changes.send(Some(namespace)).is_err() {
                return;
            }
        }
        if changes.send(None).is_err() {
            return;
        }
    }
}

/// Every namespace: a full pass looks at each.
fn namespaces(registry: &Registry) -> BTreeSet<String> {
    let namespaces = registry.resource("", "Namespace");
    registry
        .list(&namespaces, None, &ListOptions::default())
        .map(|listed| {
            listed
                .items
                .iter()
                .map(|n| text(n, "/metadata/name").to_string())
                .collect()
        })
        .unwrap_or_default()
}
