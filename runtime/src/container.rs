//! One container instance: a WASI command component instantiated in its
//! own store with its pod's mounts, env and limits, run to completion on the
//! guest tokio runtime, and its end turned into an [`ExitStatus`].

use bytes::Bytes;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::console::Console;
use crate::exec::WINDOW;
use crate::exit::exit_status;
pub use crate::exit::{EXIT_OOM, EXIT_STOPPED, EXIT_TRAP, ExitReason, ExitStatus};
use crate::images::Image;
use crate::limits::{
    CpuAccount, CpuMetered, Limits, MemoryLimiter, TickAction, Usage, UsageSnapshot,
};
use crate::logs::{self, LineObserver, LogOutput, LogSink, Stream};
use crate::net::PodNet;
use crate::ownership::MountTable;
use crate::runtime::Prepared;
use crate::sandbox::{Sandbox, sub_path};
use crate::stdio::{GuestInput, GuestOutput};

/// Errors that stop a container from starting (its own failures later are
/// an [`ExitStatus`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The image cannot be found or read (`ErrImagePull` in Kubernetes terms).
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    /// The image is not a runnable WASI command component.
    #[error("image {image:?} cannot run as a WASI command: {message}")]
    NotCommand {
        /// The image.
        image: String,
        /// Why (missing export, unknown imports...).
        message: String,
    },
    /// The component failed to compile.
    #[error(transparent)]
    Compile(#[from] crate::engine::Error),
    /// The container spec cannot be honoured (a mount of an unknown volume, ...).
    #[error("container {container:?}: {message}")]
    Invalid {
        /// The container.
        container: String,
        /// What is wrong.
        message: String,
    },
    /// Preparing its directories or log failed.
    #[error("container {container:?}: {path}: {source}")]
    Io {
        /// The container.
        container: String,
        /// The path involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// What one container is accounted and stopped by: its usage, its kill
/// switch and its CPU quota.
pub(crate) struct Accounts {
    pub(crate) usage: Arc<Usage>,
    pub(crate) kill: Arc<KillSwitch>,
    pub(crate) cpu: Arc<CpuAccount>,
}

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The pod volume's name.
    pub volume: String,
    /// Absolute path inside the container.
    pub mount_path: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Mount only this relative path of the volume (created if missing).
    pub sub_path: Option<String>,
}

/// How to run one container. `command` and `args` follow Kubernetes: an
/// empty `command` means the image's entrypoint, and the image's cmd is used
/// only when both are empty.
#[derive(Clone, Default)]
pub struct ContainerSpec {
    /// Unique within the pod.
    pub name: String,
    /// `name[:tag]` in the image store, or a path to a `.wasm` file.
    pub image: String,
    /// Replaces the image's entrypoint; argv\[0\] is `command[0]` as written.
    pub command: Vec<String>,
    /// Replaces the image's cmd.
    pub args: Vec<String>,
    /// Environment, applied over the image's, in order.
    pub env: Vec<(String, String)>,
    /// Initial working directory (the guest also gets it as `PWD`).
    pub working_dir: Option<String>,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Memory and CPU limits.
    pub limits: Limits,
    /// Bytes fed to stdin, then end-of-file. `None`: stdin is closed
    /// (unless `open_stdin`).
    pub stdin: Option<Bytes>,
    /// Keeps stdin open for clients that attach (`stdin: true`): the
    /// container reads what they send.
    pub open_stdin: bool,
    /// The first attached client's end of input ends the container's stdin
    /// (`stdinOnce`).
    pub stdin_once: bool,
    /// Runs on a terminal (`tty: true`), which attached clients share.
    pub tty: bool,
    /// Sees each output line as it is written (besides the log file).
    pub output: Option<Arc<dyn LineObserver>>,
    /// Startup, liveness and readiness probes (run by the pod's supervisor).
    pub probes: crate::probe::Probes,
    /// The TCP ports the container declares (`containerPort`): where a
    /// `wasi:http/proxy` image is served.
    pub ports: Vec<u16>,
    /// The embedder's host interfaces the container is granted, by the
    /// names the runtime offers them under.
    pub host_interfaces: Vec<String>,
    /// The user its processes show as (`runAsUser`); root when unset.
    pub run_as_user: Option<u32>,
    /// Joins the process namespace of this other container of the pod (a
    /// debug container's target) rather than having its own.
    pub process_namespace: Option<String>,
}

impl std::fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env)
            .field("working_dir", &self.working_dir)
            .field("mounts", &self.mounts)
            .field("limits", &self.limits)
            .field("probes", &self.probes)
            .field("ports", &self.ports)
            .field("host_interfaces", &self.host_interfaces)
            .field("run_as_user", &self.run_as_user)
            .field("process_namespace", &self.process_namespace)
            .finish_non_exhaustive()
    }
}

