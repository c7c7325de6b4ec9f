//! Networking through the real docker CLI against berthd: the default bridge, user-defined
//! networks with name resolution, published ports reached from the host on 127.0.0.1, `none`,
//! `host` and `container:` modes, live connect/disconnect, 50 containers with 50 addresses,
//! addresses kept across a daemon crash; bad input refused with nothing half-made; and after
//! everything is removed no veth, namespace, bridge or firewall rule of the daemon is left.
//! Only loopback and the test's own containers are ever contacted.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use berth_testkit::alloc::Subnet;
use berth_testkit::wait_for;
use common::{Berthd, daemon_with_image};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names of the host's links.
fn host_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Ports (links) of a bridge on the host.
fn bridge_ports(bridge: &str) -> Vec<String> {
    berth_net::netns::bridge_ports(bridge).unwrap()
}

/// Waits until a bridge has `n` ports: a stopped container's veth is deleted just after its
/// stop is reported (deleting a link waits for the kernel's grace periods).
fn wait_ports(bridge: &str, n: usize) {
    wait_for(Duration::from_secs(10), "the bridge's veths to go", || {
        bridge_ports(bridge).len() == n
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", bridge_ports(bridge)));
}

fn nft_tables() -> String {
    #[allow(clippy::disallowed_methods)] // the admin's view of the firewall
    let out = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything of the daemon's networking is gone once it has stopped.
fn assert_no_network_leftovers(bridge: &str, user_bridges: &[String], exec_root: &std::path::Path) {
    let links = host_links();
    assert!(
        !links.contains(&bridge.to_string()),
        "bridge {bridge} left: {links:?}"
    );
    for b in user_bridges {
        assert!(!links.contains(b), "bridge {b} left: {links:?}");
    }
    let table = berth_net::nft::table_name(bridge);
    assert!(!nft_tables().contains(&table), "nft table {table} left");
    assert!(berth_net::netns::list(&exec_root.join("netns")).is_empty());
}

fn http_get(addr: (Ipv4Addr, u16), path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "appnet"]);
    let net_bridge = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "appnet"]);
    let bridge = format!("br-{}", &net_bridge.trim()[..12]);
    assert!(host_links().contains(&bridge), "{bridge} not on the host");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        &image,
        "sh",
        "-c",
        "mkdir /w && echo hello-by-name > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
        "web",
    ]);
    assert!(
        ip.trim().starts_with(&sub.cidr()[..sub.cidr().len() - 4]),
        "{ip}"
    );
    for host in ["web", "www"] {
        let url = format!("http://{host}/");
        let mut out = None;
        // httpd may still be starting on a slow host: retry until it answers.
        let _ = wait_for(Duration::from_secs(15), "httpd by name", || {
            let o = d.docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                &image,
                "wget",
                "-qO-",
                &url,
            ]);
            let ok = o.status.success();
            out = Some(o);
            ok
        });
        let out = out.unwrap();
        assert!(out.status.success(), "wget {host}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-by-name\n");
    }
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        &image,
        "ping",
        "-c1",
        "-W2",
        "web",
    ]);
    assert!(out.status.success(), "ping: {}", stderr(&out));
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        &image,
        "sh",
        "-c",
        "echo over-nc | nc -w2 web 80 | head -1",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1."),
        "nc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // Other names are not found (nothing is forwarded anywhere).
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        &image,
        "nslookup",
        "nosuchname",
    ]);
    assert!(!out.status.success());
    // The default bridge has no embedded DNS: the name is unknown there.
    let out = d.docker(&["run", "--rm", &image, "ping", "-c1", "-W1", "web"]);
    assert!(!out.status.success(), "web resolved on the default bridge");
    let members = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]);
    assert_eq!(members.trim(), "web");

    d.docker_ok(&["rm", "-f", "web"]);
    wait_ports(&bridge, 0);
    d.docker_ok(&["network", "rm", "appnet"]);
    assert!(!host_links().contains(&bridge));
    let (default_bridge, exec_root) = (d.subnet.bridge_name(), d.roots.exec_root());
    drop(d);
    assert_no_network_leftovers(&default_bridge, &[bridge], &exec_root);
}

