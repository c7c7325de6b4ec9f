//! A container's place on networks: its attachments (kept while it is stopped), live endpoints
//! and published ports.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A container's membership in a network (kept while it is stopped, like Docker's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: a fixed address.
    #[serde(default)]
    pub ipv4: String,
    /// `--ip6`: a fixed IPv6 address (a network with `EnableIPv6`).
    #[serde(default)]
    pub ipv6: String,
    /// `--link-local-ip`: more addresses on the interface, as given.
    #[serde(default)]
    pub link_local: Vec<String>,
    /// `--mac-address` given for this network's endpoint.
    #[serde(default)]
    pub mac: Option<String>,
    /// Links scoped to this network (`name:alias`), as given.
    #[serde(default)]
    pub links: Vec<String>,
    /// The endpoint's driver options, as given.
    #[serde(default)]
    pub driver_opts: std::collections::BTreeMap<String, String>,
    /// Present while the container runs.
    #[serde(default)]
    pub endpoint: Option<EndpointState>,
}

/// A live endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointState {
    pub id: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The IPv6 address, prefix and gateway on a network with `EnableIPv6`.
    #[serde(default)]
    pub v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    pub mac: String,
    pub host_ifname: String,
    pub ifname: String,
}

/// A published port of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Empty for every address.
    pub host_ip: String,
    pub host_port: u16,
    pub port: u16,
    pub addr: Ipv4Addr,
}
