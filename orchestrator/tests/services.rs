//! The guide's Services chapter through the real kubectl: a NodePort
//! Service over two hostname pods, reached from the host at the node port
//! and from a pod at the cluster IP and by name; Endpoints and EndpointSlices that
//! follow readiness; a LoadBalancer served on the host.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use server::{Server, free_port, text};

const SERVICE: &str = "kind: Service
apiVersion: v1
metadata:
  name: hostname-service
spec:
  type: NodePort
  selector:
    app: echo-hostname
  ports:
    - nodePort: 30163
      port: 8080
      targetPort: 80
";

/// The guide's two pods; the first is ready only while `/tmp/ready` exists.
const PODS: &str = "kind: Pod
apiVersion: v1
metadata:
  name: hostname-pod-101
  labels:
    app: echo-hostname
    app-version: v101
spec:
  containers:
    - name: nginx-hostname
      image: echo-hostname:1.0.1
      ports:
        - containerPort: 80
      readinessProbe:
        exec: {command: [cat, /tmp/ready]}
        periodSeconds: 1
---
kind: Pod
apiVersion: v1
metadata:
  name: hostname-pod-102
  labels:
    app: echo-hostname
    app-version: v102
spec:
  containers:
    - name: nginx-hostname
      image: echo-hostname:1.0.2
      ports:
        - containerPort: 80
      readinessProbe:
        tcpSocket: {port: 80}
        periodSeconds: 1
";

/// One HTTP/1.0 GET from the host; the body, or why not.
fn http_get(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") => Ok(body.to_string()),
        _ => Err(format!("not an HTTP answer: {answer:?}")),
    }
}

fn set(versions: &[&str]) -> BTreeSet<String> {
    versions.iter().map(|v| v.to_string()).collect()
}

/// The versions of the echo-hostname pods that answer `n` requests in a
/// row to the node port `port`.
fn versions_answering(port: u16, n: usize) -> Result<BTreeSet<String>, String> {
    Ok(answers(port, n)?.into_iter().map(|(_, v)| v).collect())
}

/// Waits until four requests in a row to the guide's node port are
/// answered by exactly `versions`. The proxy takes endpoints in turn, so
/// with two endpoints four answers from one version mean the other is out.
fn wait_for_versions(server: &Server, versions: &[&str]) {
    let expected = Ok(set(versions));
    server.wait_for(Duration::from_secs(30), || {
        versions_answering(30163, 4) == expected
    });
}

fn endpoints(server: &Server) -> String {
    server.kubectl_ok(&["get", "endpoints", "hostname-service", "--no-headers"])
}

