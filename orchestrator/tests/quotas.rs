//! Resource quotas and limit ranges through the real kubectl: the guide's
//! "Resource Quotas" chapter as written (only `image:` changed) with the
//! outputs it shows, object counts and scopes made with `kubectl create
//! quota`, concurrent creates that never overrun a quota, and LimitRange
//! defaults and bounds.

mod server;

use std::time::Duration;

use server::Server;

const NAMESPACE: &str = "kind: Namespace
apiVersion: v1
metadata:
  name: red-team
spec: {}
";

/// The guide's quota, comments and all.
const QUOTA: &str = r#"kind: ResourceQuota
apiVersion: v1
metadata:
  name: red-team-resource-quota
  # Important! Define the resource quota for the namespace.
  namespace: red-team
spec:
  # The set of hard limits for each resource
  # This is a map of resource type to request/limit
  hard:
    # Resource constraints can be set up for "counts" of objects.
    # In this case, limit the count of pods to five.
    pods: 5

    # Constrain the sum of `requests` across objects
    # in the namespace.
    # An object must now `request` its minimum
    # resource requirements.
    # If there aren't sufficient available resources
    # in the namespace based on the `request` an object
    # may not run or may be killed.
    "requests.cpu": "2"
    "requests.memory": 1024m

    # Constrain the sum of `limits` across objects in
    # the namespace.
    # A `limit` defines the maximum resources an object can
    # use when it's running -- if it starts to exceed
    # this limit, it might get throttled.
    "limits.cpu": "4"
    "limits.memory": 2048m
"#;

const POD_ILLEGAL: &str = "kind: Pod
apiVersion: v1
metadata:
  name: pod-illegal
  # Important! Create this pod in the right namespace.
  namespace: red-team
spec:
  # This pod will fail to be created because it doesn't have
  # the `request` or `limit` property set -- this is required by
  # our resource quota.
  containers:
    - name: nginx-illegal
      image: http-server
";

const POD_ONE: &str = r#"
kind: Pod
apiVersion: v1
metadata:
  name: pod-one
  # Important! Create this pod in the right namespace.
  namespace: red-team
spec:
  containers:
    - name: nginx-pod-one
      image: http-server
      resources:
        # This container requires at least 768m memory
        # and 0.5 CPU resource to run
        requests:
          memory: 768m
          cpu: "0.5"
        # This container can use at most 1024m memory
        # and 2 CPU resources when it's running
        limits:
          memory: 1024m
          cpu: "2"
"#;

const POD_TWO: &str = r#"
kind: Pod
apiVersion: v1
metadata:
  name: pod-two
  namespace: red-team
spec:
  # This pod is identical to `pod-one` except that it has a
  # slightly lower minimum memory requirement.
  #
  # If created after pod-one, this pod will fail!
  # This is because in their memory `requests`,
  # pod-one requires 768m, pod-two requires 512m,
  # but the resource quota defines the `requests.memory`
  # cap at 1024m.
  containers:
    - name: nginx-pod-two
      image: http-server
      resources:
        # At least 512m of memory is required for this pod.
        requests:
          memory: 512m
          cpu: "0.5"
        limits:
          memory: 1024m
          cpu: "1"
"#;

/// Words split on whitespace, line by line (kubectl pads its columns).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .filter(|row: &Vec<String>| !row.is_empty())
        .collect()
}

