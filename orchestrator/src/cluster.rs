//! A whole single-node cluster in one process: store, registry, API,
//! scheduler, kubelet and controllers, started and stopped together.
//!
//! `wasmkube serve` runs one behind HTTPS; a Rust program can embed one and
//! talk to [`Cluster::router`] in-process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmkube_runtime::Backoff;

use crate::api::{self, ApiState};
use crate::cidr::Cidr;
use crate::controllers;
use crate::kubelet::{self, Kubelet};
use crate::proxy;
use crate::registry::allocator::ServiceNetwork;
use crate::registry::{self, Registry, Resources, WriteOptions};
use crate::scheduler;
use crate::store::seal::Sealer;
use crate::store::{RedbStore, StoreOptions};

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store")]
    Store(#[from] crate::store::Error),
    #[error("cannot read or create the encryption key {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the system objects")]
    Bootstrap(#[from] registry::Error),
    #[error("cannot start the kubelet")]
    Kubelet(#[from] kubelet::Error),
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the store, images and pods live.
    pub data_dir: PathBuf,
    /// The one node's name.
    pub node_name: String,
    /// Restart back-off of containers.
    pub backoff: Backoff,
    /// Most pods the node takes.
    pub max_pods: u32,
    /// The network pod IPs come from.
    pub pod_cidr: Cidr,
    /// Where Services' cluster IPs and node ports come from.
    pub service_network: ServiceNetwork,
    /// The host address node ports and LoadBalancer ports listen on.
    pub node_port_address: IpAddr,
    /// How long a Job waits before replacing a failed pod.
    pub job_backoff: controllers::job::Backoff,
    /// Host directories pods' hostPath volumes may use; all when `None`.
    pub allowed_host_paths: Option<Vec<PathBuf>>,
    /// How long an Event lives after its last write.
    pub event_ttl: std::time::Duration,
    /// How the kubelet reaches registries.
    pub registry: wasmkube_runtime::RegistryConfig,
    /// Where bare image names the node lacks are pulled from.
    pub default_registry: Option<String>,
    /// When unused images are collected.
    pub image_gc: wasmkube_runtime::images::gc::GcPolicy,
    /// How often image garbage collection looks (the kubelet's 5 minutes).
    pub image_gc_period: std::time::Duration,
}

impl ClusterConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            data_dir: data_dir.into(),
            node_name: kubelet::default_node_name(),
            backoff: Backoff::default(),
            max_pods: 110,
            pod_cidr: "10.244.0.0/16".parse().expect("a valid CIDR"),
            service_network: ServiceNetwork::default(),
            node_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            job_backoff: controllers::job::Backoff::default(),
            allowed_host_paths: None,
            event_ttl: crate::events::DEFAULT_TTL,
            registry: wasmkube_runtime::RegistryConfig::default(),
            default_registry: None,
            image_gc: wasmkube_runtime::images::gc::GcPolicy::default(),
            image_gc_period: std::time::Duration::from_secs(300),
        }
    }
}

