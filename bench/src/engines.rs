//! The three container engines the `run` and `network` suites compare, started once per suite:
//! a private berthd (driven by the docker CLI 20.10), a private dockerd 20.10 on a bridge of its
//! own (same CLI, runc 1.1, no iptables rules) and podman 4.3 (runc, cgroupfs, private storage),
//! each with the busybox image pulled from a docker-registry on loopback.

use std::path::Path;

use anyhow::Context;
use berth_testkit::alloc::Subnet;
use berth_testkit::{BusyboxImage, Dockerd, Registry};

use crate::daemons::Berthd;
use crate::measure::output;
use crate::proc_mem::{Usage, processes_mentioning};
use crate::suites::{Ctx, argv, path_str};

pub const DOCKER: &str = berth_testkit::dockerd::DOCKER_BIN;

pub struct Engines {
    pub berthd: Berthd,
    /// The baseline build's berthd (`--baseline-bin-dir`), if any.
    pub baseline: Option<Berthd>,
    pub dockerd: Dockerd,
    _registry: Registry,
    /// `podman` with its private roots and options; empty when podman is not installed.
    podman: Vec<String>,
    bridge: String,
    _subnet: Subnet,
    pub image: String,
}

impl Drop for Engines {
    fn drop(&mut self) {
        if !self.podman.is_empty() {
            let _ = output(&self.podman(&["system", "reset", "--force"]));
            let _ = berth_net::netns::delete_link("cni-podman0");
        }
        let _ = berth_net::netns::delete_link(&self.bridge);
    }
}

impl Engines {
    pub fn start(ctx: &Ctx) -> anyhow::Result<Engines> {
        let registry = Registry::start().context("starting docker-registry")?;
        registry.push_image(&BusyboxImage::build()?, "bench/bb", "latest")?;
        let image = format!("{}/bench/bb:latest", registry.host());
        let berthd = Berthd::start(ctx)?;
        let subnet = Subnet::reserve()?;
        let bridge = format!("bd{}", &subnet.bridge_name()[6..]);
        let cidr: berth_net::ipam::Subnet = subnet.cidr().parse()?;
        berth_net::netns::ensure_bridge(
            &bridge,
            cidr.nth(1).unwrap_or(cidr.network()),
            cidr,
            None,
            1500,
        )
        .context("creating dockerd's bridge")?;
        let dockerd = Dockerd::start_on_bridge(&bridge, Some(Path::new(crate::suites::TMPFS)))
            .context("starting dockerd")?;
        let baseline = match &ctx.baseline_bin_dir {
            Some(dir) => Some(Berthd::start_from(dir, &ctx.work.join("berthd-baseline"))?),
            None => None,
        };
        let hosts = [berthd.host(), dockerd.host()]
            .into_iter()
            .chain(baseline.as_ref().map(Berthd::host));
        for host in hosts {
            output(&argv(&[DOCKER, "-H", &host, "pull", "-q", &image]))?;
        }
        let podman = if crate::measure::locate("podman").is_some() {
            podman_argv(&ctx.work.join("podman"), &ctx.state.join("podman"))
        } else {
            Vec::new()
        };
        let engines = Engines {
            berthd,
            baseline,
            dockerd,
            _registry: registry,
            podman,
            bridge,
            _subnet: subnet,
            image,
        };
        if engines.has_podman() {
            output(&engines.podman(&["pull", "-q", "--tls-verify=false", &engines.image]))
                .context("podman pull")?;
        }
        Ok(engines)
    }

    pub fn has_podman(&self) -> bool {
        !self.podman.is_empty()
    }

    /// `docker -H HOST ARGS…`.
    pub fn docker(&self, host: &str, args: &[&str]) -> Vec<String> {
        let mut v = argv(&[DOCKER, "-H", host]);
        v.extend(argv(args));
        v
    }

    /// `podman ARGS…` on the private roots.
    pub fn podman(&self, args: &[&str]) -> Vec<String> {
        let mut v = self.podman.clone();
        v.extend(argv(args));
        v
    }

    /// `docker -H HOST run --rm NET… IMAGE true`.
    pub fn docker_run(&self, host: &str, net: &[&str]) -> Vec<String> {
        let mut v = self.docker(host, &["run", "--rm"]);
        v.extend(argv(net));
        v.extend(argv(&[&self.image, "true"]));
        v
    }

    /// `podman run --rm NET… IMAGE true`, with rlimits within this host's hard limits (podman's
    /// default nofile/nproc of 1048576 exceed them).
    pub fn podman_run(&self, net: &[&str]) -> Vec<String> {
        let mut v = self.podman(&["run", "--rm"]);
        v.extend(argv(&PODMAN_ULIMITS));
        v.extend(argv(net));
        v.extend(argv(&[&self.image, "true"]));
        v
    }

    /// berthd and its berth-containerd, now.
    pub fn berth_memory(&self) -> anyhow::Result<Vec<(String, Usage)>> {
        let mut out = vec![("berthd".to_string(), Usage::of(self.berthd.pid())?)];
        if let Some(pid) = self.berthd.containerd_pid() {
            out.push(("berth-containerd".to_string(), Usage::of(pid)?));
        }
        Ok(out)
    }

    /// dockerd and the containerd it started, now.
    pub fn docker_memory(&self) -> anyhow::Result<Vec<(String, Usage)>> {
        let pid = std::fs::read_to_string(self.dockerd.path().join("docker.pid"))?
            .trim()
            .parse::<u32>()?;
        let mut out = vec![("dockerd 20.10".to_string(), Usage::of(pid)?)];
        let exec = path_str(&self.dockerd.exec_root());
        for pid in processes_mentioning(&["containerd", "--config", &exec]) {
            if !cmdline(pid).contains("shim") {
                out.push(("containerd 1.6".to_string(), Usage::of(pid)?));
            }
        }
        Ok(out)
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// `podman` on private storage under `root` and run state under `run` (cgroupfs, file events,
/// runc), as every suite runs it.
pub fn podman_argv(root: &Path, run: &Path) -> Vec<String> {
    argv(&[
        "podman",
        "--root",
        &path_str(&root.join("root")),
        "--runroot",
        &path_str(run),
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
        "--runtime",
        "runc",
    ])
}

/// `podman run` rlimits within this host's hard limits (podman's default nofile/nproc of
/// 1048576 exceed them).
pub const PODMAN_ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];
