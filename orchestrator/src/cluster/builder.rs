//! [`ClusterBuilder`]: what an embedder chooses before a cluster starts,
//! with defaults locked down for a library (no hostPath directories, node
//! ports on loopback, the store in memory).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::config::ClusterConfig;
use super::{Cluster, Error};

/// Where a cluster keeps its objects.
#[derive(Debug, Clone)]
pub(super) enum Storage {
    /// In memory; pods' files in a private temporary directory removed at
    /// shutdown.
    Memory,
    /// In `<dir>/store.redb`, with images, pods and certificates beside it:
    /// what `wasmkube serve` uses, and what survives a restart.
    Dir(PathBuf),
}

/// An image registered at start, from bytes or a file.
#[derive(Debug, Clone)]
pub(super) struct Registered {
    pub reference: String,
    pub source: ImageSource,
}

#[derive(Debug, Clone)]
pub(super) enum ImageSource {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Settings of a [`Cluster`] to start: made by [`Cluster::builder`].
///
/// Defaults, chosen for a program that embeds a cluster:
///
/// | setting | default |
/// |---|---|
/// | store | in memory ([`in_memory`](Self::in_memory)) |
/// | API listener | none: only [`Cluster::client`] reaches the API |
/// | node name | `wasmkube` |
/// | pods | at most 110 |
/// | hostPath volumes | refused ([`allow_host_path`](Self::allow_host_path)) |
/// | node ports | on `127.0.0.1` ([`node_port_address`](Self::node_port_address)) |
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ClusterBuilder {
    pub(super) config: ClusterConfig,
    pub(super) storage: Storage,
    pub(super) listen: Option<SocketAddr>,
    pub(super) plain_http: bool,
    pub(super) images: Vec<Registered>,
    /// CIDRs as given, checked at start (so a setter never fails).
    pub(super) pod_cidr: Option<String>,
    pub(super) service_cidr: Option<String>,
}

impl ClusterBuilder {
    pub(super) fn new() -> ClusterBuilder {
        let mut config = ClusterConfig::new(PathBuf::new());
        config.node_name = "wasmkube".into();
        config.node_port_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.allowed_host_paths = Some(Vec::new());
        ClusterBuilder {
            config,
            storage: Storage::Memory,
            listen: None,
            plain_http: false,
            images: Vec::new(),
            pod_cidr: None,
            service_cidr: None,
        }
    }

    /// Keeps the store, images, compiled code, pods' volumes and (when
    /// listening) the certificates under `dir`, so a later cluster on the
    /// same directory has every object back and runs its pods again.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Dir(dir.into());
        self
    }

    /// Keeps objects in memory only (the default): nothing is written to
    /// disk but what pods write, in a private temporary directory that
    /// shutdown removes.
    pub fn in_memory(mut self) -> Self {
        self.storage = Storage::Memory;
        self
    }