#[test]
fn published_port_answers_on_loopback_and_is_unpublished_on_stop() {
    let (_reg, d, image) = daemon_with_image();
    let port = berth_testkit::alloc::free_port().unwrap();
    let map = format!("127.0.0.1:{port}:80");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "site",
        "-p",
        &map,
        &image,
        "sh",
        "-c",
        "mkdir /w && echo published-hello > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let mut reply = String::new();
    wait_for(Duration::from_secs(10), "httpd in the container", || {
        reply = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map(drop)
            .map(|()| http_get((Ipv4Addr::LOCALHOST, port), "/"))
            .unwrap_or_default();
        reply.contains("published-hello")
    })
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(
        d.docker_ok(&["port", "site"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    // The same host port again: refused with Docker's words, nothing of the second left.
    let out = d.docker(&[
        "run", "-d", "--name", "clash", "-p", &map, &image, "sleep", "30",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("port is already allocated"),
        "{}",
        stderr(&out)
    );
    let state = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.NetworkSettings.IPAddress}}",
        "clash",
    ]);
    assert_eq!(state.trim(), "created");
    wait_ports(&d.subnet.bridge_name(), 1);
    // A random host port with -P for the image's... and the config's exposed port.
    d.docker_ok(&[
        "run", "-d", "--name", "anyport", "--expose", "8080", "-P", &image, "sleep", "30",
    ]);
    let p = d.docker_ok(&["port", "anyport", "8080"]);
    let host_port: u16 = p.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(host_port > 0, "{p}");
    d.docker_ok(&["stop", "-t", "0", "site"]);
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port still forwarded"
    );
    d.docker_ok(&["rm", "-f", "site", "clash", "anyport"]);
    let (bridge, exec_root) = (d.subnet.bridge_name(), d.roots.exec_root());
    drop(d);
    assert_no_network_leftovers(&bridge, &[], &exec_root);
}

#[test]
fn none_host_and_container_modes() {
    let (_reg, d, image) = daemon_with_image();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    // --hostname on the default bridge: /etc/hosts maps the container's address to it.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--hostname",
        "webhost",
        &image,
        "sh",
        "-c",
        "hostname; grep webhost /etc/hosts; ip -4 -o addr show eth0",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "webhost", "{out}");
    let ip = lines[1].split_whitespace().next().unwrap();
    assert!(lines[2].contains(&format!("inet {ip}/24")), "{out}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        &image,
        "cat",
        "/proc/net/dev",
    ]);
    let bridge = d.subnet.bridge_name();
    assert!(
        out.contains(&format!("{bridge}:")),
        "host mode does not see {bridge}: {out}"
    );
    // The default bridge: eth0 with an address of the daemon's subnet and a default route.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "ls /sys/class/net; ip route",
    ]);
    assert!(
        out.contains("eth0") && out.contains(&format!("default via {}", &sub_gateway(&d))),
        "{out}"
    );
    d.docker_ok(&["run", "-d", "--name", "owner", &image, "sleep", "60"]);
    let mac = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "owner"]);
    let shared = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        &image,
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    assert_eq!(shared.trim(), mac.trim());
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        &image,
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
    d.docker_ok(&["rm", "-f", "owner"]);
    let exec_root = d.roots.exec_root();
    drop(d);
    assert_no_network_leftovers(&bridge, &[], &exec_root);
}

fn sub_gateway(d: &Berthd) -> String {
    d.subnet.bip().split('/').next().unwrap().to_string()
}

