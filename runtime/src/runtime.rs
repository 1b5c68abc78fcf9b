//! The runtime as a whole: configuration, the shared engine and linker, the
//! image store, the cache of instantiation-ready images, and the tokio
//! runtime guests run on (never the caller's, so a busy guest cannot starve
//! an API server living in the same process).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::container::{GuestState, StartError};
use crate::engine::{self, Engine, Purpose};
use crate::images::credentials::Keyring;
use crate::images::registry::{PullError, Registry, RegistryConfig};
use crate::images::{self, Image, ImageStore, is_path_reference};
use crate::net::ClusterNet;
use crate::roots::Janitor;
use crate::sandbox::{self, Sandbox, SandboxSpec};

/// A linker guests of many containers are instantiated with.
type SharedLinker = Arc<Linker<GuestState>>;

/// An image ready to instantiate: a command (`wasi:cli/run`) or an HTTP
/// handler (`wasi:http/proxy`, served on the container's ports).
#[derive(Clone)]
pub(crate) enum Prepared {
    Command(CommandPre<GuestState>),
    Proxy(ProxyPre<GuestState>),
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Ask the registry every time.
    Always,
    /// Pull only what the store lacks.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// What [`Runtime::pull_image`] did.
#[derive(Debug, Clone)]
pub enum PullOutcome {
    /// The image was there and the policy did not ask the registry.
    Present(Image),
    /// The registry was asked.
    Pulled {
        /// The image now.
        image: Image,
        /// Whether anything was downloaded.
        fetched: bool,
        /// The image's size on disk.
        size: u64,
    },
}

impl PullOutcome {
    /// The image, however it came.
    pub fn image(&self) -> &Image {
        match self {
            PullOutcome::Present(image) | PullOutcome::Pulled { image, .. } => image,
        }
    }
}

/// Errors creating the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not be set up.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] images::Error),
    /// The data directory or the guest threads could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// wasmtime refused to link WASI.
    #[error("linking WASI: {0:#}")]
    Link(#[source] wasmtime::Error),
}

/// Size at which a container's log file rotates unless configured: the
/// kubelet's `--container-log-max-size` default.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 << 20;

/// Settings of a [`Runtime`]. Build with [`RuntimeConfig::new`] and adjust.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of everything on disk: `images/`, `cache/`, `pods/`.
    pub data_dir: PathBuf,
    /// Where `images/` and `cache/` (compiled code) live instead, when not
    /// in the data directory: an in-memory cluster keeps them in memory
    /// (tmpfs), so only what pods write reaches the disk.
    pub artifacts_dir: Option<PathBuf>,
    /// Threads of the guest tokio runtime (default: the host's CPU count).
    pub guest_threads: usize,
    /// Epoch tick: how often a computing guest is interrupted to check its
    /// CPU quota and kill switch (default 1 ms).
    pub epoch_tick: Duration,
    /// CPU quota period; a limit of 200m grants 20 ms per 100 ms (default 100 ms).
    pub cpu_period: Duration,
    /// Size at which a container's log file rotates (default 10 MiB).
    pub log_max_bytes: u64,
    /// How registries are reached: TLS roots, plain-HTTP hosts, credentials.
    pub registry: RegistryConfig,
    /// Where bare names that are not in the store are pulled from.
    pub default_registry: Option<String>,
    /// The embedder's own interfaces, linked into the containers granted
    /// them ([`ContainerSpec::host_interfaces`](crate::ContainerSpec)).
    pub host_interfaces: crate::host::HostInterfaces,
    /// Where images are compiled (default: in this process).
    pub compiler: crate::engine::Compiler,
}

impl RuntimeConfig {
    /// Defaults, rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            data_dir: data_dir.into(),
            artifacts_dir: None,
            guest_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            epoch_tick: Duration::from_millis(1),
            cpu_period: Duration::from_millis(100),
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            registry: RegistryConfig::default(),
            default_registry: None,
            host_interfaces: crate::host::HostInterfaces::default(),
            compiler: crate::engine::Compiler::InProcess,
        }
    }
}

