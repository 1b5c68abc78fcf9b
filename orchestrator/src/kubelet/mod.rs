//! The kubelet: the node side of wasmkube. It registers the node, watches
//! the pods bound to it and runs each on the runtime (one worker per pod),
//! reporting status and events back through the registry, and serves their
//! logs.
//!
//! - [`pod_spec`]: a Pod's spec in the runtime's terms.
//! - [`sources`]: the ConfigMaps, Secrets and Services a pod refers to.
//! - [`volumes`]: the files of configMap, secret, downwardAPI and projected
//!   volumes, put in place by [`atomic_dir`].
//! - [`file_owners`]: `fsGroup` and `runAsUser` on files in volumes.
//! - [`host_ports`]: `hostPort` publishing.
//! - `exec`: `kubectl exec` in a pod's containers.
//! - `hooks`: preStop hooks within the grace period.
//! - [`ipam`]: pod IPs from the pod CIDR.
//! - [`node`]: the Node object and its heartbeat.
//! - `probes`: a container's probes in the runtime's terms.
//! - `worker`: one pod's life: images, start, status, termination.
//! - `status`: runtime status into a Pod's status.
//! - `logs`: `pods/log`.
//! - `stats`: the resource scrape behind `kubectl top` and autoscaling.

pub mod atomic_dir;
mod ephemeral;
pub mod file_owners;
mod hooks;
pub mod host_paths;
pub mod host_ports;
mod images;
pub mod ipam;
mod logs;
pub mod node;
pub mod pod_spec;
pub mod private_dir;
mod probes;
pub mod sources;
mod stats;
mod status;
mod streams;
pub mod tokens;
pub mod volumes;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use wasmkube_runtime::{Backoff, Runtime, RuntimeConfig};

use crate::cluster::ClusterConfig;
use crate::events::Recorder;
use crate::registry::metadata::At;
use crate::registry::{self, DeleteOptions, LabelSelector, Registry};
use crate::store::{EventType, Preconditions};

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the runtime")]
    Runtime(#[from] wasmkube_runtime::runtime::Error),
    #[error("cannot seed the built-in images")]
    Images(#[from] wasmkube_runtime::images::Error),
    #[error("cannot register the node")]
    Register(#[from] registry::Error),
}

/// The node name when none is configured: the host's name.
pub fn default_node_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    if name.is_empty() {
        "wasmkube".into()
    } else {
        name
    }
}

/// Where memory-backed volumes of the server with `data_dir` live: under
/// `/dev/shm` (a tmpfs on Linux), named after the data directory so servers
/// side by side keep apart.
pub fn memory_dir(data_dir: &std::path::Path) -> Option<PathBuf> {
    use sha2::Digest;
    let shm = std::path::Path::new("/dev/shm");
    let absolute = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let id = hex::encode(&sha2::Sha256::digest(absolute.as_os_str().as_encoded_bytes())[..8]);
    if shm.is_dir() {
        Some(shm.join(format!("wasmkube-{id}")))
    } else {
        tracing::warn!("no /dev/shm: Secret and projected volumes cannot be mounted");
        None
    }
}

/// What a worker is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Run,
    /// The pod is being deleted: stop it, clean up, remove the object.
    Delete,
    /// The server is stopping: stop the pod, keep everything for next time.
    Shutdown,
}

struct Worker {
    signal: watch::Sender<Signal>,
    /// The pod's `spec.ephemeralContainers`, for the worker to start.
    ephemeral: watch::Sender<Value>,
    task: tokio::task::JoinHandle<()>,
}

/// The node agent.
pub struct Kubelet {
    registry: Registry,
    node_name: String,
    runtime: Runtime,
    recorder: Recorder,
    backoff: Backoff,
    pods_dir: PathBuf,
    /// Memory-backed home of Secret and projected volumes and
    /// `emptyDir.medium: Memory`, one directory per pod; why not, where
    /// the host has no tmpfs or the directory was refused (those volumes
    /// then fail to mount: a Secret is never written to disk).
    memory_dir: Result<PathBuf, String>,
    /// What containers without limits may use (the downward API's view).
    allocatable: sources::Allocatable,
    /// Applies `runAsUser` to what guests create in volumes; `None` where
    /// inotify is unavailable.
    owners: Option<Arc<file_owners::Follower>>,
    /// Which host directories pods may mount.
    host_paths: host_paths::HostPathPolicy,
    /// Which containers get which of the embedder's host interfaces.
    interface_grants: pod_spec::InterfaceGrants,
    /// Pod IPs.
    ipam: ipam::Ipam,
    /// Running pods by uid, for exec.
    pods: Mutex<HashMap<String, streams::PodHandle>>,
    /// Running workers by pod uid.
    workers: Mutex<HashMap<String, Worker>>,
    /// When images are collected, and how often that is checked.
    image_gc: (wasmkube_runtime::images::gc::GcPolicy, Duration),
    /// ServiceAccount tokens for projected volumes.
    tokens: tokens::Tokens,
    /// The NetworkPolicies the pod network enforces; told of each pod IP
    /// as it is taken.
    network_policies: Arc<crate::network_policy::Table>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node_name", &self.node_name)
            .finish()
    }
}

