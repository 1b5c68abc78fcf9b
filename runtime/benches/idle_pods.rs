//! Host memory per idle pod: start N pods of `toolbox sleep 3600`, wait
//! until every one is asleep, and report the growth of the process's
//! resident set per pod. That growth includes the guests' touched linear
//! memory, so it is an upper bound on what the host spends per pod.
//!
//! `cargo bench -p wasmkube-runtime --bench idle_pods [-- N]` (default 1000)

use std::time::{Duration, Instant};
use wasmkube_runtime::*;

fn rss_bytes() -> u64 {
    heap::resident_kib().expect("VmRSS") * 1024
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(runtime.images()).unwrap();
    tokio.block_on(async {
        runtime.prepare_image("toolbox").await.unwrap();
        let spec = |i: usize| PodSpec {
            sandbox: SandboxSpec {
                uid: format!("idle-{i}"),
                name: format!("idle-{i}"),
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
        // One pod first, so one-time costs (code, runtime threads) are in the baseline.
        let warm = PodRunner::start(&runtime, spec(n)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_bytes();
        let started = Instant::now();
        let mut pods = Vec::with_capacity(n);
        for i in 0..n {
            pods.push(PodRunner::start(&runtime, spec(i)).unwrap());
        }
        // Running, and asleep: its CPU time stops growing.
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all_running = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_bytes();
        let linear: u64 = pods
            .iter()
            .filter_map(|p| p.status().containers[0].usage())
            .map(|u| u.memory_bytes)
            .sum();
        let per_pod = |bytes: i64| bytes as f64 / n as f64 / 1024.0;
        let delta = after as i64 - before as i64;
        println!("{n} idle pods (toolbox sleep) running after {all_running:.2?}");
        println!(
            "  RSS before {:.1} MiB, after {:.1} MiB",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        println!("  RSS growth per pod: {:.1} KiB", per_pod(delta));
        // Linear memory is reserved at its declared size but only touched
        // pages are resident, so the declared size cannot be subtracted;
        // the growth itself, guest pages included, bounds the host's share.
        println!(
            "  guest linear memory declared: {:.1} KiB per pod (resident: only what the guest touched)",
            per_pod(linear as i64)
        );
        println!(
            "  host memory per idle pod beyond guest linear memory: at most {:.1} KiB",
            per_pod(delta)
        );
        for p in pods {
            let sandbox = p.sandbox().clone();
            p.stop().await;
            sandbox.remove().unwrap();
        }
        let sandbox = warm.sandbox().clone();
        warm.stop().await;
        sandbox.remove().unwrap();
    });
    tokio.shutdown_background();
}
