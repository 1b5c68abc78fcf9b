//! Informer caches: the objects of one resource held in memory, kept
//! current by a watch, shared by every in-process reader (controllers,
//! the scheduler).
//!
//! A controller that lists pods on every pass would otherwise decode each
//! pod from the store each time; a cache decodes nothing (it keeps the
//! objects the store hands its watchers) and a read costs a reference
//! count per object.
//!
//! Reads are as fresh as a read of the store: each waits until the cache
//! has applied every revision the store had committed when the read began.
//! So a controller that has just created pods sees them on its next pass
//! and never makes them twice.
//!
//! A reader that needs only a little of each object (the Event expirer:
//! when each was last written) keeps that instead ([`Kept`]): a pod's
//! Events held whole were as large as the pod.
//!
//! A cached object is the one the store's watchers get, shared, until
//! the store's window of recent changes lets go of it; then it loses its
//! `managedFields`, in place: the fields each manager owns were most of a
//! pod's memory, the entries without them still a fifth of what a cached
//! pod kept, and only the API's writes read them, from the store. So an
//! object read here is no body to write back whole: change it through
//! `update_with`, which starts from the stored object.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::{Error, LabelSelector, Resource, Result};
use crate::registry::metadata::At;
use crate::store::{self, EventType, Revision, Step, Store};

/// How long a read waits for its cache to catch up before it fails (a
/// cache that cannot list the store keeps trying meanwhile).
const CATCH_UP_WITHIN: Duration = Duration::from_secs(10);

/// How often a cache looks for objects it can trim (see [`Kept::trim`]).
const TRIM_EVERY: Duration = Duration::from_secs(2);

/// What a cache keeps of each object.
pub trait Kept: Send + Sync + 'static {
    /// What is kept of `object`.
    fn keep(object: &Arc<Value>) -> Arc<Self>;
    /// Whether a list selecting `labels` includes it.
    fn selected_by(&self, labels: &LabelSelector) -> bool;
    /// Lets go of what the cache need not hold, once `kept` is the
    /// cache's alone; false while it is still shared (asked again later).
    fn trim(_kept: &mut Arc<Self>) -> bool {
        true
    }
}

/// The object itself, less its `managedFields` once trimmed.
impl Kept for Value {
    fn keep(object: &Arc<Value>) -> Arc<Value> {
        Arc::clone(object)
    }

    fn selected_by(&self, labels: &LabelSelector) -> bool {
        labels.matches(self)
    }

    fn trim(kept: &mut Arc<Value>) -> bool {
        if kept.at("/metadata/managedFields").is_none() {
            return true;
        }
        let Some(object) = Arc::get_mut(kept) else {
            return false;
        };
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        // Copied into pages of long-lived memory: the object was decoded
        // among the passing traffic of requests and watches, and left
        // where it was, it kept that traffic's pages from being handed
        // back once it had gone.
        *kept = wasmkube_runtime::heap::long_lived_now(|| Arc::new(Value::clone(kept)));
        true
    }
}

/// The objects of one resource (what `T` keeps of each), as of a revision.
pub struct Cache<T: Kept = Value> {
    resource: Resource,
    store: Arc<dyn Store>,
    /// Store key -> object.
    objects: RwLock<BTreeMap<String, Arc<T>>>,
    /// The revision of the last change `objects` holds: written under its
    /// write lock, so a reader holding the read lock sees the two agree.
    applied: AtomicU64,
    /// The revision the objects are current to; closed when the cache
    /// stops following the store.
    progress: watch::Receiver<Revision>,
    /// True once the registry's caches are stopped.
    stopped: watch::Receiver<bool>,
}

impl<T: Kept> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("resource", &self.resource.plural)
            .field("revision", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}

impl<T: Kept> Cache<T> {
    /// The objects (of `namespace`, or all) whose labels match, in key
    /// order, as of at least the store's revision now.
    pub async fn list(
        &self,
        namespace: Option<&str>,
        labels: &LabelSelector,
    ) -> Result<Vec<Arc<T>>> {
        self.fresh().await?;
        Ok(self.list_held(namespace, labels))
    }

