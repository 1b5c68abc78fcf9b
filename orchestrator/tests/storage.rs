//! The guide's Volumes and Persistent Volumes chapter through the real
//! kubectl: an emptyDir shared over time, the guide's PersistentVolume,
//! claim and pod with data that outlives the pod, dynamic provisioning by
//! the default `local-path` class with Delete and Retain reclaiming, and
//! the pvc-protection finalizer.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::time::Duration;

use server::{Server, text};

/// The guide's PersistentVolume, its path moved into the test's host directory.
fn persistent_volume(path: &str) -> String {
    format!(
        "kind: PersistentVolume
apiVersion: v1
metadata:
  name: my-persistent-volume
spec:
  capacity:
    storage: 128M
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: {path}
"
    )
}

/// The guide's claim; `class` is added where a test binds statically.
fn claim(class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  storageClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        "kind: PersistentVolumeClaim
apiVersion: v1
metadata:
  name: my-small-pvc
spec:
{class}  resources:
    requests:
      storage: 64M
  accessModes:
    - ReadWriteOnce
"
    )
}

/// The guide's pod, `alpine` changed to `toolbox` and 5 s to 1 s.
const PV_USER_POD: &str = "kind: Pod
apiVersion: v1
metadata:
  name: my-pv-user-pod
spec:
  volumes:
    - name: a-persistent-volume
      persistentVolumeClaim:
        claimName: my-small-pvc
  containers:
    - name: pv-user
      volumeMounts:
        - name: a-persistent-volume
          mountPath: /var/forever
      image: toolbox
      command: [\"/bin/sh\"]
      args: [\"-c\", \"while true; do date >> /var/forever/file.txt; sleep 1; done\"]
";

fn lines_in(server: &Server, pod: &str, file: &str) -> usize {
    let out = server.kubectl(&["exec", pod, "--", "cat", file]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn bound(server: &Server, claim: &str) -> serde_json::Value {
    let mut pvc = serde_json::Value::Null;
    server.wait_for(Duration::from_secs(20), || {
        pvc = server.json(&["get", "pvc", claim]);
        text(&pvc, "/status/phase") == "Bound"
    });
    pvc
}

/// Data in a claim outlives the pod; returns how many lines the second pod
/// found from the first.
fn data_survives_the_pod(server: &Server) -> usize {
    let pod = server.manifest("pod.yaml", PV_USER_POD);
    server.kubectl_ok(&["apply", "-f", &pod]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/my-pv-user-pod",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(20), || {
        lines_in(server, "my-pv-user-pod", "/var/forever/file.txt") >= 3
    });
    server.kubectl_ok(&["delete", "pod", "my-pv-user-pod", "--grace-period=1"]);
    let before = {
        // The pod is gone: count what it left through the host.
        let pvc = server.json(&["get", "pvc", "my-small-pvc"]);
        let pv = server.json(&["get", "pv", text(&pvc, "/spec/volumeName")]);
        let path = std::path::Path::new(text(&pv, "/spec/hostPath/path")).join("file.txt");
        std::fs::read_to_string(path).unwrap().lines().count()
    };
    assert!(before >= 3, "{before}");
    server.kubectl_ok(&["apply", "-f", &pod]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/my-pv-user-pod",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(20), || {
        lines_in(server, "my-pv-user-pod", "/var/forever/file.txt") > before
    });
    before
}

#[test]
fn the_guides_persistent_volume_binds_and_keeps_data_across_pods() {
    let server = Server::start();
    let host = server.host_dir().join("my-persistent-volume");
    let pv = server.manifest("pv.yaml", &persistent_volume(&host.display().to_string()));
    server.kubectl_ok(&["apply", "-f", &pv]);
    server.wait_for(Duration::from_secs(20), || {
        text(
            &server.json(&["get", "pv", "my-persistent-volume"]),
            "/status/phase",
        ) == "Available"
    });
    // `storageClassName: ""` binds to a volume of no class, as in
    // Kubernetes (without it, the default class provisions a new one).
    let pvc = server.manifest("pvc.yaml", &claim(Some("\"\"")));
    server.kubectl_ok(&["apply", "-f", &pvc]);
    let claimed = bound(&server, "my-small-pvc");
    assert_eq!(text(&claimed, "/spec/volumeName"), "my-persistent-volume");
    assert_eq!(text(&claimed, "/status/capacity/storage"), "128M");
    let table = server.kubectl_ok(&["get", "pvc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "my-small-pvc",
            "Bound",
            "my-persistent-volume",
            "128M",
            "RWO",
            "<unset>"
        ],
        "{table}"
    );
    let pv_table = server.kubectl_ok(&["get", "pv"]);
    let row: Vec<&str> = pv_table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..6],
        [
            "my-persistent-volume",
            "128M",
            "RWO",
            "Retain",
            "Bound",
            "default/my-small-pvc"
        ],
        "{pv_table}"
    );

    data_survives_the_pod(&server);
    assert!(
        host.join("file.txt").is_file(),
        "the data is in the host path"
    );

    // A claim in use is protected; deleting it waits for the pod.
    let out = server.kubectl_ok(&["delete", "pvc", "my-small-pvc", "--wait=false"]);
    assert_eq!(out, "persistentvolumeclaim \"my-small-pvc\" deleted\n");
    std::thread::sleep(Duration::from_secs(1));
    let pvc = server.json(&["get", "pvc", "my-small-pvc"]);
    assert!(pvc.pointer("/metadata/deletionTimestamp").is_some());
    assert_eq!(
        pvc["metadata"]["finalizers"],
        serde_json::json!(["kubernetes.io/pvc-protection"])
    );
    let status = server.kubectl_ok(&["get", "pvc", "my-small-pvc", "--no-headers"]);
    assert!(status.contains("Terminating"), "{status}");
    server.kubectl_ok(&["delete", "pod", "my-pv-user-pod", "--grace-period=1"]);
    server.wait_for(Duration::from_secs(20), || {
        !server
            .kubectl(&["get", "pvc", "my-small-pvc"])
            .status
            .success()
    });
    // Retain: the volume is Released and its data kept.
    server.wait_for(Duration::from_secs(20), || {
        text(
            &server.json(&["get", "pv", "my-persistent-volume"]),
            "/status/phase",
        ) == "Released"
    });
    assert!(host.join("file.txt").is_file());
}

