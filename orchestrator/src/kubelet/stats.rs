//! The kubelet's resource scrape, as its cAdvisor-backed stats are: every
//! running container's cumulative CPU time and working set (its guests'
//! linear memories and tables, exec'd commands included), each running
//! pod's network bytes in and out, and the
//! machine's busy CPU time and memory in use, handed to the metrics
//! pipeline every resolution.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmkube_runtime::ContainerState;

use super::Kubelet;
use crate::metrics::ResourceMetrics;
use crate::metrics::resource::{ContainerReading, NodeReading, PodReading, Scrape};

impl Kubelet {
    /// Scrapes every `resolution` into `metrics` until `stop`.
    pub async fn scrape_metrics(
        self: Arc<Self>,
        metrics: Arc<ResourceMetrics>,
        resolution: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(resolution);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => metrics.record(self.scrape()),
                _ = stop.changed() => return,
            }
        }
    }

    /// The node's and its running containers' counters now.
    pub fn scrape(&self) -> Scrape {
        let handles: Vec<_> = self
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let pods = handles
            .iter()
            .filter_map(|handle| {
                let spec = handle.sandbox.spec();
                let status = handle.status.borrow();
                let containers: Vec<ContainerReading> = status
                    .init_containers
                    .iter()
                    .chain(&status.containers)
                    .filter(|c| matches!(c.state, ContainerState::Running { .. }))
                    .filter_map(|c| {
                        let cgroup = handle.sandbox.container_usage(&c.name)?;
                        let usage = cgroup.snapshot();
                        let image = handle
                            .containers
                            .iter()
                            .find(|spec| spec.name == c.name)
                            .map(|spec| spec.image.clone())
                            .unwrap_or_default();
                        Some(ContainerReading {
                            name: c.name.clone(),
                            image,
                            started: cgroup.started,
                            cpu: usage.cpu,
                            memory_bytes: usage.working_set_bytes(),
                        })
                    })
                    .collect();
                (!containers.is_empty()).then(|| PodReading {
                    uid: spec.uid.clone(),
                    namespace: spec.namespace.clone(),
                    name: spec.name.clone(),
                    containers,
                    network: handle.sandbox.net().traffic(),
                })
            })
            .collect();
        Scrape {
            at: jiff::Timestamp::now(),
            node: node_reading(),
            pods,
        }
    }
}

/// The machine's busy CPU time (all but idle and iowait, from
/// `/proc/stat`) and memory in use (total less available, from
/// `/proc/meminfo`).
fn node_reading() -> NodeReading {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    NodeReading {
        cpu: busy_cpu(&stat),
        memory_bytes: memory_in_use(&meminfo),
    }
}

fn busy_cpu(stat: &str) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user and nice).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, n)| n)
        .sum();
    Duration::from_nanos(busy.saturating_mul(1_000_000_000 / ticks_per_second))
}

fn memory_in_use(meminfo: &str) -> u64 {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:")) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_reading_counts_busy_time_and_memory_not_available() {
        let stat = "cpu  100 20 30 4000 50 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let busy = 100 + 20 + 30 + 6 + 7 + 8;
        assert_eq!(
            busy_cpu(stat),
            Duration::from_nanos(busy * 1_000_000_000 / hz)
        );
        let meminfo = "MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable:  400 kB\n";
        assert_eq!(memory_in_use(meminfo), 600 * 1024);
    }
}
