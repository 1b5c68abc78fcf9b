//! The guide's ConfigMaps and Secrets chapter through the real kubectl:
//! a ConfigMap as a volume and as `envFrom`, a Secret as a volume, edits
//! reaching mounted files, Secrets encrypted at rest, bad input refused.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::path::Path;
use std::time::Duration;

use server::{Server, text};

/// The guide's ConfigMap, verbatim.
const CONFIG_MAP: &str = "kind: ConfigMap
apiVersion: v1
metadata:
  name: example-configmap
data:
  # Configuration values can be set as key-value properties
  database: mongodb
  database_uri: mongodb://localhost:27017

  # Or set as complete file contents (even JSON!)
  keys: |
    image.public.key=771
    rsa.public.key=42
";

/// The guide's pod, `image: nginx:1.7.9` changed to `http-server`.
const POD_USING_CONFIGMAP: &str = "kind: Pod
apiVersion: v1
metadata:
  name: pod-using-configmap
spec:
  volumes:
    - name: example-configmap-volume
      configMap:
        name: example-configmap
  containers:
    - name: container-configmap
      image: http-server
      volumeMounts:
        - name: example-configmap-volume
          mountPath: /etc/config
";

const POD_ENV_VAR: &str = "kind: Pod
apiVersion: v1
metadata:
  name: pod-env-var
spec:
  containers:
    - name: env-var-configmap
      image: http-server
      envFrom:
        - configMapRef:
            name: example-configmap
";

/// The guide's Secret, verbatim.
const SECRET: &str = "kind: Secret
apiVersion: v1
metadata:
  name: api-authentication-secret
type: Opaque
data:
  key: T1VSX0FQSV9BQ0NFU1NfS0VZCg==
  token: U0VDUkVUXzd0NDgzNjM3OGVyd2RzZXIzNAo=
";

const POD_USING_SECRET: &str = "kind: Pod
apiVersion: v1
metadata:
  name: pod-using-secret
spec:
  volumes:
    - name: api-secret-volume
      secret:
        secretName: api-authentication-secret
  containers:
    - name: container-secret
      image: http-server
      volumeMounts:
        - name: api-secret-volume
          mountPath: /etc/secret
";

fn ready(server: &Server, pod: &str) {
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{pod}"),
        "--timeout=60s",
    ]);
}

fn exec(server: &Server, pod: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend(command);
    server.kubectl_ok(&args)
}

/// Every file under `dir` whose bytes contain `needle` (but the test's own
/// manifests).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if entry.file_name() != "manifests" {
                    pending.push(path);
                }
            } else if kind.is_file()
                && let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn the_guides_config_map_is_a_volume_that_follows_edits() {
    let server = Server::start();
    let cm = server.manifest("configmap.yaml", CONFIG_MAP);
    let pod = server.manifest("pod.yaml", POD_USING_CONFIGMAP);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &cm]),
        "configmap/example-configmap created\n"
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    ready(&server, "pod-using-configmap");
    assert_eq!(
        exec(&server, "pod-using-configmap", &["ls", "/etc/config"]),
        "database\ndatabase_uri\nkeys\n"
    );
    assert_eq!(
        exec(
            &server,
            "pod-using-configmap",
            &["sh", "-c", "cat /etc/config/*"]
        ),
        "mongodbmongodb://localhost:27017image.public.key=771\nrsa.public.key=42\n"
    );
    // The files are the ConfigMap's: containers cannot write them.
    let write = server.kubectl(&[
        "exec",
        "pod-using-configmap",
        "--",
        "sh",
        "-c",
        "echo x > /etc/config/database",
    ]);
    assert!(!write.status.success(), "a configMap volume is read-only");

    let table = server.kubectl_ok(&["get", "configmap", "example-configmap"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    assert_eq!(
        lines[1].split_whitespace().take(2).collect::<Vec<_>>(),
        ["example-configmap", "3"]
    );

    // An edit reaches the mounted file, all keys at once.
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "example-configmap",
        "--type=merge",
        "-p",
        r#"{"data":{"database":"postgres","database_uri":"postgres://localhost:5432"}}"#,
    ]);
    let mut seen = String::new();
    server.wait_for(Duration::from_secs(20), || {
        seen = exec(
            &server,
            "pod-using-configmap",
            &["cat", "/etc/config/database", "/etc/config/database_uri"],
        );
        seen != "mongodbmongodb://localhost:27017"
    });
    assert_eq!(seen, "postgrespostgres://localhost:5432");
    // A key removed from the ConfigMap leaves the volume.
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "example-configmap",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/keys"}]"#,
    ]);
    server.wait_for(Duration::from_secs(20), || {
        exec(&server, "pod-using-configmap", &["ls", "/etc/config"]) == "database\ndatabase_uri\n"
    });
}