/// The WebAssembly runtime: cheap to clone, shared by every pod.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<RuntimeShared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.shared.config.data_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct RuntimeShared {
    config: RuntimeConfig,
    engine: Engine,
    images: ImageStore,
    /// Pulls from registries into `images`.
    registry: Registry,
    linker: Arc<Linker<GuestState>>,
    /// The same imports on the handlers' engine, made with it.
    handler_linker: OnceLock<Arc<Linker<GuestState>>>,
    /// Linkers with host interfaces of the embedder's, by whether they are
    /// the handlers' and the interfaces' names.
    granted: Mutex<HashMap<(bool, Vec<String>), SharedLinker>>,
    /// One permit per live handler instance: requests beyond the pool wait.
    handler_slots: Arc<tokio::sync::Semaphore>,
    /// Images ready to instantiate, by component digest and the host
    /// interfaces they are linked with.
    ready: Mutex<HashMap<(String, Vec<String>), Prepared>>,
    /// Where guests are spawned; once the runtime below is shut down,
    /// what is spawned is cancelled at once.
    guests: tokio::runtime::Handle,
    /// Owns the guests' threads until [`Runtime::shutdown`] or drop.
    guest_threads: Mutex<Option<tokio::runtime::Runtime>>,
    /// Prepares and deletes container roots in the background.
    janitor: Janitor,
    /// Which pod answers at which pod IP.
    cluster_net: Arc<ClusterNet>,
}

impl Drop for RuntimeShared {
    fn drop(&mut self) {
        // Dropping a tokio runtime blocks, which panics inside async code.
        let threads = self
            .guest_threads
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = threads.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    /// Opens the data directory and starts the engine and guest threads.
    pub fn new(config: RuntimeConfig) -> Result<Self, Error> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        std::fs::create_dir_all(config.data_dir.join("pods"))
            .map_err(io("creating the data directory"))?;
        raise_open_file_limit();
        let artifacts = config.artifacts_dir.as_ref().unwrap_or(&config.data_dir);
        let engine = Engine::new(
            &artifacts.join("cache/compiled"),
            config.epoch_tick,
            config.compiler.clone(),
        )?;
        let images = ImageStore::open(artifacts.join("images"))?
            .with_default_registry(config.default_registry.clone());
        let registry = Registry::new(images.clone(), config.registry.clone());
        let linker = link(engine.wasmtime())?;
        let guests = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.guest_threads.max(1))
            .thread_name("wasmkube-guest")
            .enable_all()
            .build()
            .map_err(io("starting the guest threads"))?;
        Ok(Runtime {
            shared: Arc::new(RuntimeShared {
                config,
                engine,
                images,
                registry,
                linker: Arc::new(linker),
                handler_linker: OnceLock::new(),
                granted: Mutex::default(),
                handler_slots: Arc::new(tokio::sync::Semaphore::new(
                    engine::HANDLER_INSTANCES as usize,
                )),
                ready: Mutex::new(HashMap::new()),
                guests: guests.handle().clone(),
                guest_threads: Mutex::new(Some(guests)),
                janitor: Janitor::start(),
                cluster_net: Arc::default(),
            }),
        })
    }

    /// Stops every guest still running and joins the guest threads (at
    /// most a second for a guest that does not yield). Containers started
    /// after this fail at once.
    pub async fn shutdown(&self) {
        let threads = self
            .shared
            .guest_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(threads) = threads {
            let joined = tokio::task::spawn_blocking(move || {
                threads.shutdown_timeout(Duration::from_secs(1));
            });
            let _ = joined.await;
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.shared.images
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The registries' client.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Collects images no pod uses (`in_use`: the images pods name, as
    /// written in their specs) as `policy` says; the built-ins stay. Their
    /// compiled code goes from memory too.
    pub async fn collect_images(
        &self,
        policy: crate::images::gc::GcPolicy,
        in_use: &[String],
    ) -> Result<crate::images::gc::GcReport, images::Error> {
        let store = &self.shared.images;
        let in_use = in_use
            .iter()
            .filter_map(|r| store.canonical(r).ok())
            .map(|r| r.to_string())
            .collect();
        let pinned = crate::builtin::IMAGES.iter().map(|i| i.name).collect();
        let report = self.shared.registry.collect(policy, in_use, pinned).await?;
        self.shared
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(digest, _), _| !report.dropped_components.contains(digest));
        self.shared.engine.unload(&report.dropped_components);
        Ok(report)
    }

    /// Whether the store has `reference` (a file reference always counts).
    pub fn has_image(&self, reference: &str) -> bool {
        is_path_reference(reference)
            || self
                .shared
                .images
                .canonical(reference)
                .is_ok_and(|r| self.shared.images.record(&r).ok().flatten().is_some())
    }

    /// Makes `reference` present as `policy` asks, as a kubelet does
    /// before it starts a container: `Never` uses what is there,
    /// `IfNotPresent` pulls what is missing, `Always` asks the registry
    /// what the tag names now (and downloads only when that moved).
    /// Built-in, imported and file images are always present. `keyring`
    /// holds the pod's pull secrets.
    pub async fn pull_image(
        &self,
        reference: &str,
        policy: PullPolicy,
        keyring: &Keyring,
    ) -> Result<PullOutcome, PullError> {
        let images = &self.shared.images;
        if is_path_reference(reference) {
            return images
                .resolve(reference)
                .map(PullOutcome::Present)
                .map_err(|e| PullError::Store {
                    reference: reference.to_string(),
                    message: e.to_string(),
                });
        }
        let canonical = images
            .canonical(reference)
            .map_err(|e| PullError::Invalid {
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let present = images.record(&canonical).ok().flatten();
        let local = canonical.registry.is_none();
        match (policy, present) {
            (_, Some(record)) if local => Ok(PullOutcome::Present(images.image(reference, record))),
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(record)) => {
                Ok(PullOutcome::Present(images.image(reference, record)))
            }
            (PullPolicy::Never, None) => Err(PullError::NeverPull {
                reference: reference.to_string(),
            }),
            _ if local => Err(PullError::NotFound {
                reference: reference.to_string(),
            }),
            _ => {
                let pulled = self.shared.registry.pull(&canonical, keyring).await?;
                Ok(PullOutcome::Pulled {
                    size: pulled.record.size,
                    fetched: pulled.fetched,
                    image: images.image(reference, pulled.record),
                })
            }
        }
    }

    /// Makes an image ready to run (resolve, convert, compile or load from
    /// the compile cache), so a later start pays only instantiation.
    pub async fn prepare_image(&self, reference: &str) -> Result<Image, StartError> {
        self.shared
            .load(reference, &[])
            .await
            .map(|(image, _)| image)
    }

    /// The pod IPs of the pods this runtime hosts.
    pub fn cluster_net(&self) -> &Arc<ClusterNet> {
        self.shared.cluster_net()
    }

    /// Creates the home of a pod (reusing it if it exists: volumes survive).
    pub fn run_pod_sandbox(&self, spec: SandboxSpec) -> Result<Sandbox, sandbox::Error> {
        Sandbox::create(Arc::clone(&self.shared), spec)
    }
}

/// A linker with everything a guest may import: WASI p2 with the pod's own
/// sockets and name lookup shadowing wasmtime-wasi's, wasi:http, and file
/// ownership.
fn link(engine: &wasmtime::Engine) -> Result<Linker<GuestState>, Error> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::Link)?;
    crate::net::tcp::add_to_linker(&mut linker, |s: &mut GuestState| {
        crate::net::tcp::PodTcpView {
            table: &mut s.table,
            net: &s.net,
        }
    })
    .map_err(Error::Link)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(Error::Link)?;
    crate::net::udp::add_to_linker(&mut linker, |s: &mut GuestState| {
        crate::net::tcp::PodTcpView {
            table: &mut s.table,
            net: &s.net,
        }
    })
    .map_err(Error::Link)?;
    crate::net::dns::add_to_linker(&mut linker, |s: &mut GuestState| {
        crate::net::tcp::PodTcpView {
            table: &mut s.table,
            net: &s.net,
        }
    })
    .map_err(Error::Link)?;
    crate::host_wit::add_to_linker(&mut linker).map_err(Error::Link)?;
    Ok(linker)
}

