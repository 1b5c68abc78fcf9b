//! The pods' addresses on this host: which pod network answers at which
//! pod IP, so a guest connecting to another pod's IP reaches that pod's
//! listener, as on a flat Kubernetes pod network; and the Services' virtual
//! IPs, each port balanced over its endpoints (what kube-proxy does).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use super::{ConnectionPolicy, DialError, PodConnection, PodNet, Protocol, Route, address, lock};

/// Pod IP to pod network, for every pod of one runtime, and the Services'
/// virtual IPs.
#[derive(Debug, Default)]
pub struct ClusterNet {
    pods: Mutex<HashMap<IpAddr, Weak<PodNet>>>,
    services: RwLock<HashMap<IpAddr, HashMap<u16, Arc<Backends>>>>,
    /// Cluster DNS: fully qualified names (`web.default.svc.cluster.local`)
    /// to addresses.
    names: RwLock<HashMap<String, Vec<IpAddr>>>,
    /// The pod and service networks, `(base, mask)`: their addresses
    /// never leave the host.
    internal: RwLock<Vec<(u32, u32)>>,
    /// The host's own servers pods reach only through a Service (the API):
    /// an unspecified IP stands for every address of the host.
    host_only: RwLock<Vec<SocketAddr>>,
    /// What judges traffic (NetworkPolicy); none lets everything pass.
    policy: RwLock<Option<Arc<dyn ConnectionPolicy>>>,
}

/// The endpoints of one Service port, taken in turn.
#[derive(Debug)]
struct Backends {
    endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

/// A pod IP already belongs to a live pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod IP {0} is already in use by another pod")]
pub struct AddressInUse(pub IpAddr);

impl ClusterNet {
    /// Makes `net` answer at `ip`.
    pub(crate) fn register(&self, ip: IpAddr, net: &Arc<PodNet>) -> Result<(), AddressInUse> {
        let mut pods = lock(&self.pods);
        if pods.get(&ip).is_some_and(|p| p.strong_count() > 0) {
            return Err(AddressInUse(ip));
        }
        pods.insert(ip, Arc::downgrade(net));
        Ok(())
    }

    /// The pod network at `ip`, if a live pod has it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<PodNet>> {
        lock(&self.pods).get(&ip)?.upgrade()
    }

    /// Forgets `ip` if the pod that had it is gone.
    pub(crate) fn release(&self, ip: IpAddr) {
        let mut pods = lock(&self.pods);
        if pods.get(&ip).is_some_and(|p| p.strong_count() == 0) {
            pods.remove(&ip);
        }
    }

