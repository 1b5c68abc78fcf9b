//! kubectl commands whose answers must be the API server's: no container
//! lost by a patch, no lost update, no system namespace deleted, and every
//! kubectl from 1.27 on able to apply, create and explain.

mod server;

use server::{Server, kubectl_dir};

const TWO_CONTAINERS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: two}
spec:
  replicas: 1
  selector: {matchLabels: {app: two}}
  template:
    metadata: {labels: {app: two}}
    spec:
      containers:
      - {name: nginx, image: toolbox, command: [sleep, '1000']}
      - {name: perl, image: toolbox, command: [sleep, '1000']}
";

fn containers(server: &Server) -> Vec<serde_json::Value> {
    server.json(&["get", "deployment", "two", "-o", "json"])["spec"]["template"]["spec"]
        ["containers"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn set_image_and_set_env_keep_the_other_container() {
    let server = Server::start();
    let file = server.manifest("two.yaml", TWO_CONTAINERS);
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&["set", "image", "deployment/two", "nginx=toolbox:latest"]);
    let after = containers(&server);
    let names: Vec<&str> = after.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nginx", "perl"]);
    assert_eq!(after[0]["image"], "toolbox:latest");
    assert_eq!(after[1]["image"], "toolbox");

    server.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    server.kubectl_ok(&[
        "set",
        "env",
        "deployment/two",
        "--from=configmap/cfg",
        "-c",
        "perl",
    ]);
    server.kubectl_ok(&["set", "env", "deployment/two", "EXTRA=x", "-c", "perl"]);
    let after = containers(&server);
    assert_eq!(after.len(), 2, "{after:?}");
    // kubectl adds a config map's keys in its map's (random) order.
    let mut env: Vec<&str> = after[1]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env.pop(), Some("EXTRA"));
    env.sort();
    assert_eq!(env, ["A", "B"]);
    assert_eq!(
        after[1]["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
        "cfg"
    );
    assert!(after[0].get("env").is_none(), "{after:?}");
}

#[test]
fn stale_resource_versions_conflict() {
    let server = Server::start();
    server.kubectl_ok(&["create", "service", "clusterip", "s", "--tcp=80"]);
    // kubectl sends it as protobuf: Go's plain false is left out, as JSON
    // leaves it.
    let created = server.json(&["get", "svc", "s", "-o", "json"]);
    assert_eq!(created["spec"].get("publishNotReadyAddresses"), None);
    let out = server.kubectl(&[
        "set",
        "selector",
        "svc",
        "s",
        "app=x",
        "--resource-version=1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "Error from server (Conflict): Operation cannot be fulfilled on services \"s\": the object has been modified"
        ),
        "{stderr}"
    );
    assert_eq!(
        server.json(&["get", "svc", "s", "-o", "json"])["spec"]["selector"],
        serde_json::json!({"app": "s"})
    );
    // A replace from a stale copy conflicts; from a fresh one it applies.
    let stale = server.kubectl_ok(&["get", "svc", "s", "-o", "yaml"]);
    server.kubectl_ok(&["label", "svc", "s", "touched=yes"]);
    let file = server.manifest("stale.yaml", &stale.replace("app: s", "app: changed"));
    let out = server.kubectl(&["replace", "-f", &file]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(Conflict)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kubectl_ok(&["set", "selector", "svc", "s", "app=x"]);
    assert_eq!(
        server.json(&["get", "svc", "s", "-o", "json"])["spec"]["selector"]["app"],
        "x"
    );
}

#[test]
fn delete_namespaces_all_spares_the_system_ones() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "scratch"]);
    let out = server.kubectl(&["delete", "ns", "--all", "--wait=false"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            stderr.contains(&format!(
                "Error from server (Forbidden): namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )),
            "{stderr}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace \"scratch\" deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = server.kubectl_ok(&["get", "ns", "-o", "name"]);
    for name in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(left.contains(&format!("namespace/{name}\n")), "{left}");
    }
}

/// `kubectl debug --copy-to` sends the pod copy as protobuf: embedded Go
/// structs (the env source's config map reference) must come through.
#[test]
fn debug_copies_a_pod_with_its_env_sources() {
    let server = Server::start();
    server.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let pod = server.manifest(
        "src.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: src}
spec:
  containers:
  - name: main
    image: toolbox
    command: [sleep, '1000']
    env:
    - name: A
      valueFrom: {configMapKeyRef: {name: cfg, key: a}}
",
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    let out = server.kubectl(&[
        "debug",
        "src",
        "--image=toolbox",
        "--copy-to=copy",
        "--container=dbg",
        "--profile=general",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = server.json(&["get", "pod", "copy", "-o", "json"]);
    assert_eq!(
        copy["spec"]["containers"][0]["env"][0]["valueFrom"],
        serde_json::json!({"configMapKeyRef": {"name": "cfg", "key": "a"}})
    );
    assert_eq!(copy["spec"]["containers"][1]["name"], "dbg");
}

/// kubectl 1.27 and 1.28 read `/openapi/v2` (as protobuf) before apply,
/// create and explain; every version from 1.27 to 1.33 must do all three.
#[test]
fn every_kubectl_version_applies_creates_and_explains() {
    let server = Server::start();
    let dir = kubectl_dir();
    for minor in 27..=33 {
        let binary = dir.join(format!("kubectl.1.{minor}"));
        let run = |args: &[&str]| server.kubectl_binary_ok(&binary, args);
        let name = format!("v{minor}");
        let config = |value: &str| {
            server.manifest(
                &format!("{name}.yaml"),
                &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: '{value}', gone: x}}\n"),
            )
        };
        assert!(run(&["apply", "-f", &config("1")]).contains("created"));
        // The second apply is a three-way strategic patch the client works
        // out from the schema: `gone` is removed as it left the file.
        let second = server.manifest(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: '2'}}\n"
            ),
        );
        assert!(run(&["apply", "-f", &second]).contains("configured"));
        assert_eq!(
            server.json(&["get", "configmap", &name, "-o", "json"])["data"],
            serde_json::json!({"k": "2"})
        );
        let deployment = server.manifest(
            &format!("deploy-{name}.yaml"),
            &TWO_CONTAINERS.replace("name: two", &format!("name: {name}")),
        );
        assert!(run(&["create", "-f", &deployment]).contains("created"));
        let explain = run(&["explain", "deployment.spec.template.spec.containers.env"]);
        assert!(explain.contains("EnvVar"), "kubectl 1.{minor}: {explain}");
        run(&["delete", "deployment", &name, "--wait=false"]);
    }
}

