//! An edge device left running under steady churn, for MINUTES (default
//! 30):
//! - a Deployment of `toolbox` pods scaled between 5 and 50 every 20 s;
//! - ConfigMaps created, updated and deleted without pause;
//! - a chatty pod writing about 80 KB of log a second, its log rotating at
//!   1 MiB;
//! - a Deployment of two pods rolled every three minutes to a new image
//!   pulled from a local `docker-registry` (a toolbox component made new
//!   by a custom section), unused images collected over an 8 MiB budget.
//!
//! Every minute: the data dir's size on disk (store, pods' directories,
//! images with their compiled code, the rest), the Events held and the
//! process's RSS. At the end, RSS with the same pods before and after the
//! churn. The heap is set up as `wasmkube serve` sets it up, and images
//! are compiled in a child process, as `serve` compiles them.
//!
//! Events live five minutes here (the server's default is an hour, as the
//! API server's `--event-ttl`): a run of half an hour then shows where
//! their share levels off; with the default it levels off after an hour.
//!
//! `cargo bench -p wasmkube --bench churn [-- MINUTES]`; it needs
//! `scripts/setup-registry-tools.sh`'s `docker-registry`, `umoci` and
//! `skopeo`.

#[path = "../tests/oci/mod.rs"]
mod oci;
#[path = "../tests/server/mod.rs"]
mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmkube::Cluster;
use wasmkube::patch::PatchKind;
use wasmkube::registry::selectors::LabelSelector;
use wasmkube::registry::{DeleteOptions, ListOptions, Registry, WriteOptions};

/// The server's heap, as `wasmkube serve` has it.
#[global_allocator]
static HEAP: wasmkube_runtime::heap::ServerHeap = wasmkube_runtime::heap::ServerHeap;

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

/// What mimalloc holds committed.
fn heap_mib() -> f64 {
    wasmkube_runtime::heap::committed_kib() as f64 / 1024.0
}

/// What the RSS is made of: anonymous memory (of it, mimalloc's committed
/// heap), file pages and shared memory.
fn resident_parts() -> String {
    let parts = wasmkube_runtime::heap::resident_parts().expect("RssAnon");
    format!(
        "anonymous {:.1} MiB (heap {:.1}), file {:.1} MiB, shared {:.1} MiB",
        parts.anonymous as f64 / 1024.0,
        heap_mib(),
        parts.file as f64 / 1024.0,
        parts.shared as f64 / 1024.0
    )
}

/// How long an Event lives here.
const EVENT_TTL: Duration = Duration::from_secs(300);

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

/// Until Deployment `name` has `n` available replicas and `n` pods
/// labelled `app=name` exist.
async fn settled(registry: &Registry, name: &str, n: usize) {
    let deployments = registry.resource("apps", "Deployment");
    let pods = registry.resource("", "Pod");
    let options = ListOptions {
        labels: LabelSelector::parse(&format!("app={name}")).unwrap(),
        ..ListOptions::default()
    };
    loop {
        let d = registry.get(&deployments, Some("default"), name).unwrap();
        let available = d
            .pointer("/status/availableReplicas")
            .and_then(Value::as_u64);
        let count = registry
            .list(&pods, Some("default"), &options)
            .unwrap()
            .items
            .len();
        if available == Some(n as u64) && count == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Deployment `name` of `replicas` pods labelled `app=name`, one
/// container `c` of `image` running `command` when it is not empty.
async fn deploy(registry: &Registry, name: &str, replicas: u32, image: &str, command: &[&str]) {
    let mut container = json!({"name": "c", "image": image});
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}}});
    registry
        .create(
            &registry.resource("apps", "Deployment"),
            Some("default"),
            deployment,
            &WriteOptions::manager("bench"),
        )
        .await
        .unwrap();
}

/// How often the `versions` Deployment rolls to a new image.
const NEW_IMAGE_EVERY: Duration = Duration::from_secs(180);

/// Builds image `version` with umoci and copies it into `registry` with
/// skopeo; returns its reference.
fn push_version(registry: &oci::Registry, layout: &Path, version: u64) -> String {
    let tag = format!("v{version}");
    oci::build(
        layout,
        &tag,
        &oci::ImageSpec {
            files: vec![("/bin/toolbox.wasm", oci::toolbox_variant(&tag))],
            symlinks: vec![("/bin/sh", "/bin/toolbox.wasm")],
            entrypoint: vec!["/bin/sh", "-c"],
            cmd: vec!["sleep 3600"],
            ..oci::ImageSpec::default()
        },
    );
    let name = format!("churn-app:{tag}");
    registry.copy_in(layout, &tag, &name, &[]);
    registry.image(&name)
}

