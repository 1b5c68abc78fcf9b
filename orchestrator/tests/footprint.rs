//! The edge device's budget: the server and ten pods of images it has
//! never compiled, inside a 256 MB memory cgroup, as on a small board.

mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use server::{Confinement, Server};

/// Ten pods of seven images none of which is compiled yet (a fresh data
/// dir has an empty compile cache), idle once started.
const TEN_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sleep-1}
spec: {containers: [{name: c, image: toolbox, command: [sleep, "3600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1}
spec: {containers: [{name: c, image: http-server}]}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-old}
spec: {containers: [{name: c, image: "echo-hostname:1.0.1"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-new}
spec: {containers: [{name: c, image: "echo-hostname:1.0.2"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec: {containers: [{name: c, image: http-hello}]}
---
apiVersion: v1
kind: Pod
metadata: {name: stress}
spec: {containers: [{name: c, image: stress, args: [--sleep-ms, "3600000"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ambassador}
spec: {containers: [{name: c, image: ambassador, env: [{name: UPSTREAM, value: "web:80"}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: sleep-2}
spec: {containers: [{name: c, image: toolbox, command: [sleep, "3600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2}
spec: {containers: [{name: c, image: http-server}]}
---
apiVersion: v1
kind: Pod
metadata: {name: sleep-3}
spec: {containers: [{name: c, image: toolbox, command: [sleep, "3600"]}]}
"#;

const LIMIT: u64 = 256 << 20;

/// A memory cgroup of its own (v1's memory hierarchy, else v2's unified
/// one), removed when dropped.
struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    fn create(name: &str, limit: u64) -> MemoryCgroup {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|root| {
                std::fs::read_to_string(root.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
            });
        let (root, v2) = match v2 {
            _ if v1.join("memory.limit_in_bytes").exists() => (v1, false),
            Some(root) => {
                // The parent hands the memory controller down.
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
                (root, true)
            }
            None => panic!(
                "this test needs a memory cgroup (v1 at /sys/fs/cgroup/memory or v2 with the \
                 memory controller) it may create as root; neither is here"
            ),
        };
        let dir = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let cgroup = MemoryCgroup { dir, v2 };
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        cgroup.write(file, &limit.to_string());
        cgroup
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The most the group held at once (v2 kernels before 5.19 have no
    /// such figure).
    fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|v| v.trim().parse().ok())
    }

    /// How many processes the kernel killed for the group's limit.
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = self.read(file);
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .unwrap_or_else(|| panic!("no oom_kill count in {file}: {text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The server was stopped first; its last children may take a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

#[test]
fn ten_pods_of_new_images_run_inside_256_mb() {
    let cgroup = MemoryCgroup::create("wasmkube-footprint", LIMIT);
    let server = Server::start_confined(
        &[],
        Confinement {
            cgroup: Some(cgroup.dir.clone()),
            ..Default::default()
        },
    );
    let file = server.manifest("ten.yaml", TEN_PODS);
    server.kubectl_ok(&["apply", "-f", &file]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "--all",
        "--timeout=300s",
    ]);
    // Idle a moment, then read what they cost.
    std::thread::sleep(Duration::from_secs(3));
    let pods = server.items(&["get", "pods"]);
    assert_eq!(pods.len(), 10);
    for pod in &pods {
        let name = &pod["metadata"]["name"];
        assert_eq!(pod["status"]["phase"], "Running", "{name}");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["restartCount"], 0,
            "{name}"
        );
    }
    assert_eq!(cgroup.oom_kills(), 0, "the kernel killed for the limit");
    assert_eq!(server.kubectl_ok(&["get", "--raw", "/readyz"]), "ok");

    let kib = |field| server.memory_kib(field);
    let (rss, anon, peak_rss) = (kib("VmRSS"), kib("RssAnon"), kib("VmHWM"));
    eprintln!(
        "ten pods: server RSS {rss} KiB ({anon} KiB private), its peak {peak_rss} KiB; \
         the cgroup's peak (with page cache and compiling children) {:?} bytes of {LIMIT}",
        cgroup.peak()
    );
    // Compiling seven images happened in children: the server's private
    // memory is its objects, tasks and the guests' own memories (about
    // 30 MiB here; compiling in the server left 46 MiB even with the heap
    // trimmed, 106 MiB without).
    assert!(anon < 40 << 10, "{anon} KiB of private memory");
    drop(server);
}

/// Bytes of every file under `dir`, by path.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), path.metadata().unwrap().len()));
        }
    }
    found
}

/// `serve --container-log-max-size 16Ki`: a container that writes about
/// 110 KB of lines keeps at most its current log file and one rotated
/// one on disk, and `kubectl logs` still ends with its last line.
#[test]
fn a_container_log_rotates_at_the_size_the_flag_sets() {
    let server = Server::start_with(&["--container-log-max-size", "16Ki"]);
    let file = server.manifest(
        "chatty.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: chatty}\nspec:\n  containers:\n  - {name: c, image: toolbox, command: [sh, -c, 'seq 1 20000; sleep 3600']}\n",
    );
    server.apply_ready(&file, "chatty");
    server.wait_for(Duration::from_secs(60), || {
        server.kubectl_ok(&["logs", "chatty", "--tail=1"]).trim() == "20000"
    });
    let logs = server.kubectl_ok(&["logs", "chatty"]);
    let lines: Vec<u64> = logs.lines().map(|l| l.parse().unwrap()).collect();
    // What is left is the end of the output, without a gap.
    assert!(lines[0] > 1, "nothing rotated away: {} lines", lines.len());
    assert!(
        lines.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in what was kept"
    );
    let uid = server.json(&["get", "pod", "chatty"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = server.data_dir().join("pods").join(&uid).join("logs");
    let mut files = files_under(&dir);
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|(path, _)| path.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["c/0.log", "c/0.log.1"]);
    for (path, bytes) in &files {
        assert!(*bytes <= 16 << 10, "{} has {bytes} bytes", path.display());
    }
}
