//! Scaling a Deployment of `toolbox sleep` pods from 0 to N (default
//! 1,000) replicas until `availableReplicas` is N, against the runtime
//! alone starting N such pods (no API objects, no controllers, no
//! scheduler) in a child process, while the server's pods idle: the ratio
//! is what the control plane adds. The RSS each idle pod adds, both ways.
//! Then a rolling update of 100
//! replicas, timed to completion. Neither timed phase follows a mass
//! deletion of pods (see `main`).
//!
//! `cargo bench -p wasmkube --bench deployment_scale [-- N [M…]]`: each
//! size in turn, the later ones also as a multiple of the first's time.
//! With `DEPLOYMENT_SCALE_EXIT_IDLE` set, the process exits once the first
//! size is idle, so a heap profiler lists what the server holds per pod as
//! leaked. (`heaptrack` sees only what glibc's malloc serves: take out the
//! bench's `HEAP` to use it.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmkube::Cluster;
use wasmkube::registry::{Registry, WriteOptions};
use wasmkube_runtime::*;

/// The server's heap, as `wasmkube serve` has it.
#[global_allocator]
static HEAP: wasmkube_runtime::heap::ServerHeap = wasmkube_runtime::heap::ServerHeap;

/// The process's resident memory, its proportional set size and what its
/// heap has committed, in KiB, once the heap handed back what is free (as
/// `wasmkube serve` does every minute).
fn memory_kib() -> Memory {
    wasmkube_runtime::heap::release_free();
    Memory {
        resident: wasmkube_runtime::heap::resident_kib().expect("VmRSS") as f64,
        proportional: wasmkube_runtime::heap::proportional_kib().expect("Pss") as f64,
        heap: wasmkube_runtime::heap::committed_kib() as f64,
    }
}

/// Memory in KiB: resident (RSS); proportional (PSS: a page several
/// mappings share counted once, as it is held: every pod maps the pages of
/// its image's initial memory it reads from the one compiled file); and
/// what the heap has committed (live objects and free room in its pages).
#[derive(Clone, Copy)]
struct Memory {
    resident: f64,
    proportional: f64,
    heap: f64,
}

impl Memory {
    /// What each of `n` pods added since `before`.
    fn per_pod_since(self, before: Memory, n: usize) -> Memory {
        let per_pod = |now: f64, then: f64| (now - then) / n as f64;
        Memory {
            resident: per_pod(self.resident, before.resident),
            proportional: per_pod(self.proportional, before.proportional),
            heap: per_pod(self.heap, before.heap),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {:.0} KiB, PSS {:.0} KiB (heap {:.0} KiB)",
            self.resident, self.proportional, self.heap
        )
    }
}

/// The runtime alone: N pods of `toolbox sleep 3600` until all run; how
/// long that took and the RSS they added per pod, once asleep.
async fn bare_runtime(n: usize) -> (Duration, Memory) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(runtime.images()).unwrap();
    runtime.prepare_image("toolbox").await.unwrap();
    // What the pods add: the runtime and its loaded image are there before.
    let before = memory_kib();
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
    // Only the pods not seen running yet are looked at again: copying
    // every pod's status each time cost more than starting them at 10,000.
    let mut starting: Vec<&PodRunner> = pods.iter().collect();
    loop {
        starting.retain(|p| {
            !matches!(
                p.status().containers[0].state,
                ContainerState::Running { .. }
            )
        });
        if starting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_pod = memory_kib().per_pod_since(before, n);
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

/// Scales the Deployment from 0 to `n` and back; how long until `n` were
/// available, the store writes meanwhile and the RSS each idle pod added.
async fn scale_up(registry: &Registry, n: usize) -> (Duration, u64, Memory) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = memory_kib();
    let started = Instant::now();
    let revision = registry.store().revision();
    set_spec(registry, "sleepers", |d| d["spec"]["replicas"] = json!(n)).await;
    until_rolled_out(registry, "sleepers", n as i64).await;
    let scaled = started.elapsed();
    let writes = registry.store().revision() - revision;
    // Idle: probes, statuses and events of the start are over, and the
    // store's window of recent changes (the last 10 s) has let go of them,
    // so the caches have trimmed what they share with it (every 2 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    (scaled, writes, memory_kib().per_pod_since(before, n))
}

