//! A whole single-node cluster in one process: store, registry, API,
//! scheduler, kubelet and controllers, started and stopped together.
//!
//! `wasmkube serve` runs one behind HTTPS; a Rust program can embed one and
//! talk to [`Cluster::router`] in-process.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmkube_runtime::Backoff;

use crate::api::{self, ApiState};
use crate::controllers;
use crate::kubelet::{self, Kubelet};
use crate::registry::{self, Registry, Resources, WriteOptions};
use crate::scheduler;
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
    pub pod_cidr: kubelet::ipam::Cidr,
}

impl ClusterConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            data_dir: data_dir.into(),
            node_name: kubelet::default_node_name(),
            backoff: Backoff::default(),
            max_pods: 110,
            pod_cidr: "10.244.0.0/16".parse().expect("a valid CIDR"),
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

/// The namespaces every cluster has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Cluster {
    /// Opens the store, creates the system objects, registers the node and
    /// starts the control loops.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = RedbStore::open(&config.data_dir.join("store.redb"), StoreOptions::default())?;
        let registry = Registry::new(Arc::new(store.clone()), Resources::builtin());
        bootstrap(&registry).await?;
        let (stop, stopped) = watch::channel(false);
        let kubelet = Arc::new(Kubelet::start(registry.clone(), &config).await?);
        let mut tasks = JoinSet::new();
        tasks.spawn(kubelet.clone().run(stopped.clone()));
        tasks.spawn(scheduler::run(registry.clone(), stopped.clone()));
        tasks.spawn(controllers::namespace::run(
            registry.clone(),
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
        self.store.close();
    }
}

async fn bootstrap(registry: &Registry) -> Result<(), registry::Error> {
    let namespaces = registry.resource("", "Namespace");
    for name in SYSTEM_NAMESPACES {
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
    Ok(())
}
