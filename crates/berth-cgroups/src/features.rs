//! What this host's cgroups can enforce, probed from the files the kernel offers: the answers a
//! daemon reports in `/info` and checks a create request against (dockerd's `pkg/sysinfo`), and
//! the ones tests assert behaviour for.
//!
//! v1: a feature is there when its hierarchy is mounted and its file exists. Files the kernel
//! shows only below the root (BFQ's `blkio.bfq.weight`) are looked for in a short-lived probe
//! child of the hierarchy's root. v2: a feature is there when its controller is listed in the
//! root's `cgroup.controllers` (what can be delegated to the cgroups made below it).

use std::path::{Path, PathBuf};

use crate::files;
use crate::layout::{Layout, Version};

/// The cgroup features of one host. Every field is `false` when its controller is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// The version resources are applied with; `None` when no cgroup is mounted at all.
    pub version: Option<Version>,
    /// The cgroup v2 controllers the root offers (empty on v1 and hybrid hosts).
    pub v2_controllers: Vec<String>,
    /// Memory limit (`memory.limit_in_bytes`, v2 `memory.max`).
    pub memory_limit: bool,
    /// Memory+swap limit (`memory.memsw.limit_in_bytes`: swap accounting; v2 `memory.swap.max`).
    pub swap_limit: bool,
    /// Soft limit (`memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_reservation: bool,
    /// `memory.swappiness` (v1 only).
    pub memory_swappiness: bool,
    /// Kernel memory limit (`memory.kmem.limit_in_bytes`, v1 only).
    pub kernel_memory: bool,
    /// Kernel TCP buffer limit (`memory.kmem.tcp.limit_in_bytes`, v1 only).
    pub kernel_memory_tcp: bool,
    /// OOM killer disabled per cgroup (`memory.oom_control`, v1 only).
    pub oom_kill_disable: bool,
    /// CPU shares (`cpu.shares`, v2 `cpu.weight`).
    pub cpu_shares: bool,
    /// CFS period (`cpu.cfs_period_us`, v2 `cpu.max`).
    pub cpu_cfs_period: bool,
    /// CFS quota (`cpu.cfs_quota_us`, v2 `cpu.max`).
    pub cpu_cfs_quota: bool,
    /// Real-time period (`cpu.rt_period_us`, v1 only, `CONFIG_RT_GROUP_SCHED`).
    pub cpu_rt_period: bool,
    /// Real-time runtime (`cpu.rt_runtime_us`, v1 only).
    pub cpu_rt_runtime: bool,
    /// The cpuset controller (`cpuset.cpus`, `cpuset.mems`).
    pub cpuset: bool,
    /// The pids controller (`pids.max`).
    pub pids: bool,
    /// Block I/O weight (`blkio.weight` or BFQ's `blkio.bfq.weight`; v2 the io controller).
    pub blkio_weight: bool,
    /// Block I/O weight per device (`blkio.weight_device` or `blkio.bfq.weight_device`).
    pub blkio_weight_device: bool,
    /// `blkio.throttle.read_bps_device` (v2 `io.max`).
    pub blkio_read_bps: bool,
    /// `blkio.throttle.write_bps_device` (v2 `io.max`).
    pub blkio_write_bps: bool,
    /// `blkio.throttle.read_iops_device` (v2 `io.max`).
    pub blkio_read_iops: bool,
    /// `blkio.throttle.write_iops_device` (v2 `io.max`).
    pub blkio_write_iops: bool,
    /// The hugetlb controller.
    pub hugetlb: bool,
    /// The net_cls controller (v1 only).
    pub net_cls: bool,
    /// The net_prio controller (v1 only).
    pub net_prio: bool,
    /// The devices controller (v2: always, through eBPF).
    pub devices: bool,
    /// The freezer (v1 controller; v2 `cgroup.freeze`, always).
    pub freezer: bool,
}

impl Features {
    /// Probes the host's cgroup mounts. Never fails: what cannot be read is reported absent.
    pub fn detect(layout: &Layout) -> Features {
        match layout.version() {
            Version::V1 => v1(layout),
            Version::V2 => match layout.v2_mount() {
                Some(m) => v2(&m.mountpoint),
                None => Features::default(),
            },
        }
    }

    /// Probes the host; no cgroup mounts at all gives every feature absent.
    pub fn detect_host() -> Features {
        Layout::detect()
            .map(|l| Features::detect(&l))
            .unwrap_or_default()
    }
}

