//! The controllers' work-queue metrics, under client-go's names and
//! labelled by queue as kube-controller-manager's are: adds, depth,
//! retries, how long items wait and how long their work takes, and the
//! work in progress now.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exposition::{Histogram, Page};

/// client-go's duration buckets: 10 ns to 10 s, by tens.
const BUCKETS: [f64; 10] = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// Every work queue of the process, by name.
#[derive(Default)]
pub struct WorkQueues {
    queues: Mutex<BTreeMap<String, Arc<QueueMetrics>>>,
}

impl std::fmt::Debug for WorkQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueues").finish_non_exhaustive()
    }
}

/// One queue's counters.
pub struct QueueMetrics(Mutex<QueueState>);

struct QueueState {
    adds: u64,
    depth: u64,
    retries: u64,
    queue_duration: Histogram,
    work_duration: Histogram,
    /// When each item being worked on now was taken.
    working: Vec<Instant>,
}

impl WorkQueues {
    /// The queue called `name` (one per controller).
    pub fn queue(&self, name: &str) -> Arc<QueueMetrics> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(queues.entry(name.to_string()).or_insert_with(|| {
            Arc::new(QueueMetrics(Mutex::new(QueueState {
                adds: 0,
                depth: 0,
                retries: 0,
                queue_duration: Histogram::new(&BUCKETS),
                work_duration: Histogram::new(&BUCKETS),
                working: Vec::new(),
            })))
        }))
    }

    /// Writes every queue's metrics.
    pub fn write(&self, page: &mut Page) {
        let queues: Vec<(String, Arc<QueueMetrics>)> = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, queue)| (name.clone(), Arc::clone(queue)))
            .collect();
        let now = Instant::now();
        type Value = fn(&QueueState, Instant) -> f64;
        let plain: [(&str, &str, &str, Value); 5] = [
            (
                "workqueue_adds_total",
                "counter",
                "[ALPHA] Total number of adds handled by workqueue",
                |q, _| q.adds as f64,
            ),
            (
                "workqueue_depth",
                "gauge",
                "[ALPHA] Current depth of workqueue",
                |q, _| q.depth as f64,
            ),
            (
                "workqueue_retries_total",
                "counter",
                "[ALPHA] Total number of retries handled by workqueue",
                |q, _| q.retries as f64,
            ),
            (
                "workqueue_unfinished_work_seconds",
                "gauge",
                "[ALPHA] How many seconds of work has done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
                |q, now| {
                    q.working
                        .iter()
                        .map(|since| (now - *since).as_secs_f64())
                        .sum()
                },
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "gauge",
                "[ALPHA] How many seconds has the longest running processor for workqueue been running.",
                |q, now| {
                    q.working
                        .iter()
                        .map(|since| (now - *since).as_secs_f64())
                        .fold(0.0, f64::max)
                },
            ),
        ];
        for (metric, kind, help, value) in plain {
            page.family(metric, kind, help);
            for (name, queue) in &queues {
                let state = queue.state();
                page.sample(metric, &[("name", name)], value(&state, now), None);
            }
        }
        type Durations = fn(&QueueState) -> &Histogram;
        let histograms: [(&str, &str, Durations); 2] = [
            (
                "workqueue_queue_duration_seconds",
                "[ALPHA] How long in seconds an item stays in workqueue before being requested.",
                |q| &q.queue_duration,
            ),
            (
                "workqueue_work_duration_seconds",
                "[ALPHA] How long in seconds processing an item from workqueue takes.",
                |q| &q.work_duration,
            ),
        ];
        for (metric, help, histogram) in histograms {
            page.family(metric, "histogram", help);
            for (name, queue) in &queues {
                histogram(&queue.state()).write(page, metric, &[("name", name)]);
            }
        }
    }
}

impl QueueMetrics {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An item not already waiting was added.
    pub fn added(&self) {
        let mut state = self.state();
        state.adds += 1;
        state.depth += 1;
    }

    /// A waiting item was taken after `waited`; its work is timed until
    /// the returned guard goes.
    pub fn taken(self: &Arc<Self>, waited: Duration) -> Working {
        let started = Instant::now();
        let mut state = self.state();
        state.depth = state.depth.saturating_sub(1);
        state.queue_duration.observe(waited.as_secs_f64());
        state.working.push(started);
        Working {
            queue: Arc::clone(self),
            started,
        }
    }

    /// An item failed and goes back to wait its back-off.
    pub fn retried(&self) {
        self.state().retries += 1;
    }
}

/// An item being worked on.
pub struct Working {
    queue: Arc<QueueMetrics>,
    started: Instant,
}

impl Drop for Working {
    fn drop(&mut self) {
        let mut state = self.queue.state();
        if let Some(i) = state.working.iter().position(|s| *s == self.started) {
            state.working.swap_remove(i);
        }
        state
            .work_duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::assert_lines;

    #[test]
    fn a_queue_counts_adds_depth_retries_and_times_its_items() {
        let queues = WorkQueues::default();
        let queue = queues.queue("deployment");
        queue.added();
        queue.added();
        let working = queue.taken(Duration::from_millis(5));
        queue.retried();
        let mut page = Page::default();
        queues.write(&mut page);
        let during = page.finish();
        assert_lines(
            &during,
            &[
                r#"workqueue_adds_total{name="deployment"} 2"#,
                r#"workqueue_depth{name="deployment"} 1"#,
                r#"workqueue_retries_total{name="deployment"} 1"#,
                r#"workqueue_queue_duration_seconds_bucket{name="deployment",le="1e-08"} 0"#,
                r#"workqueue_queue_duration_seconds_bucket{name="deployment",le="0.001"} 0"#,
                r#"workqueue_queue_duration_seconds_bucket{name="deployment",le="0.01"} 1"#,
                r#"workqueue_work_duration_seconds_count{name="deployment"} 0"#,
            ],
        );
        assert!(
            !during
                .lines()
                .any(|l| l == r#"workqueue_longest_running_processor_seconds{name="deployment"} 0"#),
            "an item is being worked on: {during}"
        );
        drop(working);
        let mut page = Page::default();
        queues.write(&mut page);
        let after = page.finish();
        assert_lines(
            &after,
            &[
                r#"workqueue_work_duration_seconds_count{name="deployment"} 1"#,
                r#"workqueue_longest_running_processor_seconds{name="deployment"} 0"#,
                r#"workqueue_unfinished_work_seconds{name="deployment"} 0"#,
            ],
        );
    }
}
