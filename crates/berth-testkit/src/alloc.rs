//! Free TCP ports and free subnets/bridge names for tests that run in parallel (nextest runs each
//! test in its own process, so reservations are file locks, not in-process state).

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use anyhow::Context;
use rustix::fs::{FlockOperation, flock};

/// Directory of the lock files that reserve subnets between test processes.
const LOCK_DIR: &str = "/tmp/berth-testkit-locks";

/// A loopback TCP port that was free a moment ago (the kernel picked it).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A /24 out of 172.30.0.0/16 and a bridge name, reserved for this test process until dropped,
/// and not overlapping any route of the host.
pub struct Subnet {
    index: u8,
    _lock: File,
}

impl Subnet {
    /// Reserves the first free /24.
    pub fn reserve() -> anyhow::Result<Self> {
        std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
        let routes = host_routes().unwrap_or_default();
        for index in 0..=255u8 {
            let net = u32::from(Ipv4Addr::new(172, 30, index, 0));
            if routes
                .iter()
                .any(|&(dst, mask)| overlaps(net, 0xffff_ff00, dst, mask))
            {
                continue;
            }
            let path = Path::new(LOCK_DIR).join(format!("subnet-{index}.lock"));
            let lock =
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                return Ok(Self { index, _lock: lock });
            }
        }
        anyhow::bail!("no free /24 left in 172.30.0.0/16")
    }

    /// The subnet in CIDR form, e.g. `172.30.7.0/24`.
    pub fn cidr(&self) -> String {
        format!("172.30.{}.0/24", self.index)
    }

    /// The gateway (bridge) address with prefix, e.g. `172.30.7.1/24` (berthd's `--bip`).
    pub fn bip(&self) -> String {
        format!("172.30.{}.1/24", self.index)
    }

    /// An IPv6 subnet that goes with this reservation, e.g. `fd42:b37:7::/64` (unique local
    /// addresses: never routed off the host).
    pub fn cidr6(&self) -> String {
        format!("fd42:b37:{}::/64", self.index)
    }

    /// A second one, for a test that needs two IPv6 networks.
    pub fn cidr6_second(&self) -> String {
        format!("fd42:b38:{}::/64", self.index)
    }

    /// A bridge name unique to this reservation (at most 15 bytes).
    pub fn bridge_name(&self) -> String {
        format!("berth-t{}", self.index)
    }
}

fn overlaps(a: u32, amask: u32, b: u32, bmask: u32) -> bool {
    let mask = amask & bmask;
    mask != 0 && (a & mask) == (b & mask)
}

/// Destination and mask of every IPv4 route (from /proc/net/route, little-endian hex).
fn host_routes() -> anyhow::Result<Vec<(u32, u32)>> {
    let text = std::fs::read_to_string("/proc/net/route")?;
    let parse = |s: &str| u32::from_str_radix(s, 16).map(u32::from_be);
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((parse(f.get(1)?).ok()?, parse(f.get(7)?).ok()?))
        })
        .filter(|&(_, mask)| mask != 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_reservations_differ() {
        let a = Subnet::reserve().unwrap();
        let b = Subnet::reserve().unwrap();
        assert_ne!(a.cidr(), b.cidr());
        assert_ne!(a.bridge_name(), b.bridge_name());
        assert!(a.bridge_name().len() <= 15);
    }

    #[test]
    fn overlap_logic() {
        let n = |a, b, c, d| u32::from(Ipv4Addr::new(a, b, c, d));
        assert!(overlaps(
            n(172, 30, 1, 0),
            0xffff_ff00,
            n(172, 30, 0, 0),
            0xffff_0000
        ));
        assert!(!overlaps(
            n(172, 30, 1, 0),
            0xffff_ff00,
            n(172, 30, 2, 0),
            0xffff_ff00
        ));
    }

    #[test]
    fn port_is_bindable() {
        let p = free_port().unwrap();
        TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
    }
}
