//! Networks: their records (`<data-root>/meta/networks/<id>.json`), the predefined `bridge`,
//! `host` and `none`, the address pools (rebuilt at start from the containers' recorded
//! endpoints, never persisted on their own), the published ports' reserved host sockets, the
//! daemon's nftables table rendered from all of it, and the embedded DNS server of each
//! user-defined network (UDP on its gateway address, answering container names and aliases).
//! The kernel work is berth-net's; container attach/detach is the engine's `endpoints.rs`;
//! the routes are `api/networks.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_net::ipam::{Pool, Subnet};
use berth_net::ipam6::{Pool6, Subnet6};
use berth_net::nft;
use serde::{Deserialize, Serialize};

use crate::model::Error;
pub use crate::model::net::{Attachment, EndpointState, Published};

/// One network, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    /// The bridge device (bridge driver only).
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub ip_range: String,
    /// `EnableIPv6`: endpoints get an address of `subnet6` too.
    #[serde(default)]
    pub enable_ipv6: bool,
    /// The IPv6 IPAM entry (kept, and shown, even without `EnableIPv6`, as dockerd does).
    #[serde(default)]
    pub subnet6: String,
    /// The IPv6 gateway as given (empty: the subnet's first address, not shown).
    #[serde(default)]
    pub gateway6: String,
    #[serde(default)]
    pub ip_range6: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Network {
    /// A new network record of `driver`, made now, with nothing set yet.
    pub fn new(name: &str, driver: &str) -> Network {
        Network {
            id: crate::model::ids::new_id(),
            name: name.into(),
            driver: driver.into(),
            created: berth_clock::rfc3339_now(),
            bridge: String::new(),
            subnet: String::new(),
            gateway: String::new(),
            ip_range: String::new(),
            enable_ipv6: false,
            subnet6: String::new(),
            gateway6: String::new(),
            ip_range6: String::new(),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }

    /// The predefined networks: `bridge` (the default), `host`, `none`.
    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
    pub fn user_defined_bridge(&self) -> bool {
        self.driver == "bridge" && self.name != "bridge"
    }
    fn pool(&self) -> Option<Pool> {
        let subnet: Subnet = self.subnet.parse().ok()?;
        let gateway = self.gateway.parse().ok()?;
        let range = self.ip_range.parse().ok();
        Some(Pool::new(subnet, range, gateway))
    }
    /// The IPv6 subnet and gateway of a network with `EnableIPv6`.
    pub fn v6(&self) -> Option<(Subnet6, Ipv6Addr)> {
        if !self.enable_ipv6 {
            return None;
        }
        let subnet: Subnet6 = self.subnet6.parse().ok()?;
        let gateway = match self.gateway6.parse() {
            Ok(g) => g,
            Err(_) => subnet.nth(1)?,
        };
        Some((subnet, gateway))
    }
    fn pool6(&self) -> Option<Pool6> {
        let (subnet, gateway) = self.v6()?;
        Some(Pool6::new(subnet, self.ip_range6.parse().ok(), gateway))
    }
}

/// Daemon-wide network settings from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub bridge: String,
    pub bip: Option<String>,
    /// Where user-defined networks without a subnet get one, and its size.
    pub pool: Subnet,
    pub pool_prefix: u8,
    /// The address the pool was given with: subnets are taken from there on, so Docker's
    /// `172.17.0.0/12` starts at `172.17.0.0/16` as dockerd's default bridge does.
    pub pool_start: Ipv4Addr,
    pub mtu: u32,
    /// berthd turned IPv4 forwarding on (it was off): forward only what its bridges need, so
    /// the host does not become a router between its other interfaces.
    pub forward_only_bridges: bool,
}

#[derive(Default)]
struct Inner {
    nets: BTreeMap<String, Network>,
    pools: HashMap<String, Pool>,
    pools6: HashMap<String, Pool6>,
    /// Reserved host sockets of published ports, by container.
    held: HashMap<String, Vec<(Published, OwnedFd)>>,
    /// DNS names per network id, with their IPv4 and IPv6 addresses.
    names: HashMap<String, HashMap<String, Vec<IpAddr>>>,
    /// Link aliases on a network, per asking container's address: alias → the linked
    /// container's name (only that container resolves them, as Docker's links on user networks).
    link_aliases: HashMap<(String, Ipv4Addr), Vec<(String, String)>>,
    dns: HashMap<String, tokio::task::JoinHandle<()>>,
}

