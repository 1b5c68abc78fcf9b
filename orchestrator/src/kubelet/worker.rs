//! One pod's worker: pulls its images, starts it on the runtime, reports
//! every status change and event, and stops it when the pod is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use wasmkube_runtime::{ContainerState, PodRunner, PodStatus, ProbeEvent, RestartPolicy};

use super::ephemeral::Ephemeral;
use super::pod_spec::{self, NodeInfo, Options, VolumeDirs, WrittenVolume};
use super::streams::PodHandle;
use super::{Kubelet, Signal, atomic_dir, file_owners, hooks, host_ports, status, volumes};
use crate::events::EventType;
use crate::registry::WriteOptions;
use crate::registry::metadata::{At, now, str_at};

/// The field path events about a container carry: `spec.containers{c}`.
fn container_path(_pod: &Value, name: &str) -> String {
    format!("spec.containers{{{name}}}")
}

/// The same for an init container: `spec.initContainers{c}`.
fn init_container_path(name: &str) -> String {
    format!("spec.initContainers{{{name}}}")
}

/// A started pod, and what its worker holds while it runs.
struct Started {
    _lease: IpLease,
    _memory: MemoryVolumes,
    _followed: FollowedVolumes,
    runner: PodRunner,
    _registered: Registered,
    _host_ports: Option<host_ports::HostPorts>,
    ephemeral: Ephemeral,
    statuses: watch::Receiver<PodStatus>,
    probe_events: Option<mpsc::UnboundedReceiver<ProbeEvent>>,
    /// emptyDir size limits: (volume, bytes, as written).
    size_limits: Vec<(String, u64, String)>,
    name: String,
    pod: Arc<Value>,
    policy: RestartPolicy,
    start_time: String,
    pod_ip: Option<std::net::IpAddr>,
    images: HashMap<String, (String, String)>,
    written: Vec<WrittenVolume>,
    shown: Vec<Option<atomic_dir::Payload>>,
    container_specs: Vec<wasmkube_runtime::ContainerSpec>,
}

