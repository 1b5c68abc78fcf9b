//! Cluster IPs and node ports of Services, handed out as the API server
//! does: chosen when a Service is created (or asked for by it), unique
//! across the cluster, and free again once the Service is gone.
//!
//! What is taken is a view of the stored Services (one list, then a watch
//! drained on each allocation, as [`super::namespaces`] does), plus the
//! addresses of creates and updates still in flight ([`Reservation`]). The
//! store tells watchers before it answers a writer, so by the time a
//! reservation is dropped its Service is in the view. Nothing is kept
//! anywhere but in the Services themselves, so a crash cannot leak an
//! address.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::admission::{Errors, Invalid};
use crate::cidr::Cidr;
use crate::registry::metadata::text;
use crate::store::{EventType, Store, Watch};

const PREFIX: &str = "/core/services/";

/// Where Services get their addresses from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// Cluster IPs (Kubernetes' `--service-cluster-ip-range`).
    pub cidr: Cidr,
    /// Node ports (`--service-node-port-range`).
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            cidr: "10.96.0.0/12".parse().expect("a valid CIDR"),
            node_ports: 30000..=32767,
        }
    }
}

impl ServiceNetwork {
    /// The first address, which the `kubernetes` Service has.
    pub fn api_address(&self) -> Ipv4Addr {
        self.cidr.nth(1)
    }

    /// The tenth address, where a cluster's DNS is by convention (what
    /// NetworkPolicies see name lookups go to).
    pub fn dns_address(&self) -> Ipv4Addr {
        self.cidr.nth(10)
    }

    /// Offsets dynamic allocation starts from: Kubernetes leaves the low
    /// band of the range (16 to 256 addresses) to IPs asked for by name.
    fn dynamic_band(&self) -> u32 {
        (self.cidr.size() / 16).clamp(16, 256)
    }
}

/// What the registry hands out while it writes objects, for the hooks
/// that need it.
#[derive(Debug)]
pub struct Allocators {
    pub services: ServiceAllocator,
}

/// Hands out cluster IPs and node ports.
pub struct ServiceAllocator {
    network: ServiceNetwork,
    store: Arc<dyn Store>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ServiceAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAllocator")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    view: Option<View>,
    reserved_ips: HashSet<Ipv4Addr>,
    reserved_ports: HashSet<u16>,
}

/// Who holds what, from the stored Services.
struct View {
    watch: Watch,
    held: HashMap<String, Held>,
    ips: HashMap<Ipv4Addr, String>,
    ports: HashMap<u16, String>,
}

#[derive(Default)]
struct Held {
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

/// Addresses being written; free again when dropped (by then the write
/// either landed, and the view holds them, or failed).
#[must_use]
#[derive(Default)]
pub struct Reservation {
    state: Option<Arc<Mutex<State>>>,
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            let mut state = lock(state);
            for ip in &self.ips {
                state.reserved_ips.remove(ip);
            }
            for port in &self.ports {
                state.reserved_ports.remove(port);
            }
        }
    }
}

impl ServiceAllocator {
    pub fn new(store: Arc<dyn Store>, network: ServiceNetwork) -> ServiceAllocator {
        ServiceAllocator {
            network,
            store,
            state: Arc::default(),
        }
    }

    pub fn network(&self) -> &ServiceNetwork {
        &self.network
    }

    /// Fills in the cluster IP and node ports `service` needs (keeping
    /// those of `old` on an update) and reserves them; an address asked
    /// for that is outside the range or taken is an error on its field.
    pub fn allocate(
        &self,
        service: &mut Value,
        old: Option<&Value>,
    ) -> Result<Reservation, Invalid> {
        let owner = format!(
            "{}/{}",
            text(service, "/metadata/namespace"),
            text(service, "/metadata/name")
        );
        let mut state = lock(&self.state);
        if !state.view.as_mut().is_some_and(View::catch_up) {
            state.view = View::load(&self.store);
        }
        let mut reservation = Reservation {
            state: Some(Arc::clone(&self.state)),
            ips: Vec::new(),
            ports: Vec::new(),
        };
        let mut errors = Errors::default();
        let kind = text(service, "/spec/type").to_string();
        if kind != "ExternalName" {
            self.cluster_ip(
                &mut state,
                &owner,
                service,
                old,
                &mut reservation,
                &mut errors,
            );
        }
        if kind == "NodePort" || kind == "LoadBalancer" {
            self.node_ports(
                &mut state,
                &owner,
                service,
                old,
                &mut reservation,
                &mut errors,
            );
        } else {
            drop_unchanged_node_ports(service, old);
        }
        // The reservation takes the lock when dropped (on an error too).
        drop(state);
        errors.into_result("Service", text(service, "/metadata/name"))?;
        Ok(reservation)
    }

