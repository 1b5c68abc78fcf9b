//! The guide's Deployments chapter through the real kubectl: a Deployment
//! of five replicas, a deleted pod replaced, a rolling update within
//! maxSurge and maxUnavailable (watched at every step), history, undo back
//! to the first ReplicaSet, scale, Recreate, and cascading deletes.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use server::{Server, text};

/// The guide's rolling-update example, with our image.
const DEPLOYMENT: &str = "kind: Deployment
apiVersion: apps/v1
metadata:
  name: nginx-deployment
spec:
  replicas: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 2
      maxUnavailable: 1
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      name: nginx
      labels:
        app: nginx
    spec:
      containers:
        - name: nginx
          image: echo-hostname:1.0.1
";

/// Pods of `selector` that count: not terminating, not finished.
fn live_pods(server: &Server, selector: &str) -> Vec<Value> {
    server
        .items(&["get", "pods", "-l", selector])
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

/// Whether `text` has a line `label   value` (kubectl aligns the values).
fn has_line(text: &str, label: &str, value: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(label)
            .is_some_and(|rest| rest.trim() == value)
    })
}

/// `kubectl rollout history`, and the revision numbers it lists.
fn rollout_history(server: &Server, name: &str) -> (String, Vec<String>) {
    let history = server.kubectl_ok(&["rollout", "history", &format!("deployment/{name}")]);
    let numbers = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect();
    (history, numbers)
}

fn rolled_out(server: &Server, name: &str) -> String {
    server.kubectl_ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=90s",
    ])
}

/// Watches the pods of `selector` through `kubectl get -w`, recording the
/// most pods alive at once and the fewest ready ones once all were.
struct PodWatch {
    child: Child,
    seen: Arc<Mutex<(usize, usize, usize)>>,
}

impl PodWatch {
    /// `expected` ready pods are there before the change being watched:
    /// the fewest-ready count starts once the watch has seen them all.
    fn start(server: &Server, selector: &str, expected: usize) -> PodWatch {
        let mut child = server
            .kubectl_command(&[
                "get",
                "pods",
                "-l",
                selector,
                "-w",
                "-o",
                "json",
                "--output-watch-events",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // (most alive, fewest ready after the first full set, events)
        let seen = Arc::new(Mutex::new((0usize, usize::MAX, 0usize)));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut pods: BTreeMap<String, Value> = BTreeMap::new();
            let mut listed = false;
            let events =
                serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>();
            for event in events {
                let Ok(event) = event else { return };
                let object = &event["object"];
                let name = text(object, "/metadata/name").to_string();
                if text(&event, "/type") == "DELETED" {
                    pods.remove(&name);
                } else {
                    pods.insert(name, object.clone());
                }
                let alive: Vec<&Value> = pods
                    .values()
                    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                    .collect();
                let ready = alive
                    .iter()
                    .filter(|p| {
                        p.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|c| {
                                c.iter().any(|c| {
                                    text(c, "/type") == "Ready" && text(c, "/status") == "True"
                                })
                            })
                    })
                    .count();
                listed |= ready == expected;
                let mut seen = record.lock().unwrap();
                seen.0 = seen.0.max(alive.len());
                if listed {
                    seen.1 = seen.1.min(ready);
                }
                seen.2 += 1;
            }
        });
        PodWatch { child, seen }
    }

    /// (most pods alive at once, fewest ready at once, events seen).
    fn stop(mut self) -> (usize, usize, usize) {
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self.seen.lock().unwrap()
    }
}

