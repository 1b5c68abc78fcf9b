//! From a Kubernetes Pod to the runtime's [`PodSpec`]: volumes, containers,
//! command and args with `$(VAR)` expansion, environment (values,
//! `fieldRef`, `resourceFieldRef`, ConfigMap and Secret keys, `envFrom`,
//! the Services' variables), mounts, limits, restart policy.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Volume};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmkube_runtime::limits::Limits;
use wasmkube_runtime::{
    Backoff, ContainerSpec, HostDir, LineObserver, Mount, PodSpec, RestartPolicy, SandboxSpec,
    VolumeSource, VolumeSpec,
};

use super::host_paths::{HostPathPolicy, Missing, Refused};
use super::sources::{self, Allocatable, Sources};
use super::volumes::{self, Backing};
use crate::quantity::Quantity;

/// A valid Pod that asks for something wasmkube cannot do (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod {pod:?}: {field}: {message}")]
pub struct Unsupported {
    /// The pod.
    pub pod: String,
    /// The field involved.
    pub field: String,
    /// Why, and what to do instead.
    pub message: String,
}

/// Why a pod cannot start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// It asks for something wasmkube cannot do: it never will as written.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// A ConfigMap, Secret or key its environment names is missing; it may
    /// appear later (Kubernetes' `CreateContainerConfigError`).
    #[error("{0}")]
    Config(String),
    /// A volume cannot be set up now (Kubernetes' `FailedMount`).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Mount { volume: String, message: String },
}

/// Node facts a Pod's environment may refer to.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// `spec.nodeName` when the pod does not set it.
    pub node_name: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// `status.podIP`, once the pod has one.
    pub pod_ip: Option<IpAddr>,
    /// What `limits.*` are for a container without limits.
    pub allocatable: Allocatable,
}

impl NodeInfo {
    /// A node named `node_name` on this host, before the pod has an IP.
    pub fn host(node_name: &str) -> NodeInfo {
        NodeInfo::with(node_name, Allocatable::host())
    }

    /// A node named `node_name` on this host offering `allocatable`
    /// (measured once by the kubelet, not again for every pod).
    pub fn with(node_name: &str, allocatable: Allocatable) -> NodeInfo {
        NodeInfo {
            node_name: node_name.to_string(),
            host_ip: "127.0.0.1".into(),
            pod_ip: None,
            allocatable,
        }
    }
}

/// Where one pod's kubelet-written volumes go.
#[derive(Debug, Clone)]
pub struct VolumeDirs {
    /// On disk (ConfigMaps, the downward API).
    pub disk: PathBuf,
    /// In memory (Secrets, projected volumes, `emptyDir.medium: Memory`);
    /// why not, where the host has no usable tmpfs.
    pub memory: Result<PathBuf, String>,
}

impl VolumeDirs {
    fn of(&self, backing: Backing, volume: &str) -> Result<PathBuf, Error> {
        match backing {
            Backing::Disk => Ok(self.disk.join(volume)),
            Backing::Memory => match &self.memory {
                Ok(memory) => Ok(memory.join(volume)),
                Err(why) => Err(Error::Mount {
                    volume: volume.to_string(),
                    message: format!(
                        "Secret, projected and Memory emptyDir volumes are never put on disk, and memory-backed storage is unusable: {why}"
                    ),
                }),
            },
        }
    }
}

/// A volume whose files the kubelet writes, and where.
#[derive(Debug, Clone)]
pub struct WrittenVolume {
    pub volume: Volume,
    pub dir: PathBuf,
}

/// Something worth an event, found while translating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub reason: String,
    pub message: String,
}

/// A pod in the runtime's terms, and what the kubelet does around it.
#[derive(Debug, Clone)]
pub struct Translated {
    pub spec: PodSpec,
    /// Volumes to write before starting (and keep up to date).
    pub written: Vec<WrittenVolume>,
    pub warnings: Vec<Warning>,
}

/// Makes the observer of one container's output, given (pod, container).
pub type OutputFactory = Arc<dyn Fn(&str, &str) -> Arc<dyn LineObserver> + Send + Sync>;

