//! Runs `wasmkube serve` for a test and drives it with the real kubectl.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod pty;

/// A server on a free loopback port with its own data directory.
pub struct Server {
    child: Option<Child>,
    /// The command that runs `wasmkube`: this build's binary, or another
    /// through an emulator.
    program: Vec<std::ffi::OsString>,
    dir: tempfile::TempDir,
    /// Scratch space on the host outside the data directory, for hostPath
    /// volumes (pods may not mount the data directory).
    host: tempfile::TempDir,
    node: String,
    /// More `serve` flags.
    extra: Vec<String>,
    /// What the server's process is confined to.
    confinement: Confinement,
}

/// Limits a test puts on the server's process.
#[derive(Default, Clone)]
pub struct Confinement {
    /// Its open file limit (soft and hard).
    pub open_files: Option<u64>,
    /// A cgroup directory (v1 or v2) it joins before it starts.
    pub cgroup: Option<PathBuf>,
}

impl Confinement {
    /// Sets `command` up to start confined.
    fn apply(&self, command: &mut Command) {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;
        let open_files = self.open_files;
        // Made before the fork: the child may not allocate.
        let procs = self.cgroup.as_ref().map(|dir| {
            std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap()
        });
        // SAFETY: between fork and exec the closure only makes
        // async-signal-safe calls (setrlimit, open, write, close) on memory
        // prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                let fail = || Err(std::io::Error::last_os_error());
                if let Some(limit) = open_files {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return fail();
                    }
                }
                if let Some(procs) = &procs {
                    // Writing 0 moves the writer: this process, and what it
                    // becomes and starts.
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return fail();
                    }
                    let written = libc::write(fd, b"0\n".as_ptr().cast(), 2);
                    libc::close(fd);
                    if written != 2 {
                        return fail();
                    }
                }
                Ok(())
            });
        }
    }
}

/// A loopback port nobody listens on right now (the kernel's pick,
/// released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The directory of the kubectl on PATH; the tests fail without one.
pub fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("kubectl");
        if candidate.is_file() {
            let real = std::fs::canonicalize(&candidate).unwrap_or(candidate);
            return real.parent().unwrap().to_path_buf();
        }
    }
    panic!("kubectl is not on PATH: the end-to-end tests need the real kubectl");
}

/// The official Python client's interpreter: the venv
/// `scripts/setup-python-client.sh` makes (run here when it is missing, as
/// `.ci/run` runs it).
pub fn python_client() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/python-client/bin/python");
    if !python.exists() {
        let status = Command::new(root.join("scripts/setup-python-client.sh"))
            .status()
            .expect("the Python client's setup script runs");
        assert!(status.success(), "scripts/setup-python-client.sh failed");
    }
    python
}

