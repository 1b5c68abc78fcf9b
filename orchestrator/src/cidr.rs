//! IPv4 networks written as CIDRs (`10.244.0.0/16`): the pod network and
//! the service network are both one.

use std::net::Ipv4Addr;

/// An IPv4 CIDR such as `10.244.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

/// A CIDR that does not parse or is too small to hand out addresses from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected an IPv4 network such as 10.244.0.0/16, /8 to /28")]
pub struct InvalidCidr(pub String);

impl std::str::FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Cidr, InvalidCidr> {
        let invalid = || InvalidCidr(text.to_string());
        let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if !(8..=28).contains(&prefix) {
            return Err(invalid());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            base: u32::from(address) & mask,
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Cidr {
    /// How many addresses the network spans, network and broadcast
    /// addresses included.
    pub fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The network's prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address `offset` into the network.
    pub fn nth(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(offset))
    }

    /// How far into the network `ip` is, if it is inside.
    pub fn offset_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).wrapping_sub(self.base);
        (offset < self.size()).then_some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_or_say_what_is_expected() {
        let cidr: Cidr = "10.244.7.9/16".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.244.0.0/16");
        assert_eq!(cidr.size(), 65536);
        assert_eq!(cidr.nth(258), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(cidr.offset_of(Ipv4Addr::new(10, 244, 1, 2)), Some(258));
        assert_eq!(cidr.offset_of(Ipv4Addr::new(10, 245, 0, 0)), None);
        assert_eq!(cidr.offset_of(Ipv4Addr::new(10, 243, 255, 255)), None);
        for bad in ["10.244.0.0", "10.244.0.0/31", "fd00::/64", "x/16"] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.to_string().contains("10.244.0.0/16"), "{bad}: {err}");
        }
    }
}