fn v1(layout: &Layout) -> Features {
    let mounts = layout.v1_mounts();
    let root = |controller: &str| mounts.get(controller).map(|m| m.mountpoint.clone());
    let has =
        |controller: &str, file: &str| root(controller).is_some_and(|d| files::exists(&d, file));
    let memory = |file: &str| has("memory", file);
    let cpu = |file: &str| has("cpu", file);
    let (blkio_weight, blkio_weight_device) = match root("blkio") {
        Some(dir) => blkio_weights(&dir),
        None => (false, false),
    };
    Features {
        version: Some(Version::V1),
        v2_controllers: Vec::new(),
        memory_limit: memory("memory.limit_in_bytes"),
        swap_limit: memory("memory.memsw.limit_in_bytes"),
        memory_reservation: memory("memory.soft_limit_in_bytes"),
        memory_swappiness: memory("memory.swappiness"),
        kernel_memory: memory("memory.kmem.limit_in_bytes"),
        kernel_memory_tcp: memory("memory.kmem.tcp.limit_in_bytes"),
        oom_kill_disable: memory("memory.oom_control"),
        cpu_shares: cpu("cpu.shares"),
        cpu_cfs_period: cpu("cpu.cfs_period_us"),
        cpu_cfs_quota: cpu("cpu.cfs_quota_us"),
        cpu_rt_period: cpu("cpu.rt_period_us"),
        cpu_rt_runtime: cpu("cpu.rt_runtime_us"),
        cpuset: has("cpuset", "cpuset.cpus") && has("cpuset", "cpuset.mems"),
        pids: root("pids").is_some(),
        blkio_weight,
        blkio_weight_device,
        blkio_read_bps: has("blkio", "blkio.throttle.read_bps_device"),
        blkio_write_bps: has("blkio", "blkio.throttle.write_bps_device"),
        blkio_read_iops: has("blkio", "blkio.throttle.read_iops_device"),
        blkio_write_iops: has("blkio", "blkio.throttle.write_iops_device"),
        hugetlb: root("hugetlb").is_some(),
        net_cls: root("net_cls").is_some(),
        net_prio: root("net_prio").is_some(),
        devices: root("devices").is_some(),
        freezer: root("freezer").is_some(),
    }
}

/// v1 weight and weight-per-device: CFQ's files (gone from current kernels) or BFQ's, which the
/// kernel shows only below the root, so a probe child is made and removed when the root has
/// neither.
fn blkio_weights(root: &Path) -> (bool, bool) {
    let look = |dir: &Path| {
        let any = |names: [&str; 2]| names.iter().any(|f| files::exists(dir, f));
        (
            any(["blkio.weight", "blkio.bfq.weight"]),
            any(["blkio.weight_device", "blkio.bfq.weight_device"]),
        )
    };
    let at_root = look(root);
    if at_root.0 && at_root.1 {
        return at_root;
    }
    match ProbeDir::make(root) {
        Some(probe) => {
            let below = look(&probe.0);
            (at_root.0 || below.0, at_root.1 || below.1)
        }
        None => at_root,
    }
}

/// A child cgroup made only to see which files the kernel gives a non-root cgroup; removed on drop.
struct ProbeDir(PathBuf);

impl ProbeDir {
    fn make(root: &Path) -> Option<ProbeDir> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!("berth-probe-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(ProbeDir(dir)),
            // A probe left by a crash of a process that had this pid (pid 1 in a container
            // has it every time): empty, it goes, and this probe takes its place.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::remove_dir(&dir)
                .and_then(|()| std::fs::create_dir(&dir))
                .ok()
                .map(|()| ProbeDir(dir)),
            Err(_) => None,
        }
    }
}

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// v2: what the root can delegate. Swap and the io weight files exist only below the root, so
/// they follow their controller, as dockerd's probe does.
fn v2(root: &Path) -> Features {
    let controllers: Vec<String> = files::read_optional(root, "cgroup.controllers")
        .ok()
        .flatten()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let has = |c: &str| controllers.iter().any(|x| x == c);
    let (memory, cpu, io) = (has("memory"), has("cpu"), has("io"));
    Features {
        version: Some(Version::V2),
        memory_limit: memory,
        swap_limit: memory,
        memory_reservation: memory,
        cpu_shares: cpu,
        cpu_cfs_period: cpu,
        cpu_cfs_quota: cpu,
        cpuset: has("cpuset"),
        pids: has("pids"),
        blkio_weight: io,
        blkio_weight_device: io,
        blkio_read_bps: io,
        blkio_write_bps: io,
        blkio_read_iops: io,
        blkio_write_iops: io,
        hugetlb: has("hugetlb"),
        devices: true,
        freezer: true,
        v2_controllers: controllers,
        ..Features::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_features_follow_the_roots_controllers() {
        let dir = std::env::temp_dir().join(format!("berth-features-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), "cpuset cpu pids\n").unwrap();
        let f = Features::detect(&Layout::v2_at(dir.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(f.version, Some(Version::V2));
        assert_eq!(f.v2_controllers, ["cpuset", "cpu", "pids"]);
        assert!(f.cpu_shares && f.cpu_cfs_quota && f.cpuset && f.pids);
        assert!(!f.memory_limit && !f.swap_limit && !f.blkio_weight && !f.blkio_read_bps);
        assert!(!f.kernel_memory && !f.oom_kill_disable && !f.memory_swappiness);
        assert!(!f.cpu_rt_period && !f.hugetlb && !f.net_cls);
    }
}