#[test]
fn the_guides_rolling_update_history_undo_and_scale() {
    let server = Server::start();
    let path = server.manifest("deployment.yaml", DEPLOYMENT);
    let out = server.kubectl_ok(&["apply", "-f", &path]);
    assert!(
        out.contains("deployment.apps/nginx-deployment created"),
        "{out}"
    );
    let out = rolled_out(&server, "nginx-deployment");
    assert!(
        out.contains("deployment \"nginx-deployment\" successfully rolled out"),
        "{out}"
    );

    // Columns as kubectl shows them.
    let table = server.kubectl_ok(&["get", "deployment", "nginx-deployment"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["nginx-deployment", "5/5", "5", "5"], "{table}");
    let wide = server.kubectl_ok(&["get", "deployment", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .contains("CONTAINERS   IMAGES                SELECTOR"),
        "{wide}"
    );
    assert!(
        wide.contains("nginx        echo-hostname:1.0.1   app=nginx"),
        "{wide}"
    );

    // Five pods of one ReplicaSet, named after it, carrying its hash.
    let sets = server.items(&["get", "replicasets", "-l", "app=nginx"]);
    assert_eq!(sets.len(), 1);
    let first_rs = text(&sets[0], "/metadata/name").to_string();
    let hash = text(&sets[0], "/metadata/labels/pod-template-hash").to_string();
    assert_eq!(first_rs, format!("nginx-deployment-{hash}"));
    assert_eq!(
        text(
            &sets[0],
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "1"
    );
    assert_eq!(
        text(&sets[0], "/metadata/ownerReferences/0/kind"),
        "Deployment"
    );
    let pods = live_pods(&server, "app=nginx");
    assert_eq!(pods.len(), 5);
    for pod in &pods {
        let name = text(pod, "/metadata/name");
        assert!(
            name.starts_with(&format!("{first_rs}-")) && name.len() == first_rs.len() + 6,
            "{name}"
        );
        assert_eq!(text(pod, "/metadata/labels/pod-template-hash"), hash);
        assert_eq!(text(pod, "/metadata/ownerReferences/0/name"), first_rs);
    }
    let rs_table = server.kubectl_ok(&["get", "rs"]);
    let header: Vec<&str> = rs_table
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert!(
        rs_table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{first_rs}   5         5         5")),
        "{rs_table}"
    );

    // A deleted pod is replaced.
    let victim = text(&pods[0], "/metadata/name").to_string();
    server.kubectl_ok(&["delete", "pod", &victim, "--wait=false"]);
    server.wait_for(Duration::from_secs(30), || {
        let pods = live_pods(&server, "app=nginx");
        pods.len() == 5 && pods.iter().all(|p| text(p, "/metadata/name") != victim)
    });
    rolled_out(&server, "nginx-deployment");

    // Rolling update, watched: never more than 5 + maxSurge pods, never
    // fewer than 5 - maxUnavailable ready.
    let watch = PodWatch::start(&server, "app=nginx", 5);
    std::thread::sleep(Duration::from_millis(500));
    server.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=echo-hostname:1.0.2",
    ]);
    let out = rolled_out(&server, "nginx-deployment");
    assert!(out.contains("successfully rolled out"), "{out}");
    let (most, fewest_ready, events) = watch.stop();
    assert!(events > 10, "the watch saw the rollout ({events} events)");
    assert!(
        most <= 7,
        "at most replicas + maxSurge = 7 pods at once, saw {most}"
    );
    assert!(most > 5, "the surge was used: {most}");
    assert!(
        fewest_ready >= 4,
        "at least replicas - maxUnavailable = 4 ready, saw {fewest_ready}"
    );
    let pods = live_pods(&server, "app=nginx");
    assert_eq!(pods.len(), 5);
    assert!(
        pods.iter()
            .all(|p| text(p, "/spec/containers/0/image") == "echo-hostname:1.0.2")
    );

    let (history, revisions) = rollout_history(&server, "nginx-deployment");
    assert_eq!(revisions, ["1", "2"], "{history}");
    let second = server.kubectl_ok(&[
        "rollout",
        "history",
        "deployment/nginx-deployment",
        "--revision=2",
    ]);
    assert!(second.contains("echo-hostname:1.0.2"), "{second}");
    let described = server.kubectl_ok(&["describe", "deployment", "nginx-deployment"]);
    assert!(
        described.contains(&format!("Scaled up replica set {first_rs} to 5")),
        "{described}"
    );
    assert!(
        described.contains(&format!("Scaled down replica set {first_rs} to 0")),
        "{described}"
    );
    assert!(
        has_line(&described, "StrategyType:", "RollingUpdate"),
        "{described}"
    );
    assert!(
        has_line(
            &described,
            "RollingUpdateStrategy:",
            "1 max unavailable, 2 max surge"
        ),
        "{described}"
    );

    // Undo: back to the first template, in the first ReplicaSet, as
    // revision 3.
    server.kubectl_ok(&["rollout", "undo", "deployment/nginx-deployment"]);
    rolled_out(&server, "nginx-deployment");
    let pods = live_pods(&server, "app=nginx");
    assert_eq!(pods.len(), 5);
    for pod in &pods {
        assert_eq!(text(pod, "/spec/containers/0/image"), "echo-hostname:1.0.1");
        assert_eq!(text(pod, "/metadata/ownerReferences/0/name"), first_rs);
    }
    let (history, revisions) = rollout_history(&server, "nginx-deployment");
    assert_eq!(revisions, ["2", "3"], "{history}");
    assert_eq!(server.items(&["get", "rs", "-l", "app=nginx"]).len(), 2);

    // Scale, through the scale subresource.
    let out = server.kubectl_ok(&["scale", "deployment", "nginx-deployment", "--replicas=2"]);
    assert!(
        out.contains("deployment.apps/nginx-deployment scaled"),
        "{out}"
    );
    server.wait_for(Duration::from_secs(30), || {
        live_pods(&server, "app=nginx").len() == 2
    });
    rolled_out(&server, "nginx-deployment");
    let scale: Value = serde_json::from_str(&server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/nginx-deployment/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    let bad = server.kubectl(&["scale", "deployment", "nginx-deployment", "--replicas=-1"]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("replicas"), "{said}");

    // Paused: a template change waits; resumed, it rolls out (onto the
    // revision-2 set, whose template it is again).
    let out = server.kubectl_ok(&["rollout", "pause", "deployment/nginx-deployment"]);
    assert!(
        out.contains("deployment.apps/nginx-deployment paused"),
        "{out}"
    );
    server.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=echo-hostname:1.0.2",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let pods = live_pods(&server, "app=nginx");
    assert!(
        pods.iter()
            .all(|p| text(p, "/spec/containers/0/image") == "echo-hostname:1.0.1")
    );
    assert_eq!(server.items(&["get", "rs", "-l", "app=nginx"]).len(), 2);
    let out = server.kubectl_ok(&["rollout", "resume", "deployment/nginx-deployment"]);
    assert!(
        out.contains("deployment.apps/nginx-deployment resumed"),
        "{out}"
    );
    rolled_out(&server, "nginx-deployment");
    let pods = live_pods(&server, "app=nginx");
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| text(p, "/spec/containers/0/image") == "echo-hostname:1.0.2")
    );
    assert_eq!(server.items(&["get", "rs", "-l", "app=nginx"]).len(), 2);
    // Restart: same image, new pods.
    let before: Vec<String> = pods
        .iter()
        .map(|p| text(p, "/metadata/name").to_string())
        .collect();
    let out = server.kubectl_ok(&["rollout", "restart", "deployment/nginx-deployment"]);
    assert!(
        out.contains("deployment.apps/nginx-deployment restarted"),
        "{out}"
    );
    rolled_out(&server, "nginx-deployment");
    server.wait_for(Duration::from_secs(30), || {
        let pods = live_pods(&server, "app=nginx");
        pods.len() == 2
            && pods
                .iter()
                .all(|p| !before.contains(&text(p, "/metadata/name").to_string()))
    });

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    server.kubectl_ok(&["delete", "deployment", "nginx-deployment"]);
    server.wait_for(Duration::from_secs(30), || {
        server.items(&["get", "rs", "-l", "app=nginx"]).is_empty()
            && server.items(&["get", "pods", "-l", "app=nginx"]).is_empty()
    });
}

