//! The binary for 64-bit ARM boards: cross-built from Debian's packages
//! (`scripts/build-arm64.sh`, which installs them) and run on this machine
//! under `qemu-aarch64` user emulation, it serves the API and runs the
//! guide's first pod. Cranelift then makes aarch64 code for the guest, so
//! the whole stack runs as on a board.

mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use server::{Confinement, Server};

/// The guide's first pod (`pod.yaml`), with only `image:` changed.
const FIRST_POD: &str = "\
kind: Pod
apiVersion: v1
metadata:
  name: my-first-pod
spec:
  containers:
  - name: my-first-container
    image: http-server
";

/// ELF's machine number for AArch64.
const EM_AARCH64: u16 = 183;

/// Builds the unoptimised aarch64 binary (quickest to build) and returns
/// its path.
fn build_arm64_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new(root.join("scripts/build-arm64.sh"))
        .arg("cross-test")
        .current_dir(root)
        .output()
        .expect("running scripts/build-arm64.sh");
    assert!(
        output.status.success(),
        "scripts/build-arm64.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the script prints the binary's path"),
    )
}

/// The machine an ELF executable is for (e_machine, little-endian).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn the_guides_first_pod_runs_on_the_arm64_binary_under_qemu() {
    let binary = build_arm64_binary();
    assert_eq!(elf_machine(&binary), EM_AARCH64, "{}", binary.display());

    let mut server = Server::start_program(
        &["qemu-aarch64".as_ref(), binary.as_os_str()],
        &[],
        Confinement::default(),
    );
    // The server is the emulated binary, not this build's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.pid())).unwrap();
    assert!(
        exe.to_string_lossy().ends_with("qemu-aarch64"),
        "the server runs as {}",
        exe.display()
    );

    let pod = server.manifest("pod.yaml", FIRST_POD);
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &pod]).trim(),
        "pod/my-first-pod created"
    );
    // Compiling the image to aarch64 code, emulated and unoptimised, takes
    // about a minute here.
    server.wait_for(Duration::from_secs(300), || {
        server::text(
            &server.json(&["get", "pod", "my-first-pod"]),
            "/status/phase",
        ) == "Running"
    });
    let pods = server.kubectl_ok(&["get", "pods"]);
    let row = server::table_row(&pods, "my-first-pod");
    assert_eq!(row[1..4], ["1/1", "Running", "0"], "{pods}");

    // Reached through the API server, as the guide does next.
    let (_kubectl, local) = server.port_forward("kubectl", "pod/my-first-pod", &[80], &[80]);
    let (status, body) = server::http_get(local[0]).unwrap();
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(body.contains("Welcome to http-server!"), "{body}");
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl_ok(&["logs", "my-first-pod"])
            .contains("\"GET / HTTP/1.0\" 200")
    });
    server.stop();
}