/// ReplicationControllers run as ReplicaSets do. `kubectl apply --prune`
/// prunes what left the file (its default list also names DaemonSets and
/// StatefulSets, not served yet: the list is given here).
#[test]
fn replication_controllers_and_apply_prune() {
    let server = Server::start();
    let rc = server.manifest(
        "rc.yaml",
        "apiVersion: v1
kind: ReplicationController
metadata: {name: kubia}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: kubia}}
    spec:
      containers:
      - {name: main, image: toolbox, command: [sleep, '1000']}
",
    );
    server.kubectl_ok(&["apply", "-f", &rc]);
    let rc_json = server.json(&["get", "rc", "kubia", "-o", "json"]);
    // The selector and the labels default to the template's labels.
    assert_eq!(
        rc_json["spec"]["selector"],
        serde_json::json!({"app": "kubia"})
    );
    assert_eq!(
        rc_json["metadata"]["labels"],
        serde_json::json!({"app": "kubia"})
    );
    let server = &server;
    let ready = |n: usize| {
        move || {
            let table = server.kubectl_ok(&["get", "rc", "kubia", "--no-headers"]);
            let cells: Vec<String> = table.split_whitespace().map(str::to_string).collect();
            cells.get(1..4) == Some(&[n.to_string(), n.to_string(), n.to_string()][..])
        }
    };
    server.wait_for(std::time::Duration::from_secs(60), ready(2));
    let pods = server.items(&["get", "pods", "-l", "app=kubia", "-o", "json"]);
    assert_eq!(pods.len(), 2);
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["kind"],
        "ReplicationController"
    );
    server.kubectl_ok(&["scale", "rc", "kubia", "--replicas=1"]);
    server.wait_for(std::time::Duration::from_secs(60), ready(1));

    let both = server.manifest(
        "both.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata: {name: kept, labels: {set: pr}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: dropped, labels: {set: pr}}
",
    );
    // kubectl's default prune list: every kind it names is served.
    let prune = ["--prune", "-l", "set=pr"];
    server.kubectl_ok(&[&["apply", "-f", &both][..], &prune].concat());
    let one = server.manifest(
        "one.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata: {name: kept, labels: {set: pr}}
",
    );
    let out = server.kubectl_ok(&[&["apply", "-f", &one][..], &prune].concat());
    assert!(out.contains("configmap/dropped pruned"), "{out}");
    // kubectl 1.27's list is the same.
    let old = kubectl_dir().join("kubectl.1.27");
    server.kubectl_binary_ok(&old, &[&["apply", "-f", &both][..], &prune].concat());
    let out = server.kubectl_binary_ok(&old, &[&["apply", "-f", &one][..], &prune].concat());
    assert!(out.contains("configmap/dropped pruned"), "{out}");

    server.kubectl_ok(&["delete", "rc", "kubia"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        server
            .items(&["get", "pods", "-l", "app=kubia", "-o", "json"])
            .is_empty()
    });
}

