//! `wasmkube serve` driven by the real kubectl, as a user would: apply,
//! get, describe, logs, watch, delete, restarts, persistence, crashes.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use server::Server;

const SLEEPER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  containers:
  - name: main
    image: toolbox
    command: [\"sh\", \"-c\", \"echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done\"]
";

#[test]
fn apply_get_describe_logs_delete() {
    let server = Server::start();
    let file = server.manifest("web.yaml", SLEEPER);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &file]).trim(),
        "pod/web created"
    );
    server.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);

    let table = server.kubectl_ok(&["get", "pods"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "1/1", "Running", "0"], "{table}");

    let wide = server.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    assert!(wide.contains(server.node_name()), "{wide}");

    let labels = server.kubectl_ok(&["get", "pods", "--show-labels"]);
    assert!(labels.contains("app=web,tier=front"), "{labels}");
    let selected = server.kubectl_ok(&["get", "pods", "-l", "tier in (front)", "-o", "name"]);
    assert_eq!(selected.trim(), "pod/web");
    let none = server.kubectl(&["get", "pods", "-l", "tier=back"]);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found in default namespace.")
    );

    let json: serde_json::Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "pod", "web", "-o", "json"])).unwrap();
    assert_eq!(json["status"]["phase"], "Running");
    assert_eq!(json["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(json["spec"]["nodeName"], server.node_name());
    let yaml = server.kubectl_ok(&["get", "pod", "web", "-o", "yaml"]);
    assert!(yaml.contains("qosClass: BestEffort"), "{yaml}");

    let describe = server.kubectl_ok(&["describe", "pod", "web"]);
    let field = |name: &str| {
        describe
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    assert_eq!(field("Status:"), Some("Running"), "{describe}");
    assert_eq!(field("Service Account:"), Some("default"), "{describe}");
    for expected in [
        "Successfully assigned default/web to",
        "Pulling image \"toolbox\"",
        "Created container: main",
        "Started container main",
    ] {
        assert!(
            describe.contains(expected),
            "missing {expected:?} in\n{describe}"
        );
    }

    let logs = server.kubectl_ok(&["logs", "web"]);
    assert!(logs.starts_with("started\ntick 0\n"), "{logs}");
    let tail = server.kubectl_ok(&["logs", "web", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");
    // Follow: the stream keeps delivering new lines.
    let mut follow = server
        .kubectl_command(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = server::read_lines_until(
        follow.stdout.take().unwrap(),
        Duration::from_secs(30),
        |seen| seen.lines().filter(|l| l.starts_with("tick")).count() >= 4,
    );
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        lines.lines().filter(|l| l.starts_with("tick")).count() >= 4,
        "{lines}"
    );

    let started = Instant::now();
    assert_eq!(
        server.kubectl_ok(&["delete", "pod", "web"]).trim(),
        "pod \"web\" deleted"
    );
    eprintln!("kubectl delete pod took {:?}", started.elapsed());
    let gone = server.kubectl(&["get", "pod", "web"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("pods \"web\" not found"));
}

#[test]
fn apply_twice_replace_and_create_an_existing_object() {
    let server = Server::start();
    let file = server.manifest("web.yaml", SLEEPER);
    server.kubectl_ok(&["apply", "-f", &file]);
    // Until it runs, the kubelet writes its status, and `kubectl replace`
    // (a GET, then a PUT at that resourceVersion) would race those writes
    // as it does on any cluster.
    server.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &file]).trim(),
        "pod/web unchanged"
    );
    let changed = server.manifest(
        "changed.yaml",
        &SLEEPER.replace("tier: front", "tier: back"),
    );
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &changed]).trim(),
        "pod/web configured"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "back"
    );

    let exists = server.kubectl(&["create", "-f", &file]);
    assert!(!exists.status.success());
    let stderr = String::from_utf8_lossy(&exists.stderr);
    assert!(
        stderr.contains("Error from server (AlreadyExists)")
            && stderr.contains("pods \"web\" already exists"),
        "{stderr}"
    );

    let replaced = server.manifest(
        "replaced.yaml",
        &SLEEPER.replace("image: toolbox", "image: toolbox:latest"),
    );
    assert_eq!(
        server.kubectl_ok(&["replace", "-f", &replaced]).trim(),
        "pod/web replaced"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image}"
        ]),
        "toolbox:latest"
    );
    let forbidden = server.manifest(
        "forbidden.yaml",
        &SLEEPER.replace("echo started", "echo begun"),
    );
    let refused = server.kubectl(&["replace", "-f", &forbidden]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pod updates may not change fields"));

    // A typo is refused by the server-side validation kubectl asks for.
    let typo = server.manifest(
        "typo.yaml",
        &SLEEPER.replace("name: web", "name: typo").replace(
            "image: toolbox",
            "image: toolbox\n    imagePullPolicyy: Always",
        ),
    );
    let refused = server.kubectl(&["apply", "-f", &typo]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("unknown field \"spec.containers[0].imagePullPolicyy\""),
        "{stderr}"
    );

    // `kubectl replace` set the label and image back: they are its own
    // now, so server-side apply of other values conflicts, as on a
    // cluster, until forced; then it records its manager.
    let conflict = server.kubectl(&["apply", "--server-side", "-f", &changed]);
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("Apply failed with 2 conflicts: conflicts with \"kubectl-replace\" using v1:\n- .metadata.labels.tier\n- .spec.containers[name=\"main\"].image"),
        "{stderr}"
    );
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &changed,
    ]);
    let managed = server.kubectl_ok(&["get", "pod", "web", "--show-managed-fields", "-o", "yaml"]);
    assert!(
        managed.contains("manager: kubectl\n    operation: Apply"),
        "{managed}"
    );
    assert!(
        managed.contains("manager: kubelet\n    operation: Update\n    subresource: status"),
        "{managed}"
    );
}

