//! Shared set-up of the runtime tests: one runtime (and compile cache) for
//! the whole test binary, unique pod ids, and small helpers.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wasmkube_runtime::*;

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtime-tests");
        let rt = Runtime::new(RuntimeConfig::new(&dir)).expect("runtime");
        builtin::seed(rt.images()).expect("seeding images");
        rt
    })
}

pub fn uid(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A sandbox spec named `testpod` with these emptyDir volumes.
pub fn sandbox_spec(volumes: &[&str]) -> SandboxSpec {
    SandboxSpec {
        uid: uid("t"),
        name: "testpod".into(),
        hostname: None,
        namespace: "default".into(),
        volumes: volumes
            .iter()
            .map(|v| VolumeSpec {
                name: v.to_string(),
                source: VolumeSource::EmptyDir,
            })
            .collect(),
        ip: None,
        share_process_namespace: false,
    }
}

pub fn sandbox(volumes: &[&str]) -> Sandbox {
    runtime()
        .run_pod_sandbox(sandbox_spec(volumes))
        .expect("sandbox")
}

pub fn sh(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "toolbox".into(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

pub fn stress(name: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "stress".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn mount(volume: &str, path: &str) -> Mount {
    Mount {
        volume: volume.into(),
        mount_path: path.into(),
        read_only: false,
        sub_path: None,
    }
}

/// Runs one instance to its end (with a generous deadlock guard).
pub async fn run(sandbox: &Sandbox, spec: &ContainerSpec) -> (ExitStatus, Vec<String>) {
    let running = sandbox.start_container(spec, 0).await.expect("start");
    let log = running.log_path().to_path_buf();
    let exit = tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .expect("container hung");
    let lines = logs::read_log(&log)
        .expect("log")
        .into_iter()
        .map(|r| r.content)
        .collect();
    (exit, lines)
}

/// A pod at `ip`, in a cluster whose pod network is 10.244.0.0/16 (as the
/// kubelet declares it).
pub fn with_ip(ip: &str) -> Sandbox {
    runtime()
        .cluster_net()
        .set_internal_networks(&[("10.244.0.0".parse().unwrap(), 16)]);
    let mut spec = sandbox_spec(&[]);
    spec.ip = Some(ip.parse().unwrap());
    runtime().run_pod_sandbox(spec).expect("sandbox")
}