/// Pulls the pod's images and starts it; none if it cannot start (what
/// stopped it is reported, and the pod waited out) or is deleted first.
async fn start(
    kubelet: Arc<Kubelet>,
    pod: Value,
    signal: &mut watch::Receiver<Signal>,
) -> Option<Started> {
    let name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let typed: Pod = match serde_json::from_value(pod.clone()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("pod {name}: {e}");
            return None;
        }
    };
    let policy = match typed
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
    {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    };
    let start_time = now();
    // The pod's address: the one it had (the server restarted) if free.
    let previous_ip = typed
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    // Network policies judge the pod by its labels and ports: the whole
    // pod, before the worker keeps only what it names.
    let lease = IpLease::take(&kubelet, &pod, previous_ip);
    // Made anew: `start` runs as long-lived work (see `run`), so the copy
    // fills long-lived pages, where the decoded pod does not.
    let pod = Arc::new(kept(&pod));
    let Some(lease) = lease else {
        let message = format!(
            "Failed to create pod sandbox: no pod IP left in {}",
            kubelet.ipam.cidr()
        );
        report_config_error(&kubelet, &pod, &message, &start_time).await;
        wait_for_end(&kubelet, &pod, signal).await;
        return None;
    };
    let uid = str_at(&pod, "/metadata/uid")
        .unwrap_or_default()
        .to_string();
    let memory = MemoryVolumes::new(&kubelet, &uid);
    let options = Options {
        backoff: kubelet.backoff,
        output: None,
        volume_dirs: Some(VolumeDirs {
            disk: kubelet.pods_dir.join(&uid).join("written"),
            memory: memory.dir.clone(),
        }),
        host_paths: kubelet.host_paths.clone(),
        interface_grants: kubelet.interface_grants.clone(),
    };
    let node = NodeInfo {
        pod_ip: Some(lease.ip),
        ..NodeInfo::with(&kubelet.node_name, kubelet.allocatable)
    };
    let (translated, shown) =
        prepare(&kubelet, &pod, &typed, &node, &options, &start_time, signal).await?;
    for warning in &translated.warnings {
        kubelet
            .recorder
            .record(
                &pod,
                EventType::Warning,
                &warning.reason,
                &warning.message,
                None,
            )
            .await;
    }
    let written = translated.written;
    let spec = translated.spec;
    let images = super::images::pull_all(&kubelet, &pod, &typed, &start_time, signal).await?;
    let pod_ip = Some(lease.ip);
    let sandbox_name = spec.sandbox.name.clone();
    let container_specs = spec.containers.clone();
    // Owners of what guests create in volumes, set up before they start.
    let (plans, mut ownership_warnings) = file_owners::plan(&typed);
    let _followed = FollowedVolumes {
        kubelet: Arc::clone(&kubelet),
        uid: uid.clone(),
    };
    let started = PodRunner::start_with(&kubelet.runtime, spec, |sandbox| {
        for plan in &plans {
            if let Err(message) = apply_ownership(&kubelet, &uid, sandbox, plan) {
                ownership_warnings.push(message);
            }
        }
    });
    for message in &ownership_warnings {
        kubelet
            .recorder
            .record(
                &pod,
                EventType::Warning,
                "SecurityContextNotApplied",
                message,
                None,
            )
            .await;
    }
    let mut runner = match started {
        Ok(r) => r,
        Err(e) => {
            report_config_error(&kubelet, &pod, &e.to_string(), &start_time).await;
            wait_for_end(&kubelet, &pod, signal).await;
            return None;
        }
    };
    let _registered = Registered::new(
        &kubelet,
        &uid,
        PodHandle {
            sandbox: runner.sandbox().clone(),
            containers: container_specs.clone(),
            status: runner.watch(),
        },
    );
    let _host_ports = match host_ports::publish(
        &sandbox_name,
        runner.sandbox(),
        &host_ports::requested(&typed),
    )
    .await
    {
        Ok(ports) => Some(ports),
        Err(e) => {
            kubelet
                .recorder
                .record(
                    &pod,
                    EventType::Warning,
                    "FailedHostPort",
                    &e.to_string(),
                    None,
                )
                .await;
            None
        }
    };
    let ephemeral = Ephemeral::new(&kubelet, &pod, runner.sandbox(), &container_specs);
    Some(Started {
        _lease: lease,
        _memory: memory,
        _followed,
        size_limits: size_limits(&typed),
        statuses: runner.watch(),
        probe_events: runner.probe_events(),
        runner,
        _registered,
        _host_ports,
        ephemeral,
        name,
        pod,
        policy,
        start_time,
        pod_ip,
        images,
        written,
        shown,
        container_specs,
    })
    // The typed pod goes: decoded again from the store if the pod is
    // deleted.
}