#[test]
fn the_default_class_provisions_and_reclaims() {
    let server = Server::start();
    let classes = server.kubectl_ok(&["get", "sc"]);
    let header: Vec<&str> = classes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    let row: Vec<&str> = classes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "local-path",
            "(default)",
            "wasmkube.io/local-path",
            "Delete",
            "Immediate",
            "false"
        ]
    );
    // The guide's claim as written: the default class provisions it.
    let pvc = server.manifest("pvc.yaml", &claim(None));
    server.kubectl_ok(&["apply", "-f", &pvc]);
    let claimed = bound(&server, "my-small-pvc");
    assert_eq!(text(&claimed, "/spec/storageClassName"), "local-path");
    let volume = text(&claimed, "/spec/volumeName").to_string();
    assert_eq!(volume, format!("pvc-{}", text(&claimed, "/metadata/uid")));
    let pv = server.json(&["get", "pv", &volume]);
    assert_eq!(text(&pv, "/spec/persistentVolumeReclaimPolicy"), "Delete");
    assert_eq!(text(&pv, "/spec/capacity/storage"), "64M");
    let path = std::path::PathBuf::from(text(&pv, "/spec/hostPath/path"));
    assert!(
        path.starts_with(server.data_dir().join("volumes")),
        "{path:?}"
    );
    let events = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=my-small-pvc",
    ]);
    assert!(
        events.contains(&format!("Successfully provisioned volume {volume}")),
        "{events}"
    );

    data_survives_the_pod(&server);
    server.kubectl_ok(&["delete", "pod", "my-pv-user-pod", "--grace-period=1"]);
    server.kubectl_ok(&["delete", "pvc", "my-small-pvc"]);
    // Delete: the volume and its data go.
    server.wait_for(Duration::from_secs(20), || {
        !server.kubectl(&["get", "pv", &volume]).status.success()
    });
    assert!(!path.exists(), "the data is removed");

    // A class that retains: the data stays after the claim goes.
    let keep = server.manifest(
        "keep.yaml",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: keep\nprovisioner: wasmkube.io/local-path\nreclaimPolicy: Retain\n",
    );
    server.kubectl_ok(&["apply", "-f", &keep]);
    let kept = server.manifest(
        "kept.yaml",
        &claim(Some("keep")).replace("my-small-pvc", "kept"),
    );
    server.kubectl_ok(&["apply", "-f", &kept]);
    let claimed = bound(&server, "kept");
    let volume = text(&claimed, "/spec/volumeName").to_string();
    let pv = server.json(&["get", "pv", &volume]);
    let path = std::path::PathBuf::from(text(&pv, "/spec/hostPath/path"));
    std::fs::write(path.join("precious"), "data").unwrap();
    server.kubectl_ok(&["delete", "pvc", "kept"]);
    server.wait_for(Duration::from_secs(20), || {
        text(&server.json(&["get", "pv", &volume]), "/status/phase") == "Released"
    });
    assert_eq!(
        std::fs::read_to_string(path.join("precious")).unwrap(),
        "data"
    );
}

