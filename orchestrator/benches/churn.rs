//! An edge device left running under steady churn: a Deployment of
//! `toolbox` pods scaled between 5 and 50 every 20 s, and ConfigMaps
//! created, updated and deleted without pause, for MINUTES (default 30).
//! Every minute: the data dir's size on disk (store, pods' directories,
//! the rest), the Events held and the process's RSS. At the end, RSS with
//! the same 5 pods before and after the churn. The heap is set up as
//! `wasmkube serve` sets it up.
//!
//! Events live five minutes here (the server's default is an hour, as the
//! API server's `--event-ttl`): a run of half an hour then shows where
//! their share levels off; with the default it levels off after an hour.
//!
//! `cargo bench -p wasmkube --bench churn [-- MINUTES]`

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmkube::Cluster;
use wasmkube::patch::PatchKind;
use wasmkube::registry::{DeleteOptions, ListOptions, Registry, WriteOptions};

/// The server's heap, as `wasmkube serve` has it.
#[global_allocator]
static HEAP: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes the files under `path` take on disk (allocated blocks).
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0);
    own + children
}

fn rss_mib() -> f64 {
    wasmkube_runtime::heap::resident_kib().expect("VmRSS") as f64 / 1024.0
}

const MIB: f64 = 1024.0 * 1024.0;

async fn scale(registry: &Registry, replicas: u32) {
    let patch = json!({"spec": {"replicas": replicas}}).to_string();
    registry
        .patch(
            &registry.resource("apps", "Deployment"),
            Some("default"),
            "churn",
            PatchKind::Merge,
            patch.as_bytes(),
            None,
            &WriteOptions::manager("bench"),
        )
        .await
        .unwrap();
}

/// Until the Deployment has `n` available replicas and `n` pods exist.
async fn settled(registry: &Registry, n: usize) {
    let deployments = registry.resource("apps", "Deployment");
    let pods = registry.resource("", "Pod");
    loop {
        let d = registry
            .get(&deployments, Some("default"), "churn")
            .unwrap();
        let available = d
            .pointer("/status/availableReplicas")
            .and_then(Value::as_u64);
        let count = registry
            .list(&pods, Some("default"), &ListOptions::default())
            .unwrap()
            .items
            .len();
        if available == Some(n as u64) && count == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ConfigMaps made, changed and removed until `until`; how many operations.
async fn config_map_churn(registry: Registry, until: Instant) -> u64 {
    let maps = registry.resource("", "ConfigMap");
    let options = WriteOptions::manager("bench");
    let mut ops = 0;
    let mut i = 0u64;
    while Instant::now() < until {
        let name = format!("cm-{}", i % 100);
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"n": i.to_string(), "pad": "x".repeat(512)}});
        registry
            .create(&maps, Some("default"), body, &options)
            .await
            .unwrap();
        let patch = json!({"data": {"n": (i + 1).to_string()}}).to_string();
        registry
            .patch(
                &maps,
                Some("default"),
                &name,
                PatchKind::Merge,
                patch.as_bytes(),
                None,
                &options,
            )
            .await
            .unwrap();
        registry
            .delete(&maps, Some("default"), &name, &DeleteOptions::default())
            .await
            .unwrap();
        ops += 3;
        i += 1;
        // About 60 operations a second: a busy device, not a flood.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ops
}

fn main() {
    // The heap as `wasmkube serve` sets it up, before any thread.
    wasmkube_runtime::heap::set_up_for_server();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let minutes: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("MINUTES"))
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::builder()
        .data_dir(dir.path())
        .node_name("bench")
        .event_ttl(Duration::from_secs(300))
        .start()
        .await
        .unwrap();
    let registry = cluster.registry().clone();
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "churn"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "churn"}},
            "template": {"metadata": {"labels": {"app": "churn"}},
                "spec": {"terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "toolbox",
                    "command": ["sh", "-c", "echo started; sleep 3600"]}]}}}});
    registry
        .create(
            &registry.resource("apps", "Deployment"),
            Some("default"),
            deployment,
            &WriteOptions::manager("bench"),
        )
        .await
        .unwrap();
    settled(&registry, 5).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let rss_before = rss_mib();

    let data = dir.path();
    let events = registry.resource("", "Event");
    let report = |minute: u64| {
        let total = disk_usage(data) as f64 / MIB;
        let store = disk_usage(&data.join("store.redb")) as f64 / MIB;
        let pods = disk_usage(&data.join("pods")) as f64 / MIB;
        let held = registry
            .list(&events, None, &ListOptions::default())
            .unwrap()
            .items
            .len();
        println!(
            "{minute:>6} {total:>10.1} {store:>10.1} {pods:>9.1} {:>9.1} {held:>7} {:>8.1}",
            total - store - pods,
            rss_mib()
        );
    };
    println!("minute  disk(MiB)  store(MiB) pods(MiB) rest(MiB)  events  RSS(MiB)");
    report(0);
    let start = Instant::now();
    let until = start + Duration::from_secs(minutes * 60);
    let maps = tokio::spawn(config_map_churn(registry.clone(), until));
    let mut minute = 0;
    let mut high = true;
    let mut scalings = 0;
    while Instant::now() < until {
        scale(&registry, if high { 50 } else { 5 }).await;
        scalings += 1;
        high = !high;
        let step = Instant::now() + Duration::from_secs(20);
        while Instant::now() < step {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if start.elapsed() >= Duration::from_secs((minute + 1) * 60) {
                minute += 1;
                report(minute);
            }
        }
    }
    let ops = maps.await.unwrap();
    scale(&registry, 5).await;
    settled(&registry, 5).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    report(minute + 1);
    let rss_after = rss_mib();
    println!(
        "\n{scalings} scalings, {ops} ConfigMap operations in {minutes} min; \
         RSS with 5 pods: {rss_before:.1} MiB before, {rss_after:.1} MiB after ({:+.1}%)",
        (rss_after / rss_before - 1.0) * 100.0
    );
    // As it is now: what a heap profiler reports as left is what the RSS
    // after held.
    std::process::exit(0);
}