#[test]
fn explain_api_resources_and_versions() {
    let server = Server::start();
    let explain = server.kubectl_ok(&["explain", "pod.spec.volumes"]);
    assert!(explain.contains("FIELD: volumes <[]Volume>"), "{explain}");
    assert!(explain.contains("emptyDir"), "{explain}");
    let resources = server.kubectl_ok(&["api-resources"]);
    let pods = resources.lines().find(|l| l.starts_with("pods ")).unwrap();
    assert_eq!(
        pods.split_whitespace().collect::<Vec<_>>(),
        ["pods", "po", "v1", "true", "Pod"]
    );
    assert!(
        server
            .kubectl_ok(&["api-versions"])
            .lines()
            .any(|l| l == "v1")
    );
    let version = server.kubectl_ok(&["version"]);
    assert!(version.contains("Server Version: v1.33"), "{version}");
}

#[test]
fn every_dispatched_kubectl_version_lists_pods() {
    // The dispatcher runs kubectl.1.<minor> binaries; 1.27-1.29 accept only
    // the v2beta1 discovery format.
    let server = Server::start();
    let file = server.manifest("web.yaml", SLEEPER);
    server.kubectl_ok(&["apply", "-f", &file]);
    let dir = server::kubectl_dir();
    for minor in 27..=33 {
        let binary = dir.join(format!("kubectl.1.{minor}"));
        assert!(binary.exists(), "{} is missing", binary.display());
        let pods = server.kubectl_binary_ok(&binary, &["get", "pods"]);
        assert!(pods.contains("web"), "kubectl 1.{minor}: {pods}");
    }
}

#[test]
fn get_watch_sees_a_pod_run_and_complete() {
    let server = Server::start();
    let mut watch = server
        .kubectl_command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let file = server.manifest(
        "once.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: once\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, \"sleep 1; echo done\"]\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    let seen = server::read_lines_until(stdout, Duration::from_secs(60), |seen| {
        seen.contains("Completed")
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let statuses: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("once "))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert!(statuses.contains(&"Running"), "{seen}");
    assert_eq!(statuses.last(), Some(&"Completed"), "{seen}");
}

#[test]
fn a_crashing_container_backs_off_and_keeps_its_previous_log() {
    let server = Server::start();
    let file = server.manifest(
        "crash.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, \"echo attempt; exit 3\"]\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(60), || {
        let restarts = server.kubectl_ok(&[
            "get",
            "pod",
            "crash",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ]);
        restarts.parse::<u32>().unwrap_or(0) >= 2
    });
    let previous = server.kubectl_ok(&["logs", "crash", "--previous"]);
    assert_eq!(previous, "attempt\n");
    let last = server.kubectl_ok(&[
        "get",
        "pod",
        "crash",
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]);
    assert_eq!(last, "3");
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["describe", "pod", "crash"])
            .contains("Back-off restarting failed container c in pod crash_default")
    });
    // Between back-offs the container runs again for a moment: the
    // status is read until it shows the crash.
    server.wait_for(Duration::from_secs(30), || {
        let status = server.kubectl_ok(&["get", "pod", "crash"]);
        status.contains("CrashLoopBackOff") || status.contains("Error")
    });
}