/// Runs a pod until it is deleted (or the server stops).
///
/// What runs only now and then (the start, the status writes, probe
/// events, ephemeral containers, the stop) is boxed: inline, the state of
/// each would be part of every pod's worker for as long as the pod runs
/// (a worker was 9.7 KB so; 2.2 KB boxed).
pub(super) async fn run(
    kubelet: Arc<Kubelet>,
    pod: Value,
    mut signal: watch::Receiver<Signal>,
    mut ephemeral_wanted: watch::Receiver<Value>,
) {
    // What starting holds (the typed pod, the translated spec, the pulls)
    // is let go once the pod runs; what it leaves the worker (the `Started`
    // parts) lasts as long as the pod, so it is allocated as long-lived
    // (see `wasmkube_runtime::heap`).
    let Some(started) = Box::pin(wasmkube_runtime::heap::long_lived(start(
        Arc::clone(&kubelet),
        pod,
        &mut signal,
    )))
    .await
    else {
        return;
    };
    // Bound in the order `start` made them, so they drop as they did.
    let Started {
        _lease,
        _memory,
        _followed,
        runner,
        _registered,
        _host_ports,
        mut ephemeral,
        mut statuses,
        mut probe_events,
        size_limits,
        name,
        pod,
        policy,
        start_time,
        pod_ip,
        images,
        written,
        mut shown,
        container_specs,
    } = started;
    let mut previous: Option<PodStatus> = None;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outcome = loop {
        let current = statuses.borrow_and_update().clone();
        Box::pin(async {
            announce(&kubelet, &pod, previous.as_ref(), &current, &images).await;
            write_status(
                &kubelet,
                &pod,
                &current,
                policy,
                &images,
                &start_time,
                pod_ip,
            )
            .await;
        })
        .await;
        previous = Some(current);
        let wake = loop {
            tokio::select! {
                changed = statuses.changed() => {
                    break if changed.is_ok() { Wake::Changed } else { Wake::Finished };
                }
                Some(event) = next_probe_event(&mut probe_events) => {
                    Box::pin(record_probe_event(&kubelet, &pod, event)).await;
                }
                Ok(()) = ephemeral_wanted.changed() => {
                    let wanted = ephemeral_wanted.borrow_and_update().clone();
                    // (8 KB of state inline.)
                    Box::pin(ephemeral.start_new(&wanted)).await;
                }
                _ = refresh.tick(), if !written.is_empty() || !size_limits.is_empty() => {
                    refresh_volumes(&kubelet, &pod, &written, &mut shown);
                    if let Some(message) = over_limit(runner.sandbox(), &size_limits) {
                        break Wake::Evicted(message);
                    }
                }
                s = wait_signal(&mut signal) => break Wake::Signal(s),
            }
        };
        match wake {
            Wake::Changed => {}
            // The runner finished: wait for deletion or shutdown.
            Wake::Finished => break wait_signal(&mut signal).await,
            Wake::Signal(s) => break s,
            Wake::Evicted(message) => {
                Box::pin(async {
                    kubelet
                        .recorder
                        .record(&pod, EventType::Warning, "Evicted", &message, None)
                        .await;
                    ephemeral.stop_all();
                    let sandbox = runner.sandbox().clone();
                    let last = runner.stop().await;
                    write_evicted(
                        &kubelet,
                        &pod,
                        &last,
                        policy,
                        &images,
                        &start_time,
                        &message,
                    )
                    .await;
                    if wait_signal(&mut signal).await == Signal::Delete {
                        if let Err(e) = sandbox.remove() {
                            tracing::warn!("removing pod {name}: {e}");
                        }
                        kubelet.finish_deletion(&pod).await;
                    }
                })
                .await;
                return;
            }
        }
    };
    Box::pin(stop(
        &kubelet,
        &pod,
        &name,
        runner,
        ephemeral,
        &container_specs,
        outcome,
    ))
    .await;
}

/// Stops a running pod: on deletion, with its Killing events and preStop
/// hooks (the grace period as the pod is now), then removes its sandbox
/// and finishes the deletion.
async fn stop(
    kubelet: &Arc<Kubelet>,
    pod: &Arc<Value>,
    name: &str,
    runner: PodRunner,
    ephemeral: Ephemeral,
    container_specs: &[wasmkube_runtime::ContainerSpec],
    outcome: Signal,
) {
    ephemeral.stop_all();
    let sandbox = runner.sandbox().clone();
    if outcome == Signal::Delete {
        let running: Vec<String> = runner
            .status()
            .containers
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .map(|c| c.name.clone())
            .collect();
        for container in &running {
            let field = container_path(pod, container);
            kubelet
                .recorder
                .record(
                    pod,
                    EventType::Normal,
                    "Killing",
                    &format!("Stopping container {container}"),
                    Some(&field),
                )
                .await;
        }
        // The deletion sets the grace period on the pod as it is now.
        let pods = kubelet.registry.resource("", "Pod");
        let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
        let latest = kubelet
            .registry
            .find(&pods, namespace, name)
            .ok()
            .flatten()
            .unwrap_or_else(|| Value::clone(pod));
        if let Ok(typed) = serde_json::from_value::<Pod>(latest) {
            let grace = hooks::grace_period(&typed);
            hooks::run_pre_stop(
                kubelet,
                pod,
                &typed,
                runner.sandbox(),
                container_specs,
                &running,
                grace,
            )
            .await;
        }
    }
    runner.stop().await;
    if outcome == Signal::Delete {
        if let Err(e) = sandbox.remove() {
            tracing::warn!("removing pod {name}: {e}");
        }
        kubelet.finish_deletion(pod).await;
    }
}