#[test]
fn malformed_claims_are_refused_and_unbound_claims_wait() {
    let server = Server::start();
    let bad = server.manifest("bad.yaml", &claim(None).replace("64M", "64MM"));
    let out = server.kubectl(&["apply", "-f", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.resources[storage]: Invalid value: "64MM": quantities must match the regular expression"#),
        "{err}"
    );
    // A claim no volume fits and no class provisions stays Pending, and a
    // pod using it waits.
    let pvc = server.manifest("pvc.yaml", &claim(Some("\"\"")));
    server.kubectl_ok(&["apply", "-f", &pvc]);
    let pod = server.manifest("pod.yaml", PV_USER_POD);
    server.kubectl_ok(&["apply", "-f", &pod]);
    let mut events = String::new();
    server.wait_for(Duration::from_secs(20), || {
        events = server.kubectl_ok(&["get", "events"]);
        events.contains("FailedBinding") && events.contains("FailedMount")
    });
    assert!(
        events
            .contains("no persistent volumes available for this claim and no storage class is set"),
        "{events}"
    );
    assert!(
        events.contains("persistentvolumeclaim \"my-small-pvc\" is not bound"),
        "{events}"
    );
    assert_eq!(
        text(
            &server.json(&["get", "pvc", "my-small-pvc"]),
            "/status/phase"
        ),
        "Pending"
    );
    // A volume appears: the claim binds and the pod starts.
    let host = server.host_dir().join("late");
    let pv = server.manifest("pv.yaml", &persistent_volume(&host.display().to_string()));
    server.kubectl_ok(&["apply", "-f", &pv]);
    bound(&server, "my-small-pvc");
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/my-pv-user-pod",
        "--timeout=60s",
    ]);
}

#[test]
fn the_guides_empty_dir_pod_writes_and_memory_medium_is_in_memory() {
    let server = Server::start();
    let pod = server.manifest(
        "simple.yaml",
        "kind: Pod
apiVersion: v1
metadata:
  name: simple-volume-pod
spec:
  volumes:
    - name: simple-vol
      emptyDir: {}
    - name: fast
      emptyDir:
        medium: Memory
  containers:
    - name: my-container
      volumeMounts:
        - name: simple-vol
          mountPath: /var/simple
        - name: fast
          mountPath: /var/fast
      image: toolbox
      command: [\"/bin/sh\"]
      args: [\"-c\", \"echo quick > /var/fast/note; while true; do date >> /var/simple/file.txt; sleep 1; done\"]
",
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/simple-volume-pod",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(20), || {
        lines_in(&server, "simple-volume-pod", "/var/simple/file.txt") >= 2
    });
    assert_eq!(
        server.kubectl_ok(&["exec", "simple-volume-pod", "--", "cat", "/var/fast/note"]),
        "quick\n"
    );
    let memory = wasmkube::kubelet::memory_dir(server.data_dir()).unwrap();
    let pod = server.json(&["get", "pod", "simple-volume-pod"]);
    let note = memory
        .join(text(&pod, "/metadata/uid"))
        .join("fast")
        .join("note");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "quick\n");
}

/// The guide's security-context pod, `alpine` changed to `toolbox`.
const SECURITY_CONTEXT_POD: &str = "kind: Pod
apiVersion: v1
metadata:
  name: security-context-pod