    /// Makes `ip` a Service address: a connection to one of `ports` goes
    /// to one of that port's endpoints (pod IP and target port), in turn;
    /// to a port without endpoints (or not listed) it is refused.
    pub fn set_service(&self, ip: IpAddr, ports: HashMap<u16, Vec<SocketAddr>>) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        let current = services.entry(ip).or_default();
        current.retain(|port, _| ports.contains_key(port));
        for (port, endpoints) in ports {
            // Unchanged endpoints keep their turn.
            if current.get(&port).is_some_and(|b| b.endpoints == endpoints) {
                continue;
            }
            current.insert(
                port,
                Arc::new(Backends {
                    endpoints,
                    next: AtomicUsize::new(0),
                }),
            );
        }
    }

    /// Stops answering at the Service address `ip`.
    pub fn remove_service(&self, ip: IpAddr) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        services.remove(&ip);
    }

    /// The Service addresses known.
    pub fn service_ips(&self) -> Vec<IpAddr> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.keys().copied().collect()
    }

    /// Declares the cluster's own networks (pod and service CIDRs): an
    /// address inside them that no pod or Service has is refused rather
    /// than sent out of the host.
    pub fn set_internal_networks(&self, networks: &[(Ipv4Addr, u8)]) {
        let networks = networks
            .iter()
            .map(|(base, prefix)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                (u32::from(*base) & mask, mask)
            })
            .collect();
        *self.internal.write().unwrap_or_else(|e| e.into_inner()) = networks;
    }

    /// Declares servers of the host that pods may reach only through a
    /// Service's endpoints (the API server's listener), never directly.
    pub fn set_host_only(&self, listeners: Vec<SocketAddr>) {
        *self.host_only.write().unwrap_or_else(|e| e.into_inner()) = listeners;
    }

    /// Whether a guest may connect straight to `to`, outside the cluster.
    fn egress_allowed(&self, to: SocketAddr) -> bool {
        address::may_leave_host(to.ip()) && !self.is_host_only(to)
    }

    /// Whether `to` is one of the host's servers pods reach only through
    /// a Service.
    fn is_host_only(&self, to: SocketAddr) -> bool {
        let to = SocketAddr::new(address::canonical(to.ip()), to.port());
        let host_only = self.host_only.read().unwrap_or_else(|e| e.into_inner());
        host_only.iter().any(|listener| {
            let ip = address::canonical(listener.ip());
            listener.port() == to.port()
                && (ip == to.ip()
                    || (ip.is_unspecified()
                        && (address::is_pod_local(to.ip()) || address::is_host_address(to.ip()))))
        })
    }

    fn is_internal(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(ip) = ip else { return false };
        let internal = self.internal.read().unwrap_or_else(|e| e.into_inner());
        internal
            .iter()
            .any(|(base, mask)| u32::from(ip) & mask == *base)
    }

    /// Replaces the cluster's DNS names: each fully qualified name (no
    /// trailing dot) with its addresses.
    pub fn set_names(&self, names: HashMap<String, Vec<IpAddr>>) {
        *self.names.write().unwrap_or_else(|e| e.into_inner()) = names;
    }

    /// The addresses of a fully qualified cluster name.
    pub(crate) fn resolve(&self, name: &str) -> Option<Vec<IpAddr>> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names.get(name).cloned()
    }

    /// Makes `policy` the judge of traffic from now on: new connections
    /// and datagrams (open connections stay).
    pub fn set_policy(&self, policy: Arc<dyn ConnectionPolicy>) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    }

    fn policy(&self) -> Option<Arc<dyn ConnectionPolicy>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the policy lets `from` reach `to` over `protocol`.
    pub(crate) fn allows(&self, from: IpAddr, to: SocketAddr, protocol: Protocol) -> bool {
        self.policy()
            .is_none_or(|policy| policy.allows(from, to, protocol))
    }

    /// Whether the policy lets the pod at `from` look names up.
    pub(crate) fn allows_lookup(&self, from: IpAddr) -> bool {
        self.policy()
            .is_none_or(|policy| policy.allows_lookup(from))
    }

    /// Where traffic of `protocol` from `from` (a pod's IP; `None` for the
    /// host) to `to` goes: a pod's port (for a Service, one of its
    /// endpoints whose pod is here), refused, out of the cluster, or
    /// dropped by the policy (judged against the endpoint chosen).
    pub(crate) fn route(&self, from: Option<IpAddr>, to: SocketAddr, protocol: Protocol) -> Route {
        let route = self.destination(to);
        let policy = match from {
            Some(from) => self.policy().map(|policy| (from, policy)),
            None => None,
        };
        let Some((from, policy)) = policy else {
            return route;
        };
        let judged = match &route {
            Route::Pod(pod, port) => pod.ip().map(|ip| SocketAddr::new(ip, *port)),
            Route::Outside(to) => Some(*to),
            Route::Refused | Route::Denied | Route::Dropped => None,
        };
        match judged {
            Some(to) if !policy.allows(from, to, protocol) => Route::Dropped,
            _ => route,
        }
    }

    /// Where traffic to `to` goes, before any policy.
    fn destination(&self, to: SocketAddr) -> Route {
        let backends = {
            let services = self.services.read().unwrap_or_else(|e| e.into_inner());
            match services.get(&to.ip()) {
                None => None,
                Some(ports) => match ports.get(&to.port()) {
                    Some(b) => Some(Arc::clone(b)),
                    None => return Route::Refused,
                },
            }
        };
        let Some(backends) = backends else {
            return match self.lookup(to.ip()) {
                Some(pod) => Route::Pod(pod, to.port()),
                None if self.is_internal(to.ip()) => Route::Refused,
                None if self.egress_allowed(to) => Route::Outside(to),
                None => Route::Denied,
            };
        };
        let count = backends.endpoints.len();
        let start = backends.next.fetch_add(1, Ordering::Relaxed);
        // Skip endpoints whose pod is gone; an endpoint outside the
        // cluster's networks is reached from the host if it is egress, or
        // the API's own listener (the `kubernetes` Service).
        (0..count)
            .map(|i| backends.endpoints[(start + i) % count])
            .find_map(|e| match self.lookup(e.ip()) {
                Some(pod) => Some(Route::Pod(pod, e.port())),
                None if self.is_internal(e.ip()) => None,
                None if address::may_leave_host(e.ip()) || self.is_host_only(e) => {
                    Some(Route::Outside(e))
                }
                None => None,
            })
            .unwrap_or(Route::Refused)
    }

    /// Opens a connection from the host to `to`: a pod IP and port, or a
    /// Service address (balanced as for guests).
    pub fn dial(&self, to: SocketAddr) -> Result<PodConnection, DialError> {
        match self.destination(to) {
            Route::Pod(pod, port) => pod.dial(port),
            _ => Err(DialError::Unreachable(to)),
        }
    }

    /// Opens a connection to `to` (as [`ClusterNet::dial`]) for `client`,
    /// a client outside the cluster (a node port's), as the policy allows
    /// it to reach the endpoint chosen.
    pub fn dial_for(&self, client: IpAddr, to: SocketAddr) -> Result<PodConnection, DialError> {
        match self.destination(to) {
            Route::Pod(pod, port) => {
                let endpoint = SocketAddr::new(pod.ip().unwrap_or(to.ip()), port);
                if !self.allows(client, endpoint, Protocol::Tcp) {
                    return Err(DialError::Dropped(endpoint));
                }
                pod.dial(port)
            }
            _ => Err(DialError::Unreachable(to)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn pod_at(ip: &str, cluster: &Arc<ClusterNet>) -> Arc<PodNet> {
        PodNet::attach(ip.parse().unwrap(), "default", cluster).unwrap()
    }

    fn routed(cluster: &ClusterNet, to: &str) -> Option<(IpAddr, u16)> {
        match cluster.route(None, addr(to), Protocol::Tcp) {
            Route::Pod(pod, port) => Some((pod.ip().unwrap(), port)),
            Route::Refused => None,
            Route::Outside(_) | Route::Denied | Route::Dropped => panic!("{to} routed outside"),
        }
    }

    #[test]
    fn service_ports_balance_over_live_endpoints() {
        let cluster = Arc::new(ClusterNet::default());
        cluster.set_internal_networks(&[("10.244.0.0".parse().unwrap(), 16)]);
        let a = pod_at("10.244.0.2", &cluster);
        let b = pod_at("10.244.0.3", &cluster);
        let vip: IpAddr = "10.96.0.10".parse().unwrap();
        cluster.set_service(
            vip,
            HashMap::from([(80, vec![addr("10.244.0.2:8080"), addr("10.244.0.3:8080")])]),
        );
        let mut seen: Vec<_> = (0..4).map(|_| routed(&cluster, "10.96.0.10:80")).collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                Some((a.ip().unwrap(), 8080)),
                Some((a.ip().unwrap(), 8080)),
                Some((b.ip().unwrap(), 8080)),
                Some((b.ip().unwrap(), 8080)),
            ]
        );
        // A port the Service does not have is refused, not sent outside.
        assert_eq!(routed(&cluster, "10.96.0.10:81"), None);
        drop(b);
        for _ in 0..3 {
            assert_eq!(
                routed(&cluster, "10.96.0.10:80"),
                Some((a.ip().unwrap(), 8080))
            );
        }
        cluster.set_service(vip, HashMap::from([(80, vec![])]));
        assert_eq!(routed(&cluster, "10.96.0.10:80"), None);
        cluster.remove_service(vip);
        assert!(matches!(
            cluster.destination(addr("10.96.0.10:80")),
            Route::Outside(_)
        ));
        // Inside the cluster's networks, what nothing answers at is refused.
        cluster.set_internal_networks(&[
            ("10.244.0.0".parse().unwrap(), 16),
            ("10.96.0.0".parse().unwrap(), 12),
        ]);
        assert_eq!(routed(&cluster, "10.96.0.10:80"), None);
        assert!(matches!(
            cluster.destination(addr("192.0.2.1:80")),
            Route::Outside(_)
        ));
        // A Service endpoint outside them is reached from the host.
        cluster.set_service(vip, HashMap::from([(443, vec![addr("192.0.2.7:6443")])]));
        assert!(matches!(
            cluster.destination(addr("10.96.0.10:443")),
            Route::Outside(to) if to == addr("192.0.2.7:6443")
        ));
        // An endpoint on the host's loopback is not egress (a selector-less
        // Service pointing at a host-only port), unless it is the API's.
        cluster.set_service(vip, HashMap::from([(22, vec![addr("127.0.0.1:22")])]));
        assert_eq!(routed(&cluster, "10.96.0.10:22"), None);
        cluster.set_host_only(vec![addr("127.0.0.1:6443")]);
        cluster.set_service(vip, HashMap::from([(443, vec![addr("127.0.0.1:6443")])]));
        assert!(matches!(
            cluster.destination(addr("10.96.0.10:443")),
            Route::Outside(to) if to == addr("127.0.0.1:6443")
        ));
        assert_eq!(routed(&cluster, "10.244.0.2:9"), Some((a.ip().unwrap(), 9)));
    }

    /// Regression: a guest reached services on the host's own addresses.
    #[test]
    fn host_only_addresses_are_denied() {
        let cluster = ClusterNet::default();
        for to in [
            "169.254.169.254:80",
            "[fe80::1]:80",
            "127.0.0.1:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(
                matches!(cluster.destination(addr(to)), Route::Denied),
                "{to}"
            );
        }
        cluster.set_host_only(vec![addr("192.0.2.77:6443"), addr("0.0.0.0:7443")]);
        assert!(matches!(
            cluster.destination(addr("192.0.2.77:6443")),
            Route::Denied
        ));
        assert!(matches!(
            cluster.destination(addr("192.0.2.77:80")),
            Route::Outside(_)
        ));
        // A wildcard listener: every address of this host, at its port.
        let own = host_addresses();
        assert!(!own.is_empty(), "this host has an address besides loopback");
        for ip in own {
            let listener = SocketAddr::new(ip, 7443);
            assert!(
                matches!(cluster.destination(listener), Route::Denied),
                "{listener}"
            );
            let elsewhere = SocketAddr::new(ip, 7444);
            assert!(
                matches!(cluster.destination(elsewhere), Route::Outside(_)),
                "{elsewhere}"
            );
        }
    }

    /// The host's addresses other than loopback and link-local.
    fn host_addresses() -> Vec<IpAddr> {
        let mut found = Vec::new();
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `list`, which is walked read-only and
        // freed once.
        unsafe {
            if libc::getifaddrs(&mut list) != 0 {
                return found;
            }
            let mut next = list;
            while let Some(entry) = next.as_ref() {
                if let Some(sockaddr) = entry.ifa_addr.as_ref() {
                    let ip = match i32::from(sockaddr.sa_family) {
                        libc::AF_INET => {
                            let v4 = &*(entry.ifa_addr as *const libc::sockaddr_in);
                            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
                        }
                        _ => None,
                    };
                    if let Some(ip) = ip.filter(|ip| address::may_leave_host(*ip)) {
                        found.push(ip);
                    }
                }
                next = entry.ifa_next;
            }
            libc::freeifaddrs(list);
        }
        found
    }

    /// Lets through only what it lists, and records what it was asked.
    #[derive(Debug, Default)]
    struct Listed {
        allowed: Vec<(IpAddr, SocketAddr)>,
        asked: Mutex<Vec<(IpAddr, SocketAddr)>>,
    }

    impl ConnectionPolicy for Listed {
        fn allows(&self, from: IpAddr, to: SocketAddr, _: Protocol) -> bool {
            lock(&self.asked).push((from, to));
            self.allowed.contains(&(from, to))
        }

        fn allows_lookup(&self, _: IpAddr) -> bool {
            true
        }
    }

    #[test]
    fn a_policy_judges_pods_against_the_endpoint_chosen() {
        let cluster = Arc::new(ClusterNet::default());
        let client = pod_at("10.244.0.1", &cluster);
        let _a = pod_at("10.244.0.2", &cluster);
        let _b = pod_at("10.244.0.3", &cluster);
        let vip: IpAddr = "10.96.0.10".parse().unwrap();
        cluster.set_service(
            vip,
            HashMap::from([(80, vec![addr("10.244.0.2:8080"), addr("10.244.0.3:8080")])]),
        );
        let from: IpAddr = "10.244.0.1".parse().unwrap();
        let policy = Arc::new(Listed {
            allowed: vec![
                (from, addr("10.244.0.2:8080")),
                (from, addr("192.0.2.1:443")),
            ],
            ..Listed::default()
        });
        cluster.set_policy(policy.clone());
        let route = |to: &str| client.route(addr(to), Protocol::Tcp);
        // In turn: the first endpoint is allowed, the second dropped.
        assert!(matches!(route("10.96.0.10:80"), Route::Pod(..)));
        assert!(matches!(route("10.96.0.10:80"), Route::Dropped));
        assert!(matches!(route("10.244.0.3:8080"), Route::Dropped));
        assert!(matches!(route("192.0.2.1:443"), Route::Outside(_)));
        assert!(matches!(route("192.0.2.1:80"), Route::Dropped));
        // A pod's traffic to itself and the host's into pods are not judged.
        let asked = lock(&policy.asked).len();
        assert!(matches!(route("10.244.0.1:80"), Route::Pod(..)));
        assert!(
            cluster
                .dial(addr("10.244.0.3:8080"))
                .is_err_and(|e| e != DialError::Dropped(addr("10.244.0.3:8080")))
        );
        assert_eq!(lock(&policy.asked).len(), asked);
        // A client outside is judged by its own address.
        assert_eq!(
            cluster
                .dial_for("192.0.2.9".parse().unwrap(), addr("10.244.0.3:8080"))
                .err(),
            Some(DialError::Dropped(addr("10.244.0.3:8080")))
        );
    }
}