/// All networks and their runtime state.
pub struct Networks {
    pub config: Config,
    pub table: String,
    root: PathBuf,
    pub netns_dir: PathBuf,
    inner: Mutex<Inner>,
}

fn ierr(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

impl Networks {
    /// Loads the records and makes sure the predefined networks exist.
    pub fn open(
        data_root: &std::path::Path,
        exec_root: &std::path::Path,
        config: Config,
    ) -> anyhow::Result<Self> {
        let root = data_root.join("meta/networks");
        std::fs::create_dir_all(&root)?;
        let netns_dir = exec_root.join("netns");
        std::fs::create_dir_all(&netns_dir)?;
        let mut inner = Inner::default();
        for e in std::fs::read_dir(&root)?.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            match serde_json::from_slice::<Network>(&bytes) {
                Ok(n) => {
                    if let Some(p) = n.pool() {
                        inner.pools.insert(n.id.clone(), p);
                    }
                    if let Some(p) = n.pool6() {
                        inner.pools6.insert(n.id.clone(), p);
                    }
                    inner.nets.insert(n.id.clone(), n);
                }
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "skipping a network record")
                }
            }
        }
        let table = nft::table_name(&config.bridge);
        let nets = Networks {
            config,
            table,
            root,
            netns_dir,
            inner: Mutex::new(inner),
        };
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if nets.find(name).is_none() {
                nets.store(&Network::new(name, driver))?;
            }
        }
        let (gateway, subnet) = match &nets.config.bip {
            Some(b) => berth_net::ipam::parse_cidr_address(b)?,
            None => {
                let existing = nets
                    .find("bridge")
                    .and_then(|n| Some((n.gateway.parse().ok()?, n.subnet.parse().ok()?)));
                match existing {
                    Some(x) => x,
                    None => {
                        let s = nets.free_subnet(&nets.config.bridge).ok_or_else(|| {
                            anyhow::anyhow!("no free subnet for the default bridge; give --bip")
                        })?;
                        (s.nth(1).unwrap_or(s.network()), s)
                    }
                }
            }
        };
        let mut bridge = nets
            .find("bridge")
            .unwrap_or_else(|| Network::new("bridge", "bridge"));
        bridge.bridge = nets.config.bridge.clone();
        bridge.subnet = subnet.to_string();
        bridge.gateway = gateway.to_string();
        bridge.options = [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", &nets.config.bridge),
            (
                "com.docker.network.driver.mtu",
                &nets.config.mtu.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        nets.store(&bridge)?;
        Ok(nets)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a record and puts it in the table.
    pub fn store(&self, n: &Network) -> anyhow::Result<()> {
        let path = self.root.join(format!("{}.json", n.id));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(n)?)?;
        std::fs::rename(&tmp, &path)?;
        let mut inner = self.lock();
        if let Some(p) = n.pool() {
            inner.pools.entry(n.id.clone()).or_insert(p);
        }
        if let Some(p) = n.pool6() {
            inner.pools6.entry(n.id.clone()).or_insert(p);
        }
        inner.nets.insert(n.id.clone(), n.clone());
        Ok(())
    }

    /// Forgets a network (its bridge and DNS server are the caller's to stop).
    pub fn delete(&self, id: &str) {
        let _ = std::fs::remove_file(self.root.join(format!("{id}.json")));
        let mut inner = self.lock();
        inner.nets.remove(id);
        inner.pools.remove(id);
        inner.pools6.remove(id);
        inner.names.remove(id);
        if let Some(t) = inner.dns.remove(id) {
            t.abort();
        }
    }

    /// By full id, exact name, or unique id prefix — Docker's order.
    pub fn find(&self, key: &str) -> Option<Network> {
        let inner = self.lock();
        if let Some(n) = inner.nets.get(key) {
            return Some(n.clone());
        }
        if let Some(n) = inner.nets.values().find(|n| n.name == key) {
            return Some(n.clone());
        }
        let mut by_prefix = inner
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }

    pub fn all(&self) -> Vec<Network> {
        let mut v: Vec<Network> = self.lock().nets.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A subnet overlapping `s` among the networks and the host's routes (except through
    /// `own_bridge`), described for the error message.
    pub fn overlap(&self, s: &Subnet, own_bridge: &str) -> Option<String> {
        for n in self.lock().nets.values() {
            if let Ok(other) = n.subnet.parse::<Subnet>() {
                if other.overlaps(s) && n.bridge != own_bridge {
                    return Some(format!("network {}", n.name));
                }
            }
        }
        host_routes()
            .into_iter()
            .find(|(r, dev)| r.overlaps(s) && dev != own_bridge && r.prefix() > 0)
            .map(|(r, dev)| format!("route {r} on {dev}"))
    }

    /// The network whose IPv6 subnet overlaps `s`.
    pub fn overlap6(&self, s: &Subnet6) -> Option<String> {
        self.lock()
            .nets
            .values()
            .find(|n| n.subnet6.parse::<Subnet6>().is_ok_and(|o| o.overlaps(s)))
            .map(|n| format!("network {}", n.name))
    }

    /// The first subnet of the daemon's pool that nothing uses.
    pub fn free_subnet(&self, own_bridge: &str) -> Option<Subnet> {
        pool_subnets(&self.config).find(|s| self.overlap(s, own_bridge).is_none())
    }

    /// Takes an address of a network: the given one or the next free.
    pub fn allocate(
        &self,
        net_id: &str,
        fixed: Option<Ipv4Addr>,
    ) -> Result<(Ipv4Addr, u8, Ipv4Addr), Error> {
        let mut inner = self.lock();
        let pool = inner
            .pools
            .get_mut(net_id)
            .ok_or_else(|| Error::not_found(format!("network {net_id} not found")))?;
        let ip = match fixed {
            Some(ip) => pool.reserve(ip).map(|()| ip),
            None => pool.allocate(),
        }
        .map_err(|e| Error::invalid(e.to_string()))?;
        Ok((ip, pool.subnet().prefix(), pool.gateway()))
    }

    pub fn release(&self, net_id: &str, ip: Ipv4Addr) {
        if let Some(p) = self.lock().pools.get_mut(net_id) {
            p.release(ip);
        }
    }

    /// Takes an IPv6 address of a network with `EnableIPv6` (the given one or the next free),
    /// with its prefix and gateway; None for a network without IPv6 (whatever was given).
    pub fn allocate6(
        &self,
        net_id: &str,
        fixed: Option<Ipv6Addr>,
    ) -> Result<Option<(Ipv6Addr, u8, Ipv6Addr)>, Error> {
        let mut inner = self.lock();
        let Some(pool) = inner.pools6.get_mut(net_id) else {
            return Ok(None); // no IPv6 here: a given address is only recorded, as dockerd does
        };
        let ip = match fixed {
            Some(ip) => pool.reserve(ip).map(|()| ip),
            None => pool.allocate(),
        }
        .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Some((ip, pool.subnet().prefix(), pool.gateway())))
    }

    pub fn release6(&self, net_id: &str, ip: Ipv6Addr) {
        if let Some(p) = self.lock().pools6.get_mut(net_id) {
            p.release(ip);
        }
    }

    /// Adds or removes a container's names on a network's DNS.
    pub fn set_names(&self, net_id: &str, names: &[String], ip: IpAddr, add: bool) {
        let mut inner = self.lock();
        let table = inner.names.entry(net_id.to_string()).or_default();
        for n in names {
            let key = n.to_ascii_lowercase();
            let ips = table.entry(key.clone()).or_default();
            ips.retain(|x| *x != ip);
            if add {
                ips.push(ip);
            } else if ips.is_empty() {
                table.remove(&key);
            }
        }
    }

    /// Sets (or, empty, removes) the link aliases the container at `ip` resolves on a network.
    pub fn set_link_aliases(&self, net_id: &str, ip: Ipv4Addr, aliases: Vec<(String, String)>) {
        let mut inner = self.lock();
        let key = (net_id.to_string(), ip);
        match aliases.is_empty() {
            true => inner.link_aliases.remove(&key),
            false => inner.link_aliases.insert(key, aliases),
        };
    }

    /// The addresses of `name` on a network, as the container at `from` sees it (its link
    /// aliases first).
    fn lookup(&self, net_id: &str, name: &str, from: Ipv4Addr) -> Option<Vec<IpAddr>> {
        let inner = self.lock();
        let target = inner
            .link_aliases
            .get(&(net_id.to_string(), from))
            .and_then(|l| l.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)))
            .map_or(name.to_string(), |(_, target)| target.to_ascii_lowercase());
        let ips = inner.names.get(net_id)?.get(&target)?;
        (!ips.is_empty()).then(|| ips.clone())
    }

    /// Reserves the host side of published ports for a container: a bound socket per port
    /// (so nothing else can take it, and port 0 gets a free one). All or nothing.
    pub fn hold_ports(
        &self,
        container: &str,
        want: Vec<Published>,
    ) -> Result<Vec<Published>, Error> {
        let mut inner = self.lock();
        let mut got: Vec<(Published, OwnedFd)> = vec![];
        for mut p in want {
            let taken = inner
                .held
                .values()
                .flatten()
                .chain(got.iter())
                .any(|(q, _)| {
                    q.proto == p.proto
                        && q.host_port == p.host_port
                        && p.host_port != 0
                        && (q.host_ip.is_empty() || p.host_ip.is_empty() || q.host_ip == p.host_ip)
                });
            let bound = if taken {
                Err(rustix::io::Errno::ADDRINUSE)
            } else {
                bind_port(&p)
            };
            match bound {
                Ok((fd, port)) => {
                    p.host_port = port;
                    got.push((p, fd));
                }
                Err(e) => {
                    let ip = if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    };
                    let why = if e == rustix::io::Errno::ADDRINUSE {
                        "port is already allocated".to_string()
                    } else {
                        std::io::Error::from(e).to_string()
                    };
                    return Err(Error::internal(format!(
                        "driver failed programming external connectivity on endpoint {container}: Bind for {ip}:{} failed: {why}",
                        p.host_port
                    )));
                }
            }
        }
        let out = got.iter().map(|(p, _)| p.clone()).collect();
        if !got.is_empty() {
            inner.held.insert(container.to_string(), got);
        }
        Ok(out)
    }

    /// Lets go of a container's ports; whether it had any.
    pub fn drop_ports(&self, container: &str) -> bool {
        self.lock().held.remove(container).is_some()
    }

    /// The nftables state for the current networks and ports.
    pub fn firewall(&self) -> nft::Firewall {
        let inner = self.lock();
        nft::Firewall {
            forward_only_bridges: self.config.forward_only_bridges,
            networks: inner
                .nets
                .values()
                .filter(|n| n.driver == "bridge")
                .filter_map(|n| {
                    Some(nft::BridgeRules {
                        bridge: n.bridge.clone(),
                        subnet: n.subnet.parse().ok()?,
                        subnet6: n.v6().map(|(s, _)| s),
                        internal: n.internal,
                    })
                })
                .collect(),
            ports: inner
                .held
                .values()
                .flatten()
                .map(|(p, _)| nft::PortMap {
                    udp: p.proto == "udp",
                    host_ip: p.host_ip.parse().ok(),
                    host_port: p.host_port,
                    addr: p.addr,
                    port: p.port,
                })
                .collect(),
        }
    }

    /// The containers that hold published ports (their rules are in the firewall).
    pub fn port_holders(&self) -> Vec<String> {
        self.lock().held.keys().cloned().collect()
    }
}