/// Choices of the caller, not of the Pod.
#[derive(Clone, Default)]
pub struct Options {
    /// Restart back-off.
    pub backoff: Backoff,
    /// Makes an observer for each container's output (pod, container).
    pub output: Option<OutputFactory>,
    /// Where kubelet-written volumes go; without, they are unsupported.
    pub volume_dirs: Option<VolumeDirs>,
    /// Which host directories pods may mount.
    pub host_paths: HostPathPolicy,
    /// Which containers get which of the embedder's host interfaces.
    pub interface_grants: InterfaceGrants,
}

/// The annotation by which a pod asks for host interfaces of the
/// embedder's for its containers: their names, comma-separated.
pub const HOST_INTERFACES_ANNOTATION: &str = "wasmkube.io/host-interfaces";

/// Which containers get which of the embedder's host interfaces: those the
/// pod's annotation names (if the embedder lets pods choose them), and
/// those granted to the container's image.
#[derive(Debug, Clone, Default)]
pub struct InterfaceGrants {
    /// Interfaces a pod may ask for by annotation.
    pub by_annotation: Vec<String>,
    /// `(image, interface)`: every container of the image gets it.
    pub by_image: Vec<(String, String)>,
}

impl InterfaceGrants {
    /// The interfaces a container of `pod` running `image` gets; `Err`
    /// names one the annotation asks for that pods may not choose.
    fn for_container(&self, pod: &Pod, image: &str) -> Result<Vec<String>, String> {
        let mut granted: Vec<String> = self
            .by_image
            .iter()
            .filter(|(i, _)| i == image)
            .map(|(_, name)| name.clone())
            .collect();
        let asked = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(HOST_INTERFACES_ANNOTATION));
        for name in asked
            .into_iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !self.by_annotation.iter().any(|n| n == name) {
                return Err(format!(
                    "host interface {name:?} is not one pods may ask for (they may ask for: {})",
                    if self.by_annotation.is_empty() {
                        "none".to_string()
                    } else {
                        self.by_annotation.join(", ")
                    }
                ));
            }
            granted.push(name.to_string());
        }
        granted.sort();
        granted.dedup();
        Ok(granted)
    }
}

/// Expands `$(VAR)` references as Kubernetes does: a defined variable is
/// replaced, an undefined one is left as written, `$$` is a literal `$`.
pub fn expand_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            let ch = text[i..].chars().next().unwrap_or('\0');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match text[i + 2..].find(')') {
                Some(end) => {
                    let name = &text[i + 2..i + 2 + end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&text[i..i + 3 + end]),
                    }
                    i += 3 + end;
                }
                None => {
                    out.push_str(&text[i..]);
                    break;
                }
            },
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

/// The value of an env `fieldRef`: the pod's metadata entries (not whole
/// label or annotation sets, as in Kubernetes), its node, account and IPs.
fn field_ref(pod: &Pod, node: &NodeInfo, path: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    match path {
        "metadata.labels" | "metadata.annotations" => None,
        "spec.nodeName" => Some(
            spec.and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| node.node_name.clone()),
        ),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        "status.podIP" | "status.podIPs" => node.pod_ip.map(|ip| ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(node.host_ip.clone()),
        _ => volumes::metadata_field(pod, path),
    }
}

/// What one container's environment refers to.
struct EnvContext<'a> {
    pod: &'a Pod,
    node: &'a NodeInfo,
    sources: &'a dyn Sources,
    /// The Services' variables, defined unless the container defines them.
    service_env: &'a [(String, String)],
}

/// Text of a ConfigMap or Secret value (env values are strings).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The text of `key` in a ConfigMap's or Secret's entries; `Ok(None)` when
/// an optional object or key is missing (the variable is left unset).
fn entry(
    entries: Result<Option<std::collections::BTreeMap<String, Vec<u8>>>, sources::Missing>,
    key: &str,
    optional: Option<bool>,
    object: impl Fn() -> String,
) -> Result<Option<String>, Error> {
    let Some(entries) = entries.map_err(|m| Error::Config(m.0))? else {
        return Ok(None);
    };
    match entries.get(key) {
        Some(bytes) => Ok(Some(text(bytes))),
        None if optional == Some(true) => Ok(None),
        None => Err(Error::Config(format!(
            "couldn't find key {key} in {}",
            object()
        ))),
    }
}

