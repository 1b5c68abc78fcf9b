//! An operator against an in-memory cluster: a `Website` custom resource
//! (its definition derived from the Rust type) and a kube-runtime
//! controller that turns each Website into a Deployment and a NodePort
//! Service, owned by the Website (deleting it deletes them).
//!
//!     cargo run --example operator

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a Website asks for.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "example.com", version = "v1", kind = "Website", namespaced)]
#[kube(status = "WebsiteStatus", shortname = "ws")]
#[kube(printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#)]
pub struct WebsiteSpec {
    /// How many pods serve it.
    pub replicas: i32,
    /// The image that serves it.
    pub image: String,
}

/// What the operator reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
pub struct WebsiteStatus {
    /// The node port it answers on.
    pub node_port: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kube::Error);

/// Level-triggered: the Deployment and Service the Website asks for,
/// applied server-side, then its status.
async fn reconcile(site: Arc<Website>, client: Arc<Client>) -> Result<Action, Error> {
    let name = site.name_any();
    let namespace = site.namespace().unwrap_or_default();
    let owner = site
        .controller_owner_ref(&())
        .expect("a stored Website has a uid");
    let labels = json!({"website": name});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "spec": {"replicas": site.spec.replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": site.spec.image,
                    "ports": [{"containerPort": 80}]}]}}},
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "spec": {"type": "NodePort", "selector": labels, "ports": [{"port": 80}]},
    });
    let apply = PatchParams::apply("website-operator").force();
    Api::<Deployment>::namespaced((*client).clone(), &namespace)
        .patch(&name, &apply, &Patch::Apply(deployment))
        .await?;
    let service = Api::<Service>::namespaced((*client).clone(), &namespace)
        .patch(&name, &apply, &Patch::Apply(service))
        .await?;
    let node_port = service
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().and_then(|p| p.node_port));
    let status = json!({"apiVersion": "example.com/v1", "kind": "Website",
        "status": {"node_port": node_port}});
    Api::<Website>::namespaced((*client).clone(), &namespace)
        .patch_status(&name, &apply, &Patch::Apply(status))
        .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<Website>, _: &Error, _: Arc<Client>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

/// Installs the definition and runs the controller until the returned
/// task is aborted.
pub async fn start(client: Client) -> Result<tokio::task::JoinHandle<()>, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Website::crd()).await?;
    let established = conditions::is_crd_established();
    let name = "websites.example.com";
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, name, established),
    )
    .await
    .map_err(|_| kube::Error::Service("the definition was not established".into()))?
    .map_err(|e| kube::Error::Service(e.into()))?;
    let controller = Controller::new(Api::<Website>::all(client.clone()), Default::default())
        .owns(Api::<Deployment>::all(client.clone()), Default::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {});
    Ok(tokio::spawn(controller))
}

/// Runs the example: a Website, served on its node port; returns the
/// page's first line.
pub async fn run() -> Result<String, Box<dyn std::error::Error>> {
    let cluster = wasmkube::Cluster::builder().start().await?;
    let controller = start(cluster.client()).await?;
    let sites: Api<Website> = Api::default_namespaced(cluster.client());
    let site = Website::new(
        "blog",
        WebsiteSpec {
            replicas: 1,
            image: "http-server".into(),
        },
    );
    sites.create(&PostParams::default(), &site).await?;
    let has_port = |site: Option<&Website>| {
        site.and_then(|s| s.status.as_ref())
            .and_then(|s| s.node_port)
            .is_some()
    };
    let site = await_condition(sites.clone(), "blog", has_port)
        .await?
        .ok_or("the Website went away")?;
    let port = site.status.and_then(|s| s.node_port).unwrap_or_default() as u16;
    let deployments: Api<Deployment> = Api::default_namespaced(cluster.client());
    await_condition(deployments, "blog", conditions::is_deployment_completed()).await?;
    let page = get(port).await?;
    let first = page.lines().next().unwrap_or_default().to_string();
    println!("blog answers on 127.0.0.1:{port}: {first}");
    controller.abort();
    cluster.shutdown().await;
    Ok(first)
}

/// `GET /` on a loopback port, once it answers (the first pod may still be
/// starting).
pub async fn get(port: u16) -> Result<String, std::io::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tries = 0;
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: blog\r\n\r\n")
                .await?;
            let mut page = String::new();
            stream.read_to_string(&mut page).await?;
            Ok::<_, std::io::Error>(page)
        };
        match attempt.await {
            Ok(page) if page.starts_with("HTTP/1.") => return Ok(page),
            Err(e) if tries >= 300 => return Err(e),
            _ if tries >= 300 => {
                return Err(std::io::Error::other(format!("no HTTP answer on {port}")));
            }
            _ => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}
