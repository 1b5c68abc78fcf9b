//! What an address a guest names really is, in every spelling.
//!
//! The host reads `::ffff:127.0.0.1` (IPv4-mapped) as `127.0.0.1`, and
//! `0.0.0.0` as "this host", so a guest that spells the host's loopback
//! another way would reach the host's own services if each path (TCP, UDP,
//! `wasi:http`) judged addresses by their spelling. Every path asks here
//! instead: [`canonical`] gives the address the host would use, and
//! [`may_leave_host`] says whether a connection to it may go out as
//! egress. Loopback and the unspecified address stay in the pod (they are
//! the pod's own); link-local, multicast, broadcast and reserved ranges
//! never leave, nor do IPv6 addresses that embed a forbidden IPv4 one
//! (NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as the host's stack reads it: IPv4-mapped (`::ffff:a.b.c.d`)
/// and IPv4-compatible (`::a.b.c.d`) IPv6 addresses are their IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address stands for on this host, if any.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // `::a.b.c.d`, but not `::` and `::1`, which are IPv6's own.
    let segments = v6.segments();
    if segments[..6].iter().all(|s| *s == 0) && !v6.is_unspecified() && !v6.is_loopback() {
        return v6.to_ipv4();
    }
    None
}

/// Whether a connection to `ip` is the pod talking to itself: loopback and
/// the unspecified address, in any spelling.
pub(crate) fn is_pod_local(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether a connection to `ip` may leave the host as egress.
pub(crate) fn may_leave_host(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_may_leave(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let link_local = segments[0] & 0xffc0 == 0xfe80;
            let forbidden =
                v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || link_local;
            // NAT64 (64:ff9b::/96, 64:ff9b:1::/48) carries the IPv4
            // address in its last 32 bits; 6to4 (2002::/16) in bits 16..48.
            let nat64 = segments[0] == 0x64 && segments[1] == 0xff9b;
            let carried = if nat64 {
                Some(Ipv4Addr::from(u128::from(v6) as u32))
            } else if segments[0] == 0x2002 {
                Some(Ipv4Addr::from(
                    ((u128::from(v6) >> 80) & 0xffff_ffff) as u32,
                ))
            } else {
                None
            };
            !forbidden && carried.is_none_or(v4_may_leave)
        }
    }
}

fn v4_may_leave(v4: Ipv4Addr) -> bool {
    let first = v4.octets()[0];
    !(v4.is_loopback()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        // 0.0.0.0/8 ("this network") and 240.0.0.0/4 (reserved).
        || first == 0
        || first >= 240)
}

/// Whether `ip` is one of this host's own addresses (binding to it works
/// only if it is).
pub(crate) fn is_host_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Regression: `::ffff:127.0.0.1` was treated as egress and reached a
    /// service on the host's loopback.
    #[test]
    fn every_spelling_of_loopback_and_unspecified_is_the_pods_own() {
        for text in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.9.9.9",
            "::127.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
        ] {
            assert!(is_pod_local(ip(text)), "{text} is the pod's own");
            assert!(!may_leave_host(ip(text)), "{text} never leaves the host");
        }
    }

    #[test]
    fn link_local_multicast_and_embedded_forms_never_leave() {
        for text in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "febf::1",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "0.1.2.3",
            "240.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!is_pod_local(ip(text)), "{text}");
            assert!(!may_leave_host(ip(text)), "{text} never leaves the host");
        }
    }

    #[test]
    fn the_world_is_egress() {
        for text in [
            "192.0.2.7",
            "10.1.2.3",
            "2001:db8::1",
            "::ffff:192.0.2.7",
            "64:ff9b::192.0.2.7",
            "2002:c000:207::1",
            "fc00::1",
        ] {
            assert!(may_leave_host(ip(text)), "{text} is egress");
        }
        assert_eq!(canonical(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn host_addresses_are_known_by_binding() {
        assert!(is_host_address(ip("127.0.0.1")));
        assert!(!is_host_address(ip("192.0.2.7")));
    }
}
