//! What NetworkPolicy costs a connection's setup: a guest opening TCP
//! connections to another pod (`nc -z`, 2,000 in a row, in one exec) with
//! 100 NetworkPolicies isolating the destination, against none, in the
//! same run, alternating each round. The worst case for the table: all
//! 100 policies select the destination and only the last one's rule lets
//! the client in, so every connect walks every rule.
//!
//! The ratio is of connections per second as the guest makes them (its
//! shell loop and `nc` included): target >= 0.8x. The loop alone (running
//! `true`) is measured too, to show what each connect adds.
//!
//! `cargo bench -p wasmkube --bench network_policy`

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::json;
use tokio::io::AsyncReadExt;
use wasmkube::Cluster;
use wasmkube::registry::WriteOptions;

const CONNECTS: usize = 2_000;
const POLICIES: usize = 100;
const ROUNDS: usize = 4;

/// Runs `script` in the client pod; how long it took and what it printed.
async fn run(api: &Api<Pod>, script: &str) -> (Duration, String) {
    let started = Instant::now();
    let mut process = api
        .exec(
            "client",
            ["sh", "-c", script],
            &AttachParams::default().stdout(true).stderr(true),
        )
        .await
        .expect("exec");
    let mut out = String::new();
    process
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    process.join().await.unwrap();
    (started.elapsed(), out)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = Cluster::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .start()
            .await
            .unwrap();
        let registry = cluster.registry().clone();
        let options = WriteOptions::manager("bench");
        let pods = registry.resource("", "Pod");
        let policies = registry.resource("networking.k8s.io", "NetworkPolicy");
        for pod in [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "http-server",
                    "ports": [{"containerPort": 80}]}]}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "client", "labels": {"role": "client"}},
                "spec": {"containers": [{"name": "c", "image": "toolbox",
                    "command": ["sleep", "3600"]}]}}),
        ] {
            registry.create(&pods, Some("default"), pod, &options).await.unwrap();
        }
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(cluster.kubeconfig().unwrap()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let api: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
        let web_ip = loop {
            let web = api.get("web").await.unwrap();
            let client = api.get("client").await.unwrap();
            let running = |p: &Pod| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            };
            if let (true, true, Some(ip)) = (
                running(&web),
                running(&client),
                web.status.and_then(|s| s.pod_ip),
            ) {
                break ip;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let connects = format!(
            "for i in $(seq {CONNECTS}); do nc -z -w 5 {web_ip} 80 || echo failed; done"
        );
        let idle = format!("for i in $(seq {CONNECTS}); do true; done");
        // The web server must be listening before the clock starts.
        while !run(&api, &format!("nc -z -w 5 {web_ip} 80 && echo up")).await.1.contains("up") {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let install = || async {
            for i in 0..POLICIES {
                let from = if i == POLICIES - 1 {
                    "client".to_string()
                } else {
                    format!("other-{i}")
                };
                let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": format!("p{i:03}")},
                    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": from}}}],
                            "ports": [{"protocol": "TCP", "port": 80}]}]}});
                registry.create(&policies, Some("default"), policy, &options).await.unwrap();
            }
        };
        let remove = || async {
            let removed = registry.delete_all(&policies, Some("default")).await.unwrap();
            assert_eq!(removed, POLICIES);
        };
        // The table follows the store at once; give it a moment anyway.
        let settle = || tokio::time::sleep(Duration::from_millis(500));

        println!("network_policy: {CONNECTS} connects per phase, {POLICIES} policies on the destination");
        run(&api, &connects).await;
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let policies_first = round % 2 == 0;
            let mut none = Duration::ZERO;
            let mut with = Duration::ZERO;
            for phase in 0..2 {
                let with_policies = (phase == 0) == policies_first;
                if with_policies {
                    install().await;
                } else if phase == 1 {
                    remove().await;
                }
                settle().await;
                let (took, out) = run(&api, &connects).await;
                assert!(!out.contains("failed"), "a connect failed: {out}");
                if with_policies {
                    with = took;
                } else {
                    none = took;
                }
            }
            if !policies_first {
                remove().await;
            }
            let (looping, _) = run(&api, &idle).await;
            let per = |d: Duration| {
                d.saturating_sub(looping).as_secs_f64() * 1e6 / CONNECTS as f64
            };
            let rate = |d: Duration| CONNECTS as f64 / d.as_secs_f64();
            let ratio = rate(with) / rate(none);
            ratios.push(ratio);
            println!(
                "  round {round}: none {:.0} connects/s, {POLICIES} policies {:.0} connects/s = {ratio:.2}x \
                 (beyond the loop's own {:.1} µs: {:.1} µs/connect without policies, {:.1} with)",
                rate(none),
                rate(with),
                looping.as_secs_f64() * 1e6 / CONNECTS as f64,
                per(none),
                per(with),
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "  connection setup with {POLICIES} policies / none: median {:.2}x, lowest {:.2}x (target >= 0.8x)",
            ratios[ROUNDS / 2],
            ratios[0]
        );
        // The policies are really in force: a pod they do not name is
        // dropped.
        install().await;
        settle().await;
        let stranger = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "stranger"},
            "spec": {"containers": [{"name": "c", "image": "toolbox",
                "command": ["sh", "-c", format!("nc -z -w 1 {web_ip} 80 2>/dev/null && echo reached || echo dropped; sleep 3600")]}]}});
        registry.create(&pods, Some("default"), stranger, &options).await.unwrap();
        let logs = loop {
            let logs = api.logs("stranger", &Default::default()).await.unwrap_or_default();
            if !logs.is_empty() {
                break logs;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(logs.trim(), "dropped");
        println!("  a pod no policy names: {}", logs.trim());
        cluster.shutdown().await;
    });
}
