//! The node object: registration with the host's capacity, and the
//! heartbeat that keeps its Ready condition fresh.

use serde_json::{Value, json};

use crate::registry::metadata::now;
use crate::registry::{Error, Registry, Result, WriteOptions};

/// The kubelet version nodes report.
pub const KUBELET_VERSION: &str = "v1.33.0-wasmkube";

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn conditions(heartbeat: &str, since: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since, "reason": reason, "message": message})
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The pods the node can run: `max_pods`, fewer when the host's limit
/// on memory mappings would be reached first (the server would abort on
/// a failed allocation, so the scheduler must stop short of it).
pub(crate) fn allocatable_pods(max_pods: u32) -> u32 {
    let Some(limit) = crate::host::max_map_count() else {
        return max_pods;
    };
    let room = crate::host::pods_within_mappings(limit);
    if room >= u64::from(max_pods) {
        return max_pods;
    }
    tracing::warn!(
        "vm.max_map_count is {limit}: the node takes {room} pods, not {max_pods} \
         (each running pod needs about {} memory mappings); raise it, e.g. \
         `sysctl -w vm.max_map_count=262144`",
        crate::host::MAPPINGS_PER_POD
    );
    room as u32
}

/// The node's status: capacity from the host, ready now.
fn status(name: &str, max_pods: u32, since: &str) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capacity = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", crate::host::memory_kib()),
        "pods": max_pods.to_string(),
        "ephemeral-storage": "0",
    });
    let mut allocatable = capacity.clone();
    allocatable["pods"] = json!(allocatable_pods(max_pods).to_string());
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions(&now(), since),
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": kernel_version(),
            "osImage": "wasmkube (WASI 0.2 guests)",
            "containerRuntimeVersion": "wasmtime://48.0.8",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "wasi",
            "architecture": "wasm32",
        },
    })
}

/// Creates the node, or refreshes its status if it exists.
pub async fn register(
    registry: &Registry,
    name: &str,
    max_pods: u32,
    pod_cidr: &str,
) -> Result<()> {
    let nodes = registry.resource("", "Node");
    let options = WriteOptions::manager("kubelet");
    let since = now();
    if registry.find(&nodes, None, name)?.is_none() {
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "wasi",
                "kubernetes.io/arch": "wasm32",
                "node-role.kubernetes.io/control-plane": "",
            }},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
            "status": status(name, max_pods, &since),
        });
        match registry.create(&nodes, None, node, &options).await {
            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let fresh = status(name, max_pods, &since);
    registry
        .update_with(&nodes, None, name, Some("status"), &options, |current| {
            let mut next = current.clone();
            next["status"] = fresh.clone();
            Ok(next)
        })
        .await?;
    // The Lease is the node's heartbeat, not its registration: a failure
    // here is retried with the next heartbeat.
    if let Err(e) = renew_lease(registry, name).await {
        tracing::warn!("node lease: {e}");
    }
    Ok(())
}

/// How long the node's Lease holds without a renewal (the kubelet's 40 s).
const LEASE_SECONDS: i64 = 40;
/// Where node Leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Renews the node's Lease in `kube-node-lease` (made, owned by the Node,
/// the first time), as the kubelet does: `kubectl describe node` shows it.
pub async fn renew_lease(registry: &Registry, name: &str) -> Result<()> {
    let leases = registry.resource("coordination.k8s.io", "Lease");
    let options = WriteOptions::manager("kubelet");
    let renewed = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    if registry
        .find(&leases, Some(LEASE_NAMESPACE), name)?
        .is_none()
    {
        let nodes = registry.resource("", "Node");
        let node = registry.get(&nodes, None, name)?;
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": name,
                "uid": node.pointer("/metadata/uid").cloned().unwrap_or_default(),
            }]},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renewed},
        });
        match registry
            .create(&leases, Some(LEASE_NAMESPACE), lease, &options)
            .await
        {
            Ok(_) | Err(Error::AlreadyExists { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    registry
        .update_with(
            &leases,
            Some(LEASE_NAMESPACE),
            name,
            None,
            &options,
            |current| {
                let mut next = current.clone();
                next["spec"]["renewTime"] = json!(renewed);
                next["spec"]["holderIdentity"] = json!(name);
                Ok(next)
            },
        )
        .await?;
    Ok(())
}

/// Bumps the heartbeat of every condition.
pub async fn heartbeat(registry: &Registry, name: &str) -> Result<()> {
    let nodes = registry.resource("", "Node");
    let time = now();
    registry
        .update_with(
            &nodes,
            None,
            name,
            Some("status"),
            &WriteOptions::manager("kubelet"),
            |current| {
                let mut next = current.clone();
                if let Some(conditions) = next
                    .pointer_mut("/status/conditions")
                    .and_then(Value::as_array_mut)
                {
                    for condition in conditions {
                        condition["lastHeartbeatTime"] = json!(time);
                    }
                }
                Ok(next)
            },
        )
        .await?;
    renew_lease(registry, name).await
}