/// One container's environment, in Kubernetes' order of precedence: the
/// Services' variables, overridden by `envFrom` (in order), overridden by
/// `env` (in order, each value expanding the variables before it).
fn container_env(
    cx: &EnvContext<'_>,
    c: &Container,
    field: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(String, String)>, Error> {
    let unsupported = |field: String, message: String| {
        Error::Unsupported(Unsupported {
            pod: cx.pod.metadata.name.clone().unwrap_or_default(),
            field,
            message,
        })
    };
    let namespace = cx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (entries, what) = if let Some(cm) = &from.config_map_ref {
            (
                sources::config_map(cx.sources, namespace, &cm.name, cm.optional),
                format!("configMap {namespace}/{}", cm.name),
            )
        } else if let Some(secret) = &from.secret_ref {
            (
                sources::secret(cx.sources, namespace, &secret.name, secret.optional),
                format!("secret {namespace}/{}", secret.name),
            )
        } else {
            continue;
        };
        let entries = entries.map_err(|m| Error::Config(m.0))?;
        let mut invalid = Vec::new();
        for (key, bytes) in entries.into_iter().flatten() {
            let name = format!("{prefix}{key}");
            if sources::is_env_var_name(&name) {
                env.push((name, text(&bytes)));
            } else {
                invalid.push(name);
            }
        }
        if !invalid.is_empty() {
            warnings.push(Warning {
                reason: "InvalidEnvironmentVariableNames".into(),
                message: format!(
                    "Keys [{}] from the EnvFrom {what} were skipped since they are considered invalid environment variable names.",
                    invalid.join(", ")
                ),
            });
        }
    }
    let lookup = |env: &[(String, String)], n: &str| {
        env.iter()
            .rev()
            .chain(cx.service_env.iter())
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    for (
        j,
        EnvVar {
            name,
            value,
            value_from,
        },
    ) in c.env.iter().flatten().enumerate()
    {
        let path = format!("{field}.env[{j}].valueFrom");
        let resolved = match (value, value_from) {
            (_, Some(from)) => {
                if let Some(fr) = &from.field_ref {
                    field_ref(cx.pod, cx.node, &fr.field_path).ok_or_else(|| {
                        unsupported(
                            format!("{path}.fieldRef.fieldPath"),
                            format!("{:?} is not available here", fr.field_path),
                        )
                    })?
                } else if let Some(rf) = &from.resource_field_ref {
                    let target = match rf.container_name.as_deref().filter(|n| !n.is_empty()) {
                        None => c,
                        Some(name) => cx
                            .pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter())
                            .find(|other| other.name == name)
                            .ok_or_else(|| {
                                unsupported(
                                    format!("{path}.resourceFieldRef.containerName"),
                                    format!("no container {name:?} in the pod"),
                                )
                            })?,
                    };
                    sources::resource_field(target, rf, cx.node.allocatable)
                        .map_err(|m| unsupported(format!("{path}.resourceFieldRef"), m))?
                } else if let Some(key) = &from.config_map_key_ref {
                    let entries =
                        sources::config_map(cx.sources, namespace, &key.name, key.optional);
                    let found = entry(entries, &key.key, key.optional, || {
                        format!("ConfigMap {namespace}/{}", key.name)
                    })?;
                    let Some(value) = found else { continue };
                    value
                } else if let Some(key) = &from.secret_key_ref {
                    let entries = sources::secret(cx.sources, namespace, &key.name, key.optional);
                    let found = entry(entries, &key.key, key.optional, || {
                        format!("Secret {namespace}/{}", key.name)
                    })?;
                    let Some(value) = found else { continue };
                    value
                } else {
                    return Err(unsupported(path, "Required value: one source".into()));
                }
            }
            (Some(v), None) => expand_vars(v, |n| lookup(&env, n)),
            (None, None) => String::new(),
        };
        env.push((name.clone(), resolved));
    }
    let defined: std::collections::HashSet<String> = env.iter().map(|(k, _)| k.clone()).collect();
    let mut out: Vec<(String, String)> = cx
        .service_env
        .iter()
        .filter(|(k, _)| !defined.contains(k))
        .cloned()
        .collect();
    out.extend(env);
    Ok(out)
}

