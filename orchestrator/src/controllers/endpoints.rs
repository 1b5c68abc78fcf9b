//! The endpoints controllers: for every Service with a selector, the
//! Endpoints object of the same name and its EndpointSlices list the pods
//! the selector matches, at the ports the Service's `targetPort`s name.
//! Ready pods serve; pods not ready (or terminating) are listed as such, so
//! traffic goes only to ready pods.
//!
//! Level-triggered: a change to a Service or a pod marks its namespace,
//! and each marked namespace is reconciled as a whole from one list of its
//! Services, pods, Endpoints and slices. A periodic pass repairs what
//! anyone else changed.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::driver::{self, Reconciler};

use crate::registry::metadata::text;
use crate::registry::{
    DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};

const ENDPOINTS_MANAGER: &str = "endpoint-controller";
const SLICES_MANAGER: &str = "endpointslice-controller.k8s.io";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// How often everything is reconciled without a change.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

struct Kinds {
    services: Resource,
    pods: Resource,
    endpoints: Resource,
    slices: Resource,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: watch::Receiver<bool>) {
    let kinds = Kinds {
        services: registry.resource("", "Service"),
        pods: registry.resource("", "Pod"),
        endpoints: registry.resource("", "Endpoints"),
        slices: registry.resource("discovery.k8s.io", "EndpointSlice"),
    };
    let watched = vec![kinds.services.clone().into(), kinds.pods.clone().into()];
    let reconciler = Controller {
        registry: registry.clone(),
        kinds,
        retries: driver::Retries::new(&registry, ENDPOINTS_MANAGER),
    };
    driver::run(
        registry,
        ENDPOINTS_MANAGER,
        watched,
        driver::Pace {
            resync: RESYNC_EVERY,
            batch: Duration::from_millis(20),
        },
        reconciler,
        stop,
    )
    .await;
}

struct Controller {
    registry: Registry,
    kinds: Kinds,
    retries: driver::Retries,
}

impl Reconciler for Controller {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let mut again = driver::Again::new(&self.retries);
        reconcile(&self.registry, &self.kinds, namespace, &mut again).await?;
        Ok(again.when())
    }
}

async fn items(
    registry: &Registry,
    resource: &Resource,
    namespace: &str,
) -> Result<Vec<Arc<Value>>> {
    registry
        .cache(resource)
        .list(Some(namespace), &LabelSelector::default())
        .await
}

/// Brings the Endpoints and slices of every Service in `namespace` in
/// line with its pods; what each Service's writes said goes to `again`.
async fn reconcile(
    registry: &Registry,
    kinds: &Kinds,
    namespace: &str,
    again: &mut driver::Again<'_>,
) -> Result<()> {
    let services = items(registry, &kinds.services, namespace).await?;
    // Pods matter only to Services that select them.
    let selecting = services
        .iter()
        .any(|s| s.pointer("/spec/selector").is_some_and(|v| !v.is_null()));
    let pods = if selecting {
        items(registry, &kinds.pods, namespace).await?
    } else {
        Vec::new()
    };
    let endpoints = items(registry, &kinds.endpoints, namespace).await?;
    let slices = items(registry, &kinds.slices, namespace).await?;
    let mut wanted = BTreeSet::new();
    for service in &services {
        let Some(groups) = desired(service, &pods) else {
            continue;
        };
        let name = text(service, "/metadata/name");
        wanted.insert(name.to_string());
        let current = endpoints
            .iter()
            .map(|e| &**e)
            .find(|e| text(e, "/metadata/name") == name);
        let mine: Vec<&Value> = slices
            .iter()
            .map(|s| &**s)
            .filter(|s| owned_slice(s) && text(s, &label_pointer(SERVICE_NAME_LABEL)) == name)
            .collect();
        let written = async {
            write_endpoints(registry, &kinds.endpoints, service, &groups, current).await?;
            write_slices(registry, &kinds.slices, service, &groups, &mine).await?;
            Ok(None)
        };
        again.note(service, written.await);
    }
    // What a gone (or selector-less) Service left behind.
    for stale in endpoints.iter().filter(|e| {
        text(e, &label_pointer(ENDPOINTS_MANAGED_BY_LABEL)) == ENDPOINTS_MANAGER
            && !wanted.contains(text(e, "/metadata/name"))
    }) {
        again.note(
            stale,
            delete(registry, &kinds.endpoints, stale)
                .await
                .map(|()| None),
        );
    }
    for stale in slices
        .iter()
        .filter(|s| owned_slice(s) && !wanted.contains(text(s, &label_pointer(SERVICE_NAME_LABEL))))
    {
        again.note(
            stale,
            delete(registry, &kinds.slices, stale).await.map(|()| None),
        );
    }
    Ok(())
}