#[test]
fn the_guides_env_from_config_map_and_a_late_config_map() {
    let server = Server::start();
    // The pod first: it waits for its ConfigMap, as in Kubernetes.
    let pod = server.manifest("pod-env-var.yaml", POD_ENV_VAR);
    server.kubectl_ok(&["apply", "-f", &pod]);
    let mut reason = String::new();
    server.wait_for(Duration::from_secs(20), || {
        let p = server.json(&["get", "pod", "pod-env-var"]);
        reason = text(&p, "/status/containerStatuses/0/state/waiting/reason").to_string();
        !reason.is_empty()
    });
    assert_eq!(reason, "CreateContainerConfigError");
    let p = server.json(&["get", "pod", "pod-env-var"]);
    assert_eq!(
        text(&p, "/status/containerStatuses/0/state/waiting/message"),
        "configmap \"example-configmap\" not found"
    );
    let status = server.kubectl_ok(&["get", "pod", "pod-env-var", "--no-headers"]);
    assert!(status.contains("CreateContainerConfigError"), "{status}");

    let cm = server.manifest("configmap.yaml", CONFIG_MAP);
    server.kubectl_ok(&["apply", "-f", &cm]);
    ready(&server, "pod-env-var");
    let env = exec(&server, "pod-env-var", &["env"]);
    let lines: Vec<&str> = env.lines().collect();
    for expected in [
        "database=mongodb",
        "database_uri=mongodb://localhost:27017",
        "keys=image.public.key=771",
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1",
    ] {
        assert!(lines.contains(&expected), "{expected} in:\n{env}");
    }
}