fn limits(c: &Container) -> Limits {
    let get = |key: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(key))
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    Limits {
        memory_bytes: get("memory").map(|q| q.ceil_units().clamp(0, u64::MAX as i128) as u64),
        cpu_millis: get("cpu").map(|q| q.ceil_millis().clamp(1, u64::MAX as i128) as u64),
    }
}

/// A directory the kubelet makes and fills for a volume (written volumes,
/// memory-backed emptyDirs), held for the pod.
fn kubelet_dir(volume: &str, dir: &Path) -> Result<HostDir, Error> {
    std::fs::create_dir_all(dir)
        .and_then(|()| HostDir::open(dir))
        .map_err(|e| Error::Mount {
            volume: volume.to_string(),
            message: format!("cannot create {}: {e}", dir.display()),
        })
}

/// The host directory behind a claim: its bound volume's `hostPath` or
/// `local` path.
fn claimed_dir(
    sources: &dyn Sources,
    options: &Options,
    namespace: &str,
    volume: &str,
    claim: &str,
) -> Result<HostDir, Error> {
    let mount = |message: String| Error::Mount {
        volume: volume.to_string(),
        message,
    };
    let pvc = sources
        .claim(namespace, claim)
        .ok_or_else(|| mount(format!("persistentvolumeclaim {claim:?} not found")))?;
    if pvc.metadata.deletion_timestamp.is_some() {
        return Err(mount(format!(
            "persistentvolumeclaim {claim:?} is being deleted"
        )));
    }
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty() && bound)
        .ok_or_else(|| mount(format!("persistentvolumeclaim {claim:?} is not bound")))?;
    let pv = sources
        .persistent_volume(&pv_name)
        .ok_or_else(|| mount(format!("persistentvolume {pv_name:?} not found")))?;
    let spec = pv.spec.unwrap_or_default();
    let (path, missing) = if let Some(host) = spec.host_path {
        let missing = match host.type_.as_deref().unwrap_or("") {
            "" | "DirectoryOrCreate" => Missing::Create,
            _ => Missing::Refuse,
        };
        (PathBuf::from(&host.path), missing)
    } else if let Some(local) = spec.local {
        (PathBuf::from(local.path), Missing::Refuse)
    } else {
        return Err(Error::Unsupported(Unsupported {
            pod: String::new(),
            field: format!("persistentvolume {pv_name}"),
            message: "only hostPath and local persistent volumes can be mounted here".into(),
        }));
    };
    options
        .host_paths
        .open_claimed(&path, missing)
        .map_err(|refused| mount(refused.to_string()))
}

/// A pod's volumes as they are translated: what the kubelet writes and
/// which volumes containers only read.
struct PodVolumes<'a> {
    pod_name: &'a str,
    namespace: &'a str,
    options: &'a Options,
    sources: &'a dyn Sources,
    written: Vec<WrittenVolume>,
    read_only: std::collections::HashSet<String>,
}

