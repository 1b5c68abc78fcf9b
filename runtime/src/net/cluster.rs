//! The pods' addresses on this host: which pod network answers at which
//! pod IP, so a guest connecting to another pod's IP reaches that pod's
//! listener, as on a flat Kubernetes pod network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use super::{PodNet, lock};

/// Pod IP to pod network, for every pod of one runtime.
#[derive(Debug, Default)]
pub struct ClusterNet {
    pods: Mutex<HashMap<IpAddr, Weak<PodNet>>>,
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
}