    fn cluster_ip(
        &self,
        state: &mut State,
        owner: &str,
        service: &mut Value,
        old: Option<&Value>,
        reservation: &mut Reservation,
        errors: &mut Errors,
    ) {
        let asked = text(service, "/spec/clusterIP").to_string();
        let previous = old
            .filter(|o| text(o, "/spec/type") != "ExternalName")
            .map(|o| text(o, "/spec/clusterIP").to_string())
            .filter(|ip| !ip.is_empty());
        let ip = match (asked.as_str(), previous) {
            ("None", _) => {
                service["spec"]["clusterIPs"] = json!(["None"]);
                return;
            }
            ("", Some(previous)) => previous,
            ("", None) => match self.free_ip(state) {
                Some(ip) => ip.to_string(),
                None => {
                    errors.push(
                        "spec.clusterIPs",
                        format!(
                            "Internal error: failed to allocate a serviceIP: range is full ({})",
                            self.network.cidr
                        ),
                    );
                    return;
                }
            },
            (asked, _) => asked.to_string(),
        };
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
        let Ok(address) = ip.parse::<Ipv4Addr>() else {
            // Not an address: validation names the field.
            return;
        };
        let failed = |why: String| {
            format!("Invalid value: []string{{{ip:?}}}: failed to allocate IP {ip}: {why}")
        };
        let inside = self
            .network
            .cidr
            .offset_of(address)
            .is_some_and(|o| o > 0 && o < self.network.cidr.size() - 1);
        if !inside {
            errors.push(
                "spec.clusterIPs",
                failed(format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    self.network.cidr
                )),
            );
            return;
        }
        let (taken_by_other, mine) = match state.view.as_ref() {
            Some(v) => v.standing(owner, &v.ips, |h| h.ips.contains(&address), &address),
            None => (false, false),
        };
        if taken_by_other || (!mine && state.reserved_ips.contains(&address)) {
            errors.push(
                "spec.clusterIPs",
                failed("provided IP is already allocated".into()),
            );
            return;
        }
        if !mine && state.reserved_ips.insert(address) {
            reservation.ips.push(address);
        }
    }

    /// A free address in the dynamic band, else anywhere in the range.
    fn free_ip(&self, state: &mut State) -> Option<Ipv4Addr> {
        let size = self.network.cidr.size();
        let band = self.network.dynamic_band().min(size - 2);
        let start = random_u32();
        let used = |state: &State, ip: &Ipv4Addr| {
            state.reserved_ips.contains(ip)
                || state.view.as_ref().is_some_and(|v| v.ips.contains_key(ip))
        };
        // Dynamic band: offsets band..size-1; then the low band 2..band
        // (offset 1 belongs to the `kubernetes` Service).
        let high = size - 1 - band;
        for i in 0..high {
            let ip = self.network.cidr.nth(band + (start.wrapping_add(i)) % high);
            if !used(state, &ip) {
                return Some(ip);
            }
        }
        (2..band)
            .map(|o| self.network.cidr.nth(o))
            .find(|ip| !used(state, ip))
    }

    fn node_ports(
        &self,
        state: &mut State,
        owner: &str,
        service: &mut Value,
        old: Option<&Value>,
        reservation: &mut Reservation,
        errors: &mut Errors,
    ) {
        let Some(ports) = service
            .pointer_mut("/spec/ports")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        let old_ports: Vec<&Value> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let range = &self.network.node_ports;
        for (i, port) in ports.iter_mut().enumerate() {
            let field = format!("spec.ports[{i}].nodePort");
            let asked = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            let kept = || {
                old_ports
                    .iter()
                    .find(|o| o.get("port") == port.get("port"))
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_i64)
            };
            let number = if asked != 0 {
                asked
            } else if let Some(kept) = kept() {
                kept
            } else {
                match self.free_port(state) {
                    Some(p) => {
                        state.reserved_ports.insert(p);
                        reservation.ports.push(p);
                        port["nodePort"] = json!(p);
                        continue;
                    }
                    None => {
                        errors.push(
                            field,
                            format!(
                                "Internal error: failed to allocate a nodePort: range is full ({}-{})",
                                range.start(),
                                range.end()
                            ),
                        );
                        continue;
                    }
                }
            };
            port["nodePort"] = json!(number);
            let in_range = u16::try_from(number).ok().filter(|p| range.contains(p));
            let Some(number) = in_range else {
                errors.push(
                    field,
                    format!(
                        "Invalid value: {number}: provided port is not in the valid range. The range of valid ports is {}-{}",
                        range.start(),
                        range.end()
                    ),
                );
                continue;
            };
            let (taken_by_other, mine) = match state.view.as_ref() {
                Some(v) => v.standing(owner, &v.ports, |h| h.ports.contains(&number), &number),
                None => (false, false),
            };
            if taken_by_other || (!mine && !state.reserved_ports.insert(number)) {
                errors.push(
                    field,
                    format!("Invalid value: {number}: provided port is already allocated"),
                );
                continue;
            }
            if !mine {
                reservation.ports.push(number);
            }
        }
    }

    fn free_port(&self, state: &State) -> Option<u16> {
        let (low, high) = (
            u32::from(*self.network.node_ports.start()),
            u32::from(*self.network.node_ports.end()),
        );
        let count = high - low + 1;
        let start = random_u32();
        (0..count)
            .map(|i| (low + start.wrapping_add(i) % count) as u16)
            .find(|p| {
                !state.reserved_ports.contains(p)
                    && !state.view.as_ref().is_some_and(|v| v.ports.contains_key(p))
            })
    }
}

