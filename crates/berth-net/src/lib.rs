//! Container networking, synchronous and free of the Engine API: a small rtnetlink client
//! (bridges, veth pairs, addresses, routes), named network namespaces and the endpoints inside
//! them, IPv4 and IPv6 address allocators, the per-daemon nftables table, and the embedded DNS
//! server's answers. berthd calls it from blocking threads; nothing here knows containers' JSON.

pub mod dns;
pub mod ipam;
pub mod ipam6;
pub mod netlink;
pub mod netns;
pub mod nft;

use std::path::PathBuf;

/// What went wrong, with the operation it happened in.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(&'static str, #[source] std::io::Error),
    #[error("network namespace {path}")]
    Namespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid subnet {0:?}: expected ADDRESS/PREFIX, e.g. 172.20.0.0/16")]
    BadSubnet(String),
    #[error("no available addresses on this network's address pools ({0})")]
    PoolExhausted(String),
    #[error("Address already in use")]
    AddressInUse,
    #[error(
        "invalid address {addr}: it does not belong to any of this network's subnets ({subnet})"
    )]
    OutOfSubnet {
        addr: std::net::IpAddr,
        subnet: String,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("running nft")]
    NftSpawn(#[source] std::io::Error),
    #[error("writing {path}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
