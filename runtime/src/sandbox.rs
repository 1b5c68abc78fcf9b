//! A pod sandbox: the host directory a pod lives in and its volumes.
//!
//! ```text
//! <data dir>/pods/<uid>/volumes/<volume>          emptyDir volumes
//! <data dir>/pods/<uid>/roots/<n>                 each instance's private "/"
//! <data dir>/pods/<uid>/logs/<name>/<n>.log       each container instance's log
//! ```

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::console::Console;
use crate::exec::{ExecError, ExecOptions, ExecSession};
use crate::host_dir::HostDir;
use crate::net::PodNet;
use crate::processes::{NewProcess, Process, Processes};
use crate::roots::Roots;
use crate::runtime::RuntimeShared;

/// Errors setting up or tearing down a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec is unusable (a bad uid, a duplicate volume, ...).
    #[error("invalid sandbox: {0}")]
    Invalid(String),
    /// The host filesystem refused.
    #[error("pod directory {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

/// What backs a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VolumeSource {
    /// A directory private to the pod, created empty, removed with it.
    EmptyDir,
    /// An existing host directory, held open (the caller decides which are
    /// allowed, by where it really is: [`HostDir::real_path`]).
    HostDir(HostDir),
}

/// One named volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The name containers mount it by.
    pub name: String,
    /// What backs it.
    pub source: VolumeSource,
}

/// Everything the runtime needs to know to host a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Unique id; names the pod's directory.
    pub uid: String,
    /// The pod's name: its containers' `HOSTNAME` unless `hostname` is set.
    pub name: String,
    /// The containers' `HOSTNAME` (a pod's `spec.hostname`), if not `name`.
    pub hostname: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// Its volumes.
    pub volumes: Vec<VolumeSpec>,
    /// Its IP on the pod network; without one it has only its loopback.
    pub ip: Option<std::net::IpAddr>,
    /// Its containers share one process namespace
    /// (`shareProcessNamespace`): each sees the others' processes.
    pub share_process_namespace: bool,
}

/// A pod's home on the host. Containers are started through it.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) spec: Arc<SandboxSpec>,
    pub(crate) dir: PathBuf,
    /// Every volume's directory, held open: containers open them through
    /// the held descriptors.
    pub(crate) volumes: Arc<HashMap<String, HostDir>>,
    pub(crate) net: Arc<PodNet>,
    /// The private roots of container instances.
    pub(crate) roots: Arc<Roots>,
    /// Each container's current instance's console, for attaching.
    pub(crate) consoles: Arc<std::sync::Mutex<HashMap<String, Arc<Console>>>>,
    /// Every guest running in the pod, for `ps`.
    pub(crate) processes: Arc<Processes>,
    /// Each container's counters since its current instance started, as
    /// its cgroup's.
    pub(crate) cgroups: Arc<std::sync::Mutex<HashMap<String, ContainerUsage>>>,
    pub(crate) runtime: Arc<RuntimeShared>,
}

/// What one container has used since its current instance started: its
/// own guest's and every command's exec'd in it, as a cgroup counts.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// When the instance started: the counters begin there.
    pub started: jiff::Timestamp,
    pub(crate) usage: Arc<crate::limits::Usage>,
}

