//! The resource metrics pipeline, as metrics-server runs it: the kubelet
//! scrapes every running container's cumulative CPU time and working set
//! (and the node's) every resolution; CPU usage is the rate between a
//! container's last two scrapes (or since it started, when it started
//! after the earlier one), over that window; memory is the last working
//! set. A pod's network counters pass through as they were read.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jiff::Timestamp;
use wasmkube_runtime::net::NetworkCounts;

/// One scrape of the node.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// When it was taken.
    pub at: Timestamp,
    /// The node's own counters.
    pub node: NodeReading,
    /// Every running pod's.
    pub pods: Vec<PodReading>,
}

/// The node's cumulative counters at a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeReading {
    /// CPU time the machine spent busy, all cores together.
    pub cpu: Duration,
    /// Memory in use.
    pub memory_bytes: u64,
}

/// One running pod's counters at a scrape.
#[derive(Debug, Clone)]
pub struct PodReading {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerReading>,
    /// What crossed the pod network's edge since the pod started.
    pub network: NetworkCounts,
}

/// One running container's counters at a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReading {
    pub name: String,
    /// Its image, as the pod names it.
    pub image: String,
    /// When its current instance started; the counters start there.
    pub started: Timestamp,
    /// CPU time used since.
    pub cpu: Duration,
    /// Its working set now.
    pub memory_bytes: u64,
}

/// A container's usage as the metrics API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    pub name: String,
    pub image: String,
    /// Average CPU use over the pod's window, in billionths of a core.
    pub cpu_nanocores: u64,
    /// Working set at the end of the window.
    pub memory_bytes: u64,
    /// When its current instance started.
    pub started: Timestamp,
    /// Cumulative CPU time of the instance at the end of the window.
    pub cpu_total: Duration,
}

/// A pod's usage as the metrics API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSample {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The end of the window.
    pub timestamp: Timestamp,
    /// What the CPU rates average over.
    pub window: Duration,
    pub containers: Vec<ContainerSample>,
    /// The pod network's cumulative counters at the end of the window.
    pub network: NetworkCounts,
}

/// The node's usage as the metrics API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSample {
    pub timestamp: Timestamp,
    pub window: Duration,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

#[derive(Default)]
struct State {
    /// The last scrape's readings, by pod uid, with its time.
    last: HashMap<String, (Timestamp, PodReading)>,
    last_node: Option<(Timestamp, NodeReading)>,
    pods: HashMap<String, PodSample>,
    node: Option<NodeSample>,
}

/// The latest resource metrics of the node and its pods.
#[derive(Default)]
pub struct ResourceMetrics {
    state: RwLock<State>,
}

impl std::fmt::Debug for ResourceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceMetrics").finish_non_exhaustive()
    }
}

impl ResourceMetrics {
    /// Takes a scrape: pods no longer running leave, rates are computed
    /// against the scrape before.
    pub fn record(&self, scrape: Scrape) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let at = scrape.at;
        let mut last = HashMap::with_capacity(scrape.pods.len());
        let mut pods = HashMap::with_capacity(scrape.pods.len());
        for pod in scrape.pods {
            let before = state.last.get(&pod.uid);
            if let Some(sample) = pod_sample(&pod, at, before) {
                pods.insert(pod.uid.clone(), sample);
            }
            last.insert(pod.uid.clone(), (at, pod));
        }
        state.node = match state.last_node {
            Some((then, before)) if at > then => {
                let window = span(then, at);
                Some(NodeSample {
                    timestamp: at,
                    window,
                    cpu_nanocores: rate(scrape.node.cpu.saturating_sub(before.cpu), window),
                    memory_bytes: scrape.node.memory_bytes,
                })
            }
            _ => state.node,
        };
        state.last_node = Some((at, scrape.node));
        state.last = last;
        state.pods = pods;
    }

    /// The pod with `uid`'s latest usage, once it has one.
    pub fn pod(&self, uid: &str) -> Option<PodSample> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.pods.get(uid).cloned()
    }

    /// The node's latest usage, from its second scrape on.
    pub fn node(&self) -> Option<NodeSample> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).node
    }

    /// Every measured pod's latest usage.
    pub fn pods(&self) -> Vec<PodSample> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.pods.values().cloned().collect()
    }

    /// The node's counters at the last scrape, and when it was taken.
    pub fn node_counters(&self) -> Option<(Timestamp, NodeReading)> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last_node
    }
}