/// A running cluster.
pub struct Cluster {
    registry: Registry,
    store: RedbStore,
    kubelet: Arc<Kubelet>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Opens the store, creates the system objects, registers the node and
    /// starts the control loops.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, Error> {
        // The data dir holds the store, the encryption key and volumes:
        // nobody but the server's user enters it.
        kubelet::private_dir::secure_data_dir(&config.data_dir).map_err(|source| {
            Error::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        // Secrets are encrypted at rest with a key made at the first start.
        let key_file = config.data_dir.join("encryption.key");
        let resources = Resources::builtin();
        let secrets = resources.by_kind("", "Secret").map(|r| r.prefix());
        let sealer =
            Sealer::from_key_file(&key_file, secrets.into_iter().collect()).map_err(|source| {
                Error::KeyFile {
                    path: key_file.clone(),
                    source,
                }
            })?;
        let options = StoreOptions {
            sealer: Some(Arc::new(sealer)),
            ..StoreOptions::default()
        };
        let store = RedbStore::open(&config.data_dir.join("store.redb"), options)?;
        let registry = Registry::with_service_network(
            Arc::new(store.clone()),
            resources,
            config.service_network.clone(),
        );
        bootstrap(&registry).await?;
        let (stop, stopped) = watch::channel(false);
        let kubelet = Arc::new(Kubelet::start(registry.clone(), &config).await?);
        // Pod and Service addresses never leave the host; the rest is egress.
        let service_cidr = config.service_network.cidr;
        kubelet.cluster_net().set_internal_networks(&[
            (config.pod_cidr.nth(0), config.pod_cidr.prefix()),
            (service_cidr.nth(0), service_cidr.prefix()),
        ]);
        let mut tasks = JoinSet::new();
        tasks.spawn(kubelet.clone().run(stopped.clone()));
        tasks.spawn(scheduler::run(registry.clone(), stopped.clone()));
        tasks.spawn(controllers::namespace::run(
            registry.clone(),
            stopped.clone(),
        ));
        tasks.spawn(controllers::endpoints::run(
            registry.clone(),
            stopped.clone(),
        ));
        for flavor in [
            controllers::replicaset::REPLICA_SETS,
            controllers::replicaset::REPLICATION_CONTROLLERS,
        ] {
            tasks.spawn(controllers::replicaset::run(
                flavor,
                registry.clone(),
                stopped.clone(),
            ));
        }
        tasks.spawn(controllers::deployment::run(
            registry.clone(),
            stopped.clone(),
        ));
        tasks.spawn(controllers::statefulset::run(
            registry.clone(),
            stopped.clone(),
        ));
        tasks.spawn(controllers::daemonset::run(
            registry.clone(),
            stopped.clone(),
        ));
        tasks.spawn(controllers::job::run(
            registry.clone(),
            config.job_backoff,
            stopped.clone(),
        ));
        tasks.spawn(controllers::cronjob::run(registry.clone(), stopped.clone()));
        tasks.spawn(controllers::disruption::run(
            registry.clone(),
            stopped.clone(),
        ));
        tasks.spawn(controllers::garbage::run(registry.clone(), stopped.clone()));
        tasks.spawn(crate::events::expire(
            registry.clone(),
            config.event_ttl,
            stopped.clone(),
        ));
        tasks.spawn(controllers::volumes::run(
            registry.clone(),
            config.data_dir.clone(),
            stopped.clone(),
        ));
        tasks.spawn(proxy::run(
            registry.clone(),
            kubelet.cluster_net(),
            config.node_port_address,
            stopped.clone(),
        ));
        Ok(Cluster {
            registry,
            store,
            kubelet,
            stop,
            tasks,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The pods' and Services' network of the node.
    pub fn network(&self) -> Arc<wasmkube_runtime::net::ClusterNet> {
        self.kubelet.cluster_net()
    }

    /// Points the `kubernetes` Service at the API served on `address`
    /// (its Endpoints, its EndpointSlice and its target port), as the API
    /// server's endpoint reconciler does.
    ///
    /// Pods reach the API only through that Service: straight to the
    /// listener (on any of the host's addresses) is refused.
    pub async fn publish_api(&self, address: SocketAddr) -> Result<(), registry::Error> {
        self.network().set_host_only(vec![address]);
        let ip = if address.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            address.ip()
        };
        let port = address.port();
        let options = WriteOptions::manager("wasmkube");
        let services = self.registry.resource("", "Service");
        self.registry
            .update_with(
                &services,
                Some("default"),
                API_SERVICE,
                None,
                &options,
                |current| {
                    let mut next = current.clone();
                    next["spec"]["ports"][0]["targetPort"] = json!(port);
                    Ok(next)
                },
            )
            .await?;
        let endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": API_SERVICE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": API_SERVICE, "labels": {"kubernetes.io/service-name": API_SERVICE}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        for (kind, group, body) in [
            ("Endpoints", "", endpoints),
            ("EndpointSlice", "discovery.k8s.io", slice),
        ] {
            let resource = self.registry.resource(group, kind);
            let existing = self
                .registry
                .find(&resource, Some("default"), API_SERVICE)?;
            match existing {
                None => {
                    self.registry
                        .create(&resource, Some("default"), body, &options)
                        .await?;
                }
                Some(_) => {
                    self.registry
                        .update_with(
                            &resource,
                            Some("default"),
                            API_SERVICE,
                            None,
                            &options,
                            |current| {
                                let mut next = body.clone();
                                next["metadata"] = current["metadata"].clone();
                                next["metadata"]["labels"] = body["metadata"]["labels"].clone();
                                Ok(next)
                            },
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The API, authenticating with `token` when given.
    pub fn router(&self, token: Option<Arc<str>>) -> Router {
        api::router(ApiState {
            registry: self.registry.clone(),
            token,
            logs: Some(self.kubelet.clone()),
            exec: Some(self.kubelet.clone()),
        })
    }

    /// Stops the control loops and the pods (gracefully), then closes the
    /// store with everything acknowledged on disk.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.kubelet.stop_all().await;
        self.registry.stop_caches();
        self.store.close();
    }
}

/// The `kubernetes` Service in `default`: the API at the first cluster IP.
const API_SERVICE: &str = "kubernetes";

async fn bootstrap(registry: &Registry) -> Result<(), registry::Error> {
    let namespaces = registry.resource("", "Namespace");
    for name in crate::registry::SYSTEM_NAMESPACES {
        if registry.find(&namespaces, None, name)?.is_none() {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match registry
                .create(&namespaces, None, body, &WriteOptions::manager("wasmkube"))
                .await
            {
                Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let classes = registry.resource("scheduling.k8s.io", "PriorityClass");
    for (name, value, description) in crate::registry::kinds::SYSTEM_PRIORITY_CLASSES {
        if registry.find(&classes, None, name)?.is_none() {
            let body = json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
            });
            match registry
                .create(&classes, None, body, &WriteOptions::manager("wasmkube"))
                .await
            {
                Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let services = registry.resource("", "Service");
    if registry
        .find(&services, Some("default"), API_SERVICE)?
        .is_none()
    {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": API_SERVICE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": registry.service_network().api_address().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
            },
        });
        match registry
            .create(
                &services,
                Some("default"),
                body,
                &WriteOptions::manager("wasmkube"),
            )
            .await
        {
            Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // The default StorageClass: directories under the data directory.
    let classes = registry.resource("storage.k8s.io", "StorageClass");
    let class = controllers::volumes::LOCAL_PATH_CLASS;
    if registry.find(&classes, None, class)?.is_none() {
        let body = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": controllers::volumes::LOCAL_PATH,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        });
        match registry
            .create(&classes, None, body, &WriteOptions::manager("wasmkube"))
            .await
        {
            Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
