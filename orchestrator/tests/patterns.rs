//! The guide's multi-container patterns through the real kubectl: a
//! sidecar serving what its pod mate writes, reached over the pod's
//! localhost; an ambassador forwarding localhost to a Service.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::time::Duration;

use server::Server;

/// The guide's sidecar pod, images changed (`alpine` → `toolbox`,
/// `nginx` → `http-server`) and the 5 s period shortened.
const SIDECAR: &str = "kind: Pod
apiVersion: v1
metadata:
  name: pod-with-sidecar
spec:
  volumes:
  - name: shared-logs
    emptyDir: {}
  containers:
  - name: app-container
    image: toolbox
    command: [\"/bin/sh\"]
    args: [\"-c\", \"while true; do date >> /var/log/app.txt; sleep 1;done\"]
    volumeMounts:
    - name: shared-logs
      mountPath: /var/log
  - name: sidecar-container
    image: http-server
    ports:
    - containerPort: 80
    volumeMounts:
    - name: shared-logs
      mountPath: /usr/share/nginx/html
";

#[test]
fn the_guides_sidecar_is_reached_over_the_pods_localhost() {
    let server = Server::start();
    let file = server.manifest("sidecar.yaml", SIDECAR);
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/pod-with-sidecar",
        "--timeout=60s",
    ]);
    let mut log = String::new();
    server.wait_for(Duration::from_secs(30), || {
        let out = server.kubectl(&[
            "exec",
            "pod-with-sidecar",
            "-c",
            "sidecar-container",
            "--",
            "curl",
            "-s",
            "http://localhost:80/app.txt",
        ]);
        log = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && log.lines().count() >= 2
    });
    assert!(
        log.lines().all(|l| l.contains(" UTC ")),
        "the app's dates, served by the sidecar: {log}"
    );
}

#[test]
fn an_ambassador_forwards_localhost_to_a_service() {
    let server = Server::start();
    let manifest = server.manifest(
        "ambassador.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: backend\n  labels: {app: backend}\nspec:\n  containers:\n  - name: web\n    image: echo-hostname:1.0.2\n    ports: [{containerPort: 80}]\n    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: backend\nspec:\n  selector: {app: backend}\n  ports: [{port: 9000, targetPort: 80}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n    image: toolbox\n    command: [sh, -c, \"while true; do wget -qO- http://localhost:8080/ || echo failed; sleep 1; done\"]\n  - name: ambassador\n    image: ambassador\n    env:\n    - {name: LISTEN_PORT, value: \"8080\"}\n    - {name: UPSTREAM, value: \"backend:9000\"}\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // Logs of a container still being created are a BadRequest, as on a
    // cluster: poll until they exist and show the backend.
    server.wait_for(Duration::from_secs(60), || {
        let out = server.kubectl(&["logs", "app", "-c", "app"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Hostname: backend")
    });
    let logs = server.kubectl_ok(&["logs", "app", "-c", "app"]);
    assert!(logs.contains("version: 1.0.2"), "{logs}");
    let ambassador = server.kubectl_ok(&["logs", "app", "-c", "ambassador"]);
    assert!(
        ambassador.contains("ambassador: localhost:8080 -> backend:9000"),
        "{ambassador}"
    );
}
