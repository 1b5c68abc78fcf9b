//! A pod's network: its own loopback, shared by its containers and by
//! nobody else. Two pods can both listen on :80; a container reaches its
//! pod mates at `127.0.0.1`, `::1` or `0.0.0.0`; the host reaches a pod's
//! port through [`PodNet::dial`] (services, probes, port-forward, hostPort).
//!
//! The guest side is the runtime's own `wasi:sockets/tcp` ([`tcp`]),
//! registered over wasmtime-wasi's: wasmtime-wasi's sockets use the host's
//! network and cannot remap addresses.
//!
//! A pod may have an IP ([`ClusterNet`] maps pod IPs to pod networks): a
//! guest connecting to another pod's IP reaches that pod's listener, and
//! its pod mates can reach it at its own IP too.
//!
//! Services' virtual IPs live there too: a connection to one goes to one of
//! its endpoints, in turn.
//!
//! Guests look names up through [`dns`]: Services by name (`web`,
//! `web.default`, `web.default.svc.cluster.local`), other names on the
//! host.
//!
//! A connection to any other address leaves the host as real TCP
//! ([`egress`]), unless [`address`] says it may not (the host's loopback
//! in any spelling, link-local and other host-only ranges, the API's own
//! listener).
//!
//! A [`ConnectionPolicy`] set on the cluster network (NetworkPolicy) may
//! drop any of that traffic ([`policy`]).
//!
//! UDP ([`udp`]) has per-pod ports too; datagrams between pods are
//! delivered in memory. Not yet here: UDP to the outside world, UDP
//! Services.
//!
//! Every pod counts the bytes that cross its edge ([`traffic`]), as a
//! node counts its `eth0`.

mod address;
mod cluster;
pub(crate) mod dns;
mod egress;
pub(crate) mod http_out;
mod pipe;
mod policy;
pub(crate) mod tcp;
mod traffic;
pub(crate) mod udp;

pub use cluster::{AddressInUse, ClusterNet};
pub use pipe::PodConnection;
pub use policy::{ConnectionPolicy, Protocol};
pub use traffic::NetworkCounts;
pub(crate) use traffic::{Meter, Metered};

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Bytes in flight per direction of an in-pod connection before the writer
/// waits: the connection's window.
pub(crate) const WINDOW: usize = 64 * 1024;

/// A connection handed to a listener: the listener's end and the peer address.
pub(crate) type Incoming = (pipe::End, SocketAddr);

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// Nothing in the pod listens on that port.
    #[error("connection refused: nothing in the pod listens on port {0}")]
    Refused(u16),
    /// No pod answers at that address (or the Service has no endpoints).
    #[error("connection refused: no pod or ready endpoint answers at {0}")]
    Unreachable(SocketAddr),
    /// The cluster's policy drops connections from that client to there.
    #[error("dropped by network policy: {0}")]
    Dropped(SocketAddr),
}

/// One pod's port space.
#[derive(Debug)]
pub struct PodNet {
    listeners: Mutex<HashMap<u16, mpsc::UnboundedSender<Incoming>>>,
    bound: Mutex<HashSet<u16>>,
    next_ephemeral: Mutex<u16>,
    /// The pod's IP, if it has one.
    ip: Option<IpAddr>,
    /// Where other pods are, when this pod has an IP.
    cluster: Option<Arc<ClusterNet>>,
    /// The DNS search domains of the pod's namespace.
    search: Vec<String>,
    /// Bound UDP ports: where their datagrams go.
    udp: Mutex<HashMap<u16, mpsc::Sender<udp::Datagram>>>,
    /// What crossed the pod's edge.
    traffic: Arc<traffic::Traffic>,
}

impl Drop for PodNet {
    fn drop(&mut self) {
        if let (Some(ip), Some(cluster)) = (self.ip, &self.cluster) {
            cluster.release(ip);
        }
    }
}

const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

impl Default for PodNet {
    fn default() -> Self {
        PodNet::new(None, None, Vec::new())
    }
}

/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Names with fewer dots than this try the search path first.
const NDOTS: usize = 5;

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Addresses known in the cluster (or the name was an address).
    Cluster(Vec<IpAddr>),
    /// A name in the cluster domain that does not exist.
    Unknown,
    /// Not a cluster name: for the host's resolver.
    Host(String),
}

