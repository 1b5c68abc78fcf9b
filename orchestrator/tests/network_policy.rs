//! NetworkPolicy recipes through the real kubectl, each checked by
//! connecting from real guests: deny all, allow from a label, allow from
//! a namespace, deny egress except DNS, ipBlock (for egress, and for a
//! client outside the cluster through a node port).
//!
//! A dropped connection is never answered: the guests' own timeouts
//! (`wget -T 2`) end the attempts, as on a cluster whose CNI drops.

mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use server::Server;

/// `web` (http-server, app=web) behind a Service (`SERVICE_TYPE`, whose
/// node port is `NODE_PORT`); `client` (role=client) and `stranger` in
/// `default`, `outsider` in namespace `other`.
const PODS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: other
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: http-server
    ports: [{name: http, containerPort: 80}]
    readinessProbe:
      tcpSocket: {port: 80}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: SERVICE_TYPE
  selector: {app: web}
  ports: [{port: 80, targetPort: http, nodePort: NODE_PORT}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  labels: {role: client}
spec:
  containers:
  - {name: c, image: toolbox, command: [sleep, '3600']}
---
apiVersion: v1
kind: Pod
metadata:
  name: stranger
spec:
  containers:
  - {name: c, image: toolbox, command: [sleep, '3600']}
---
apiVersion: v1
kind: Pod
metadata:
  name: outsider
  namespace: other
spec:
  containers:
  - {name: c, image: toolbox, command: [sleep, '3600']}
";

const NODE_PORT: u16 = 30471;

/// The pods and the Service, a NodePort one (on the host: one test only)
/// with `node_port`.
fn start(node_port: bool) -> Server {
    let server = Server::start();
    let pods = if node_port {
        PODS.replace("SERVICE_TYPE", "NodePort")
            .replace("NODE_PORT", &NODE_PORT.to_string())
    } else {
        PODS.replace("SERVICE_TYPE", "ClusterIP")
            .replace(", nodePort: NODE_PORT", "")
    };
    let file = server.manifest("pods.yaml", &pods);
    server.kubectl_ok(&["apply", "-f", &file]);
    for (pod, namespace) in [
        ("web", "default"),
        ("client", "default"),
        ("stranger", "default"),
        ("outsider", "other"),
    ] {
        server.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "-n",
            namespace,
            "--timeout=60s",
        ]);
    }
    server
}