#[test]
fn recreate_never_runs_old_and_new_pods_together_and_orphans_stay() {
    let server = Server::start();
    let manifest = DEPLOYMENT
        .replace("nginx-deployment", "recreated")
        .replace("app: nginx", "app: recreated")
        .replace(
            "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 2\n      maxUnavailable: 1\n",
            "    type: Recreate\n",
        )
        .replace("replicas: 5", "replicas: 3");
    let path = server.manifest("recreate.yaml", &manifest);
    server.kubectl_ok(&["apply", "-f", &path]);
    rolled_out(&server, "recreated");
    let watch = PodWatch::start(&server, "app=recreated", 3);
    std::thread::sleep(Duration::from_millis(500));
    server.kubectl_ok(&[
        "set",
        "image",
        "deployment/recreated",
        "nginx=echo-hostname:1.0.2",
    ]);
    rolled_out(&server, "recreated");
    let (most, fewest_ready, _) = watch.stop();
    assert!(
        most <= 3,
        "Recreate never has more than the replicas: saw {most}"
    );
    assert_eq!(fewest_ready, 0, "Recreate has a moment with no pod");
    let described = server.kubectl_ok(&["describe", "deployment", "recreated"]);
    assert!(
        has_line(&described, "StrategyType:", "Recreate"),
        "{described}"
    );

    // Orphan: the ReplicaSets and pods stay, no longer owned.
    let out = server.kubectl_ok(&["delete", "deployment", "recreated", "--cascade=orphan"]);
    assert!(
        out.contains("deployment.apps \"recreated\" deleted"),
        "{out}"
    );
    server.wait_for(Duration::from_secs(20), || {
        server
            .kubectl(&["get", "deployment", "recreated"])
            .status
            .code()
            == Some(1)
    });
    let sets = server.items(&["get", "rs", "-l", "app=recreated"]);
    assert_eq!(sets.len(), 2);
    assert!(
        sets.iter()
            .all(|rs| rs.pointer("/metadata/ownerReferences").is_none()),
        "{sets:?}"
    );
    assert_eq!(live_pods(&server, "app=recreated").len(), 3);

    // Foreground: the ReplicaSet waits for its pods to go first.
    let live = sets
        .iter()
        .find(|rs| rs["spec"]["replicas"] == 3)
        .map(|rs| text(rs, "/metadata/name").to_string())
        .unwrap();
    server.kubectl_ok(&[
        "delete",
        "rs",
        &live,
        "--cascade=foreground",
        "--wait=false",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        live_pods(&server, "app=recreated").is_empty()
            && server.kubectl(&["get", "rs", &live]).status.code() == Some(1)
    });
}

