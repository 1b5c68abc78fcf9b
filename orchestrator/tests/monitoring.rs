//! The guide's "Monitoring" through the real kubectl: `kubectl top pod`
//! and `kubectl top node` on the metrics API the server serves from the
//! kubelet's scrape (every second here, as `--metric-resolution 1s`),
//! and the guide's "Autoscaling": a HorizontalPodAutoscaler made by
//! `kubectl autoscale` scaling a Deployment (evaluated every 2 s here).

mod server;

use std::sync::Arc;
use std::time::Duration;

use server::Server;

/// One server for the binary, scraping every second.
fn server() -> Arc<Server> {
    Server::shared_with(
        &[
            "--metric-resolution",
            "1s",
            "--horizontal-pod-autoscaler-sync-period",
            "2s",
        ],
        |_| {},
    )
}

/// A pod spinning on one container beside an idle one, and a pod holding
/// 64 MiB.
const LOAD: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: top
---
apiVersion: v1
kind: Pod
metadata:
  name: burner
  namespace: top
  labels: {app: burner}
spec:
  containers:
  - name: spin
    image: stress
    args: [--spin-ms, '600000']
  - name: idle
    image: toolbox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
  namespace: top
  labels: {app: hog}
spec:
  containers:
  - name: hog
    image: stress
    args: [--alloc-mb, '64', --sleep-ms, '600000']
    resources:
      requests: {cpu: 10m, memory: 80Mi}
      limits: {memory: 96Mi}
";

/// The rows of a `kubectl top` table, split on whitespace, header first.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `250m` → 250, `1` → 1000.
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cell.parse::<u64>().unwrap() * 1000,
    }
}

/// `65Mi` → 65.
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .unwrap_or_else(|| panic!("{cell} is not in Mi"))
        .parse()
        .unwrap()
}