/// The `versions` Deployment on a new image every [`NEW_IMAGE_EVERY`]
/// until `until`; how many images it ran.
async fn image_churn(
    cluster_registry: Registry,
    images: std::sync::Arc<oci::Registry>,
    layout: std::path::PathBuf,
    until: Instant,
) -> u64 {
    let mut version = 1;
    loop {
        let next = Instant::now() + NEW_IMAGE_EVERY;
        if next >= until {
            return version;
        }
        tokio::time::sleep_until(next.into()).await;
        version += 1;
        let (images, layout) = (images.clone(), layout.clone());
        let image = tokio::task::spawn_blocking(move || push_version(&images, &layout, version))
            .await
            .unwrap();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
            .to_string();
        cluster_registry
            .patch(
                &cluster_registry.resource("apps", "Deployment"),
                Some("default"),
                "versions",
                PatchKind::Strategic,
                patch.as_bytes(),
                None,
                &WriteOptions::manager("bench"),
            )
            .await
            .unwrap();
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
    // What `wasmkube serve` does besides: freed memory goes back every minute.
    wasmkube_runtime::heap::release_free_every(Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let images = std::sync::Arc::new(oci::Registry::anonymous());
    let layout = dir.path().join("layout");
    let first = {
        let (images, layout) = (images.clone(), layout.clone());
        tokio::task::spawn_blocking(move || push_version(&images, &layout, 1))
            .await
            .unwrap()
    };
    let data = dir.path().join("data");
    let cluster = Cluster::builder()
        .data_dir(&data)
        .node_name("bench")
        .event_ttl(EVENT_TTL)
        .container_log_max_size(1 << 20)
        .registry(wasmkube_runtime::RegistryConfig {
            insecure: vec![images.host.clone()],
            ..Default::default()
        })
        .image_gc(
            wasmkube_runtime::images::gc::GcPolicy {
                max_bytes: Some(8 << 20),
                minimum_age: Duration::from_secs(60),
                ..Default::default()
            },
            Duration::from_secs(30),
        )
        .compiler(wasmkube_runtime::engine::Compiler::Child {
            program: env!("CARGO_BIN_EXE_wasmkube").into(),
            args: vec!["compile-component".into()],
        })
        .start()
        .await
        .unwrap();
    let registry = cluster.registry().clone();
    deploy(
        &registry,
        "churn",
        5,
        "toolbox",
        &["sh", "-c", "echo started; sleep 3600"],
    )
    .await;
    deploy(
        &registry,
        "chatty",
        1,
        "toolbox",
        &["sh", "-c", "while true; do seq 1 2000; sleep 1; done"],
    )
    .await;
    deploy(&registry, "versions", 2, &first, &[]).await;
    for (name, n) in [("churn", 5), ("chatty", 1), ("versions", 2)] {
        settled(&registry, name, n).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    let rss_before = rss_mib();
    let parts_before = resident_parts();

    let data = data.as_path();
    let events = registry.resource("", "Event");
    let report = |minute: u64| {
        let total = disk_usage(data) as f64 / MIB;
        let store = disk_usage(&data.join("store.redb")) as f64 / MIB;
        let pods = disk_usage(&data.join("pods")) as f64 / MIB;
        let images =
            (disk_usage(&data.join("images")) + disk_usage(&data.join("cache"))) as f64 / MIB;
        let held = registry
            .list(&events, None, &ListOptions::default())
            .unwrap()
            .items
            .len();
        println!(
            "{minute:>6} {total:>10.1} {store:>10.1} {pods:>9.1} {images:>11.1} {:>9.1} {held:>7} {:>8.1} {:>9.1}",
            total - store - pods - images,
            rss_mib(),
            heap_mib()
        );
    };
    println!(
        "minute  disk(MiB)  store(MiB) pods(MiB) images(MiB) rest(MiB)  events  RSS(MiB) heap(MiB)"
    );
    report(0);
    let start = Instant::now();
    let until = start + Duration::from_secs(minutes * 60);
    let maps = tokio::spawn(config_map_churn(registry.clone(), until));
    let versions = tokio::spawn(image_churn(
        registry.clone(),
        images.clone(),
        layout.clone(),
        until,
    ));
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
    let image_count = versions.await.unwrap();
    scale(&registry, 5).await;
    for (name, n) in [("churn", 5), ("chatty", 1), ("versions", 2)] {
        settled(&registry, name, n).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    report(minute + 1);
    let rss_settled = rss_mib();
    // Then the churn's Events expire (the sweep looks every TTL / 60), so
    // the cluster holds what it held before the churn.
    tokio::time::sleep(EVENT_TTL + Duration::from_secs(30)).await;
    report(minute + 7);
    let rss_after = rss_mib();
    let parts_after = resident_parts();
    println!(
        "\n{scalings} scalings, {ops} ConfigMap operations, {image_count} images in {minutes} min; \
         RSS with the same 8 pods: {rss_before:.1} MiB before, {rss_settled:.1} MiB 30 s after, \
         {rss_after:.1} MiB once the churn's Events expired ({:+.1}%)",
        (rss_after / rss_before - 1.0) * 100.0
    );
    println!("before: {parts_before}\nafter:  {parts_after}");
    // The registry stops and the files go, but the cluster is left as it
    // is now: what a heap profiler reports as left is what the RSS after
    // held.
    drop(images);
    let _ = std::fs::remove_dir_all(dir.path());
    std::process::exit(0);
}
