//! What kube-proxy and a single-node load balancer do, in-process: every
//! Service's cluster IP answers inside the cluster network, each port
//! balanced over the ready endpoints of its EndpointSlices; NodePort and
//! LoadBalancer Services are also served on host ports (`nodePort`, and
//! for LoadBalancer the Service `port`), and a LoadBalancer gets the host
//! address as its ingress in status. Service names resolve for guests
//! (`<service>.<namespace>.svc.cluster.local`, headless ones to their
//! ready pods, and a ready pod whose hostname and subdomain name it as
//! `<hostname>.<service>.<namespace>.svc.cluster.local`, as a StatefulSet's
//! pods are).
//!
//! Level-triggered: any change to Services or EndpointSlices (and a
//! periodic pass) recomputes the whole table from one list of each.

mod listeners;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use wasmkube_runtime::net::{CLUSTER_DOMAIN, ClusterNet};

use self::listeners::Listeners;
use crate::events::{EventType, Recorder};
use crate::registry::metadata::text;
use crate::registry::{ListOptions, Registry, Resource, WriteOptions};
use crate::store::Watch;

const NAME: &str = "service-proxy";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// How often everything is recomputed without a change.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

struct Proxy {
    registry: Registry,
    cluster: Arc<ClusterNet>,
    /// The host address node ports and load balancer ports listen on.
    address: IpAddr,
    services: Resource,
    slices: Resource,
    listeners: Listeners,
    recorder: Recorder,
    /// Host ports already reported as failing, so each is reported once.
    reported: HashSet<SocketAddr>,
}

/// Runs until `stop` turns true; node ports and load balancer ports
/// listen on `address`.
pub async fn run(
    registry: Registry,
    cluster: Arc<ClusterNet>,
    address: IpAddr,
    mut stop: watch::Receiver<bool>,
) {
    let mut proxy = Proxy {
        recorder: Recorder::new(registry.clone(), NAME, None),
        services: registry.resource("", "Service"),
        slices: registry.resource("discovery.k8s.io", "EndpointSlice"),
        registry,
        cluster,
        address,
        listeners: Listeners::default(),
        reported: HashSet::new(),
    };
    let mut watches: Option<[Watch; 2]> = None;
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    loop {
        if watches.is_none() {
            let revision = proxy.registry.store().revision();
            watches = proxy
                .registry
                .watch(&proxy.services, None, revision)
                .and_then(|s| Ok([s, proxy.registry.watch(&proxy.slices, None, revision)?]))
                .ok();
        }
        proxy.sync().await;
        let Some([services, slices]) = watches.as_mut() else {
            tokio::select! {
                _ = tick.tick() => continue,
                _ = stop.changed() => return,
            }
        };
        let event = tokio::select! {
            event = services.next() => event,
            event = slices.next() => event,
            _ = tick.tick() => continue,
            _ = stop.changed() => return,
        };
        let failed = event.is_none_or(|e| e.is_err())
            || std::iter::from_fn(|| services.try_next())
                .chain(std::iter::from_fn(|| slices.try_next()))
                .any(|e| e.is_err());
        if failed {
            watches = None;
        }
    }
}

fn port_of(value: &Value, field: &str) -> Option<u16> {
    u16::try_from(value.get(field)?.as_i64()?).ok()
}

fn is_tcp(port: &Value) -> bool {
    matches!(text(port, "/protocol"), "" | "TCP")
}