/// A Service turned from NodePort to ClusterIP drops the node ports it had,
/// as Kubernetes does, when the update left them as they were.
fn drop_unchanged_node_ports(service: &mut Value, old: Option<&Value>) {
    let Some(old) = old else { return };
    let Some(ports) = service
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let old_ports = old.pointer("/spec/ports").and_then(Value::as_array);
    for port in ports {
        let unchanged = old_ports.is_some_and(|o| {
            o.iter().any(|o| {
                o.get("port") == port.get("port") && o.get("nodePort") == port.get("nodePort")
            })
        });
        if unchanged && let Some(p) = port.as_object_mut() {
            p.remove("nodePort");
        }
    }
}

impl View {
    fn load(store: &Arc<dyn Store>) -> Option<View> {
        let page = store.list(PREFIX, None, 0).ok()?;
        let watch = store.watch(PREFIX, page.revision).ok()?;
        let mut view = View {
            watch,
            held: HashMap::new(),
            ips: HashMap::new(),
            ports: HashMap::new(),
        };
        for service in &page.items {
            view.put(service);
        }
        Some(view)
    }

    /// Applies every change committed so far; false if the watch failed.
    fn catch_up(&mut self) -> bool {
        while let Some(event) = self.watch.try_next() {
            let Ok(event) = event else {
                return false;
            };
            if event.event_type == EventType::Deleted {
                self.forget(&owner_of(&event.object));
            } else {
                self.put(&event.object);
            }
        }
        true
    }

    /// Whether `item` is held by a Service other than `owner`, and whether
    /// `owner` holds it already.
    fn standing<T: std::hash::Hash + Eq>(
        &self,
        owner: &str,
        holders: &HashMap<T, String>,
        held_by_owner: impl Fn(&Held) -> bool,
        item: &T,
    ) -> (bool, bool) {
        let taken_by_other = holders.get(item).is_some_and(|holder| holder != owner);
        let mine = self.held.get(owner).is_some_and(held_by_owner);
        (taken_by_other, mine)
    }

    fn put(&mut self, service: &Value) {
        let owner = owner_of(service);
        self.forget(&owner);
        let held = held_by(service);
        for ip in &held.ips {
            self.ips.insert(*ip, owner.clone());
        }
        for port in &held.ports {
            self.ports.insert(*port, owner.clone());
        }
        self.held.insert(owner, held);
    }

    fn forget(&mut self, owner: &str) {
        if let Some(held) = self.held.remove(owner) {
            for ip in held.ips {
                self.ips.remove(&ip);
            }
            for port in held.ports {
                self.ports.remove(&port);
            }
        }
    }
}

fn held_by(service: &Value) -> Held {
    let ips = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(service.pointer("/spec/clusterIP"))
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect::<HashSet<Ipv4Addr>>()
        .into_iter()
        .collect();
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.get("nodePort")?.as_i64()?).ok())
        .filter(|p| *p != 0)
        .collect();
    Held { ips, ports }
}

fn owner_of(service: &Value) -> String {
    format!(
        "{}/{}",
        text(service, "/metadata/namespace"),
        text(service, "/metadata/name")
    )
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}
