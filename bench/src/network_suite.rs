//! Suite `network`: what a bridge network adds to `run --rm IMAGE true` — each engine runs the
//! same busybox image with its default bridge network and with `--network none`, interleaved in
//! one group, and the difference of the medians is the network's cost. Berth (berthd driven by
//! the docker CLI 20.10), a private dockerd 20.10 on its own bridge (same CLI, no iptables rules,
//! runc 1.1), and podman 4.3 (CNI bridge, runc) with private storage.

use anyhow::Context;
use berth_testkit::alloc::Subnet;
use berth_testkit::{BusyboxImage, Dockerd, Registry};

use crate::daemons::Berthd;
use crate::measure::output;
use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

pub const ABOUT: &str = "Added time of a bridge network per `run --rm IMAGE true` (bridge minus \
`--network none`, difference of medians): berthd (docker CLI 20.10) vs dockerd 20.10 (same CLI, \
runc 1.1, own bridge, --iptables=false) vs podman 4.3 (CNI bridge plugin, runc, cgroupfs)";

/// What the group needs alive until the report is written; the dockerd bridge goes last.
struct Lab {
    _berthd: Berthd,
    _dockerd: Dockerd,
    _registry: Registry,
    podman: Vec<String>,
    bridge: String,
    _subnet: Subnet,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut reset = self.podman.clone();
        reset.extend(argv(&["system", "reset", "--force"]));
        let _ = output(&reset);
        let _ = berth_net::netns::delete_link(&self.bridge);
        let _ = berth_net::netns::delete_link("cni-podman0");
    }
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let registry = Registry::start().context("starting docker-registry")?;
    registry.push_image(&BusyboxImage::build()?, "bench/bb", "latest")?;
    let image = format!("{}/bench/bb:latest", registry.host());
    let berthd = Berthd::start(&ctx.bin_dir, &ctx.work.join("berthd"))?;
    let subnet = Subnet::reserve()?;
    let bridge = format!("bd{}", &subnet.bridge_name()[6..]);
    let cidr: berth_net::ipam::Subnet = subnet.cidr().parse()?;
    berth_net::netns::ensure_bridge(&bridge, cidr.nth(1).unwrap_or(cidr.network()), cidr, 1500)
        .context("creating dockerd's bridge")?;
    let dockerd = Dockerd::start_on_bridge(&bridge).context("starting dockerd")?;
    let docker = berth_testkit::dockerd::DOCKER_BIN;
    for host in [berthd.host(), dockerd.host()] {
        output(&argv(&[docker, "-H", &host, "pull", "-q", &image]))?;
    }
    let podman_root = ctx.work.join("podman");
    let podman = argv(&[
        "podman",
        "--root",
        &path_str(&podman_root.join("root")),
        "--runroot",
        &path_str(&podman_root.join("run")),
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
        "--runtime",
        "runc",
    ]);
    let podman_ok = crate::measure::locate("podman").is_some();
    if podman_ok {
        let mut pull = podman.clone();
        pull.extend(argv(&["pull", "-q", "--tls-verify=false", &image]));
        output(&pull).context("podman pull")?;
    }
    let run = |host: &str, net: &[&str]| {
        let mut v = argv(&[docker, "-H", host, "run", "--rm"]);
        v.extend(argv(net));
        v.extend(argv(&[&image, "true"]));
        v
    };
    let podman_run = |net: &[&str]| {
        let mut v = podman.clone();
        // The default rlimits (nofile/nproc 1048576) exceed this host's hard limits.
        v.extend(argv(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ]));
        v.extend(argv(net));
        v.extend(argv(&[&image, "true"]));
        v
    };
    let none = ["--network", "none"];
    let (b, d) = (berthd.host(), dockerd.host());
    let contenders = vec![
        Contender::new("berthd · bridge", true, vec![run(&b, &[])]),
        Contender::new("berthd · none", false, vec![run(&b, &none)]),
        Contender::new("dockerd 20.10 · bridge", false, vec![run(&d, &[])]),
        Contender::new("dockerd 20.10 · none", false, vec![run(&d, &none)]),
        Contender::new("podman 4.3 · bridge", false, vec![podman_run(&[])]),
        Contender::new("podman 4.3 · none", false, vec![podman_run(&none)]),
    ];
    let diff = |label: &str, who: &str| {
        (
            format!("{label}: bridge − none"),
            format!("{who} · bridge"),
            format!("{who} · none"),
        )
    };
    let lab = Lab {
        _berthd: berthd,
        _dockerd: dockerd,
        _registry: registry,
        podman,
        bridge,
        _subnet: subnet,
    };
    Ok(Plan {
        groups: vec![Group {
            title: "`run --rm IMAGE true`, default bridge network vs `--network none`".into(),
            contenders,
            differences: vec![
                diff("Berth", "berthd"),
                diff("Docker 20.10", "dockerd 20.10"),
                diff("podman 4.3", "podman 4.3"),
            ],
        }],
        extra: Some(Box::new(move || {
            drop(lab);
            Ok(String::new())
        })),
    })
}
