//! berth-net on the real kernel: a bridge, two pinned namespaces plugged into it, TCP between
//! them, the nftables table applied and removed; nothing left behind.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_net::ipam::{Pool, Subnet, mac_for};
use berth_net::ipam6::{Pool6, Subnet6};
use berth_net::netns::{self, Endpoint};
use berth_net::nft;

/// Runs `f` on a thread inside the namespace at `ns`.
fn inside<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(ns).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// Test endpoint `name` (the `i`th) on `bridge`, dual-stack, with two link-local addresses.
fn endpoint(
    bridge: &str,
    name: &str,
    i: usize,
    (address, address6): (Ipv4Addr, Ipv6Addr),
    (gw, gw6): (Ipv4Addr, Ipv6Addr),
) -> Endpoint {
    Endpoint {
        bridge: bridge.to_string(),
        host_ifname: format!("vt{}{name}", &bridge[bridge.len() - 3..]),
        ifname: "eth0".into(),
        address,
        prefix: 24,
        mac: mac_for(address),
        gateway: Some(gw),
        address6: Some((address6, 64)),
        gateway6: Some(gw6),
        link_local: vec![
            format!("169.254.7.{}", i + 1).parse().unwrap(),
            format!("fe80::7{}", i + 1).parse().unwrap(),
        ],
        mtu: 1500,
    }
}

/// `b` accepts from `a` over IPv6, and on a link-local address.
fn v6_and_link_local_talk(a: &(PathBuf, Endpoint), b: &(PathBuf, Endpoint)) {
    for (to, from) in [
        (
            b.1.address6.unwrap().0.into(),
            a.1.address6.unwrap().0.into(),
        ),
        (b.1.link_local[0], a.1.link_local[0]),
    ] {
        let to: IpAddr = to;
        let listener = inside(&b.0, || TcpListener::bind((to, 7781)).unwrap());
        let ns = a.0.clone();
        std::thread::spawn(move || inside(&ns, || drop(TcpStream::connect((to, 7781)).unwrap())))
            .join()
            .unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), from);
    }
}

#[test]
fn two_namespaces_on_a_bridge_talk_and_leave_nothing_behind() {
    let reserved = berth_testkit::alloc::Subnet::reserve().unwrap();
    let subnet: Subnet = reserved.cidr().parse().unwrap();
    let bridge = reserved.bridge_name();
    let gw = subnet.nth(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let subnet6: Subnet6 = reserved.cidr6().parse().unwrap();
    let gw6 = subnet6.nth(1).unwrap();
    let v6 = Some((gw6, 64));
    assert!(netns::ensure_bridge(&bridge, gw, subnet, v6, 1500).unwrap());
    assert!(!netns::ensure_bridge(&bridge, gw, subnet, v6, 1500).unwrap());
    let mut pool = Pool::new(subnet, None, gw);
    let mut pool6 = Pool6::new(subnet6, None, gw6);
    let mut eps = vec![];
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let ns = dir.path().join(name);
        netns::create(&ns).unwrap();
        let addresses = (pool.allocate().unwrap(), pool6.allocate().unwrap());
        let ep = endpoint(&bridge, name, i, addresses, (gw, gw6));
        netns::attach(&ns, &ep).unwrap();
        eps.push((ns, ep));
    }
    assert_eq!(netns::bridge_ports(&bridge).unwrap().len(), 2);
    let (a, b) = (&eps[0], &eps[1]);
    let listener = inside(&b.0, || TcpListener::bind((b.1.address, 7777)).unwrap());
    let client = std::thread::spawn({
        let (ns, addr) = (a.0.clone(), b.1.address);
        move || {
            inside(&ns, || {
                let mut s = TcpStream::connect((addr, 7777)).unwrap();
                s.write_all(b"ping").unwrap();
            })
        }
    });
    let (mut conn, peer) = listener.accept().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    client.join().unwrap();
    assert_eq!((got.as_str(), peer.ip()), ("ping", a.1.address.into()));
    // The host reaches a container through the bridge, too.
    let listener = inside(&a.0, || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7778)).unwrap()
    });
    TcpStream::connect((a.1.address, 7778)).unwrap();
    listener.accept().unwrap();
    v6_and_link_local_talk(a, b);

    // Published port through the daemon's table: 127.0.0.1:PORT → b:7779.
    let port = berth_testkit::alloc::free_port().unwrap();
    let udp_port = berth_testkit::alloc::free_port().unwrap();
    let table = nft::table_name(&bridge);
    let fw = nft::Firewall {
        forward_only_bridges: false,
        networks: vec![nft::BridgeRules {
            bridge: bridge.clone(),
            subnet,
            subnet6: Some(subnet6),
            internal: false,
        }],
        ports: vec![
            nft::PortMap {
                udp: false,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: port,
                addr: b.1.address,
                port: 7779,
            },
            nft::PortMap {
                udp: true,
                host_ip: None,
                host_port: udp_port,
                addr: b.1.address,
                port: 7780,
            },
        ],
    };
    nft::apply(&table, &fw).unwrap();
    let listener = inside(&b.0, || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7779)).unwrap()
    });
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.write_all(b"published").unwrap();
    drop(s);
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, "published");
    let udp = inside(&b.0, || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7780)).unwrap()
    });
    udp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sender
        .send_to(b"datagram", (Ipv4Addr::LOCALHOST, udp_port))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"datagram");
    nft::remove(&table).unwrap();

    for (ns, ep) in &eps {
        netns::detach(&ep.host_ifname).unwrap();
        netns::remove(ns).unwrap();
        assert!(!ns.exists());
    }
    assert!(netns::bridge_ports(&bridge).unwrap().is_empty());
    netns::delete_link(&bridge).unwrap();
    assert!(!Path::new(&format!("/sys/class/net/{bridge}")).exists());
    #[allow(clippy::disallowed_methods)] // checking the kernel's view with the admin's tool
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&tables.stdout).contains(&table));
}