/// The address the host side appears to connect from.
const HOST_PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl PodNet {
    fn new(ip: Option<IpAddr>, cluster: Option<Arc<ClusterNet>>, search: Vec<String>) -> PodNet {
        PodNet {
            listeners: Mutex::default(),
            bound: Mutex::default(),
            next_ephemeral: Mutex::new(*EPHEMERAL.start()),
            ip,
            cluster,
            search,
            udp: Mutex::default(),
            traffic: Arc::default(),
        }
    }

    /// The network of a pod of `namespace` answering at `ip` among the
    /// pods of `cluster`; its names are looked up as a pod of that
    /// namespace's are (search `<ns>.svc.cluster.local`, `svc.cluster.local`,
    /// `cluster.local`).
    pub fn attach(
        ip: IpAddr,
        namespace: &str,
        cluster: &Arc<ClusterNet>,
    ) -> Result<Arc<PodNet>, AddressInUse> {
        let search = [
            format!("{namespace}.svc.{CLUSTER_DOMAIN}"),
            format!("svc.{CLUSTER_DOMAIN}"),
            CLUSTER_DOMAIN.to_string(),
        ];
        let net = Arc::new(PodNet::new(
            Some(ip),
            Some(Arc::clone(cluster)),
            search.to_vec(),
        ));
        cluster.register(ip, &net)?;
        Ok(net)
    }

    /// What `name` resolves to for a guest of this pod: cluster names
    /// through the search path (as resolv.conf's `ndots:5` does), the
    /// rest through the host's resolver.
    pub(crate) fn resolve(&self, name: &str) -> Resolved {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Resolved::Cluster(vec![ip]);
        }
        let absolute = name.ends_with('.');
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" {
            return Resolved::Cluster(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        }
        let Some(cluster) = &self.cluster else {
            return Resolved::Host(name);
        };
        let dots = name.matches('.').count();
        if !absolute && dots < NDOTS {
            for domain in &self.search {
                if let Some(ips) = cluster.resolve(&format!("{name}.{domain}")) {
                    return Resolved::Cluster(ips);
                }
            }
        }
        if let Some(ips) = cluster.resolve(&name) {
            return Resolved::Cluster(ips);
        }
        if name == CLUSTER_DOMAIN || name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
            return Resolved::Unknown;
        }
        Resolved::Host(name)
    }

    /// The pod's IP, if it has one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Where a connection (or datagram) of `protocol` to `to` goes: this
    /// pod for loopback and its own IP, another pod for that pod's IP, one
    /// of a Service's endpoints for its address; nowhere when the cluster's
    /// policy drops it.
    pub(crate) fn route(self: &Arc<Self>, to: SocketAddr, protocol: Protocol) -> Route {
        let to = SocketAddr::new(address::canonical(to.ip()), to.port());
        if self.is_own(to.ip()) {
            return Route::Pod(Arc::clone(self), to.port());
        }
        match &self.cluster {
            Some(cluster) => cluster.route(self.ip, to, protocol),
            None if address::may_leave_host(to.ip()) => Route::Outside(to),
            None => Route::Denied,
        }
    }

    /// Whether a guest of this pod may look names up (the cluster's policy
    /// may cut a pod off its DNS).
    pub(crate) fn may_look_up(&self) -> bool {
        match (&self.cluster, self.ip) {
            (Some(cluster), Some(ip)) => cluster.allows_lookup(ip),
            _ => true,
        }
    }

    /// Whether `ip` is this pod's own, in any spelling: its loopback, the
    /// unspecified address (which means "here", as on Linux) or its IP.
    pub(crate) fn is_own(&self, ip: IpAddr) -> bool {
        address::is_pod_local(ip) || Some(address::canonical(ip)) == self.ip
    }

    /// Addresses a guest of this pod may bind: loopback, the wildcard and
    /// the pod's own IP.
    pub(crate) fn bindable(&self, ip: IpAddr) -> bool {
        self.is_own(ip)
    }

    /// Opens a connection to a port of the pod for `client`, a client
    /// outside the cluster (a host port's), as the cluster's policy allows.
    pub fn dial_for(&self, client: IpAddr, port: u16) -> Result<PodConnection, DialError> {
        if let (Some(cluster), Some(ip)) = (&self.cluster, self.ip)
            && !cluster.allows(client, SocketAddr::new(ip, port), Protocol::Tcp)
        {
            return Err(DialError::Dropped(SocketAddr::new(ip, port)));
        }
        self.dial(port)
    }

    /// Opens a connection from the host to a port of the pod, through the
    /// pod's edge (a Service's, a probe's): the pod counts its bytes.
    pub fn dial(&self, port: u16) -> Result<PodConnection, DialError> {
        self.connect(port, self.meter())
    }

    /// Opens a connection to a port of the pod from inside its network,
    /// as port-forwarding does: over its loopback, not counted.
    pub fn dial_loopback(&self, port: u16) -> Result<PodConnection, DialError> {
        self.connect(port, Meter::default())
    }

    fn connect(&self, port: u16, meter: Meter) -> Result<PodConnection, DialError> {
        let (ours, theirs) = pipe::End::pair(WINDOW);
        let peer = SocketAddr::new(HOST_PEER, self.ephemeral());
        self.deliver(port, theirs.metered(meter), peer)?;
        Ok(PodConnection::new(ours))
    }

    /// The bytes that crossed the pod's edge so far.
    pub fn traffic(&self) -> NetworkCounts {
        self.traffic.counts()
    }

    /// Where the pod's side of a connection across its edge counts.
    pub(crate) fn meter(&self) -> Meter {
        Meter::of(&self.traffic)
    }

    /// The ports something in the pod listens on, sorted.
    pub fn listening_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = lock(&self.listeners).keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    fn deliver(&self, port: u16, stream: pipe::End, peer: SocketAddr) -> Result<(), DialError> {
        let sender = lock(&self.listeners)
            .get(&port)
            .cloned()
            .ok_or(DialError::Refused(port))?;
        sender
            .send((stream, peer))
            .map_err(|_| DialError::Refused(port))
    }

    /// A free ephemeral port (not bound by anyone in the pod).
    fn ephemeral(&self) -> u16 {
        let bound = lock(&self.bound);
        let mut next = lock(&self.next_ephemeral);
        for _ in EPHEMERAL {
            let port = *next;
            *next = if port == *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                port + 1
            };
            if !bound.contains(&port) {
                return port;
            }
        }
        // Every ephemeral port bound: hand one out anyway; connects do not
        // bind, so this only reuses a number.
        *next
    }

    /// Claims `port` for a bind; false if it is taken.
    pub(crate) fn claim(&self, port: u16) -> bool {
        lock(&self.bound).insert(port)
    }

    pub(crate) fn release(&self, port: u16) {
        lock(&self.bound).remove(&port);
        lock(&self.listeners).remove(&port);
    }

    pub(crate) fn listen(&self, port: u16) -> mpsc::UnboundedReceiver<Incoming> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.listeners).insert(port, tx);
        rx
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a connection goes.
pub(crate) enum Route {
    /// To a port of a pod on this host (this one or another).
    Pod(Arc<PodNet>, u16),
    /// Nowhere: a Service port without endpoints.
    Refused,
    /// Out of the cluster, from the host: to this address.
    Outside(SocketAddr),
    /// Nowhere, by rule: an address that must not be reached from a pod
    /// (the host's own, link-local, the API's listener other than through
    /// its Service).
    Denied,
    /// Nowhere, by the cluster's policy: dropped without an answer.
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialing_an_unlistened_port_is_refused() {
        let net = PodNet::default();
        assert_eq!(net.dial(80).unwrap_err(), DialError::Refused(80));
    }