/// The guide's first Deployment manifest as printed, only the image
/// changed: an `extensions/v1beta1` Deployment with `strategy: Recreate`.
const GUIDE_OLD_DEPLOYMENT: &str = "kind: Deployment
apiVersion: extensions/v1beta1
metadata:
  name: nginx-deployment
spec:
  # A deployment's specification really only
  # has a few useful options

  # 1. How many copies of each pod do we want?
  replicas: 3

  # 2. How do want to update the pods?
  strategy: Recreate

  # 3. Which pods are managed by this deployment?
  selector:
    # This matches against the labels we set on the pod!
    matchLabels:
      deploy: example

  # Where deployments start to look intimidating. In reality,
  # this template field is a regular pod configuration!
  template:
    metadata:
      # Set labels on the pod.
      # This is used in the deployment selector.
      labels:
        deploy: example
    spec:
      containers:
        - name: nginx
          image: echo-hostname:1.0.1
";

#[test]
fn the_guides_old_api_version_manifest_runs_with_a_deprecation_warning() {
    let server = Server::start();
    let versions = server.kubectl_ok(&["api-versions"]);
    for version in [
        "apps/v1",
        "apps/v1beta1",
        "apps/v1beta2",
        "extensions/v1beta1",
    ] {
        assert!(versions.lines().any(|l| l == version), "{versions}");
    }
    let path = server.manifest("old.yaml", GUIDE_OLD_DEPLOYMENT);
    let out = server.kubectl(&["apply", "-f", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("nginx-deployment created"), "{stdout}");
    assert!(
        stderr.contains("Warning: extensions/v1beta1 Deployment is deprecated in v1.9+, unavailable in v1.16+; use apps/v1 Deployment"),
        "{stderr}"
    );
    // Stored as apps/v1, with the strategy the guide meant.
    let stored = server.json(&["get", "deployments.v1.apps", "nginx-deployment"]);
    assert_eq!(stored["apiVersion"], "apps/v1");
    assert_eq!(stored["spec"]["strategy"]["type"], "Recreate");
    rolled_out(&server, "nginx-deployment");
    assert_eq!(live_pods(&server, "deploy=example").len(), 3);
    // Applying it again changes nothing: kubectl sends a patch (its diff
    // sees the guide's string strategy against the stored object), and
    // the patched object is the same.
    server.kubectl_ok(&["apply", "-f", &path]);
    let again = server.json(&["get", "deployments.v1.apps", "nginx-deployment"]);
    assert_eq!(again["metadata"]["generation"], 1);
    assert_eq!(
        server.items(&["get", "rs", "-l", "deploy=example"]).len(),
        1
    );
    let table = server.kubectl_ok(&["get", "deployment", "nginx-deployment"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("nginx-deployment   3/3"),
        "{table}"
    );
}

/// `kubectl create deployment` writes protobuf (every zero value spelled
/// out, `hostPort: 0` of a `--port` too, which means no host port) and
/// `rollout undo` writes the old template back without them: the undo
/// still lands on the first ReplicaSet.
#[test]
fn undo_of_a_created_deployment_reuses_its_first_replica_set() {
    let server = Server::start();
    let out = server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=echo-hostname:1.0.1",
        "--replicas=2",
        "--port=8080",
    ]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    rolled_out(&server, "web");
    let first = server.items(&["get", "rs", "-l", "app=web"]);
    assert_eq!(first.len(), 1);
    let first = text(&first[0], "/metadata/name").to_string();
    server.kubectl_ok(&[
        "set",
        "image",
        "deployment/web",
        "echo-hostname=echo-hostname:1.0.2",
    ]);
    rolled_out(&server, "web");
    server.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    rolled_out(&server, "web");
    let sets = server.items(&["get", "rs", "-l", "app=web"]);
    assert_eq!(sets.len(), 2, "{sets:?}");
    let pods = live_pods(&server, "app=web");
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| text(p, "/metadata/ownerReferences/0/name") == first)
    );
}

