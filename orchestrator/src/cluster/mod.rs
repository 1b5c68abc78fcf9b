//! A whole single-node cluster in one process: store, API, scheduler,
//! kubelet and controllers, started and stopped together.
//!
//! `wasmkube serve` runs one on a data directory behind HTTPS; a Rust
//! program embeds one with [`Cluster::builder`] and talks to it through
//! [`Cluster::client`], in-process.

mod bootstrap;
mod builder;
mod config;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, ApiState};
use crate::auth;
use crate::cidr::Cidr;
use crate::controllers;
use crate::kubelet::{self, Kubelet};
use crate::metrics::ResourceMetrics;
use crate::proxy;
use crate::registry::{self, Registry, Resources};
use crate::scheduler;
use crate::server::{self, pki};
use crate::store::seal::Sealer;
use crate::store::{RedbStore, StoreOptions};

pub use builder::ClusterBuilder;
#[doc(hidden)]
pub use config::ClusterConfig;

use builder::{ImageSource, Storage};

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (a CIDR, plain HTTP off loopback, an image
    /// reference).
    #[error("{0}")]
    Config(String),
    /// The data directory (or the temporary one) could not be made.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] crate::store::Error),
    /// The key Secrets are encrypted with could not be read or made.
    #[error("cannot read or create the encryption key {path}")]
    KeyFile {
        /// The key file (`<data dir>/encryption.key`).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The system objects could not be written.
    #[error("cannot create the system objects")]
    Bootstrap(#[from] registry::Error),
    /// The kubelet (its runtime, its built-in images) could not start.
    #[error("cannot start the kubelet")]
    Kubelet(#[from] kubelet::Error),
    /// A registered image could not be read or stored.
    #[error("cannot register the image {reference}")]
    Image {
        /// The reference it was to be stored as.
        reference: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The API's certificates could not be loaded or made.
    #[error("cannot prepare the API's certificates")]
    Pki(#[from] pki::Error),
    /// The key that signs ServiceAccount tokens could not be loaded or made.
    #[error("cannot prepare the ServiceAccount token key")]
    TokenKey(#[from] auth::tokens::KeyError),
    /// TLS could not be configured.
    #[error("cannot configure TLS")]
    Tls(#[from] server::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running single-node cluster: the Kubernetes API, scheduler, kubelet
/// and controllers, with every container a WebAssembly guest in this
/// process.
///
/// Start one with [`Cluster::builder`], talk to it with
/// [`client`](Cluster::client), stop it with
/// [`shutdown`](Cluster::shutdown). Dropping it stops it too (its pods and
/// loops in the background, on the runtime it was started on).
///
/// ```
/// use k8s_openapi::api::core::v1::Namespace;
/// use kube::api::{Api, ListParams};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = wasmkube::Cluster::builder().start().await?;
/// let namespaces: Api<Namespace> = Api::all(cluster.client());
/// let names: Vec<String> = namespaces
///     .list(&ListParams::default())
///     .await?
///     .iter()
///     .filter_map(|n| n.metadata.name.clone())
///     .collect();
/// assert!(names.contains(&"kube-system".to_string()));
/// cluster.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Cluster {
    /// What runs; `None` once it has been stopped.
    running: Option<Running>,
    /// The API's URL and kubeconfig, when it listens.
    listening: Option<Listening>,
}

/// The parts of a running cluster, stopped together by [`Running::stop`].
struct Running {
    registry: Registry,
    store: RedbStore,
    kubelet: Arc<Kubelet>,
    /// The kubelet's latest scrape, as rates: metrics.k8s.io's source.
    metrics: Arc<ResourceMetrics>,
    /// The API's request counts and latencies, shared by every router
    /// made for the cluster.
    api_metrics: Arc<crate::metrics::apiserver::ApiMetrics>,
    /// Signs and checks ServiceAccount tokens.
    signer: Arc<auth::Signer>,
    /// Tells every loop (and the listener) to stop.
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// An in-memory cluster's directories (pods' files on disk; images
    /// and compiled code in memory where there is a tmpfs), removed last.
    scratch: Vec<tempfile::TempDir>,
}

/// Where the API is served, for clients outside the process.
struct Listening {
    url: String,
    kubeconfig: String,
    /// The CA and its key, for users' certificates (`None` over plain
    /// HTTP, where clients present none).
    pki: Option<pki::Pki>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.api_url())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Settings for a new cluster, with an embedder's defaults (see
    /// [`ClusterBuilder`]).
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::new()
    }

    async fn start(builder: ClusterBuilder) -> Result<Cluster, Error> {
        let ClusterBuilder {
            mut config,
            storage,
            listen,
            plain_http,
            images,
            pod_cidr,
            service_cidr,
        } = builder;
        if let Some(cidr) = pod_cidr {
            config.pod_cidr = parse_cidr("pod", &cidr)?;
        }
        if let Some(cidr) = service_cidr {
            config.service_network.cidr = parse_cidr("service", &cidr)?;
        }
        if let Some(address) = listen
            && plain_http
            && !address.ip().is_loopback()
        {
            return Err(Error::Config(format!(
                "plain HTTP serves without TLS, so it is allowed on loopback addresses only (not {})",
                address.ip()
            )));
        }
        let resources = Resources::builtin();
        let (store, scratch) = open_storage(&storage, &resources, &mut config)?;
        let registry = Registry::with_service_network(
            Arc::new(store.clone()),
            resources,
            config.service_network.clone(),
        );
        bootstrap::bootstrap(&registry).await?;
        crate::custom::controller::load(&registry)?;
        let signer = Arc::new(match &storage {
            Storage::Dir(dir) => {
                auth::Signer::load_or_create(&dir.join("pki").join("service-account.key"))?
            }
            Storage::Memory => auth::Signer::generate()?.0,
        });
        let kubelet =
            Arc::new(Kubelet::start(registry.clone(), &config, Arc::clone(&signer)).await?);
        for image in images {
            register_image(&kubelet, image)?;
        }
        // Pod and Service addresses never leave the host; the rest is egress.
        let service_cidr = config.service_network.cidr;
        kubelet.cluster_net().set_internal_networks(&[
            (config.pod_cidr.nth(0), config.pod_cidr.prefix()),
            (service_cidr.nth(0), service_cidr.prefix()),
        ]);
        let (stop, stopped) = watch::channel(false);
        let metrics = Arc::new(ResourceMetrics::default());
        let tasks = spawn_loops(&registry, &kubelet, &metrics, &config, &stopped);
        let mut running = Running {
            metrics,
            api_metrics: Arc::default(),
            registry,
            store,
            kubelet,
            signer,
            stop,
            tasks,
            scratch,
        };
        let listening = match listen {
            None => None,
            Some(address) => {
                match serve_api(
                    &mut running,
                    &config,
                    &storage,
                    address,
                    plain_http,
                    stopped,
                )
                .await
                {
                    Ok(listening) => Some(listening),
                    Err(e) => {
                        running.stop().await;
                        return Err(e);
                    }
                }
            }
        };
        Ok(Cluster {
            running: Some(running),
            listening,
        })
    }

    /// A `kube::Client` onto this cluster that calls its API in-process:
    /// no socket, no TLS, no token (it acts as the cluster's admin).
    ///
    /// Every client libraries' feature works through it: watches, patches
    /// of every kind, server-side apply, subresources, pod logs.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.running().router(None), "default")
    }

    /// The API's URL, when the cluster listens (see
    /// [`ClusterBuilder::listen`]).
    pub fn api_url(&self) -> Option<&str> {
        self.listening.as_ref().map(|l| l.url.as_str())
    }

    /// A kubeconfig (YAML) for the listening API: its URL, the CA that
    /// signed its certificate and the admin token. Write it to a file
    /// (readable by its owner only: it holds the token) for `kubectl`, or
    /// parse it with `kube::config::Kubeconfig::from_yaml`.
    pub fn kubeconfig(&self) -> Option<&str> {
        self.listening.as_ref().map(|l| l.kubeconfig.as_str())
    }

    /// A kubeconfig (YAML) for the listening API as `user` in `groups`,
    /// with a client certificate the cluster's CA signs (valid a year),
    /// its context in `namespace`. What the user may do is what RBAC
    /// grants the name and groups. `None` when the cluster does not
    /// listen over HTTPS.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str], namespace: &str) -> Option<String> {
        let listening = self.listening.as_ref()?;
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        server::kubeconfig::for_user_of(
            &listening.url,
            listening.pki.as_ref()?,
            user,
            &groups,
            namespace,
            server::kubeconfig::USER_CERTIFICATE_DAYS,
        )
        .ok()
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `path`, mode 0600,
    /// atomically; does nothing when the cluster does not listen.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        match self.kubeconfig() {
            Some(text) => server::write_file(path, text, 0o600),
            None => Ok(()),
        }
    }

    /// Stops the listener, the control loops and every pod (their preStop
    /// hooks and grace periods observed), then closes the store with
    /// everything acknowledged written, and removes an in-memory cluster's
    /// files.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    #[doc(hidden)]
    pub fn registry(&self) -> &Registry {
        &self.running().registry
    }

    /// The pods' and Services' network of the node.
    #[doc(hidden)]
    pub fn network(&self) -> Arc<wasmkube_runtime::net::ClusterNet> {
        self.running().kubelet.cluster_net()
    }

    fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("a cluster runs until shutdown, which consumes it")
    }
}

impl Drop for Cluster {
    /// Stops what [`Cluster::shutdown`] stops, in the background on the
    /// runtime it was started on (a drop cannot wait); without one, the
    /// loops are cancelled and the pods' guests stop with the runtime.
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(true);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(running.stop());
            }
            Err(_) => drop(running),
        }
    }
}