fn stderr_of(server: &Server, args: &[&str]) -> String {
    let out = server.kubectl(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The chapter, step by step: a pod without requests refused, pod-one
/// charged (as `kubectl describe quota` shows at once), pod-two refused
/// with the guide's words, and the quota given back when pod-one goes.
#[test]
fn the_guides_resource_quota_chapter() {
    let server = Server::start();
    let file = |name: &str, text: &str| server.manifest(name, text);
    let namespace = file("namespace.yaml", NAMESPACE);
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &namespace]).trim(),
        "namespace/red-team created"
    );
    let quota = file("quota.yaml", QUOTA);
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &quota]).trim(),
        "resourcequota/red-team-resource-quota created"
    );

    let illegal = file("pod-illegal.yaml", POD_ILLEGAL);
    // Kubernetes names each missing request and limit with the
    // containers that leave it out (the guide shows an older wording of
    // the same refusal).
    assert_eq!(
        stderr_of(&server, &["create", "-f", &illegal]),
        format!(
            "Error from server (Forbidden): error when creating \"{illegal}\": pods \"pod-illegal\" is forbidden: \
             failed quota: red-team-resource-quota: must specify limits.cpu for: nginx-illegal; \
             limits.memory for: nginx-illegal; requests.cpu for: nginx-illegal; requests.memory for: nginx-illegal"
        )
    );

    let one = file("pod-one.yaml", POD_ONE);
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &one]).trim(),
        "pod/pod-one created"
    );
    let described = server.kubectl_ok(&["describe", "quota", "--namespace=red-team"]);
    assert_eq!(
        rows(&described),
        rows(
            "Name:            red-team-resource-quota
             Namespace:       red-team
             Resource         Used   Hard
             --------         ----   ----
             limits.cpu       2      4
             limits.memory    1024m  2048m
             pods             1      5
             requests.cpu     500m   2
             requests.memory  768m   1024m"
        ),
        "{described}"
    );

    // kubectl 1.27 describes it the same way.
    let old = server::kubectl_dir().join("kubectl.1.27");
    assert_eq!(
        rows(&server.kubectl_binary_ok(&old, &["describe", "quota", "--namespace=red-team"])),
        rows(&described)
    );

    let two = file("pod-two.yaml", POD_TWO);
    assert_eq!(
        stderr_of(&server, &["create", "-f", &two]),
        format!(
            "Error from server (Forbidden): error when creating \"{two}\": pods \"pod-two\" is forbidden: \
             exceeded quota: red-team-resource-quota, requested: requests.memory=512m, \
             used: requests.memory=768m, limited: requests.memory=1024m"
        )
    );

    // `kubectl get quota`: use against hard, requests apart from limits.
    let table = server.kubectl_ok(&["get", "quota", "-n", "red-team"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(rows(lines[0]), rows("NAME AGE REQUEST LIMIT"), "{table}");
    assert!(
        lines[1].contains("pods: 1/5, requests.cpu: 500m/2, requests.memory: 768m/1024m")
            && lines[1].ends_with("limits.cpu: 2/4, limits.memory: 1024m/2048m"),
        "{table}"
    );

    // pod-one gone, its share comes back and pod-two fits.
    server.kubectl_ok(&[
        "delete",
        "-f",
        &one,
        "--grace-period=0",
        "--force",
        "--wait",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .json(&["get", "quota", "red-team-resource-quota", "-n", "red-team"])
            .pointer("/status/used/pods")
            .and_then(|v| v.as_str())
            == Some("0")
    });
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &two]).trim(),
        "pod/pod-two created"
    );
    let used = server.json(&["get", "quota", "red-team-resource-quota", "-n", "red-team"]);
    assert_eq!(used["status"]["used"]["requests.memory"], "512m", "{used}");
    assert_eq!(used["status"]["used"]["limits.cpu"], "1", "{used}");
}

/// `kubectl create quota` on object counts and on a scope: the second
/// Deployment is refused; BestEffort pods are counted apart from the
/// others; parallel creates against a count of three let exactly three
/// through.
#[test]
fn counts_and_scopes_hold_under_concurrent_creates() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "team"]);
    // The namespace's `kube-root-ca.crt` counts among its ConfigMaps.
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])
            .status
            .success()
    });
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "quota",
                "objects",
                "-n",
                "team",
                "--hard=count/deployments.apps=1,configmaps=3",
            ])
            .trim(),
        "resourcequota/objects created"
    );
    server.kubectl_ok(&[
        "create",
        "deployment",
        "first",
        "-n",
        "team",
        "--image=toolbox",
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        stderr_of(
            &server,
            &[
                "create",
                "deployment",
                "second",
                "-n",
                "team",
                "--image=toolbox"
            ]
        ),
        "error: failed to create deployment: deployments.apps \"second\" is forbidden: exceeded quota: objects, \
         requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
    );

    // Ten configmaps at once against a limit of three (one is taken).
    let children: Vec<_> = (0..10)
        .map(|i| {
            server
                .kubectl_command(&["create", "configmap", &format!("c{i}"), "-n", "team"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let refusals: Vec<String> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .filter(|out| !out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stderr).to_string())
        .collect();
    assert_eq!(refusals.len(), 8, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.contains("exceeded quota: objects, requested: configmaps=1, used: configmaps=3, limited: configmaps=3")),
        "{refusals:?}"
    );
    let configmaps = server.kubectl_ok(&["get", "configmaps", "-n", "team", "-o", "name"]);
    let made = configmaps
        .lines()
        .filter(|l| l.starts_with("configmap/c"))
        .count();
    assert_eq!(made, 2, "{configmaps}");

    // A scoped quota counts only the pods in its scope (in a namespace of
    // its own: the Deployment's pod above is BestEffort too).
    server.kubectl_ok(&["create", "namespace", "scoped"]);
    server.kubectl_ok(&[
        "create",
        "quota",
        "best-effort",
        "-n",
        "scoped",
        "--hard=pods=1",
        "--scopes=BestEffort",
    ]);
    let pod = |name: &str, resources: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: scoped}}\nspec:\n  containers:\n  - {{name: c, image: toolbox, command: [sleep, '1000']{resources}}}\n"
        )
    };
    let free = server.manifest("free.yaml", &pod("free", ""));
    server.kubectl_ok(&["create", "-f", &free]);
    let again = server.manifest("free-again.yaml", &pod("free-again", ""));
    assert!(
        stderr_of(&server, &["create", "-f", &again]).ends_with(
            "pods \"free-again\" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"
        )
    );
    let burstable = server.manifest(
        "burstable.yaml",
        &pod("burstable", ", resources: {requests: {cpu: 100m}}"),
    );
    server.kubectl_ok(&["create", "-f", &burstable]);
    let described = server.kubectl_ok(&["describe", "quota", "best-effort", "-n", "scoped"]);
    assert!(
        rows(&described).contains(&vec!["Scopes:".to_string(), "BestEffort".to_string()]),
        "{described}"
    );
    assert!(
        rows(&described).contains(&vec!["pods".to_string(), "1".to_string(), "1".to_string()]),
        "{described}"
    );
}

