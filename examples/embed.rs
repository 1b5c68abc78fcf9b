//! A cluster inside a Rust program: start one in memory, run a Deployment
//! through kube-rs, read a pod's log, shut it down.
//!
//!     cargo run --example embed

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};

/// Runs the example; returns the log line it read.
pub async fn run() -> Result<String, Box<dyn std::error::Error>> {
    let cluster = wasmkube::Cluster::builder().start().await?;
    let deployments: Api<Deployment> = Api::default_namespaced(cluster.client());
    let hello: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {"containers": [{
                    "name": "hello", "image": "toolbox",
                    "command": ["sh", "-c", "echo hello from $(hostname); sleep 3600"],
                }]},
            },
        },
    }))?;
    deployments.create(&PostParams::default(), &hello).await?;
    await_condition(deployments, "hello", conditions::is_deployment_completed()).await?;

    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    let listed = pods
        .list(&ListParams::default().labels("app=hello"))
        .await?;
    let name = listed.items[0].metadata.name.clone().unwrap_or_default();
    let mut log = String::new();
    while log.is_empty() {
        // Running comes as the guest starts, the echo a moment after.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        log = pods.logs(&name, &LogParams::default()).await?;
    }
    println!("{} pods; {name} says: {}", listed.items.len(), log.trim());
    cluster.shutdown().await;
    Ok(log)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}