#[test]
fn an_unknown_image_goes_err_image_pull_then_back_off() {
    let server = Server::start();
    let file = server.manifest(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: no-such-image:9.9\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "pod", "bad"])
            .contains("ImagePullBackOff")
    });
    let describe = server.kubectl_ok(&["describe", "pod", "bad"]);
    assert!(
        describe.contains("Failed to pull image \"no-such-image:9.9\""),
        "{describe}"
    );
    assert!(
        describe.contains("Back-off pulling image \"no-such-image:9.9\""),
        "{describe}"
    );
}

#[test]
fn a_pod_that_does_not_fit_stays_pending_with_the_reason() {
    let server = Server::start();
    let file = server.manifest(
        "big.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    resources:\n      requests: {cpu: \"5000\"}\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["describe", "pod", "big"])
            .contains("0/1 nodes are available: 1 Insufficient cpu.")
    });
    assert!(
        server
            .kubectl_ok(&["get", "pod", "big"])
            .contains("Pending")
    );
}

#[test]
fn deleting_a_namespace_deletes_what_is_in_it() {
    let server = Server::start();
    // `create namespace` sends protobuf, as every typed kubectl generator does.
    assert_eq!(
        server
            .kubectl_ok(&["create", "namespace", "scratch"])
            .trim(),
        "namespace/scratch created"
    );
    let file = server.manifest("web.yaml", SLEEPER);
    server.kubectl_ok(&["apply", "-n", "scratch", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "-n",
        "scratch",
        "--for=condition=Ready",
        "pod/web",
        "--timeout=60s",
    ]);
    server.kubectl_ok(&["delete", "namespace", "scratch", "--timeout=60s"]);
    let gone = server.kubectl(&["get", "namespace", "scratch"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("namespaces \"scratch\" not found"));
    let denied = server.kubectl(&["get", "pods", "-n", "scratch"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("No resources found"));
}

#[test]
fn objects_and_pods_come_back_after_a_restart() {
    let mut server = Server::start();
    let file = server.manifest("web.yaml", SLEEPER);
    server.kubectl_ok(&["apply", "-f", &file]);
    let namespace = server.manifest(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kept\n",
    );
    server.kubectl_ok(&["create", "-f", &namespace]);
    server.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let uid = server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let ip = server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(!ip.is_empty());
    server.restart(false);
    assert_eq!(
        server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]),
        uid
    );
    assert!(server.kubectl_ok(&["get", "namespaces"]).contains("kept"));
    server.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let logs = server.kubectl_ok(&["logs", "web"]);
    assert!(logs.contains("started"), "{logs}");
    assert_eq!(
        server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]),
        ip,
        "a pod keeps its IP across a restart of the server"
    );
}

#[test]
fn kill_9_during_a_burst_of_writes_loses_no_acknowledged_write() {
    let mut server = Server::start();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..6 {
        let kubeconfig = server.kubeconfig().to_path_buf();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("burst-{writer}-{i}");
                let mut child = Command::new("kubectl")
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["create", "--validate=false", "-f", "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let manifest = format!("{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{name}\"}}}}");
                std::io::Write::write_all(&mut child.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
                let out = child.wait_with_output().unwrap();
                if out.status.success() {
                    acknowledged.lock().unwrap().push(name);
                }
                i += 1;
            }
        }));
    }
    server.wait_for(Duration::from_secs(60), || {
        acknowledged.lock().unwrap().len() >= 30
    });
    server.kill_9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    server.restart(true);
    let listed = server.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !listed.lines().any(|l| l == format!("namespace/{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after kill -9: {missing:?}"
    );
    eprintln!(
        "{} acknowledged writes all survived kill -9",
        acknowledged.len()
    );
}

