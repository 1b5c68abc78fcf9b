//! Scaling a Deployment of `toolbox sleep` pods from 0 to N (default
//! 1,000) replicas until `availableReplicas` is N, against the runtime
//! alone starting N such pods in the same process (no API objects, no
//! controllers, no scheduler): the ratio is what the control plane adds.
//! The RSS each idle pod adds, both ways. Then a rolling update of 100
//! replicas, timed to completion. Neither timed phase follows a mass
//! deletion of pods (see `main`).
//!
//! `cargo bench -p wasmkube --bench deployment_scale [-- N]`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmkube::Cluster;
use wasmkube::registry::{Registry, WriteOptions};
use wasmkube_runtime::*;

/// The process's resident memory, in KiB, once the heap handed back what
/// is free (as `wasmkube serve` does every minute).
fn rss_kib() -> f64 {
    wasmkube_runtime::heap::release_free();
    wasmkube_runtime::heap::resident_kib().expect("VmRSS") as f64
}

/// The runtime alone: N pods of `toolbox sleep 3600` until all run; how
/// long that took and the RSS they added per pod, once asleep.
async fn bare_runtime(n: usize) -> (Duration, f64) {
    let rss_before = rss_kib();
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(runtime.images()).unwrap();
    runtime.prepare_image("toolbox").await.unwrap();
    let spec = |i: usize| PodSpec {
        sandbox: SandboxSpec {
            uid: format!("bare-{i}"),
            name: format!("bare-{i}"),
            hostname: None,
            namespace: "default".into(),
            volumes: vec![],
            ip: None,
            share_process_namespace: false,
        },
        init_containers: vec![],
        containers: vec![ContainerSpec {
            name: "sleep".into(),
            image: "toolbox".into(),
            command: vec!["sleep".into(), "3600".into()],
            ..Default::default()
        }],
        restart_policy: RestartPolicy::Never,
        backoff: Backoff::default(),
    };
    let started = Instant::now();
    let pods: Vec<PodRunner> = (0..n)
        .map(|i| PodRunner::start(&runtime, spec(i)).unwrap())
        .collect();
    loop {
        let running = pods
            .iter()
            .filter(|p| {
                matches!(
                    p.status().containers[0].state,
                    ContainerState::Running { .. }
                )
            })
            .count();
        if running == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_pod = (rss_kib() - rss_before) / n as f64;
    for p in pods {
        let sandbox = p.sandbox().clone();
        p.stop().await;
        sandbox.remove().unwrap();
    }
    (took, per_pod)
}

fn count(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Waits until the deployment's rollout is complete at `replicas`.
async fn until_rolled_out(registry: &Registry, name: &str, replicas: i64) {
    let deployments = registry.resource("apps", "Deployment");
    loop {
        let d = registry.get(&deployments, Some("default"), name).unwrap();
        if count(&d, "/status/observedGeneration") >= count(&d, "/metadata/generation")
            && count(&d, "/status/availableReplicas") == replicas
            && count(&d, "/status/updatedReplicas") == replicas
            && count(&d, "/status/replicas") == replicas
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn set_spec(registry: &Registry, name: &str, change: impl Fn(&mut Value)) {
    let deployments = registry.resource("apps", "Deployment");
    registry
        .update_with(
            &deployments,
            Some("default"),
            name,
            None,
            &WriteOptions::manager("bench"),
            |current| {
                let mut next = current.clone();
                change(&mut next);
                Ok(next)
            },
        )
        .await
        .unwrap();
}

fn main() {
    // The heap as `wasmkube serve` sets it up.
    wasmkube_runtime::heap::set_up_for_server();
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // Room for the surge of the rolling update too (the default, as
        // Kubernetes', is 110 pods per node).
        let cluster = Cluster::builder()
            .data_dir(dir.path())
            .node_name("bench")
            .max_pods(n as u32 + 50)
            .start()
            .await
            .unwrap();
        let registry = cluster.registry().clone();
        let deployments = registry.resource("apps", "Deployment");
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "sleepers"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleepers"}},
                "template": {"metadata": {"labels": {"app": "sleepers"}},
                    "spec": {"containers": [{"name": "sleep", "image": "toolbox",
                        "command": ["sleep", "3600"]}]}}}});
        registry
            .create(&deployments, Some("default"), deployment, &WriteOptions::manager("bench"))
            .await
            .unwrap();
        // One pod first, so compiling the image is not measured.
        until_rolled_out(&registry, "sleepers", 1).await;
        set_spec(&registry, "sleepers", |d| d["spec"]["replicas"] = json!(0)).await;
        until_rolled_out(&registry, "sleepers", 0).await;

        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss_before = rss_kib();
        let started = Instant::now();
        let revision = registry.store().revision();
        set_spec(&registry, "sleepers", |d| d["spec"]["replicas"] = json!(n)).await;
        until_rolled_out(&registry, "sleepers", n as i64).await;
        let scaled = started.elapsed();
        let writes = registry.store().revision() - revision;
        // Idle: probes, statuses and events of the start are over.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let server_per_pod = (rss_kib() - rss_before) / n as f64;
        // The baseline runs now, not first: removing its 1,000 pods makes
        // ext4 slow to allocate inodes for a while (it checks each recently
        // freed one), which would fall on whichever phase came next.
        let (bare, bare_per_pod) = bare_runtime(n).await;
        println!("deployment_scale: {n} replicas of toolbox sleep");
        println!(
            "  bare runtime, {n} pods running:           {:>6.2} s ({:.0} pods/s)",
            bare.as_secs_f64(),
            n as f64 / bare.as_secs_f64()
        );
        println!(
            "  Deployment 0 -> {n}, availableReplicas {n}: {:>6.2} s ({:.0} pods/s) = {:.1}x the bare runtime (target <= 3 s)",
            scaled.as_secs_f64(),
            n as f64 / scaled.as_secs_f64(),
            scaled.as_secs_f64() / bare.as_secs_f64()
        );
        println!(
            "  store writes meanwhile: {writes} ({:.1} per pod)",
            writes as f64 / n as f64
        );
        println!(
            "  RSS per idle pod: {server_per_pod:.0} KiB through the server (target <= 256), \
             {bare_per_pod:.0} KiB the runtime alone"
        );

        // Down to 100, then a rolling update of those 100.
        set_spec(&registry, "sleepers", |d| d["spec"]["replicas"] = json!(100)).await;
        until_rolled_out(&registry, "sleepers", 100).await;
        let started = Instant::now();
        set_spec(&registry, "sleepers", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "ROUND", "value": "2"}]);
        })
        .await;
        until_rolled_out(&registry, "sleepers", 100).await;
        println!(
            "  rolling update of 100 replicas (25% surge, 25% unavailable): {:.2} s",
            started.elapsed().as_secs_f64()
        );
        cluster.shutdown().await;
    });
}
