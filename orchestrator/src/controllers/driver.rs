//! The loop controllers share: watch some resources, mark the namespace of
//! every change dirty, reconcile each dirty namespace (each of its objects
//! on its own: one object's failure is retried with its own back-off and
//! never stops the others), and come back when a reconcile asks to (a
//! deadline, a pod turning available, a retry) or when the periodic pass
//! repairs what a lost watch missed. The namespaces waiting are the
//! controller's work queue, counted as client-go counts one
//! (`workqueue_*`).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::metrics::workqueue::QueueMetrics;
use crate::registry::metadata::{At, text};
use crate::registry::{Error, ListOptions, Registry, Resource, Result};

/// What a controller does with one namespace.
pub trait Reconciler: Send + Sync + 'static {
    /// Brings `namespace` in line; `Ok(Some(d))` asks to be called again
    /// for it after `d` even if nothing changes.
    fn reconcile(&self, namespace: &str) -> impl Future<Output = Result<Option<Duration>>> + Send;
}

/// Per-object retries of one controller: an object whose sync fails
/// (other than by a lost race) is logged at warn and tried again after
/// 500 ms, doubling with each failure in a row up to five minutes, while
/// the namespace's other objects go on being reconciled.
pub struct Retries {
    controller: &'static str,
    /// Failures in a row, by object uid.
    failures: Mutex<HashMap<String, u32>>,
    /// The controller's queue, which counts the retries.
    queue: Arc<QueueMetrics>,
}

impl std::fmt::Debug for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retries")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(300);

impl Retries {
    /// The retries of `controller`, running on `registry`.
    pub fn new(registry: &Registry, controller: &'static str) -> Retries {
        Retries {
            controller,
            failures: Mutex::default(),
            queue: queue_of(registry, controller),
        }
    }

    /// How long until `object` is tried again after another failure.
    fn failed(&self, object: &Value) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(uid(object)).or_insert(0);
        *count = count.saturating_add(1);
        self.queue.retried();
        FIRST_RETRY
            .saturating_mul(2u32.saturating_pow((*count - 1).min(20)))
            .min(LAST_RETRY)
    }

    fn succeeded(&self, object: &Value) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.is_empty() {
            failures.remove(&uid(object));
        }
    }
}

fn uid(object: &Value) -> String {
    text(object, "/metadata/uid").to_string()
}

/// When a namespace's pass should come back, from what its objects'
/// syncs said: the soonest time one asked for, soon after a lost race (the
/// object changed or went meanwhile), or its object's back-off after a
/// failure.
#[derive(Debug)]
pub struct Again<'a> {
    retries: &'a Retries,
    soonest: Option<Duration>,
}

impl<'a> Again<'a> {
    pub fn new(retries: &'a Retries) -> Again<'a> {
        Again {
            retries,
            soonest: None,
        }
    }

    /// What the sync of `object` said.
    pub fn note(&mut self, object: &Value, result: Result<Option<Duration>>) {
        match result {
            Ok(after) => {
                self.retries.succeeded(object);
                if let Some(after) = after {
                    self.within(after);
                }
            }
            Err(Error::NotFound { .. } | Error::Conflict { .. } | Error::AlreadyExists { .. }) => {
                self.within(Duration::from_millis(100))
            }
            Err(e) => {
                let after = self.retries.failed(object);
                tracing::warn!(
                    "{}: {} {}/{}: {e}; retrying in {after:?}",
                    self.retries.controller,
                    text(object, "/kind"),
                    text(object, "/metadata/namespace"),
                    text(object, "/metadata/name"),
                );
                self.within(after);
            }
        }
    }

    fn within(&mut self, after: Duration) {
        self.soonest = Some(self.soonest.map_or(after, |a| a.min(after)));
    }

    pub fn when(self) -> Option<Duration> {
        self.soonest
    }
}

/// How often a controller looks: a full pass at least every `resync`,
/// and passes at most every `batch` (changes meanwhile wait and are done
/// together, so a burst of writes costs a few passes, not one each). A pass
/// that took longer than `batch` is followed by a rest as long (up to
/// [`LONGEST_REST`]): a controller whose passes are long, with ten
/// thousand pods to look at, takes half a core at most and leaves the
/// rest to the pods it waits for.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub resync: Duration,
    pub batch: Duration,
}

impl Pace {
    /// The workload controllers' pace: a full pass every 10 s, passes at
    /// most every 50 ms.
    pub const WORKLOADS: Pace = Pace {
        resync: Duration::from_secs(10),
        batch: Duration::from_millis(50),
    };
}

/// The longest rest after a long pass.
const LONGEST_REST: Duration = Duration::from_secs(1);

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