impl ContainerUsage {
    fn fresh() -> Self {
        ContainerUsage {
            started: jiff::Timestamp::now(),
            usage: Arc::default(),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> crate::UsageSnapshot {
        self.usage.snapshot()
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("uid", &self.spec.uid)
            .field("dir", &self.dir)
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Sandbox {
    /// Creates (or reopens, keeping its volumes) the sandbox of `spec`.
    pub(crate) fn create(runtime: Arc<RuntimeShared>, spec: SandboxSpec) -> Result<Self, Error> {
        if spec.uid.is_empty()
            || !spec
                .uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::Invalid(format!(
                "pod uid {:?} must be letters, digits and '-'",
                spec.uid
            )));
        }
        let net = match spec.ip {
            Some(ip) => PodNet::attach(ip, &spec.namespace, runtime.cluster_net())
                .map_err(|e| Error::Invalid(e.to_string()))?,
            None => Arc::new(PodNet::default()),
        };
        let dir = runtime.pods_dir().join(&spec.uid);
        let mut volumes = HashMap::new();
        for volume in &spec.volumes {
            let held = match &volume.source {
                VolumeSource::EmptyDir => {
                    let path = dir.join("volumes").join(&volume.name);
                    fs::create_dir_all(&path).map_err(io_err(&path))?;
                    HostDir::open(&path).map_err(io_err(&path))?
                }
                VolumeSource::HostDir(held) => held.clone(),
            };
            if volumes.insert(volume.name.clone(), held).is_some() {
                return Err(Error::Invalid(format!(
                    "volume {:?} is declared twice",
                    volume.name
                )));
            }
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let roots = Roots::open(&dir, runtime.janitor().clone()).map_err(io_err(&dir))?;
        Ok(Sandbox {
            spec: Arc::new(spec),
            dir,
            volumes: Arc::new(volumes),
            net,
            roots,
            consoles: Arc::default(),
            processes: Arc::default(),
            cgroups: Arc::default(),
            runtime,
        })
    }

    /// Attaches to container `name`'s current instance with the streams
    /// `options` asks for (its `tty` is the container's own).
    pub fn attach(&self, name: &str, options: ExecOptions) -> Result<ExecSession, ExecError> {
        let console = self
            .consoles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ExecError::NotRunning(name.to_string()))?;
        Ok(console.attach(options))
    }

    /// The processes running in the pod as container `name`'s see them
    /// (its own and those exec'd in it, or the whole pod's when it shares
    /// one process namespace), by pid.
    pub fn processes(&self, name: &str) -> Vec<crate::processes::ProcessInfo> {
        self.processes
            .list(&self.process_namespace(name))
            .into_iter()
            .map(|(info, _)| info)
            .collect()
    }

    /// What container `name` has used since its current instance started,
    /// if it ever started.
    pub fn container_usage(&self, name: &str) -> Option<ContainerUsage> {
        self.cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Starts container `name`'s counters afresh, for a new instance.
    pub(crate) fn new_cgroup(&self, name: &str) {
        self.cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), ContainerUsage::fresh());
    }

    /// The counters a new guest of container `name` is charged to: its
    /// own, within the container's.
    pub(crate) fn guest_usage(&self, name: &str) -> Arc<crate::limits::Usage> {
        let mut cgroups = self.cgroups.lock().unwrap_or_else(|e| e.into_inner());
        let cgroup = cgroups
            .entry(name.to_string())
            .or_insert_with(ContainerUsage::fresh);
        Arc::new(crate::limits::Usage::within(&cgroup.usage))
    }

    /// The key of the process namespace a guest of container `name` runs
    /// in.
    fn process_namespace(&self, name: &str) -> String {
        match self.spec.share_process_namespace {
            true => String::new(),
            false => name.to_string(),
        }
    }

    /// Enters a guest of `spec` running `argv` in the pod's process table.
    pub(crate) fn enter_process(
        &self,
        spec: &crate::ContainerSpec,
        argv: &[String],
        terminal: bool,
        usage: &Arc<crate::limits::Usage>,
    ) -> Process {
        let joined = spec.process_namespace.as_deref().unwrap_or(&spec.name);
        self.processes.enter(
            NewProcess {
                namespace: &self.process_namespace(joined),
                uid: spec.run_as_user.unwrap_or(0),
                argv,
                container: &spec.name,
                terminal,
            },
            Arc::clone(usage),
        )
    }

    /// The spec this sandbox was made from.
    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    /// The pod's network: [`PodNet::dial`] reaches a port of the pod.
    pub fn net(&self) -> &Arc<PodNet> {
        &self.net
    }

    /// The host directory backing a volume.
    pub fn volume_path(&self, name: &str) -> Option<&Path> {
        self.volumes.get(name).map(HostDir::real_path)
    }

    /// Where a container's instance logs go.
    pub fn log_dir(&self, container: &str) -> PathBuf {
        self.dir.join("logs").join(container)
    }

    /// The log file of a container's `restart_count`-th instance.
    pub fn log_path(&self, container: &str, restart_count: u32) -> PathBuf {
        self.log_dir(container).join(format!("{restart_count}.log"))
    }

    /// Deletes the pod's directory: emptyDir contents, container roots, logs.
    pub fn remove(self) -> Result<(), Error> {
        // The janitor may be preparing a root in here: stop that first.
        self.roots.close();
        // It may still be deleting an old root in here, which can make one
        // pass trip over entries vanishing under it: try again.
        let mut attempts = 0;
        loop {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !self.dir.exists() => {
                    return Ok(());
                }
                Err(_) if attempts < 3 => attempts += 1,
                Err(e) => return Err(io_err(&self.dir)(e)),
            }
        }
    }
}

/// A `subPath` as a relative path, refusing anything that could leave the
/// volume by its spelling (absolute paths, `..`); symlinks on the way are
/// refused when it is opened ([`HostDir::make_below`]).
pub(crate) fn sub_path(sub_path: &str) -> Result<PathBuf, String> {
    let rel = Path::new(sub_path);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "subPath {sub_path:?} must be a relative path without '..'"
        ));
    }
    Ok(rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        assert_eq!(sub_path("a/b").unwrap(), Path::new("a/b"));
        assert_eq!(sub_path("./a/./b").unwrap(), Path::new("a/b"));
        assert!(sub_path("../x").is_err());
        assert!(sub_path("a/../../x").is_err());
        assert!(sub_path("/etc").is_err());
    }
}
