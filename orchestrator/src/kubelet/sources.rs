//! What a pod's spec refers to beyond itself: ConfigMaps and Secrets (for
//! env and volumes), the node's capacity (for `resourceFieldRef` without
//! limits), and the Services of its namespace (their `*_SERVICE_HOST`
//! variables). Lookups go through [`Sources`], so translating a pod stays a
//! pure function that tests can feed from a map.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, ResourceFieldSelector,
    Secret, Service,
};
use serde_json::Value;

use super::tokens::Tokens;
use crate::quantity::Quantity;
use crate::registry::{ListOptions, Registry};

/// Objects a pod may refer to, by namespace and name.
pub trait Sources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// The Services of a namespace.
    fn services(&self, namespace: &str) -> Vec<Service>;
    fn claim(&self, _namespace: &str, _name: &str) -> Option<PersistentVolumeClaim> {
        None
    }
    fn persistent_volume(&self, _name: &str) -> Option<PersistentVolume> {
        None
    }
    /// A token of the pod's ServiceAccount bound to the pod, for
    /// `audience` (empty: the API's), lasting `expiration` seconds.
    fn service_account_token(
        &self,
        _pod: &Pod,
        _audience: &str,
        _expiration: i64,
    ) -> Result<String, Missing> {
        Err(Missing(
            "failed to fetch token: no ServiceAccount token issuer".into(),
        ))
    }
}

/// Nothing exists: for pods that refer to nothing.
#[derive(Debug, Default)]
pub struct NoSources;

impl Sources for NoSources {
    fn config_map(&self, _: &str, _: &str) -> Option<ConfigMap> {
        None
    }
    fn secret(&self, _: &str, _: &str) -> Option<Secret> {
        None
    }
    fn services(&self, _: &str) -> Vec<Service> {
        Vec::new()
    }
}

/// The server's objects, read from the store as they are now, and the
/// kubelet's tokens.
pub struct RegistrySources<'a>(pub &'a Registry, pub &'a Tokens);

impl RegistrySources<'_> {
    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<T> {
        let resource = self.0.resource("", kind);
        let object = self.0.find(&resource, namespace, name).ok()??;
        serde_json::from_value(object).ok()
    }
}

impl Sources for RegistrySources<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.typed("ConfigMap", Some(namespace), name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.typed("Secret", Some(namespace), name)
    }
    fn claim(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        self.typed("PersistentVolumeClaim", Some(namespace), name)
    }
    fn persistent_volume(&self, name: &str) -> Option<PersistentVolume> {
        self.typed("PersistentVolume", None, name)
    }
    fn service_account_token(
        &self,
        pod: &Pod,
        audience: &str,
        expiration: i64,
    ) -> Result<String, Missing> {
        self.1
            .token(self.0, pod, audience, expiration)
            .map_err(Missing)
    }
    fn services(&self, namespace: &str) -> Vec<Service> {
        let resource = self.0.resource("", "Service");
        self.0
            .list(&resource, Some(namespace), &ListOptions::default())
            .map(|listed| listed.items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s: Value| serde_json::from_value(s).ok())
            .collect()
    }
}

/// Why a reference cannot be resolved now (it may resolve later: the
/// ConfigMap may yet be created). The message is Kubernetes'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

