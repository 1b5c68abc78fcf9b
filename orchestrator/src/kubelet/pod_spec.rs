//! From a Kubernetes Pod to the runtime's [`PodSpec`]: volumes, containers,
//! command and args with `$(VAR)` expansion, environment (values and the
//! `fieldRef`s that need no server), mounts, limits, restart policy.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Volume};
use std::path::PathBuf;
use std::sync::Arc;
use wasmkube_runtime::limits::Limits;
use wasmkube_runtime::{
    Backoff, ContainerSpec, LineObserver, Mount, PodSpec, RestartPolicy, SandboxSpec, VolumeSource,
    VolumeSpec,
};

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

/// Node facts a Pod's environment may refer to.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// `spec.nodeName` when the pod does not set it.
    pub node_name: String,
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

fn field_ref(pod: &Pod, node: &NodeInfo, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let indexed = |prefix: &str, map: Option<&std::collections::BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_else(|| "default".into())),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(
            spec.and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| node.node_name.clone()),
        ),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        p if p.starts_with("metadata.labels['") => {
            indexed("metadata.labels['", meta.labels.as_ref())
        }
        p if p.starts_with("metadata.annotations['") => {
            indexed("metadata.annotations['", meta.annotations.as_ref())
        }
        _ => None,
    }
}

fn container_env(
    pod: &Pod,
    node: &NodeInfo,
    c: &Container,
    field: &str,
    unsupported: &impl Fn(String, String) -> Unsupported,
) -> Result<Vec<(String, String)>, Unsupported> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (
        j,
        EnvVar {
            name,
            value,
            value_from,
        },
    ) in c.env.iter().flatten().enumerate()
    {
        let resolved = match (value, value_from) {
            (_, Some(from)) => {
                let Some(fr) = &from.field_ref else {
                    return Err(unsupported(
                        format!("{field}.env[{j}].valueFrom"),
                        "only fieldRef is supported so far (configMapKeyRef, secretKeyRef and resourceFieldRef come with ConfigMaps and Secrets)".into(),
                    ));
                };
                field_ref(pod, node, &fr.field_path).ok_or_else(|| {
                    unsupported(
                        format!("{field}.env[{j}].valueFrom.fieldRef.fieldPath"),
                        format!("{:?} is not available here", fr.field_path),
                    )
                })?
            }
            (Some(v), None) => expand_vars(v, |n| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            }),
            (None, None) => String::new(),
        };
        env.push((name.clone(), resolved));
    }
    Ok(env)
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

fn volume(pod_name: &str, i: usize, v: &Volume) -> Result<VolumeSpec, Unsupported> {
    let field = format!("spec.volumes[{i}]");
    let source = if v.empty_dir.is_some() {
        VolumeSource::EmptyDir
    } else if let Some(host) = &v.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => {
                std::fs::create_dir_all(&path).map_err(|e| Unsupported {
                    pod: pod_name.into(),
                    field: format!("{field}.hostPath.path"),
                    message: format!("cannot create {}: {e}", path.display()),
                })?;
            }
            "" | "Directory" => {}
            other => {
                return Err(Unsupported {
                    pod: pod_name.into(),
                    field: format!("{field}.hostPath.type"),
                    message: format!(
                        "{other:?} is not supported yet (Directory and DirectoryOrCreate are)"
                    ),
                });
            }
        }
        VolumeSource::HostDir(path)
    } else {
        let kind = serde_json::to_value(v)
            .ok()
            .and_then(|j| {
                j.as_object()
                    .and_then(|o| o.keys().find(|k| *k != "name").cloned())
            })
            .unwrap_or_else(|| "unknown".into());
        return Err(Unsupported {
            pod: pod_name.into(),
            field,
            message: format!(
                "volumes of type {kind} are not supported yet (emptyDir and hostPath are)"
            ),
        });
    };
    Ok(VolumeSpec {
        name: v.name.clone(),
        source,
    })
}

/// Translates a validated Pod.
pub fn to_runtime(pod: &Pod, node: &NodeInfo, options: &Options) -> Result<PodSpec, Unsupported> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let unsupported = |field: String, message: String| Unsupported {
        pod: name.clone(),
        field,
        message,
    };
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| unsupported("spec".into(), "Required value".into()))?;
    let volumes = spec
        .volumes
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, v)| volume(&name, i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let translate =
        |list: &str, containers: &[Container]| -> Result<Vec<ContainerSpec>, Unsupported> {
            let mut out = Vec::new();
            for (i, c) in containers.iter().enumerate() {
                let field = format!("spec.{list}[{i}]");
                out.push(container_spec(
                    pod,
                    node,
                    options,
                    &name,
                    c,
                    &field,
                    &unsupported,
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
    Ok(PodSpec {
        sandbox: SandboxSpec {
            uid: pod
                .metadata
                .uid
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name: name.clone(),
            hostname: spec.hostname.clone().filter(|h| !h.is_empty()),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            volumes,
            // The kubelet assigns the address.
            ip: None,
        },
        init_containers,
        containers,
        restart_policy,
        backoff: options.backoff,
    })
}

/// One container in the runtime's terms: env, `$(VAR)` expansion, mounts,
/// limits.
fn container_spec(
    pod: &Pod,
    node: &NodeInfo,
    options: &Options,
    pod_name: &str,
    c: &Container,
    field: &str,
    unsupported: &impl Fn(String, String) -> Unsupported,
) -> Result<ContainerSpec, Unsupported> {
    let env = container_env(pod, node, c, field, unsupported)?;
    let lookup = |n: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let expand = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| expand_vars(s, lookup))
            .collect()
    };
    let mounts = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| Mount {
            volume: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
            sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
        })
        .collect();
    let probes = super::probes::translate(c, field)
        .map_err(|(field, message)| unsupported(field, message))?;
    Ok(ContainerSpec {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        mounts,
        limits: limits(c),
        stdin: None,
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

    #[test]
    fn env_refers_to_earlier_env_and_fields() {
        let p = pod(
            "metadata:\n  name: web\n  labels: {app: shop}\nspec:\n  containers:\n  - name: c\n    image: toolbox\n    command: [sh, -c, 'echo $(GREETING)']\n    env:\n    - {name: WHO, value: world}\n    - {name: GREETING, value: hello $(WHO)}\n    - name: POD\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: APP\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    resources:\n      limits: {memory: 64Mi, cpu: 200m}\n",
        );
        let node = NodeInfo {
            node_name: "n1".into(),
        };
        let spec = to_runtime(&p, &node, &Options::default()).unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.command, ["sh", "-c", "echo hello world"]);
        assert!(c.env.contains(&("POD".into(), "web".into())));
        assert!(c.env.contains(&("APP".into(), "shop".into())));
        assert_eq!(
            c.limits,
            Limits {
                memory_bytes: Some(64 << 20),
                cpu_millis: Some(200)
            }
        );
        assert_eq!(spec.restart_policy, RestartPolicy::Always);
    }

    #[test]
    fn unsupported_volumes_say_so() {
        let p = pod(
            "metadata:\n  name: p\nspec:\n  volumes:\n  - name: cfg\n    configMap: {name: x}\n  containers:\n  - name: c\n    image: toolbox\n",
        );
        let err = to_runtime(
            &p,
            &NodeInfo {
                node_name: "n".into(),
            },
            &Options::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("volumes of type configMap are not supported yet"),
            "{err}"
        );
    }
}