#[test]
fn kubectl_top_shows_a_cpu_burner_and_a_memory_hog() {
    let server = server();
    let file = server.manifest("load.yaml", LOAD);
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "-n",
        "top",
        "--for=condition=Ready",
        "pod/burner",
        "pod/hog",
        "--timeout=60s",
    ]);
    // Once both were measured, the hog's allocation over (touching
    // 64 MiB takes CPU: its first window shows it)...
    let mut table = String::new();
    server.wait_for(Duration::from_secs(30), || {
        let out = server.kubectl(&["top", "pod", "-n", "top"]);
        table = String::from_utf8_lossy(&out.stdout).into_owned();
        let settled =
            |r: &Vec<String>| r[0] == "hog" && millicores(&r[1]) < 100 && mebibytes(&r[2]) >= 64;
        out.status.success()
            && rows(&table).iter().any(|r| r[0] == "burner")
            && rows(&table).iter().any(settled)
    });
    let rows = rows(&table);
    assert_eq!(rows[0], ["NAME", "CPU(cores)", "MEMORY(bytes)"], "{table}");
    let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap().clone();
    // ...the spinner uses what a core gives it (less when the machine is
    // busy with other tests) and holds little memory.
    let burner = row("burner");
    assert!(millicores(&burner[1]) >= 200, "{table}");
    assert!(mebibytes(&burner[2]) < 16, "{table}");

    // Per container: the spinning one, not its idle neighbour.
    let containers = server.kubectl_ok(&["top", "pod", "burner", "-n", "top", "--containers"]);
    let containers = self::rows(&containers);
    assert_eq!(
        containers[0],
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    let spin = containers.iter().find(|r| r[1] == "spin").unwrap();
    let idle = containers.iter().find(|r| r[1] == "idle").unwrap();
    assert!(millicores(&spin[2]) >= 200, "{containers:?}");
    assert!(millicores(&idle[2]) < 50, "{containers:?}");

    // Sorted, across namespaces, by label.
    let by_cpu = self::rows(&server.kubectl_ok(&["top", "pod", "-n", "top", "--sort-by=cpu"]));
    assert_eq!(by_cpu[1][0], "burner", "{by_cpu:?}");
    let by_memory =
        self::rows(&server.kubectl_ok(&["top", "pod", "-n", "top", "--sort-by=memory"]));
    assert_eq!(by_memory[1][0], "hog", "{by_memory:?}");
    let everywhere = self::rows(&server.kubectl_ok(&["top", "pod", "-A"]));
    assert_eq!(everywhere[0][0], "NAMESPACE");
    assert!(
        everywhere.iter().any(|r| r[..2] == ["top", "hog"]),
        "{everywhere:?}"
    );
    let labelled = self::rows(&server.kubectl_ok(&["top", "pod", "-n", "top", "-l", "app=hog"]));
    assert_eq!(labelled.len(), 2, "{labelled:?}");
    assert_eq!(labelled[1][0], "hog");

    // The API object, as metrics-server writes it.
    let raw = server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/top/pods/hog",
    ]);
    let metrics: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(metrics["kind"], "PodMetrics");
    assert_eq!(metrics["metadata"]["labels"]["app"], "hog");
    // A Go duration: `1.000251s`, or `395.1ms` when the container
    // started after the scrape before (it is measured from its start).
    let window = metrics["window"].as_str().unwrap();
    let seconds: f64 = match window.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().unwrap() / 1000.0,
        None => window.strip_suffix('s').unwrap().parse().unwrap(),
    };
    assert!(seconds > 0.0 && seconds < 10.0, "{window}");
    assert!(metrics["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(metrics["containers"][0]["name"], "hog");

    // `kubectl describe node` counts what the node's pods request.
    let node = server.kubectl_ok(&["describe", "node", server.node_name()]);
    let pods = node
        .split("Non-terminated Pods:")
        .nth(1)
        .unwrap_or_else(|| panic!("{node}"));
    let hog = pods
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["top", "hog"]))
        .unwrap_or_else(|| panic!("{pods}"));
    let cells: Vec<&str> = hog.split_whitespace().collect();
    assert_eq!(cells[2], "10m", "{hog}");
    assert_eq!(cells[6], "80Mi", "{hog}");
    assert_eq!(cells[8], "96Mi", "{hog}");
    assert!(node.contains("Allocated resources:"), "{node}");

    // A pod that is not there is named in the error.
    let missing = server.kubectl(&["top", "pod", "nothere", "-n", "top"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains(r#"podmetrics.metrics.k8s.io "top/nothere" not found"#),
        "{missing:?}"
    );
    server.kubectl_ok(&["delete", "namespace", "top", "--wait=false"]);
}

#[test]
fn kubectl_top_node_shows_the_machine() {
    let server = server();
    let mut table = String::new();
    server.wait_for(Duration::from_secs(30), || {
        let out = server.kubectl(&["top", "node"]);
        table = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    let rows = rows(&table);
    assert_eq!(
        rows[0],
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        "{table}"
    );
    assert_eq!(rows[1][0], server.node_name());
    let percent = |cell: &str| cell.strip_suffix('%').unwrap().parse::<u64>().unwrap();
    assert!(percent(&rows[1][2]) <= 100, "{table}");
    assert!(mebibytes(&rows[1][3]) > 0, "{table}");
    assert!(percent(&rows[1][4]) <= 100, "{table}");

    // The oldest kubectl this serves prints the same.
    let old = server::kubectl_dir().join("kubectl.1.27");
    let printed = server.kubectl_binary_ok(&old, &["top", "node"]);
    assert!(printed.starts_with("NAME"), "{printed}");
    assert!(printed.contains(server.node_name()), "{printed}");
}

/// A Deployment whose pods keep a CPU busy (up to their 200m limit, four
/// times their 50m request) while the ConfigMap `load` has the key `busy`,
/// and idle without it.
const BUSY: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: scaling
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: load
  namespace: scaling
data:
  busy: 'yes'
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
  namespace: scaling
spec:
  replicas: 1
  selector:
    matchLabels: {app: busy}
  template:
    metadata:
      labels: {app: busy}
    spec:
      containers:
      - name: busy
        image: toolbox
        command: [sh, -c, 'while true; do if [ -e /load/busy ]; then i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; else sleep 1; fi; done']
        resources:
          requests: {cpu: 50m}
          limits: {cpu: 200m}
        volumeMounts: [{name: load, mountPath: /load}]
      volumes:
      - name: load
        configMap: {name: load}
";

/// The Deployment's desired replicas.
fn replicas(server: &Server) -> i64 {
    let deployment = server.json(&["get", "deployment", "busy", "-n", "scaling"]);
    deployment["spec"]["replicas"].as_i64().unwrap()
}

/// The messages of the autoscaler's events with `reason`.
fn events(server: &Server, reason: &str) -> Vec<String> {
    server
        .items(&[
            "get",
            "events",
            "-n",
            "scaling",
            "--field-selector",
            &format!("involvedObject.kind=HorizontalPodAutoscaler,reason={reason}"),
        ])
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

fn condition(hpa: &serde_json::Value, kind: &str) -> (String, String) {
    let found = hpa["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition: {hpa}"));
    (
        found["status"].as_str().unwrap().to_string(),
        found["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn an_autoscaler_scales_a_deployment_up_under_load_and_down_after_its_window() {
    let server = server();
    let file = server.manifest("busy.yaml", BUSY);
    server.kubectl_ok(&["apply", "-f", &file]);
    let created = server.kubectl_ok(&[
        "autoscale",
        "deployment",
        "busy",
        "-n",
        "scaling",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert_eq!(
        created.trim(),
        "horizontalpodautoscaler.autoscaling/busy autoscaled"
    );
    // The guide's autoscaler waits five minutes before scaling down; this
    // one five seconds.
    server.kubectl_ok(&[
        "patch",
        "hpa",
        "busy",
        "-n",
        "scaling",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":5}}}}"#,
    ]);
    let hpa = server.json(&["get", "hpa", "busy", "-n", "scaling"]);
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["type"], "Pods",
        "defaulted: {hpa}"
    );

    // Under load: to the maximum, with the event Kubernetes writes.
    server.wait_for(Duration::from_secs(90), || replicas(&server) == 3);
    let up = events(&server, "SuccessfulRescale");
    assert!(
        up.iter().any(|m| m.starts_with("New size: ")
            && m.ends_with(
                "; reason: cpu resource utilization (percentage of request) above target"
            )),
        "{up:?}"
    );
    server.wait_for(Duration::from_secs(30), || {
        let hpa = server.json(&["get", "hpa", "busy", "-n", "scaling"]);
        hpa["status"]["currentReplicas"] == 3
            && condition(&hpa, "ScalingLimited") == ("True".into(), "TooManyReplicas".into())
    });
    let hpa = server.json(&["get", "hpa", "busy", "-n", "scaling"]);
    assert_eq!(condition(&hpa, "AbleToScale").0, "True", "{hpa}");
    assert_eq!(
        condition(&hpa, "ScalingActive"),
        ("True".into(), "ValidMetricFound".into())
    );
    let utilization =
        hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
            .as_i64()
            .unwrap();
    assert!(utilization > 50, "{hpa}");
    // `kubectl get hpa` as on a cluster (TARGETS holds a space).
    let table = rows(&server.kubectl_ok(&["get", "hpa", "-n", "scaling"]));
    assert_eq!(
        table[0],
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert_eq!(table[1][..3], ["busy", "Deployment/busy", "cpu:"]);
    let (current, target) = table[1][3].split_once('/').unwrap();
    assert!(current.ends_with('%'), "{table:?}");
    assert_eq!(target, "50%");
    assert_eq!(table[1][4..7], ["1", "3", "3"]);
    // autoscaling/v1 sees the same autoscaler in its own terms.
    let v1 = server.json(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "busy",
        "-n",
        "scaling",
    ]);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert!(
        v1["status"]["currentCPUUtilizationPercentage"]
            .as_i64()
            .is_some(),
        "{v1}"
    );
    // Its watch too, as a v1 client's informer reads it.
    let watched = server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/scaling/horizontalpodautoscalers?watch=1&timeoutSeconds=1",
    ]);
    let event: serde_json::Value = serde_json::from_str(watched.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["apiVersion"], "autoscaling/v1");
    assert_eq!(
        event["object"]["spec"]["targetCPUUtilizationPercentage"],
        50
    );

    // Load gone: back to the minimum once the window has passed.
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "load",
        "-n",
        "scaling",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/busy"}]"#,
    ]);
    server.wait_for(Duration::from_secs(90), || replicas(&server) == 1);
    let down = events(&server, "SuccessfulRescale");
    assert!(
        down.contains(&"New size: 1; reason: All metrics below target".to_string()),
        "{down:?}"
    );
    server.kubectl_ok(&["delete", "namespace", "scaling", "--wait=false"]);
}

/// A Prometheus started on loopback with `config`, stopped (by its pid)
/// when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(config: &str, dir: tempfile::TempDir) -> Prometheus {
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = server::free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Debian's prometheus is installed (scripts/setup-monitoring-tools.sh)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The result vector of an instant query through the HTTP API, empty
    /// until Prometheus answers.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        use std::io::{Read, Write};
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return Vec::new();
        };
        let request =
            format!("GET /api/v1/query?query={encoded} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = String::new();
        if stream.write_all(request.as_bytes()).is_err()
            || stream.read_to_string(&mut answer).is_err()
        {
            return Vec::new();
        }
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The value of a query result's sample.
fn sample_value(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_stock_prometheus_scrapes_the_api_server_and_the_nodes_containers() {
    let server = server();
    let file = server.manifest(
        "spinner.yaml",
        "apiVersion: v1
kind: Namespace
metadata:
  name: scraped
---
apiVersion: v1
kind: Pod
metadata:
  name: spinner
  namespace: scraped
spec:
  containers:
  - name: spin
    image: stress
    args: [--spin-ms, '600000']
    resources:
      limits: {cpu: 100m}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: scraped
  labels: {app: web}
spec:
  containers:
  - name: web
    image: http-server
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: scraped
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: scraped
spec:
  containers:
  - {name: c, image: toolbox, command: [sleep, '3600']}
",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "-n",
        "scraped",
        "--for=condition=Ready",
        "pod/spinner",
        "pod/web",
        "pod/client",
        "--timeout=60s",
    ]);
    // One page from one pod to the other, through the Service.
    let page = server.kubectl_ok(&[
        "exec",
        "-n",
        "scraped",
        "client",
        "--",
        "wget",
        "-qO-",
        "http://web/",
    ]);
    assert!(!page.is_empty());

    // Without credentials the API server's metrics are refused, as the
    // API server refuses them.
    let (address, ca, token) = server.client_config();
    let anonymous = server.kubectl(&["get", "--raw", "/metrics", "--token", "not-a-token"]);
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("Unauthorized"),
        "{anonymous:?}"
    );

    // A stock Prometheus with a static configuration and the token.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
    std::fs::write(dir.path().join("token"), &token).unwrap();
    let job = |name: &str, path: &str| {
        format!(
            "- job_name: {name}
  scheme: https
  metrics_path: {path}
  tls_config:
    ca_file: {dir}/ca.crt
  authorization:
    credentials_file: {dir}/token
  static_configs:
  - targets: ['{address}']
",
            dir = dir.path().display()
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("apiserver", "/metrics"),
        job(
            "cadvisor",
            &format!(
                "/api/v1/nodes/{}/proxy/metrics/cadvisor",
                server.node_name()
            )
        ),
    );
    let prometheus = Prometheus::start(&config, dir);

    // The spinner's CPU, by name, rising between scrapes.
    let cpu =
        r#"container_cpu_usage_seconds_total{namespace="scraped",pod="spinner",container="spin"}"#;
    let mut found = Vec::new();
    server.wait_for(Duration::from_secs(60), || {
        found = prometheus.query(cpu);
        found.len() == 1 && sample_value(&found[0]) > 0.0
    });
    assert_eq!(
        found[0]["metric"]["image"]
            .as_str()
            .map(|i| i.contains("stress")),
        Some(true),
        "{found:?}"
    );
    let rate = format!("rate({cpu}[5s])");
    server.wait_for(Duration::from_secs(30), || {
        let rated = prometheus.query(&rate);
        // Its 100m limit: a tenth of a core, give or take the windows.
        rated.len() == 1 && (0.03..0.2).contains(&sample_value(&rated[0]))
    });
    let memory = prometheus.query(r#"container_memory_working_set_bytes{pod="spinner"}"#);
    assert!(sample_value(&memory[0]) > 0.0, "{memory:?}");

    // The page crossed both pods' edges: out of the web pod, into the
    // client; the request the other way. The spinner talked to nobody.
    let bytes = |direction: &str, pod: &str| {
        let found = prometheus.query(&format!(
            r#"container_network_{direction}_bytes_total{{namespace="scraped",pod="{pod}",interface="eth0"}}"#
        ));
        (found.len() == 1).then(|| sample_value(&found[0]))
    };
    let body = page.len() as f64;
    server.wait_for(Duration::from_secs(30), || {
        bytes("transmit", "web").is_some_and(|b| b > body)
            && bytes("receive", "client").is_some_and(|b| b > body)
    });
    let request = bytes("transmit", "client").unwrap();
    assert!(request > 0.0, "{request} bytes of request");
    assert_eq!(bytes("receive", "web"), Some(request));
    assert_eq!(bytes("receive", "spinner"), Some(0.0));

    // The API server's own metrics, under its names.
    server.wait_for(Duration::from_secs(30), || {
        let up = prometheus.query(r#"up{job="apiserver"}"#);
        let listed =
            prometheus.query(r#"apiserver_request_total{verb="LIST",resource="pods",code="200"}"#);
        up.len() == 1 && sample_value(&up[0]) == 1.0 && !listed.is_empty()
    });
    for name in [
        "apiserver_request_duration_seconds_bucket",
        // kubectl wait watched the pods.
        r#"apiserver_watch_events_total{group="",version="v1",kind="Pod"}"#,
        r#"apiserver_watch_events_sizes_bucket{kind="Pod",le="+Inf"}"#,
        r#"apiserver_storage_objects{resource="pods"}"#,
        r#"apiserver_longrunning_requests{verb="WATCH"}"#,
        "process_resident_memory_bytes",
    ] {
        assert!(!prometheus.query(name).is_empty(), "{name} was not scraped");
    }
    let pods = prometheus.query(r#"apiserver_storage_objects{resource="pods"}"#);
    assert!(sample_value(&pods[0]) >= 1.0, "{pods:?}");
    // The controllers' work queues: each namespace passed at least once.
    for name in [
        r#"workqueue_adds_total{name="deployment"}"#,
        r#"workqueue_work_duration_seconds_count{name="endpoint"}"#,
        r#"workqueue_queue_duration_seconds_count{name="replicaset"}"#,
    ] {
        let found = prometheus.query(name);
        assert!(
            found.len() == 1 && sample_value(&found[0]) >= 1.0,
            "{name}: {found:?}"
        );
    }
    let depths = prometheus.query("workqueue_depth");
    assert!(depths.len() >= 10, "a depth per controller: {depths:?}");
    drop(prometheus);

    // The kubelet's resource endpoint, as metrics-server reads it.
    let resource = server.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/nodes/{}/proxy/metrics/resource",
            server.node_name()
        ),
    ]);
    assert!(
        resource.contains("# TYPE node_cpu_usage_seconds_total counter"),
        "{resource}"
    );
    assert!(
        resource
            .lines()
            .any(|l| l
                .starts_with(r#"pod_cpu_usage_seconds_total{namespace="scraped",pod="spinner"}"#)),
        "{resource}"
    );
    server.kubectl_ok(&["delete", "namespace", "scraped", "--wait=false"]);
}