/// Events go a TTL after their last write (`--event-ttl`, an hour by
/// default, as the API server's).
#[test]
fn events_expire_after_the_event_ttl() {
    let server = Server::start_with(&["--event-ttl", "3s"]);
    let event = server.manifest(
        "event.yaml",
        "apiVersion: v1
kind: Event
metadata: {name: noted}
involvedObject: {kind: Pod, name: nobody, namespace: default}
reason: Tested
message: kept a while
type: Normal
",
    );
    server.kubectl_ok(&["create", "-f", &event]);
    assert!(
        server
            .kubectl_ok(&["get", "events"])
            .contains("kept a while")
    );
    server.wait_for(std::time::Duration::from_secs(30), || {
        server
            .items(&["get", "events", "-o", "json"])
            .iter()
            .all(|e| e["metadata"]["name"] != "noted")
    });
}

/// PriorityClasses (the system ones exist), a pod's class resolved to its
/// priority as the Priority admission plugin does, PodTemplates, Leases.
#[test]
fn priority_classes_pod_templates_and_leases() {
    let server = Server::start();
    let classes = server.kubectl_ok(&["get", "priorityclasses"]);
    assert!(classes.contains("system-node-critical"), "{classes}");
    assert!(classes.contains("2000000000"), "{classes}");
    let manifests = server.manifest(
        "objects.yaml",
        "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
preemptionPolicy: Never
---
apiVersion: v1
kind: Pod
metadata: {name: important}
spec:
  priorityClassName: high
  containers:
  - {name: main, image: toolbox, command: [sleep, '1000']}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: tmpl}
template:
  metadata: {labels: {app: t}}
  spec:
    containers:
    - {name: main, image: toolbox}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
",
    );
    server.kubectl_ok(&["apply", "-f", &manifests]);
    let pod = server.json(&["get", "pod", "important", "-o", "json"]);
    assert_eq!(pod["spec"]["priority"], 1000);
    assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
    let templates = server.kubectl_ok(&["get", "podtemplates"]);
    assert!(templates.contains("app=t"), "{templates}");
    // The node's own Lease, renewed by the kubelet.
    let node = server.node_name().to_string();
    let node_lease = server.json(&["get", "lease", "-n", "kube-node-lease", &node, "-o", "json"]);
    assert_eq!(node_lease["spec"]["holderIdentity"], node.as_str());
    assert_eq!(node_lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    let described = server.kubectl_ok(&["describe", "node", &node]);
    assert!(
        described.contains(&format!("HolderIdentity:  {node}")),
        "{described}"
    );
    let leases = server.kubectl_ok(&["get", "leases"]);
    assert!(
        leases
            .lines()
            .any(|l| l.starts_with("leader") && l.contains(" me ")),
        "{leases}"
    );
    let orphan = server.manifest(
        "orphan.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: orphan}
spec:
  priorityClassName: missing
  containers:
  - {name: main, image: toolbox}
",
    );
    let out = server.kubectl(&["apply", "-f", &orphan]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("pods \"orphan\" is forbidden: no PriorityClass with name missing was found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The disruption controller keeps a budget's status; `kubectl drain`
/// evicts what it allows and is refused the rest.
#[test]
fn drain_honours_a_pod_disruption_budget() {
    let server = Server::start();
    let manifests = server.manifest(
        "guarded.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded}
spec:
  replicas: 2
  selector: {matchLabels: {app: guarded}}
  template:
    metadata: {labels: {app: guarded}}
    spec:
      containers:
      - {name: main, image: toolbox, command: [sleep, '1000']}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guard}
spec:
  minAvailable: 50%
  selector: {matchLabels: {app: guarded}}
",
    );
    server.kubectl_ok(&["apply", "-f", &manifests]);
    // 50% of the Deployment's 2 replicas must stay: 1 may go.
    server.wait_for(std::time::Duration::from_secs(60), || {
        let status = &server.json(&["get", "pdb", "guard", "-o", "json"])["status"];
        status["expectedPods"] == 2
            && status["currentHealthy"] == 2
            && status["disruptionsAllowed"] == 1
    });
    let table = server.kubectl_ok(&["get", "pdb", "guard", "--no-headers"]);
    assert_eq!(
        table.split_whitespace().take(4).collect::<Vec<_>>(),
        ["guard", "50%", "N/A", "1"]
    );
    let node = server.node_name().to_string();
    let out = server.kubectl(&[
        "drain",
        &node,
        "--pod-selector=app=guarded",
        "--timeout=12s",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("evicted"), "{text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{text}"
    );
    // The evicted pod's replacement finds the only node cordoned.
    server.wait_for(std::time::Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "events", "--field-selector", "reason=FailedScheduling", "-o", "jsonpath={.items[*].message}"])
            .contains("0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    });
    server.kubectl_ok(&["uncordon", &node]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        server.json(&["get", "deployment", "guarded"])["status"]["readyReplicas"] == 2
    });
}

/// The managers of a Deployment, by name and operation.
fn managers(server: &Server, name: &str) -> Vec<String> {
    let object = server.json(&[
        "get",
        "deployment",
        name,
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap()
            )
        })
        .collect()
}

fn web(name: &str, labels: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}{labels}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: web, image: toolbox, command: [sleep, '3600']}}
"
    )
}

