//! `wasmkube play` through the real binary: what a user types and sees.

mod server;

use server::free_port;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn data_dir() -> PathBuf {
    // Shared by the tests of this file so the compile cache is warm.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("play-tests")
}

fn manifest(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    f
}

fn play(file: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmkube"));
    cmd.arg("--data-dir")
        .arg(data_dir())
        .arg("play")
        .arg("-f")
        .arg(file)
        .args(extra);
    cmd
}

fn run_to_end(file: &Path) -> Output {
    play(file, &["--restart-backoff", "20ms"]).output().unwrap()
}

/// Runs `play` until its stdout so far satisfies `enough` (or 60 s pass),
/// then sends SIGINT (Ctrl-C) and collects everything it printed.
fn run_until(file: &Path, enough: impl Fn(&str) -> bool) -> (String, String, Option<i32>) {
    use std::io::BufRead;
    let mut child = play(file, &["--restart-backoff", "20ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !enough(&seen) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    // SAFETY: signalling our own child process by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "play took {:?} to stop after Ctrl-C",
        started.elapsed()
    );
    reader.join().unwrap();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    (seen, text(&out.stderr), out.status.code())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn summary_lines_and_exit_status() {
    let f = manifest(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: codes
spec:
  restartPolicy: Never
  containers:
  - name: ok
    image: toolbox
    command: ["sh", "-c", "echo all good"]
  - name: seven
    image: toolbox:latest
    command: ["/bin/sh", "-c", "echo failing >&2; exit 7"]
"#,
    );
    let out = run_to_end(f.path());
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("[codes/ok] all good\n"), "{stdout}");
    assert!(text(&out.stderr).contains("[codes/seven] failing\n"));
    let summary: Vec<&str> = stdout.lines().filter(|l| l.starts_with("pod/")).collect();
    assert_eq!(
        summary,
        [
            "pod/codes container/ok exit=0 reason=Completed",
            "pod/codes container/seven exit=7 reason=Error"
        ]
    );
}

#[test]
fn success_exits_zero_and_several_documents_run_together() {
    let f = manifest(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: first}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: toolbox, command: [echo, one]}
---
apiVersion: v1
kind: Pod
metadata: {name: second}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: c, image: stress, args: [--print, two]}
"#,
    );
    let out = run_to_end(f.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("[first/c] one\n") && stdout.contains("[second/c] two\n"),
        "{stdout}"
    );
    assert!(stdout.contains("pod/first container/c exit=0 reason=Completed"));
    assert!(stdout.contains("pod/second container/c exit=0 reason=Completed"));
}

#[test]
fn oom_is_reported() {
    let f = manifest(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: stress
    args: ["--alloc-mb", "100"]
    resources:
      limits: {memory: 32Mi}
"#,
    );
    let out = run_to_end(f.path());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("pod/hog container/hog exit=137 reason=OOMKilled"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unknown_fields_are_refused_before_anything_runs() {
    let f = manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    comand: [echo, should-not-run]\n",
    );
    let out = run_to_end(f.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("spec.containers[0].comand"), "{stderr}");
    assert!(stderr.contains("unknown field \"comand\""), "{stderr}");
    assert!(
        text(&out.stdout).is_empty(),
        "something ran: {}",
        text(&out.stdout)
    );
}

#[test]
fn invalid_pods_get_kubernetes_style_errors() {
    let f = manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - name: Bad_Name\n    volumeMounts: [{name: missing, mountPath: /x}]\n",
    );
    let out = run_to_end(f.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("Pod \"bad\" is invalid"), "{stderr}");
    assert!(
        stderr.contains("spec.containers[0].image: Required value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.containers[0].volumeMounts[0].name: Not found: \"missing\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.containers[0].name: Invalid value: \"Bad_Name\""),
        "{stderr}"
    );
}