fn label_pointer(label: &str) -> String {
    format!(
        "/metadata/labels/{}",
        label.replace('~', "~0").replace('/', "~1")
    )
}

fn owned_slice(slice: &Value) -> bool {
    text(slice, &label_pointer(MANAGED_BY_LABEL)) == SLICES_MANAGER
}

async fn delete(registry: &Registry, resource: &Resource, object: &Value) -> Result<()> {
    match registry
        .delete(
            resource,
            Some(text(object, "/metadata/namespace")),
            text(object, "/metadata/name"),
            &DeleteOptions::default(),
        )
        .await
    {
        Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One pod behind a Service.
#[derive(Debug, Clone, PartialEq)]
struct Backend {
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    node: String,
    /// The pod's hostname when its subdomain is the Service's name (its
    /// own DNS name, `<hostname>.<service>.<namespace>.svc`).
    hostname: String,
    target: Value,
}

/// The ports of a group of backends: `(name, port, protocol)`.
type Ports = Vec<(String, i64, String)>;

/// Backends grouped by the ports they resolve the Service's ports to (a
/// named target port may differ between pods); `None` for a Service the
/// controller leaves alone (no selector, or ExternalName).
fn desired(service: &Value, pods: &[impl Borrow<Value>]) -> Option<BTreeMap<Ports, Vec<Backend>>> {
    if text(service, "/spec/type") == "ExternalName" {
        return None;
    }
    let selector: BTreeMap<String, String> = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let selector = LabelSelector::from_map(&selector);
    let publish_not_ready = service
        .pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let service_ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut groups: BTreeMap<Ports, Vec<Backend>> = BTreeMap::new();
    for pod in pods
        .iter()
        .map(Borrow::borrow)
        .filter(|p| selector.matches(p))
    {
        let ip = text(pod, "/status/podIP");
        let phase = text(pod, "/status/phase");
        if ip.is_empty() || phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
        let ready_condition = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
        let ready = publish_not_ready || (ready_condition && !terminating);
        let ports: Ports = service_ports
            .iter()
            .filter_map(|port| {
                let protocol = match text(port, "/protocol") {
                    "" => "TCP",
                    p => p,
                };
                let number = target_port(pod, port, protocol)?;
                Some((
                    text(port, "/name").to_string(),
                    number,
                    protocol.to_string(),
                ))
            })
            .collect();
        if ports.is_empty() && !service_ports.is_empty() {
            // None of the Service's target ports is a port of this pod.
            continue;
        }
        groups.entry(ports).or_default().push(Backend {
            ip: ip.to_string(),
            ready,
            serving: ready_condition || publish_not_ready,
            terminating,
            node: text(pod, "/spec/nodeName").to_string(),
            hostname: if text(pod, "/spec/subdomain") == text(service, "/metadata/name") {
                text(pod, "/spec/hostname").to_string()
            } else {
                String::new()
            },
            target: json!({
                "kind": "Pod",
                "namespace": text(pod, "/metadata/namespace"),
                "name": text(pod, "/metadata/name"),
                "uid": text(pod, "/metadata/uid"),
            }),
        });
    }
    for backends in groups.values_mut() {
        backends.sort_by_key(|b| ip_order(&b.ip));
    }
    Some(groups)
}

fn ip_order(ip: &str) -> (u32, String) {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(a) => (u32::from(a), String::new()),
        Err(_) => (u32::MAX, ip.to_string()),
    }
}

/// The pod's port a Service port targets: the number, or the container
/// port of that name and protocol.
fn target_port(pod: &Value, port: &Value, protocol: &str) -> Option<i64> {
    match port.get("targetPort") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(name)) => pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)?
            .iter()
            .flat_map(|c| {
                c.get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|p| {
                text(p, "/name") == name
                    && match text(p, "/protocol") {
                        "" => "TCP",
                        p => p,
                    } == protocol
            })?
            .get("containerPort")?
            .as_i64(),
        _ => port.get("port")?.as_i64(),
    }
}

