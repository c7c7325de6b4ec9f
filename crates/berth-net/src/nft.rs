//! The daemon's own nftables table: masquerade for outbound traffic of its bridges, DNAT for
//! published ports (from other hosts and from the host itself, 127.0.0.1 included), isolation
//! between its networks, and no way from a bridge to the host's loopback. The whole table is rendered from berthd's state and replaced
//! in one atomic `nft -f -` transaction, so rules never drift from the containers they serve
//! and removing the table removes every rule. `nft` is the contract here (no netlink nftables).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;

use crate::NetError;
use crate::ipam::Subnet;

/// One bridge network's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Subnet,
    /// The IPv6 subnet of a network with `EnableIPv6` (routed, not masqueraded, as Docker's).
    pub subnet6: Option<crate::ipam6::Subnet6>,
    /// No traffic in or out of the bridge (Docker's `--internal`).
    pub internal: bool,
}

/// A published port: traffic to `host_ip:host_port` (any local address if `host_ip` is None)
/// goes to `addr:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub udp: bool,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// Everything the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    pub networks: Vec<BridgeRules>,
    pub ports: Vec<PortMap>,
    /// Forward nothing but the bridges' traffic (policy drop): for a host whose forwarding the
    /// daemon turned on, which must not start routing between its other interfaces.
    pub forward_only_bridges: bool,
}

/// A table name for a daemon, from its default bridge's name (unique on the host).
pub fn table_name(bridge: &str) -> String {
    let safe: String = bridge
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("berth_{safe}")
}

/// The nft script that replaces `table` with `fw`.
pub fn render(table: &str, fw: &Firewall) -> String {
    let mut s = format!("add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n");
    let mut chain = |name: &str, hook: Option<&str>, rules: Vec<String>| {
        let _ = writeln!(s, "\tchain {name} {{");
        if let Some(h) = hook {
            let _ = writeln!(s, "\t\t{h}; policy accept;");
        }
        for r in rules {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t}}");
    };
    let jump = vec!["fib daddr type local jump published".to_string()];
    chain(
        "prerouting",
        Some("type nat hook prerouting priority dstnat"),
        jump.clone(),
    );
    chain("output", Some("type nat hook output priority -100"), jump);
    chain(
        "published",
        None,
        fw.ports
            .iter()
            .map(|p| {
                let daddr = p
                    .host_ip
                    .map(|ip| format!("ip daddr {ip} "))
                    .unwrap_or_default();
                let proto = if p.udp { "udp" } else { "tcp" };
                format!(
                    "{daddr}{proto} dport {} dnat to {}:{}",
                    p.host_port, p.addr, p.port
                )
            })
            .collect(),
    );
    // The bridges carry `route_localnet` (so that DNAT from the host's 127.0.0.1 reaches
    // them), which also lets a container deliver packets it crafted for 127.0.0.0/8 to the
    // host's loopback-only services (CVE-2020-8558's class). Drop them as they arrive, before
    // conntrack turns the masqueraded replies of the host's own connections back into
    // 127.0.0.1 (those arrive addressed to the gateway and pass).
    chain(
        "loopback",
        Some("type filter hook prerouting priority raw"),
        fw.networks
            .iter()
            .flat_map(|n| {
                // Nor may a container pass itself off as the host's loopback.
                ["daddr", "saddr"]
                    .map(|dir| format!("iifname \"{}\" ip {dir} 127.0.0.0/8 drop", n.bridge))
            })
            .collect(),
    );
    let mut post = vec![];
    let mut forward = vec![];
    for n in &fw.networks {
        let br = &n.bridge;
        post.push(format!("oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade"));
        if n.internal {
            forward.push(format!("iifname \"{br}\" oifname != \"{br}\" drop"));
            forward.push(format!("oifname \"{br}\" iifname != \"{br}\" drop"));
        } else {
            post.push(format!(
                "ip saddr {} oifname != \"{br}\" masquerade",
                n.subnet
            ));
        }
        for other in fw.networks.iter().filter(|o| o.bridge != *br) {
            forward.push(format!(
                "iifname \"{br}\" oifname \"{}\" drop",
                other.bridge
            ));
        }
    }
    if fw.forward_only_bridges {
        // The host routes for bridges only (its containers', or other software's on this
        // host), never between two other interfaces (a LAN and a VPN, say).
        forward.push("meta iifkind != \"bridge\" meta oifkind != \"bridge\" drop".into());
    }
    chain(
        "postrouting",
        Some("type nat hook postrouting priority srcnat"),
        post,
    );
    let forward6 = forward.clone();
    chain(
        "forward",
        Some("type filter hook forward priority filter"),
        forward,
    );
    s.push_str("}\n");
    render6(&mut s, table, fw, forward6);
    s
}