/// Server-side apply keeps who owns each field: a field another manager
/// set is a conflict (the API server's message, through kubectl) unless
/// forced; what an applier stops applying is removed; and kubectl moves an
/// object from client-side to server-side apply (and back) with no
/// conflict and no field left behind, with every kubectl from 1.27.
#[test]
fn server_side_apply_owns_fields() {
    let server = Server::start();
    let file = |name: &str, labels: &str, replicas: u32| {
        server.manifest(&format!("{name}.yaml"), &web(name, labels, replicas))
    };
    let replicas = |name: &str| {
        server.json(&["get", "deployment", name, "-o", "json"])["spec"]["replicas"].clone()
    };
    let labels = |name: &str| {
        server.json(&["get", "deployment", name, "-o", "json"])["metadata"]["labels"].clone()
    };

    let applied = file("web", ", tier: front", 3);
    server.kubectl_ok(&["apply", "--server-side", "-f", &applied]);
    server.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    let out = server.kubectl(&["apply", "--server-side", "-f", &applied]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"),
        "{err}"
    );
    assert_eq!(replicas("web"), 5);
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &applied,
    ]);
    assert_eq!(replicas("web"), 3);
    assert_eq!(
        managers(&server, "web")
            .iter()
            .filter(|m| m.starts_with("kubectl "))
            .count(),
        1
    );

    // A label the applier no longer applies goes; one another manager
    // added stays.
    server.kubectl_ok(&["label", "deployment", "web", "owner=ops"]);
    server.kubectl_ok(&["apply", "--server-side", "-f", &file("web", "", 3)]);
    assert_eq!(
        labels("web"),
        serde_json::json!({"app": "web", "owner": "ops"})
    );

    // The field manager is recorded even when the apply changes nothing.
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=ci",
        "-f",
        &file("web", "", 3),
    ]);
    assert!(managers(&server, "web").contains(&"ci Apply".to_string()));

    let dir = kubectl_dir();
    for minor in [27, 33] {
        let binary = dir.join(format!("kubectl.1.{minor}"));
        let run = |args: &[&str]| server.kubectl_binary_ok(&binary, args);
        let name = format!("csa{minor}");
        // Client-side apply first, then server-side with a label and a
        // replica count changed: no conflict, the label gone, and the
        // client-side manager's fields handed to kubectl.
        run(&["apply", "-f", &file(&name, ", tier: back", 3)]);
        assert!(managers(&server, &name).contains(&"kubectl-client-side-apply Update".to_string()));
        run(&["apply", "--server-side", "-f", &file(&name, "", 2)]);
        assert_eq!(replicas(&name), 2);
        assert_eq!(labels(&name), serde_json::json!({"app": name}));
        let now = managers(&server, &name);
        assert!(now.contains(&"kubectl Apply".to_string()), "{now:?}");
        assert!(
            !now.iter()
                .any(|m| m.starts_with("kubectl-client-side-apply")),
            "{now:?}"
        );
        // And back to client-side apply, which sees the annotation the
        // server kept in step.
        run(&["apply", "-f", &file(&name, "", 4)]);
        assert_eq!(replicas(&name), 4);
        run(&["apply", "--server-side", "-f", &file(&name, "", 1)]);
        assert_eq!(replicas(&name), 1);
    }
}