#[test]
fn the_guides_secret_is_a_memory_volume_and_encrypted_at_rest() {
    let mut server = Server::start();
    let secret = server.manifest("secret.yaml", SECRET);
    let pod = server.manifest("pod-using-secret.yaml", POD_USING_SECRET);
    server.kubectl_ok(&["apply", "-f", &secret]);
    server.kubectl_ok(&["apply", "-f", &pod]);
    ready(&server, "pod-using-secret");
    assert_eq!(
        exec(&server, "pod-using-secret", &["ls", "/etc/secret"]),
        "key\ntoken\n"
    );
    assert_eq!(
        exec(&server, "pod-using-secret", &["cat", "/etc/secret/key"]),
        "OUR_API_ACCESS_KEY\n"
    );
    assert_eq!(
        exec(&server, "pod-using-secret", &["cat", "/etc/secret/token"]),
        "SECRET_7t4836378erwdser34\n"
    );
    // The API answers as Kubernetes does: base64 data.
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "secret",
            "api-authentication-secret",
            "-o",
            "jsonpath={.data.key}"
        ]),
        "T1VSX0FQSV9BQ0NFU1NfS0VZCg=="
    );
    let table = server.kubectl_ok(&["get", "secrets"]);
    let row = server::table_row(&table, "api-authentication-secret");
    assert_eq!(&row[..3], ["api-authentication-secret", "Opaque", "2"]);
    // kubectl's own way, with stringData-like literals.
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db-pass",
        "--from-literal=password=hunter2-plaintext",
    ]);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "secret",
            "db-pass",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMi1wbGFpbnRleHQ="
    );

    // Nothing on disk holds a value, in plain text or base64: not the
    // store (objects, log, kubectl's last-applied annotation), not the pod.
    for needle in [
        "OUR_API_ACCESS_KEY",
        "T1VSX0FQSV9BQ0NFU1NfS0VZ",
        "SECRET_7t4836378erwdser34",
        "hunter2-plaintext",
        "aHVudGVyMi1wbGFpbnRleHQ",
    ] {
        let found = files_containing(server.data_dir(), needle.as_bytes());
        assert!(found.is_empty(), "{needle} is on disk in {found:?}");
    }
    // The mounted files are in memory.
    let memory = wasmkube::kubelet::memory_dir(server.data_dir()).expect("a tmpfs");
    assert!(memory.starts_with("/dev/shm"));
    assert_eq!(
        files_containing(&memory, b"OUR_API_ACCESS_KEY").len(),
        1,
        "the key file of the volume"
    );

    // A kill and a restart: the Secret is still readable, the volume back.
    server.kill_9();
    server.restart(true);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "secret",
            "db-pass",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMi1wbGFpbnRleHQ="
    );
    ready(&server, "pod-using-secret");
    let mut key = String::new();
    server.wait_for(Duration::from_secs(30), || {
        let out = server.kubectl(&["exec", "pod-using-secret", "--", "cat", "/etc/secret/key"]);
        key = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    assert_eq!(key, "OUR_API_ACCESS_KEY\n");

    // Deleting the pod removes its memory-backed files.
    server.kubectl_ok(&["delete", "pod", "pod-using-secret", "--wait=true"]);
    assert!(files_containing(&memory, b"OUR_API_ACCESS_KEY").is_empty());
}

#[test]
fn bad_keys_and_secret_types_are_refused_clearly() {
    let server = Server::start();
    let bad = server.manifest(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  ../x: escape\n",
    );
    let out = server.kubectl(&["apply", "-f", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl lists each of the two causes.
    assert!(err.contains(r#"The ConfigMap "bad" is invalid:"#), "{err}");
    assert!(
        err.contains(r#"* data[../x]: Invalid value: "../x": a valid config key must consist of alphanumeric characters"#),
        "{err}"
    );
    assert!(
        err.contains(r#"* data[../x]: Invalid value: "../x": must not start with '..'"#),
        "{err}"
    );
    let tls = server.manifest(
        "tls.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: t\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: x\n",
    );
    let out = server.kubectl(&["apply", "-f", &tls]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"Secret "t" is invalid: data[tls.key]: Required value"#),
        "{err}"
    );
    let not_base64 = server.manifest(
        "b64.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\ndata:\n  k: not*base64\n",
    );
    let out = server.kubectl(&["apply", "-f", &not_base64]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Secret in version \"v1\" cannot be handled as a Secret"),
        "{err}"
    );
    // A pod's items cannot point out of the volume.
    let pod = server.manifest(
        "escape.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  volumes:\n  - name: v\n    configMap:\n      name: c\n      items:\n      - {key: a, path: ../../etc/passwd}\n  containers:\n  - name: c\n    image: toolbox\n",
    );
    let out = server.kubectl(&["apply", "-f", &pod]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.volumes[0].configMap.items[0].path: Invalid value: "../../etc/passwd": must not contain '..'"#),
        "{err}"
    );
}

const DOWNWARD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: downward
  labels: {app: shop, tier: front}
  annotations: {build: \"42\"}
spec:
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
      - path: annotations
        fieldRef: {fieldPath: metadata.annotations}
      - path: mem
        resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}
  - name: all-in-one
    projected:
      sources:
      - secret:
          name: api-authentication-secret
          items: [{key: token, path: creds/token}]
      - configMap:
          name: example-configmap
          items: [{key: database, path: db}]
      - downwardAPI:
          items: [{path: name, fieldRef: {fieldPath: metadata.name}}]
  - name: scratch
    emptyDir: {}
  containers:
  - name: c
    image: toolbox
    command: [sh, -c, 'echo $(MY_IP) > /scratch/ip; sleep 3600']
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MY_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: CPU_MILLIS
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
    - name: DB
      valueFrom: {configMapKeyRef: {name: example-configmap, key: database}}
    resources:
      limits: {memory: 64Mi, cpu: 250m}
    volumeMounts:
    - {name: podinfo, mountPath: /etc/podinfo}
    - {name: all-in-one, mountPath: /projected}
    - {name: scratch, mountPath: /scratch, subPathExpr: $(POD_NAME)}
";

#[test]
fn downward_api_and_projected_volumes_and_env() {
    let server = Server::start();
    for (name, text) in [
        ("cm.yaml", CONFIG_MAP),
        ("secret.yaml", SECRET),
        ("downward.yaml", DOWNWARD),
    ] {
        let file = server.manifest(name, text);
        server.kubectl_ok(&["apply", "-f", &file]);
    }
    ready(&server, "downward");
    let cat = |path: &str| exec(&server, "downward", &["cat", path]);
    assert_eq!(cat("/etc/podinfo/labels"), "app=\"shop\"\ntier=\"front\"");
    assert!(
        cat("/etc/podinfo/annotations").contains("build=\"42\""),
        "{}",
        cat("/etc/podinfo/annotations")
    );
    assert_eq!(cat("/etc/podinfo/mem"), "64");
    assert_eq!(cat("/projected/creds/token"), "SECRET_7t4836378erwdser34\n");
    assert_eq!(cat("/projected/db"), "mongodb");
    assert_eq!(cat("/projected/name"), "downward");
    let env = exec(&server, "downward", &["env"]);
    let pod = server.json(&["get", "pod", "downward"]);
    let ip = text(&pod, "/status/podIP");
    assert!(!ip.is_empty());
    for expected in [
        format!("MY_IP={ip}"),
        "CPU_MILLIS=250".to_string(),
        "DB=mongodb".to_string(),
        "POD_NAME=downward".to_string(),
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} in:\n{env}");
    }
    // subPathExpr: the emptyDir's `downward` directory is /scratch.
    assert_eq!(cat("/scratch/ip"), format!("{ip}\n"));
    let dir = server
        .data_dir()
        .join("pods")
        .join(text(&pod, "/metadata/uid"))
        .join("volumes/scratch/downward/ip");
    assert_eq!(std::fs::read_to_string(&dir).unwrap(), format!("{ip}\n"));
    // A new label reaches the labels file.
    server.kubectl_ok(&["label", "pod", "downward", "tier=back", "--overwrite"]);
    server.wait_for(Duration::from_secs(20), || {
        cat("/etc/podinfo/labels") == "app=\"shop\"\ntier=\"back\""
    });
}
