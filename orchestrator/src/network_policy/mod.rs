//! NetworkPolicy enforcement, what a policy-enforcing CNI does: a
//! [`Table`] the pod network asks about every new connection, datagram and
//! name lookup ([`ConnectionPolicy`]), kept by [`run`] from the stored
//! NetworkPolicies, Namespaces and Pods.
//!
//! The semantics are Kubernetes': a pod selected by a policy with the
//! `Ingress` (`Egress`) type is isolated in that direction, and then
//! allowed only what one of those policies' rules allows; traffic needs
//! both the source's egress and the destination's ingress. A peer is pods
//! (by `podSelector` in the policy's namespace, by `namespaceSelector`, or
//! both together) or an `ipBlock` (with `except`). Ports are numbers,
//! ranges (`endPort`) or names of the destination pod's container ports.
//! Traffic to a Service is judged against the endpoint chosen; a client
//! outside the cluster (through a node port or host port) by its address.
//!
//! Which pod has which IP comes from the kubelet as it starts pods
//! ([`Table::started`]), so a pod is judged by its labels from its first
//! connection; later label changes arrive from the store.
//!
//! Name lookups are traffic to the cluster DNS, which policies see as a
//! pod of `kube-system` labelled `k8s-app: kube-dns` at the service
//! network's tenth address on port 53 (UDP and TCP): "allow DNS" rules
//! written for a cluster work here.

mod compile;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use wasmkube_runtime::net::{ConnectionPolicy, Protocol};

use self::compile::{Identity, Peer, Policy, PortSpec, Rule};
use crate::registry::metadata::text;
use crate::registry::{ListOptions, Registry};
use crate::store::Watch;

pub use self::compile::Block;

/// The cluster DNS as policies see it.
const DNS_NAMESPACE: &str = "kube-system";
const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
const DNS_PORT: u16 = 53;

/// How often the table is rebuilt without a change.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// The policies in force and whom they isolate.
#[derive(Debug)]
pub struct Table {
    /// Where the cluster DNS is.
    dns: IpAddr,
    /// The pods running here, by IP, as the kubelet started them.
    leases: Mutex<HashMap<IpAddr, Lease>>,
    state: RwLock<State>,
}

#[derive(Debug)]
struct Lease {
    uid: String,
    identity: Identity,
}

#[derive(Debug, Default)]
struct State {
    /// Each namespace's labels, as an object selectors match.
    namespaces: HashMap<String, Value>,
    /// The policies of each namespace.
    policies: HashMap<String, Vec<Arc<Policy>>>,
    /// The pods (and the DNS) by IP, with the policies isolating them.
    pods: HashMap<IpAddr, Entry>,
    /// The IPs of each pod peer's pods, by slot.
    members: Vec<HashSet<IpAddr>>,
}

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// The policies that isolate the pod for ingress; none: not isolated.
    ingress: Vec<Arc<Policy>>,
    egress: Vec<Arc<Policy>>,
}

impl State {
    fn entry(&self, identity: Identity) -> Entry {
        let mut entry = Entry {
            identity,
            ingress: Vec::new(),
            egress: Vec::new(),
        };
        let policies = self.policies.get(&entry.identity.namespace);
        for policy in policies.into_iter().flatten() {
            if !entry.identity.selected_by(&policy.selector) {
                continue;
            }
            if policy.ingress_isolates {
                entry.ingress.push(Arc::clone(policy));
            }
            if policy.egress_isolates {
                entry.egress.push(Arc::clone(policy));
            }
        }
        entry
    }

    /// Whether `peer` (its IP) is among the rule's `rule_peer`.
    fn is_peer(&self, peer: IpAddr, rule_peer: &Peer) -> bool {
        match rule_peer {
            Peer::Block(block) => block.contains(peer),
            Peer::Pods { slot, .. } => self.members[*slot].contains(&peer),
        }
    }

    /// Every pod peer of every policy, with its member set's slot.
    fn pod_peers(&self) -> impl Iterator<Item = (usize, &Peer)> {
        self.policies
            .values()
            .flatten()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
            .flat_map(|r| &r.peers)
            .filter_map(|peer| match peer {
                Peer::Pods { slot, .. } => Some((*slot, peer)),
                Peer::Block(_) => None,
            })
    }