/// Ingresses and IngressClasses as a cluster without an ingress
/// controller has them: stored, checked, listed with kubectl's columns; a
/// new Ingress naming no class gets the default one.
#[test]
fn ingresses_take_the_default_class() {
    let server = Server::start();
    let class = server.manifest(
        "class.yaml",
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations: {ingressclass.kubernetes.io/is-default-class: 'true'}
spec: {controller: example.com/edge}
",
    );
    server.kubectl_ok(&["apply", "-f", &class]);
    server.kubectl_ok(&[
        "create",
        "ingress",
        "web",
        "--rule=shop.example.com/=web:80",
        "--rule=api.example.com/v1*=api:8080,tls",
    ]);
    let ingress = server.json(&["get", "ingress", "web", "-o", "json"]);
    assert_eq!(ingress["spec"]["ingressClassName"], "edge");
    let table = server.kubectl_ok(&["get", "ing"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        [
            "web",
            "edge",
            "shop.example.com,api.example.com",
            "80,",
            "443"
        ],
        "{table}"
    );
    let classes = server.kubectl_ok(&["get", "ingressclass"]);
    assert!(
        classes
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("edge   example.com/edge   <none>"),
        "{classes}"
    );
    let bad = server.manifest(
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
",
    );
    let refused = server.kubectl(&["apply", "-f", &bad]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("The Ingress \"bad\" is invalid: spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address"),
        "{stderr}"
    );
}

const STATEFUL_SET: &str = "apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: main
        image: toolbox
        command: [sleep, '3600']
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
";

/// The pod of `name`'s readiness time, and its creation time.
fn ready_and_created(server: &Server, name: &str) -> (String, String) {
    let pod = server.json(&["get", "pod", name]);
    let ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["lastTransitionTime"].as_str().unwrap().to_string())
        .unwrap_or_default();
    let created = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    (ready, created)
}