/// Replaces the daemon's nftables table with the current state.
pub async fn apply_firewall(nets: &Arc<Networks>) -> Result<(), Error> {
    let fw = nets.firewall();
    let table = nets.table.clone();
    tokio::task::spawn_blocking(move || nft::apply(&table, &fw))
        .await
        .map_err(ierr)?
        .map_err(|e| Error::internal(format!("programming the firewall: {e}")))
}

/// Brings up a bridge network's device.
pub async fn ensure_bridge(nets: &Networks, n: &Network) -> Result<(), Error> {
    let (subnet, gateway): (Subnet, Ipv4Addr) = match (n.subnet.parse(), n.gateway.parse()) {
        (Ok(s), Ok(g)) => (s, g),
        _ => {
            return Err(Error::internal(format!(
                "network {} has no valid subnet",
                n.name
            )));
        }
    };
    let (bridge, mtu) = (n.bridge.clone(), nets.config.mtu);
    let v6 = n.v6().map(|(s, gw)| (gw, s.prefix()));
    tokio::task::spawn_blocking(move || {
        berth_net::netns::ensure_bridge(&bridge, gateway, subnet, v6, mtu)
    })
    .await
    .map_err(ierr)?
    .map(drop)
    .map_err(|e| Error::internal(format!("creating bridge {}: {e}", n.bridge)))
}