/// The entries of a ConfigMap as bytes (`data` and `binaryData`).
pub fn config_map_entries(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// The entries of a Secret, decoded.
pub fn secret_entries(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// A ConfigMap's entries, or why not; `Ok(None)` when it is missing and
/// optional.
pub fn config_map(
    sources: &dyn Sources,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Missing> {
    match sources.config_map(namespace, name) {
        Some(cm) => Ok(Some(config_map_entries(&cm))),
        None if optional == Some(true) => Ok(None),
        None => Err(Missing(format!("configmap {name:?} not found"))),
    }
}

/// A Secret's entries, or why not; `Ok(None)` when missing and optional.
pub fn secret(
    sources: &dyn Sources,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Missing> {
    match sources.secret(namespace, name) {
        Some(s) => Ok(Some(secret_entries(&s))),
        None if optional == Some(true) => Ok(None),
        None => Err(Missing(format!("secret {name:?} not found"))),
    }
}

/// Whether `name` may be an environment variable from `envFrom`
/// (Kubernetes' `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// What the host offers a container without limits: its `limits.*` in the
/// downward API are the node's allocatable, as in Kubernetes.
#[derive(Debug, Clone, Copy)]
pub struct Allocatable {
    pub cpu_millis: i128,
    pub memory_bytes: i128,
}

impl Allocatable {
    /// This host's.
    pub fn host() -> Allocatable {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Allocatable {
            cpu_millis: cpus as i128 * 1000,
            memory_bytes: crate::host::memory_kib() as i128 * 1024,
        }
    }
}

/// The value of a `resourceFieldRef` for `container`, as text.
pub fn resource_field(
    container: &Container,
    selector: &ResourceFieldSelector,
    allocatable: Allocatable,
) -> Result<String, String> {
    let resources = container.resources.as_ref();
    let get = |list: &str, key: &str| {
        let map = match list {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        };
        map.and_then(|m| m.get(key))
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    let (list, key) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {}", selector.resource))?;
    let node = match key {
        "cpu" => Quantity::from_millis(allocatable.cpu_millis),
        "memory" => Quantity::from_units(allocatable.memory_bytes),
        "ephemeral-storage" => Quantity::from_units(0),
        k if k.starts_with("hugepages-") => Quantity::from_units(0),
        _ => {
            return Err(format!(
                "unsupported container resource: {}",
                selector.resource
            ));
        }
    };
    let value = match list {
        // A missing limit is the node's allocatable.
        "limits" => get("limits", key).unwrap_or(node),
        // A missing request is the limit when set (defaulting), else zero.
        "requests" => get("requests", key)
            .or_else(|| get("limits", key))
            .unwrap_or(Quantity::from_units(0)),
        _ => {
            return Err(format!(
                "unsupported container resource: {}",
                selector.resource
            ));
        }
    };
    let divisor = match &selector.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|e| e.to_string())?,
        None => Quantity::from_units(1),
    };
    value
        .ceil_div(&divisor)
        .map(|v| v.to_string())
        .ok_or_else(|| format!("divisor {divisor} must be greater than zero"))
}

/// The Docker-links style variables of the Services that exist when a pod
/// starts: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]`,
/// `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`; only
/// Services with a cluster IP.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut env = Vec::new();
    for service in sorted {
        let Some(spec) = &service.spec else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let name = service
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        env.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        if let Some(first) = ports.first() {
            env.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        }
        for port in ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        port_name.to_uppercase().replace('-', "_")
                    ),
                    port.port.to_string(),
                ));
            }
        }
        if let Some(first) = ports.first() {
            let proto = first.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            env.push((
                format!("{name}_PORT"),
                format!("{proto}://{ip}:{}", first.port),
            ));
        }
        for port in ports {
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            let prefix = format!("{name}_PORT_{}_{}", port.port, proto.to_uppercase());
            let lower = proto.to_lowercase();
            env.push((prefix.clone(), format!("{lower}://{ip}:{}", port.port)));
            env.push((format!("{prefix}_PROTO"), lower));
            env.push((format!("{prefix}_PORT"), port.port.to_string()));
            env.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_links_look_like_kubernetes() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-master"},
            "spec": {"clusterIP": "10.0.0.11", "ports": [{"name": "db", "port": 6379, "protocol": "TCP"}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}
        }))
        .unwrap();
        let env: BTreeMap<_, _> = service_env(&[service, headless]).into_iter().collect();
        assert_eq!(env["REDIS_MASTER_SERVICE_HOST"], "10.0.0.11");
        assert_eq!(env["REDIS_MASTER_SERVICE_PORT"], "6379");
        assert_eq!(env["REDIS_MASTER_SERVICE_PORT_DB"], "6379");
        assert_eq!(env["REDIS_MASTER_PORT"], "tcp://10.0.0.11:6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP"], "tcp://10.0.0.11:6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_PROTO"], "tcp");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_PORT"], "6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_ADDR"], "10.0.0.11");
        assert_eq!(env.len(), 8, "nothing for a headless service: {env:?}");
    }

    #[test]
    fn resource_fields_divide_rounding_up_and_default_to_the_node() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}))
        .unwrap();
        let node = Allocatable {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
        };
        let field = |resource: &str, divisor: Option<&str>| {
            let selector: ResourceFieldSelector =
                serde_json::from_value(json!({"resource": resource, "divisor": divisor})).unwrap();
            resource_field(&c, &selector, node)
        };
        assert_eq!(field("limits.memory", None).unwrap(), "67108864");
        assert_eq!(field("limits.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(field("limits.cpu", None).unwrap(), "1");
        assert_eq!(field("limits.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(field("requests.cpu", Some("1m")).unwrap(), "250");
        let bare: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let selector: ResourceFieldSelector =
            serde_json::from_value(json!({"resource": "limits.cpu"})).unwrap();
        assert_eq!(resource_field(&bare, &selector, node).unwrap(), "2");
        assert!(field("limits.gpu", None).is_err());
    }

    #[test]
    fn env_var_names_from_env_from() {
        for good in ["A", "a_b", "_x", "key.name", "k-1"] {
            assert!(is_env_var_name(good), "{good}");
        }
        for bad in ["", "1abc", "a b", "a=b"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