spec:
  securityContext:
    runAsUser: 45
    fsGroup: 231
  volumes:
    - name: simple-directory
      emptyDir: {}
  containers:
    - name: example-container
      image: toolbox
      command: [\"/bin/sh\"]
      args: [\"-c\", \"while true; do date >> /etc/directory/file.txt; sleep 5; done\"]
      volumeMounts:
        - name: simple-directory
          mountPath: /etc/directory
";

#[test]
fn the_guides_security_context_owns_the_files_the_guest_writes() {
    let server = Server::start();
    let pod = server.manifest("security-context.yaml", SECURITY_CONTEXT_POD);
    server.kubectl_ok(&["apply", "-f", &pod]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/security-context-pod",
        "--timeout=60s",
    ]);
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        // Without the privilege the pod says so in a Warning event.
        let mut events = String::new();
        server.wait_for(Duration::from_secs(20), || {
            events = server.kubectl_ok(&["get", "events"]);
            events.contains("SecurityContextNotApplied")
        });
        assert!(events.contains("needs root or CAP_CHOWN"), "{events}");
        return;
    }
    // The owner is applied as the file appears (inotify): allow the moment
    // between the two.
    let mut listing: String;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let fields = loop {
        listing = server.kubectl_ok(&[
            "exec",
            "security-context-pod",
            "--",
            "ls",
            "-l",
            "/etc/directory",
        ]);
        let fields: Vec<String> = listing
            .lines()
            .find(|l| l.ends_with("file.txt"))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if (fields.len() > 4 && fields[2] == "45") || std::time::Instant::now() > deadline {
            break fields;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // As the guide shows: `-rw-r--r--    1 45      231          58 Jul  3 09:45 file.txt`
    assert!(fields.len() > 4, "{listing}");
    assert_eq!(&fields[..4], ["-rw-r--r--", "1", "45", "231"], "{listing}");
    assert_eq!(fields.last().map(String::as_str), Some("file.txt"));
}

#[test]
fn host_paths_outside_the_allowed_ones_are_refused() {
    let allowed = tempfile::tempdir().unwrap();
    let allowed_path = allowed.path().display().to_string();
    let server = Server::start_with(&["--allowed-host-paths", &allowed_path]);
    let pod = |name: &str, path: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  volumes:\n  - name: h\n    hostPath: {{path: {path}, type: DirectoryOrCreate}}\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, 'echo hi > /h/note; sleep 3600']\n    volumeMounts: [{{name: h, mountPath: /h}}]\n"
        )
    };
    let outside = server.manifest("outside.yaml", &pod("outside", "/etc/wasmkube-test"));
    server.kubectl_ok(&["apply", "-f", &outside]);
    let mut message = String::new();
    server.wait_for(Duration::from_secs(20), || {
        let p = server.json(&["get", "pod", "outside"]);
        message = text(&p, "/status/containerStatuses/0/state/waiting/message").to_string();
        !message.is_empty()
    });
    assert!(
        message.contains(&format!(
            "\"/etc/wasmkube-test\" is not allowed: this server lets pods use only host paths under {allowed_path}"
        )),
        "{message}"
    );
    assert!(
        !std::path::Path::new("/etc/wasmkube-test").exists(),
        "nothing made outside"
    );
    let inside_path = allowed.path().join("data");
    let inside = server.manifest(
        "inside.yaml",
        &pod("inside", &inside_path.display().to_string()),
    );
    server.kubectl_ok(&["apply", "-f", &inside]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/inside",
        "--timeout=60s",
    ]);
    server.wait_for(Duration::from_secs(10), || {
        inside_path.join("note").is_file()
    });
}

#[test]
fn an_empty_dir_over_its_size_limit_evicts_the_pod() {
    let server = Server::start();
    let pod = server.manifest(
        "limited.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: limited\nspec:\n  restartPolicy: Never\n  volumes:\n  - name: cache\n    emptyDir: {sizeLimit: 1Ki}\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, 'sleep 1; seq 1 2000 > /cache/big; sleep 3600']\n    volumeMounts: [{name: cache, mountPath: /cache}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    let mut p = serde_json::Value::Null;
    server.wait_for(Duration::from_secs(30), || {
        p = server.json(&["get", "pod", "limited"]);
        text(&p, "/status/phase") == "Failed"
    });
    assert_eq!(text(&p, "/status/reason"), "Evicted");
    assert_eq!(
        text(&p, "/status/message"),
        "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Ki\". "
    );
    // kubectl's STATUS shows the stopped container's reason, as for an
    // evicted pod in Kubernetes.
    let row = server.kubectl_ok(&["get", "pod", "limited", "--no-headers"]);
    assert!(row.contains("0/1"), "{row}");
    let events = server.kubectl_ok(&["get", "events", "--field-selector", "reason=Evicted"]);
    assert!(events.contains("exceeds the limit"), "{events}");
    // Deleting an evicted pod works and its directory goes (a finished
    // pod's object goes at once; the kubelet tidies after).
    server.kubectl_ok(&["delete", "pod", "limited"]);
    let dir = server
        .data_dir()
        .join("pods")
        .join(text(&p, "/metadata/uid"));
    server.wait_for(Duration::from_secs(10), || !dir.exists());
}
