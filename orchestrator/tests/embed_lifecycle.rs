//! What an embedded cluster leaves behind when it stops: nothing. These
//! tests count the process's threads, file descriptors, guests and memory,
//! so they run one at a time in a binary of their own.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

/// Held by each test: the counts are the whole process's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A runtime whose idle blocking threads go at once, so thread counts
/// settle.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(50))
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    threads: usize,
    fds: usize,
    guests: usize,
}

fn entries(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn counts() -> Counts {
    Counts {
        threads: entries("/proc/self/task"),
        fds: entries("/proc/self/fd"),
        guests: wasmkube_runtime::live_guests(),
    }
}

/// Resident memory, KiB, after freed memory went back to the system (what
/// the allocator keeps for reuse is not what a cluster left behind).
fn rss_kib() -> u64 {
    wasmkube_runtime::heap::release_free();
    wasmkube_runtime::heap::resident_kib().expect("VmRSS")
}

/// The counts once they have stopped changing (the same for half a
/// second, at most 10 s): threads and descriptors end a moment after what
/// owned them is gone, later on a loaded machine.
fn settled() -> Counts {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = counts();
    let mut same = 0;
    while same < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = counts();
        if now == last {
            same += 1;
        } else {
            (last, same) = (now, 0);
        }
    }
    last
}

/// The `wasmkube-*` directories in `dir`.
fn wasmkube_dirs(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wasmkube-"))
        })
        .collect();
    found.sort();
    found
}

/// What in-memory clusters make: a directory for pods' files in the
/// temporary directory; images, compiled code and memory volumes on tmpfs.
fn scratch_dirs() -> Vec<PathBuf> {
    let mut all = wasmkube_dirs(&std::env::temp_dir());
    all.extend(wasmkube_dirs(std::path::Path::new("/dev/shm")));
    all
}

/// The entries of `dir`.
fn wasmkube_dirs_entries(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
}

/// One pod that runs a guest until it is stopped.
fn sleeper() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "sleeper"},
        "spec": {"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "3600"]}]},
    }))
    .unwrap()
}

/// An in-memory cluster running one pod whose guest lives.
async fn cluster_with_a_guest() -> (wasmkube::Cluster, Api<Pod>) {
    let cluster = wasmkube::Cluster::builder().start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    pods.create(&PostParams::default(), &sleeper())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while wasmkube_runtime::live_guests() == 0 {
        assert!(Instant::now() < deadline, "the pod's guest never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (cluster, pods)
}

/// Starts a cluster, runs a pod until its guest lives, shuts down.
async fn cycle() {
    let (cluster, pods) = cluster_with_a_guest().await;
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // On disk, only what pods write: no store, no images, no compiled code.
    let on_disk: Vec<PathBuf> = wasmkube_dirs(&std::env::temp_dir())
        .into_iter()
        .flat_map(|dir| wasmkube_dirs_entries(&dir))
        .collect();
    assert!(
        !on_disk.is_empty() && on_disk.iter().all(|p| p.ends_with("pods")),
        "{on_disk:?}"
    );
    drop(pods);
    cluster.shutdown().await;
}

#[test]
fn twenty_start_and_shutdown_cycles_leave_nothing_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    let scratch_before = scratch_dirs();
    runtime.block_on(cycle());
    let first = settled();
    let rss_first = rss_kib();
    for _ in 1..20 {
        runtime.block_on(cycle());
    }
    let last = settled();
    let rss_last = rss_kib();
    println!(
        "after 1 cycle: {first:?}, RSS {rss_first} KiB; after 20: {last:?}, RSS {rss_last} KiB"
    );
    assert_eq!(first.guests, 0, "guests outlived their cluster");
    assert_eq!(last.guests, 0, "guests outlived their cluster");
    // Nineteen more clusters add nothing to what one left (fewer is
    // fine: the first cycle's last threads may still have been ending).
    assert!(
        last.threads <= first.threads && last.fds <= first.fds,
        "threads or descriptors left behind: {first:?} after 1 cycle, {last:?} after 20"
    );
    // Caches filled once (wasmtime's, the allocator's per-thread ones)
    // add about 10 MiB that stays flat from cycle 20 to 100; a cluster's
    // compiled guest or store left behind each cycle (several MiB each)
    // would show well above this.
    assert!(
        rss_last < rss_first + 24 * 1024,
        "RSS grew from {rss_first} KiB to {rss_last} KiB over 19 cycles"
    );
    assert_eq!(
        scratch_dirs(),
        scratch_before,
        "in-memory clusters left files behind"
    );
}

#[test]
fn a_dropped_cluster_stops_its_pods() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    let scratch_before = scratch_dirs();
    runtime.block_on(async {
        let (cluster, pods) = cluster_with_a_guest().await;
        let mut watching = pods
            .watch(&kube::api::WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        drop(cluster);
        let deadline = Instant::now() + Duration::from_secs(10);
        while wasmkube_runtime::live_guests() != 0 {
            assert!(
                Instant::now() < deadline,
                "a dropped cluster's guest still runs 10 s later"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The client still held is told the cluster is gone (503), and
        // its open watch ends.
        match pods.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 503, "{status:?}"),
            other => panic!("a dropped cluster answered {other:?}"),
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = watching.next().await {
                drop(event);
            }
        })
        .await;
        assert!(ended.is_ok(), "a watch outlived its cluster by 10 s");
        let deadline = Instant::now() + Duration::from_secs(10);
        while scratch_dirs() != scratch_before {
            assert!(
                Instant::now() < deadline,
                "a dropped cluster's files are still there"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}
