//! Suite `run`: the engine as a user meets it — `docker run --rm IMAGE true` with `--network
//! none` and with the default bridge network, and `docker exec CTR true` into a running
//! container, against berthd vs a private dockerd 20.10 (same docker CLI 20.10) vs podman 4.3;
//! then the memory of each daemon pair: berthd + berth-containerd against dockerd + containerd,
//! idle before the runs and again after them (with no container left).

use std::fmt::Write as _;

use crate::engines::Engines;
use crate::measure::output;
use crate::proc_mem::Usage;
use crate::suites::{Contender, Ctx, Group, Plan, argv};

pub const ABOUT: &str = "`run --rm IMAGE true` (--network none and bridge) and `exec CTR true`: \
berthd (docker CLI 20.10) vs dockerd 20.10 (same CLI, runc 1.1) vs podman 4.3 (runc, cgroupfs); \
idle RSS/PSS of berthd + berth-containerd vs dockerd + containerd. Targets (issue 6): run ≤ 0.1 × \
Docker, exec ≤ 0.2 × Docker, idle RSS ≤ 0.15 × Docker";

const EXEC_CTR: &str = "bench-exec";

fn memory_table(title: &str, e: &Engines) -> anyhow::Result<String> {
    let berth = e.berth_memory()?;
    let docker = e.docker_memory()?;
    let sum = |v: &[(String, Usage)]| Usage::total(&v.iter().map(|(_, u)| *u).collect::<Vec<_>>());
    let (b, d) = (sum(&berth), sum(&docker));
    let mut s = format!("\n## {title}\n\n| process | RSS KiB | PSS KiB |\n|---|---:|---:|\n");
    for (name, u) in berth.iter().chain(docker.iter()) {
        let _ = writeln!(s, "| {name} | {} | {} |", u.rss_kib, u.pss_kib);
    }
    let ratio = |x: u64, y: u64| crate::stats::ratio(x as f64, y as f64).unwrap_or(0.0);
    let _ = writeln!(
        s,
        "| **Berth total** | **{}** | **{}** |\n| **Docker total** | **{}** | **{}** |\n\nBerth / Docker: RSS {:.3}, PSS {:.3}",
        b.rss_kib,
        b.pss_kib,
        d.rss_kib,
        d.pss_kib,
        ratio(b.rss_kib, d.rss_kib),
        ratio(b.pss_kib, d.pss_kib)
    );
    Ok(s)
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let e = Engines::start(ctx)?;
    // Let the daemons settle after start and the first pull.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle = memory_table("Daemon memory, idle after start and one pull", &e)?;
    let none = ["--network", "none"];
    let (b, d) = (e.berthd.host(), e.dockerd.host());
    let base = e.baseline.as_ref().map(crate::daemons::Berthd::host);
    let sleeper = |cmd: Vec<String>| output(&cmd).map(|_| ());
    for host in [Some(&b), Some(&d), base.as_ref()].into_iter().flatten() {
        sleeper(e.docker(
            host,
            &[
                "run",
                "-d",
                "--name",
                EXEC_CTR,
                "--network",
                "none",
                &e.image,
                "sleep",
                "1000000",
            ],
        ))?;
    }
    let mut run_none = vec![
        Contender::new("berthd", true, vec![e.docker_run(&b, &none)]),
        Contender::new("dockerd 20.10", false, vec![e.docker_run(&d, &none)]),
    ];
    let mut run_bridge = vec![
        Contender::new("berthd", true, vec![e.docker_run(&b, &[])]),
        Contender::new("dockerd 20.10", false, vec![e.docker_run(&d, &[])]),
    ];
    let mut exec = vec![
        Contender::new(
            "berthd",
            true,
            vec![e.docker(&b, &["exec", EXEC_CTR, "true"])],
        ),
        Contender::new(
            "dockerd 20.10",
            false,
            vec![e.docker(&d, &["exec", EXEC_CTR, "true"])],
        ),
    ];
    if let Some(host) = &base {
        let name = "berthd (baseline)";
        run_none.push(Contender::new(name, false, vec![e.docker_run(host, &none)]));
        run_bridge.push(Contender::new(name, false, vec![e.docker_run(host, &[])]));
        let exec_step = e.docker(host, &["exec", EXEC_CTR, "true"]);
        exec.push(Contender::new(name, false, vec![exec_step]));
    }
    if e.has_podman() {
        let mut cmd = e.podman(&["run", "-d", "--name", EXEC_CTR, "--network", "none"]);
        cmd.extend(argv(&crate::engines::PODMAN_ULIMITS));
        cmd.extend(argv(&[&e.image, "sleep", "1000000"]));
        sleeper(cmd)?;
        run_none.push(Contender::new(
            "podman 4.3",
            false,
            vec![e.podman_run(&none)],
        ));
        run_bridge.push(Contender::new("podman 4.3", false, vec![e.podman_run(&[])]));
        exec.push(Contender::new(
            "podman 4.3",
            false,
            vec![e.podman(&["exec", EXEC_CTR, "true"])],
        ));
    }
    let group = |title: &str, contenders| Group {
        title: title.into(),
        contenders,
        differences: vec![],
    };
    Ok(Plan {
        groups: vec![
            group("`run --rm IMAGE true`, `--network none`", run_none),
            group("`run --rm IMAGE true`, default bridge network", run_bridge),
            group("`exec CTR true` into a running container", exec),
        ],
        extra: Some(Box::new(move || {
            let base = e.baseline.as_ref().map(crate::daemons::Berthd::host);
            for host in [Some(e.berthd.host()), Some(e.dockerd.host()), base]
                .into_iter()
                .flatten()
            {
                let _ = output(&e.docker(&host, &["rm", "-f", EXEC_CTR]));
            }
            if e.has_podman() {
                let _ = output(&e.podman(&["rm", "-f", "-t", "0", EXEC_CTR]));
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
            let after = memory_table("Daemon memory after the runs, no container left", &e)?;
            drop(e);
            Ok(format!("{idle}{after}"))
        })),
    })
}
