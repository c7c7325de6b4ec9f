//! A container's networking: which networks a create request asks for (`attachments`), the
//! pinned namespace with an address per network before its task is created (`prepare`), one
//! veth endpoint per network while it is created (`plug`), published ports, `/etc/hosts` and `/etc/resolv.conf` for it, and `teardown` when it stops
//! (veths, namespace, addresses, ports, DNS names: nothing stays). Also the container's
//! `NetworkSettings` and `Ports` in Docker's JSON.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::host_config::NetworkingConfig;
use berth_api::models::EndpointSettings as EndpointRequest;
use berth_api::responses::{
    EndpointIpamConfig, EndpointSettings, NetworkSettings, PortBinding, PortSummary,
};
use berth_net::ipam::{mac_for, mac_string};
use berth_net::netns::{self, Endpoint};

use crate::engine::Daemon;
use crate::engine::store::Record;
use crate::model::Error;
use crate::net::{Attachment, EndpointState, Network, Published, apply_firewall};

fn ierr(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

/// The network a `NetworkMode` names (`default` and empty mean `bridge`).
pub fn mode_network(mode: &str) -> &str {
    match mode {
        "" | "default" => "bridge",
        m => m,
    }
}

/// The attachments a create request asks for, validated against the networks that exist.
pub fn attachments(
    d: &Daemon,
    mode: &str,
    networking: Option<&NetworkingConfig>,
) -> Result<Vec<Attachment>, Error> {
    if let Some(other) = mode.strip_prefix("container:") {
        d.containers.find(other)?;
        return Ok(vec![]);
    }
    let primary = mode_network(mode).to_string();
    let mut names = vec![primary.clone()];
    let eps = networking.and_then(|n| n.endpoints_config.as_ref());
    for k in eps.into_iter().flat_map(|m| m.keys()) {
        if *k != primary && !(primary == "bridge" && k == "default") {
            names.push(k.clone());
        }
    }
    let mut out = vec![];
    for name in names {
        let net = d
            .networks
            .find(&name)
            .ok_or_else(|| Error::not_found(format!("network {name} not found")))?;
        if !out.is_empty() && net.driver != "bridge" {
            return Err(Error::invalid(format!(
                "container cannot be connected to network {name} and to others"
            )));
        }
        let cfg = eps
            .and_then(|m| {
                m.get(&name)
                    .or_else(|| m.get(&net.name))
                    .or_else(|| m.get(mode).filter(|_| out.is_empty()))
                    // The CLI keys the default network's settings by its mode, `default`.
                    .or_else(|| m.get("default").filter(|_| net.name == "bridge"))
            })
            .cloned()
            .unwrap_or_default();
        out.push(attachment_from(&net, &cfg)?);
    }
    Ok(out)
}

/// One attachment from an `EndpointSettings`-shaped request.
pub fn attachment_from(net: &Network, cfg: &EndpointRequest) -> Result<Attachment, Error> {
    let aliases = cfg.aliases.clone().unwrap_or_default();
    let ipam = cfg.ipam_config.as_ref();
    let ipv4 = ipam
        .and_then(|i| i.ipv4_address.clone())
        .unwrap_or_default();
    let ipv6 = ipam
        .and_then(|i| i.ipv6_address.clone())
        .unwrap_or_default();
    let link_local = ipam
        .and_then(|i| i.link_local_ips.clone())
        .unwrap_or_default();
    if !net.user_defined_bridge() {
        if !ipv4.is_empty() || !ipv6.is_empty() {
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if !aliases.is_empty() {
            return Err(Error::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
    }
    if !ipv4.is_empty() {
        let ip: Ipv4Addr = ipv4
            .parse()
            .map_err(|_| Error::invalid(format!("invalid IPv4 address: {ipv4}")))?;
        let subnet: berth_net::ipam::Subnet = net.subnet.parse().map_err(ierr)?;
        if !subnet.contains(ip) {
            return Err(Error::invalid(format!(
                "no configured subnet contains IP address {ip}"
            )));
        }
    }
    check_ipv6(net, &ipv6)?;
    for ip in &link_local {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(format!(
                "invalid link-local IP address: {ip}"
            )));
        }
    }
    let mac = cfg.mac_address.as_deref().filter(|m| !m.is_empty());
    if let Some(m) = mac {
        if parse_mac(m).is_none() {
            return Err(Error::invalid(format!("invalid MAC address: {m}")));
        }
    }
    let driver_opts = cfg
        .driver_opts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(Attachment {
        network: net.name.clone(),
        network_id: net.id.clone(),
        aliases,
        ipv4,
        ipv6,
        link_local,
        mac: mac.map(str::to_string),
        links: cfg.links.clone().unwrap_or_default(),
        driver_opts,
        endpoint: None,
    })
}

/// `--ip6`: an IPv6 address, inside the network's IPv6 subnet on a network with `EnableIPv6`.
fn check_ipv6(net: &Network, ipv6: &str) -> Result<(), Error> {
    if ipv6.is_empty() {
        return Ok(());
    }
    let ip: Ipv6Addr = ipv6
        .parse()
        .map_err(|_| Error::invalid(format!("invalid IPv6 address: {ipv6}")))?;
    // On a network without IPv6 the address is kept (and shown) but not given, as dockerd does.
    match net.v6() {
        Some((subnet, _)) if !subnet.contains(ip) => Err(Error::invalid(format!(
            "no configured subnet contains IP address {ip}"
        ))),
        _ => Ok(()),
    }
}

/// Where a container's pinned namespace lives.
pub fn netns_path(d: &Daemon, id: &str) -> PathBuf {
    d.networks.netns_dir.join(id)
}

/// The network namespace a container's task joins: None for the host's or a private one the
/// runtime makes (`none`); the pinned namespace [`prepare`] makes for bridge networks; another
/// running container's for `container:<id>`. Known before anything is made, so the task's spec
/// can be written while [`prepare`] works.
pub async fn planned(d: &Arc<Daemon>, rec: &Record) -> Result<Option<String>, Error> {
    let mode = rec.host_config.network_mode.as_str();
    if let Some(other) = mode.strip_prefix("container:") {
        let h = d.containers.find(other)?;
        let o = h.lock().await;
        if !o.running() {
            return Err(Error::conflict(format!(
                "cannot join network of a non running container: {}",
                o.id
            )));
        }
        let pinned = netns_path(d, &o.id);
        return Ok(Some(if pinned.exists() {
            pinned.display().to_string()
        } else {
            format!("/proc/{}/ns/net", o.state.pid)
        }));
    }
    Ok((!bridged(d, rec).is_empty()).then(|| netns_path(d, &rec.id).display().to_string()))
}

/// The indices of a record's attachments to bridge networks.
fn bridged(d: &Daemon, rec: &Record) -> Vec<usize> {
    (0..rec.networks.len())
        .filter(|&i| {
            d.networks
                .find(&rec.networks[i].network_id)
                .is_some_and(|n| n.driver == "bridge")
        })
        .collect()
}

/// What [`prepare`] leaves to [`plug`]: the endpoints to make inside the namespace, with the
/// names of their networks.
pub struct Pending {
    ns: PathBuf,
    endpoints: Vec<(String, netns::Endpoint)>,
}

/// The first half of making the network namespace of [`planned`] ready when it is the
/// container's own (the second is [`plug`]), all a task's creation needs: the pinned namespace, an address
/// per bridge network (recorded as the record's endpoints, with their DNS names), `/etc/hosts`
/// and `resolv.conf` (with the hosts of its resolved legacy `links`). None when the namespace
/// is not the container's own. On error nothing is left.
pub async fn prepare(
    d: &Arc<Daemon>,
    rec: &mut Record,
    links: &[crate::engine::links::Resolved],
) -> Result<Option<Pending>, Error> {
    let mode = rec.host_config.network_mode.as_str();
    if mode.starts_with("container:") {
        return Ok(None);
    }
    let bridged = bridged(d, rec);
    if bridged.is_empty() {
        return Ok(None);
    }
    let ns = netns_path(d, &rec.id);
    let ns2 = ns.clone();
    tokio::task::spawn_blocking(move || netns::create(&ns2))
        .await
        .map_err(ierr)?
        .map_err(|e| Error::internal(format!("creating the network namespace: {e}")))?;
    let mut endpoints = Vec::new();
    let planned = (|| {
        for (n, &i) in bridged.iter().enumerate() {
            endpoints.push(plan_endpoint(d, rec, i, n == 0)?);
        }
        reserve_ports(d, rec)?;
        write_net_files(d, rec, links)
    })();
    if let Err(e) = planned {
        teardown(d, rec).await;
        return Err(e);
    }
    Ok(Some(Pending { ns, endpoints }))
}

/// The second half after [`prepare`]: each endpoint's veth pair, its addresses and routes
/// inside the namespace, and the firewall rules of its published ports. On error the caller
/// tears the network down ([`teardown`]) once nothing else uses the namespace.
pub async fn plug(d: &Arc<Daemon>, rec: &Record, p: Pending) -> Result<(), Error> {
    for (net, ep) in p.endpoints {
        attach_endpoint(&p.ns, ep, &net).await?;
    }
    if !rec.ports.is_empty() {
        apply_firewall(&d.networks).await?;
    }
    Ok(())
}

/// Makes the endpoint of attachment `i` inside the namespace `ns` (`network connect` of a
/// running container). On error nothing of it is left.
pub async fn connect_endpoint(
    d: &Arc<Daemon>,
    rec: &mut Record,
    i: usize,
    ns: &Path,
    primary: bool,
) -> Result<(), Error> {
    let (net, ep) = plan_endpoint(d, rec, i, primary)?;
    if let Err(e) = attach_endpoint(ns, ep, &net).await {
        if let Some(state) = rec.networks[i].endpoint.take() {
            let att = rec.networks[i].clone();
            unpublish(d, rec, &att, &state);
        }
        return Err(e);
    }
    Ok(())
}

/// Gives attachment `i` its endpoint on paper: an address from its network, an interface name
/// and MAC, recorded in the record with its DNS names. Returns the network's name and what
/// [`attach_endpoint`] makes of it.
fn plan_endpoint(
    d: &Arc<Daemon>,
    rec: &mut Record,
    i: usize,
    primary: bool,
) -> Result<(String, netns::Endpoint), Error> {
    let att = rec.networks[i].clone();
    let net = d
        .networks
        .find(&att.network_id)
        .ok_or_else(|| Error::not_found(format!("network {} not found", att.network)))?;
    let fixed = att.ipv4.parse().ok();
    let (address, prefix, gateway) = d.networks.allocate(&net.id, fixed)?;
    let v6 = match d.networks.allocate6(&net.id, att.ipv6.parse().ok()) {
        Ok(v6) => v6,
        Err(e) => {
            d.networks.release(&net.id, address);
            return Err(e);
        }
    };
    let used: Vec<&str> = rec
        .networks
        .iter()
        .filter_map(|a| a.endpoint.as_ref().map(|e| e.ifname.as_str()))
        .collect();
    let ifname = (0..)
        .map(|n| format!("eth{n}"))
        .find(|n| !used.contains(&n.as_str()))
        .unwrap_or_default();
    let endpoint_id = crate::engine::store::new_id();
    // `--mac-address`: the container's config (primary network) or the endpoint's settings.
    let own_mac = Some(rec.config.mac_address.as_str()).filter(|m| !m.is_empty());
    let mac = match (primary, own_mac) {
        (true, Some(m)) if !m.is_empty() => parse_mac(m),
        _ => att.mac.as_deref().and_then(parse_mac),
    }
    .unwrap_or(mac_for(address));
    let ep = Endpoint {
        bridge: net.bridge.clone(),
        host_ifname: format!("vb{}", &endpoint_id[..11]),
        ifname,
        address,
        prefix,
        mac,
        gateway: (primary && !net.internal).then_some(gateway),
        address6: v6.map(|(a, p, _)| (a, p)),
        gateway6: v6.filter(|_| primary && !net.internal).map(|(_, _, g)| g),
        link_local: att
            .link_local
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        mtu: d.networks.config.mtu,
    };
    if net.user_defined_bridge() {
        publish_names(d, rec, &att, address, true);
        if let Some((a, _, _)) = v6 {
            d.networks
                .set_names(&att.network_id, &dns_names(rec, &att), a.into(), true);
        }
    }
    rec.networks[i].endpoint = Some(EndpointState {
        id: endpoint_id,
        address,
        prefix,
        gateway,
        v6,
        mac: mac_string(ep.mac),
        host_ifname: ep.host_ifname.clone(),
        ifname: ep.ifname.clone(),
    });
    Ok((net.name.clone(), ep))
}

/// Makes a planned endpoint: its veth pair, one end moved into `ns` with its address and routes.
async fn attach_endpoint(ns: &Path, ep: netns::Endpoint, net: &str) -> Result<(), Error> {
    let ns = ns.to_path_buf();
    let net = net.to_string();
    tokio::task::spawn_blocking(move || netns::attach(&ns, &ep))
        .await
        .map_err(ierr)?
        .map_err(|e| Error::internal(format!("attaching to {net}: {e}")))
}

/// `02:42:ac:11:00:02` → bytes; None unless six hex pairs.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Takes a planned endpoint's names and addresses back (its veth was never made).
fn unpublish(d: &Daemon, rec: &Record, att: &Attachment, state: &EndpointState) {
    publish_names(d, rec, att, state.address, false);
    d.networks.release(&att.network_id, state.address);
    if let Some((a, _, _)) = state.v6 {
        d.networks
            .set_names(&att.network_id, &dns_names(rec, att), a.into(), false);
        d.networks.release6(&att.network_id, a);
    }
}

/// Puts a container's names on (or takes them off) a network's DNS at `ip`, with the link
/// aliases it alone resolves there.
fn publish_names(d: &Daemon, rec: &Record, att: &Attachment, ip: Ipv4Addr, add: bool) {
    d.networks
        .set_names(&att.network_id, &dns_names(rec, att), ip.into(), add);
    let aliases = match add {
        true => att
            .links
            .iter()
            .filter_map(|l| crate::engine::links::parse(l).ok())
            .map(|(name, alias)| (alias, name))
            .collect(),
        false => Vec::new(),
    };
    d.networks.set_link_aliases(&att.network_id, ip, aliases);
}

fn dns_names(rec: &Record, att: &Attachment) -> Vec<String> {
    let mut v = vec![rec.name.clone(), rec.id[..12].to_string()];
    v.extend(att.aliases.iter().cloned());
    v
}

/// Removes the endpoint of attachment `i`; its address goes back to the pool once the veth is
/// gone. Deleting a link waits for the kernel's RCU grace periods (20–40 ms here): with
/// `background` that happens after the caller has moved on (a stopped container's namespace is
/// going away anyway), else before this returns (a running container's `network disconnect`).
pub async fn disconnect_endpoint(d: &Daemon, rec: &mut Record, i: usize, background: bool) {
    let Some(ep) = rec.networks[i].endpoint.take() else {
        return;
    };
    let att = rec.networks[i].clone();
    let names = dns_names(rec, &att);
    publish_names(d, rec, &att, ep.address, false);
    let (nets, id) = (d.networks.clone(), rec.id.clone());
    let unplug = async move {
        let host = ep.host_ifname.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || netns::detach(&host)).await {
            tracing::warn!(container = id, error = %e, "removing a veth");
        }
        nets.release(&att.network_id, ep.address);
        if let Some((a, _, _)) = ep.v6 {
            nets.set_names(&att.network_id, &names, a.into(), false);
            nets.release6(&att.network_id, a);
        }
    };
    if background {
        tokio::spawn(unplug);
    } else {
        unplug.await;
    }
}

/// Everything `prepare` and `plug` made, undone; fine to call when nothing was made.
pub async fn teardown(d: &Daemon, rec: &mut Record) {
    for i in 0..rec.networks.len() {
        disconnect_endpoint(d, rec, i, true).await;
    }
    let had_ports = d.networks.drop_ports(&rec.id);
    rec.ports.clear();
    if had_ports {
        let nets = d.networks.clone();
        if let Err(e) = apply_firewall(&nets).await {
            tracing::warn!(
                container = rec.id,
                error = e.message(),
                "removing port rules"
            );
        }
    }
    let ns = netns_path(d, &rec.id);
    if ns.exists() {
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || netns::remove(&ns)).await {
            tracing::warn!(container = rec.id, error = %e, "removing the network namespace");
        }
    }
}