    /// One object, as of at least the store's revision now.
    pub async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Option<Arc<T>>> {
        self.fresh().await?;
        Ok(self.get_held(namespace, name))
    }

    /// [`list`](Self::list) of what the cache holds now, without waiting:
    /// for a reader that has just waited with [`caught_up`](Self::caught_up).
    pub fn list_held(&self, namespace: Option<&str>, labels: &LabelSelector) -> Vec<Arc<T>> {
        let prefix = self.resource.namespace_prefix(namespace);
        Self::select(&self.objects.read().expect("cache lock"), &prefix, labels)
    }

    /// The objects under `prefix` whose labels match, in key order.
    fn select(
        objects: &BTreeMap<String, Arc<T>>,
        prefix: &str,
        labels: &LabelSelector,
    ) -> Vec<Arc<T>> {
        objects
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, object)| object.selected_by(labels))
            .map(|(_, object)| Arc::clone(object))
            .collect()
    }

    /// [`list`](Self::list), with the revision the objects are exactly
    /// current to: a watch from that revision goes on from the list with
    /// no change missed and none seen twice.
    pub async fn snapshot(
        &self,
        namespace: Option<&str>,
        labels: &LabelSelector,
    ) -> Result<(Vec<Arc<T>>, Revision)> {
        self.fresh().await?;
        let prefix = self.resource.namespace_prefix(namespace);
        let objects = self.objects.read().expect("cache lock");
        let listed = Self::select(&objects, &prefix, labels);
        Ok((listed, self.applied.load(Ordering::Acquire)))
    }

    /// [`get`](Self::get) of what the cache holds now, without waiting.
    pub fn get_held(&self, namespace: Option<&str>, name: &str) -> Option<Arc<T>> {
        let key = self.resource.key(namespace, name);
        self.objects.read().expect("cache lock").get(&key).cloned()
    }

    /// Waits until the cache holds everything the store has committed up
    /// to `revision` (then the `_held` reads are that fresh).
    pub async fn caught_up_to(&self, revision: Revision) -> Result<()> {
        self.fresh_to(revision).await
    }

    /// Waits until the cache has applied everything the store has
    /// committed so far.
    async fn fresh(&self) -> Result<()> {
        self.fresh_to(self.store.revision()).await
    }

    /// Waits until the cache has applied everything up to `target`.
    async fn fresh_to(&self, target: Revision) -> Result<()> {
        if *self.stopped.borrow() {
            return Err(store::Error::Closed.into());
        }
        if *self.progress.borrow() >= target {
            return Ok(());
        }
        let mut progress = self.progress.clone();
        match tokio::time::timeout(CATCH_UP_WITHIN, progress.wait_for(|at| *at >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(store::Error::Closed.into()),
            Err(_) => Err(Error::Timeout(format!(
                "the cache of {} has not caught up with revision {target} of the store",
                self.resource.plural
            ))),
        }
    }

    /// Fills the cache from a list, then applies the watch from there;
    /// starts again from a list if the watch cannot resume.
    async fn follow(
        self: Arc<Cache<T>>,
        progress: watch::Sender<Revision>,
        mut stop: watch::Receiver<bool>,
    ) {
        let prefix = self.resource.prefix();
        let mut trim = tokio::time::interval(TRIM_EVERY);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The keys of the objects written since they were last trimmed:
        // a pass looks at those alone, not at every object held.
        let mut untrimmed = HashSet::new();
        loop {
            let filled = self.fill(&prefix, &mut untrimmed);
            let mut watching = match filled {
                Ok(revision) => {
                    progress.send_replace(revision);
                    self.store.watch(&prefix, revision)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &watching {
                tracing::warn!("cache of {}: {e}; starting again", self.resource.plural);
            }
            while let Ok(watch) = &mut watching {
                let step = tokio::select! {
                    step = watch.step() => step,
                    _ = trim.tick(), if !untrimmed.is_empty() => {
                        self.trim(&mut untrimmed);
                        continue;
                    }
                    _ = stop.changed() => return,
                };
                match step {
                    Some(Ok(step)) => {
                        let mut at = self.apply(step, &mut untrimmed);
                        // What has already been committed is applied too
                        // before readers are told.
                        while let Some(Ok(step)) = watch.try_step() {
                            at = self.apply(step, &mut untrimmed);
                        }
                        progress.send_replace(at);
                    }
                    Some(Err(e)) => {
                        tracing::debug!("cache of {}: {e}; listing again", self.resource.plural);
                        break;
                    }
                    None => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Trims each object of `untrimmed` that is the cache's alone (see
    /// [`Kept::trim`]); those still shared stay for the next pass.
    fn trim(&self, untrimmed: &mut HashSet<String>) {
        let mut objects = self.objects.write().expect("cache lock");
        untrimmed.retain(|key| objects.get_mut(key).is_some_and(|object| !T::trim(object)));
    }

    /// Replaces the objects with a list of the store (their keys are all
    /// `untrimmed` then); its revision.
    fn fill(&self, prefix: &str, untrimmed: &mut HashSet<String>) -> store::Result<Revision> {
        let page = self.store.list(prefix, None, 0)?;
        let mut objects = BTreeMap::new();
        for object in page.items {
            let key = self.resource.key(
                object.at("/metadata/namespace").and_then(Value::as_str),
                object
                    .at("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            objects.insert(key, T::keep(&Arc::new(object)));
        }
        *untrimmed = objects.keys().cloned().collect();
        let mut held = self.objects.write().expect("cache lock");
        *held = objects;
        self.applied.store(page.revision, Ordering::Release);
        Ok(page.revision)
    }

    /// Applies one step of the watch (the key of an object it writes
    /// joins `untrimmed`); the revision the cache is now at.
    fn apply(&self, step: Step, untrimmed: &mut HashSet<String>) -> Revision {
        match step {
            Step::Passed(revision) => revision,
            Step::Event(event) => {
                let mut objects = self.objects.write().expect("cache lock");
                if event.event_type == EventType::Deleted {
                    objects.remove(&event.key);
                } else {
                    objects.insert(event.key.clone(), T::keep(&event.object));
                    untrimmed.insert(event.key.clone());
                }
                self.applied.store(event.revision, Ordering::Release);
                event.revision
            }
        }
    }
}

/// The caches of one registry, made the first time each is asked for.
#[derive(Default)]
pub(super) struct Caches {
    /// By resource prefix and what each keeps: `Arc<Cache<T>>`.
    by_resource: Mutex<HashMap<(String, TypeId), Arc<dyn Any + Send + Sync>>>,
    /// Turned true (or dropped with the last registry) to stop them all.
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl Caches {
    /// The cache of `resource`, started now if it was not (which needs a
    /// tokio runtime).
    pub(super) fn get<T: Kept>(
        &self,
        store: &Arc<dyn Store>,
        resource: &Resource,
    ) -> Arc<Cache<T>> {
        let key = (resource.prefix(), TypeId::of::<T>());
        let mut by_resource = self.by_resource.lock().expect("caches lock");
        if let Some(cache) = by_resource.get(&key) {
            return Arc::clone(cache)
                .downcast()
                .expect("a cache is filed under what it keeps");
        }
        let stop = self
            .stop
            .lock()
            .expect("caches lock")
            .get_or_insert_with(|| watch::channel(false).0)
            .subscribe();
        let (progress, following) = watch::channel(0);
        let cache = Arc::new(Cache {
            resource: resource.clone(),
            store: Arc::clone(store),
            objects: RwLock::default(),
            applied: AtomicU64::new(0),
            progress: following,
            stopped: stop.clone(),
        });
        // Until the first fill, readers wait (revision 0 is never current
        // once anything has been written).
        tokio::spawn(Arc::clone(&cache).follow(progress, stop));
        by_resource.insert(key, Arc::clone(&cache) as Arc<dyn Any + Send + Sync>);
        cache
    }

    /// Stops every cache; reads of them fail from then on, and a cache
    /// asked for afterwards starts anew.
    pub(super) fn stop(&self) {
        if let Some(stop) = self.stop.lock().expect("caches lock").take() {
            let _ = stop.send(true);
        }
        self.by_resource.lock().expect("caches lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{DeleteOptions, Registry, Resources, WriteOptions};
    use crate::store::{RedbStore, StoreOptions, WatchWindow};
    use serde_json::json;

    /// A registry with the namespaces `default` and `other`.
    async fn registry(dir: &std::path::Path) -> Registry {
        registry_with(dir, StoreOptions::default()).await
    }

    async fn registry_with(dir: &std::path::Path, options: StoreOptions) -> Registry {
        let store = RedbStore::open(&dir.join("store.redb"), options).unwrap();
        let registry = Registry::new(Arc::new(store), Resources::builtin());
        let namespaces = registry.resource("", "Namespace");
        for name in ["default", "other"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            registry
                .create(&namespaces, None, body, &WriteOptions::manager("test"))
                .await
                .unwrap();
        }
        registry
    }

    /// `object` less its `managedFields`.
    fn trimmed(object: &Value) -> Value {
        let mut object = Arc::new(object.clone());
        assert!(Value::trim(&mut object), "not shared");
        Arc::into_inner(object).unwrap()
    }

    fn names(objects: &[Arc<Value>]) -> Vec<&str> {
        objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    async fn make(registry: &Registry, kind: &str, namespace: &str, name: &str, app: &str) {
        let resource = registry.resource("", kind);
        let body = json!({"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "labels": {"app": app}}, "data": {}});
        registry
            .create(
                &resource,
                Some(namespace),
                body,
                &WriteOptions::manager("test"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reads_see_every_acknowledged_write_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        make(&registry, "ConfigMap", "default", "before", "a").await;
        let config_maps = registry.resource("", "ConfigMap");
        let cache = registry.cache(&config_maps);
        let all = LabelSelector::default();
        assert_eq!(names(&cache.list(None, &all).await.unwrap()), ["before"]);
        // Writes to other resources move the store on; the cache keeps up.
        for i in 0..50 {
            make(
                &registry,
                "ConfigMap",
                "default",
                &format!("cm-{i:02}"),
                "b",
            )
            .await;
            make(&registry, "Secret", "default", &format!("s-{i:02}"), "b").await;
            let listed = cache.list(Some("default"), &all).await.unwrap();
            assert_eq!(listed.len(), i + 2, "after cm-{i:02}");
        }
        let registry_view = registry
            .list(&config_maps, Some("default"), &Default::default())
            .unwrap();
        let cached = cache.list(Some("default"), &all).await.unwrap();
        assert_eq!(cached.len(), registry_view.items.len());
        for (cached, stored) in cached.iter().zip(&registry_view.items) {
            // The same object, its `managedFields` there or trimmed.
            assert!(stored.at("/metadata/managedFields/0/fieldsV1").is_some());
            assert_eq!(trimmed(cached), trimmed(stored));
        }
        registry
            .delete(
                &config_maps,
                Some("default"),
                "before",
                &DeleteOptions::default(),
            )
            .await
            .unwrap();
        assert!(
            cache
                .get(Some("default"), "before")
                .await
                .unwrap()
                .is_none()
        );
        assert!(cache.get(Some("default"), "cm-07").await.unwrap().is_some());
        registry.stop_caches();
    }

    #[tokio::test]
    async fn lists_by_namespace_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        make(&registry, "ConfigMap", "default", "x", "web").await;
        make(&registry, "ConfigMap", "default", "y", "db").await;
        make(&registry, "ConfigMap", "other", "z", "web").await;
        let cache = registry.cache(&registry.resource("", "ConfigMap"));
        let web = LabelSelector::parse("app=web").unwrap();
        assert_eq!(names(&cache.list(None, &web).await.unwrap()), ["x", "z"]);
        assert_eq!(
            names(&cache.list(Some("default"), &web).await.unwrap()),
            ["x"]
        );
        assert_eq!(
            names(
                &cache
                    .list(Some("default"), &LabelSelector::default())
                    .await
                    .unwrap()
            ),
            ["x", "y"]
        );
        registry.stop_caches();
        assert!(
            cache.list(None, &web).await.is_err(),
            "a stopped cache says so"
        );
    }

    #[tokio::test]
    async fn objects_lose_their_managed_fields_once_the_watch_window_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            watch_window: WatchWindow::last(16),
            ..StoreOptions::default()
        };
        let registry = registry_with(dir.path(), options).await;
        let cache = registry.cache(&registry.resource("", "ConfigMap"));
        let all = LabelSelector::default();
        make(&registry, "ConfigMap", "default", "kept", "a").await;
        let fresh = cache.get(Some("default"), "kept").await.unwrap().unwrap();
        // As the store's watchers have it, while the window shares it.
        assert!(fresh.at("/metadata/managedFields/0/fieldsV1").is_some());
        drop(fresh);
        for i in 0..32 {
            make(&registry, "Secret", "default", &format!("s-{i:02}"), "b").await;
        }
        assert_eq!(cache.list(None, &all).await.unwrap().len(), 1);
        let deadline = std::time::Instant::now() + 4 * TRIM_EVERY;
        loop {
            let kept = cache.get(Some("default"), "kept").await.unwrap().unwrap();
            if kept.at("/metadata/managedFields").is_none() {
                assert_eq!(kept["metadata"]["labels"]["app"], "a");
                assert_eq!(kept["metadata"]["name"], "kept");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still holds its managedFields"
            );
            drop(kept);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry.stop_caches();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_from_a_snapshot_goes_on_with_no_change_missed_or_seen_twice() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        let config_maps = registry.resource("", "ConfigMap");
        let cache = registry.cache(&config_maps);
        let all = LabelSelector::default();
        // Writes go on while the snapshot is taken.
        let writer = registry.clone();
        let writing = tokio::spawn(async move {
            for i in 0..200 {
                make(&writer, "ConfigMap", "default", &format!("cm-{i:03}"), "a").await;
            }
        });
        while cache.list(None, &all).await.unwrap().len() < 20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (listed, revision) = cache.snapshot(None, &all).await.unwrap();
        assert!(listed.len() < 200, "the snapshot came after the writes");
        let mut seen: std::collections::BTreeSet<String> =
            names(&listed).into_iter().map(str::to_string).collect();
        let mut watch = registry.watch(&config_maps, None, revision).unwrap();
        while seen.len() < 200 {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("every change comes")
                .unwrap()
                .unwrap();
            let name = event.object["metadata"]["name"].as_str().unwrap();
            assert!(
                seen.insert(name.to_string()),
                "{name} was listed and watched"
            );
        }
        writing.await.unwrap();
        registry.stop_caches();
    }

    #[tokio::test]
    async fn a_cache_that_falls_behind_the_watch_window_catches_up_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            watch_window: WatchWindow::last(64),
            ..StoreOptions::default()
        };
        let registry = registry_with(dir.path(), options).await;
        let cache = registry.cache(&registry.resource("", "ConfigMap"));
        let all = LabelSelector::default();
        assert!(cache.list(None, &all).await.unwrap().is_empty());
        // More writes than the window holds, made while the cache cannot run: this test's runtime has one thread, and it is
        // blocked on the writing thread.
        let writer = registry.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let config_maps = writer.resource("", "ConfigMap");
                let options = WriteOptions::manager("test");
                let writes = (0..5000).map(|i| {
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("cm-{i:04}")}});
                    writer.create(&config_maps, Some("default"), body, &options)
                });
                for written in futures::future::join_all(writes).await {
                    written.unwrap();
                }
            });
        })
        .join()
        .unwrap();
        assert_eq!(cache.list(None, &all).await.unwrap().len(), 5000);
        registry.stop_caches();
    }
}