/// How often the node's heartbeat is written.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// How often every pod is re-examined without a change.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

impl Kubelet {
    /// Starts the runtime and registers the node.
    pub async fn start(
        registry: Registry,
        config: &ClusterConfig,
        signer: Arc<crate::auth::Signer>,
    ) -> Result<Kubelet, Error> {
        let runtime = Runtime::new(RuntimeConfig {
            artifacts_dir: config.artifacts_dir.clone(),
            registry: config.registry.clone(),
            default_registry: config.default_registry.clone(),
            host_interfaces: config.host_interfaces.clone(),
            compiler: config.compiler.clone(),
            log_max_bytes: config.container_log_max_bytes,
            ..RuntimeConfig::new(&config.data_dir)
        })?;
        // No pull runs yet: what a killed server was pulling is litter.
        runtime.images().clear_unfinished()?;
        wasmkube_runtime::builtin::seed(runtime.images())?;
        node::register(
            &registry,
            &config.node_name,
            config.max_pods,
            &config.pod_cidr.to_string(),
        )
        .await?;
        // What an earlier run left (a kill leaves no chance to tidy) is
        // cleared: the workers write everything again as they start.
        let memory_dir = match memory_dir(&config.data_dir) {
            None => Err("this host has no memory-backed storage (/dev/shm)".to_string()),
            Some(dir) => private_dir::claim_memory_dir(&dir)
                .map(|()| dir)
                .map_err(|e| e.to_string()),
        };
        if let Err(why) = &memory_dir {
            tracing::error!(
                "Secret, projected and Memory emptyDir volumes cannot be mounted: {why}"
            );
        }
        let network_policies = Arc::new(crate::network_policy::Table::new(
            registry.service_network().dns_address().into(),
        ));
        runtime.cluster_net().set_policy(network_policies.clone());
        Ok(Kubelet {
            network_policies,
            recorder: Recorder::new(registry.clone(), "kubelet", Some(&config.node_name)),
            memory_dir,
            allocatable: sources::Allocatable::host(),
            owners: file_owners::Follower::start()
                .inspect_err(|e| tracing::warn!("no inotify: runAsUser cannot be applied: {e}"))
                .ok(),
            registry,
            node_name: config.node_name.clone(),
            runtime,
            backoff: config.backoff,
            pods_dir: config.data_dir.join("pods"),
            host_paths: host_paths::HostPathPolicy::new(
                &config.data_dir,
                config.allowed_host_paths.as_deref(),
            ),
            interface_grants: config.interface_grants.clone(),
            ipam: ipam::Ipam::new(config.pod_cidr),
            pods: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            image_gc: (config.image_gc, config.image_gc_period),
            tokens: tokens::Tokens::new(signer),
        })
    }

