//! IPv6 address management for networks with `EnableIPv6`: a subnet type and a pool that hands
//! out its addresses in order from `::2` (the gateway takes `::1` unless one is given), as
//! Docker's does. Like the IPv4 pool it is not persisted: berthd rebuilds it from the
//! endpoints it has recorded.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::NetError;

/// An IPv6 subnet `address/prefix`, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet6 {
    net: u128,
    prefix: u8,
}

fn mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Subnet6 {
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 128 {
            return Err(NetError::BadSubnet(format!("{addr}/{prefix}")));
        }
        Ok(Subnet6 {
            net: u128::from(addr) & mask(prefix),
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.net)
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask(self.prefix) == self.net
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.net & m == other.net & m
    }

    /// The `n`th address (0 is the subnet-router anycast address).
    pub fn nth(&self, n: u128) -> Option<Ipv6Addr> {
        let last = !mask(self.prefix);
        (n <= last).then(|| Ipv6Addr::from(self.net | n))
    }

    /// The last address.
    fn last(&self) -> u128 {
        self.net | !mask(self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::BadSubnet(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Subnet6::new(addr, prefix)
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The IPv6 addresses of one network.
#[derive(Debug, Clone)]
pub struct Pool6 {
    subnet: Subnet6,
    range: Subnet6,
    gateway: Ipv6Addr,
    used: BTreeSet<u128>,
    last: u128,
}

impl Pool6 {
    /// A pool of `range` (the whole subnet, or an `IPRange` inside it) around `gateway`.
    pub fn new(subnet: Subnet6, range: Option<Subnet6>, gateway: Ipv6Addr) -> Self {
        Pool6 {
            subnet,
            range: range.unwrap_or(subnet),
            gateway,
            used: BTreeSet::new(),
            last: 0,
        }
    }

    pub fn subnet(&self) -> Subnet6 {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }

    fn usable(&self, ip: Ipv6Addr) -> bool {
        self.subnet.contains(ip)
            && ip != self.gateway
            && ip != self.subnet.network()
            && !self.used.contains(&u128::from(ip))
    }

    /// Takes a given address (`--ip6`, or one recorded before a restart).
    pub fn reserve(&mut self, ip: Ipv6Addr) -> Result<(), NetError> {
        if !self.subnet.contains(ip) {
            return Err(NetError::OutOfSubnet {
                addr: ip.into(),
                subnet: self.subnet.to_string(),
            });
        }
        if !self.usable(ip) {
            return Err(NetError::AddressInUse);
        }
        self.used.insert(u128::from(ip));
        Ok(())
    }

    /// Takes the next free address of the range after the last one given (the search is
    /// bounded: a /64 is never walked whole).
    pub fn allocate(&mut self) -> Result<Ipv6Addr, NetError> {
        let (first, last) = (self.range.net, self.range.last());
        let start = match (first..=last).contains(&self.last) {
            true => self.last,
            false => first,
        };
        let size = last - first;
        let tries = (self.used.len() as u128 + 4).min(size.saturating_add(1));
        let mut at = start;
        for _ in 0..=tries {
            at = if at >= last { first } else { at + 1 };
            let ip = Ipv6Addr::from(at);
            if self.usable(ip) {
                self.used.insert(at);
                self.last = at;
                return Ok(ip);
            }
        }
        Err(NetError::PoolExhausted(self.range.to_string()))
    }

    /// Gives an address back.
    pub fn release(&mut self, ip: Ipv6Addr) {
        self.used.remove(&u128::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_normalise_and_overlap() {
        let s: Subnet6 = "fd00:1::5/64".parse().unwrap();
        assert_eq!(s.to_string(), "fd00:1::/64");
        assert!(s.contains("fd00:1::ffff".parse().unwrap()));
        assert!(!s.contains("fd00:2::1".parse().unwrap()));
        assert!(s.overlaps(&"fd00::/16".parse().unwrap()));
        assert!(!s.overlaps(&"fd00:2::/64".parse().unwrap()));
        assert_eq!(s.nth(1), Some("fd00:1::1".parse().unwrap()));
        for bad in ["fd00::", "fd00::/129", "10.0.0.0/8", "x/64"] {
            assert!(bad.parse::<Subnet6>().is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_come_in_order_after_the_gateway_and_are_not_reused_at_once() {
        let s: Subnet6 = "fd00:1::/64".parse().unwrap();
        let mut p = Pool6::new(s, None, s.nth(1).unwrap());
        let a = p.allocate().unwrap();
        assert_eq!(a, "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        p.reserve("fd00:1::3".parse().unwrap()).unwrap();
        assert_eq!(
            p.allocate().unwrap(),
            "fd00:1::4".parse::<Ipv6Addr>().unwrap()
        );
        p.release(a);
        assert_eq!(
            p.allocate().unwrap(),
            "fd00:1::5".parse::<Ipv6Addr>().unwrap()
        );
        assert!(p.reserve("fd00:1::4".parse().unwrap()).is_err());
        assert!(p.reserve("fd00:1::1".parse().unwrap()).is_err());
        assert!(p.reserve("fd00:9::1".parse().unwrap()).is_err());
    }

    #[test]
    fn a_full_small_pool_says_so() {
        let s: Subnet6 = "fd00:1::/126".parse().unwrap();
        let mut p = Pool6::new(s, None, s.nth(1).unwrap());
        assert!(p.allocate().is_ok());
        assert!(p.allocate().is_ok());
        assert!(p.allocate().is_err());
    }
}