impl PodVolumes<'_> {
    fn translate(&mut self, i: usize, v: &Volume) -> Result<VolumeSpec, Error> {
        let field = format!("spec.volumes[{i}]");
        let unsupported = |field: String, message: String| {
            Error::Unsupported(Unsupported {
                pod: self.pod_name.into(),
                field,
                message,
            })
        };
        let need_dirs = || {
            self.options.volume_dirs.as_ref().ok_or_else(|| {
                unsupported(
                    field.clone(),
                    "this volume type needs a server's kubelet (wasmkube serve)".into(),
                )
            })
        };
        let source = if let Some(empty) = &v.empty_dir {
            match empty.medium.as_deref().unwrap_or("") {
                "" => VolumeSource::EmptyDir,
                "Memory" => {
                    let dir = need_dirs()?.of(Backing::Memory, &v.name)?;
                    VolumeSource::HostDir(kubelet_dir(&v.name, &dir)?)
                }
                other => {
                    return Err(unsupported(
                        format!("{field}.emptyDir.medium"),
                        format!("{other:?} is not supported (\"\" and \"Memory\" are)"),
                    ));
                }
            }
        } else if let Some(host) = &v.host_path {
            let kind = host.type_.as_deref().unwrap_or("");
            let missing = match kind {
                "" | "DirectoryOrCreate" => Missing::Create,
                "Directory" => Missing::Refuse,
                "File" | "FileOrCreate" | "Socket" | "CharDevice" | "BlockDevice" => {
                    return Err(unsupported(
                        format!("{field}.hostPath.type"),
                        format!(
                            "{kind:?}: WASI guests can mount only directories (mount the directory that holds {})",
                            host.path
                        ),
                    ));
                }
                other => {
                    return Err(unsupported(
                        format!("{field}.hostPath.type"),
                        format!("unknown hostPath type {other:?}"),
                    ));
                }
            };
            let held = self
                .options
                .host_paths
                .open(Path::new(&host.path), missing)
                .map_err(|refused| match refused {
                    Refused::NotAllowed(message) => {
                        unsupported(format!("{field}.hostPath.path"), message)
                    }
                    Refused::Unavailable(message) => Error::Mount {
                        volume: v.name.clone(),
                        message,
                    },
                })?;
            VolumeSource::HostDir(held)
        } else if let Some(backing) = volumes::written(v) {
            let dir = need_dirs()?.of(backing, &v.name)?;
            self.written.push(WrittenVolume {
                volume: v.clone(),
                dir: dir.clone(),
            });
            // Their files are the kubelet's: containers only read them.
            self.read_only.insert(v.name.clone());
            VolumeSource::HostDir(kubelet_dir(&v.name, &dir)?)
        } else if let Some(claim) = &v.persistent_volume_claim {
            if claim.read_only == Some(true) {
                self.read_only.insert(v.name.clone());
            }
            VolumeSource::HostDir(claimed_dir(
                self.sources,
                self.options,
                self.namespace,
                &v.name,
                &claim.claim_name,
            )?)
        } else {
            let kind = serde_json::to_value(v)
                .ok()
                .and_then(|j| {
                    j.as_object()
                        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
                })
                .unwrap_or_else(|| "unknown".into());
            return Err(unsupported(
                field,
                format!(
                    "volumes of type {kind} are not supported yet (emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim are)"
                ),
            ));
        };
        Ok(VolumeSpec {
            name: v.name.clone(),
            source,
        })
    }
}