#[test]
fn a_missing_image_is_refused_before_anything_runs() {
    let f = manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: web, image: \"nginx:1.7.9\"}\n  - {name: c, image: toolbox, command: [echo, ran]}\n",
    );
    let out = run_to_end(f.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(
            "pod \"p\" container \"web\": image \"nginx:1.7.9\" is not in the local image store"
        ),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("ran"));
}

#[test]
fn the_guides_adapter_pod_reshapes_the_apps_stats() {
    // The guide's adapter pod, in its spirit: the app writes its own stats
    // (no `top` in WASI), the adapter reshapes them with head, tail and
    // grep -o -E, both over a shared emptyDir.
    let f = manifest(include_str!("../../examples/adapter.yaml"));
    let adapter_lines = |out: &str| {
        out.lines()
            .filter_map(|l| l.strip_prefix("[pod-with-adapter/adapter-container] "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Two full rounds of the adapter's three lines are enough to judge.
    let (stdout, stderr, _) = run_until(f.path(), |out| adapter_lines(out).len() >= 6);
    let lines = adapter_lines(&stdout);
    assert!(
        lines.len() >= 6,
        "adapter printed too little: {stdout}\n{stderr}"
    );
    // Groups of three: the date, the memory figure, the CPU figure.
    let figure = |l: &str, unit: char| {
        l.strip_suffix(unit)
            .is_some_and(|n| n.parse::<u32>().is_ok())
    };
    let group = lines
        .windows(3)
        .find(|w| w[0].contains(" UTC ") && figure(&w[1], 'K') && figure(&w[2], '%'));
    assert!(group.is_some(), "no reshaped group in {lines:?}");
    // Stopped by Ctrl-C: both containers end stopped, summary printed.
    assert!(
        stdout.contains("pod/pod-with-adapter container/app-container exit=143 reason=Error"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pod/pod-with-adapter container/adapter-container exit=143 reason=Error"),
        "{stdout}"
    );
}

/// GET over plain TCP, as curl would; `None` until something answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    (!response.is_empty()).then_some(response)
}

#[test]
fn the_guides_sidecar_pod_serves_the_apps_log() {
    // The guide's sidecar pod with its images changed (alpine -> toolbox,
    // nginx -> http-server) and the sidecar's port published on the host,
    // as `curl 'http://localhost:80/app.txt'` inside the pod would read it.
    let port = free_port();
    let yaml = format!(
        r#"
kind: Pod
apiVersion: v1
metadata:
  name: pod-with-sidecar
spec:
  volumes:
  - name: shared-logs
    emptyDir: {{}}
  containers:
  - name: app-container
    image: toolbox
    command: ["/bin/sh"]
    args: ["-c", "while true; do date >> /var/log/app.txt; sleep
5;done"]
    volumeMounts:
    - name: shared-logs
      mountPath: /var/log
  - name: sidecar-container
    image: http-server
    ports:
    - containerPort: 80
      hostPort: {port}
      hostIP: 127.0.0.1
    volumeMounts:
    - name: shared-logs
      mountPath: /usr/share/nginx/html
"#
    );
    let f = manifest(&yaml);
    let child = play(f.path(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = None;
    while Instant::now() < deadline {
        match http_get(port, "/app.txt") {
            Some(r) if r.starts_with("HTTP/1.1 200") => {
                body = Some(r);
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    // SAFETY: signalling our own child process by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let body = body.unwrap_or_else(|| {
        panic!(
            "the sidecar never served app.txt\n{stdout}\n{}",
            text(&out.stderr)
        )
    });
    let dates = body.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        dates.lines().count() >= 1 && dates.lines().all(|l| l.contains(" UTC ")),
        "{body}"
    );
    // The sidecar logged the request like nginx.
    assert!(
        stdout.contains("[pod-with-sidecar/sidecar-container] 127.0.0.1 - - ["),
        "{stdout}"
    );
    assert!(stdout.contains("\"GET /app.txt HTTP/1.1\" 200"), "{stdout}");
    assert!(
        stdout.contains("pod/pod-with-sidecar container/sidecar-container exit=143 reason=Error"),
        "{stdout}"
    );
}
