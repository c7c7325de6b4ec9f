//! IPv4 address management: subnets as a validated type, and a pool that hands out addresses of
//! one network (never the network, broadcast or gateway address; sequentially after the last one
//! given, like Docker, so a just-released address is not reused at once). The pool itself is not
//! persisted: berthd rebuilds it from the endpoints it has recorded, so a restart never hands out
//! an address that is still in use.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::NetError;

/// An IPv4 subnet `address/prefix`, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    net: u32,
    prefix: u8,
}

impl Subnet {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 32 {
            return Err(NetError::BadSubnet(format!("{addr}/{prefix}")));
        }
        Ok(Subnet {
            net: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.net
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.net & m == other.net & m
    }

    /// The `n`th address (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size).then(|| Ipv4Addr::from(self.net + n))
    }

    /// The `n`th subnet of size `/prefix` inside this one.
    pub fn split(&self, prefix: u8, n: u32) -> Option<Subnet> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        let step = 1u64 << (32 - u32::from(prefix));
        (u64::from(n) < count).then(|| Subnet {
            net: self.net + (u64::from(n) * step) as u32,
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Subnet {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::BadSubnet(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Subnet::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Parses `ADDRESS/PREFIX` keeping the address (e.g. a bridge's `--bip 172.30.7.1/24`).
pub fn parse_cidr_address(s: &str) -> Result<(Ipv4Addr, Subnet), NetError> {
    let subnet: Subnet = s.parse()?;
    let addr = s
        .split_once('/')
        .and_then(|(a, _)| a.parse().ok())
        .ok_or_else(|| NetError::BadSubnet(s.to_string()))?;
    Ok((addr, subnet))
}

/// The addresses of one network: which are taken, and where the next search starts.
#[derive(Debug, Clone)]
pub struct Pool {
    subnet: Subnet,
    range: Subnet,
    gateway: Ipv4Addr,
    used: BTreeSet<u32>,
    last: u32,
}

impl Pool {
    /// A pool of `range` (the whole subnet, or `--ip-range` inside it) around `gateway`.
    pub fn new(subnet: Subnet, range: Option<Subnet>, gateway: Ipv4Addr) -> Self {
        Pool {
            subnet,
            range: range.unwrap_or(subnet),
            gateway,
            used: BTreeSet::new(),
            last: 0,
        }
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.subnet.contains(ip)
            && ip != self.gateway
            && (self.subnet.prefix >= 31
                || (ip != self.subnet.network() && ip != self.subnet.broadcast()))
            && !self.used.contains(&n)
    }

    /// Takes a given address (`--ip`, or one recorded before a restart).
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), NetError> {
        if !self.subnet.contains(ip) {
            return Err(NetError::OutOfSubnet {
                addr: ip.into(),
                subnet: self.subnet.to_string(),
            });
        }
        if !self.usable(ip) {
            return Err(NetError::AddressInUse);
        }
        self.used.insert(u32::from(ip));
        Ok(())
    }

    /// Takes the next free address of the range.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, NetError> {
        let (first, last) = (
            u32::from(self.range.network()),
            u32::from(self.range.broadcast()),
        );
        let size = u64::from(last - first) + 1;
        let start = if (first..=last).contains(&self.last) {
            self.last - first + 1
        } else {
            0
        };
        for i in 0..size {
            let ip = Ipv4Addr::from(first + ((u64::from(start) + i) % size) as u32);
            if self.usable(ip) {
                self.used.insert(u32::from(ip));
                self.last = u32::from(ip);
                return Ok(ip);
            }
        }
        Err(NetError::PoolExhausted(self.range.to_string()))
    }

    /// Gives an address back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// Docker's MAC for an address: 02:42 followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `02:42:ac:11:00:02`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_normalise_and_compare() {
        let s: Subnet = "172.30.7.9/24".parse().unwrap();
        assert_eq!(s.to_string(), "172.30.7.0/24");
        assert_eq!(s.broadcast(), ip("172.30.7.255"));
        assert!(s.contains(ip("172.30.7.200")) && !s.contains(ip("172.30.8.1")));
        assert!(s.overlaps(&"172.30.0.0/16".parse().unwrap()));
        assert!(!s.overlaps(&"172.30.8.0/24".parse().unwrap()));
        for bad in ["172.30.7.0", "172.30.7.0/33", "x/24", "1.2.3/8", ""] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let pool: Subnet = "172.80.0.0/16".parse().unwrap();
        assert_eq!(pool.split(24, 3).unwrap().to_string(), "172.80.3.0/24");
        assert_eq!(pool.split(24, 256), None);
    }

    #[test]
    fn pool_skips_network_gateway_broadcast_and_taken_addresses() {
        let s: Subnet = "10.9.0.0/29".parse().unwrap();
        let mut p = Pool::new(s, None, ip("10.9.0.1"));
        p.reserve(ip("10.9.0.3")).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| p.allocate().ok()).collect();
        assert_eq!(
            got,
            ["10.9.0.2", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
                .map(ip)
                .to_vec()
        );
        assert!(matches!(p.allocate(), Err(NetError::PoolExhausted(_))));
        assert!(matches!(
            p.reserve(ip("10.9.0.4")),
            Err(NetError::AddressInUse)
        ));
        assert!(matches!(
            p.reserve(ip("10.9.1.4")),
            Err(NetError::OutOfSubnet { .. })
        ));
        p.release(ip("10.9.0.4"));
        assert_eq!(p.allocate().unwrap(), ip("10.9.0.4"));
    }

    #[test]
    fn pool_goes_on_after_the_last_address_instead_of_reusing_a_released_one() {
        let mut p = Pool::new("10.9.0.0/24".parse().unwrap(), None, ip("10.9.0.1"));
        let a = p.allocate().unwrap();
        p.release(a);
        assert_eq!(p.allocate().unwrap(), ip("10.9.0.3"));
    }

    #[test]
    fn ip_range_limits_the_addresses_given_out() {
        let mut p = Pool::new(
            "10.9.0.0/24".parse().unwrap(),
            Some("10.9.0.128/30".parse().unwrap()),
            ip("10.9.0.1"),
        );
        let got: Vec<_> = std::iter::from_fn(|| p.allocate().ok()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], ip("10.9.0.128"));
        // A static address outside the range but inside the subnet is still allowed.
        p.reserve(ip("10.9.0.10")).unwrap();
    }

    #[test]
    fn mac_is_derived_from_the_address() {
        assert_eq!(mac_string(mac_for(ip("172.17.0.2"))), "02:42:ac:11:00:02");
    }
}
