//! Named network namespaces (an nsfs bind mount at a path, as `ip netns` makes them, so they
//! outlive any process and the runtime joins them by path), the bridges containers plug into,
//! and the endpoint inside a namespace: a veth pair whose host end is a bridge port and whose
//! other end is created straight inside the namespace, then addressed and routed there.
//! Every namespace change happens on a short-lived thread, never on a caller's thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::NetError;
use crate::ipam::Subnet;
use crate::netlink::Netlink;

fn ns_err(path: &Path) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Namespace {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a network namespace pinned at `path` (the parent must exist), with `lo` up.
pub fn create(path: &Path) -> Result<(), NetError> {
    std::fs::File::create(path).map_err(ns_err(path))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), NetError> {
            // SAFETY: CLONE_NEWNET moves only this short-lived thread, which shares nothing
            // that depends on its network namespace and exits right after this closure.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|e| ns_err(path)(e.into()))?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)
                .map_err(|e| ns_err(path)(e.into()))?;
            let mut nl = Netlink::open()?;
            let lo = nl.link_index("lo")?.unwrap_or(1);
            nl.set_up(lo)
        })
        .join()
        .unwrap_or_else(|_| Err(ns_err(path)(std::io::ErrorKind::Other.into())))
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unpins and removes a namespace made by `create` (nothing to do if it is gone already).
pub fn remove(path: &Path) -> Result<(), NetError> {
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(ns_err(path)(e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ns_err(path)(e)),
        _ => Ok(()),
    }
}

/// Makes sure bridge `name` exists, carries `gateway/prefix` (and the IPv6 gateway of a
/// network with `EnableIPv6`), is up, and lets DNAT from 127.0.0.1 reach its ports
/// (`route_localnet`). Returns whether it had to be created.
pub fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    subnet: Subnet,
    v6: Option<(Ipv6Addr, u8)>,
    mtu: u32,
) -> Result<bool, NetError> {
    let mut nl = Netlink::open()?;
    let (index, created) = match nl.link_index(name)? {
        Some(i) => (i, false),
        None => (nl.create_bridge(name, mtu)?, true),
    };
    let setup = (|| {
        nl.add_address(index, gateway, subnet.prefix())?;
        if let Some((gw6, prefix)) = v6 {
            nl.add_address6(index, gw6, prefix)?;
        }
        nl.set_up(index)?;
        sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")
    })();
    match setup {
        Ok(()) => Ok(created),
        Err(e) => {
            if created {
                let _ = nl.delete_link(index);
            }
            Err(e)
        }
    }
}

/// Deletes a bridge (or any link) by name; fine if it is gone.
pub fn delete_link(name: &str) -> Result<(), NetError> {
    Netlink::open()?.delete_link_named(name).map(drop)
}

/// Writes one value under /proc/sys.
pub fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| NetError::Sysctl { path, source })
}

/// One interface of a container on a bridge.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The bridge the host end joins.
    pub bridge: String,
    /// The host end's name (at most 15 bytes).
    pub host_ifname: String,
    /// The name inside the namespace (`eth0`, `eth1`, …).
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// The default route's gateway, for the interface that carries it.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address and prefix, on a network with `EnableIPv6`.
    pub address6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 default route's gateway, for the interface that carries it.
    pub gateway6: Option<Ipv6Addr>,
    /// More addresses (`LinkLocalIPs`): IPv4 ones as /16, IPv6 ones as /64, as Docker adds them.
    pub link_local: Vec<IpAddr>,
    pub mtu: u32,
}

/// Plugs the namespace at `ns` into a bridge. On failure nothing of it is left.
pub fn attach(ns: &Path, ep: &Endpoint) -> Result<(), NetError> {
    let mut host = Netlink::open()?;
    let bridge = host.link_index(&ep.bridge)?.ok_or_else(|| {
        NetError::Netlink(
            "finding the network's bridge",
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let nsfile = std::fs::File::open(ns).map_err(ns_err(ns))?;
    host.create_veth(
        &ep.host_ifname,
        bridge,
        &ep.ifname,
        nsfile.as_fd(),
        ep.mac,
        ep.mtu,
    )?;
    let inside = (|| {
        // No IPv6 on this endpoint: none at all (no link-local address that answers on the
        // bridge), as Docker's endpoints on networks without IPv6; written from the thread
        // that enters the namespace for its netlink socket anyway.
        let no_v6 = ep.address6.is_none() && !ep.link_local.iter().any(IpAddr::is_ipv6);
        let key = format!("net/ipv6/conf/{}/disable_ipv6", ep.ifname);
        let mut nl = crate::netlink::in_namespace(ns, || {
            if no_v6 {
                match sysctl(&key, "1") {
                    // IPv6 is off on the host.
                    Err(NetError::Sysctl { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    r => r?,
                }
            }
            Netlink::open()
        })?;
        let index = nl.link_index(&ep.ifname)?.ok_or_else(|| {
            NetError::Netlink(
                "finding the container's interface",
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
        nl.add_address(index, ep.address, ep.prefix)?;
        if let Some((a, p)) = ep.address6 {
            nl.add_address6(index, a, p)?;
        }
        for ip in &ep.link_local {
            match ip {
                IpAddr::V4(a) => nl.add_address(index, *a, 16)?,
                IpAddr::V6(a) => nl.add_address6(index, *a, 64)?,
            }
        }
        nl.set_up(index)?;
        if let Some(gw) = ep.gateway6 {
            match nl.add_default_route6(gw) {
                Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                r => r?,
            }
        }
        match ep.gateway {
            Some(gw) => match nl.add_default_route(gw) {
                Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                r => r,
            },
            None => Ok(()),
        }
    })();
    if inside.is_err() {
        let _ = host.delete_link_named(&ep.host_ifname);
    }
    inside
}

/// Unplugs an endpoint: deleting the host end removes the pair.
pub fn detach(host_ifname: &str) -> Result<(), NetError> {
    delete_link(host_ifname)
}

/// Names of the links of the host's namespace that are ports of `bridge` (for orphan sweeps).
pub fn bridge_ports(bridge: &str) -> Result<Vec<String>, NetError> {
    let mut nl = Netlink::open()?;
    let Some(index) = nl.link_index(bridge)? else {
        return Ok(vec![]);
    };
    Ok(nl
        .links()?
        .into_iter()
        .filter(|l| l.master == index)
        .map(|l| l.name)
        .collect())
}

/// Every namespace file in `dir` (for orphan sweeps).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
