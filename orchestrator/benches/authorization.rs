//! What authorization costs: API writes per second by 64 concurrent
//! clients as `alice` (a client certificate, judged by RBAC with 1,000
//! RoleBindings in her namespace) against the same clients with the admin
//! token (`system:masters`, never judged), in the same run, each first
//! every other round, so only the ratio matters.
//!
//! `cargo bench -p wasmkube --bench authorization`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const CLIENTS: usize = 64;
const BINDINGS: usize = 1_000;
const PHASE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 4;

async fn client_of(kubeconfig: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// ConfigMaps created per second by `CLIENTS` tasks on `client` for
/// `PHASE`, names starting with `prefix`.
async fn writes_per_second(client: &kube::Client, prefix: &str) -> f64 {
    let written = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + PHASE;
    let mut tasks = Vec::new();
    for task in 0..CLIENTS {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let written = Arc::clone(&written);
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                let map: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("{prefix}-{task}-{i}")},
                    "data": {"key": "value"},
                }))
                .unwrap();
                api.create(&PostParams::default(), &map).await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cluster = wasmkube::Cluster::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let admin = client_of(cluster.kubeconfig().unwrap()).await;
    let alice = client_of(
        &cluster
            .user_kubeconfig("alice", &["dev"], "default")
            .unwrap(),
    )
    .await;

    // Others' bindings, then hers: her writes are judged among them all.
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "default");
    for i in 0..BINDINGS {
        let (name, user, role) = if i + 1 == BINDINGS {
            ("alice-edits".to_string(), "alice".to_string(), "edit")
        } else {
            (format!("user-{i}-views"), format!("user-{i}"), "view")
        };
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))
        .unwrap();
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }

    println!(
        "API writes (ConfigMap create) by {CLIENTS} clients, {BINDINGS} RoleBindings in the namespace, {ROUNDS} rounds of {PHASE:?} each:"
    );
    let (mut admin_total, mut alice_total) = (0.0, 0.0);
    for round in 0..ROUNDS {
        // Each goes first every other round: the store grows as they write.
        let (as_admin, as_alice) = if round % 2 == 0 {
            let as_admin = writes_per_second(&admin, &format!("admin-{round}")).await;
            (
                as_admin,
                writes_per_second(&alice, &format!("alice-{round}")).await,
            )
        } else {
            let as_alice = writes_per_second(&alice, &format!("alice-{round}")).await;
            (
                writes_per_second(&admin, &format!("admin-{round}")).await,
                as_alice,
            )
        };
        println!(
            "  round {round}: admin {as_admin:.0}/s, alice {as_alice:.0}/s ({:.2}x)",
            as_alice / as_admin
        );
        admin_total += as_admin;
        alice_total += as_alice;
    }
    println!(
        "alice through RBAC / admin: {:.2}x (target >= 0.9x)",
        alice_total / admin_total
    );
    cluster.shutdown().await;
}