/// Starts the DNS server of a user-defined network on its gateway address.
pub async fn start_dns(nets: &Arc<Networks>, n: &Network) {
    let (Ok(gw), Ok(subnet)) = (n.gateway.parse::<Ipv4Addr>(), n.subnet.parse::<Subnet>()) else {
        return;
    };
    let sock = match tokio::net::UdpSocket::bind((gw, 53)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(network = n.name, error = %e, "no embedded DNS on this network");
            return;
        }
    };
    let (weak, id) = (Arc::downgrade(nets), n.id.clone());
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((len, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let asker = match from.ip() {
                std::net::IpAddr::V4(a) if subnet.contains(a) => a,
                _ => continue,
            };
            let Some(nets) = weak.upgrade() else { return };
            let lookup = NetLookup {
                nets: &nets,
                id: &id,
                asker,
            };
            if let Some(reply) = berth_net::dns::answer(&buf[..len], &lookup) {
                let _ = sock.send_to(&reply, from).await;
            }
        }
    });
    if let Some(old) = nets.lock().dns.insert(n.id.clone(), task) {
        old.abort();
    }
}

/// Names on one network as the container at `asker` looks them up.
struct NetLookup<'a> {
    nets: &'a Networks,
    id: &'a str,
    asker: Ipv4Addr,
}