/// The ready endpoints of one Service port, from its slices: the slice
/// port of the same name, at each ready endpoint's addresses.
fn endpoints_of(port: &Value, slices: &[&Value]) -> Vec<SocketAddr> {
    let name = text(port, "/name");
    let mut endpoints = Vec::new();
    for slice in slices {
        let Some(target) = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| text(p, "/name") == name && is_tcp(p))
            .and_then(|p| port_of(p, "port"))
        else {
            continue;
        };
        let ready = slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // Ready unknown counts as ready, as kube-proxy reads it.
            .filter(|e| e.pointer("/conditions/ready") != Some(&json!(false)));
        for endpoint in ready {
            let addresses = endpoint.get("addresses").and_then(Value::as_array);
            for address in addresses.into_iter().flatten() {
                if let Some(ip) = address.as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                    endpoints.push(SocketAddr::new(ip, target));
                }
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// The addresses of the ready endpoints of `slices`, each once, sorted.
fn ready_addresses(slices: &[&Value]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = slices
        .iter()
        .flat_map(|s| {
            s.get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|e| e.pointer("/conditions/ready") != Some(&json!(false)))
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The addresses of each ready endpoint of `slices` that has a hostname.
fn hostnames(slices: &[&Value]) -> HashMap<String, Vec<IpAddr>> {
    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let endpoints = slices.iter().flat_map(|s| {
        s.get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    for endpoint in endpoints.filter(|e| e.pointer("/conditions/ready") != Some(&json!(false))) {
        let hostname = text(endpoint, "/hostname");
        if hostname.is_empty() {
            continue;
        }
        let ips = endpoint
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str()?.parse::<IpAddr>().ok());
        names.entry(hostname.to_string()).or_default().extend(ips);
    }
    names
}

impl Proxy {
    /// The address a load balancer reports as its ingress.
    fn ingress_ip(&self) -> IpAddr {
        if self.address.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.address
        }
    }

    async fn sync(&mut self) {
        let list = |resource: &Resource| {
            self.registry
                .list(resource, None, &ListOptions::default())
                .map(|l| l.items)
        };
        let (services, slices) = match (list(&self.services), list(&self.slices)) {
            (Ok(services), Ok(slices)) => (services, slices),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("service proxy: listing: {e}");
                return;
            }
        };
        let mut by_service: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
        for slice in &slices {
            let service = slice
                .pointer("/metadata/labels")
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str)
                .unwrap_or("");
            by_service
                .entry((text(slice, "/metadata/namespace"), service))
                .or_default()
                .push(slice);
        }
        let mut addresses = HashSet::new();
        let mut host_ports: HashMap<SocketAddr, SocketAddr> = HashMap::new();
        // Host ports of each LoadBalancer Service, for its status.
        let mut balancers: Vec<(&Value, Vec<SocketAddr>)> = Vec::new();
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for service in &services {
            let key = (
                text(service, "/metadata/namespace"),
                text(service, "/metadata/name"),
            );
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            let fqdn = format!("{}.{}.svc.{CLUSTER_DOMAIN}", key.1, key.0);
            let Ok(ip) = text(service, "/spec/clusterIP").parse::<IpAddr>() else {
                if text(service, "/spec/clusterIP") == "None" {
                    // Headless: the name is its ready pods' addresses.
                    for (hostname, ips) in hostnames(slices) {
                        names.insert(format!("{hostname}.{fqdn}"), ips);
                    }
                    names.insert(fqdn, ready_addresses(slices));
                }
                continue;
            };
            names.insert(fqdn, vec![ip]);
            let kind = text(service, "/spec/type");
            let mut ports = HashMap::new();
            let mut balanced = Vec::new();
            let spec_ports = service.pointer("/spec/ports").and_then(Value::as_array);
            for port in spec_ports.into_iter().flatten().filter(|p| is_tcp(p)) {
                let Some(number) = port_of(port, "port") else {
                    continue;
                };
                ports.insert(number, endpoints_of(port, slices));
                let target = SocketAddr::new(ip, number);
                if (kind == "NodePort" || kind == "LoadBalancer")
                    && let Some(node_port) = port_of(port, "nodePort")
                {
                    host_ports.insert(SocketAddr::new(self.address, node_port), target);
                }
                if kind == "LoadBalancer" {
                    let host = SocketAddr::new(self.address, number);
                    host_ports.entry(host).or_insert(target);
                    balanced.push(host);
                }
            }
            self.cluster.set_service(ip, ports);
            addresses.insert(ip);
            if kind == "LoadBalancer" {
                balancers.push((service, balanced));
            }
        }
        self.cluster.set_names(names);
        for gone in self.cluster.service_ips() {
            if !addresses.contains(&gone) {
                self.cluster.remove_service(gone);
            }
        }
        let failed = self.listeners.sync(&self.cluster, &host_ports).await;
        self.reported
            .retain(|host| failed.iter().any(|(f, _)| f == host));
        for (host, error) in failed {
            if !self.reported.insert(host) {
                continue;
            }
            let target = host_ports[&host];
            let owner = services
                .iter()
                .find(|s| text(s, "/spec/clusterIP") == target.ip().to_string());
            if let Some(service) = owner {
                let message = format!("Failed to open host port {host} for the Service: {error}");
                tracing::warn!("{message}");
                self.recorder
                    .record(
                        service,
                        EventType::Warning,
                        "FailedToOpenPort",
                        &message,
                        None,
                    )
                    .await;
            }
        }
        for (service, hosts) in balancers {
            let open = !hosts.is_empty() && hosts.iter().all(|h| self.listeners.is_open(h));
            let ingress = if open {
                json!({"ingress": [{"ip": self.ingress_ip().to_string(), "ipMode": "VIP"}]})
            } else {
                json!({})
            };
            if service.pointer("/status/loadBalancer") != Some(&ingress) {
                self.set_balancer_status(service, ingress).await;
            }
        }
    }

    async fn set_balancer_status(&self, service: &Value, ingress: Value) {
        let written = self
            .registry
            .update_with(
                &self.services,
                Some(text(service, "/metadata/namespace")),
                text(service, "/metadata/name"),
                Some("status"),
                &WriteOptions::manager(NAME),
                |current| {
                    let mut next = current.clone();
                    next["status"]["loadBalancer"] = ingress.clone();
                    Ok(next)
                },
            )
            .await;
        if let Err(e) = written {
            tracing::debug!("load balancer status: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_ready_slice_endpoints_of_the_port_name() {
        let slice = json!({
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.3"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.2"], "conditions": {}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": false}},
            ],
        });
        let port = json!({"name": "http", "port": 80});
        assert_eq!(
            endpoints_of(&port, &[&slice]),
            [
                "10.244.0.2:8080".parse::<SocketAddr>().unwrap(),
                "10.244.0.3:8080".parse().unwrap()
            ]
        );
        assert!(endpoints_of(&json!({"name": "other", "port": 80}), &[&slice]).is_empty());
    }
}