/// The store data of one guest: what a host function is called with.
pub struct GuestState {
    /// Which pod and container the guest runs for.
    identity: Arc<GuestIdentity>,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limiter: MemoryLimiter,
    kill: Arc<KillSwitch>,
    cpu: Arc<CpuAccount>,
    /// For `wasmkube:host/file-owner`: which host directory backs which path.
    pub(crate) mounts: MountTable,
    /// The pod's network, for the runtime's own `wasi:sockets/tcp`.
    pub(crate) net: Arc<PodNet>,
    /// For `wasmkube:host/terminal`: the terminal the guest runs on, if any.
    pub(crate) terminal: Option<Arc<crate::terminal::Terminal>>,
    /// For `wasmkube:host/processes`: the guest's entry in its pod's
    /// process table, which it leaves with the store.
    pub(crate) process: Option<crate::processes::Process>,
    http: wasmtime_wasi_http::WasiHttpCtx,
    /// Sends the guest's outgoing `wasi:http` requests through the pod's
    /// network.
    http_out: crate::net::http_out::PodHttp,
    /// Counts this guest in [`live_guests`] while its store exists.
    _live: LiveGuest,
}

/// Guests whose stores exist in this process (all runtimes).
static LIVE_GUESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many guests (wasmtime stores of containers, exec'd commands and
/// HTTP handler instances) exist in this process, across every runtime:
/// what an embedder checks to know stopped clusters left none behind.
pub fn live_guests() -> usize {
    LIVE_GUESTS.load(std::sync::atomic::Ordering::Acquire)
}

struct LiveGuest;

impl LiveGuest {
    fn new() -> LiveGuest {
        LIVE_GUESTS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        LiveGuest
    }
}

impl Drop for LiveGuest {
    fn drop(&mut self) {
        LIVE_GUESTS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Which pod and container a guest runs for.
#[derive(Debug, Clone, Default)]
struct GuestIdentity {
    namespace: String,
    pod: String,
    container: String,
}

impl GuestState {
    /// The namespace of the guest's pod.
    pub fn namespace(&self) -> &str {
        &self.identity.namespace
    }

    /// The name of the guest's pod.
    pub fn pod_name(&self) -> &str {
        &self.identity.pod
    }

    /// The name of the guest's container.
    pub fn container_name(&self) -> &str {
        &self.identity.container
    }

    /// The guest's resource table, for host interfaces with resources.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The state of a guest of the pod whose network is `net`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pod: (&str, &str, &str),
        wasi: WasiCtx,
        limiter: MemoryLimiter,
        kill: Arc<KillSwitch>,
        cpu: Arc<CpuAccount>,
        mounts: MountTable,
        net: &Arc<PodNet>,
    ) -> GuestState {
        let (namespace, pod, container) = pod;
        GuestState {
            identity: Arc::new(GuestIdentity {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            }),
            wasi,
            table: ResourceTable::new(),
            limiter,
            kill,
            cpu,
            mounts,
            net: Arc::clone(net),
            terminal: None,
            process: None,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_out: crate::net::http_out::PodHttp {
                net: Arc::clone(net),
            },
            _live: LiveGuest::new(),
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for GuestState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_out,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Stops a guest whether it is spinning (checked every epoch tick) or
/// waiting in a host call (the notify wakes the task running it).
#[derive(Default)]
pub(crate) struct KillSwitch {
    killed: AtomicBool,
    notify: Notify,
}

impl KillSwitch {
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Waits for the kill. For one waiter only: the one that ends the
    /// container.
    pub(crate) async fn killed(&self) {
        if !self.is_killed() {
            self.notify.notified().await;
        }
    }
}

/// A started container instance.
pub struct RunningContainer {
    started_at: jiff::Timestamp,
    usage: Arc<Usage>,
    kill: Arc<KillSwitch>,
    task: tokio::task::JoinHandle<ExitStatus>,
    log_path: PathBuf,
}

impl std::fmt::Debug for RunningContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningContainer")
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl RunningContainer {
    /// When the instance started.
    pub fn started_at(&self) -> jiff::Timestamp {
        self.started_at
    }

    /// CPU and memory the instance uses now.
    pub fn usage(&self) -> UsageSnapshot {
        self.usage.snapshot()
    }

    /// A handle to the live usage counters.
    pub fn usage_handle(&self) -> Arc<Usage> {
        Arc::clone(&self.usage)
    }

    /// This instance's log file.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// Stops the guest: within one epoch tick if it is computing, at once if
    /// it is waiting. It ends with [`EXIT_STOPPED`].
    pub fn stop(&self) {
        self.kill.kill();
    }

    /// A cloneable handle that can stop this instance from elsewhere.
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.kill))
    }

    /// Waits for the instance to end.
    pub async fn wait(self) -> ExitStatus {
        match self.task.await {
            Ok(status) => status,
            Err(e) => {
                let now = jiff::Timestamp::now();
                ExitStatus {
                    exit_code: EXIT_TRAP,
                    reason: ExitReason::Error,
                    message: Some(format!("the runtime lost the guest's task: {e}")),
                    started_at: self.started_at,
                    finished_at: now,
                }
            }
        }
    }
}

/// A guest instance running on the guest runtime.
pub(crate) struct Launched {
    pub(crate) started_at: jiff::Timestamp,
    pub(crate) usage: Arc<Usage>,
    pub(crate) kill: Arc<KillSwitch>,
    pub(crate) task: tokio::task::JoinHandle<ExitStatus>,
}

/// Stops a [`RunningContainer`] from another task.
#[derive(Clone)]
pub struct Stopper(Arc<KillSwitch>);

impl Stopper {
    /// Stops nothing: for a container that never started.
    pub fn none() -> Stopper {
        Stopper(Arc::default())
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Stopper {
    /// See [`RunningContainer::stop`].
    pub fn stop(&self) {
        self.0.kill();
    }
}

/// A spec the runtime cannot run, and why.
fn invalid_spec(spec: &ContainerSpec, message: String) -> StartError {
    StartError::Invalid {
        container: spec.name.clone(),
        message,
    }
}

/// Turns an I/O failure on `path` into a start error of `spec`.
fn io_error(
    spec: &ContainerSpec,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> StartError + use<> {
    let path = path.to_path_buf();
    let container = spec.name.clone();
    move |source| StartError::Io {
        container,
        path,
        source,
    }
}

/// Where an instance starts: the spec's `workingDir`, else the image's.
pub(crate) fn working_dir(spec: &ContainerSpec, image: &Image) -> Option<String> {
    spec.working_dir
        .clone()
        .or_else(|| image.config.working_dir.clone())
}

/// argv from the spec and the image config, as Kubernetes combines them.
fn argv(spec: &ContainerSpec, image: &Image) -> Vec<String> {
    let config = &image.config;
    match (spec.command.is_empty(), spec.args.is_empty()) {
        (true, true) => config
            .entrypoint
            .iter()
            .chain(&config.cmd)
            .cloned()
            .collect(),
        (true, false) => config
            .entrypoint
            .iter()
            .chain(&spec.args)
            .cloned()
            .collect(),
        (false, _) => spec.command.iter().chain(&spec.args).cloned().collect(),
    }
}

impl Sandbox {
    /// Starts instance number `restart_count` of a container: resets its
    /// private root, opens its log, instantiates the image and runs it.
    pub async fn start_container(
        &self,
        spec: &ContainerSpec,
        restart_count: u32,
    ) -> Result<RunningContainer, StartError> {
        let invalid = |message: String| invalid_spec(spec, message);
        let io = |path: &std::path::Path| io_error(spec, path);
        if let Some(unknown) = spec
            .host_interfaces
            .iter()
            .find(|name| self.runtime.config().host_interfaces.get(name).is_none())
        {
            let offered: Vec<&str> = self.runtime.config().host_interfaces.names().collect();
            return Err(invalid(format!(
                "host interface {unknown:?} is not offered here (offered: {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        let (image, prepared) = self
            .runtime
            .load(&spec.image, &spec.host_interfaces)
            .await?;
        let argv = argv(spec, &image);
        if argv.is_empty() && matches!(prepared, Prepared::Command(_)) {
            return Err(invalid(format!(
                "image {:?} has no entrypoint and no command was given",
                spec.image
            )));
        }
        let (image, prepared) = match image.tree.is_some() {
            true => {
                self.runtime
                    .load_program(image, prepared, spec, &argv)
                    .await?
            }
            false => (image, prepared),
        };

        // Every start gets an empty private root, as a container's writable
        // layer is; the previous one is deleted off the start path.
        let mount_points: Vec<String> = spec.mounts.iter().map(|m| m.mount_path.clone()).collect();
        if let Some(bad) = mount_points
            .iter()
            .find(|p| !p.starts_with('/') || p.split('/').any(|c| c == ".."))
        {
            return Err(invalid(format!(
                "mountPath {bad:?} must be an absolute path without '..'"
            )));
        }
        let rootfs = self
            .roots
            .take(&spec.name, &mount_points, image.tree.as_deref())
            .map_err(io(&self.dir))?;

        let (mut wasi, mounts) = self.context(spec, &image, &argv, &rootfs)?;

        let console = Console::new(spec);
        match (&console.stdin, &spec.stdin) {
            (Some(pipe), _) => {
                wasi.stdin(GuestInput::new(Arc::clone(pipe), console.terminal.clone()));
            }
            (None, Some(bytes)) => {
                wasi.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(bytes.clone()));
            }
            (None, None) => {}
        }
        let log_dir = self.log_dir(&spec.name);
        fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
        if restart_count >= 2 {
            logs::prune_old(&log_dir, restart_count);
        }
        let log_path = self.log_path(&spec.name, restart_count);
        let sink = LogSink::create(
            log_path.clone(),
            self.runtime.config().log_max_bytes,
            spec.output.clone(),
            Some(console.output.clone()),
        )
        .map_err(io(&log_path))?;
        // On a terminal the guest writes to the terminal, and what the
        // terminal shows is the log (stdout), as a container runtime logs a
        // tty container.
        let finish: Box<dyn FnOnce() + Send> = match &console.terminal {
            Some(terminal) => {
                let output = GuestOutput::new(Arc::clone(&terminal.output), true);
                wasi.stdout(output.clone());
                wasi.stderr(output);
                let (screen, sink, ended) = (
                    Arc::clone(&terminal.output),
                    Arc::clone(&sink),
                    Arc::clone(&console),
                );
                tokio::spawn(async move {
                    while let Some(bytes) = screen.read(WINDOW).await {
                        sink.write(Stream::Stdout, &bytes);
                    }
                    sink.finish();
                    ended.end();
                });
                let screen = Arc::clone(&terminal.output);
                Box::new(move || screen.close_write())
            }
            None => {
                wasi.stdout(LogOutput::new(Arc::clone(&sink), Stream::Stdout));
                wasi.stderr(LogOutput::new(Arc::clone(&sink), Stream::Stderr));
                let (sink, ended) = (Arc::clone(&sink), Arc::clone(&console));
                Box::new(move || {
                    sink.finish();
                    ended.end();
                })
            }
        };
        self.consoles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name.clone(), Arc::clone(&console));
        self.new_cgroup(&spec.name);

        let launched = match prepared {
            Prepared::Command(pre) => self.launch(
                spec,
                &argv,
                pre,
                (wasi.build(), mounts),
                console.terminal.clone(),
                finish,
            ),
            Prepared::Proxy(pre) => {
                // A handler serves requests; it has no console of its own.
                drop(finish);
                let setup = crate::serve::Setup {
                    spec: spec.clone(),
                    image,
                    argv,
                    rootfs,
                    sink,
                };
                self.serve(setup, pre)?
            }
        };
        Ok(RunningContainer {
            started_at: launched.started_at,
            usage: launched.usage,
            kill: launched.kill,
            task: launched.task,
            log_path,
        })
    }

    /// The WASI context every instance of `spec` shares: argv, `/` at
    /// `rootfs`, the volume mounts, the environment (image's, then
    /// `HOSTNAME`, then the spec's) and the working directory. Also returns
    /// which host directory backs which guest path.
    pub(crate) fn context(
        &self,
        spec: &ContainerSpec,
        image: &Image,
        argv: &[String],
        rootfs: &std::path::Path,
    ) -> Result<(WasiCtxBuilder, Vec<(String, PathBuf)>), StartError> {
        let invalid = |message: String| invalid_spec(spec, message);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(argv);
        wasi.preopened_dir(rootfs, "/", FsPerms::ReadWrite)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let mut mounts = vec![("/".to_string(), rootfs.to_path_buf())];
        for mount in &spec.mounts {
            let volume = self.volumes.get(&mount.volume).ok_or_else(|| {
                invalid(format!(
                    "volume {:?} is not defined in the pod",
                    mount.volume
                ))
            })?;
            let held = match &mount.sub_path {
                Some(sub) if !sub.is_empty() => {
                    let rel = sub_path(sub).map_err(invalid)?;
                    volume
                        .make_below(&rel)
                        .map_err(|e| invalid(format!("subPath {sub:?}: {e}")))?
                }
                _ => volume.clone(),
            };
            let host = held.real_path().to_path_buf();
            let perms = if mount.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(held.handle(), &mount.mount_path, perms)
                .map_err(|e| invalid(format!("mounting {}: {e:#}", mount.mount_path)))?;
            let guest = match mount.mount_path.trim_end_matches('/') {
                "" => "/",
                trimmed => trimmed,
            };
            mounts.push((guest.to_string(), host));
        }

        let mut env: Vec<(String, String)> = image
            .config
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let hostname = self.spec.hostname.as_ref().unwrap_or(&self.spec.name);
        env.push(("HOSTNAME".into(), hostname.clone()));
        if let Some(dir) = &working_dir(spec, image) {
            env.push(("PWD".into(), dir.clone()));
            wasi.initial_cwd(dir);
        }
        env.extend(spec.env.iter().cloned());
        // Later entries win, as with duplicate `env` names in Kubernetes.
        let mut seen = std::collections::HashSet::new();
        let mut deduped: Vec<_> = env
            .into_iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        deduped.reverse();
        wasi.envs(&deduped);
        Ok((wasi, mounts))
    }

    /// What one container is accounted and stopped by.
    pub(crate) fn accounts(&self, spec: &ContainerSpec) -> Accounts {
        let usage = self.guest_usage(&spec.name);
        let cpu = CpuAccount::new(
            Arc::clone(&usage),
            spec.limits.cpu_millis,
            self.runtime.config().cpu_period,
        );
        Accounts {
            usage,
            kill: Arc::new(KillSwitch::default()),
            cpu,
        }
    }

    /// A store on `engine` for one guest instance of `spec`: its memory
    /// limit, its share of the container's CPU quota, the container's kill
    /// switch.
    pub(crate) fn guest_store(
        &self,
        engine: &wasmtime::Engine,
        spec: &ContainerSpec,
        wasi: WasiCtx,
        mounts: Vec<(String, PathBuf)>,
        accounts: &Accounts,
    ) -> Store<GuestState> {
        let mut store = Store::new(
            engine,
            GuestState::new(
                (&self.spec.namespace, &self.spec.name, &spec.name),
                wasi,
                MemoryLimiter::new(spec.limits.memory_bytes, Arc::clone(&accounts.usage)),
                Arc::clone(&accounts.kill),
                Arc::clone(&accounts.cpu),
                MountTable::new(mounts),
                &self.net,
            ),
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.kill.is_killed() {
                return Err(wasmtime::Error::msg("container stopped"));
            }
            Ok(match state.cpu.on_tick() {
                // Yield every tick so one spinning guest shares its thread.
                TickAction::Continue => UpdateDeadline::Yield(1),
                TickAction::Throttle(sleep) => UpdateDeadline::YieldCustom(1, sleep),
            })
        });
        store
    }

    /// Instantiates the image in a store of its own (memory limit, CPU
    /// quota, kill switch) and runs it as a process of the pod running
    /// `argv`, on the guest runtime, on `terminal` if it has one; `finish`
    /// runs when the guest has ended, before its exit status is made.
    pub(crate) fn launch(
        &self,
        spec: &ContainerSpec,
        argv: &[String],
        pre: CommandPre<GuestState>,
        (wasi, mounts): (WasiCtx, Vec<(String, PathBuf)>),
        terminal: Option<Arc<crate::terminal::Terminal>>,
        finish: Box<dyn FnOnce() + Send>,
    ) -> Launched {
        let accounts = self.accounts(spec);
        let engine = pre.instance_pre().engine();
        let mut store = self.guest_store(engine, spec, wasi, mounts, &accounts);
        store.data_mut().process =
            Some(self.enter_process(spec, argv, terminal.is_some(), &accounts.usage));
        store.data_mut().terminal = terminal;
        let Accounts { usage, kill, cpu } = accounts;
        let started_at = jiff::Timestamp::now();
        let running = self.runtime.engine().guest_running();
        let memory_limit = spec.limits.memory_bytes;
        let task_usage = Arc::clone(&usage);
        let task_kill = Arc::clone(&kill);
        // The guest's instance and store live as long as it runs.
        let task = self.runtime.spawn_guest(crate::heap::long_lived(async move {
            let _running = running;
            let run = CpuMetered::new(run_command(pre, store), cpu);
            let outcome = tokio::select! {
                outcome = run => outcome,
                () = task_kill.notify.notified() => Err(wasmtime::Error::msg("container stopped")),
            };
            finish();
            exit_status(
                outcome,
                &task_usage,
                task_kill.is_killed(),
                memory_limit,
                started_at,
            )
        }));
        Launched {
            started_at,
            usage,
            kill,
            task,
        }
    }
}

async fn run_command(
    pre: CommandPre<GuestState>,
    mut store: Store<GuestState>,
) -> wasmtime::Result<Result<(), ()>> {
    let command = pre.instantiate_async(&mut store).await?;
    command.wasi_cli_run().call_run(&mut store).await
}