    /// Also serves the Kubernetes API over HTTPS on `address` (port 0
    /// picks a free port), for `kubectl` and other processes: see
    /// [`Cluster::kubeconfig`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = wasmkube::Cluster::builder()
    ///     .listen("127.0.0.1:0".parse()?)
    ///     .start()
    ///     .await?;
    /// let url = cluster.api_url().unwrap();
    /// assert!(url.starts_with("https://127.0.0.1:"));
    /// // What kubectl needs: the URL, the CA and the admin token.
    /// let kubeconfig = kube::config::Kubeconfig::from_yaml(cluster.kubeconfig().unwrap())?;
    /// assert_eq!(kubeconfig.clusters[0].cluster.as_ref().unwrap().server.as_deref(), Some(url));
    /// cluster.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(mut self, address: SocketAddr) -> Self {
        self.listen = Some(address);
        self
    }

    /// Serves plain HTTP instead of HTTPS; [`start`](Self::start) refuses
    /// it on an address that is not loopback.
    pub fn plain_http(mut self, plain: bool) -> Self {
        self.plain_http = plain;
        self
    }

    /// The node's name (default `wasmkube`).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.config.node_name = name.into();
        self
    }

    /// The most pods the node takes, as the kubelet's `--max-pods`.
    pub fn max_pods(mut self, pods: u32) -> Self {
        self.config.max_pods = pods;
        self
    }

    /// Registers a WebAssembly component or WASI module as the image
    /// `reference` (`name[:tag]`), whose entrypoint is the name's last path
    /// segment. Pods name it in `image:` and run it without a pull.
    ///
    /// Bytes that are not WebAssembly make [`start`](Self::start) fail:
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() {
    /// let refused = wasmkube::Cluster::builder()
    ///     .image("myapp:1.0", b"not wasm".to_vec())
    ///     .start()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(refused.to_string(), "cannot register the image myapp:1.0");
    /// # }
    /// ```
    pub fn image(mut self, reference: impl Into<String>, wasm: impl Into<Vec<u8>>) -> Self {
        self.images.push(Registered {
            reference: reference.into(),
            source: ImageSource::Bytes(wasm.into()),
        });
        self
    }

    /// Registers the component or module in the file at `path` as the
    /// image `reference`, read at start.
    pub fn image_file(mut self, reference: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.images.push(Registered {
            reference: reference.into(),
            source: ImageSource::File(path.into()),
        });
        self
    }

    /// Lets hostPath volumes use `dir` and what is below it. None may
    /// until a directory is allowed.
    pub fn allow_host_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config
            .allowed_host_paths
            .get_or_insert_with(Vec::new)
            .push(dir.into());
        self
    }

    /// Offers guests an interface of the program's own under `name` (the
    /// WIT interface it implements, as `example:kv/store`). No container
    /// gets it until it is granted: to an image
    /// ([`grant_host_interface`](Self::grant_host_interface)), or to the
    /// pods that ask for it by the `wasmkube.io/host-interfaces`
    /// annotation ([`host_interface_by_annotation`](Self::host_interface_by_annotation)).
    /// A guest that imports an interface it was not granted does not
    /// start, as one that imports anything unknown.
    ///
    /// ```
    /// use wasmkube::wasmtime::component::Linker;
    /// use wasmkube::GuestState;
    ///
    /// # async fn run() -> Result<(), wasmkube::Error> {
    /// let cluster = wasmkube::Cluster::builder()
    ///     .host_interface("example:log/sink", |linker: &mut Linker<GuestState>| {
    ///         linker.instance("example:log/sink")?.func_wrap(
    ///             "write",
    ///             |store: wasmkube::wasmtime::StoreContextMut<'_, GuestState>, (n,): (u32,)| {
    ///                 println!("{} wrote {n}", store.data().pod_name());
    ///                 Ok(())
    ///             },
    ///         )?;
    ///         Ok(())
    ///     })
    ///     .grant_host_interface("logger:1.0", "example:log/sink")
    ///     .start()
    ///     .await?;
    /// # cluster.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn host_interface(
        mut self,
        name: impl Into<String>,
        interface: impl wasmkube_runtime::HostInterface,
    ) -> Self {
        self.config
            .host_interfaces
            .insert(name, std::sync::Arc::new(interface));
        self
    }

    /// Every container whose image is `image` (as pods write it) gets the
    /// host interface `name`.
    pub fn grant_host_interface(
        mut self,
        image: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.config
            .interface_grants
            .by_image
            .push((image.into(), name.into()));
        self
    }

    /// Pods may ask for the host interface `name` with the annotation
    /// `wasmkube.io/host-interfaces: name[,other]`: whoever may create pods
    /// may then use it.
    pub fn host_interface_by_annotation(mut self, name: impl Into<String>) -> Self {
        self.config.interface_grants.by_annotation.push(name.into());
        self
    }

    /// Lets hostPath volumes use any host directory, as a kubelet does
    /// (`wasmkube serve` without `--allowed-host-paths`).
    #[doc(hidden)]
    pub fn allow_any_host_path(mut self) -> Self {
        self.config.allowed_host_paths = None;
        self
    }

    /// The host address NodePort and LoadBalancer Services listen on
    /// (default `127.0.0.1`; `0.0.0.0` serves other machines).
    pub fn node_port_address(mut self, address: IpAddr) -> Self {
        self.config.node_port_address = address;
        self
    }

    /// The network pod IPs come from (default `10.244.0.0/16`).
    pub fn pod_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.pod_cidr = Some(cidr.into());
        self
    }

    /// The network Services' cluster IPs come from (default
    /// `10.96.0.0/12`).
    pub fn service_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.service_cidr = Some(cidr.into());
        self
    }

    /// The first delay before a failed container restarts, doubling up to
    /// five minutes (default 10 s, as Kubernetes').
    pub fn restart_backoff(mut self, first: Duration) -> Self {
        self.config.backoff.initial = first;
        self
    }

    /// How long a Job waits before replacing its first failed pod, doubled
    /// for each further failure up to six minutes (default 10 s).
    pub fn job_backoff(mut self, first: Duration) -> Self {
        self.config.job_backoff.base = first;
        self
    }

    /// How long an Event is kept after it was last written (default one
    /// hour, as the API server's `--event-ttl`).
    pub fn event_ttl(mut self, ttl: Duration) -> Self {
        self.config.event_ttl = ttl;
        self
    }

    /// How images are pulled from registries: trusted CAs, plain-HTTP
    /// hosts, credentials.
    pub fn registry(mut self, registry: wasmkube_runtime::RegistryConfig) -> Self {
        self.config.registry = registry;
        self
    }

    /// The registry bare image names are pulled from when the node lacks
    /// them.
    pub fn default_registry(mut self, host: impl Into<String>) -> Self {
        self.config.default_registry = Some(host.into());
        self
    }

    /// How often containers' CPU and memory are scraped for `kubectl top`
    /// and autoscaling (default 15 s, as metrics-server's); zero turns the
    /// scrape off.
    pub fn metric_resolution(mut self, every: Duration) -> Self {
        self.config.metric_resolution = every;
        self
    }

    /// How often every HorizontalPodAutoscaler is evaluated (default
    /// 15 s), and how long one without a `behavior` waits before scaling
    /// down (default five minutes), as kube-controller-manager's
    /// `--horizontal-pod-autoscaler-sync-period` and
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub fn autoscaling(mut self, sync_period: Duration, downscale_stabilization: Duration) -> Self {
        self.config.autoscaling.sync_period = sync_period;
        self.config.autoscaling.downscale_stabilization = downscale_stabilization;
        self
    }

    /// Where images are compiled. `wasmkube serve` compiles in a child
    /// process of its own binary, so Cranelift's memory never stays in the
    /// server; an embedding program compiles in its own process unless it
    /// offers such an entry point ([`wasmkube_runtime::engine::compile_child`]).
    pub fn compiler(mut self, compiler: wasmkube_runtime::engine::Compiler) -> Self {
        self.config.compiler = compiler;
        self
    }

    /// When unused images are removed, and how often that is checked.
    pub fn image_gc(
        mut self,
        policy: wasmkube_runtime::images::gc::GcPolicy,
        period: Duration,
    ) -> Self {
        self.config.image_gc = policy;
        self.config.image_gc_period = period;
        self
    }

    /// Size at which a container's log file rotates (default 10 MiB, as
    /// the kubelet's `--container-log-max-size`). Each container instance
    /// keeps its current file and one rotated file, so its logs take at
    /// most twice this on disk.
    pub fn container_log_max_size(mut self, bytes: u64) -> Self {
        self.config.container_log_max_bytes = bytes;
        self
    }

    /// Starts the cluster: opens (or creates) the store, creates the
    /// system objects, registers the node, starts the scheduler, kubelet
    /// and controllers, and the listener when one was asked for.
    ///
    /// Must be called within a Tokio runtime; the cluster's loops run on it.
    pub async fn start(self) -> Result<Cluster, Error> {
        Cluster::start(self).await
    }
}