/// Runs `script` in `pod` of `namespace`: its status, stdout and stderr.
fn in_pod(server: &Server, namespace: &str, pod: &str, script: &str) -> (bool, String) {
    let out = server.kubectl(&["exec", "-n", namespace, pod, "--", "sh", "-c", script]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Whether `pod` of `namespace` gets the page at `url` (2 s to connect).
fn reaches(server: &Server, namespace: &str, pod: &str, url: &str) -> bool {
    let (ok, output) = in_pod(server, namespace, pod, &format!("wget -q -T 2 -O- {url}"));
    if ok {
        assert!(
            output.contains("<html>") || output.contains("nginx"),
            "{output}"
        );
    } else {
        // Dropped, never refused: the connect timed out.
        assert!(output.contains("timed out"), "{pod} -> {url}: {output}");
    }
    ok
}

/// Waits (up to five seconds) until who reaches `web` through its Service
/// is `expected`, as (client, stranger, outsider).
fn expect_web(server: &Server, expected: (bool, bool, bool)) {
    let url = "http://web.default";
    let mut seen = (false, false, false);
    for _ in 0..3 {
        seen = (
            reaches(server, "default", "client", url),
            reaches(server, "default", "stranger", url),
            reaches(server, "other", "outsider", url),
        );
        if seen == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("expected (client, stranger, outsider) = {expected:?}, saw {seen:?}");
}

fn apply(server: &Server, name: &str, text: &str) {
    let file = server.manifest(&format!("{name}.yaml"), text);
    server.kubectl_ok(&["apply", "-f", &file]);
}

/// One GET of `/` at the node port from the host: answered, or not
/// (a dropped client's connection is closed unanswered).
fn node_port_answers() -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", NODE_PORT)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.")
}

/// Deny all ingress, then allow from a label, then from a namespace;
/// the policies' table columns; a client outside reaches the node port
/// only once an ipBlock names it; deleting the policies opens it all.
#[test]
fn ingress_recipes() {
    let server = start(true);
    expect_web(&server, (true, true, true));
    assert!(node_port_answers());

    apply(
        &server,
        "deny",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
spec:
  podSelector: {}
  policyTypes:
  - Ingress
",
    );
    expect_web(&server, (false, false, false));
    assert!(!node_port_answers());

    apply(
        &server,
        "from-label",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-clients
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {role: client}
    ports:
    - {protocol: TCP, port: http}
",
    );
    expect_web(&server, (true, false, false));

    apply(
        &server,
        "from-namespace",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-other
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: other}
",
    );
    expect_web(&server, (true, false, true));

    apply(
        &server,
        "from-host",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-host
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - ipBlock: {cidr: 127.0.0.0/8, except: [127.0.0.2/32]}
",
    );
    server.wait_for(Duration::from_secs(5), node_port_answers);

    let table = server.kubectl_ok(&["get", "netpol"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "POD-SELECTOR", "AGE"]);
    let names: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        names,
        [
            ("default-deny-ingress", "<none>"),
            ("web-from-clients", "app=web"),
            ("web-from-host", "app=web"),
            ("web-from-other", "app=web"),
        ]
    );
    let stored = server.json(&["get", "netpol", "web-from-clients"]);
    assert_eq!(
        stored["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );

    server.kubectl_ok(&["delete", "netpol", "--all"]);
    expect_web(&server, (true, true, true));
}

/// Egress: all denied (names do not resolve either), then DNS allowed as
/// the usual recipe writes it, then an ipBlock with an exception.
#[test]
fn egress_recipes() {
    let server = start(false);
    let web_ip = server.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(reaches(&server, "default", "client", "http://web"));

    apply(
        &server,
        "deny-egress",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-egress
spec:
  podSelector: {}
  policyTypes:
  - Egress
",
    );
    server.wait_for(Duration::from_secs(5), || {
        !in_pod(&server, "default", "client", "nslookup web").0
    });
    assert!(!reaches(
        &server,
        "default",
        "client",
        &format!("http://{web_ip}/")
    ));
    // Ingress stays open: a pod of another namespace still reaches web.
    assert!(reaches(&server, "other", "outsider", "http://web.default"));

    apply(
        &server,
        "allow-dns",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-dns
spec:
  podSelector: {}
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: kube-system}
      podSelector:
        matchLabels: {k8s-app: kube-dns}
    ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
",
    );
    server.wait_for(Duration::from_secs(5), || {
        in_pod(&server, "default", "client", "nslookup web").0
    });
    let (_, answer) = in_pod(&server, "default", "client", "nslookup web");
    assert!(answer.contains("Address: "), "{answer}");
    assert!(!reaches(&server, "default", "client", "http://web"));

    apply(
        &server,
        "to-pods",
        &client_egress_to(&format!(
            "cidr: 10.244.0.0/16\n        except: [{web_ip}/32]"
        )),
    );
    // The Service's endpoint is web itself: excepted.
    assert!(!reaches(&server, "default", "client", "http://web"));
    apply(
        &server,
        "to-web",
        &client_egress_to(&format!("cidr: {web_ip}/32")),
    );
    server.wait_for(Duration::from_secs(5), || {
        reaches(&server, "default", "client", "http://web")
    });
    // stranger is not a client: still cut off.
    assert!(!reaches(
        &server,
        "default",
        "stranger",
        &format!("http://{web_ip}/")
    ));
}

/// The policy `to-pods`: role=client pods may send only to the ipBlock
/// `block` (its fields, YAML at the block's indentation).
fn client_egress_to(block: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: to-pods
spec:
  podSelector:
    matchLabels: {{role: client}}
  policyTypes:
  - Egress
  egress:
  - to:
    - ipBlock:
        {block}
"
    )
}

/// The API server's checks and defaults, through kubectl.
#[test]
fn bad_policies_are_refused() {
    let server = Server::start();
    let file = server.manifest(
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}
      podSelector: {}
    ports:
    - {port: 80, endPort: 79}
",
    );
    let out = server.kubectl(&["apply", "-f", &file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "The NetworkPolicy \"bad\" is invalid",
        "spec.egress[0].ports[0].endPort: Invalid value: 79: must be greater than or equal to `port`",
        "spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
        "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
}
