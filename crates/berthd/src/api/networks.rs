//! The Engine API's network routes: list, inspect, create, remove, connect, disconnect, prune,
//! with Docker's JSON, status codes and error texts.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_net::ipam::Subnet;
use berth_net::ipam6::Subnet6;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::Value;

use berth_api::models::{self, IpamConfig, NetworkContainer, NetworkCreateRequest};
use berth_api::responses::{NetworkIpam, NetworkResource};

use crate::api::http::{ApiResult, Query, empty, json, parse_json, read_body};
use crate::engine::Daemon;
use crate::model::Error;
use crate::net::{EndpointState, Network, apply_firewall, ensure_bridge, start_dns};

fn not_found(key: &str) -> Error {
    Error::not_found(format!("network {key} not found"))
}

fn forbidden(m: impl Into<String>) -> Error {
    Error::forbidden(m)
}

/// The containers with an endpoint on a network: (id, name, endpoint).
async fn members(d: &Daemon, net_id: &str) -> Vec<(String, String, crate::net::EndpointState)> {
    let mut out = vec![];
    for h in d.containers.all() {
        let r = h.lock().await;
        for a in &r.networks {
            if let (true, Some(ep)) = (a.network_id == net_id, &a.endpoint) {
                out.push((r.id.clone(), r.name.clone(), ep.clone()));
            }
        }
    }
    out
}

/// Containers configured on a network, running or not.
async fn users(d: &Daemon, net_id: &str) -> Vec<String> {
    let mut out = vec![];
    for h in d.containers.all() {
        let r = h.lock().await;
        if r.networks.iter().any(|a| a.network_id == net_id) {
            out.push(r.id.clone());
        }
    }
    out
}