const LIMITS: &str = "apiVersion: v1
kind: LimitRange
metadata:
  name: limits
  namespace: team
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 128Mi}
    defaultRequest: {cpu: 250m, memory: 64Mi}
    max: {cpu: '1', memory: 256Mi}
    min: {cpu: 100m}
";

/// A LimitRange fills what a container leaves out (so a quota that
/// requires requests admits it) and refuses what is out of bounds, with
/// the API server's words; `kubectl describe limitrange` shows it.
#[test]
fn limit_ranges_fill_defaults_and_hold_bounds() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "team"]);
    let limits = server.manifest("limits.yaml", LIMITS);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &limits]).trim(),
        "limitrange/limits created"
    );
    server.kubectl_ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "team",
        "--hard=requests.cpu=1,limits.memory=1Gi",
    ]);
    server.kubectl_ok(&[
        "run",
        "plain",
        "-n",
        "team",
        "--image=toolbox",
        "--",
        "sleep",
        "1000",
    ]);
    let plain = server.json(&["get", "pod", "plain", "-n", "team"]);
    assert_eq!(
        plain["spec"]["containers"][0]["resources"],
        serde_json::json!({"limits": {"cpu": "500m", "memory": "128Mi"},
            "requests": {"cpu": "250m", "memory": "64Mi"}})
    );
    assert_eq!(
        plain["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain"
    );
    let quota = server.json(&["get", "quota", "compute", "-n", "team"]);
    assert_eq!(quota["status"]["used"]["requests.cpu"], "250m", "{quota}");
    assert_eq!(quota["status"]["used"]["limits.memory"], "128Mi", "{quota}");

    let greedy = server.manifest(
        "greedy.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: greedy, namespace: team}\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    resources: {requests: {cpu: 50m}, limits: {cpu: '2', memory: 512Mi}}\n",
    );
    assert_eq!(
        stderr_of(&server, &["create", "-f", &greedy]),
        format!(
            "Error from server (Forbidden): error when creating \"{greedy}\": pods \"greedy\" is forbidden: \
             [minimum cpu usage per Container is 100m, but request is 50m, maximum cpu usage per Container is 1, \
             but limit is 2, maximum memory usage per Container is 256Mi, but limit is 512Mi]"
        )
    );

    let described = server.kubectl_ok(&["describe", "limitrange", "limits", "-n", "team"]);
    let described = rows(&described);
    for row in [
        "Container cpu 100m 1 250m 500m -",
        "Container memory - 256Mi 64Mi 128Mi -",
    ] {
        let row: Vec<String> = row.split(' ').map(str::to_string).collect();
        assert!(described.contains(&row), "{row:?} in {described:?}");
    }
    let table = server.kubectl_ok(&["get", "limits", "-n", "team"]);
    assert_eq!(rows(&table)[0], ["NAME", "CREATED", "AT"], "{table}");
}

/// A Deployment asking for more pods than the quota leaves gets as many
/// as fit; its ReplicaSet reports the rest as `FailedCreate` with the
/// quota's words, and makes them once room is made.
#[test]
fn a_deployment_beyond_its_quota_reports_failed_create() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "small"]);
    server.kubectl_ok(&["create", "quota", "two", "-n", "small", "--hard=pods=2"]);
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "small",
        "--replicas=3",
        "--image=toolbox",
        "--",
        "sleep",
        "1000",
    ]);
    let failed = || {
        server.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "small",
            "--field-selector=reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ])
    };
    server.wait_for(Duration::from_secs(30), || {
        failed().contains("exceeded quota: two, requested: pods=1, used: pods=2, limited: pods=2")
    });
    let pods = server.kubectl_ok(&["get", "pods", "-n", "small", "-o", "name"]);
    assert_eq!(pods.lines().count(), 2, "{pods}");
    // Room made (the quota raised), the third pod follows.
    server.kubectl_ok(&[
        "patch",
        "quota",
        "two",
        "-n",
        "small",
        "--type=merge",
        "-p",
        r#"{"spec":{"hard":{"pods":"3"}}}"#,
    ]);
    server.wait_for(Duration::from_secs(60), || {
        server
            .kubectl_ok(&["get", "pods", "-n", "small", "-o", "name"])
            .lines()
            .count()
            == 3
    });
}