/// The metrics of `controller`'s queue, under the name
/// kube-controller-manager gives it.
fn queue_of(registry: &Registry, controller: &str) -> Arc<QueueMetrics> {
    let name = match controller {
        "deployment-controller" => "deployment",
        "replicaset-controller" => "replicaset",
        "replication-controller" => "replicationmanager",
        "job-controller" => "job",
        "cronjob-controller" => "cronjob",
        "daemonset-controller" => "daemonset",
        "statefulset-controller" => "statefulset",
        "disruption-controller" => "disruption",
        "endpoint-controller" => "endpoint",
        "garbage-collector" => "garbage_collector_attempt_to_delete",
        "resourcequota-controller" => "resourcequota_primary",
        "persistentvolume-controller" => "volumes",
        "root-ca-cert-publisher" => "root_ca_cert_publisher",
        "service-account-controller" => "serviceaccount",
        "clusterrole-aggregation-controller" => "ClusterRoleAggregator",
        other => other,
    };
    registry.work_queues().queue(name)
}

/// The namespaces waiting for a pass, with when each began to wait.
struct Dirty {
    waiting: BTreeMap<String, Instant>,
    queue: Arc<QueueMetrics>,
}

impl Dirty {
    /// `namespace` waits (if it was not waiting already).
    fn add(&mut self, namespace: String) {
        if let Entry::Vacant(entry) = self.waiting.entry(namespace) {
            entry.insert(Instant::now());
            self.queue.added();
        }
    }

    fn extend(&mut self, namespaces: impl IntoIterator<Item = String>) {
        namespaces.into_iter().for_each(|n| self.add(n));
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Every waiting namespace, with when it began to wait.
    fn take(&mut self) -> BTreeMap<String, Instant> {
        std::mem::take(&mut self.waiting)
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
    // When the last pass ended, and how long it took.
    let mut last_pass = Instant::now() - pace.batch;
    let mut took = Duration::ZERO;
    let queue = queue_of(&registry, name);
    let mut dirty = Dirty {
        waiting: BTreeMap::new(),
        queue: Arc::clone(&queue),
    };
    let mut due: BTreeMap<String, Instant> = BTreeMap::new();
    let mut everything = true;
    loop {
        if everything {
            dirty.extend(namespaces(&registry));
            everything = false;
        }
        let working = !dirty.is_empty();
        if working {
            let rest = pace.batch.max(took.min(LONGEST_REST));
            let since = last_pass.elapsed();
            if since < rest {
                tokio::time::sleep(rest - since).await;
                while let Ok(more) = changed.try_recv() {
                    match more {
                        Some(namespace) => dirty.add(namespace),
                        None => dirty.extend(namespaces(&registry)),
                    }
                }
            }
        }
        let started = Instant::now();
        for (namespace, waiting_since) in dirty.take() {
            let _working = queue.taken(waiting_since.elapsed());
            let again = match reconciler.reconcile(&namespace).await {
                Ok(again) => again,
                Err(e) => {
                    tracing::warn!("{name}: namespace {namespace}: {e}; retrying");
                    queue.retried();
                    Some(FIRST_RETRY)
                }
            };
            if let Some(after) = again {
                let at = Instant::now() + after;
                let entry = due.entry(namespace).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
        if working {
            last_pass = Instant::now();
            took = last_pass - started;
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
                        Some(namespace) => dirty.add(namespace),
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
                    dirty.add(namespace);
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
/// `None` when every namespace may be concerned: a cluster-scoped object
/// changed, or the watch had to start again (changes may have been missed).
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
            // A change to a cluster-scoped object (a Node) may concern
            // every namespace.
            let namespace = event
                .object
                .at("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .map(str::to_string);
            if changes.send(namespace).is_err() {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_failing_object_backs_off_alone_and_resets_on_success() {
        let queues = crate::metrics::workqueue::WorkQueues::default();
        let retries = Retries {
            controller: "test",
            failures: Mutex::default(),
            queue: queues.queue("test"),
        };
        let (bad, good) = (
            json!({"metadata": {"uid": "bad", "name": "bad"}}),
            json!({"metadata": {"uid": "good", "name": "good"}}),
        );
        let failure = || Err(Error::Internal("broken".into()));
        let mut delays = Vec::new();
        for _ in 0..4 {
            let mut again = Again::new(&retries);
            again.note(&bad, failure());
            again.note(&good, Ok(Some(Duration::from_secs(600))));
            delays.push(again.when());
        }
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(4000)]);
        // A lost race is retried soon and does not count as a failure.
        let mut again = Again::new(&retries);
        again.note(
            &bad,
            Err(Error::Conflict {
                resource: "pods".into(),
                group: String::new(),
                name: "bad".into(),
                why: String::new(),
            }),
        );
        assert_eq!(again.when(), ms(100));
        let mut again = Again::new(&retries);
        again.note(&bad, Ok(None));
        again.note(&bad, failure());
        assert_eq!(again.when(), ms(500));
        for _ in 0..30 {
            retries.failed(&bad);
        }
        assert_eq!(retries.failed(&bad), LAST_RETRY);
    }
}