    /// What pods refer to, as it is now.
    fn sources(&self) -> sources::RegistrySources<'_> {
        sources::RegistrySources(&self.registry, &self.tokens)
    }

    /// The pods' and Services' network on this node.
    pub fn cluster_net(&self) -> Arc<wasmkube_runtime::net::ClusterNet> {
        Arc::clone(self.runtime.cluster_net())
    }

    /// The NetworkPolicy table the pod network asks.
    pub fn network_policies(&self) -> Arc<crate::network_policy::Table> {
        Arc::clone(&self.network_policies)
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Watches pods and keeps the node's pods running until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let pods = self.registry.resource("", "Pod");
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        let mut image_gc = tokio::time::interval(self.image_gc.1);
        image_gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let collecting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut watch = None;
        loop {
            if watch.is_none() {
                // List, sync everything, then follow changes from there.
                // The list is the informer cache's: no pod is decoded.
                self.forget_finished_workers();
                let cache = self.registry.cache(&pods);
                match cache.snapshot(None, &LabelSelector::default()).await {
                    Ok((listed, revision)) => {
                        for pod in &listed {
                            self.sync(pod, false);
                        }
                        watch = self.registry.watch(&pods, None, revision).ok();
                    }
                    Err(e) => tracing::warn!("kubelet cannot list pods: {e}"),
                }
            }
            let next = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        None
                    }
                }
            };
            tokio::select! {
                event = next => match event {
                    Some(Ok(event)) => self.sync(&event.object, event.event_type == EventType::Deleted),
                    _ => watch = None,
                },
                _ = heartbeat.tick() => {
                    if let Err(e) = node::heartbeat(&self.registry, &self.node_name).await {
                        tracing::warn!("node heartbeat: {e}");
                    }
                }
                _ = resync.tick() => watch = None,
                _ = image_gc.tick() => {
                    // Off the loop: collection waits for running pulls.
                    if !collecting.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        let kubelet = Arc::clone(&self);
                        let collecting = Arc::clone(&collecting);
                        tokio::spawn(async move {
                            kubelet.collect_images().await;
                            collecting.store(false, std::sync::atomic::Ordering::Release);
                        });
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Image garbage collection: images no pod bound to this node names go
    /// when the disk or the images' budget says so.
    async fn collect_images(&self) {
        let pods = self.registry.resource("", "Pod");
        let cache = self.registry.cache(&pods);
        let listed = match cache.list(None, &LabelSelector::default()).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("image garbage collection cannot list pods: {e}");
                return;
            }
        };
        let in_use: Vec<String> = listed
            .iter()
            .filter(|p| p.at("/spec/nodeName").and_then(Value::as_str) == Some(&self.node_name))
            .flat_map(|p| {
                ["/spec/containers", "/spec/initContainers"]
                    .into_iter()
                    .filter_map(|path| p.at(path).and_then(Value::as_array))
                    .flatten()
                    .filter_map(|c| c["image"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        match self.runtime.collect_images(self.image_gc.0, &in_use).await {
            Ok(report) if !report.removed.is_empty() => tracing::info!(
                removed = ?report.removed,
                freed = report.freed,
                "image garbage collection"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("image garbage collection: {e}"),
        }
    }

    /// Lets go of the workers whose pods have ended.
    fn forget_finished_workers(&self) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.retain(|_, w| !w.task.is_finished());
    }

    /// Brings one pod's worker in line with the pod object.
    fn sync(self: &Arc<Self>, pod: &Value, deleted: bool) {
        let node = pod
            .at("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node != self.node_name {
            return;
        }
        let uid = pod
            .at("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let deleting = pod.at("/metadata/deletionTimestamp").is_some();
        let mut workers = self.workers.lock().unwrap();
        // This pod's worker only: a sweep of all of them here made every
        // pod event cost as much as the node has pods.
        if workers.get(&uid).is_some_and(|w| w.task.is_finished()) {
            workers.remove(&uid);
        }
        let ephemeral = pod
            .at("/spec/ephemeralContainers")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(worker) = workers.get(&uid) {
            if deleted || deleting {
                worker.signal.send_if_modified(|s| {
                    let change = *s == Signal::Run;
                    *s = Signal::Delete;
                    change
                });
            } else {
                worker.ephemeral.send_if_modified(|e| {
                    let change = *e != ephemeral;
                    *e = ephemeral;
                    change
                });
            }
            return;
        }
        if deleted {
            return;
        }
        if deleting {
            // Nothing runs it (any more): finish the deletion.
            let kubelet = self.clone();
            let pod = pod.clone();
            tokio::spawn(async move { kubelet.finish_deletion(&pod).await });
            return;
        }
        let terminal = matches!(
            pod.at("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if terminal {
            return;
        }
        let (signal, receiver) = watch::channel(Signal::Run);
        // Mark the list as new so that those there at a restart start too.
        let (ephemeral, wanted) = watch::channel(ephemeral);
        let mut wanted = wanted;
        wanted.mark_changed();
        let task = tokio::spawn(worker::run(self.clone(), pod.clone(), receiver, wanted));
        workers.insert(
            uid,
            Worker {
                signal,
                ephemeral,
                task,
            },
        );
    }

    /// Removes a terminated pod's object (grace period over).
    async fn finish_deletion(&self, pod: &Value) {
        let pods = self.registry.resource("", "Pod");
        let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
        let name = pod
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Preconditions {
                revision: None,
                uid: pod
                    .at("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
            ..DeleteOptions::default()
        };
        match self.registry.delete(&pods, namespace, name, &options).await {
            Ok(_) | Err(registry::Error::NotFound { .. } | registry::Error::Conflict { .. }) => {}
            Err(e) => tracing::warn!("deleting pod {name}: {e}"),
        }
    }

    /// Stores `wasm` (a component or WASI module) as the image
    /// `reference`, its entrypoint the name's last path segment.
    pub fn import_image(
        &self,
        reference: &str,
        wasm: &[u8],
    ) -> Result<(), wasmkube_runtime::images::Error> {
        let reference = wasmkube_runtime::images::ImageRef::parse(reference)?;
        let program = reference
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&reference.repository)
            .to_string();
        let config = wasmkube_runtime::images::ImageConfig {
            entrypoint: vec![program],
            ..Default::default()
        };
        self.runtime.images().import(&reference, wasm, config)?;
        Ok(())
    }

    /// Stops every pod (keeping their objects and data for the next
    /// start), then the runtime's guest threads, and removes the
    /// memory-backed volumes' directory.
    pub async fn shutdown(&self) {
        self.stop_all().await;
        self.runtime.shutdown().await;
        if let Ok(dir) = &self.memory_dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", dir.display());
        }
    }

    /// Stops every pod for a server shutdown, keeping their objects and
    /// data for the next start.
    async fn stop_all(&self) {
        let workers: Vec<Worker> = self
            .workers
            .lock()
            .unwrap()
            .drain()
            .map(|(_, w)| w)
            .collect();
        for worker in &workers {
            let _ = worker.signal.send(Signal::Shutdown);
        }
        for worker in workers {
            let _ = worker.task.await;
        }
    }
}