/// `GET /networks?filters=`.
pub async fn list(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let filters = Query::parse(req.uri().query()).filters()?;
    let mut out = vec![];
    for n in d.networks.all() {
        let mut keep = true;
        for (k, v) in &filters {
            keep &= match k.as_str() {
                "name" => n.name.contains(v.as_str()),
                "id" => n.id.starts_with(v.as_str()),
                "driver" => n.driver == *v,
                "scope" => v == "local",
                "type" => (v == "custom") != n.predefined(),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                    None => n.labels.contains_key(v),
                },
                "dangling" => {
                    (v == "true" || v == "1")
                        == (users(d, &n.id).await.is_empty() && !n.predefined())
                }
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            };
        }
        if keep {
            out.push(resource(&n, &members(d, &n.id).await));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// `GET /networks/{id}`.
pub async fn inspect(d: &Arc<Daemon>, key: &str) -> ApiResult {
    let n = d.networks.find(key).ok_or_else(|| not_found(key))?;
    Ok(json(
        StatusCode::OK,
        &resource(&n, &members(d, &n.id).await),
    ))
}

/// A checked `POST /networks/create` body. What needs the daemon's state (a name in use, a
/// subnet that overlaps, the free subnet to take) is checked by the route.
#[derive(Debug)]
pub struct NetworkCreate {
    pub name: String,
    /// `com.docker.network.bridge.name`, when given.
    pub bridge: Option<String>,
    pub subnet: Option<Subnet>,
    pub gateway: Option<std::net::Ipv4Addr>,
    pub ip_range: Option<Subnet>,
    pub enable_ipv6: bool,
    pub subnet6: Option<Subnet6>,
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub ip_range6: Option<Subnet6>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// Parses a `POST /networks/create` body: a bridge network with at most one IPv4 subnet.
pub fn parse_create(body: &[u8]) -> Result<NetworkCreate, Error> {
    let v: NetworkCreateRequest = parse_json(body)?;
    let name = v.name;
    // dockerd takes any name that is not blank (libnetwork's rule); control characters are
    // refused too, so a name cannot forge lines in logs.
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!("invalid name: {name}")));
    }
    let driver = v
        .driver
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("bridge");
    if driver != "bridge" {
        return Err(Error::not_found(format!("plugin \"{driver}\" not found")));
    }
    let given = |s: Option<String>| s.filter(|s| !s.is_empty());
    // One IPv4 and one IPv6 entry at most, told apart by their subnet (or gateway).
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for c in v.ipam.and_then(|i| i.config).unwrap_or_default() {
        let key = given(c.subnet.clone())
            .or(given(c.gateway.clone()))
            .unwrap_or_default();
        match key.contains(':') {
            true => v6.push(c),
            false => v4.push(c),
        }
    }
    if v4.len() > 1 || v6.len() > 1 {
        return Err(Error::invalid(
            "only one IPv4 and one IPv6 subnet per network are supported",
        ));
    }
    let cfg = v4.pop().unwrap_or_default();
    let cfg6 = v6.pop().unwrap_or_default();
    let bad = |e: berth_net::NetError| Error::invalid(e.to_string());
    let subnet: Option<Subnet> = given(cfg.subnet)
        .map(|s| s.parse())
        .transpose()
        .map_err(bad)?;
    let gateway = match given(cfg.gateway) {
        Some(g) => Some(
            g.parse::<std::net::Ipv4Addr>()
                .map_err(|_| Error::invalid(format!("invalid gateway address {g}")))?,
        ),
        None => None,
    };
    let ip_range: Option<Subnet> = given(cfg.ip_range)
        .map(|r| r.parse())
        .transpose()
        .map_err(bad)?;
    let subnet6: Option<Subnet6> = given(cfg6.subnet)
        .map(|s| s.parse())
        .transpose()
        .map_err(bad)?;
    let gateway6 = match given(cfg6.gateway) {
        Some(g) => Some(
            g.parse::<std::net::Ipv6Addr>()
                .map_err(|_| Error::invalid(format!("invalid gateway address {g}")))?,
        ),
        None => None,
    };
    let ip_range6: Option<Subnet6> = given(cfg6.ip_range)
        .map(|r| r.parse())
        .transpose()
        .map_err(bad)?;
    let enable_ipv6 = v.enable_ipv6.unwrap_or(false);
    if enable_ipv6 && subnet6.is_none() {
        // dockerd has no default IPv6 pools either.
        return Err(Error::forbidden(
            "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network",
        ));
    }
    let options = v.options.unwrap_or_default();
    Ok(NetworkCreate {
        name,
        bridge: options.get("com.docker.network.bridge.name").cloned(),
        subnet,
        gateway,
        ip_range,
        enable_ipv6,
        subnet6,
        gateway6,
        ip_range6,
        internal: v.internal.unwrap_or(false),
        attachable: v.attachable.unwrap_or(false),
        labels: v.labels.unwrap_or_default().into_iter().collect(),
        options: options.into_iter().collect(),
    })
}

/// The IPv6 entry of a create: a subnet nothing else uses, the gateway and range inside it.
/// Returns the gateway and range as stored.
fn check_v6(d: &Daemon, c: &NetworkCreate) -> Result<(String, String), Error> {
    let Some(subnet) = c.subnet6 else {
        return Ok((String::new(), String::new()));
    };
    if let Some(what) = d.networks.overlap6(&subnet) {
        return Err(forbidden(format!(
            "Pool overlaps with other one on this address space ({what})"
        )));
    }
    if let Some(gw) = c.gateway6.filter(|g| !subnet.contains(*g)) {
        return Err(forbidden(format!("no matching subnet for gateway {gw}")));
    }
    if let Some(r) = c
        .ip_range6
        .filter(|r| !subnet.contains(r.network()) || r.prefix() < subnet.prefix())
    {
        return Err(forbidden(format!("ip range {r} is not in subnet {subnet}")));
    }
    Ok((
        c.gateway6.map(|g| g.to_string()).unwrap_or_default(),
        c.ip_range6.map(|r| r.to_string()).unwrap_or_default(),
    ))
}