#[test]
fn the_guides_node_port_service_balances_over_ready_pods() {
    let server = Server::start();
    let service = server.manifest("service.yaml", SERVICE);
    let pods = server.manifest("pods.yaml", PODS);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &service]).trim(),
        "service/hostname-service created"
    );
    server.kubectl_ok(&["apply", "-f", &pods]);

    let svc = server.kubectl_ok(&["get", "service", "hostname-service", "-o", "wide"]);
    let lines: Vec<&str> = svc.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "hostname-service");
    assert_eq!(row[1], "NodePort");
    let cluster_ip = row[2].to_string();
    let octets = cluster_ip
        .parse::<std::net::Ipv4Addr>()
        .unwrap_or_else(|_| panic!("{svc}"))
        .octets();
    assert!(
        octets[0] == 10 && (96..=111).contains(&octets[1]),
        "a cluster IP in 10.96.0.0/12: {svc}"
    );
    assert_eq!(row[3], "<none>");
    assert_eq!(row[4], "8080:30163/TCP");
    assert_eq!(row[6], "app=echo-hostname");
    let default_services = server.kubectl_ok(&["get", "svc", "kubernetes", "--no-headers"]);
    assert!(
        default_services.contains("ClusterIP")
            && default_services.contains("10.96.0.1 ")
            && default_services.contains("443/TCP"),
        "{default_services}"
    );

    // Pod 102 is ready; 101 waits for its file.
    let ip = |pod: &str| server.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    server.wait_for(Duration::from_secs(60), || {
        server
            .kubectl_ok(&["get", "pod", "hostname-pod-102"])
            .contains("1/1")
            && !ip("hostname-pod-101").is_empty()
    });
    let (ip101, ip102) = (ip("hostname-pod-101"), ip("hostname-pod-102"));
    server.wait_for(Duration::from_secs(30), || {
        endpoints(&server).contains(&format!("{ip102}:80"))
    });
    let only_102 = endpoints(&server);
    assert!(
        !only_102.contains(&ip101),
        "a pod not ready is no endpoint: {only_102}"
    );
    let not_ready = server.kubectl_ok(&[
        "get",
        "endpoints",
        "hostname-service",
        "-o",
        "jsonpath={.subsets[0].notReadyAddresses[0].ip}",
    ]);
    assert_eq!(not_ready, ip101);
    // The proxy follows the EndpointSlices a moment after they change, as
    // kube-proxy does.
    wait_for_versions(&server, &["1.0.2"]);
    assert_eq!(
        versions_answering(30163, 4),
        Ok(set(&["1.0.2"])),
        "only the ready pod answers"
    );

    // Both ready: the node port balances over both.
    server.kubectl_ok(&["exec", "hostname-pod-101", "--", "touch", "/tmp/ready"]);
    server.wait_for(Duration::from_secs(30), || {
        endpoints(&server).contains(&format!("{ip101}:80"))
    });
    let both = endpoints(&server);
    assert!(both.contains(&format!("{ip102}:80")), "{both}");
    wait_for_versions(&server, &["1.0.1", "1.0.2"]);
    assert_eq!(
        versions_answering(30163, 10),
        Ok(set(&["1.0.1", "1.0.2"])),
        "both pods answer through the node port"
    );
    // kubectl describe reads the slices (and dereferences their port
    // names): both ready endpoints are listed.
    let described = server.kubectl_ok(&["describe", "service", "hostname-service"]);
    let endpoints_line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("{described}"));
    assert!(
        endpoints_line.contains(&format!("{ip101}:80"))
            && endpoints_line.contains(&format!("{ip102}:80")),
        "{described}"
    );
    assert!(
        described.contains("NodePort:                 <unset>  30163/TCP"),
        "{described}"
    );
    let slices = server.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=hostname-service",
    ]);
    let slice_row: Vec<&str> = slices.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(slice_row[1], "IPv4", "{slices}");
    assert_eq!(slice_row[2], "80", "{slices}");
    assert!(
        slices.contains(&ip101) && slices.contains(&ip102),
        "{slices}"
    );

    // A pod inside the cluster reaches the Service at its cluster IP and
    // port, and by its names.
    let client = server.manifest(
        "client.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, \"wget -qO- http://{cluster_ip}:8080/ && wget -qO- http://hostname-service:8080/ && wget -qO- http://hostname-service.default:8080/ && wget -qO- http://hostname-service.default.svc.cluster.local:8080/\"]\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &client]);
    server.wait_for(Duration::from_secs(60), || {
        let pod = server.kubectl_ok(&["get", "pod", "client"]);
        pod.contains("Completed") || pod.contains("Error")
    });
    let logs = server.kubectl_ok(&["logs", "client"]);
    assert_eq!(
        logs.matches("Hostname: hostname-pod-10").count(),
        4,
        "{logs}"
    );

    // Not ready again: out of the endpoints, and the node port stops
    // sending it traffic.
    server.kubectl_ok(&["exec", "hostname-pod-101", "--", "rm", "/tmp/ready"]);
    server.wait_for(Duration::from_secs(30), || {
        !endpoints(&server).contains(&ip101)
    });
    wait_for_versions(&server, &["1.0.2"]);
    assert_eq!(versions_answering(30163, 4), Ok(set(&["1.0.2"])));

    // A Service without pods: an empty placeholder slice, and describe
    // still works.
    let lonely = server.manifest(
        "lonely.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: lonely\nspec:\n  selector: {app: nobody}\n  ports: [{port: 80}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &lonely]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=lonely",
                "--no-headers",
            ])
            .contains("<unset>")
    });
    let described = server.kubectl_ok(&["describe", "service", "lonely"]);
    assert!(
        described.lines().any(|l| l.trim_end() == "Endpoints:"),
        "{described}"
    );

    // Deleting the Service closes its node port and removes its endpoints.
    server.kubectl_ok(&["delete", "service", "hostname-service"]);
    server.wait_for(Duration::from_secs(30), || http_get(30163).is_err());
    server.wait_for(Duration::from_secs(30), || {
        !server
            .kubectl_ok(&["get", "endpoints"])
            .contains("hostname-service")
    });
}

