//! The node's metrics endpoints, as the kubelet serves them (reached
//! through the API server's node proxy): `/metrics/cadvisor`, each
//! container's counters and each pod's network bytes under cAdvisor's
//! names, and `/metrics/resource`,
//! the kubelet's resource metrics of containers, pods and the node. Both
//! come from the kubelet's last scrape, stamped with its time.

use wasmkube_runtime::net::NetworkCounts;

use super::exposition::Page;
use super::resource::{ContainerSample, PodSample, ResourceMetrics};

fn millis(at: jiff::Timestamp) -> i64 {
    at.as_millisecond()
}

fn sorted(metrics: &ResourceMetrics) -> Vec<PodSample> {
    let mut pods = metrics.pods();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    pods
}

/// `/metrics/cadvisor`.
pub fn cadvisor(metrics: &ResourceMetrics) -> String {
    let pods = sorted(metrics);
    let mut page = Page::default();
    for (name, kind, help, _, value) in CONTAINER_FAMILIES {
        page.family(name, kind, help);
        for pod in &pods {
            for container in &pod.containers {
                let id = format!("/kubepods/pod{}/{}", pod.uid, container.name);
                page.sample(
                    name,
                    &[
                        ("container", &container.name),
                        ("id", &id),
                        ("image", &container.image),
                        ("name", &container.name),
                        ("namespace", &pod.namespace),
                        ("pod", &pod.name),
                    ],
                    value(container),
                    Some(millis(pod.timestamp)),
                );
            }
        }
    }
    // The network is the pod's, counted on its cgroup as cAdvisor counts
    // the sandbox's interface.
    for (name, help, value) in NETWORK_FAMILIES {
        page.family(name, "counter", help);
        for pod in &pods {
            let id = format!("/kubepods/pod{}", pod.uid);
            page.sample(
                name,
                &[
                    ("container", ""),
                    ("id", &id),
                    ("image", ""),
                    ("interface", "eth0"),
                    ("name", ""),
                    ("namespace", &pod.namespace),
                    ("pod", &pod.name),
                ],
                value(&pod.network) as f64,
                Some(millis(pod.timestamp)),
            );
        }
    }
    page.finish()
}

/// What one network family reads of a pod's counters.
type NetworkValue = fn(&NetworkCounts) -> u64;

/// A pod's bytes in and out, under cAdvisor's names.
const NETWORK_FAMILIES: [(&str, &str, NetworkValue); 2] = [
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        |n| n.receive_bytes,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        |n| n.transmit_bytes,
    ),
];

/// What one container family reads of a container.
type ContainerValue = fn(&ContainerSample) -> f64;

/// A container's CPU time, working set and start, as both pages name
/// them (cAdvisor's help texts, then the kubelet's).
const CONTAINER_FAMILIES: [(&str, &str, &str, &str, ContainerValue); 3] = [
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        |c| c.cpu_total.as_secs_f64(),
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        "[STABLE] Current working set of the container in bytes",
        |c| c.memory_bytes as f64,
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds.",
        "[STABLE] Start time of the container since unix epoch in seconds",
        |c| c.started.as_second() as f64,
    ),
];

/// `/metrics/resource`.
pub fn resource(metrics: &ResourceMetrics) -> String {
    let pods = sorted(metrics);
    let mut page = Page::default();
    for (name, kind, _, help, value) in CONTAINER_FAMILIES {
        page.family(name, kind, help);
        for pod in &pods {
            for c in &pod.containers {
                let labels = [
                    ("container", c.name.as_str()),
                    ("namespace", &pod.namespace),
                    ("pod", &pod.name),
                ];
                page.sample(name, &labels, value(c), Some(millis(pod.timestamp)));
            }
        }
    }
    if let Some((at, node)) = metrics.node_counters() {
        page.family(
            "node_cpu_usage_seconds_total",
            "counter",
            "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        );
        page.sample(
            "node_cpu_usage_seconds_total",
            &[],
            node.cpu.as_secs_f64(),
            Some(millis(at)),
        );
        page.family(
            "node_memory_working_set_bytes",
            "gauge",
            "[STABLE] Current working set of the node in bytes",
        );
        page.sample(
            "node_memory_working_set_bytes",
            &[],
            node.memory_bytes as f64,
            Some(millis(at)),
        );
    }
    type PodValue = fn(&ContainerSample) -> f64;
    let pod_families: [(&str, &str, &str, PodValue); 2] = [
        (
            "pod_cpu_usage_seconds_total",
            "counter",
            "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            |c| c.cpu_total.as_secs_f64(),
        ),
        (
            "pod_memory_working_set_bytes",
            "gauge",
            "[STABLE] Current working set of the pod in bytes",
            |c| c.memory_bytes as f64,
        ),
    ];
    for (name, kind, help, value) in pod_families {
        page.family(name, kind, help);
        for pod in &pods {
            let total: f64 = pod.containers.iter().map(value).sum();
            let labels = [("namespace", pod.namespace.as_str()), ("pod", &pod.name)];
            page.sample(name, &labels, total, Some(millis(pod.timestamp)));
        }
    }
    page.family(
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );
    page.sample("resource_scrape_error", &[], 0.0, None);
    page.finish()
}