/// Runs `tests/clients/<script>` with the official Python client, the
/// kubeconfig of `server` and `args`: the one JSON line it prints, once it
/// has succeeded.
pub fn run_python(script: &str, server: &Server, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new(python_client())
        .arg(script)
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// Reads lines from `source` until `enough` holds for what was read or
/// `limit` passes.
pub fn read_lines_until(
    source: impl Read + Send + 'static,
    limit: Duration,
    enough: impl Fn(&str) -> bool,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + limit;
    while !enough(&seen) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    seen
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server run with more `serve` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::start_confined(extra, Confinement::default())
    }

    /// A server run with more `serve` flags and confined as asked.
    pub fn start_confined(extra: &[&str], confinement: Confinement) -> Server {
        Server::start_program(
            &[env!("CARGO_BIN_EXE_wasmkube").as_ref()],
            extra,
            confinement,
        )
    }

    /// A server run by `program` (a `wasmkube` binary and what runs it, as
    /// `[qemu-aarch64, PATH]`), with more `serve` flags, confined as asked.
    pub fn start_program(
        program: &[&std::ffi::OsStr],
        extra: &[&str],
        confinement: Confinement,
    ) -> Server {
        kubectl_dir();
        let mut server = Server {
            child: None,
            program: program.iter().map(|p| p.to_os_string()).collect(),
            dir: tempfile::tempdir().unwrap(),
            host: tempfile::tempdir().unwrap(),
            node: "test-node".into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            confinement,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.program[0]);
        command.args(&self.program[1..]);
        self.confinement.apply(&mut command);
        let mut child = command
            .arg("--data-dir")
            .arg(self.dir.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--restart-backoff",
                "200ms",
                "--node-name",
                &self.node,
                // Tests stay on loopback.
                "--node-port-address",
                "127.0.0.1",
            ])
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = read_lines_until(stdout, Duration::from_secs(60), |s| {
            s.contains("kubectl get nodes")
        });
        assert!(
            seen.contains("serving the Kubernetes API on https://127.0.0.1:"),
            "the server did not start: {seen}"
        );
        self.child = Some(child);
    }

    /// A server shared by the tests of one test binary that run at the same
    /// time, set up once by `setup`; it stops when the last of them ends
    /// (a later test starts a fresh one).
    pub fn shared(setup: impl FnOnce(&Server)) -> std::sync::Arc<Server> {
        Server::shared_with(&[], setup)
    }

    /// [`Server::shared`], run with more `serve` flags.
    pub fn shared_with(extra: &[&str], setup: impl FnOnce(&Server)) -> std::sync::Arc<Server> {
        use std::sync::{Arc, Mutex, Weak};
        static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Server::start_with(extra));
        setup(&server);
        *shared = Arc::downgrade(&server);
        server
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// The server's resident memory, from /proc, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS")
    }

    /// A memory figure of the server's /proc/PID/status (`VmRSS`,
    /// `RssAnon`, `VmHWM`…), in KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    /// What a client needs from the kubeconfig: the API's address, the CA
    /// (PEM) and the bearer token.
    pub fn client_config(&self) -> (std::net::SocketAddr, String, String) {
        use base64::Engine;
        let config = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let field = |name: &str| {
            config
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{name} in the kubeconfig"))
        };
        let server = field("server:");
        let address = server
            .trim_start_matches("https://")
            .parse()
            .expect("the API's address");
        let ca = base64::engine::general_purpose::STANDARD
            .decode(field("certificate-authority-data:"))
            .unwrap();
        (address, String::from_utf8(ca).unwrap(), field("token:"))
    }

    pub fn node_name(&self) -> &str {
        &self.node
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Writes a manifest into the data directory's scratch space.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let dir = self.dir.path().join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        self.kubectl_binary_command(Path::new("kubectl"), args)
    }

    /// A command of the kubectl at `binary` (one of the per-version ones).
    pub fn kubectl_binary_command(&self, binary: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command.env("KUBECONFIG", self.kubeconfig()).args(args);
        command
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and returns its stdout, failing the test on an error.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_binary_ok(Path::new("kubectl"), args)
    }

    /// Runs the kubectl at `binary` and returns its stdout, failing the
    /// test on an error.
    pub fn kubectl_binary_ok(&self, binary: &Path, args: &[&str]) -> String {
        let out = self
            .kubectl_binary_command(binary, args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{} {} failed: {}{}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f FILE`, then waits (up to a minute) for `pod` to
    /// be Ready.
    pub fn apply_ready(&self, file: &str, pod: &str) {
        self.kubectl_ok(&["apply", "-f", file]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ]);
    }

    /// `kubectl ARGS -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).unwrap()
    }

    /// The `items` of `kubectl ARGS -o json`.
    pub fn items(&self, args: &[&str]) -> Vec<serde_json::Value> {
        self.json(args)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `done` until it holds; fails the test after `limit`.
    pub fn wait_for(&self, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "condition not reached within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM and wait (graceful), or nothing if already gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory (after stopping
    /// it gracefully unless `already_stopped`).
    pub fn restart(&mut self, already_stopped: bool) {
        if !already_stopped {
            self.stop();
        }
        self.spawn();
    }

    /// `kubectl port-forward TARGET :P1 :P2 …` with `kubectl`; the process and
    /// the local ports it chose for the pod ports it reports, in order.
    pub fn port_forward(
        &self,
        kubectl: &str,
        target: &str,
        remote: &[u16],
        pod_ports: &[u16],
    ) -> (KillOnDrop, Vec<u16>) {
        let mut args = vec!["port-forward".to_string(), target.to_string()];
        args.extend(remote.iter().map(|p| format!(":{p}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self
            .kubectl_binary_command(std::path::Path::new(kubectl), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // kubectl writes a line per connection: keep reading for as long as it
        // runs, or it dies of a broken pipe.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut seen = String::new();
        while seen.matches("Forwarding from 127.0.0.1:").count() < remote.len() {
            let line = received
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("kubectl did not start forwarding: {seen:?}"));
            seen.push_str(&line);
            seen.push('\n');
        }
        let local = pod_ports
            .iter()
            .map(|remote| {
                seen.lines()
                    .filter_map(|l| l.strip_prefix("Forwarding from 127.0.0.1:"))
                    .find_map(|l| {
                        let (local, to) = l.split_once(" -> ")?;
                        (to.trim() == remote.to_string()).then(|| local.parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("no local port for {remote} in {seen:?}"))
            })
            .collect();
        (KillOnDrop(child), local)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A directory of the host's for `hostPath` volumes, outside the data
    /// directory.
    pub fn host_dir(&self) -> &Path {
        self.host.path()
    }
}

/// The string at `pointer`, or "".
pub fn text<'a>(object: &'a serde_json::Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_9();
        // A kill leaves the memory-backed volumes (Secrets) behind; the
        // next start would clear them, but there is none.
        if let Some(dir) = wasmkube::kubelet::memory_dir(self.dir.path()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The cells of the row of a kubectl table whose first column is `name`.
pub fn table_row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .collect()
}

/// Stops a kubectl left running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` through a local port; the status line and the body.
pub fn http_get(port: u16) -> std::io::Result<(String, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}