#[test]
fn min_ready_seconds_delays_availability_and_a_stuck_rollout_exceeds_its_deadline() {
    let server = Server::start();
    let path = server.manifest(
        "slow.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: steady}
spec:
  replicas: 2
  minReadySeconds: 3
  selector: {matchLabels: {app: steady}}
  template:
    metadata: {labels: {app: steady}}
    spec:
      containers: [{name: c, image: toolbox, command: [sleep, '3600']}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers:
      - name: c
        image: toolbox
        command: [sleep, '3600']
        readinessProbe: {exec: {command: ['false']}, periodSeconds: 1}
",
    );
    server.kubectl_ok(&["apply", "-f", &path]);
    // Ready is not yet available: both pods ready, none available, for a while.
    let mut ready_at = None;
    server.wait_for(Duration::from_secs(30), || {
        let d = server.json(&["get", "deployment", "steady"]);
        let ready = d.pointer("/status/readyReplicas").and_then(Value::as_i64);
        let available = d
            .pointer("/status/availableReplicas")
            .and_then(Value::as_i64);
        if ready == Some(2) && ready_at.is_none() {
            assert_eq!(
                available.unwrap_or(0),
                0,
                "available before minReadySeconds: {d:#}"
            );
            ready_at = Some(std::time::Instant::now());
        }
        available == Some(2)
    });
    assert!(ready_at.is_some(), "seen ready before available");
    // Measured with the server's own clock (condition transition times, in
    // whole seconds), not the test's polling, which lags under load.
    let transition = |object: &Value, kind: &str| -> i64 {
        let condition = object["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
            .clone();
        text(&condition, "/lastTransitionTime")
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    let available_at = transition(&server.json(&["get", "deployment", "steady"]), "Available");
    let ready_at = server
        .items(&["get", "pods", "-l", "app=steady"])
        .iter()
        .map(|p| transition(p, "Ready"))
        .max()
        .unwrap();
    let waited = available_at - ready_at;
    assert!(
        waited >= 2,
        "available {waited}s after ready, minReadySeconds is 3"
    );
    let table = server.kubectl_ok(&["get", "deployment", "steady"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[1..4]
            == ["2/2", "2", "2"],
        "{table}"
    );

    // A Scale with a stale resourceVersion is refused, and changes nothing
    // (kubectl scale --resource-version checks before it writes; the
    // server checks in the write).
    let stale = server.manifest(
        "scale.json",
        r#"{"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "steady", "namespace": "default", "resourceVersion": "1"},
            "spec": {"replicas": 3}}"#,
    );
    let out = server.kubectl(&[
        "replace",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/steady/scale",
        "-f",
        &stale,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    let d = server.json(&["get", "deployment", "steady"]);
    assert_eq!(d.pointer("/spec/replicas"), Some(&serde_json::json!(2)));

    // A pod never ready: the rollout gives up at its deadline.
    let out = server.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );
    let stuck = server.json(&["get", "deployment", "stuck"]);
    let progressing = stuck["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| text(c, "/type") == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(text(&progressing, "/status"), "False");
    assert_eq!(text(&progressing, "/reason"), "ProgressDeadlineExceeded");
    let described = server.kubectl_ok(&["describe", "deployment", "stuck"]);
    let condition_row = |kind: &str| {
        described
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&kind))
    };
    assert_eq!(
        condition_row("Progressing").unwrap(),
        ["Progressing", "False", "ProgressDeadlineExceeded"],
        "{described}"
    );
    assert_eq!(
        condition_row("Available").unwrap(),
        ["Available", "False", "MinimumReplicasUnavailable"],
        "{described}"
    );
    assert!(
        described.contains(
            "Readiness:     exec [false] delay=0s timeout=1s period=1s #success=1 #failure=3"
        ),
        "{described}"
    );
}