#[test]
fn a_load_balancer_is_served_on_the_host_at_its_port() {
    let server = Server::start();
    let port = free_port();
    let manifest = server.manifest(
        "lb.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  containers:\n  - name: web\n    image: echo-hostname:1.0.1\n    ports: [{{name: http, containerPort: 80}}]\n    readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: [{{port: {port}, targetPort: http}}]\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    server.wait_for(Duration::from_secs(60), || {
        server
            .kubectl_ok(&["get", "svc", "web"])
            .contains("127.0.0.1")
    });
    let row = server.kubectl_ok(&["get", "svc", "web", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "LoadBalancer");
    assert_eq!(cells[3], "127.0.0.1");
    let (service_port, node_port) = cells[4].trim_end_matches("/TCP").split_once(':').unwrap();
    assert_eq!(service_port, port.to_string());
    let node_port: u16 = node_port.parse().unwrap();
    assert!((30000..=32767).contains(&node_port), "{row}");
    server.wait_for(Duration::from_secs(60), || {
        http_get(port).is_ok_and(|b| b.contains("Hostname: web"))
    });
    let through_node_port = http_get(node_port).unwrap();
    assert!(
        through_node_port.contains("Hostname: web"),
        "{through_node_port}"
    );
}

/// A Service without a selector whose EndpointSlice points outside the
/// cluster is reached over real TCP from the host: the `kubernetes`
/// Service (the API's listener) is. One pointing at a server on the host's
/// own loopback is not: that is the host, not egress (Kubernetes refuses
/// such endpoint addresses outright).
#[test]
fn a_service_with_an_outside_endpoint_is_reached_only_where_egress_may_go() {
    let server = Server::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let body = "hello from the host\n";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let manifest = server.manifest(
        "outside.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: outside\nspec:\n  ports: [{{port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: outside-1\n  labels: {{kubernetes.io/service-name: outside}}\naddressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  restartPolicy: Never\n  containers:\n  - name: api\n    image: toolbox\n    command: [nc, -z, -w, '5', kubernetes.default, '443']\n  - name: outside\n    image: toolbox\n    command: [wget, -q, -T, '5', -O-, http://outside/]\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    let mut pod = serde_json::Value::Null;
    server.wait_for(Duration::from_secs(60), || {
        pod = server.json(&["get", "pod", "client"]);
        let phase = text(&pod, "/status/phase");
        phase == "Succeeded" || phase == "Failed"
    });
    let exit = |name: &str| {
        pod["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c.pointer("/state/terminated/exitCode"))
            .and_then(serde_json::Value::as_i64)
    };
    assert_eq!(
        exit("api"),
        Some(0),
        "the API is reached through its Service: {pod}"
    );
    assert_ne!(
        exit("outside"),
        Some(0),
        "the host's loopback is not: {pod}"
    );
    let logs = server.kubectl(&["logs", "client", "-c", "outside"]);
    assert!(!String::from_utf8_lossy(&logs.stdout).contains("hello from the host"));
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// `http-hello`, a `wasi:http/proxy` component, served on its named port:
/// probes reach it, a NodePort Service balances to it, and `kubectl exec`
/// still runs commands in its container (through the toolbox).
#[test]
fn an_http_handler_pod_is_probed_and_served_through_a_node_port() {
    let server = Server::start();
    let manifest = server.manifest(
        "hello.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  labels: {app: hello}\nspec:\n  containers:\n  - name: hello\n    image: http-hello\n    ports: [{name: http, containerPort: 8080}]\n    readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 1}\n    livenessProbe: {httpGet: {path: /live, port: 8080}, periodSeconds: 1}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  type: NodePort\n  selector: {app: hello}\n  ports: [{port: 80, targetPort: http}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hello",
        "--timeout=60s",
    ]);
    let node_port: u16 = server
        .kubectl_ok(&[
            "get",
            "svc",
            "hello",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    server.wait_for(Duration::from_secs(30), || {
        http_get(node_port).is_ok_and(|b| b == "Hello from wasmkube! You asked for /\n")
    });
    let endpoints = server.kubectl_ok(&["get", "endpoints", "hello", "--no-headers"]);
    assert!(endpoints.contains(":8080"), "{endpoints}");
    // Probes pass and nothing restarts it.
    std::thread::sleep(Duration::from_secs(3));
    let pod = server.kubectl_ok(&["get", "pod", "hello", "--no-headers"]);
    let cells: Vec<&str> = pod.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["1/1", "Running", "0"], "{pod}");
    let hostname = server.kubectl_ok(&["exec", "hello", "--", "sh", "-c", "echo $HOSTNAME"]);
    assert_eq!(hostname, "hello\n");

    // The toolbox's network applets, from inside the pod.
    let cluster_ip =
        server.kubectl_ok(&["get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"]);
    let lookup = server.kubectl_ok(&["exec", "hello", "--", "nslookup", "hello"]);
    assert_eq!(lookup, format!("Name:\thello\nAddress: {cluster_ip}\n"));
    let missing = server.kubectl(&[
        "exec",
        "hello",
        "--",
        "nslookup",
        "nope.default.svc.cluster.local",
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stdout)
            .contains("** server can't find nope.default.svc.cluster.local: NXDOMAIN"),
        "{missing:?}"
    );
    let curl = server.kubectl_ok(&[
        "exec",
        "hello",
        "--",
        "curl",
        "-s",
        "http://hello.default/x",
    ]);
    assert_eq!(curl, "Hello from wasmkube! You asked for /x\n");
    let refused = server.kubectl(&["exec", "hello", "--", "curl", "-sS", "http://hello:81/"]);
    assert_eq!(refused.status.code(), Some(7), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("curl: (7) Failed to connect to hello port 81"),
        "{refused:?}"
    );
    let raw = server.kubectl_ok(&[
        "exec",
        "hello",
        "--",
        "sh",
        "-c",
        "printf 'GET /nc HTTP/1.0\\r\\n\\r\\n' | nc hello 80",
    ]);
    assert!(
        raw.starts_with("HTTP/1.0 200 OK") || raw.starts_with("HTTP/1.1 200 OK"),
        "{raw}"
    );
    assert!(raw.ends_with("You asked for /nc\n"), "{raw}");
}

/// The guide's canary: two Deployments (3 × 1.0.1, 1 × 1.0.2, its
/// extensions/v1beta1 manifests) behind one NodePort Service that selects
/// both; then the canary is scaled up and the old version down to zero.
const CANARY: &str = "kind: Deployment
apiVersion: extensions/v1beta1
metadata:
  name: hostname-101-deployment
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hostname
      version: v101
  template:
    metadata:
      labels:
        app: hostname
        version: v101
    spec:
      containers:
        - name: nginx-hostname
          image: echo-hostname:1.0.1
          ports:
            - containerPort: 80
---
kind: Deployment
apiVersion: extensions/v1beta1
metadata:
  name: hostname-102-deployment
spec:
  replicas: 1
  selector:
    matchLabels:
      app: hostname
      version: v102
  template:
    metadata:
      labels:
        app: hostname
        version: v102
    spec:
      containers:
        - name: nginx-hostname
          image: echo-hostname:1.0.2
          ports:
            - containerPort: 80
---
kind: Service
apiVersion: v1
metadata:
  name: hostname-service
spec:
  selector:
    app: hostname
  type: NodePort
  ports:
    - port: 8080
      targetPort: 80
";

/// How many ready addresses the Service's Endpoints list.
fn ready_addresses(server: &Server) -> usize {
    server
        .kubectl_ok(&[
            "get",
            "endpoints",
            "hostname-service",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .split_whitespace()
        .count()
}

/// Who answered through `port` over `n` requests: (hostname, version).
fn answers(port: u16, n: usize) -> Result<Vec<(String, String)>, String> {
    (0..n)
        .map(|_| {
            let body = http_get(port)?;
            let field = |name: &str| {
                body.split(", ")
                    .find_map(|part| part.trim().strip_prefix(name))
                    .map(str::to_string)
                    .ok_or_else(|| format!("no {name} in {body:?}"))
            };
            Ok((field("Hostname: ")?, field("version: ")?))
        })
        .collect()
}

#[test]
fn a_canary_deployment_shares_one_service_with_the_old_version() {
    let server = Server::start();
    let path = server.manifest("canary.yaml", CANARY);
    server.kubectl_ok(&["apply", "-f", &path]);
    server.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/hostname-101-deployment",
        "--timeout=60s",
    ]);
    server.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/hostname-102-deployment",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(30), || ready_addresses(&server) == 4);
    let node_port: u16 = server
        .kubectl_ok(&[
            "get",
            "service",
            "hostname-service",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    let pod_version = |version: &str| {
        server
            .kubectl_ok(&[
                "get",
                "pods",
                "-l",
                &format!("version={version}"),
                "-o",
                "name",
            ])
            .lines()
            .map(|l| l.trim_start_matches("pod/").to_string())
            .collect::<Vec<String>>()
    };
    let old = pod_version("v101");
    let canary = pod_version("v102");
    assert_eq!((old.len(), canary.len()), (3, 1));
    // Both versions answer, each from its own Deployment's pods, once the
    // proxy has the four endpoints (it follows the EndpointSlices a moment
    // after they change, as kube-proxy does).
    let hosts = |seen: &[(String, String)]| {
        seen.iter()
            .map(|(h, _)| h.clone())
            .collect::<BTreeSet<String>>()
    };
    server.wait_for(Duration::from_secs(30), || {
        answers(node_port, 8).is_ok_and(|seen| hosts(&seen).len() == 4)
    });
    let seen = answers(node_port, 60).unwrap();
    for (host, version) in &seen {
        match version.as_str() {
            "1.0.1" => assert!(old.contains(host), "{host} is not a v101 pod"),
            "1.0.2" => assert_eq!(host, &canary[0]),
            other => panic!("unexpected version {other}"),
        }
    }
    assert_eq!(
        hosts(&seen).len(),
        4,
        "all four pods take traffic: {seen:?}"
    );
    // The canary takes over.
    server.kubectl_ok(&[
        "scale",
        "deployment/hostname-102-deployment",
        "--replicas=3",
    ]);
    server.kubectl_ok(&[
        "scale",
        "deployment/hostname-101-deployment",
        "--replicas=0",
    ]);
    server.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/hostname-102-deployment",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(60), || {
        ready_addresses(&server) == 3 && pod_version("v101").is_empty()
    });
    // Endpoints are taken in turn, so six answers in a row from the new
    // version mean no old pod is left among them.
    let only_new = |seen: &[(String, String)]| seen.iter().all(|(_, v)| v == "1.0.2");
    server.wait_for(Duration::from_secs(30), || {
        answers(node_port, 6).is_ok_and(|seen| only_new(&seen))
    });
    let seen = answers(node_port, 30).unwrap();
    assert!(only_new(&seen), "{seen:?}");
}
