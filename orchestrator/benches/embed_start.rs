//! How fast an embedded cluster is usable, and what repeated clusters
//! cost: an in-memory cluster's start to its first successful
//! `list::<Pod>()` through the in-process client, against the same list
//! through a `kube::Client` onto a router that only answers it (the
//! client's own floor, from the same run); then threads, descriptors and
//! resident memory after 20 start/shutdown cycles against after the first.
//!
//! `cargo bench -p wasmkube --bench embed_start`

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const CYCLES: usize = 20;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Resident memory after freed memory went back to the system (what the
/// allocator keeps for reuse is not what a cluster left behind).
fn rss_kib() -> u64 {
    wasmkube_runtime::heap::release_free();
    wasmkube_runtime::heap::resident_kib().expect("VmRSS")
}

/// The client's floor: a list answered by a router that does nothing else.
async fn bare_client_list() -> Duration {
    let started = Instant::now();
    let router = Router::new().route(
        "/api/v1/namespaces/default/pods",
        get(|| async {
            axum::Json(json!({"apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": "1"}, "items": []}))
        }),
    );
    let pods: Api<Pod> = Api::default_namespaced(kube::Client::new(router, "default"));
    pods.list(&ListParams::default()).await.unwrap();
    started.elapsed()
}

/// Start to the first successful list, and the start alone.
async fn cluster_first_list(with_pod: bool) -> (Duration, Duration) {
    let started = Instant::now();
    let cluster = wasmkube::Cluster::builder().start().await.unwrap();
    let start = started.elapsed();
    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    pods.list(&ListParams::default()).await.unwrap();
    let first_list = started.elapsed();
    if with_pod {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "3600"]}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        while wasmkube_runtime::live_guests() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    drop(pods);
    cluster.shutdown().await;
    (first_list, start)
}

/// Threads and descriptors once they have stopped changing (the same
/// for half a second, at most 10 s): they end a moment after their owner.
fn settled() -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (count("/proc/self/task"), count("/proc/self/fd"));
    let mut same = 0;
    while same < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = (count("/proc/self/task"), count("/proc/self/fd"));
        if now == last {
            same += 1;
        } else {
            (last, same) = (now, 0);
        }
    }
    last
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(50))
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Warm what any first use pays once per process (the client's TLS
        // provider, page faults of the binary).
        cluster_first_list(false).await;
        bare_client_list().await;
        let mut bare = Vec::new();
        let mut lists = Vec::new();
        let mut starts = Vec::new();
        for _ in 0..CYCLES {
            bare.push(bare_client_list().await);
            let (list, start) = cluster_first_list(false).await;
            lists.push(list);
            starts.push(start);
        }
        let (bare, list, start) = (median(bare), median(lists), median(starts));
        println!(
            "in-memory cluster, start to first list::<Pod>(): median {:.1} ms of {CYCLES} (start alone {:.1} ms); bare kube::Client list {:.2} ms; ratio {:.0}x (target <= 50 ms)",
            ms(list),
            ms(start),
            ms(bare),
            list.as_secs_f64() / bare.as_secs_f64()
        );
    });
    // Each cycle runs a pod's guest too, so the runtime's threads and
    // memories come and go.
    runtime.block_on(cluster_first_list(true));
    let (threads_1, fds_1) = runtime.block_on(async { settled() });
    let rss_1 = rss_kib();
    for _ in 1..CYCLES {
        runtime.block_on(cluster_first_list(true));
    }
    let (threads_n, fds_n) = runtime.block_on(async { settled() });
    let rss_n = rss_kib();
    println!(
        "after 1 cycle (with a pod): {threads_1} threads, {fds_1} fds, RSS {rss_1} KiB; after {CYCLES}: {threads_n} threads, {fds_n} fds, RSS {rss_n} KiB ({:+} KiB)",
        rss_n as i64 - rss_1 as i64
    );
}