impl Running {
    /// The API, authenticating with `token` when given.
    fn router(&self, token: Option<Arc<str>>) -> Router {
        api::router(ApiState {
            registry: self.registry.clone(),
            auth: Arc::new(auth::Authenticator::new(token, Arc::clone(&self.signer))),
            logs: Some(self.kubelet.clone()),
            streams: Some(self.kubelet.clone()),
            metrics: Arc::clone(&self.metrics),
            api_metrics: Arc::clone(&self.api_metrics),
        })
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.kubelet.shutdown().await;
        self.registry.stop_caches();
        self.store.close();
        for scratch in self.scratch.drain(..) {
            let path = scratch.path().to_path_buf();
            if let Err(e) = scratch.close() {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Opens the store `storage` names, and says in `config` where the
/// cluster's files go. Secrets are encrypted at rest: with a key file
/// beside a store on disk, with a key that never leaves memory for one in
/// memory. An in-memory cluster's directories come back with it, to be
/// removed when it stops.
fn open_storage(
    storage: &Storage,
    resources: &Resources,
    config: &mut ClusterConfig,
) -> Result<(RedbStore, Vec<tempfile::TempDir>), Error> {
    let secrets = resources
        .by_kind("", "Secret")
        .map(|r| r.prefix())
        .into_iter()
        .collect();
    let with_sealer = |sealer| StoreOptions {
        sealer: Some(Arc::new(sealer)),
        ..StoreOptions::default()
    };
    match storage {
        Storage::Dir(dir) => {
            config.data_dir = dir.clone();
            // The data dir holds the store, the key and volumes: nobody
            // but the server's user enters it.
            kubelet::private_dir::secure_data_dir(dir).map_err(|source| Error::DataDir {
                path: dir.clone(),
                source,
            })?;
            let key_file = dir.join("encryption.key");
            let sealer =
                Sealer::from_key_file(&key_file, secrets).map_err(|source| Error::KeyFile {
                    path: key_file.clone(),
                    source,
                })?;
            let store = RedbStore::open(&dir.join("store.redb"), with_sealer(sealer))?;
            Ok((store, Vec::new()))
        }
        Storage::Memory => {
            let pods = tempfile::Builder::new()
                .prefix("wasmkube-")
                .tempdir()
                .map_err(|source| Error::DataDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
            config.data_dir = pods.path().to_path_buf();
            let mut scratch = vec![pods];
            // Images and compiled code are the cluster's, not the pods':
            // in memory too, where the host has a tmpfs.
            let shm = Path::new("/dev/shm");
            if shm.is_dir()
                && let Ok(artifacts) = tempfile::Builder::new()
                    .prefix("wasmkube-images-")
                    .tempdir_in(shm)
            {
                config.artifacts_dir = Some(artifacts.path().to_path_buf());
                scratch.push(artifacts);
            }
            let sealer = Sealer::ephemeral(secrets).map_err(|source| Error::KeyFile {
                path: PathBuf::from("(in memory)"),
                source,
            })?;
            Ok((RedbStore::in_memory(with_sealer(sealer))?, scratch))
        }
    }
}

fn parse_cidr(what: &str, text: &str) -> Result<Cidr, Error> {
    text.parse()
        .map_err(|e| Error::Config(format!("the {what} CIDR {text:?}: {e}")))
}

/// Stores an image the builder registered.
fn register_image(kubelet: &Kubelet, image: builder::Registered) -> Result<(), Error> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Image {
        reference: image.reference.clone(),
        source,
    };
    let bytes = match &image.source {
        ImageSource::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
        ImageSource::File(path) => {
            std::borrow::Cow::Owned(std::fs::read(path).map_err(|e| failed(Box::new(e)))?)
        }
    };
    kubelet
        .import_image(&image.reference, &bytes)
        .map_err(|e| failed(Box::new(e)))
}

/// The control loops: scheduler, kubelet, controllers, proxy, event expiry.
fn spawn_loops(
    registry: &Registry,
    kubelet: &Arc<Kubelet>,
    metrics: &Arc<ResourceMetrics>,
    config: &ClusterConfig,
    stopped: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(kubelet.clone().run(stopped.clone()));
    if !config.metric_resolution.is_zero() {
        tasks.spawn(kubelet.clone().scrape_metrics(
            Arc::clone(metrics),
            config.metric_resolution,
            stopped.clone(),
        ));
    }
    tasks.spawn(controllers::hpa::run(
        registry.clone(),
        Arc::clone(metrics),
        config.autoscaling,
        stopped.clone(),
    ));
    tasks.spawn(scheduler::run(registry.clone(), stopped.clone()));
    tasks.spawn(controllers::namespace::run(
        registry.clone(),
        stopped.clone(),
    ));
    tasks.spawn(controllers::service_accounts::run(
        registry.clone(),
        stopped.clone(),
    ));
    tasks.spawn(controllers::cluster_roles::run(
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
    tasks.spawn(controllers::resource_quota::run(
        registry.clone(),
        stopped.clone(),
    ));
    tasks.spawn(controllers::garbage::run(registry.clone(), stopped.clone()));
    tasks.spawn(crate::custom::controller::run(
        registry.clone(),
        stopped.clone(),
    ));
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
    tasks.spawn(crate::network_policy::run(
        registry.clone(),
        kubelet.network_policies(),
        stopped.clone(),
    ));
    tasks.spawn(proxy::run(
        registry.clone(),
        kubelet.cluster_net(),
        config.node_port_address,
        stopped.clone(),
    ));
    tasks
}

/// Binds `address`, points the `kubernetes` Service at it and serves the
/// API there (HTTPS with the cluster's CA unless `plain_http`) until the
/// cluster stops.
async fn serve_api(
    running: &mut Running,
    config: &ClusterConfig,
    storage: &Storage,
    address: SocketAddr,
    plain_http: bool,
    mut stopped: watch::Receiver<bool>,
) -> Result<Listening, Error> {
    // What clients reach the API by: this machine, and inside the cluster
    // the `kubernetes` Service's names and cluster IP (as in-cluster
    // clients verify them).
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        config.node_name.clone(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
        running.registry.service_network().api_address().to_string(),
    ];
    if !address.ip().is_unspecified() && !address.ip().is_loopback() {
        names.push(address.ip().to_string());
    }
    let pki = match storage {
        Storage::Dir(dir) => pki::load_or_create(&dir.join("pki"), &names)?,
        Storage::Memory => pki::generate(&names)?,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Listen { address, source })?;
    if !plain_http {
        // Pods get credentials for the API (a token and this CA) from now.
        running.registry.set_cluster_ca(&pki.ca_pem);
        running.tasks.spawn(controllers::root_ca::run(
            running.registry.clone(),
            stopped.clone(),
        ));
    }
    // Pods reach the API only through the `kubernetes` Service: straight
    // to the listener (on any of the host's addresses) is refused.
    running.kubelet.cluster_net().set_host_only(vec![bound]);
    bootstrap::publish_api(&running.registry, bound).await?;
    let host = if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST).to_string()
    } else if bound.is_ipv6() {
        format!("[{}]", bound.ip())
    } else {
        bound.ip().to_string()
    };
    let scheme = if plain_http { "http" } else { "https" };
    let url = format!("{scheme}://{host}:{}", bound.port());
    let kubeconfig = server::kubeconfig(
        &url,
        (!plain_http).then_some(pki.ca_pem.as_str()),
        &pki.token,
    );
    let tls = if plain_http {
        None
    } else {
        Some(server::tls_config(&pki)?)
    };
    let router = running.router(Some(pki.token.clone().into()));
    running.tasks.spawn(async move {
        let stop = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(e) = server::serve(listener, router, tls, stop).await {
            tracing::error!("serving the API failed: {e}");
        }
    });
    Ok(Listening {
        url,
        kubeconfig,
        pki: (!plain_http).then_some(pki),
    })
}