    /// Takes in the pod `identity` at `ip`: the policies isolating it, and
    /// the peers it is one of.
    fn admit(&mut self, ip: IpAddr, identity: Identity) {
        self.forget(ip);
        let labels = self.namespaces.get(&identity.namespace);
        let slots: Vec<usize> = self
            .pod_peers()
            .filter(|(_, peer)| peer.selects(&identity, labels))
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            self.members[slot].insert(ip);
        }
        let entry = self.entry(identity);
        self.pods.insert(ip, entry);
    }

    /// The pod at `ip` is gone.
    fn forget(&mut self, ip: IpAddr) {
        if self.pods.remove(&ip).is_some() {
            for members in &mut self.members {
                members.remove(&ip);
            }
        }
    }

    /// Whether `rule` lets `peer` reach port `port` of `protocol` on a
    /// destination with container ports `ports`.
    fn rule_allows(
        &self,
        rule: &Rule,
        peer: IpAddr,
        port: u16,
        protocol: Protocol,
        destination: Option<&Identity>,
    ) -> bool {
        let port_ok = rule.ports.is_empty()
            || rule.ports.iter().any(|p| {
                p.protocol == Some(protocol)
                    && match &p.port {
                        PortSpec::Any => true,
                        PortSpec::Range(first, last) => (*first..=*last).contains(&port),
                        PortSpec::Named(name) => destination.is_some_and(|d| {
                            d.ports.iter().any(|(n, pr, number)| {
                                n == name && *pr == protocol && *number == port
                            })
                        }),
                    }
            });
        port_ok && (rule.peers.is_empty() || rule.peers.iter().any(|p| self.is_peer(peer, p)))
    }

    fn allows(&self, from: IpAddr, to: SocketAddr, protocol: Protocol) -> bool {
        let destination = self.pods.get(&to.ip());
        if let Some(source) = self.pods.get(&from)
            && !source.egress.is_empty()
        {
            let allowed = source.egress.iter().any(|policy| {
                policy.egress.iter().any(|rule| {
                    self.rule_allows(
                        rule,
                        to.ip(),
                        to.port(),
                        protocol,
                        destination.map(|d| &d.identity),
                    )
                })
            });
            if !allowed {
                return false;
            }
        }
        match destination {
            Some(destination) if !destination.ingress.is_empty() => {
                destination.ingress.iter().any(|policy| {
                    policy.ingress.iter().any(|rule| {
                        self.rule_allows(
                            rule,
                            from,
                            to.port(),
                            protocol,
                            Some(&destination.identity),
                        )
                    })
                })
            }
            _ => true,
        }
    }
}

impl Table {
    /// A table with no policies, the cluster DNS at `dns`.
    pub fn new(dns: IpAddr) -> Table {
        let table = Table {
            dns,
            leases: Mutex::default(),
            state: RwLock::default(),
        };
        table.rebuild(
            &mut lock(&table.leases),
            Vec::new(),
            Vec::new(),
            &HashMap::new(),
        );
        table
    }

    /// The kubelet started `pod` at `ip`: it is judged by its labels from
    /// now on.
    pub fn started(&self, ip: IpAddr, pod: &Value) {
        let identity = Identity::of_pod(pod);
        let mut leases = lock(&self.leases);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.admit(ip, identity.clone());
        leases.insert(
            ip,
            Lease {
                uid: text(pod, "/metadata/uid").to_string(),
                identity,
            },
        );
    }