/// What a worker keeps of its pod while it runs: what its events and
/// status writes name it by (kind, name, namespace, uid, resourceVersion),
/// its containers (the waiting statuses list them; preStop hooks are read
/// from them when the pod is gone from the store) and its grace period.
/// Its status is read from the store when written, its volumes and labels
/// when refreshed. Held whole (a pod's service account volume and default
/// tolerations alone were 9 KB of memory), it was a tenth of an idle pod's
/// memory.
fn kept(pod: &Value) -> Value {
    let pick = |object: Option<&Value>, fields: &[&str]| -> serde_json::Map<String, Value> {
        let object = object.and_then(Value::as_object);
        fields
            .iter()
            .filter_map(|&f| Some((f.to_string(), object?.get(f)?.clone())))
            .collect()
    };
    let mut kept = pick(Some(pod), &["apiVersion", "kind"]);
    let metadata = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    kept.insert(
        "metadata".into(),
        Value::Object(pick(pod.get("metadata"), &metadata)),
    );
    let spec = ["containers", "terminationGracePeriodSeconds"];
    kept.insert("spec".into(), Value::Object(pick(pod.get("spec"), &spec)));
    Value::Object(kept)
}

/// A pod reachable for exec while its worker runs it.
struct Registered {
    kubelet: Arc<Kubelet>,
    uid: String,
}

impl Registered {
    fn new(kubelet: &Arc<Kubelet>, uid: &str, handle: PodHandle) -> Registered {
        kubelet
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string(), handle);
        Registered {
            kubelet: Arc::clone(kubelet),
            uid: uid.to_string(),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.kubelet
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.uid);
    }
}

/// A pod IP held while the pod's worker runs.
struct IpLease {
    kubelet: Arc<Kubelet>,
    ip: std::net::IpAddr,
}

impl IpLease {
    /// An IP for `pod`, which network policies judge it by from now.
    fn take(
        kubelet: &Arc<Kubelet>,
        pod: &Value,
        previous: Option<std::net::IpAddr>,
    ) -> Option<IpLease> {
        let ip = kubelet.ipam.allocate(previous)?;
        kubelet.network_policies.started(ip, pod);
        Some(IpLease {
            ip,
            kubelet: Arc::clone(kubelet),
        })
    }
}

impl Drop for IpLease {
    fn drop(&mut self) {
        self.kubelet.network_policies.stopped(self.ip);
        self.kubelet.ipam.release(self.ip);
    }
}

/// What woke a pod's worker.
enum Wake {
    Changed,
    Finished,
    Signal(Signal),
    /// An emptyDir outgrew its `sizeLimit`: the message says which.
    Evicted(String),
}

/// The next probe report; pends forever once there will be none.
async fn next_probe_event(
    events: &mut Option<mpsc::UnboundedReceiver<ProbeEvent>>,
) -> Option<ProbeEvent> {
    if let Some(receiver) = events {
        if let Some(event) = receiver.recv().await {
            return Some(event);
        }
        *events = None;
    }
    std::future::pending().await
}

/// `Warning Unhealthy` for each failed probe, and `Killing` when a failed
/// liveness or startup probe stops a container, in the kubelet's words.
async fn record_probe_event(kubelet: &Kubelet, pod: &Value, event: ProbeEvent) {
    match event {
        ProbeEvent::Failed {
            container,
            kind,
            message,
        } => {
            let field = container_path(pod, &container);
            kubelet
                .recorder
                .record(
                    pod,
                    EventType::Warning,
                    "Unhealthy",
                    &format!("{kind} probe failed: {message}"),
                    Some(&field),
                )
                .await;
        }
        ProbeEvent::Killing { container, kind } => {
            let field = container_path(pod, &container);
            kubelet
                .recorder
                .record(
                    pod,
                    EventType::Normal,
                    "Killing",
                    &format!(
                        "Container {container} failed {} probe, will be restarted",
                        kind.to_string().to_lowercase()
                    ),
                    Some(&field),
                )
                .await;
        }
    }
}

pub(super) async fn wait_signal(signal: &mut watch::Receiver<Signal>) -> Signal {
    loop {
        let current = *signal.borrow_and_update();
        if current != Signal::Run {
            return current;
        }
        if signal.changed().await.is_err() {
            return Signal::Shutdown;
        }
    }
}

