//! Pod IPs from the node's pod CIDR: each running pod holds one; a pod
//! that already had an address (the server restarted) gets it back when it
//! is free, as its IP is part of its status.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

pub use crate::cidr::Cidr;

/// Whether `ip` is a pod address of `cidr` (not the network address, the
/// gateway `.1` or the broadcast address).
fn holds(cidr: &Cidr, ip: Ipv4Addr) -> bool {
    cidr.offset_of(ip)
        .is_some_and(|offset| offset >= 2 && offset < cidr.size() - 1)
}

/// The node's pod addresses and who holds them.
#[derive(Debug)]
pub struct Ipam {
    cidr: Cidr,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    used: HashSet<u32>,
    /// Where the next search starts, so freed addresses are not reused at once.
    next: u32,
}

impl Ipam {
    pub fn new(cidr: Cidr) -> Ipam {
        Ipam {
            cidr,
            state: Mutex::new(State {
                used: HashSet::new(),
                next: 2,
            }),
        }
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// An address for a pod: `previous` if it is ours and free, else the
    /// next free one; `None` when the network is full.
    pub fn allocate(&self, previous: Option<IpAddr>) -> Option<IpAddr> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(IpAddr::V4(ip)) = previous
            && holds(&self.cidr, ip)
            && state.used.insert(u32::from(ip))
        {
            return Some(IpAddr::V4(ip));
        }
        let size = self.cidr.size();
        for _ in 0..size {
            let offset = state.next;
            state.next = if offset + 1 >= size - 1 {
                2
            } else {
                offset + 1
            };
            let candidate = self.cidr.nth(offset);
            if holds(&self.cidr, candidate) && state.used.insert(u32::from(candidate)) {
                return Some(IpAddr::V4(candidate));
            }
        }
        None
    }

    /// Gives `ip` back.
    pub fn release(&self, ip: IpAddr) {
        if let IpAddr::V4(ip) = ip {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.used.remove(&u32::from(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_skip_network_and_gateway_and_come_back() {
        let ipam = Ipam::new("10.0.0.0/28".parse().unwrap());
        assert_eq!(ipam.allocate(None), Some(ip("10.0.0.2")));
        assert_eq!(ipam.allocate(None), Some(ip("10.0.0.3")));
        // A pod that had an address gets it back when free.
        assert_eq!(ipam.allocate(Some(ip("10.0.0.9"))), Some(ip("10.0.0.9")));
        assert_eq!(ipam.allocate(Some(ip("10.0.0.9"))), Some(ip("10.0.0.4")));
        assert_eq!(ipam.allocate(Some(ip("192.168.0.9"))), Some(ip("10.0.0.5")));
        // 2..=14 are pod addresses: 13 in all.
        let mut all = vec![];
        while let Some(a) = ipam.allocate(None) {
            all.push(a);
        }
        assert_eq!(all.len(), 13 - 5);
        assert!(!all.contains(&ip("10.0.0.15")) && !all.contains(&ip("10.0.0.1")));
        ipam.release(ip("10.0.0.3"));
        assert_eq!(ipam.allocate(None), Some(ip("10.0.0.3")));
    }
}