#[test]
fn init_containers_run_first_and_show_as_init() {
    let server = Server::start();
    let file = server.manifest(
        "init.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: init-demo
spec:
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: toolbox
    command: [sh, -c, \"sleep 2; echo prepared > /work/ready\"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: toolbox
    command: [sh, -c, \"cat /work/ready\"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "pod", "init-demo"])
            .contains("Init:0/1")
    });
    server.wait_for(Duration::from_secs(60), || {
        server
            .kubectl_ok(&["get", "pod", "init-demo"])
            .contains("Completed")
    });
    assert_eq!(
        server.kubectl_ok(&["logs", "init-demo", "-c", "main"]),
        "prepared\n"
    );
    let init = server.kubectl_ok(&[
        "get",
        "pod",
        "init-demo",
        "-o",
        "jsonpath={.status.initContainerStatuses[0].state.terminated.reason}",
    ]);
    assert_eq!(init, "Completed");
}

/// The guide's liveness/readiness pod with `http-server` (delays shortened):
/// not ready while the server sleeps, ready once it answers, and restarted
/// when its liveness probe keeps getting 404, with the kubelet's events.
#[test]
fn readiness_and_liveness_probes_drive_ready_and_restarts() {
    let server = Server::start();
    let file = server.manifest(
        "probes.yaml",
        "kind: Pod
apiVersion: v1
metadata:
  name: liveness-readiness-pod
spec:
  containers:
  - name: server
    image: http-server
    env:
    - {name: PORT, value: \"8000\"}
    - {name: START_DELAY, value: \"3\"}
    ports: [{name: web, containerPort: 8000}]
    readinessProbe:
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
      httpGet: {path: /, port: web}
    livenessProbe:
      initialDelaySeconds: 8
      periodSeconds: 1
      failureThreshold: 2
      httpGet: {path: /healthz, port: 8000}
",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    let ready = |pod: &str| {
        server.kubectl_ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].ready}/{.status.conditions[?(@.type==\"Ready\")].status}",
        ])
    };
    let mut ip = String::new();
    server.wait_for(Duration::from_secs(30), || {
        ip = server.kubectl_ok(&[
            "get",
            "pod",
            "liveness-readiness-pod",
            "-o",
            "jsonpath={.status.podIP}",
        ]);
        !ip.is_empty()
    });
    assert!(
        ip.starts_with("10.244."),
        "a pod IP from the default CIDR: {ip}"
    );
    let refused = format!(
        "Readiness probe failed: Get \"http://{ip}:8000/\": dial tcp {ip}:8000: connect: connection refused"
    );
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["describe", "pod", "liveness-readiness-pod"])
            .contains(&refused)
    });
    let listed = server.kubectl_ok(&["get", "pod", "liveness-readiness-pod"]);
    assert!(
        listed.contains("0/1") && listed.contains("Running"),
        "running but not ready while the server sleeps:\n{listed}"
    );
    assert_eq!(ready("liveness-readiness-pod"), "false/False");
    server.wait_for(Duration::from_secs(30), || {
        ready("liveness-readiness-pod") == "true/True"
    });
    assert!(
        server
            .kubectl_ok(&["get", "pod", "liveness-readiness-pod"])
            .contains("1/1")
    );
    server.wait_for(Duration::from_secs(60), || {
        let restarts = server.kubectl_ok(&[
            "get",
            "pod",
            "liveness-readiness-pod",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ]);
        restarts.parse::<u32>().unwrap_or(0) >= 1
    });
    let described = server.kubectl_ok(&["describe", "pod", "liveness-readiness-pod"]);
    for expected in [
        "Liveness probe failed: HTTP probe failed with statuscode: 404",
        "Container server failed liveness probe, will be restarted",
    ] {
        assert!(
            described.contains(expected),
            "{expected:?} in:\n{described}"
        );
    }
    let last = server.kubectl_ok(&[
        "get",
        "pod",
        "liveness-readiness-pod",
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]);
    assert_eq!(
        last, "143",
        "stopped as a process without a SIGTERM handler"
    );
}

/// Kubernetes' exec liveness example (times shortened): healthy while
/// /tmp/healthy exists in the container, restarted once it is removed.
#[test]
fn an_exec_liveness_probe_runs_in_the_container_and_restarts_it() {
    let server = Server::start();
    let file = server.manifest(
        "exec-probe.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: liveness-exec
spec:
  containers:
  - name: liveness
    image: toolbox
    args: [/bin/sh, -c, \"touch /tmp/healthy; sleep 4; rm -f /tmp/healthy; sleep 600\"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "pod", "liveness-exec"])
            .contains("1/1")
    });
    let restarts = || {
        server
            .kubectl_ok(&[
                "get",
                "pod",
                "liveness-exec",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ])
            .parse::<u32>()
            .unwrap_or(0)
    };
    assert_eq!(restarts(), 0, "healthy while /tmp/healthy exists");
    server.wait_for(Duration::from_secs(60), || restarts() >= 1);
    let described = server.kubectl_ok(&["describe", "pod", "liveness-exec"]);
    assert!(
        described.contains("Liveness probe failed: cat: /tmp/healthy"),
        "{described}"
    );
    assert!(
        described.contains("Container liveness failed liveness probe, will be restarted"),
        "{described}"
    );
}