async fn wait_for_end(kubelet: &Kubelet, pod: &Value, signal: &mut watch::Receiver<Signal>) {
    if wait_signal(signal).await == Signal::Delete {
        kubelet.finish_deletion(pod).await;
    }
}

/// Events for what changed: Created/Started, BackOff, image back-off.
async fn announce(
    kubelet: &Kubelet,
    pod: &Value,
    previous: Option<&PodStatus>,
    current: &PodStatus,
    images: &HashMap<String, (String, String)>,
) {
    let pod_name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = pod
        .at("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uid = pod
        .at("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let all = current
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c,
                previous.map(|p| &p.init_containers[i]),
                init_container_path(&c.name),
            )
        })
        .chain(current.containers.iter().enumerate().map(|(i, c)| {
            (
                c,
                previous.map(|p| &p.containers[i]),
                container_path(pod, &c.name),
            )
        }));
    for (c, before, field) in all {
        let field = Some(field.as_str());
        match &c.state {
            ContainerState::Running { started_at } => {
                let new = !matches!(before.map(|b| &b.state), Some(ContainerState::Running { started_at: s }) if s == started_at);
                if new {
                    let image = images.get(&c.name).map(|i| i.0.as_str()).unwrap_or("");
                    if c.restart_count > 0 {
                        kubelet
                            .recorder
                            .record(
                                pod,
                                EventType::Normal,
                                "Pulled",
                                &format!("Container image {image:?} already present on machine"),
                                field,
                            )
                            .await;
                    }
                    kubelet
                        .recorder
                        .record(
                            pod,
                            EventType::Normal,
                            "Created",
                            &format!("Created container: {}", c.name),
                            field,
                        )
                        .await;
                    kubelet
                        .recorder
                        .record(
                            pod,
                            EventType::Normal,
                            "Started",
                            &format!("Started container {}", c.name),
                            field,
                        )
                        .await;
                }
            }
            ContainerState::Waiting { reason, .. } => {
                let was = match before.map(|b| &b.state) {
                    Some(ContainerState::Waiting { reason, .. }) => Some(reason.as_str()),
                    _ => None,
                };
                let new = was != Some(reason.as_str())
                    || before.is_some_and(|b| b.restart_count != c.restart_count);
                if !new {
                    continue;
                }
                let image = images.get(&c.name).map(|i| i.0.as_str()).unwrap_or("");
                match reason.as_str() {
                    "CrashLoopBackOff" => {
                        let message = format!(
                            "Back-off restarting failed container {} in pod {pod_name}_{namespace}({uid})",
                            c.name
                        );
                        kubelet
                            .recorder
                            .record(pod, EventType::Warning, "BackOff", &message, field)
                            .await;
                    }
                    "ImagePullBackOff" => {
                        kubelet
                            .recorder
                            .record(
                                pod,
                                EventType::Normal,
                                "BackOff",
                                &format!("Back-off pulling image {image:?}"),
                                field,
                            )
                            .await;
                        kubelet
                            .recorder
                            .record(
                                pod,
                                EventType::Warning,
                                "Failed",
                                "Error: ImagePullBackOff",
                                field,
                            )
                            .await;
                    }
                    "CreateContainerError" => {
                        kubelet
                            .recorder
                            .record(
                                pod,
                                EventType::Warning,
                                "Failed",
                                "Error: CreateContainerError",
                                field,
                            )
                            .await;
                    }
                    _ => {}
                }
            }
            ContainerState::Terminated(_) => {}
        }
    }
}

/// The emptyDir volumes with a `sizeLimit`: (name, bytes, as written).
fn size_limits(pod: &Pod) -> Vec<(String, u64, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            let limit = v.empty_dir.as_ref()?.size_limit.as_ref()?;
            let bytes = crate::quantity::Quantity::parse(&limit.0)
                .ok()?
                .ceil_units();
            Some((
                v.name.clone(),
                bytes.clamp(0, u64::MAX as i128) as u64,
                limit.0.clone(),
            ))
        })
        .collect()
}