fn revisions(server: &Server, set: &str) -> Vec<String> {
    let history = server.kubectl_ok(&["rollout", "history", set]);
    history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A StatefulSet as the Kubernetes tutorial drives one: pods `db-0..2`
/// made in order, each after the one before is ready, each with its own
/// claim and DNS name; a deleted pod comes back with its name and data;
/// updates roll from the highest ordinal down to the partition; history
/// and undo; scaling down removes the highest ordinals and keeps claims.
#[test]
fn stateful_sets_keep_identity_and_roll_in_order() {
    let server = Server::start();
    let file = server.manifest("db.yaml", STATEFUL_SET);
    server.kubectl_ok(&["apply", "-f", &file]);
    let status = server.kubectl_ok(&["rollout", "status", "sts/db", "--timeout=120s"]);
    assert!(
        status.ends_with("partitioned roll out complete: 3 new pods have been updated...\n"),
        "{status}"
    );
    // OrderedReady: each pod was created once the one before was ready.
    let times: Vec<(String, String)> = (0..3)
        .map(|i| ready_and_created(&server, &format!("db-{i}")))
        .collect();
    for i in 1..3 {
        assert!(times[i].1 >= times[i - 1].0, "{times:?}");
    }
    let table = server.kubectl_ok(&["get", "sts", "db", "-o", "wide"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4]),
        ("db", "3/3", "main", "toolbox"),
        "{table}"
    );
    let pod = server.json(&["get", "pod", "db-1"]);
    assert_eq!(pod["spec"]["hostname"], "db-1");
    assert_eq!(pod["spec"]["subdomain"], "db");
    assert_eq!(
        pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap()
        .clone();
    assert_eq!(volume["persistentVolumeClaim"]["claimName"], "data-db-1");
    let claims = server.items(&["get", "pvc", "-l", "app=db"]);
    let mut names: Vec<&str> = claims
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["data-db-0", "data-db-1", "data-db-2"]);

    // Each pod has its own DNS name through the headless Service.
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let lookup = server.kubectl_ok(&[
        "run",
        "lookup",
        "--image=toolbox",
        "--restart=Never",
        "--",
        "nslookup",
        "db-1.db.default.svc.cluster.local",
    ]);
    assert!(lookup.contains("pod/lookup created"), "{lookup}");
    server.wait_for(std::time::Duration::from_secs(60), || {
        server.kubectl_ok(&["get", "pod", "lookup", "-o", "jsonpath={.status.phase}"])
            == "Succeeded"
    });
    let answer = server.kubectl_ok(&["logs", "lookup"]);
    assert!(answer.contains(&format!("Address: {ip}")), "{answer}");

    // A deleted pod comes back with its name, claim and data.
    server.kubectl_ok(&["exec", "db-0", "--", "sh", "-c", "echo kept > /data/id"]);
    let old_uid = server.json(&["get", "pod", "db-0"])["metadata"]["uid"].clone();
    // Without waiting: kubectl's wait for deletion races with the set
    // recreating the name (its list may already see the new pod).
    server.kubectl_ok(&["delete", "pod", "db-0", "--wait=false"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        let pod = server.json(&["get", "pod", "db-0"]);
        pod["metadata"]["uid"] != old_uid && pod["status"]["phase"] == "Running"
    });
    assert_eq!(
        server.kubectl_ok(&["exec", "db-0", "--", "cat", "/data/id"]),
        "kept\n"
    );

    // A partitioned update replaces only the ordinals at or above it.
    server.kubectl_ok(&[
        "patch",
        "sts",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    server.kubectl_ok(&["set", "image", "sts/db", "main=toolbox:latest"]);
    let image = |i: usize| {
        server.kubectl_ok(&[
            "get",
            "pod",
            &format!("db-{i}"),
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
    };
    server.wait_for(std::time::Duration::from_secs(60), || {
        let sts = server.json(&["get", "sts", "db"]);
        sts["status"]["updatedReplicas"] == 1 && sts["status"]["readyReplicas"] == 3
    });
    assert_eq!(
        [image(0), image(1), image(2)],
        ["toolbox", "toolbox", "toolbox:latest"]
    );
    let sts = server.json(&["get", "sts", "db"]);
    assert_ne!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    server.kubectl_ok(&[
        "patch",
        "sts",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    server.kubectl_ok(&["rollout", "status", "sts/db", "--timeout=120s"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        let sts = server.json(&["get", "sts", "db"]);
        sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
            && sts["status"]["currentReplicas"] == 3
    });
    assert_eq!(
        [image(0), image(1), image(2)],
        ["toolbox:latest", "toolbox:latest", "toolbox:latest"]
    );
    assert_eq!(revisions(&server, "sts/db"), ["1", "2"]);
    server.kubectl_ok(&["rollout", "undo", "sts/db"]);
    server.kubectl_ok(&["rollout", "status", "sts/db", "--timeout=120s"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        (0..3).all(|i| image(i) == "toolbox")
    });
    assert_eq!(revisions(&server, "sts/db"), ["2", "3"]);

    // Scaling down removes the highest ordinals; claims stay.
    server.kubectl_ok(&["scale", "sts", "db", "--replicas=1"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        let pods = server.items(&["get", "pods", "-l", "app=db"]);
        pods.len() == 1 && pods[0]["metadata"]["name"] == "db-0"
    });
    assert_eq!(server.items(&["get", "pvc", "-l", "app=db"]).len(), 3);
    let refused = server.kubectl(&[
        "patch",
        "sts",
        "db",
        "-p",
        r#"{"spec":{"serviceName":"other"}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("The StatefulSet \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{stderr}"
    );
}

/// A DaemonSet runs one pod on each node it fits, pinned there by node
/// affinity; it rolls, keeps history, undoes, and follows node labels;
/// the scheduler says why a pod fits no node as Kubernetes' does.
#[test]
fn daemon_sets_run_one_pod_per_fitting_node() {
    let server = Server::start();
    let node = server.node_name().to_string();
    let file = server.manifest(
        "agent.yaml",
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - {name: main, image: toolbox, command: [sleep, '3600']}
",
    );
    server.kubectl_ok(&["apply", "-f", &file]);
    let status = server.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        status.ends_with("daemon set \"agent\" successfully rolled out\n"),
        "{status}"
    );
    let table = server.kubectl_ok(&["get", "ds", "agent"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["agent", "1", "1", "1", "1", "1", "<none>"],
        "{table}"
    );
    let pods = server.items(&["get", "pods", "-l", "app=agent"]);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["spec"]["nodeName"], node.as_str());
    assert_eq!(
        pods[0]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
        node.as_str()
    );
    let tolerated: Vec<&str> = pods[0]["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(
        tolerated.contains(&"node.kubernetes.io/unschedulable"),
        "{tolerated:?}"
    );

    server.kubectl_ok(&["set", "image", "ds/agent", "main=toolbox:latest"]);
    server.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        let pods = server.items(&["get", "pods", "-l", "app=agent"]);
        pods.len() == 1 && pods[0]["spec"]["containers"][0]["image"] == "toolbox:latest"
    });
    assert_eq!(revisions(&server, "ds/agent"), ["1", "2"]);
    server.kubectl_ok(&["rollout", "undo", "ds/agent"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        let pods = server.items(&["get", "pods", "-l", "app=agent"]);
        pods.len() == 1 && pods[0]["spec"]["containers"][0]["image"] == "toolbox"
    });
    assert_eq!(revisions(&server, "ds/agent"), ["2", "3"]);

    // A node selector no node matches: no daemon; labelling the node
    // brings it back.
    server.kubectl_ok(&[
        "patch",
        "ds",
        "agent",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"disk":"ssd"}}}}}"#,
    ]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        server.items(&["get", "pods", "-l", "app=agent"]).is_empty()
    });
    let table = server.kubectl_ok(&["get", "ds", "agent"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["agent", "0", "0", "0", "0", "0", "disk=ssd"],
        "{table}"
    );
    server.kubectl_ok(&["label", "node", &node, "disk=ssd"]);
    server.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    server.wait_for(std::time::Duration::from_secs(60), || {
        server.items(&["get", "pods", "-l", "app=agent"]).len() == 1
    });

    // A plain pod no node fits is not scheduled, and the event says why.
    server.kubectl_ok(&[
        "run",
        "picky",
        "--image=toolbox",
        "--overrides",
        r#"{"spec":{"nodeSelector":{"disk":"nvme"}}}"#,
        "--",
        "sleep",
        "60",
    ]);
    server.wait_for(std::time::Duration::from_secs(30), || {
        server
            .kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=picky,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}"])
            .contains("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    });
}

/// A pod that fits nowhere evicts pods of lower priority, as the
/// scheduler's DefaultPreemption does; a class with `preemptionPolicy:
/// Never` waits instead, and says so.
#[test]
fn higher_priority_pods_preempt_lower_ones() {
    let server = Server::start();
    let node = server.node_name().to_string();
    let cores = server.json(&["get", "node", &node])["status"]["allocatable"]["cpu"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let (three_quarters, half) = (cores * 750, cores * 500);
    let pod = |name: &str, class: &str, millis: u64| {
        let class = if class.is_empty() {
            String::new()
        } else {
            format!("  priorityClassName: {class}\n")
        };
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
{class}  containers:
  - {{name: main, image: toolbox, command: [sleep, '3600'], resources: {{requests: {{cpu: {millis}m}}}}}}
"
        )
    };
    let classes = server.manifest(
        "classes.yaml",
        "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: urgent}
value: 1000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: polite}
value: 1000
preemptionPolicy: Never
",
    );
    server.kubectl_ok(&["apply", "-f", &classes]);
    let low = server.manifest("low.yaml", &pod("low", "", three_quarters));
    server.apply_ready(&low, "low");
    let failed_scheduling = |name: &str| {
        server.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name},reason=FailedScheduling"),
            "-o",
            "jsonpath={.items[*].message}",
        ])
    };
    let polite = server.manifest("polite.yaml", &pod("polite", "polite", half));
    server.kubectl_ok(&["apply", "-f", &polite]);
    server.wait_for(std::time::Duration::from_secs(30), || {
        failed_scheduling("polite").contains(
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
        )
    });
    assert_eq!(
        server.json(&["get", "pod", "low"])["metadata"]["deletionTimestamp"],
        serde_json::Value::Null
    );

    let urgent = server.manifest("urgent.yaml", &pod("urgent", "urgent", half));
    server.kubectl_ok(&["apply", "-f", &urgent]);
    let uid = server.json(&["get", "pod", "urgent"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/urgent",
        "--timeout=60s",
    ]);
    let preempted = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=low,reason=Preempted",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert_eq!(preempted, format!("Preempted by pod {uid} on node {node}"));
    let urgent_pod = server.json(&["get", "pod", "urgent"]);
    assert_eq!(urgent_pod["status"]["nominatedNodeName"], node.as_str());
    assert_eq!(urgent_pod["spec"]["nodeName"], node.as_str());
    // The room freed holds both pods of priority 1000.
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/polite",
        "--timeout=60s",
    ]);
    let out = server.kubectl(&["get", "pod", "low"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pods \"low\" not found"));
}
