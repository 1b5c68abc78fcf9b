//! `wasmkube play`: run the Pods of a manifest directly on the runtime, no
//! API server, like `podman kube play`. Output streams to the terminal as
//! `[pod/container] line`; at the end one summary line per container.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use wasmkube_runtime::{
    Backoff, ExitReason, LineObserver, PodRunner, PodStatus, Runtime, RuntimeConfig, Stream,
};

use crate::admission;
use crate::kubelet::host_paths::HostPathPolicy;
use crate::kubelet::host_ports;
use crate::kubelet::pod_spec::{self, NodeInfo, Options};
use crate::kubelet::sources::NoSources;
use crate::manifest::{self, Object};

/// What stops `play` before any pod runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    /// A Pod fails validation.
    #[error(transparent)]
    Invalid(#[from] admission::Invalid),
    /// A Pod asks for something not supported (or not found: play has no
    /// ConfigMaps or Secrets).
    #[error(transparent)]
    Unsupported(#[from] pod_spec::Error),
    /// Nothing to run.
    #[error("{0}: no Pods to run (play runs kind: Pod; apply other kinds to a server)")]
    NoPods(String),
    /// Two Pods share a name.
    #[error("pod {0:?} appears twice")]
    DuplicatePod(String),
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] wasmkube_runtime::runtime::Error),
    /// The image store could not be seeded.
    #[error(transparent)]
    Images(#[from] wasmkube_runtime::images::Error),
    /// An image cannot be run.
    #[error("pod {pod:?} container {container:?}: {source}")]
    Image {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// Why.
        #[source]
        source: wasmkube_runtime::StartError,
    },
    /// A pod's sandbox could not be created.
    #[error(transparent)]
    Sandbox(#[from] wasmkube_runtime::sandbox::Error),
    /// A hostPort could not be opened.
    #[error(transparent)]
    HostPort(#[from] crate::kubelet::host_ports::Error),
}

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// Manifest files; `-` reads stdin.
    pub files: Vec<PathBuf>,
    /// The data directory (image store, compile cache, pod directories).
    pub data_dir: PathBuf,
    /// Restart back-off.
    pub backoff: Backoff,
}

/// Prints a container's lines to the terminal, prefixed.
struct Terminal {
    prefix: String,
}

impl LineObserver for Terminal {
    fn line(&self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        // A closed terminal must not take the pods down: ignore write errors.
        let _ = match stream {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{} {text}", self.prefix),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{} {text}", self.prefix),
        };
    }
}

fn read_source(path: &PathBuf) -> Result<(String, String), Error> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| Error::Read {
        path: name.clone(),
        source,
    })?;
    Ok((name, text))
}

/// The host's name, for `spec.nodeName`.
fn node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success (and we stop at the first NUL regardless).
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        String::from_utf8_lossy(buf.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Runs the manifests' pods until they end (or Ctrl-C / SIGTERM), prints
/// the summary and returns the process exit code: 0 if every container
/// ended with 0.
pub async fn play(options: PlayOptions) -> Result<i32, Error> {
    // Everything is read, validated and translated before anything runs.
    let mut pods = Vec::new();
    for path in &options.files {
        let (name, text) = read_source(path)?;
        let before = pods.len();
        for object in manifest::parse(&name, &text)? {
            match object {
                Object::Pod(pod) => pods.push(*pod),
                Object::Other {
                    kind, name: obj, ..
                } => {
                    eprintln!(
                        "play: skipping {kind} {:?}: play runs Pods only",
                        obj.unwrap_or_default()
                    )
                }
            }
        }
        if pods.len() == before {
            return Err(Error::NoPods(name));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for pod in &pods {
        admission::pod::validate(pod)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !seen.insert(name.clone()) {
            return Err(Error::DuplicatePod(name));
        }
    }
    let node = NodeInfo::host(&node_name());
    let translate = Options {
        backoff: options.backoff,
        output: Some(Arc::new(|pod: &str, container: &str| {
            Arc::new(Terminal {
                prefix: format!("[{pod}/{container}]"),
            }) as Arc<dyn LineObserver>
        })),
        volume_dirs: None,
        host_paths: HostPathPolicy::new(&options.data_dir, None),
        interface_grants: Default::default(),
    };
    let specs = pods
        .iter()
        .map(|p| pod_spec::to_runtime(p, &node, &translate, &NoSources).map(|t| t.spec))
        .collect::<Result<Vec<_>, _>>()?;

    let runtime = Runtime::new(RuntimeConfig::new(&options.data_dir))?;
    wasmkube_runtime::builtin::seed(runtime.images())?;
    for spec in &specs {
        for c in &spec.containers {
            runtime
                .prepare_image(&c.image)
                .await
                .map_err(|source| Error::Image {
                    pod: spec.sandbox.name.clone(),
                    container: c.name.clone(),
                    source,
                })?;
        }
    }
    let mut runners = Vec::new();
    let mut published = Vec::new();
    for (spec, pod) in specs.into_iter().zip(&pods) {
        let name = spec.sandbox.name.clone();
        let runner = PodRunner::start(&runtime, spec)?;
        let ports = host_ports::publish(&name, runner.sandbox(), &host_ports::requested(pod)).await;
        runners.push(runner);
        match ports {
            Ok(ports) => published.push(ports),
            Err(e) => {
                for runner in runners {
                    let sandbox = runner.sandbox().clone();
                    runner.stop().await;
                    let _ = sandbox.remove();
                }
                return Err(e.into());
            }
        }
    }

    let finished = futures::future::join_all(runners.iter_mut().map(|r| r.wait()));
    let interrupted = tokio::select! {
        _ = finished => false,
        _ = shutdown_signal() => true,
    };
    drop(published);
    let mut statuses = Vec::new();
    for runner in runners {
        let sandbox = runner.sandbox().clone();
        let status = if interrupted {
            runner.stop().await
        } else {
            runner.status()
        };
        statuses.push((sandbox.spec().name.clone(), status));
        if let Err(e) = sandbox.remove() {
            tracing::warn!("cleaning up: {e}");
        }
    }
    Ok(summarize(&statuses))
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are in place when
/// this returns, not when the future is first polled: a signal sent right
/// after (a service manager's stop, once told the server is ready) is
/// caught. Must be called within a Tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        tokio::select! {
            _ = next_signal(term.as_mut()) => {}
            _ = next_signal(interrupt.as_mut()) => {}
        }
    }
}

/// The next delivery of `signal`; never, without one.
async fn next_signal(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Prints termination messages, then the summary lines; the exit code.
fn summarize(statuses: &[(String, PodStatus)]) -> i32 {
    let mut failed = false;
    let mut lines = Vec::new();
    for (pod, status) in statuses {
        for c in &status.containers {
            let exit = c.terminated().or(c.last_termination.as_ref());
            let (code, reason) = match exit {
                Some(e) => {
                    if let Some(message) = &e.message {
                        let first = message.lines().next().unwrap_or("");
                        eprintln!(
                            "[{pod}/{}] terminated: {}: {first}",
                            c.name,
                            e.reason.as_str()
                        );
                    }
                    (e.exit_code, e.reason)
                }
                // It never ran: the runtime could not create it.
                None => (128, ExitReason::Error),
            };
            failed |= code != 0;
            lines.push(format!(
                "pod/{pod} container/{} exit={code} reason={}",
                c.name,
                reason.as_str()
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    i32::from(failed)
}