    /// `pod`'s object changed: if it runs here and a policy may judge it,
    /// it is judged by its labels (and named ports) as they are now.
    fn relabel(&self, pod: &Value) {
        let uid = text(pod, "/metadata/uid");
        let mut leases = lock(&self.leases);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Without policies no label matters (the first policy's own event
        // rebuilds the table from the pods).
        if state.policies.is_empty() {
            return;
        }
        let Some((ip, lease)) = leases.iter_mut().find(|(_, lease)| lease.uid == uid) else {
            return;
        };
        let identity = Identity::of_pod(pod);
        if identity != lease.identity {
            lease.identity = identity.clone();
            state.admit(*ip, identity);
        }
    }

    /// The pod at `ip` stopped: the address is no one's.
    pub fn stopped(&self, ip: IpAddr) {
        let mut leases = lock(&self.leases);
        leases.remove(&ip);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.forget(ip);
    }

    /// Replaces the table's view of policies, namespaces and pods'
    /// labels (`pods` by uid).
    fn rebuild(
        &self,
        leases: &mut HashMap<IpAddr, Lease>,
        policies: Vec<Value>,
        namespaces: Vec<Value>,
        pods: &HashMap<&str, &Value>,
    ) {
        let mut state = State {
            namespaces: namespaces
                .iter()
                .map(|n| {
                    let labels = n.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                    (
                        text(n, "/metadata/name").to_string(),
                        json!({"metadata": {"labels": labels}}),
                    )
                })
                .collect(),
            policies: HashMap::new(),
            pods: HashMap::new(),
            members: Vec::new(),
        };
        let mut slots = 0;
        for policy in &policies {
            if let Some(compiled) = Policy::compile(policy, &mut slots) {
                state
                    .policies
                    .entry(compiled.namespace.clone())
                    .or_default()
                    .push(Arc::new(compiled));
            }
        }
        state.members = vec![HashSet::new(); slots];
        for (ip, lease) in leases.iter_mut() {
            if let Some(pod) = pods.get(lease.uid.as_str()) {
                lease.identity = Identity::of_pod(pod);
            }
            state.admit(*ip, lease.identity.clone());
        }
        let dns = Identity {
            namespace: DNS_NAMESPACE.to_string(),
            labels: vec![(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())],
            ports: vec![
                ("dns".into(), Protocol::Udp, DNS_PORT),
                ("dns-tcp".into(), Protocol::Tcp, DNS_PORT),
            ],
        };
        state.admit(self.dns, dns);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// Rebuilds the table from the store.
    fn sync(&self, registry: &Registry) -> crate::registry::Result<()> {
        let list = |group: &str, kind: &str| {
            let resource = registry.resource(group, kind);
            registry
                .list(&resource, None, &ListOptions::default())
                .map(|l| l.items)
        };
        let policies = list("networking.k8s.io", "NetworkPolicy")?;
        let namespaces = list("", "Namespace")?;
        // Without policies no label matters: the pods (every status write
        // wakes this loop) are read only once a policy may judge them, and
        // the first policy's own event brings that read.
        let pods = if policies.is_empty() {
            Vec::new()
        } else {
            list("", "Pod")?
        };
        let by_uid: HashMap<&str, &Value> =
            pods.iter().map(|p| (text(p, "/metadata/uid"), p)).collect();
        let mut leases = lock(&self.leases);
        self.rebuild(&mut leases, policies, namespaces, &by_uid);
        Ok(())
    }
}

impl ConnectionPolicy for Table {
    fn allows(&self, from: IpAddr, to: SocketAddr, protocol: Protocol) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.allows(from, to, protocol)
    }

    fn allows_lookup(&self, from: IpAddr) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        [Protocol::Udp, Protocol::Tcp]
            .into_iter()
            .any(|protocol| state.allows(from, SocketAddr::new(self.dns, DNS_PORT), protocol))
    }
}

/// Keeps `table` in step with the stored NetworkPolicies, Namespaces and
/// Pods until `stop` turns true, so a change applies to new connections at
/// once: a policy or namespace change (and a periodic pass) rebuilds it; a
/// pod's change re-judges that pod alone. Rebuilding on every pod change
/// cost each status write as much as the node has pods: a fifth of the
/// CPU while 10,000 pods started.
pub async fn run(registry: Registry, table: Arc<Table>, mut stop: watch::Receiver<bool>) {
    let watched = [
        registry.resource("networking.k8s.io", "NetworkPolicy"),
        registry.resource("", "Namespace"),
        registry.resource("", "Pod"),
    ];
    let mut watches: Option<Vec<Watch>> = None;
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    let mut rebuild = true;
    loop {
        if watches.is_none() {
            let revision = registry.store().revision();
            watches = watched
                .iter()
                .map(|r| registry.watch(r, None, revision))
                .collect::<Result<Vec<_>, _>>()
                .ok();
            rebuild = true;
        }
        if rebuild && let Err(e) = table.sync(&registry) {
            tracing::warn!("network policies: listing: {e}");
        }
        let Some([policies, namespaces, pods]) = watches.as_deref_mut() else {
            tokio::select! {
                _ = tick.tick() => continue,
                _ = stop.changed() => return,
            }
        };
        let (event, of_pod) = tokio::select! {
            event = policies.next() => (event, false),
            event = namespaces.next() => (event, false),
            event = pods.next() => (event, true),
            _ = tick.tick() => {
                rebuild = true;
                continue;
            }
            _ = stop.changed() => return,
        };
        // A pod's change re-judges it at once; a policy's or namespace's
        // rebuilds the table on the next turn.
        let mut failed = false;
        rebuild = false;
        let more = std::iter::from_fn(|| policies.try_next().map(|e| (Some(e), false)))
            .chain(std::iter::from_fn(|| {
                namespaces.try_next().map(|e| (Some(e), false))
            }))
            .chain(std::iter::from_fn(|| {
                pods.try_next().map(|e| (Some(e), true))
            }));
        for (event, of_pod) in std::iter::once((event, of_pod)).chain(more) {
            match event {
                Some(Ok(event)) if of_pod => {
                    if event.event_type != crate::store::EventType::Deleted {
                        table.relabel(&event.object);
                    }
                }
                Some(Ok(_)) => rebuild = true,
                _ => failed = true,
            }
        }
        if failed {
            watches = None;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