/// Every container holds a few descriptors (its log, its preopened
/// directories), and every API connection one: a thousand pods need more
/// than the usual soft limit of 1024, so raise it to the hard limit, as
/// servers commonly do. Returns the soft limit now in effect.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill and setrlimit to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

impl RuntimeShared {
    pub(crate) fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pods_dir(&self) -> PathBuf {
        self.config.data_dir.join("pods")
    }

    pub(crate) fn janitor(&self) -> &Janitor {
        &self.janitor
    }

    pub(crate) fn cluster_net(&self) -> &Arc<ClusterNet> {
        &self.cluster_net
    }

    pub(crate) fn spawn_guest<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.guests.spawn(future)
    }

    /// Resolves an image and returns it ready to instantiate, linked with
    /// the named host interfaces.
    pub(crate) async fn load(
        self: &Arc<Self>,
        reference: &str,
        interfaces: &[String],
    ) -> Result<(Image, Prepared), StartError> {
        let image = self.images.resolve(reference)?;
        let pre = self.prepare(&image, interfaces).await?;
        Ok((image, pre))
    }

    /// An image's component ready to instantiate (compiled once per digest,
    /// linked once per set of host interfaces).
    async fn prepare(
        self: &Arc<Self>,
        image: &Image,
        interfaces: &[String],
    ) -> Result<Prepared, StartError> {
        let mut interfaces = interfaces.to_vec();
        interfaces.sort();
        interfaces.dedup();
        let key = (image.digest.clone(), interfaces);
        if let Some(pre) = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(pre.clone());
        }
        // Compiling takes long: keep it off the async threads.
        let shared = Arc::clone(self);
        let img = image.clone();
        let granted = key.1.clone();
        let pre = tokio::task::spawn_blocking(move || shared.instantiate_pre(&img, &granted))
            .await
            .map_err(|e| StartError::NotCommand {
                image: image.reference.clone(),
                message: e.to_string(),
            })??;
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, pre.clone());
        Ok(pre)
    }

    /// In an image with files, the component argv\[0\] names (which may
    /// be another WebAssembly file than the entrypoint's), as a container
    /// runtime execs the file its command names. A name that is no
    /// WebAssembly file of the image fails as exec would.
    pub(crate) async fn load_program(
        self: &Arc<Self>,
        image: Image,
        prepared: Prepared,
        spec: &crate::container::ContainerSpec,
        argv: &[String],
    ) -> Result<(Image, Prepared), StartError> {
        let Some(argv0) = argv.first() else {
            return Ok((image, prepared));
        };
        // The spec's env wins over the image's, as in the guest's env.
        let path_env = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .or(image.config.path());
        let working_dir = crate::container::working_dir(spec, &image).unwrap_or_else(|| "/".into());
        let Some((digest, path)) = image.program(argv0, path_env, &working_dir) else {
            return Err(StartError::NotCommand {
                image: image.reference.clone(),
                message: format!(
                    "exec: {argv0:?}: executable file not found in $PATH (the image's WebAssembly files: {})",
                    image
                        .programs
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        if digest == image.digest {
            return Ok((image, prepared));
        }
        let image = Image {
            digest,
            path,
            ..image
        };
        let prepared = self.prepare(&image, &spec.host_interfaces).await?;
        Ok((image, prepared))
    }

    fn instantiate_pre(
        &self,
        image: &Image,
        interfaces: &[String],
    ) -> Result<Prepared, StartError> {
        let path: &Path = &image.path;
        let read = || std::fs::read(path);
        let component = self
            .engine
            .component(&image.digest, Purpose::Command, read)?;
        let not_command = |e: wasmtime::Error| StartError::NotCommand {
            image: image.reference.clone(),
            message: format!("{e:#}"),
        };
        let exports: Vec<String> = component
            .component_type()
            .exports(self.engine.wasmtime())
            .map(|(name, _)| name.to_string())
            .collect();
        let serves_http = !exports.iter().any(|e| e.starts_with("wasi:cli/run@"))
            && exports
                .iter()
                .any(|e| e.starts_with("wasi:http/incoming-handler@"));
        if serves_http {
            let component = self
                .engine
                .component(&image.digest, Purpose::Handler, read)?;
            let pre = self
                .linker_for(true, interfaces, image)?
                .instantiate_pre(&component)
                .map_err(not_command)?;
            return ProxyPre::new(pre).map(Prepared::Proxy).map_err(not_command);
        }
        let pre = self
            .linker_for(false, interfaces, image)?
            .instantiate_pre(&component)
            .map_err(not_command)?;
        CommandPre::new(pre)
            .map(Prepared::Command)
            .map_err(not_command)
    }

    /// The linker for commands or handlers (on the handlers' engine, when
    /// they have their own) with the named host interfaces.
    fn linker_for(
        &self,
        handler: bool,
        interfaces: &[String],
        image: &Image,
    ) -> Result<Arc<Linker<GuestState>>, StartError> {
        let handler = handler && self.engine.handlers_pooled();
        let failed = |message: String| StartError::NotCommand {
            image: image.reference.clone(),
            message,
        };
        let engine = if handler {
            self.engine.handlers()
        } else {
            self.engine.wasmtime()
        };
        if interfaces.is_empty() {
            if !handler {
                return Ok(Arc::clone(&self.linker));
            }
            if let Some(linker) = self.handler_linker.get() {
                return Ok(Arc::clone(linker));
            }
            let linker = Arc::new(link(engine).map_err(|e| failed(e.to_string()))?);
            return Ok(Arc::clone(self.handler_linker.get_or_init(|| linker)));
        }
        let key = (handler, interfaces.to_vec());
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(linker) = granted.get(&key) {
            return Ok(Arc::clone(linker));
        }
        let mut linker = link(engine).map_err(|e| failed(e.to_string()))?;
        for name in interfaces {
            let interface =
                self.config.host_interfaces.get(name).ok_or_else(|| {
                    failed(format!("host interface {name:?} is not offered here"))
                })?;
            interface
                .add_to_linker(&mut linker)
                .map_err(|e| failed(format!("linking host interface {name:?}: {e:#}")))?;
        }
        let linker = Arc::new(linker);
        granted.insert(key, Arc::clone(&linker));
        Ok(linker)
    }

    /// A slot for one handler instance; held until its store is dropped.
    pub(crate) async fn handler_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.handler_slots)
            .acquire_owned()
            .await
            .expect("the handler slots are never closed")
    }
}
