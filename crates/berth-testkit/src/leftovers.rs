//! What a berthd under test may leave behind when its test fails: shims still running, overlay
//! mounts under its data root, its cgroups, its pinned network namespaces, bridges and nftables
//! table. Every harness that starts a berthd (with [`spawn_berthd`]) sweeps with this after
//! stopping it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sweeps everything of the daemon with these roots, cgroup parent and default bridge.
pub fn sweep(exec_root: &Path, data_root: &Path, cgroup_parent: &str, bridge: &str) {
    processes_and_mounts(exec_root, data_root, cgroup_parent);
    network(exec_root, data_root, bridge);
}

/// Shuts down every shim under `exec_root` (each force-deletes its container) and unmounts
/// whatever is still mounted under `data_root`: what a failed test may leave behind.
fn processes_and_mounts(exec_root: &Path, data_root: &Path, cgroup_parent: &str) {
    let list = |d: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for ns in list(&exec_root.join("tasks")) {
        for task in list(&ns) {
            if let Ok(mut s) = UnixStream::connect(task.join("shim.sock")) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"{\"op\":\"shutdown\"}\n");
                let _ = s.read(&mut [0u8; 256]);
            }
        }
    }
    let prefix = data_root.display().to_string();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    for m in mounts.iter().rev() {
        let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
    // The containers' cgroups first (a cgroup directory goes only once it has no children and
    // no process: a container init whose shim died is killed here).
    let parent = cgroup_parent.trim_start_matches('/');
    let v1_and_v2 = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"];
    for child in v1_and_v2
        .iter()
        .flat_map(|h| list(&Path::new(h).join(parent)))
        .filter(|c| c.join("cgroup.procs").exists())
    {
        let procs = std::fs::read_to_string(child.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = crate::wait_for(Duration::from_secs(5), "killed processes to go", || {
            std::fs::read_to_string(child.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
        });
    }
    let mut parents: Vec<std::path::PathBuf> = list(Path::new("/sys/fs/cgroup"))
        .into_iter()
        .map(|h| h.join(parent))
        .collect();
    parents.push(Path::new("/sys/fs/cgroup").join(parent));
    for p in parents {
        for child in list(&p).into_iter().filter(|c| c.is_dir()) {
            let _ = std::fs::remove_dir(child);
        }
        let _ = std::fs::remove_dir(p);
    }
}

/// Removes what a failed test may leave of its daemon's networking: pinned namespaces, the
/// bridges of its networks, its nftables table.
fn network(exec_root: &Path, data_root: &Path, bridge: &str) {
    for ns in berth_net::netns::list(&exec_root.join("netns")) {
        let _ = berth_net::netns::remove(&ns);
    }
    let mut bridges = vec![bridge.to_string()];
    for e in std::fs::read_dir(data_root.join("meta/networks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let v: serde_json::Value = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(b) = v["bridge"].as_str().filter(|b| !b.is_empty()) {
            bridges.push(b.to_string());
        }
    }
    for b in bridges {
        let _ = berth_net::netns::delete_link(&b);
    }
    let _ = berth_net::nft::remove(&berth_net::nft::table_name(bridge));
}

/// The parent cgroup of a test daemon whose roots are under `dir`: `/<prefix>-<dir's name>`, its
/// own, since tests run side by side.
pub fn cgroup_parent_for(dir: &Path, prefix: &str) -> String {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    format!("/{prefix}-{name}")
}

/// Where a berthd under test keeps everything, all its own: tests run side by side.
pub struct BerthdSetup<'a> {
    pub data_root: &'a Path,
    pub exec_root: &'a Path,
    pub socket: &'a Path,
    pub cgroup_parent: &'a str,
    /// Its default bridge (name and address).
    pub bridge: &'a crate::Subnet,
    /// Where its networks created without a subnet get theirs (/26s).
    pub pool: &'a crate::Subnet,
    /// Its registries' CA certificates (`DIR/<host:port>/*.crt`), not the host's.
    pub registry_certs_dir: &'a Path,
    /// Extra environment (failpoints: `BERTH_FAILPOINTS`, `BERTH_FAILPOINTS_LOG`).
    pub env: &'a [(&'a str, &'a std::ffi::OsStr)],
}

/// Starts the berthd at `bin` on `setup` (log level from `BERTHD_LOG`, else `log_level`) and
/// waits until its API socket answers.
pub fn spawn_berthd(
    bin: &Path,
    setup: &BerthdSetup<'_>,
    log_level: &str,
) -> anyhow::Result<std::process::Child> {
    #[allow(clippy::disallowed_methods)] // the daemon under test
    let child = std::process::Command::new(bin)
        .arg("--data-root")
        .arg(setup.data_root)
        .arg("--exec-root")
        .arg(setup.exec_root)
        .arg("-H")
        .arg(format!("unix://{}", setup.socket.display()))
        .arg("--cgroup-parent")
        .arg(setup.cgroup_parent)
        .arg("--bridge")
        .arg(setup.bridge.bridge_name())
        .arg("--bip")
        .arg(setup.bridge.bip())
        .arg("--default-address-pool")
        .arg(format!("base={},size=26", setup.pool.cidr()))
        .arg("--registry-certs-dir")
        .arg(setup.registry_certs_dir)
        .arg("--log-level")
        .arg(std::env::var("BERTHD_LOG").unwrap_or_else(|_| log_level.into()))
        .envs(setup.env.iter().copied())
        .stdin(std::process::Stdio::null())
        .spawn()?;
    crate::wait_for(Duration::from_secs(10), "the Engine API socket", || {
        UnixStream::connect(setup.socket).is_ok()
    })?;
    Ok(child)
}