/// The IPv6 half, present while a network has `EnableIPv6`: the same isolation between
/// bridges, and nothing from a bridge to or from the host's `::1`.
fn render6(s: &mut String, table: &str, fw: &Firewall, forward: Vec<String>) {
    let _ = writeln!(s, "add table ip6 {table}\ndelete table ip6 {table}");
    if fw.networks.iter().all(|n| n.subnet6.is_none()) {
        return;
    }
    let _ = writeln!(s, "table ip6 {table} {{");
    let loopback: Vec<String> = fw
        .networks
        .iter()
        .flat_map(|n| {
            ["daddr", "saddr"].map(|dir| format!("iifname \"{}\" ip6 {dir} ::1 drop", n.bridge))
        })
        .collect();
    for (name, hook, rules) in [
        (
            "loopback",
            "type filter hook prerouting priority raw",
            loopback,
        ),
        (
            "forward",
            "type filter hook forward priority filter",
            forward,
        ),
    ] {
        let _ = writeln!(s, "\tchain {name} {{\n\t\t{hook}; policy accept;");
        for r in rules {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t}}");
    }
    s.push_str("}\n");
}

/// Replaces the table atomically.
pub fn apply(table: &str, fw: &Firewall) -> Result<(), NetError> {
    run_nft(&render(table, fw))
}

/// Removes the table and every rule in it (fine if there is none).
pub fn remove(table: &str) -> Result<(), NetError> {
    run_nft(&format!(
        "add table ip {table}\ndelete table ip {table}\nadd table ip6 {table}\ndelete table ip6 {table}\n"
    ))
}

fn run_nft(script: &str) -> Result<(), NetError> {
    #[allow(clippy::disallowed_methods)] // nft is the firewall's interface (atomic scripts)
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(NetError::NftSpawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(NetError::NftSpawn)?;
    }
    let out = child.wait_with_output().map_err(NetError::NftSpawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_nat_ports_and_isolation() {
        let fw = Firewall {
            forward_only_bridges: false,
            networks: vec![
                BridgeRules {
                    bridge: "berth0".into(),
                    subnet: "172.30.1.0/24".parse().unwrap(),
                    subnet6: None,
                    internal: false,
                },
                BridgeRules {
                    bridge: "br-abc".into(),
                    subnet: "172.30.2.0/24".parse().unwrap(),
                    subnet6: Some("fd00:2::/64".parse().unwrap()),
                    internal: true,
                },
            ],
            ports: vec![
                PortMap {
                    udp: false,
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 8080,
                    addr: "172.30.1.2".parse().unwrap(),
                    port: 80,
                },
                PortMap {
                    udp: true,
                    host_ip: None,
                    host_port: 5353,
                    addr: "172.30.1.3".parse().unwrap(),
                    port: 53,
                },
            ],
        };
        let s = render("berth_berth0", &fw);
        for want in [
            "add table ip berth_berth0\ndelete table ip berth_berth0\n",
            "ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.30.1.2:80",
            "\t\tudp dport 5353 dnat to 172.30.1.3:53\n",
            "ip saddr 172.30.1.0/24 oifname != \"berth0\" masquerade",
            "oifname \"berth0\" ip saddr 127.0.0.0/8 masquerade",
            "iifname \"br-abc\" oifname != \"br-abc\" drop",
            "iifname \"berth0\" oifname \"br-abc\" drop",
            "iifname \"br-abc\" oifname \"berth0\" drop",
            "type filter hook prerouting priority raw; policy accept;\n\t\tiifname \"berth0\" ip daddr 127.0.0.0/8 drop\n\t\tiifname \"berth0\" ip saddr 127.0.0.0/8 drop\n\t\tiifname \"br-abc\" ip daddr 127.0.0.0/8 drop\n",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
        // The internal network never masquerades out.
        assert!(!s.contains("172.30.2.0/24 oifname"));
        let not_bridges = "meta iifkind != \"bridge\" meta oifkind != \"bridge\" drop";
        assert!(!s.contains(not_bridges));
        // With an IPv6 network: the same isolation for IPv6, and the host's ::1 out of reach.
        let v6 = &s[s.find("table ip6 berth_berth0 {").expect("no ip6 table")..];
        for want in [
            "iifname \"br-abc\" oifname != \"br-abc\" drop",
            "iifname \"berth0\" oifname \"br-abc\" drop",
            "iifname \"br-abc\" ip6 daddr ::1 drop",
        ] {
            assert!(v6.contains(want), "{want:?} missing from\n{v6}");
        }
        assert!(!v6.contains("masquerade"));
        // Forwarding turned on by the daemon: nothing routed between two non-bridge interfaces.
        let strict = render(
            "berth_berth0",
            &Firewall {
                forward_only_bridges: true,
                ..fw
            },
        );
        assert!(strict.contains(not_bridges), "{strict}");
        assert_eq!(table_name("berth-t7"), "berth_berth_t7");
    }
}