    #[tokio::test]
    async fn a_dial_reaches_the_listener() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let net = PodNet::default();
        assert!(net.claim(80));
        assert!(!net.claim(80), "a port is claimed once");
        let mut rx = net.listen(80);
        let mut host = net.dial(80).unwrap();
        let (guest, peer) = rx.recv().await.unwrap();
        assert_eq!(peer.ip(), HOST_PEER);
        host.write_all(b"ping").await.unwrap();
        let mut guest = PodConnection::new(guest);
        let mut buf = [0; 4];
        guest.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(net.listening_ports(), [80]);
        net.release(80);
        assert!(net.dial(80).is_err());
        assert!(net.claim(80));
    }

    #[tokio::test]
    async fn the_pod_counts_what_crosses_its_edge_and_not_its_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let net = PodNet::default();
        assert!(net.claim(80));
        let mut rx = net.listen(80);
        // A Service's connection: five bytes in, two out.
        let mut client = net.dial(80).unwrap();
        let (end, _) = rx.recv().await.unwrap();
        let mut server = PodConnection::new(end);
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"ok").await.unwrap();
        client.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(
            net.traffic(),
            NetworkCounts {
                receive_bytes: 5,
                transmit_bytes: 2
            }
        );
        // Port-forwarding's connection comes from inside: not counted.
        let mut forward = net.dial_loopback(80).unwrap();
        let (end, _) = rx.recv().await.unwrap();
        let mut server = PodConnection::new(end);
        forward.write_all(b"hello").await.unwrap();
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(net.traffic().receive_bytes, 5);
    }

    #[test]
    fn names_resolve_through_the_namespace_search_path() {
        let cluster = Arc::new(ClusterNet::default());
        let web: IpAddr = "10.96.0.20".parse().unwrap();
        let other: IpAddr = "10.96.0.30".parse().unwrap();
        cluster.set_names(HashMap::from([
            ("web.shop.svc.cluster.local".to_string(), vec![web]),
            ("web.other.svc.cluster.local".to_string(), vec![other]),
        ]));
        let net = PodNet::attach("10.244.0.5".parse().unwrap(), "shop", &cluster).unwrap();
        for name in [
            "web",
            "WEB",
            "web.shop",
            "web.shop.svc",
            "web.shop.svc.cluster.local",
            "web.shop.svc.cluster.local.",
        ] {
            assert_eq!(net.resolve(name), Resolved::Cluster(vec![web]), "{name}");
        }
        assert_eq!(net.resolve("web.other"), Resolved::Cluster(vec![other]));
        assert_eq!(
            net.resolve("missing.shop.svc.cluster.local"),
            Resolved::Unknown
        );
        assert_eq!(net.resolve("missing"), Resolved::Host("missing".into()));
        assert_eq!(
            net.resolve("example.org"),
            Resolved::Host("example.org".into())
        );
        assert_eq!(
            net.resolve("10.1.2.3"),
            Resolved::Cluster(vec!["10.1.2.3".parse().unwrap()])
        );
        // A pod outside the cluster network has only the host's resolver.
        assert_eq!(
            PodNet::default().resolve("web"),
            Resolved::Host("web".into())
        );
    }

    #[test]
    fn ephemeral_ports_skip_bound_ones() {
        let net = PodNet::default();
        assert!(net.claim(49152));
        assert_eq!(net.ephemeral(), 49153);
    }
}