impl berth_net::dns::Lookup for NetLookup<'_> {
    fn lookup_v4(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let all = self.nets.lookup(self.id, name, self.asker)?;
        Some(
            all.into_iter()
                .filter_map(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        )
    }
    fn lookup_v6(&self, name: &str) -> Vec<Ipv6Addr> {
        let all = self
            .nets
            .lookup(self.id, name, self.asker)
            .unwrap_or_default();
        all.into_iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            })
            .collect()
    }
}

/// Binds a socket for a published port; returns it with the port (chosen by the kernel for 0).
fn bind_port(p: &Published) -> Result<(OwnedFd, u16), rustix::io::Errno> {
    use rustix::net::{AddressFamily, SocketAddrV4, SocketType};
    let kind = if p.proto == "udp" {
        SocketType::DGRAM
    } else {
        SocketType::STREAM
    };
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        kind,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    let ip: Ipv4Addr = p.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    rustix::net::bind(&fd, &SocketAddrV4::new(ip, p.host_port))?;
    let port = std::net::SocketAddr::try_from(rustix::net::getsockname(&fd)?)
        .map(|s| s.port())
        .unwrap_or(p.host_port);
    Ok((fd, port))
}

/// The host's IPv4 routes: destination subnet and device.
fn host_routes() -> Vec<(Subnet, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(u32::from_be(v)))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = hex(f.get(1)?)?;
            let mask = u32::from(hex(f.get(7)?)?);
            Some((
                Subnet::new(dst, mask.count_ones() as u8).ok()?,
                f[0].to_string(),
            ))
        })
        .collect()
}

/// The subnets of the address pool in the order they are handed out: from the pool's given
/// address to its end, then (so that nothing of the pool is lost) its start.
fn pool_subnets(config: &Config) -> impl Iterator<Item = Subnet> + '_ {
    let all = (0..4096).map_while(|i| config.pool.split(config.pool_prefix, i));
    let start = u32::from(config.pool_start);
    let before = move |s: &Subnet| {
        let end = u32::from(s.network()) | (u32::MAX >> s.prefix());
        end < start
    };
    all.clone()
        .filter(move |s| !before(s))
        .chain(all.filter(move |s| before(s)))
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn subnets_start_at_the_pools_given_address_as_dockers_default_bridge() {
        let config = |base: &str| Config {
            bridge: "b".into(),
            bip: None,
            pool: base.parse().unwrap(),
            pool_prefix: 16,
            pool_start: base.split('/').next().unwrap().parse().unwrap(),
            mtu: 1500,
            forward_only_bridges: false,
        };
        let c = config("172.17.0.0/12");
        let got: Vec<String> = pool_subnets(&c).map(|s| s.to_string()).collect();
        assert_eq!(got.len(), 16);
        assert_eq!(got[0], "172.17.0.0/16");
        assert_eq!(got[14], "172.31.0.0/16");
        assert_eq!(got[15], "172.16.0.0/16");
        let c = config("10.10.0.0/16");
        let first = pool_subnets(&c).next().unwrap().to_string();
        assert_eq!(first, "10.10.0.0/16");
    }
}
