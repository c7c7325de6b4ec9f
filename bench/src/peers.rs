//! Installing the peers from Debian and preparing this host for them.

use anyhow::Context;

/// Debian packages of the peers Berth is measured against.
pub const PEER_PACKAGES: [&str; 6] = [
    "runc",
    "crun",
    "containerd",
    "docker.io",
    "podman",
    "skopeo",
];

/// Installs the peers with apt-get and mounts what crun needs on a hybrid cgroup host.
pub fn install() -> anyhow::Result<()> {
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(PEER_PACKAGES);
    apt(&args)?;
    prepare_hugetlb()
}

#[allow(clippy::disallowed_methods)] // the package manager is the contract for installing peers
fn apt(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    anyhow::ensure!(
        status.success(),
        "apt-get {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}

/// crun refuses a hybrid cgroup layout unless hugetlb has its own v1 hierarchy; mount it if the
/// kernel has the controller and nothing mounted it.
fn prepare_hugetlb() -> anyhow::Result<()> {
    let target = std::path::Path::new("/sys/fs/cgroup/hugetlb");
    let cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let has_controller = cgroups
        .lines()
        .any(|l| l.split_whitespace().next() == Some("hugetlb"));
    if !has_controller || target.join("cgroup.procs").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(target)?;
    rustix_mount(target)
}

fn rustix_mount(target: &std::path::Path) -> anyhow::Result<()> {
    use rustix::mount::{MountFlags, mount};
    mount(
        "cgroup",
        target,
        "cgroup",
        MountFlags::empty(),
        Some(c"hugetlb"),
    )
    .with_context(|| format!("mounting the hugetlb cgroup on {}", target.display()))
}
