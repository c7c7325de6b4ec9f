//! IPv6 through the real docker CLI against berthd: a network with `--ipv6` and a v6 subnet
//! gives its containers addresses of both families (`--ip6` fixed ones too), a v6 default route,
//! names that resolve to AAAA records, `/etc/hosts` lines and inspect fields as dockerd writes
//! them; `--link-local-ip` adds addresses; v6 isolation rules exist while the network does and
//! nothing is left after. Only the test's own containers are contacted.

mod common;

use berth_testkit::alloc::Subnet;
use common::daemon_with_image;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[allow(clippy::disallowed_methods)] // the admin's view of the firewall
fn nft_list(family: &str, table: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", family, table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ipv6_networks_are_created_as_dockerd_creates_them() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    let v6 = sub.cidr6();
    // dockerd has no default IPv6 pool: `--ipv6` alone is refused, nothing made.
    let out = d.docker(&["network", "create", "--ipv6", "nopool"]);
    assert!(
        stderr(&out).contains("non-overlapping IPv6 address pool"),
        "{}",
        stderr(&out)
    );
    assert!(!d.docker(&["network", "inspect", "nopool"]).status.success());
    let cidr = sub.cidr();
    d.docker_ok(&[
        "network", "create", "--ipv6", "--subnet", &cidr, "--subnet", &v6, "six",
    ]);
    let ipam = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
        "six",
    ]);
    assert_eq!(ipam.trim(), format!("true {cidr} {v6}"));
    // The same subnet again overlaps.
    let out = d.docker(&["network", "create", "--ipv6", "--subnet", &v6, "again"]);
    assert!(stderr(&out).contains("overlaps"), "{}", stderr(&out));
    d.docker_ok(&["network", "rm", "six"]);
    // A v6 subnet without `--ipv6` is kept and shown, as dockerd does, but hands out nothing:
    // an `--ip6` in it is recorded, and the endpoint has no IPv6 at all (not even link-local).
    d.docker_ok(&["network", "create", "--subnet", &v6, "plain"]);
    let ip6 = format!("{}f00d", v6.trim_end_matches("/64"));
    let ipam = d.docker_ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "plain"]);
    assert!(ipam.contains(&v6), "{ipam}");
    let run = [
        "run",
        "-d",
        "--name",
        "pl",
        "--network",
        "plain",
        "--ip6",
        &ip6,
        &image,
    ];
    d.docker_ok(&[&run[..], &["sleep", "60"]].concat());
    let shown = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.plain.IPAMConfig.IPv6Address}}|{{.NetworkSettings.Networks.plain.GlobalIPv6Address}}",
        "pl",
    ]);
    assert_eq!(shown.trim(), format!("{ip6}|"));
    let out = d.docker_ok(&["exec", "pl", "ip", "-6", "addr", "show", "dev", "eth0"]);
    assert_eq!(out.trim(), "", "IPv6 on an endpoint without it");
    d.docker_ok(&["rm", "-f", "pl"]);
    d.docker_ok(&["network", "rm", "plain"]);
    // Link-local addresses on the default bridge too (docker-py's case; CLI 20.10 sends
    // endpoint settings only for a network named with `--network`).
    d.docker_ok(&[
        "run",
        "-d",
        "--network",
        "bridge",
        "--name",
        "ll",
        "--link-local-ip",
        "169.254.8.8",
        &image,
        "sleep",
        "60",
    ]);
    let ll = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.bridge.IPAMConfig.LinkLocalIPs}}",
        "ll",
    ]);
    assert_eq!(ll.trim(), "[169.254.8.8]");
    let addrs = d.docker_ok(&["exec", "ll", "ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains("inet 169.254.8.8/16"), "{addrs}");
    d.docker_ok(&["rm", "-f", "ll"]);
}

#[test]
fn an_ipv6_network_gives_containers_v6_addresses_names_and_isolation() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    let (v6, prefix6) = (sub.cidr6(), sub.cidr6().trim_end_matches("/64").to_string());
    let cidr = sub.cidr();
    d.docker_ok(&[
        "network", "create", "--ipv6", "--subnet", &cidr, "--subnet", &v6, "six",
    ]);
    let fixed = format!("{prefix6}99");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "v6a",
        "--network",
        "six",
        "--ip6",
        &fixed,
        &image,
        "sleep",
        "60",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "v6b",
        "--network",
        "six",
        "--link-local-ip",
        "169.254.20.2",
        "--link-local-ip",
        "fe80::22",
        &image,
        "sleep",
        "60",
    ]);
    let field = |c: &str, f: &str| {
        d.docker_ok(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.six.{f}}}}}"),
            c,
        ])
        .trim()
        .to_string()
    };
    assert_eq!(field("v6a", "GlobalIPv6Address"), fixed);
    assert_eq!(field("v6a", "GlobalIPv6PrefixLen"), "64");
    assert_eq!(field("v6a", "IPv6Gateway"), format!("{prefix6}1"));
    assert_eq!(field("v6a", "IPAMConfig.IPv6Address"), fixed);
    // Addresses are handed out from ::2, as dockerd's are.
    let b6 = field("v6b", "GlobalIPv6Address");
    assert_eq!(b6, format!("{prefix6}2"));
    assert_eq!(
        field("v6b", "IPAMConfig.LinkLocalIPs"),
        "[169.254.20.2 fe80::22]"
    );
    let addrs = d.docker_ok(&["exec", "v6b", "ip", "addr", "show", "eth0"]);
    for want in [
        format!("inet6 {b6}/64"),
        "inet 169.254.20.2/16".into(),
        "inet6 fe80::22/64".into(),
    ] {
        assert!(addrs.contains(&want), "{want} not in {addrs}");
    }
    let routes = d.docker_ok(&["exec", "v6b", "ip", "-6", "route"]);
    assert!(
        routes.contains(&format!("default via {prefix6}1")),
        "{routes}"
    );
    let hosts = d.docker_ok(&["exec", "v6b", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{b6}\t")), "{hosts}");
    // Names resolve to the v6 address (AAAA) and the containers reach each other over it.
    let out = d.docker(&["exec", "v6b", "ping6", "-c1", "-W3", "v6a"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&fixed),
        "ping6 v6a: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(out.status.success());
    let members = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv6Address}} {{end}}",
        "six",
    ]);
    assert!(members.contains(&format!("{fixed}/64")), "{members}");
    // `--ip6` outside the subnet, or on a network without IPv6, is refused.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "six",
        "--ip6",
        "fd99::5",
        &image,
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no configured subnet"),
        "{}",
        stderr(&out)
    );
    // The v6 rules exist while an IPv6 network does: isolation, and no host ::1 from a bridge.
    let table = berth_net::nft::table_name(&d.subnet.bridge_name());
    let net_id = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "six"]);
    let bridge = format!("br-{}", &net_id.trim()[..12]);
    let rules = nft_list("ip6", &table);
    assert!(
        rules.contains(&format!("iifname \"{bridge}\" ip6 daddr ::1 drop")),
        "{rules}"
    );
    d.docker_ok(&["rm", "-f", "v6a", "v6b"]);
    d.docker_ok(&["network", "rm", "six"]);
    assert_eq!(
        nft_list("ip6", &table),
        "",
        "the ip6 table outlived the network"
    );
}