#[test]
fn network_connect_and_disconnect_a_running_container() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "extra"]);
    d.docker_ok(&["run", "-d", "--name", "live", &image, "sleep", "60"]);
    let links = |d: &Berthd| d.docker_ok(&["exec", "live", "ls", "/sys/class/net"]);
    assert_eq!(
        links(&d).split_whitespace().collect::<Vec<_>>(),
        ["eth0", "lo"]
    );
    d.docker_ok(&["network", "connect", "--alias", "second", "extra", "live"]);
    assert_eq!(
        links(&d).split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.extra.IPAddress}}",
        "live",
    ]);
    let addr = d.docker_ok(&["exec", "live", "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(addr.contains(ip.trim()), "{addr} vs {ip}");
    let out = d.docker(&["network", "connect", "extra", "live"]);
    assert!(
        stderr(&out).contains("already exists in network extra"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["network", "rm", "extra"]);
    assert!(
        stderr(&out).contains("has active endpoints"),
        "{}",
        stderr(&out)
    );
    d.docker_ok(&["network", "disconnect", "extra", "live"]);
    assert_eq!(
        links(&d).split_whitespace().collect::<Vec<_>>(),
        ["eth0", "lo"]
    );
    d.docker_ok(&["network", "rm", "extra"]);
    d.docker_ok(&["rm", "-f", "live"]);
}

#[test]
fn fifty_containers_get_fifty_addresses_kept_across_a_daemon_crash() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "many"]);
    let mut ids = vec![];
    for i in 0..50 {
        let name = format!("m{i}");
        ids.push(
            d.docker_ok(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "many",
                &image,
                "sleep",
                "300",
            ])
            .trim()
            .to_string(),
        );
    }
    let ips = |d: &Berthd| -> Vec<String> {
        let mut v: Vec<String> = d
            .docker_ok(&[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.IPv4Address}} {{end}}",
                "many",
            ])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let before = ips(&d);
    let mut distinct = before.clone();
    distinct.dedup();
    assert_eq!((before.len(), distinct.len()), (50, 50));
    let d = d.crash_and_restart();
    assert_eq!(ips(&d), before, "addresses changed across the crash");
    // A new container after the restart gets an address nobody has.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "many",
        &image,
        "sleep",
        "300",
    ]);
    let late = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.many.IPAddress}}/24",
        "late",
    ]);
    assert!(
        !before.contains(&late.trim().to_string()),
        "{late} handed out twice"
    );
    // They still reach each other by name.
    let out = d.docker(&["exec", "late", "ping", "-c1", "-W2", "m49"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push("late");
    let mut args = vec!["rm", "-f"];
    args.extend(all);
    d.docker_ok(&args);
    let bridge_id = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "many"]);
    let bridge = format!("br-{}", &bridge_id.trim()[..12]);
    wait_ports(&bridge, 0);
    d.docker_ok(&["network", "rm", "many"]);
    let (default_bridge, exec_root) = (d.subnet.bridge_name(), d.roots.exec_root());
    drop(d);
    assert_no_network_leftovers(&default_bridge, &[bridge], &exec_root);
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "first"]);
    let out = d.docker(&["network", "create", "--subnet", &sub.cidr(), "second"]);
    assert!(
        stderr(&out).contains("Pool overlaps with other one on this address space"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["network", "create", "--subnet", &sub.cidr(), "first"]);
    assert!(
        stderr(&out).contains("network with name first already exists"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["network", "create", "--subnet", "10.1.2.0/33", "bad"]);
    assert!(!out.status.success());
    let out = d.docker(&["run", "--rm", "--network", "nope", &image, "true"]);
    assert!(
        stderr(&out).contains("network nope not found"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["network", "rm", "bridge"]);
    assert!(
        stderr(&out).contains("pre-defined network and cannot be removed"),
        "{}",
        stderr(&out)
    );
    // A fixed address on the default bridge (newer clients send it; 20.10 drops --ip there).
    let body = format!(
        r#"{{"Image": "{image}", "NetworkingConfig": {{"EndpointsConfig": {{"bridge": {{"IPAMConfig": {{"IPv4Address": "172.30.255.9"}}}}}}}}}}"#
    );
    let (code, _, body) = d.raw("POST", "/containers/create", body.as_bytes());
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("user specified IP address is supported on user defined networks only"),
        "{body}"
    );
    // A fixed address outside the network's subnet.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "first",
        "--ip",
        "10.99.0.5",
        &image,
        "true",
    ]);
    assert!(
        stderr(&out).contains("no configured subnet contains IP address 10.99.0.5"),
        "{}",
        stderr(&out)
    );
    let (code, _, body) = d.raw("POST", "/networks/create", b"{\"Name\": ");
    assert_eq!(code, 400, "{body}");
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["bridge", "first", "host", "none"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
    d.docker_ok(&["network", "prune", "-f"]);
    let names = d.docker_ok(&["network", "ls", "-q"]);
    assert_eq!(names.lines().count(), 3);
}

