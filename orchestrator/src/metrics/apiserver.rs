//! The API server's own metrics, under Kubernetes' names: requests by
//! verb, resource, scope and code (`apiserver_request_total`), their
//! latency (`apiserver_request_duration_seconds`, the API server's
//! buckets), the long-running requests open now (watches, exec, logs),
//! the events sent to watchers and their sizes
//! (`apiserver_watch_events_total`, `apiserver_watch_events_sizes`), the
//! objects stored per resource (`apiserver_storage_objects`) and the
//! process's own (`process_*`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::exposition::{Histogram, Page};

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

/// The API server's watch event size buckets: 1 KiB to 128 KiB.
const WATCH_EVENT_BUCKETS: [f64; 8] = [
    1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0,
];

/// The events sent to the watchers of one kind, and their sizes.
pub struct WatchEvents(Mutex<Histogram>);

impl WatchEvents {
    /// One event of `bytes` sent.
    pub fn sent(&self, bytes: usize) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(bytes as f64);
    }
}

/// The API server's request metrics.
#[derive(Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(RequestKind, u16), u64>>,
    durations: Mutex<BTreeMap<RequestKind, Histogram>>,
    open: Mutex<BTreeMap<RequestKind, i64>>,
    /// Requests being answered now.
    inflight: AtomicI64,
    /// Watch events by group, version and kind.
    watch_events: Mutex<BTreeMap<[String; 3], Arc<WatchEvents>>>,
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
        self.durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.clone())
            .or_insert_with(|| Histogram::new(&BUCKETS))
            .observe(took.as_secs_f64());
    }

    /// Where a watch of `kind` (of `group`/`version`) counts the events it
    /// sends.
    pub fn watch_events(&self, group: &str, version: &str, kind: &str) -> Arc<WatchEvents> {
        let key = [group.to_string(), version.to_string(), kind.to_string()];
        let mut all = self.watch_events.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(key).or_insert_with(|| {
            Arc::new(WatchEvents(Mutex::new(Histogram::new(
                &WATCH_EVENT_BUCKETS,
            ))))
        }))
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
            histogram.write(page, "apiserver_request_duration_seconds", &labels);
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
        self.write_watch_events(page);
    }

    fn write_watch_events(&self, page: &mut Page) {
        let watched: Vec<([String; 3], Arc<WatchEvents>)> = self
            .watch_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, events)| (key.clone(), Arc::clone(events)))
            .collect();
        page.family(
            "apiserver_watch_events_total",
            "counter",
            "[ALPHA] Number of events sent in watch clients",
        );
        for (key, events) in &watched {
            let count = events.0.lock().unwrap_or_else(|e| e.into_inner()).count();
            page.sample(
                "apiserver_watch_events_total",
                &watch_labels(key),
                count as f64,
                None,
            );
        }
        page.family(
            "apiserver_watch_events_sizes",
            "histogram",
            "[ALPHA] Watch event size distribution in bytes",
        );
        for (key, events) in &watched {
            events.0.lock().unwrap_or_else(|e| e.into_inner()).write(
                page,
                "apiserver_watch_events_sizes",
                &watch_labels(key),
            );
        }
    }
}

/// A watched kind's labels, from its group, version and kind.
fn watch_labels([group, version, kind]: &[String; 3]) -> [(&str, &str); 3] {
    [("group", group), ("kind", kind), ("version", version)]
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
    use crate::metrics::exposition::assert_lines;

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
    fn watch_events_are_counted_by_kind_with_their_sizes() {
        let metrics = ApiMetrics::default();
        let pods = metrics.watch_events("", "v1", "Pod");
        pods.sent(500);
        pods.sent(3000);
        metrics
            .watch_events("apps", "v1", "Deployment")
            .sent(200_000);
        let mut page = Page::default();
        metrics.write(&mut page);
        let text = page.finish();
        assert_lines(
            &text,
            &[
                r#"apiserver_watch_events_total{group="",kind="Pod",version="v1"} 2"#,
                r#"apiserver_watch_events_total{group="apps",kind="Deployment",version="v1"} 1"#,
                r#"apiserver_watch_events_sizes_bucket{group="",kind="Pod",version="v1",le="1024"} 1"#,
                r#"apiserver_watch_events_sizes_bucket{group="",kind="Pod",version="v1",le="4096"} 2"#,
                r#"apiserver_watch_events_sizes_bucket{group="apps",kind="Deployment",version="v1",le="131072"} 0"#,
                r#"apiserver_watch_events_sizes_bucket{group="apps",kind="Deployment",version="v1",le="+Inf"} 1"#,
                r#"apiserver_watch_events_sizes_sum{group="",kind="Pod",version="v1"} 3500"#,
            ],
        );
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