/// The ports a container exposes (its config's, which include its image's).
fn exposed(rec: &Record) -> Vec<String> {
    rec.config
        .exposed_ports
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// `80/tcp` → (80, "tcp").
fn port_proto(key: &str) -> Option<(u16, String)> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = proto.to_ascii_lowercase();
    (proto == "tcp" || proto == "udp").then_some(())?;
    Some((p.parse().ok()?, proto))
}

/// Reserves the host ports of `PortBindings` (and of every exposed port with
/// `PublishAllPorts`) for the primary endpoint's address; [`plug`] applies their rules.
fn reserve_ports(d: &Arc<Daemon>, rec: &mut Record) -> Result<(), Error> {
    let Some(addr) = rec
        .networks
        .iter()
        .find_map(|a| a.endpoint.as_ref().map(|e| e.address))
    else {
        return Ok(());
    };
    let mut want = vec![];
    if let Some(m) = &rec.host_config.port_bindings {
        for (key, binds) in m {
            let (port, proto) = port_proto(key)
                .ok_or_else(|| Error::invalid(format!("invalid port specification: {key:?}")))?;
            for b in binds.iter().flatten() {
                let host_ip = b.host_ip.as_str();
                let host_ip = if host_ip == "0.0.0.0" { "" } else { host_ip };
                if !host_ip.is_empty() && host_ip.parse::<Ipv4Addr>().is_err() {
                    return Err(Error::invalid(format!(
                        "invalid host IP {host_ip:?}: only IPv4 is supported"
                    )));
                }
                let hp = b.host_port.as_str();
                let host_port = if hp.is_empty() {
                    0
                } else {
                    hp.parse().map_err(|_| {
                        Error::invalid(format!("invalid port specification: {hp:?}"))
                    })?
                };
                want.push(Published {
                    proto: proto.clone(),
                    host_ip: host_ip.into(),
                    host_port,
                    port,
                    addr,
                });
            }
        }
    }
    if rec.host_config.publish_all_ports {
        for key in exposed(rec) {
            if let Some((port, proto)) = port_proto(&key) {
                if !want.iter().any(|w| w.port == port && w.proto == proto) {
                    want.push(Published {
                        proto,
                        host_ip: String::new(),
                        host_port: 0,
                        port,
                        addr,
                    });
                }
            }
        }
    }
    if want.is_empty() {
        return Ok(());
    }
    rec.ports = d.networks.hold_ports(&rec.id, want)?;
    Ok(())
}

