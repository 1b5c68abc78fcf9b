//! The runtime alone: a pod of two WebAssembly containers sharing an
//! emptyDir, run to completion under a restart policy, without an API
//! server, a store or Kubernetes types.
//!
//!     cargo run -p wasmkube-runtime --example run_pod

use wasmkube_runtime::{
    Backoff, ContainerSpec, Mount, PodRunner, PodSpec, RestartPolicy, Runtime, RuntimeConfig,
    SandboxSpec, VolumeSource, VolumeSpec, builtin, logs,
};

/// A `toolbox` container running `script` with the volume `shared` at
/// `/shared`.
fn shell(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "toolbox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        mounts: vec![Mount {
            volume: "shared".into(),
            mount_path: "/shared".into(),
            read_only: false,
            sub_path: None,
        }],
        ..ContainerSpec::default()
    }
}

/// Runs the pod; returns the reader's log lines.
pub async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    // Images, compiled code and the pod's files live in the data directory.
    let dir = tempfile::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig::new(dir.path()))?;
    builtin::seed(runtime.images())?;
    let spec = PodSpec {
        sandbox: SandboxSpec {
            uid: "run-pod-example".into(),
            name: "notes".into(),
            hostname: None,
            namespace: "default".into(),
            volumes: vec![VolumeSpec {
                name: "shared".into(),
                source: VolumeSource::EmptyDir,
            }],
            ip: None,
            share_process_namespace: false,
        },
        init_containers: vec![],
        containers: vec![
            shell("writer", "echo written by $(hostname) > /shared/note"),
            shell(
                "reader",
                "while [ ! -f /shared/note ]; do sleep 0.01; done; cat /shared/note",
            ),
        ],
        restart_policy: RestartPolicy::Never,
        backoff: Backoff::default(),
    };
    let mut pod = PodRunner::start(&runtime, spec)?;
    let status = pod.wait().await;
    let mut lines = Vec::new();
    for container in &status.containers {
        let exit = container.terminated().map(|e| e.exit_code);
        println!("{}: exit code {exit:?}", container.name);
        if container.name == "reader"
            && let Some(log) = &container.log_path
        {
            lines = logs::read_log(log)?
                .into_iter()
                .map(|r| r.content)
                .collect();
        }
    }
    println!("the reader read: {lines:?}");
    runtime.shutdown().await;
    Ok(lines)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}