/// `POST /networks/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let c = parse_create(&body)?;
    let name = c.name.clone();
    if d.networks.find(&name).is_some_and(|n| n.name == name) {
        return Err(Error::conflict(format!(
            "network with name {name} already exists"
        )));
    }
    let (gateway6, ip_range6) = check_v6(d, &c)?;
    let id = crate::model::ids::new_id();
    let bridge = c.bridge.unwrap_or_else(|| format!("br-{}", &id[..12]));
    let subnet = match c.subnet {
        Some(subnet) => {
            if let Some(what) = d.networks.overlap(&subnet, &bridge) {
                return Err(forbidden(format!(
                    "Pool overlaps with other one on this address space ({what})"
                )));
            }
            subnet
        }
        None => d.networks.free_subnet(&bridge).ok_or_else(|| {
            forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
        })?,
    };
    let gateway = match c.gateway {
        Some(gw) if !subnet.contains(gw) => {
            return Err(forbidden(format!("no matching subnet for gateway {gw}")));
        }
        Some(gw) => gw,
        None => subnet.nth(1).unwrap_or(subnet.network()),
    };
    let ip_range = match c.ip_range {
        Some(range) if !subnet.contains(range.network()) || range.prefix() < subnet.prefix() => {
            return Err(forbidden(format!(
                "ip range {range} is not in subnet {subnet}"
            )));
        }
        Some(range) => range.to_string(),
        None => String::new(),
    };
    let net = Network {
        id: id.clone(),
        name: name.clone(),
        driver: "bridge".into(),
        created: berth_clock::rfc3339_now(),
        bridge,
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        ip_range,
        enable_ipv6: c.enable_ipv6,
        subnet6: c.subnet6.map(|s| s.to_string()).unwrap_or_default(),
        gateway6,
        ip_range6,
        internal: c.internal,
        attachable: c.attachable,
        labels: c.labels,
        options: c.options,
    };
    ensure_bridge(&d.networks, &net).await?;
    let stored = d
        .networks
        .store(&net)
        .map_err(|e| Error::internal(format!("storing network {name}: {e:#}")));
    let applied = match stored {
        Ok(()) => apply_firewall(&d.networks).await,
        Err(e) => Err(e),
    };
    if let Err(e) = applied {
        d.networks.delete(&id);
        let bridge = net.bridge.clone();
        let _ = tokio::task::spawn_blocking(move || berth_net::netns::delete_link(&bridge)).await;
        return Err(e);
    }
    start_dns(&d.networks, &net).await;
    d.events.emit(
        "network",
        "create",
        &id,
        crate::engine::events::attrs([("name", name.clone()), ("type", "bridge".into())]),
    );
    Ok(json(
        StatusCode::CREATED,
        &models::NetworkCreateResponse {
            id: Some(id),
            warning: Some(String::new()),
        },
    ))
}

/// Removes an unused user-defined network: its bridge, DNS and rules.
async fn destroy(d: &Arc<Daemon>, n: &Network) -> Result<(), Error> {
    d.networks.delete(&n.id);
    let bridge = n.bridge.clone();
    let _ = tokio::task::spawn_blocking(move || berth_net::netns::delete_link(&bridge)).await;
    apply_firewall(&d.networks).await?;
    d.events.emit(
        "network",
        "destroy",
        &n.id,
        crate::engine::events::attrs([("name", n.name.clone()), ("type", n.driver.clone())]),
    );
    Ok(())
}