/// Set in the child process that runs the runtime alone, to the number of
/// pods it starts.
const BARE_PODS: &str = "DEPLOYMENT_SCALE_BARE_PODS";

/// The runtime alone, `n` pods, in a child process of this bench: a
/// process of its own has its own open-file limit (10,000 pods here and
/// 10,000 in the server pass one process's 20,000), and its memory is its
/// pods' only. The server's pods stay idle meanwhile.
fn bare_runtime_in_child(n: usize) -> (Duration, Memory) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(BARE_PODS, n.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running the runtime alone in a child process");
    assert!(output.status.success(), "the runtime alone failed");
    let text = String::from_utf8(output.stdout).unwrap();
    let figures: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse().expect("the child's figures"))
        .collect();
    let [took, resident, proportional, heap] = figures[..] else {
        panic!("the child printed {text:?}");
    };
    (
        Duration::from_secs_f64(took),
        Memory {
            resident,
            proportional,
            heap,
        },
    )
}

/// The child's side of [`bare_runtime_in_child`]: the figures on stdout.
fn bare_runtime_child(n: usize) {
    wasmkube_runtime::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (took, memory) = runtime.block_on(bare_runtime(n));
    println!(
        "{} {} {} {}",
        took.as_secs_f64(),
        memory.resident,
        memory.proportional,
        memory.heap
    );
}

fn main() {
    // The heap as `wasmkube serve` sets it up.
    wasmkube_runtime::heap::set_up_for_server();
    if let Some(n) = std::env::var_os(BARE_PODS) {
        bare_runtime_child(n.to_str().and_then(|n| n.parse().ok()).expect(BARE_PODS));
        return;
    }
    // Each size in turn, in one run (`-- 1000 10000` for the 10x check).
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes.push(1000);
    }
    let largest = sizes.iter().copied().max().unwrap_or(1000);
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
            .max_pods(largest as u32 + 50)
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

        let mut first: Option<(usize, Duration)> = None;
        for (i, &n) in sizes.iter().enumerate() {
            let (scaled, writes, server_per_pod) = scale_up(&registry, n).await;
            println!("deployment_scale: {n} replicas of toolbox sleep");
            print!(
                "  Deployment 0 -> {n}, availableReplicas {n}: {:>6.2} s ({:.0} pods/s)",
                scaled.as_secs_f64(),
                n as f64 / scaled.as_secs_f64(),
            );
            match first {
                Some((m, took)) => println!(
                    " = {:.1}x the time for {m} ({:.1}x the pods)",
                    scaled.as_secs_f64() / took.as_secs_f64(),
                    n as f64 / m as f64
                ),
                None => {
                    println!();
                    first = Some((n, scaled));
                }
            }
            println!(
                "  store writes meanwhile: {writes} ({:.1} per pod)",
                writes as f64 / n as f64
            );
            println!("  memory per idle pod through the server: {server_per_pod} (target: RSS <= 256)");
            if std::env::var_os("DEPLOYMENT_SCALE_EXIT_IDLE").is_some() {
                // For a heap profiler: what the idle server holds shows as
                // never freed.
                std::process::exit(0);
            }
            // The baseline runs last, after the largest size: removing its
            // pods makes ext4 slow to allocate inodes for a while (it checks
            // each recently freed one), which would fall on whichever
            // phase came next.
            let last = i + 1 == sizes.len();
            if last {
                let (bare, bare_per_pod) =
                    tokio::task::spawn_blocking(move || bare_runtime_in_child(n))
                        .await
                        .unwrap();
                println!(
                    "  bare runtime, {n} pods running: {:>6.2} s ({:.0} pods/s); the Deployment took {:.1}x as long",
                    bare.as_secs_f64(),
                    n as f64 / bare.as_secs_f64(),
                    scaled.as_secs_f64() / bare.as_secs_f64()
                );
                println!("  memory per idle pod, the runtime alone: {bare_per_pod}");
            }
            if !last {
                set_spec(&registry, "sleepers", |d| d["spec"]["replicas"] = json!(0)).await;
                until_rolled_out(&registry, "sleepers", 0).await;
            }
        }

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