/// preStop hooks run in their containers when the pod is deleted: one
/// leaves a file on the host, one fails with an event, one that would run
/// forever is cut off by the grace period so the deletion still completes.
#[test]
fn pre_stop_hooks_run_on_deletion_within_the_grace_period() {
    let server = Server::start();
    let out = server.host_dir().join("prestop-out");
    let file = server.manifest(
        "prestop.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: goodbye
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: toolbox
    command: [sleep, \"600\"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, \"echo goodbye from $HOSTNAME > /out/prestop\"]}}
  - name: stuck
    image: toolbox
    command: [sleep, \"600\"]
    lifecycle:
      preStop:
        exec: {{command: [sleep, \"600\"]}}
  - name: failing
    image: toolbox
    command: [sleep, \"600\"]
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, \"echo no luck; exit 4\"]}}
  volumes: [{{name: out, hostPath: {{path: {}, type: DirectoryOrCreate}}}}]
",
            out.display()
        ),
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "pod", "goodbye"])
            .contains("3/3")
    });
    assert!(!out.join("prestop").exists());
    server.kubectl_ok(&["delete", "pod", "goodbye", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(out.join("prestop")).unwrap(),
        "goodbye from goodbye\n"
    );
    let events = server.kubectl_ok(&["get", "events"]);
    assert!(events.contains("FailedPreStopHook"), "{events}");
    assert!(
        events.contains("command 'sh -c echo no luck; exit 4' exited with 4: no luck"),
        "{events}"
    );
}

/// Every pod gets an IP from the pod CIDR, shown by `get -o wide`, and a
/// guest reaches another pod at that IP.
#[test]
fn a_pod_reaches_another_pod_at_its_ip() {
    let server = Server::start();
    let web = server.manifest(
        "web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: echo-hostname:1.0.1\n    ports: [{containerPort: 80}]\n    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}\n",
    );
    server.kubectl_ok(&["apply", "-f", &web]);
    server.wait_for(Duration::from_secs(30), || {
        server.kubectl_ok(&["get", "pod", "web"]).contains("1/1")
    });
    let ip = server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip.starts_with("10.244."), "{ip}");
    let wide = server.kubectl_ok(&["get", "pod", "web", "-o", "wide"]);
    assert!(wide.contains(&ip), "{wide}");
    let client = server.manifest(
        "client.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: toolbox\n    command: [wget, -qO-, \"http://{ip}/\"]\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &client]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "pod", "client"])
            .contains("Completed")
    });
    let logs = server.kubectl_ok(&["logs", "client"]);
    assert!(logs.contains("version: 1.0.1"), "{logs}");
    let client_ip = server.kubectl_ok(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]);
    assert_ne!(client_ip, ip, "each pod has its own address");
}

/// `kubectl exec` runs in the container's context: its files and env, the
/// command's exit code, piped stdin.
#[test]
fn kubectl_exec_runs_commands_in_the_container() {
    let server = Server::start();
    let file = server.manifest(
        "exec.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\nspec:\n  containers:\n  - name: main\n    image: toolbox\n    env: [{name: COLOUR, value: blue}]\n    command: [sh, -c, \"echo made > /tmp/made; sleep 600\"]\n",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl(&["exec", "shell", "--", "cat", "/tmp/made"])
            .status
            .success()
    });
    assert_eq!(
        server.kubectl_ok(&[
            "exec",
            "shell",
            "--",
            "sh",
            "-c",
            "echo $COLOUR $HOSTNAME; cat /tmp/made"
        ]),
        "blue shell\nmade\n"
    );
    let failed = server.kubectl(&[
        "exec",
        "shell",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo oops >&2; exit 3",
    ]);
    assert_eq!(failed.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("oops"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );

    let mut piped = server
        .kubectl_command(&[
            "exec",
            "-i",
            "shell",
            "--",
            "sh",
            "-c",
            "cat > /tmp/piped; wc -l < /tmp/piped",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().unwrap();
        stdin.write_all(b"line one\nline two\n").unwrap();
    }
    let piped = piped.wait_with_output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), "2");
    assert_eq!(
        server.kubectl_ok(&["exec", "shell", "--", "cat", "/tmp/piped"]),
        "line one\nline two\n"
    );
}