/// `srv` (at `fixed` on neta) answers on its own network only; the internal netb has no
/// default route; its fixed address is not given twice.
fn check_isolation(d: &Berthd, image: &str, fixed: &str) {
    // (busybox-static's `wget -T` crashes; nc's -w bounds the wait instead.)
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w2 {fixed} 80");
    let fetch = |net: &str| {
        let out = d.docker(&["run", "--rm", "--network", net, image, "sh", "-c", &get]);
        String::from_utf8_lossy(&out.stdout).contains("isolated")
    };
    wait_for(
        Duration::from_secs(10),
        "srv to answer on its own network",
        || fetch("neta"),
    )
    .unwrap();
    assert!(!fetch("netc"), "another network reached srv");
    assert!(!fetch("netb"), "an internal network reached srv");
    let routes = d.docker_ok(&["run", "--rm", "--network", "netb", image, "ip", "route"]);
    assert!(
        !routes.contains("default"),
        "internal network with a default route: {routes}"
    );
    // The same fixed address twice is refused.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "--ip",
        fixed,
        image,
        "true",
    ]);
    assert!(
        stderr(&out).contains("Address already in use"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_networks_are_isolated_internal_ones_closed_and_orphans_swept_after_a_crash() {
    let (_reg, d, image) = daemon_with_image();
    let (sa, sb, sc) = (
        Subnet::reserve().unwrap(),
        Subnet::reserve().unwrap(),
        Subnet::reserve().unwrap(),
    );
    d.docker_ok(&["network", "create", "--subnet", &sa.cidr(), "neta"]);
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &sb.cidr(),
        "--internal",
        "netb",
    ]);
    d.docker_ok(&["network", "create", "--subnet", &sc.cidr(), "netc"]);
    let fixed = sa.cidr().replace(".0/24", ".50");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "neta",
        "--ip",
        &fixed,
        "--mac-address",
        "02:42:0a:0b:0c:0d",
        &image,
        "sh",
        "-c",
        "mkdir -p /w && echo isolated > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let got = d.docker_ok(&[
        "inspect", "-f", "{{.NetworkSettings.Networks.neta.IPAddress}} {{.NetworkSettings.Networks.neta.MacAddress}}", "srv",
    ]);
    assert_eq!(got.trim(), format!("{fixed} 02:42:0a:0b:0c:0d"));
    check_isolation(&d, &image, &fixed);

    let pid: i32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "srv"])
        .trim()
        .parse()
        .unwrap();
    let neta_id = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "neta"]);
    let bridge_a = format!("br-{}", &neta_id.trim()[..12]);
    let netns_dir = d.roots.exec_root().join("netns");
    let orphan = netns_dir.join("orphan");
    let d = d.crash_and_restart_with(|| {
        // The container dies while no daemon runs; a crashed daemon left a namespace and a veth.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
        berth_net::netns::create(&orphan).unwrap();
        let addr: Ipv4Addr = sa.cidr().replace(".0/24", ".99").parse().unwrap();
        berth_net::netns::attach(
            &orphan,
            &berth_net::netns::Endpoint {
                bridge: bridge_a.clone(),
                host_ifname: "vborphan0000".into(),
                ifname: "eth0".into(),
                address: addr,
                prefix: 24,
                mac: berth_net::ipam::mac_for(addr),
                gateway: None,
                address6: None,
                gateway6: None,
                link_local: vec![],
                mtu: 1500,
            },
        )
        .unwrap();
    });
    wait_for(
        Duration::from_secs(10),
        "the crashed daemon's orphans to go",
        || berth_net::netns::list(&netns_dir).is_empty() && bridge_ports(&bridge_a).is_empty(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {:?} {:?}",
            berth_net::netns::list(&netns_dir),
            bridge_ports(&bridge_a)
        )
    });
    let state = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.NetworkSettings.Networks.neta.IPAddress}}",
        "srv",
    ]);
    assert_eq!(state.trim(), "exited");
    // Its fixed address is free again: it restarts with it.
    d.docker_ok(&["start", "srv"]);
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.neta.IPAddress}}",
        "srv",
    ]);
    assert_eq!(ip.trim(), fixed);
    d.docker_ok(&["rm", "-f", "srv"]);
    for n in ["neta", "netb", "netc"] {
        d.docker_ok(&["network", "rm", n]);
    }
}
