//! The API server's own metrics, under Kubernetes' names: requests by
//! verb, resource, scope and code (`apiserver_request_total`), their
//! latency (`apiserver_request_duration_seconds`, the API server's
//! buckets), the long-running requests open now (watches, exec, logs),
//! the objects stored per resource (`apiserver_storage_objects`) and the
//! process's own (`process_*`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::exposition::Page;

/// The API server's latency buckets, in seconds.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// What the metrics say about one request: the labels the API server
/// gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKind {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
    /// `DELETECOLLECTION`, `CONNECT`.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// `resource` (one named object), `namespace`, `cluster`; empty for
    /// non-resource paths.
    pub scope: String,
}

impl RequestKind {
    /// Whether the request stays open (watches and streams): it is counted
    /// while open, not timed.
    pub fn long_running(&self) -> bool {
        self.verb == "WATCH"
            || self.verb == "CONNECT"
            || matches!(
                self.subresource.as_str(),
                "log" | "exec" | "attach" | "portforward" | "proxy"
            )
    }

    fn labels(&self) -> [(&str, &str); 7] {
        [
            ("component", "apiserver"),
            ("group", &self.group),
            ("resource", &self.resource),
            ("scope", &self.scope),
            ("subresource", &self.subresource),
            ("verb", &self.verb),
            ("version", &self.version),
        ]
    }
}

#[derive(Default)]
struct Histogram {
    /// Counts per bucket (not cumulative; summed when written).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The API server's request metrics.
#[derive(Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(RequestKind, u16), u64>>,
    durations: Mutex<BTreeMap<RequestKind, Histogram>>,
    open: Mutex<BTreeMap<RequestKind, i64>>,
    /// Requests being answered now.
    inflight: AtomicI64,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiMetrics").finish_non_exhaustive()
    }
}

/// Counts a long-running request while it is open.
pub struct Open {
    metrics: Arc<ApiMetrics>,
    kind: RequestKind,
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut open = self.metrics.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.kind) {
            *n -= 1;
        }
    }
}

impl ApiMetrics {
    /// A request is being answered (until the guard goes).
    pub fn begin(&self) -> impl Drop + '_ {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        Inflight(self)
    }

    /// A request answered with `code` after `took`.
    pub fn observe(&self, kind: &RequestKind, code: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind.clone(), code))
            .or_default() += 1;
        if kind.long_running() {
            return;
        }
        let seconds = took.as_secs_f64();
        let mut durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = durations.entry(kind.clone()).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// A long-running request is open until the returned guard goes.
    pub fn open(self: &Arc<Self>, kind: RequestKind) -> Open {
        *self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.clone())
            .or_default() += 1;
        Open {
            metrics: Arc::clone(self),
            kind,
        }
    }

    /// Writes the request metrics.
    pub fn write(&self, page: &mut Page) {
        page.family(
            "apiserver_request_total",
            "counter",
            "[STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        );
        for ((kind, code), count) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let code = code.to_string();
            let mut labels = kind.labels().to_vec();
            labels.insert(0, ("code", &code));
            labels.insert(2, ("dry_run", ""));
            page.sample("apiserver_request_total", &labels, *count as f64, None);
        }
        page.family(
            "apiserver_request_duration_seconds",
            "histogram",
            "[STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
        );
        for (kind, histogram) in self
            .durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let mut labels = kind.labels().to_vec();
            labels.insert(1, ("dry_run", ""));
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let le = bound.to_string();
                let mut with = labels.clone();
                with.push(("le", &le));
                page.sample(
                    "apiserver_request_duration_seconds_bucket",
                    &with,
                    cumulative as f64,
                    None,
                );
            }
            let mut with = labels.clone();
            with.push(("le", "+Inf"));
            page.sample(
                "apiserver_request_duration_seconds_bucket",
                &with,
                histogram.count as f64,
                None,
            );
            page.sample(
                "apiserver_request_duration_seconds_sum",
                &labels,
                histogram.sum,
                None,
            );
            page.sample(
                "apiserver_request_duration_seconds_count",
                &labels,
                histogram.count as f64,
                None,
            );
        }
        page.family(
            "apiserver_longrunning_requests",
            "gauge",
            "[STABLE] Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.",
        );
        for (kind, open) in self.open.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            page.sample(
                "apiserver_longrunning_requests",
                &kind.labels(),
                *open as f64,
                None,
            );
        }
        page.family(
            "apiserver_current_inflight_requests",
            "gauge",
            "[STABLE] Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
        );
        let inflight = self.inflight.load(Ordering::Relaxed) as f64;
        page.sample(
            "apiserver_current_inflight_requests",
            &[("request_kind", "readOnly")],
            inflight,
            None,
        );
    }
}

struct Inflight<'a>(&'a ApiMetrics);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes `apiserver_storage_objects`: the objects stored of each
/// resource (`deployments.apps`, `pods`).
pub fn write_storage(page: &mut Page, counts: &[(String, usize)]) {
    page.family(
        "apiserver_storage_objects",
        "gauge",
        "[STABLE] Number of stored objects at the time of last check split by kind. In case of a fetching error, the value will be -1.",
    );
    for (resource, count) in counts {
        page.sample(
            "apiserver_storage_objects",
            &[("resource", resource)],
            *count as f64,
            None,
        );
    }
}

/// Writes the process's metrics, as every Go program's client library
/// does: CPU time, memory, descriptors, start time.
pub fn write_process(page: &mut Page) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis, from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> f64 {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0) as f64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let families: [(&str, &str, &str, f64); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            (field(14) + field(15)) / ticks,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            field(24) * page_size,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            field(23),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            limit.rlim_cur as f64,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot + field(22) / ticks,
        ),
    ];
    for (name, kind, help, value) in families {
        page.family(name, kind, help);
        page.sample(name, &[], value, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_pods() -> RequestKind {
        RequestKind {
            verb: "LIST".into(),
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            subresource: String::new(),
            scope: "namespace".into(),
        }
    }

    #[test]
    fn requests_are_counted_by_code_and_timed_in_the_api_servers_buckets() {
        let metrics = Arc::new(ApiMetrics::default());
        metrics.observe(&list_pods(), 200, Duration::from_millis(30));
        metrics.observe(&list_pods(), 200, Duration::from_millis(3));
        metrics.observe(&list_pods(), 403, Duration::from_millis(1));
        let watch = RequestKind {
            verb: "WATCH".into(),
            ..list_pods()
        };
        let open = metrics.open(watch.clone());
        metrics.observe(&watch, 200, Duration::from_secs(100));
        let mut page = Page::default();
        metrics.write(&mut page);
        let text = page.finish();
        assert!(text.contains(r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 2"#), "{text}");
        assert!(text.contains(r#"code="403""#));
        assert!(text.contains(r#"apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1",le="0.005"} 2"#), "{text}");
        assert!(text.contains(r#"le="0.05"} 3"#), "{text}");
        assert!(
            !text.contains(r#"verb="WATCH",version="v1",le="#),
            "watches are not timed: {text}"
        );
        assert!(text.contains(r#"apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 1"#), "{text}");
        drop(open);
        let mut page = Page::default();
        metrics.write(&mut page);
        assert!(page.finish().contains(r#"verb="WATCH",version="v1"} 0"#));
    }

    #[test]
    fn the_process_reports_its_memory_and_descriptors() {
        let mut page = Page::default();
        write_process(&mut page);
        let text = page.finish();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_start_time_seconds") > 1.6e9);
    }
}