/// A pod's rates between the scrape `before` (if it saw the pod) and
/// `pod`, taken `at`. A container that started after the scrape before
/// is measured from its start; one started just now has no window yet,
/// and a pod is reported only with all its containers measured.
fn pod_sample(
    pod: &PodReading,
    at: Timestamp,
    before: Option<&(Timestamp, PodReading)>,
) -> Option<PodSample> {
    let mut window = Duration::ZERO;
    let mut containers = Vec::with_capacity(pod.containers.len());
    let measured: Vec<(Duration, &ContainerReading, Duration)> = pod
        .containers
        .iter()
        .map(|c| {
            let earlier = before.and_then(|(then, b)| {
                b.containers
                    .iter()
                    .find(|e| e.name == c.name && e.started == c.started)
                    .map(|e| (*then, e.cpu))
            });
            let (from, cpu_then) = earlier.unwrap_or((c.started, Duration::ZERO));
            (span(from, at), c, c.cpu.saturating_sub(cpu_then))
        })
        .collect();
    for (span, container, used) in measured {
        if span.is_zero() {
            return None;
        }
        window = window.max(span);
        containers.push(ContainerSample {
            name: container.name.clone(),
            image: container.image.clone(),
            cpu_nanocores: rate(used, span),
            memory_bytes: container.memory_bytes,
            started: container.started,
            cpu_total: container.cpu,
        });
    }
    Some(PodSample {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        timestamp: at,
        window,
        containers,
        network: pod.network,
    })
}

/// The time from `from` to `to`, none when `to` is not later.
fn span(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Duration::from_nanos(nanos.clamp(0, u64::MAX as i128) as u64)
}

/// `used` CPU time over `window`, in billionths of a core.
fn rate(used: Duration, window: Duration) -> u64 {
    if window.is_zero() {
        return 0;
    }
    (used.as_nanos() * 1_000_000_000 / window.as_nanos()).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn pod(started: i64, cpu_ms: u64, memory: u64) -> PodReading {
        PodReading {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "burner".into(),
            containers: vec![ContainerReading {
                name: "main".into(),
                image: "stress".into(),
                started: at(started),
                cpu: Duration::from_millis(cpu_ms),
                memory_bytes: memory,
            }],
            network: NetworkCounts::default(),
        }
    }

    fn scrape(second: i64, cpu_s: u64, pods: Vec<PodReading>) -> Scrape {
        Scrape {
            at: at(second),
            node: NodeReading {
                cpu: Duration::from_secs(cpu_s),
                memory_bytes: 1 << 30,
            },
            pods,
        }
    }

    #[test]
    fn cpu_is_the_rate_between_the_last_two_scrapes() {
        let metrics = ResourceMetrics::default();
        // First seen 10 s after it started, having used 2 s: measured from
        // its start.
        metrics.record(scrape(10, 100, vec![pod(0, 2_000, 5 << 20)]));
        let first = metrics.pod("u1").unwrap();
        assert_eq!(first.window, Duration::from_secs(10));
        assert_eq!(first.containers[0].cpu_nanocores, 200_000_000);
        assert!(metrics.node().is_none(), "a node rate needs two scrapes");
        // 15 s later it has used 15 s more: one full core.
        metrics.record(scrape(25, 130, vec![pod(0, 17_000, 6 << 20)]));
        let second = metrics.pod("u1").unwrap();
        assert_eq!(second.window, Duration::from_secs(15));
        assert_eq!(second.timestamp, at(25));
        assert_eq!(second.containers[0].cpu_nanocores, 1_000_000_000);
        assert_eq!(second.containers[0].memory_bytes, 6 << 20);
        let node = metrics.node().unwrap();
        assert_eq!(
            (node.cpu_nanocores, node.window),
            (2_000_000_000, Duration::from_secs(15))
        );
    }

    #[test]
    fn a_restarted_container_is_measured_from_its_new_start() {
        let metrics = ResourceMetrics::default();
        metrics.record(scrape(10, 0, vec![pod(0, 9_000, 1)]));
        // Restarted at 20 s: the counters began again there.
        metrics.record(scrape(25, 0, vec![pod(20, 500, 1)]));
        let sample = metrics.pod("u1").unwrap();
        assert_eq!(sample.window, Duration::from_secs(5));
        assert_eq!(sample.containers[0].cpu_nanocores, 100_000_000);
    }

    #[test]
    fn a_pod_gone_from_the_scrape_leaves_and_one_just_started_waits() {
        let metrics = ResourceMetrics::default();
        metrics.record(scrape(10, 0, vec![pod(10, 0, 1)]));
        assert!(metrics.pod("u1").is_none(), "no window yet");
        metrics.record(scrape(20, 0, vec![pod(10, 0, 1)]));
        assert!(metrics.pod("u1").is_some());
        metrics.record(scrape(30, 0, vec![]));
        assert!(metrics.pod("u1").is_none());
    }
}