/// A container's `ExtraHosts` as `/etc/hosts` lines (`host-gateway`: the default bridge's
/// gateway).
pub fn extra_hosts(d: &Daemon, hc: &berth_api::host_config::HostConfig) -> Result<String, Error> {
    let entries = hc.extra_hosts.as_deref().unwrap_or_default();
    if entries.is_empty() {
        return Ok(String::new());
    }
    let gateway = d
        .networks
        .find("bridge")
        .map(|n| n.gateway)
        .unwrap_or_default();
    crate::oci::rootfs::extra_hosts(entries, &gateway)
}

/// `/etc/hosts` with the container's addresses, and `/etc/resolv.conf` pointing at the
/// network's DNS (user-defined networks) or the host's resolvers (the default bridge).
fn write_net_files(
    d: &Daemon,
    rec: &Record,
    links: &[crate::engine::links::Resolved],
) -> Result<(), Error> {
    let dir = d.containers.dir(&rec.id);
    let hostname = rec.config.hostname.as_str();
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    hosts.push_str(&extra_hosts(d, &rec.host_config)?);
    for l in links {
        hosts.push_str(&crate::engine::links::hosts_line(l));
    }
    for a in &rec.networks {
        if let Some(ep) = &a.endpoint {
            hosts.push_str(&format!("{}\t{hostname}\n", ep.address));
            if let Some((a, _, _)) = ep.v6 {
                hosts.push_str(&format!("{a}\t{hostname}\n"));
            }
        }
    }
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| Error::internal(format!("writing {}: {e}", p.display())))
    };
    w("hosts", hosts)?;
    let dns = rec.networks.iter().find_map(|a| {
        let n = d.networks.find(&a.network_id)?;
        (n.user_defined_bridge() && a.endpoint.is_some()).then_some(n.gateway)
    });
    if let Some(gw) = dns {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let settings = crate::oci::rootfs::dns_settings(&rec.host_config);
        w(
            "resolv.conf",
            crate::oci::rootfs::resolv_conf(&host, &settings, Some(&gw)),
        )?;
    }
    Ok(())
}

