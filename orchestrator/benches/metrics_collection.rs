//! What collecting resource metrics costs, with N (default 1,000) idle
//! `toolbox sleep` pods running: the process's CPU over a window with the
//! kubelet's scrape off, at its default resolution (15 s, as
//! metrics-server's) and at 1 s, each a fresh cluster in this same run;
//! the difference to "off" is the collection's share of one core. Then
//! how stale `kubectl top` is: the age of the newest PodMetrics (request
//! time less its `timestamp`) over requests spread across a resolution,
//! and the window the CPU rate averages over.
//!
//! `cargo bench -p wasmkube --bench metrics_collection [-- N [WINDOW_SECONDS]]`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmkube::Cluster;
use wasmkube::registry::{Registry, WriteOptions};

/// CPU time this process has used, user and system.
fn process_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

async fn available(registry: &Registry, n: i64) {
    let deployments = registry.resource("apps", "Deployment");
    loop {
        let d = registry
            .get(&deployments, Some("default"), "sleepers")
            .unwrap();
        if d.pointer("/status/availableReplicas")
            .and_then(Value::as_i64)
            == Some(n)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster at `resolution` with `n` sleeping pods: the share of one
/// core the whole process used over `window`, and, when collecting, the
/// ages of the newest metrics seen by requests over a resolution.
async fn measure(n: usize, resolution: Duration, window: Duration) -> (f64, Vec<f64>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::builder()
        .data_dir(dir.path())
        .node_name("bench")
        .max_pods(n as u32 + 10)
        .metric_resolution(resolution)
        .start()
        .await
        .unwrap();
    let registry = cluster.registry().clone();
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sleepers"},
        "spec": {"replicas": n, "selector": {"matchLabels": {"app": "sleepers"}},
            "template": {"metadata": {"labels": {"app": "sleepers"}},
                "spec": {"containers": [{"name": "sleep", "image": "toolbox",
                    "command": ["sleep", "3600"]}]}}}});
    registry
        .create(
            &registry.resource("apps", "Deployment"),
            Some("default"),
            deployment,
            &WriteOptions::manager("bench"),
        )
        .await
        .unwrap();
    available(&registry, n as i64).await;
    // Settled: the rollout's work is over, every pod measured once.
    tokio::time::sleep(resolution.max(Duration::from_secs(5)) * 2).await;
    let (cpu, wall) = (process_cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let share = (process_cpu() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64();
    let mut ages = Vec::new();
    let mut metrics_window = String::new();
    if !resolution.is_zero() {
        let client = cluster.client();
        let requests = 20;
        for _ in 0..requests {
            let request =
                http::Request::get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
                    .body(Vec::new())
                    .unwrap();
            let text = client.request_text(request).await.unwrap();
            let asked = jiff::Timestamp::now();
            let list: Value = serde_json::from_str(&text).unwrap();
            let items = list["items"].as_array().unwrap();
            assert_eq!(items.len(), n, "every pod measured");
            let newest: jiff::Timestamp = items[0]["timestamp"].as_str().unwrap().parse().unwrap();
            ages.push(asked.duration_since(newest).as_secs_f64());
            metrics_window = items[0]["window"].as_str().unwrap().to_string();
            tokio::time::sleep(resolution / requests).await;
        }
    }
    cluster.shutdown().await;
    (share, ages, metrics_window)
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let n = args.next().unwrap_or(1000) as usize;
    let window = Duration::from_secs(args.next().unwrap_or(60));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("metrics_collection: {n} idle pods, CPU over {window:?} per setting");
        let (off, _, _) = measure(n, Duration::ZERO, window).await;
        println!("  collection off:     {:>6.2}% of one core (the baseline)", off * 100.0);
        for resolution in [Duration::from_secs(15), Duration::from_secs(1)] {
            let (on, ages, metrics_window) = measure(n, resolution, window).await;
            let mean = ages.iter().sum::<f64>() / ages.len() as f64;
            let max = ages.iter().cloned().fold(0.0, f64::max);
            println!(
                "  resolution {:>3}s:    {:>6.2}% of one core: collection costs {:+.2}% of a core",
                resolution.as_secs(),
                on * 100.0,
                (on - off) * 100.0
            );
            println!(
                "    kubectl top's data: {mean:.2} s old on average, {max:.2} s at most; its CPU averages over {metrics_window}"
            );
        }
    });
}
