//! wasmkube-runtime: runs pods whose containers are WebAssembly (WASI)
//! components, inside one wasmtime host process. It knows wasmtime, not
//! Kubernetes: its API takes plain Rust structs, shaped like the container
//! runtime interface (sandboxes, containers, status, logs, stats).
//!
//! # Where to start
//!
//! [`Runtime::new`] with a [`RuntimeConfig`]; [`Runtime::run_pod_sandbox`]
//! gives a [`Sandbox`] on which [`Sandbox::start_container`] runs one
//! instance of a [`ContainerSpec`]; [`PodRunner`] runs a whole pod under a
//! restart policy and reports [`PodStatus`]. `examples/run_pod.rs` runs a
//! two-container pod that way (`cargo run -p wasmkube-runtime --example
//! run_pod`). Interfaces of the embedding program's own are offered in
//! [`RuntimeConfig::host_interfaces`] ([`HostInterface`]) and granted per
//! container in [`ContainerSpec::host_interfaces`].
//!
//! # Layout
//!
//! - [`runtime`]: the runtime itself, its configuration and guest threads.
//! - [`engine`]: wasmtime engine, epoch ticker, compile cache.
//! - [`images`]: content-addressed image store, registry pulls and pushes.
//! - [`convert`]: WASI p1 modules become components, keeping exit codes.
//! - [`builtin`]: the example guests every wasmkube binary carries.
//! - [`sandbox`]: a pod's directory and volumes.
//! - [`host`]: the embedder's own interfaces for guests.
//! - [`host_dir`]: host directories held open, checked where they really are.
//! - `console`: a container's stdin, terminal and live output, to attach to.
//! - [`container`]: one container instance, from spec to exit status.
//! - [`exec`]: commands run in a running container's context.
//! - [`exit`]: exit codes and reasons (Completed, Error, OOMKilled).
//! - [`limits`]: memory limiter, CPU quota and usage accounting.
//! - [`logs`]: per-instance log files with timestamps and rotation.
//! - [`net`]: a pod's own loopback network and the guests' TCP over it.
//! - `host_wit`: bindings of `wit/host.wit`, wasmkube's own guest interfaces.
//! - `ownership`: the `wasmkube:host/file-owner` interface (`ls -l` owners).
//! - `pipe`: bounded in-memory byte pipes (pod connections, exec stdio).
//! - `stdio`: an exec session's standard streams, as the guest sees them.
//! - [`terminal`]: line discipline and size of a command's terminal.
//! - `roots`: containers' private roots, prepared ahead, deleted behind.
//! - [`processes`]: a pod's process table, for `ps` in the pod.
//! - [`pod`]: restart policy and back-off over a pod's containers.
//! - [`probe`]: startup, liveness and readiness probes over the pod network.

pub mod builtin;
mod console;
pub mod container;
pub mod convert;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod heap;
pub mod host;
pub mod host_dir;
mod host_wit;
pub mod images;
pub mod limits;
pub mod logs;
pub mod net;
mod ownership;
mod pipe;
pub mod pod;
pub mod probe;
pub mod processes;
mod roots;
pub mod runtime;
pub mod sandbox;
pub mod serve;
mod stdio;
pub mod terminal;

pub use container::{
    ContainerSpec, ExitReason, ExitStatus, Mount, RunningContainer, StartError, live_guests,
};
pub use exec::{ExecError, ExecOptions, ExecOutput, ExecReader, ExecSession, ExecStdin};
pub use host::{GuestState, HostInterface, HostInterfaces};
pub use host_dir::HostDir;
pub use images::credentials::Keyring;
pub use images::registry::{PullError, RegistryConfig};
pub use images::{Image, ImageConfig, ImageRef, ImageStore};
pub use limits::{Limits, UsageSnapshot};
pub use logs::{LineObserver, Stream};
pub use pod::{
    Backoff, ContainerState, ContainerStatus, PodRunner, PodSpec, PodStatus, RestartPolicy,
};
pub use probe::{HttpGet, Probe, ProbeAction, ProbeEvent, ProbeKind, Probes};
pub use runtime::{
    DEFAULT_LOG_MAX_BYTES, PullOutcome, PullPolicy, Runtime, RuntimeConfig, raise_open_file_limit,
};
pub use sandbox::{ContainerUsage, Sandbox, SandboxSpec, VolumeSource, VolumeSpec};
pub use terminal::{Terminal, TerminalSize};
/// The wasmtime this runtime links guests with, for host interfaces.
pub use wasmtime;
