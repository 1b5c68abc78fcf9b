//! The hook through which the pod network asks whether traffic may pass:
//! whoever sets a [`ConnectionPolicy`] on the [`super::ClusterNet`]
//! (wasmkube's NetworkPolicy table) judges every new TCP connection and
//! every UDP datagram between pods, from pods to the outside, and from
//! outside clients through host ports, and every name lookup of a pod.
//! Traffic the policy refuses is dropped, as a policy-enforcing pod
//! network drops it: a TCP connect is never answered (the guest's own
//! timeout ends it), a datagram is lost.
//!
//! What is never judged: a pod's traffic to itself, and the host's own
//! connections into pods (probes, port-forward), as a node's traffic to
//! its pods is always allowed.

use std::net::{IpAddr, SocketAddr};

use tokio::sync::oneshot;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;

/// The transport a judgement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Judges traffic in the pod network.
pub trait ConnectionPolicy: Send + Sync + std::fmt::Debug {
    /// Whether `from` (a pod IP, or a client outside the cluster) may
    /// reach `to` (a pod's IP and port after any Service was resolved to
    /// an endpoint, or an address outside) over `protocol`.
    fn allows(&self, from: IpAddr, to: SocketAddr, protocol: Protocol) -> bool;

    /// Whether the pod at `from` may look names up: reach the cluster's
    /// DNS.
    fn allows_lookup(&self, from: IpAddr) -> bool;
}

/// A TCP connect the policy dropped: nothing answers, and the attempt
/// times out as an unanswered one does (unless the guest gives up first).
pub(crate) fn unanswered() -> oneshot::Receiver<Result<(), ErrorCode>> {
    let (mut tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(super::egress::CONNECT_TIMEOUT) => {
                let _ = tx.send(Err(ErrorCode::Timeout));
            }
            () = tx.closed() => {}
        }
    });
    rx
}
