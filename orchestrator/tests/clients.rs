//! Client libraries driving every served kind, as their users do: each
//! call's answer must decode into the library's typed models and be what
//! the Kubernetes API server would answer.

mod server;

use std::path::PathBuf;
use std::process::Command;

use server::Server;

/// The venv `scripts/setup-python-client.sh` makes (run here when it is
/// missing, as `.ci/run` runs it).
fn python() -> PathBuf {
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

#[test]
fn the_python_client_drives_every_kind() {
    let python = python();
    let server = Server::start();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(server.kubeconfig())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let calls = report["calls"].as_u64().unwrap();
    let differences = report["differences"].as_array().unwrap();
    println!(
        "python client: {calls} calls, {} answers differ from the API server's",
        differences.len()
    );
    assert!(calls > 250, "{report}");
    assert!(
        differences.is_empty(),
        "{}",
        serde_json::to_string_pretty(differences).unwrap()
    );
}