/// `NetworkSettings.Networks` of a container.
pub fn networks_view(rec: &Record) -> BTreeMap<String, EndpointSettings> {
    rec.networks
        .iter()
        .map(|a| {
            let ep = a.endpoint.as_ref();
            let v6 = ep.and_then(|e| e.v6);
            let settings = EndpointSettings {
                ipam_config: (!a.ipv4.is_empty() || !a.ipv6.is_empty() || !a.link_local.is_empty())
                    .then(|| EndpointIpamConfig {
                        ipv4_address: a.ipv4.clone(),
                        ipv6_address: a.ipv6.clone(),
                        link_local_ips: a.link_local.clone(),
                    }),
                links: (!a.links.is_empty()).then(|| a.links.clone()),
                aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
                network_id: a.network_id.clone(),
                endpoint_id: ep.map(|e| e.id.clone()).unwrap_or_default(),
                gateway: ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
                ip_address: ep.map(|e| e.address.to_string()).unwrap_or_default(),
                ip_prefix_len: ep.map_or(0, |e| e.prefix),
                ipv6_gateway: v6.map(|(_, _, g)| g.to_string()).unwrap_or_default(),
                global_ipv6_address: v6.map(|(a, _, _)| a.to_string()).unwrap_or_default(),
                global_ipv6_prefix_len: v6.map_or(0, |(_, p, _)| p),
                mac_address: ep
                    .map(|e| e.mac.clone())
                    .or_else(|| a.mac.clone())
                    .unwrap_or_default(),
                driver_opts: (!a.driver_opts.is_empty()).then(|| a.driver_opts.clone()),
            };
            (a.network.clone(), settings)
        })
        .collect()
}

