//! wasmkube as a system service: the unit in `dist/systemd` passes
//! systemd's own checks, and `serve` speaks the readiness protocol its
//! `Type=notify` relies on, logging plain text (or JSON) when its stderr
//! is a file or the journal.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The repository's unit, its `ExecStart` pointing at the binary under
/// test (systemd checks that the program exists), written into `dir`.
fn unit_in(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("dist/systemd/wasmkube.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/wasmkube serve"));
    let path = dir.join("wasmkube.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/wasmkube", env!("CARGO_BIN_EXE_wasmkube")),
    )
    .unwrap();
    path
}

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (scripts/setup-service-tools.sh installs it)")
}

#[test]
fn the_unit_file_passes_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_in(dir.path());
    let verified = systemd_analyze(&["verify"], &unit);
    // verify warns (on stderr, still succeeding) about what it ignores.
    assert!(
        verified.status.success() && verified.stdout.is_empty() && verified.stderr.is_empty(),
        "{verified:?}"
    );
    // The hardening, as systemd rates it (0 is the most locked down, 10
    // the least; an unhardened service rates 9.6).
    let security = systemd_analyze(&["security", "--offline=true", "--no-pager"], &unit);
    let text = String::from_utf8_lossy(&security.stdout);
    let level: f64 = text
        .split("Overall exposure level for wasmkube.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {security:?}"));
    assert!(level <= 3.0, "exposure {level}: {text}");
}

/// `wasmkube serve` on a free port with its own data directory, told to
/// notify `socket`, its stderr a pipe (as a file or the journal would be).
fn serve(data: &Path, socket: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("NOTIFY_SOCKET", socket)
        .env("WASMKUBE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The next state the server sent to the service manager.
fn next_state(socket: &UnixDatagram) -> String {
    let mut buf = [0; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("the server notifies within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// SIGTERM, as `systemctl stop` sends; the server's log once it is gone.
fn stop(child: Child, socket: &UnixDatagram) -> String {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = next_state(socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn listening(dir: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    socket
}

#[test]
fn serve_tells_the_service_manager_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket = listening(dir.path());
    let data = dir.path().join("data");
    let child = serve(&data, &dir.path().join("notify"), &[]);
    let ready = next_state(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains("STATUS=Serving the Kubernetes API on https://127.0.0.1:"),
        "{ready:?}"
    );
    // Ready means usable: the kubeconfig is written and the API answers.
    let readyz = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(data.join("kubeconfig"))
        .args(["get", "--raw", "/readyz"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&readyz.stdout), "ok", "{readyz:?}");
    let log = stop(child, &socket);
    // Not a terminal: no colour codes.
    assert!(
        log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("serving the Kubernetes API on")),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}

#[test]
fn logs_can_be_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let socket = listening(dir.path());
    let child = serve(
        &dir.path().join("data"),
        &dir.path().join("notify"),
        &["--log-format", "json"],
    );
    assert!(next_state(&socket).contains("READY=1"));
    let log = stop(child, &socket);
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!records.is_empty(), "{log}");
    for record in &records {
        assert!(
            record["level"].is_string() && record["fields"].is_object(),
            "{record}"
        );
    }
    assert!(
        records.iter().any(|r| r["level"] == "INFO"
            && r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serving the Kubernetes API on"))),
        "{log}"
    );
}

#[test]
fn serve_takes_its_flags_from_a_config_file_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let socket = listening(dir.path());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "# as k3s's config.yaml: flags by their long names\n\
         node-name: edge-1\n\
         max-pods: 7\n\
         metric-resolution: 0s\n\
         log-format: json\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let child = serve(
        &data,
        &dir.path().join("notify"),
        &["--config", config.to_str().unwrap(), "--max-pods", "9"],
    );
    assert!(next_state(&socket).contains("READY=1"));
    let capacity = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(data.join("kubeconfig"))
        .args([
            "get",
            "node",
            "edge-1",
            "-o",
            "jsonpath={.status.capacity.pods}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&capacity.stdout),
        "9",
        "the file named the node; the command line's --max-pods won: {capacity:?}"
    );
    let log = stop(child, &socket);
    assert!(
        !log.is_empty()
            && log
                .lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "the file's log-format: {log}"
    );

    // A key that is no flag stops the server before it starts, naming it.
    std::fs::write(&config, "max-podz: 3\n").unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("unknown flag \"max-podz\"") && stderr.contains("config.yaml"),
        "{stderr}"
    );
}