/// Bytes of the files under `dir` (links not followed).
fn usage(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Kubernetes' eviction message for the first emptyDir over its limit.
fn over_limit(
    sandbox: &wasmkube_runtime::Sandbox,
    limits: &[(String, u64, String)],
) -> Option<String> {
    limits.iter().find_map(|(volume, bytes, written)| {
        let dir = sandbox.volume_path(volume)?;
        (usage(dir) > *bytes)
            .then(|| format!("Usage of EmptyDir volume {volume:?} exceeds the limit {written:?}. "))
    })
}

/// The status of an evicted pod: Failed, reason Evicted, its containers
/// as they ended.
async fn write_evicted(
    kubelet: &Kubelet,
    pod: &Value,
    last: &PodStatus,
    policy: RestartPolicy,
    images: &HashMap<String, (String, String)>,
    start_time: &str,
    message: &str,
) {
    update_status(kubelet, pod, |next| {
        status::apply(next, last, policy, images, start_time);
        next["status"]["phase"] = json!("Failed");
        next["status"]["reason"] = json!("Evicted");
        next["status"]["message"] = json!(message);
    })
    .await;
}

/// How often the files of ConfigMap, Secret and downward API volumes are
/// brought up to date (Kubernetes' kubelet takes up to a minute or two).
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// A pod's memory-backed volumes, removed when its worker ends (deleted or
/// the server stopping: they are written again at the next start).
struct MemoryVolumes {
    /// The pod's directory, or why there is none.
    dir: Result<PathBuf, String>,
}

impl MemoryVolumes {
    fn new(kubelet: &Kubelet, uid: &str) -> MemoryVolumes {
        MemoryVolumes {
            dir: kubelet
                .memory_dir
                .as_ref()
                .map(|d| d.join(uid))
                .map_err(Clone::clone),
        }
    }
}

impl Drop for MemoryVolumes {
    fn drop(&mut self) {
        if let Ok(dir) = &self.dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

/// `fsGroup` and the owner of new files for one volume; `Err` says why
/// they cannot be applied.
fn apply_ownership(
    kubelet: &Kubelet,
    pod_uid: &str,
    sandbox: &wasmkube_runtime::Sandbox,
    plan: &file_owners::VolumePlan,
) -> Result<(), String> {
    let Some(dir) = sandbox.volume_path(&plan.volume) else {
        return Ok(());
    };
    let asked = match (plan.fs_group, plan.owner.uid) {
        (Some(g), Some(u)) => format!("runAsUser {u} and fsGroup {g}"),
        (Some(g), None) => format!("fsGroup {g}"),
        (None, Some(u)) => format!("runAsUser {u}"),
        (None, None) => format!("runAsGroup {}", plan.owner.gid.unwrap_or_default()),
    };
    let refused = |e: std::io::Error| {
        format!(
            "{asked} cannot be applied to volume {:?}: changing file owners needs root or CAP_CHOWN ({e}); files keep the server's owner",
            plan.volume
        )
    };
    if let Some(group) = plan.fs_group {
        file_owners::apply_fs_group(dir, group).map_err(refused)?;
    }
    if plan.owner != file_owners::Owner::default() {
        let Some(follower) = &kubelet.owners else {
            return Err(format!(
                "{asked} cannot be applied to volume {:?}: this host has no inotify to follow new files",
                plan.volume
            ));
        };
        follower.follow(pod_uid, dir, plan.owner).map_err(refused)?;
    }
    Ok(())
}

/// Stops following a pod's volumes when its worker ends.
struct FollowedVolumes {
    kubelet: Arc<Kubelet>,
    uid: String,
}

impl Drop for FollowedVolumes {
    fn drop(&mut self) {
        if let Some(follower) = &self.kubelet.owners {
            follower.forget(&self.uid);
        }
    }
}

/// Puts the files of every kubelet-written volume in place; `shown`
/// remembers what each shows, so an unchanged volume is not read back.
fn write_volumes(
    kubelet: &Kubelet,
    pod: &Pod,
    written: &[WrittenVolume],
    shown: &mut Vec<Option<atomic_dir::Payload>>,
) -> Result<(), pod_spec::Error> {
    shown.resize(written.len(), None);
    let sources = kubelet.sources();
    for (w, shown) in written.iter().zip(shown.iter_mut()) {
        let failed = |message: String| pod_spec::Error::Mount {
            volume: w.volume.name.clone(),
            message,
        };
        let payload = volumes::payload(pod, &w.volume, &sources, kubelet.allocatable)
            .map_err(|m| failed(m.0))?;
        if shown.as_ref() == Some(&payload) {
            continue;
        }
        atomic_dir::write(&w.dir, &payload).map_err(|e| failed(e.to_string()))?;
        *shown = Some(payload);
    }
    Ok(())
}

/// Brings written volumes up to date with their sources and the pod's
/// labels and annotations now; on failure the files stay as they were.
fn refresh_volumes(
    kubelet: &Kubelet,
    pod: &Value,
    written: &[WrittenVolume],
    shown: &mut Vec<Option<atomic_dir::Payload>>,
) {
    let pods = kubelet.registry.resource("", "Pod");
    let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
    let name = str_at(pod, "/metadata/name").unwrap_or_default();
    let latest = kubelet
        .registry
        .find(&pods, namespace, name)
        .ok()
        .flatten()
        .filter(|p| p.at("/metadata/uid") == pod.at("/metadata/uid"))
        .and_then(|p| serde_json::from_value::<Pod>(p).ok());
    let Some(latest) = latest else { return };
    if let Err(e) = write_volumes(kubelet, &latest, written, shown) {
        tracing::debug!("pod {name}: {e}");
    }
}

/// Translates the pod and writes its volumes, waiting (with back-off) while
/// something it refers to is missing, as Kubernetes retries a missing
/// ConfigMap; `None` when the pod ended first (or can never run).
async fn prepare(
    kubelet: &Kubelet,
    pod: &Value,
    typed: &Pod,
    node: &NodeInfo,
    options: &Options,
    start_time: &str,
    signal: &mut watch::Receiver<Signal>,
) -> Option<(pod_spec::Translated, Vec<Option<atomic_dir::Payload>>)> {
    let mut delay = Duration::from_millis(500);
    let mut shown = Vec::new();
    loop {
        let sources = kubelet.sources();
        let problem = match pod_spec::to_runtime(typed, node, options, &sources) {
            Ok(translated) => {
                match write_volumes(kubelet, typed, &translated.written, &mut shown) {
                    Ok(()) => return Some((translated, shown)),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        match &problem {
            pod_spec::Error::Unsupported(_) => {
                report_config_error(kubelet, pod, &problem.to_string(), start_time).await;
                wait_for_end(kubelet, pod, signal).await;
                return None;
            }
            pod_spec::Error::Config(message) => {
                report_config_error(kubelet, pod, message, start_time).await;
            }
            pod_spec::Error::Mount { .. } => {
                kubelet
                    .recorder
                    .record(
                        pod,
                        EventType::Warning,
                        "FailedMount",
                        &problem.to_string(),
                        None,
                    )
                    .await;
                report_waiting(kubelet, pod, "ContainerCreating", None, start_time).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            s = wait_signal(signal) => {
                if s == Signal::Delete {
                    kubelet.finish_deletion(pod).await;
                }
                return None;
            }
        }
        delay = (delay * 2).min(Duration::from_secs(8));
    }
}

async fn write_status(
    kubelet: &Kubelet,
    pod: &Value,
    current: &PodStatus,
    policy: RestartPolicy,
    images: &HashMap<String, (String, String)>,
    start_time: &str,
    pod_ip: Option<std::net::IpAddr>,
) {
    update_status(kubelet, pod, |next| {
        status::apply(next, current, policy, images, start_time);
        if let Some(ip) = pod_ip {
            next["status"]["podIP"] = json!(ip.to_string());
            next["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
    })
    .await;
}

/// Writes this pod's status (`change` edits the stored pod), unless the
/// pod is gone or was replaced by another of the same name.
pub(super) async fn update_status(kubelet: &Kubelet, pod: &Value, change: impl Fn(&mut Value)) {
    let pods = kubelet.registry.resource("", "Pod");
    let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
    let name = str_at(pod, "/metadata/name").unwrap_or_default();
    let uid = pod.at("/metadata/uid").cloned();
    let result = kubelet
        .registry
        .update_with(
            &pods,
            namespace,
            name,
            Some("status"),
            &WriteOptions::manager("kubelet"),
            |existing| {
                if existing.at("/metadata/uid").cloned() != uid {
                    return Err(crate::registry::Error::NotFound {
                        resource: "pods".into(),
                        group: String::new(),
                        name: name.into(),
                    });
                }
                let mut next = existing.clone();
                change(&mut next);
                Ok(next)
            },
        )
        .await;
    if let Err(e) = result
        && !matches!(e, crate::registry::Error::NotFound { .. })
    {
        tracing::warn!("pod {name} status: {e}");
    }
}

/// A pod the runtime cannot run as written: its containers wait with
/// CreateContainerConfigError and the reason, as Kubernetes reports a
/// missing ConfigMap.
async fn report_config_error(kubelet: &Kubelet, pod: &Value, message: &str, start_time: &str) {
    kubelet
        .recorder
        .record(
            pod,
            EventType::Warning,
            "Failed",
            &format!("Error: {message}"),
            None,
        )
        .await;
    report_waiting(
        kubelet,
        pod,
        "CreateContainerConfigError",
        Some(message),
        start_time,
    )
    .await;
}

/// Every container waiting for `reason`.
async fn report_waiting(
    kubelet: &Kubelet,
    pod: &Value,
    reason: &str,
    message: Option<&str>,
    start_time: &str,
) {
    write_waiting(kubelet, pod, |_| (reason, message), start_time).await;
}

/// Container `name` waiting for `reason` (an image it cannot pull), the
/// others for `ContainerCreating`.
pub(super) async fn report_waiting_for(
    kubelet: &Kubelet,
    pod: &Value,
    name: &str,
    reason: &str,
    message: Option<&str>,
    start_time: &str,
) {
    let waiting = |container: &str| match container == name {
        true => (reason, message),
        false => ("ContainerCreating", None),
    };
    write_waiting(kubelet, pod, waiting, start_time).await;
}

async fn write_waiting<'a>(
    kubelet: &Kubelet,
    pod: &Value,
    waiting: impl Fn(&str) -> (&'a str, Option<&'a str>),
    start_time: &str,
) {
    let pods = kubelet.registry.resource("", "Pod");
    let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
    let name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let statuses: Vec<Value> = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let (reason, message) = waiting(c["name"].as_str().unwrap_or_default());
                    let mut waiting = json!({"reason": reason});
                    if let Some(message) = message {
                        waiting["message"] = json!(message);
                    }
                    json!({"name": c["name"], "ready": false, "restartCount": 0, "image": c["image"], "imageID": "",
                        "started": false, "lastState": {}, "state": {"waiting": waiting}})
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = kubelet
        .registry
        .update_with(
            &pods,
            namespace,
            name,
            Some("status"),
            &WriteOptions::manager("kubelet"),
            |existing| {
                let mut next = existing.clone();
                next["status"]["containerStatuses"] = json!(statuses);
                next["status"]["startTime"] = json!(start_time);
                next["status"]["hostIP"] = json!("127.0.0.1");
                Ok(next)
            },
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_what_names_its_pod_and_its_containers() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "resourceVersion": "7", "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1"}],
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"containers": [{"name": "c", "image": "toolbox",
                    "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}],
                "terminationGracePeriodSeconds": 5,
                "tolerations": [{"key": "node.kubernetes.io/not-ready"}],
                "volumes": [{"name": "token", "projected": {"sources": []}}]},
            "status": {"phase": "Running"}
        });
        let kept = kept(&pod);
        assert_eq!(
            kept,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                    "resourceVersion": "7"},
                "spec": {"containers": [{"name": "c", "image": "toolbox",
                        "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}],
                    "terminationGracePeriodSeconds": 5}
            })
        );
        // What the stop falls back to when the pod is gone from the store.
        let typed: Pod = serde_json::from_value(kept).unwrap();
        assert_eq!(hooks::grace_period(&typed), Duration::from_secs(5));
        assert!(typed.spec.unwrap().containers[0].lifecycle.is_some());
    }
}