/// Translates a validated Pod, resolving what it refers to from `sources`.
pub fn to_runtime(
    pod: &Pod,
    node: &NodeInfo,
    options: &Options,
    sources: &dyn Sources,
) -> Result<Translated, Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or_else(|| Unsupported {
        pod: name.clone(),
        field: "spec".into(),
        message: "Required value".into(),
    })?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut pod_volumes = PodVolumes {
        pod_name: &name,
        namespace,
        options,
        sources,
        written: Vec::new(),
        read_only: std::collections::HashSet::new(),
    };
    let volumes = spec
        .volumes
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, v)| pod_volumes.translate(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let PodVolumes {
        written, read_only, ..
    } = pod_volumes;
    // Services of the pod's namespace, unless links are off; the API's own
    // `kubernetes` Service always (Kubernetes' master service).
    let mut services = Vec::new();
    if spec.enable_service_links != Some(false) {
        services = sources.services(namespace);
    }
    if namespace != "default" || spec.enable_service_links == Some(false) {
        services.extend(
            sources
                .services("default")
                .into_iter()
                .filter(|s| s.metadata.name.as_deref() == Some("kubernetes")),
        );
    }
    let service_env = sources::service_env(&services);
    let cx = EnvContext {
        pod,
        node,
        sources,
        service_env: &service_env,
    };
    let mut warnings = Vec::new();
    let mut translate =
        |list: &str, containers: &[Container]| -> Result<Vec<ContainerSpec>, Error> {
            let mut out = Vec::new();
            for (i, c) in containers.iter().enumerate() {
                let field = format!("spec.{list}[{i}]");
                out.push(container_spec(
                    &cx,
                    options,
                    c,
                    &field,
                    &read_only,
                    &mut warnings,
                )?);
            }
            Ok(out)
        };
    let init_containers = translate(
        "initContainers",
        spec.init_containers.as_deref().unwrap_or_default(),
    )?;
    let containers = translate("containers", &spec.containers)?;
    let restart_policy = match spec.restart_policy.as_deref() {
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        _ => RestartPolicy::Always,
    };
    let spec = PodSpec {
        sandbox: SandboxSpec {
            uid: pod
                .metadata
                .uid
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name: name.clone(),
            hostname: spec.hostname.clone().filter(|h| !h.is_empty()),
            namespace: namespace.to_string(),
            volumes,
            ip: node.pod_ip,
            share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        },
        init_containers,
        containers,
        restart_policy,
        backoff: options.backoff,
    };
    Ok(Translated {
        spec,
        written,
        warnings,
    })
}