fn labels_of(service: &Value) -> serde_json::Map<String, Value> {
    let mut labels = service
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if text(service, "/spec/clusterIP") == "None" {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    }
    labels
}

fn ports_json(ports: &Ports) -> Vec<Value> {
    ports
        .iter()
        .map(|(name, port, protocol)| {
            let mut p = json!({"port": port, "protocol": protocol});
            if !name.is_empty() {
                p["name"] = json!(name);
            }
            p
        })
        .collect()
}

/// EndpointSlice ports always carry a name, empty for an unnamed Service
/// port (kubectl reads it without checking, as the API server always
/// sends it).
fn slice_ports(ports: &Ports) -> Vec<Value> {
    ports
        .iter()
        .map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol}))
        .collect()
}

fn endpoint_address(backend: &Backend) -> Value {
    let mut address = json!({"ip": backend.ip, "targetRef": backend.target});
    if !backend.node.is_empty() {
        address["nodeName"] = json!(backend.node);
    }
    if !backend.hostname.is_empty() {
        address["hostname"] = json!(backend.hostname);
    }
    address
}

/// The Endpoints subsets: ready pods as addresses, the others (not
/// terminating) as notReadyAddresses.
fn subsets(groups: &BTreeMap<Ports, Vec<Backend>>) -> Vec<Value> {
    groups
        .iter()
        .filter_map(|(ports, backends)| {
            let ready: Vec<Value> = backends
                .iter()
                .filter(|b| b.ready)
                .map(endpoint_address)
                .collect();
            let not_ready: Vec<Value> = backends
                .iter()
                .filter(|b| !b.ready && !b.terminating)
                .map(endpoint_address)
                .collect();
            if ready.is_empty() && not_ready.is_empty() {
                return None;
            }
            let mut subset = json!({"ports": ports_json(ports)});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            Some(subset)
        })
        .collect()
}

async fn write_endpoints(
    registry: &Registry,
    resource: &Resource,
    service: &Value,
    groups: &BTreeMap<Ports, Vec<Backend>>,
    current: Option<&Value>,
) -> Result<()> {
    let namespace = text(service, "/metadata/namespace");
    let name = text(service, "/metadata/name");
    let mut labels = labels_of(service);
    labels.insert(ENDPOINTS_MANAGED_BY_LABEL.into(), json!(ENDPOINTS_MANAGER));
    let subsets = subsets(groups);
    let options = WriteOptions::manager(ENDPOINTS_MANAGER);
    match current {
        None => {
            let mut body = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
            });
            if !subsets.is_empty() {
                body["subsets"] = json!(subsets);
            }
            match registry
                .create(resource, Some(namespace), body, &options)
                .await
            {
                Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(current) => {
            let same_subsets =
                current.get("subsets").cloned().unwrap_or(json!([])) == json!(subsets);
            let same_labels = current.pointer("/metadata/labels") == Some(&json!(labels));
            if same_subsets && same_labels {
                return Ok(());
            }
            registry
                .update_with(resource, Some(namespace), name, None, &options, |now| {
                    let mut next = now.clone();
                    next["metadata"]["labels"] = json!(labels);
                    match next.as_object_mut() {
                        Some(o) if subsets.is_empty() => {
                            o.remove("subsets");
                        }
                        Some(o) => {
                            o.insert("subsets".into(), json!(subsets));
                        }
                        None => {}
                    }
                    Ok(next)
                })
                .await
                .map(drop)
        }
    }
}

fn slice_endpoints(backends: &[Backend]) -> Vec<Value> {
    backends
        .iter()
        .map(|b| {
            let mut endpoint = json!({
                "addresses": [b.ip],
                "conditions": {"ready": b.ready, "serving": b.serving, "terminating": b.terminating},
                "targetRef": b.target,
            });
            if !b.node.is_empty() {
                endpoint["nodeName"] = json!(b.node);
            }
            if !b.hostname.is_empty() {
                endpoint["hostname"] = json!(b.hostname);
            }
            endpoint
        })
        .collect()
}