/// `DELETE /networks/{id}`.
pub async fn remove(d: &Arc<Daemon>, key: &str) -> ApiResult {
    let n = d.networks.find(key).ok_or_else(|| not_found(key))?;
    if n.predefined() {
        return Err(forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    if !users(d, &n.id).await.is_empty() {
        return Err(forbidden(format!(
            "error while removing network: network {} id {} has active endpoints",
            n.name, n.id
        )));
    }
    destroy(d, &n).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/prune`.
pub async fn prune(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let filters = Query::parse(req.uri().query()).filters()?;
    let mut deleted = vec![];
    for n in d.networks.all() {
        let labelled = filters
            .iter()
            .all(|(k, v)| match (k.as_str(), v.split_once('=')) {
                ("label", Some((lk, lv))) => n.labels.get(lk).is_some_and(|x| x == lv),
                ("label", None) => n.labels.contains_key(v),
                _ => true,
            });
        if !n.predefined() && labelled && users(d, &n.id).await.is_empty() {
            destroy(d, &n).await?;
            deleted.push(n.name.clone());
        }
    }
    Ok(json(
        StatusCode::OK,
        &models::NetworkPruneResponse {
            networks_deleted: Some(deleted),
        },
    ))
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn connect(d: &Arc<Daemon>, key: &str, join: bool, req: Request<Incoming>) -> ApiResult {
    let n = d.networks.find(key).ok_or_else(|| not_found(key))?;
    let body = read_body(req.into_body(), 1 << 20).await?;
    let mut v: Value = parse_json(&body)?;
    let cname = v["Container"].as_str().unwrap_or_default().to_string();
    let h = d.containers.find(&cname)?;
    let mut rec = h.lock().await;
    let at = rec.networks.iter().position(|a| a.network_id == n.id);
    let mode = rec.host_config.network_mode.clone();
    if join {
        if at.is_some() {
            return Err(forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, n.name
            )));
        }
        if n.driver != "bridge"
            || mode == "host"
            || mode == "none"
            || mode.starts_with("container:")
        {
            return Err(Error::invalid(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network ({})",
                n.name
            )));
        }
        let endpoint: models::EndpointSettings = match v["EndpointConfig"].take() {
            Value::Null => Default::default(),
            e => serde_json::from_value(e)
                .map_err(|e| Error::invalid(format!("invalid EndpointConfig: {e}")))?,
        };
        let att = crate::engine::endpoints::attachment_from(&n, &endpoint)?;
        rec.networks.push(att);
        let i = rec.networks.len() - 1;
        if rec.running() {
            let ns = crate::engine::endpoints::netns_path(d, &rec.id);
            if let Err(e) =
                crate::engine::endpoints::connect_endpoint(d, &mut rec, i, &ns, false).await
            {
                rec.networks.pop();
                return Err(e);
            }
        }
    } else {
        let Some(i) = at else {
            return Err(forbidden(format!(
                "container {} is not connected to network {}",
                rec.id, n.name
            )));
        };
        crate::engine::endpoints::disconnect_endpoint(d, &mut rec, i, false).await;
        rec.networks.remove(i);
    }
    berth_failpoint::point("connect.before-record");
    d.containers.save(&rec)?;
    let action = if join { "connect" } else { "disconnect" };
    d.events.emit(
        "network",
        action,
        &n.id,
        crate::engine::events::attrs([
            ("container", rec.id.clone()),
            ("name", n.name.clone()),
            ("type", n.driver.clone()),
        ]),
    );
    Ok(empty(StatusCode::OK))
}

/// Docker's view of a network; `containers` maps container id → (name, endpoint).
fn resource(n: &Network, containers: &[(String, String, EndpointState)]) -> NetworkResource {
    let containers = containers
        .iter()
        .map(|(id, name, ep)| {
            let c = NetworkContainer {
                name: Some(name.clone()),
                endpoint_id: Some(ep.id.clone()),
                mac_address: Some(ep.mac.clone()),
                ipv4_address: Some(format!("{}/{}", ep.address, ep.prefix)),
                ipv6_address: Some(
                    ep.v6
                        .map(|(a, p, _)| format!("{a}/{p}"))
                        .unwrap_or_default(),
                ),
            };
            (id.clone(), c)
        })
        .collect();
    let given = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let config = IpamConfig {
        subnet: given(&n.subnet),
        gateway: given(&n.subnet).and(given(&n.gateway)),
        ip_range: given(&n.ip_range),
        auxiliary_addresses: None,
    };
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local".into(),
        driver: n.driver.clone(),
        ipam: NetworkIpam {
            driver: "default".into(),
            options: None,
            config: given(&n.subnet)
                .map(|_| config)
                .into_iter()
                .chain(given(&n.subnet6).map(|s| IpamConfig {
                    subnet: Some(s),
                    gateway: given(&n.gateway6),
                    ip_range: given(&n.ip_range6),
                    auxiliary_addresses: None,
                }))
                .collect(),
        },
        enable_ipv6: n.enable_ipv6,
        internal: n.internal,
        attachable: n.attachable,
        containers,
        options: n.options.clone(),
        labels: n.labels.clone(),
        ..Default::default()
    }
}