/// One container in the runtime's terms: env, `$(VAR)` expansion, mounts,
/// limits.
fn container_spec(
    cx: &EnvContext<'_>,
    options: &Options,
    c: &Container,
    field: &str,
    read_only: &std::collections::HashSet<String>,
    warnings: &mut Vec<Warning>,
) -> Result<ContainerSpec, Error> {
    let env = container_env(cx, c, field, warnings)?;
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |n: &str| vars.get(n).map(|v| v.to_string());
    let expand = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| expand_vars(s, lookup))
            .collect()
    };
    let mut mounts = Vec::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let sub_path = match m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            Some(expr) => {
                let expanded = expand_vars(expr, lookup);
                if expanded.starts_with('/') || expanded.split('/').any(|p| p == "..") {
                    return Err(Error::Unsupported(Unsupported {
                        pod: cx.pod.metadata.name.clone().unwrap_or_default(),
                        field: format!("{field}.volumeMounts[{j}].subPathExpr"),
                        message: format!(
                            "{expanded:?} (from {expr:?}) must be a relative path without '..'"
                        ),
                    }));
                }
                Some(expanded)
            }
            None => m.sub_path.clone(),
        };
        mounts.push(Mount {
            volume: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || read_only.contains(&m.name),
            sub_path: sub_path.filter(|s| !s.is_empty()),
        });
    }
    let probes = super::probes::translate(c, field).map_err(|(field, message)| Unsupported {
        pod: cx.pod.metadata.name.clone().unwrap_or_default(),
        field,
        message,
    })?;
    let pod_name = cx.pod.metadata.name.as_deref().unwrap_or_default();
    let image = c.image.clone().unwrap_or_default();
    let host_interfaces = options
        .interface_grants
        .for_container(cx.pod, &image)
        .map_err(|message| Unsupported {
            pod: pod_name.to_string(),
            field: format!("metadata.annotations[{HOST_INTERFACES_ANNOTATION}]"),
            message,
        })?;
    Ok(ContainerSpec {
        name: c.name.clone(),
        image,
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        mounts,
        limits: limits(c),
        stdin: None,
        open_stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        output: options.output.as_ref().map(|make| make(pod_name, &c.name)),
        env,
        probes,
        ports: c
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect(),
        host_interfaces,
        run_as_user: c
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or_else(|| {
                cx.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.security_context.as_ref())
                    .and_then(|s| s.run_as_user)
            })
            .and_then(|u| u32::try_from(u).ok()),
        process_namespace: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_paren_expansion_follows_kubernetes() {
        let vars = |n: &str| (n == "DELAY").then(|| "5".to_string());
        assert_eq!(expand_vars("sleep $(DELAY)", vars), "sleep 5");
        assert_eq!(expand_vars("$(MISSING) stays", vars), "$(MISSING) stays");
        assert_eq!(expand_vars("$$(DELAY) escaped", vars), "$(DELAY) escaped");
        assert_eq!(expand_vars("cost $5 and $", vars), "cost $5 and $");
        assert_eq!(expand_vars("unclosed $(DELAY", vars), "unclosed $(DELAY");
        assert_eq!(expand_vars("ünï $(DELAY)", vars), "ünï 5");
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "n1".into(),
            host_ip: "127.0.0.1".into(),
            pod_ip: Some("10.244.0.7".parse().unwrap()),
            allocatable: Allocatable {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
            },
        }
    }

    /// ConfigMaps, Secrets and Services from JSON.
    struct Fixed(Vec<serde_json::Value>);

    impl Fixed {
        fn find<T: serde::de::DeserializeOwned>(&self, kind: &str, name: &str) -> Option<T> {
            self.0
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .map(|o| serde_json::from_value(o.clone()).unwrap())
        }
    }

    impl Sources for Fixed {
        fn config_map(&self, _: &str, name: &str) -> Option<k8s_openapi::api::core::v1::ConfigMap> {
            self.find("ConfigMap", name)
        }
        fn secret(&self, _: &str, name: &str) -> Option<k8s_openapi::api::core::v1::Secret> {
            self.find("Secret", name)
        }
        fn services(&self, _: &str) -> Vec<k8s_openapi::api::core::v1::Service> {
            self.0
                .iter()
                .filter(|o| o["kind"] == "Service")
                .map(|o| serde_json::from_value(o.clone()).unwrap())
                .collect()
        }
    }

    fn fixed() -> Fixed {
        Fixed(vec![
            serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "example-configmap"},
                "data": {"database": "mongodb", "database_uri": "mongodb://localhost:27017", "1bad": "x"}}),
            serde_json::json!({"kind": "Secret", "metadata": {"name": "api-authentication-secret"},
                "data": {"key": "c2VjcmV0"}}),
            serde_json::json!({"kind": "Service", "metadata": {"name": "db"},
                "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 5432}]}}),
        ])
    }

    fn env_of(t: &Translated) -> HashMap<String, String> {
        t.spec.containers[0].env.iter().cloned().collect()
    }

    #[test]
    fn env_refers_to_earlier_env_and_fields() {
        let p = pod(
            "metadata:\n  name: web\n  labels: {app: shop}\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, 'echo $(GREETING) $(DB_SERVICE_HOST)']\n    env:\n    - {name: WHO, value: world}\n    - {name: GREETING, value: hello $(WHO)}\n    - name: POD\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: APP\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    - name: IP\n      valueFrom: {fieldRef: {fieldPath: status.podIP}}\n    - name: MEM\n      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n    resources:\n      limits: {memory: 64Mi, cpu: 200m}\n",
        );
        let t = to_runtime(&p, &node(), &Options::default(), &fixed()).unwrap();
        let c = &t.spec.containers[0];
        assert_eq!(c.command, ["sh", "-c", "echo hello world 10.96.0.20"]);
        let env = env_of(&t);
        assert_eq!(env["POD"], "web");
        assert_eq!(env["APP"], "shop");
        assert_eq!(env["IP"], "10.244.0.7");
        assert_eq!(env["MEM"], "64");
        assert_eq!(env["DB_SERVICE_PORT"], "5432");
        assert_eq!(
            c.limits,
            Limits {
                memory_bytes: Some(64 << 20),
                cpu_millis: Some(200)
            }
        );
        assert_eq!(t.spec.restart_policy, RestartPolicy::Always);
    }

    #[test]
    fn env_from_config_maps_and_secrets() {
        let p = pod(
            "metadata:\n  name: pod-env-var\nspec:\n  enableServiceLinks: false\n  containers:\n  - name: c\n    image: toolbox\n    envFrom:\n    - configMapRef: {name: example-configmap}\n    - prefix: CFG_\n      configMapRef: {name: example-configmap}\n    env:\n    - name: database\n      value: overridden\n    - name: KEY\n      valueFrom: {secretKeyRef: {name: api-authentication-secret, key: key}}\n    - name: GONE\n      valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}\n",
        );
        let t = to_runtime(&p, &node(), &Options::default(), &fixed()).unwrap();
        let env = env_of(&t);
        assert_eq!(env["database"], "overridden");
        assert_eq!(env["CFG_database"], "mongodb");
        assert_eq!(env["database_uri"], "mongodb://localhost:27017");
        assert_eq!(env["KEY"], "secret");
        assert!(!env.contains_key("GONE"));
        assert!(!env.contains_key("1bad"));
        assert!(
            !env.contains_key("DB_SERVICE_HOST"),
            "service links are off"
        );
        assert!(
            !env.contains_key("KUBERNETES_SERVICE_HOST"),
            "not in the sources"
        );
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert_eq!(
            t.warnings[0].message,
            "Keys [1bad] from the EnvFrom configMap default/example-configmap were skipped since they are considered invalid environment variable names."
        );
    }

    #[test]
    fn missing_references_wait_with_kubernetes_messages() {
        let missing = |env: &str| {
            let p = pod(&format!(
                "metadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    env:\n    - name: X\n      valueFrom: {env}\n"
            ));
            to_runtime(&p, &node(), &Options::default(), &fixed()).unwrap_err()
        };
        assert_eq!(
            missing("{configMapKeyRef: {name: nope, key: k}}"),
            Error::Config("configmap \"nope\" not found".into())
        );
        assert_eq!(
            missing("{secretKeyRef: {name: api-authentication-secret, key: nokey}}"),
            Error::Config(
                "couldn't find key nokey in Secret default/api-authentication-secret".into()
            )
        );
    }

    #[test]
    fn written_volumes_are_read_only_and_placed_by_backing() {
        let p = pod(
            "metadata:\n  name: p\n  uid: u1\nspec:\n  volumes:\n  - name: cfg\n    configMap: {name: example-configmap}\n  - name: creds\n    secret: {secretName: api-authentication-secret}\n  - name: fast\n    emptyDir: {medium: Memory}\n  containers:\n  - name: c\n    image: toolbox\n    volumeMounts:\n    - {name: cfg, mountPath: /etc/config}\n    - {name: creds, mountPath: /etc/creds}\n",
        );
        let dirs = tempfile::tempdir().unwrap();
        let options = Options {
            volume_dirs: Some(VolumeDirs {
                disk: dirs.path().join("disk"),
                memory: Ok(dirs.path().join("memory")),
            }),
            ..Options::default()
        };
        let t = to_runtime(&p, &node(), &options, &fixed()).unwrap();
        assert_eq!(t.written.len(), 2);
        assert_eq!(t.written[0].dir, dirs.path().join("disk/cfg"));
        assert_eq!(t.written[1].dir, dirs.path().join("memory/creds"));
        assert!(dirs.path().join("memory/fast").is_dir());
        assert!(t.spec.containers[0].mounts.iter().all(|m| m.read_only));
        // Without a kubelet's directories there is nowhere to write them.
        let err = to_runtime(&p, &node(), &Options::default(), &fixed()).unwrap_err();
        assert!(
            err.to_string().contains("needs a server's kubelet"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_volumes_say_so() {
        let p = pod(
            "metadata:\n  name: p\nspec:\n  volumes:\n  - name: cfg\n    gitRepo: {repository: x}\n  containers:\n  - name: c\n    image: toolbox\n",
        );
        let err = to_runtime(&p, &node(), &Options::default(), &fixed()).unwrap_err();
        assert!(
            err.to_string()
                .contains("volumes of type gitRepo are not supported yet"),
            "{err}"
        );
    }
}