/// One slice per group of ports; existing slices are reused for the
/// groups whose ports they carry, the rest deleted. A Service with no pods
/// still has one empty slice, as in Kubernetes.
async fn write_slices(
    registry: &Registry,
    resource: &Resource,
    service: &Value,
    groups: &BTreeMap<Ports, Vec<Backend>>,
    current: &[&Value],
) -> Result<()> {
    let namespace = text(service, "/metadata/namespace");
    let name = text(service, "/metadata/name");
    let mut labels = labels_of(service);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
    labels.insert(MANAGED_BY_LABEL.into(), json!(SLICES_MANAGER));
    let owner = json!([{
        "apiVersion": "v1", "kind": "Service", "name": name,
        "uid": text(service, "/metadata/uid"),
        "controller": true, "blockOwnerDeletion": true,
    }]);
    let mut wanted: Vec<(Vec<Value>, Vec<Value>)> = groups
        .iter()
        .map(|(ports, backends)| (slice_ports(ports), slice_endpoints(backends)))
        .collect();
    if wanted.is_empty() {
        // No pod: one placeholder slice without ports or endpoints.
        wanted.push((Vec::new(), Vec::new()));
    }
    let mut unused: Vec<&Value> = current.to_vec();
    let options = WriteOptions::manager(SLICES_MANAGER);
    for (ports, endpoints) in wanted {
        let reuse = unused
            .iter()
            .position(|s| s.get("ports").cloned().unwrap_or(json!([])) == json!(ports));
        match reuse.map(|i| unused.remove(i)) {
            Some(slice) => {
                let same = slice.get("endpoints").cloned().unwrap_or(json!([])) == json!(endpoints)
                    && slice.pointer("/metadata/labels") == Some(&json!(labels))
                    && slice.pointer("/metadata/ownerReferences") == Some(&owner);
                if same {
                    continue;
                }
                let slice_name = text(slice, "/metadata/name").to_string();
                registry
                    .update_with(
                        resource,
                        Some(namespace),
                        &slice_name,
                        None,
                        &options,
                        |now| {
                            let mut next = now.clone();
                            next["metadata"]["labels"] = json!(labels);
                            next["metadata"]["ownerReferences"] = owner.clone();
                            next["endpoints"] = json!(endpoints);
                            Ok(next)
                        },
                    )
                    .await?;
            }
            None => {
                let body = json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {
                        "generateName": format!("{name}-"), "namespace": namespace,
                        "labels": labels, "ownerReferences": owner,
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports,
                });
                registry
                    .create(resource, Some(namespace), body, &options)
                    .await?;
            }
        }
    }
    for stale in unused {
        delete(registry, resource, stale).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i64) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    fn service(target: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": target}]},
        })
    }

    #[test]
    fn ready_pods_are_addresses_and_the_others_are_not_ready() {
        let pods = [
            pod("b", "10.244.0.10", true, "http", 8080),
            pod("a", "10.244.0.9", true, "http", 8080),
            pod("c", "10.244.0.11", false, "http", 8080),
            json!({"metadata": {"name": "other", "labels": {"app": "db"}}, "status": {"podIP": "10.244.0.12"}}),
        ];
        let groups = desired(&service(json!("http")), &pods).unwrap();
        let subsets = subsets(&groups);
        assert_eq!(subsets.len(), 1);
        let ips = |key: &str| -> Vec<&str> {
            subsets[0][key]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["ip"].as_str().unwrap())
                .collect()
        };
        assert_eq!(ips("addresses"), ["10.244.0.9", "10.244.0.10"]);
        assert_eq!(ips("notReadyAddresses"), ["10.244.0.11"]);
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(subsets[0]["addresses"][0]["targetRef"]["name"], "a");
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let pods = [
            pod("a", "10.244.0.9", true, "http", 8080),
            pod("b", "10.244.0.10", true, "http", 9090),
            pod("c", "10.244.0.11", true, "other", 7070),
        ];
        let groups = desired(&service(json!("http")), &pods).unwrap();
        let ports: Vec<i64> = groups
            .keys()
            .map(|p| p.first().map_or(0, |p| p.1))
            .collect();
        // Pod c has no port named http: it backs no port of the Service.
        assert_eq!(ports, [8080, 9090]);
        let groups = desired(&service(json!(8000)), &pods).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups.values().next().unwrap().len(), 3);
    }

    #[test]
    fn services_without_selectors_are_left_alone() {
        let mut s = service(json!(80));
        s["spec"].as_object_mut().unwrap().remove("selector");
        assert!(desired(&s, &[] as &[Value]).is_none());
    }
}
