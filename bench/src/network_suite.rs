//! Suite `network`: what a bridge network adds to `run --rm IMAGE true` — each engine runs the
//! same busybox image with its default bridge network and with `--network none`, interleaved in
//! one group, and the difference of the medians is the network's cost. Berth (berthd driven by
//! the docker CLI 20.10), a private dockerd 20.10 on its own bridge (same CLI, no iptables rules,
//! runc 1.1), and podman 4.3 (CNI bridge, runc) with private storage.

use crate::engines::Engines;
use crate::suites::{Contender, Ctx, Group, Plan};

pub const ABOUT: &str = "Added time of a bridge network per `run --rm IMAGE true` (bridge minus \
`--network none`, difference of medians): berthd (docker CLI 20.10) vs dockerd 20.10 (same CLI, \
runc 1.1, own bridge, --iptables=false) vs podman 4.3 (CNI bridge plugin, runc, cgroupfs)";

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let e = Engines::start(ctx)?;
    let none = ["--network", "none"];
    let (b, d) = (e.berthd.host(), e.dockerd.host());
    let mut contenders = vec![
        Contender::new("berthd · bridge", true, vec![e.docker_run(&b, &[])]),
        Contender::new("berthd · none", false, vec![e.docker_run(&b, &none)]),
        Contender::new("dockerd 20.10 · bridge", false, vec![e.docker_run(&d, &[])]),
        Contender::new("dockerd 20.10 · none", false, vec![e.docker_run(&d, &none)]),
    ];
    let diff = |label: &str, who: &str| {
        (
            format!("{label}: bridge − none"),
            format!("{who} · bridge"),
            format!("{who} · none"),
        )
    };
    let mut differences = vec![
        diff("Berth", "berthd"),
        diff("Docker 20.10", "dockerd 20.10"),
    ];
    if e.has_podman() {
        contenders.push(Contender::new(
            "podman 4.3 · bridge",
            false,
            vec![e.podman_run(&[])],
        ));
        contenders.push(Contender::new(
            "podman 4.3 · none",
            false,
            vec![e.podman_run(&none)],
        ));
        differences.push(diff("podman 4.3", "podman 4.3"));
    }
    Ok(Plan {
        groups: vec![Group {
            title: "`run --rm IMAGE true`, default bridge network vs `--network none`".into(),
            contenders,
            differences,
        }],
        extra: Some(Box::new(move || {
            drop(e);
            Ok(String::new())
        })),
    })
}