/// `NetworkSettings` of a container's inspect.
pub fn settings_view(d: &Daemon, rec: &Record) -> NetworkSettings {
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    if rec.running() {
        for key in exposed(rec) {
            ports.insert(key, None);
        }
        for p in &rec.ports {
            let binding = PortBinding {
                host_ip: match p.host_ip.as_str() {
                    "" => "0.0.0.0".into(),
                    ip => ip.into(),
                },
                host_port: p.host_port.to_string(),
            };
            let key = format!("{}/{}", p.port, p.proto);
            ports
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
    }
    let default = rec
        .networks
        .iter()
        .find(|a| a.network == "bridge")
        .and_then(|a| a.endpoint.as_ref());
    let sandbox = netns_path(d, &rec.id);
    NetworkSettings {
        sandbox_id: if rec.running() {
            rec.id.clone()
        } else {
            String::new()
        },
        ports,
        sandbox_key: match sandbox.exists() {
            true => sandbox.display().to_string(),
            false => String::new(),
        },
        endpoint_id: default.map(|e| e.id.clone()).unwrap_or_default(),
        gateway: default.map(|e| e.gateway.to_string()).unwrap_or_default(),
        ip_address: default.map(|e| e.address.to_string()).unwrap_or_default(),
        ip_prefix_len: default.map_or(0, |e| e.prefix),
        ipv6_gateway: default
            .and_then(|e| e.v6)
            .map(|(_, _, g)| g.to_string())
            .unwrap_or_default(),
        global_ipv6_address: default
            .and_then(|e| e.v6)
            .map(|(a, _, _)| a.to_string())
            .unwrap_or_default(),
        global_ipv6_prefix_len: default.and_then(|e| e.v6).map_or(0, |(_, p, _)| p),
        mac_address: default.map(|e| e.mac.clone()).unwrap_or_default(),
        networks: networks_view(rec),
        ..Default::default()
    }
}

/// `Ports` of a container in the list (`docker ps`).
pub fn ports_view(rec: &Record) -> Vec<PortSummary> {
    rec.ports
        .iter()
        .map(|p| PortSummary {
            ip: match p.host_ip.as_str() {
                "" => "0.0.0.0".into(),
                ip => ip.into(),
            },
            private_port: p.port,
            public_port: p.host_port,
            kind: p.proto.clone(),
        })
        .collect()
}

/// After a daemon restart: take back the addresses, ports and names of running containers'
/// endpoints, tear down those of containers that are not running, start the DNS servers, apply
/// the firewall, and remove namespaces and veths no container owns.
pub async fn restore(d: &Arc<Daemon>) {
    for n in d
        .networks
        .all()
        .into_iter()
        .filter(|n| n.driver == "bridge")
    {
        if let Err(e) = crate::net::ensure_bridge(&d.networks, &n).await {
            tracing::warn!(network = n.name, error = e.message(), "restoring a bridge");
        }
        if n.user_defined_bridge() {
            crate::net::start_dns(&d.networks, &n).await;
        }
    }
    let mut owned_ns = vec![];
    let mut owned_veths = vec![];
    for h in d.containers.all() {
        let mut rec = h.lock().await;
        if !rec.networks.iter().any(|a| a.endpoint.is_some()) {
            continue;
        }
        if !rec.running() {
            teardown(d, &mut rec).await;
            let _ = d.containers.save(&rec);
            continue;
        }
        owned_ns.push(netns_path(d, &rec.id));
        for a in rec.networks.clone() {
            if let Some(ep) = &a.endpoint {
                owned_veths.push(ep.host_ifname.clone());
                let v6 = ep.v6.map(|(a, _, _)| a);
                let taken = d
                    .networks
                    .allocate(&a.network_id, Some(ep.address))
                    .and_then(|_| match v6 {
                        Some(ip) => d.networks.allocate6(&a.network_id, Some(ip)).map(drop),
                        None => Ok(()),
                    });
                if let Err(e) = taken {
                    tracing::warn!(
                        container = rec.id,
                        error = e.message(),
                        "re-taking an address"
                    );
                }
                if d.networks
                    .find(&a.network_id)
                    .is_some_and(|n| n.user_defined_bridge())
                {
                    publish_names(d, &rec, &a, ep.address, true);
                    if let Some(ip) = v6 {
                        d.networks
                            .set_names(&a.network_id, &dns_names(&rec, &a), ip.into(), true);
                    }
                }
            }
        }
        if !rec.ports.is_empty() {
            if let Err(e) = d.networks.hold_ports(&rec.id, rec.ports.clone()) {
                tracing::warn!(
                    container = rec.id,
                    error = e.message(),
                    "re-taking published ports"
                );
            }
        }
    }
    if let Err(e) = apply_firewall(&d.networks).await {
        tracing::warn!(error = e.message(), "applying the firewall");
    }
    for ns in netns::list(&d.networks.netns_dir) {
        if !owned_ns.contains(&ns) {
            tracing::info!(path = %ns.display(), "removing an orphaned network namespace");
            let _ = tokio::task::spawn_blocking(move || netns::remove(&ns)).await;
        }
    }
    let bridges: Vec<String> = d
        .networks
        .all()
        .into_iter()
        .filter(|n| n.driver == "bridge")
        .map(|n| n.bridge)
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for b in bridges {
            for port in netns::bridge_ports(&b).unwrap_or_default() {
                if port.starts_with("vb") && !owned_veths.contains(&port) {
                    tracing::info!(veth = port, "removing an orphaned veth");
                    let _ = netns::detach(&port);
                }
            }
        }
    })
    .await;
}

/// On shutdown: bridges without containers, and the firewall table when nothing runs, go away.
pub async fn shutdown(d: &Arc<Daemon>) {
    let mut busy = std::collections::HashSet::new();
    for h in d.containers.all() {
        let rec = h.lock().await;
        for a in &rec.networks {
            if a.endpoint.is_some() {
                busy.insert(a.network_id.clone());
            }
        }
    }
    let (nets, table) = (d.networks.all(), d.networks.table.clone());
    let _ = tokio::task::spawn_blocking(move || {
        for n in nets
            .iter()
            .filter(|n| n.driver == "bridge" && !busy.contains(&n.id))
        {
            let _ = netns::delete_link(&n.bridge);
        }
        if busy.is_empty() {
            let _ = berth_net::nft::remove(&table);
        }
    })
    .await;
    let _ = std::fs::remove_dir(&d.networks.netns_dir);
}
