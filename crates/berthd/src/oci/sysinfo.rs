//! What this host can enforce, as dockerd's `pkg/sysinfo` sees it: the cgroup features probed
//! once at start (berth-cgroups' [`Features`]), plus the network sysctls read when asked. `/info`
//! reports them with dockerd's booleans and warnings; a create or update drops every resource the
//! host cannot honour, with dockerd's warning, instead of failing the start in the runtime.

use berth_api::host_config::Resources;
use berth_cgroups::{Features, Version};

/// The host's features, probed once when the daemon starts.
#[derive(Debug, Clone)]
pub struct SysInfo {
    pub cgroups: Features,
}

impl SysInfo {
    pub fn detect() -> SysInfo {
        SysInfo {
            cgroups: Features::detect_host(),
        }
    }

    fn v2(&self) -> bool {
        self.cgroups.version == Some(Version::V2)
    }

    /// Sets the `/info` fields that describe the host's features.
    pub fn fill_info(&self, info: &mut berth_api::responses::SystemInfo) {
        let f = &self.cgroups;
        info.memory_limit = f.memory_limit;
        info.swap_limit = f.swap_limit;
        info.kernel_memory = f.kernel_memory;
        info.kernel_memory_tcp = f.kernel_memory_tcp;
        info.cpu_cfs_period = f.cpu_cfs_period;
        info.cpu_cfs_quota = f.cpu_cfs_quota;
        info.cpu_shares = f.cpu_shares;
        info.cpu_set = f.cpuset;
        info.pids_limit = f.pids;
        info.oom_kill_disable = f.oom_kill_disable;
        info.ipv4_forwarding = sysctl_on("net/ipv4/ip_forward");
        info.bridge_nf_iptables = sysctl_on("net/bridge/bridge-nf-call-iptables");
        info.bridge_nf_ip6tables = sysctl_on("net/bridge/bridge-nf-call-ip6tables");
        info.cgroup_driver = "cgroupfs".into();
        info.cgroup_version = if self.v2() { "2" } else { "1" }.into();
    }

    /// dockerd's `/info` warnings for what the host lacks, in its order and words.
    pub fn info_warnings(&self) -> Vec<String> {
        let f = &self.cgroups;
        let v2 = self.v2();
        let throttle = |v2_key: &str, v1_file: &str| {
            if v2 {
                format!("WARNING: No io.max ({v2_key}) support")
            } else {
                format!("WARNING: No blkio throttle.{v1_file} support")
            }
        };
        let checks = [
            (
                !f.memory_limit,
                "WARNING: No memory limit support".to_string(),
            ),
            (!f.swap_limit, "WARNING: No swap limit support".to_string()),
            (
                !f.kernel_memory_tcp && !v2,
                "WARNING: No kernel memory TCP limit support".to_string(),
            ),
            (
                !f.oom_kill_disable && !v2,
                "WARNING: No oom kill disable support".to_string(),
            ),
            (
                !f.cpu_cfs_quota,
                "WARNING: No cpu cfs quota support".to_string(),
            ),
            (
                !f.cpu_cfs_period,
                "WARNING: No cpu cfs period support".to_string(),
            ),
            (!f.cpu_shares, "WARNING: No cpu shares support".to_string()),
            (!f.cpuset, "WARNING: No cpuset support".to_string()),
            // dockerd leaves the v1 weight out of /info: CFQ is gone from kernels since 5.0.
            (
                !f.blkio_weight && v2,
                "WARNING: No io.weight support".to_string(),
            ),
            (
                !f.blkio_weight_device && v2,
                "WARNING: No io.weight (per device) support".to_string(),
            ),
            (!f.blkio_read_bps, throttle("rbps", "read_bps_device")),
            (!f.blkio_write_bps, throttle("wbps", "write_bps_device")),
            (!f.blkio_read_iops, throttle("riops", "read_iops_device")),
            (!f.blkio_write_iops, throttle("wiops", "write_iops_device")),
            (
                !sysctl_on("net/ipv4/ip_forward"),
                "WARNING: IPv4 forwarding is disabled".to_string(),
            ),
        ];
        checks
            .into_iter()
            .filter_map(|(missing, w)| missing.then_some(w))
            .collect()
    }
}

/// Records dockerd's warning for a setting dropped.
fn warn(warnings: &mut Vec<String>, text: &str) {
    warnings.push(text.to_string());
}

/// A `/proc/sys` switch is on when it reads `1` (absent or unreadable counts as off, as dockerd).
fn sysctl_on(name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/{name}")).is_ok_and(|s| s.trim() == "1")
}

/// Why a request's resources are refused outright (dockerd's messages).
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"
    )]
    NanoCpus,
    #[error("Your kernel does not support cgroup cpu real-time period")]
    RealtimePeriod,
    #[error("Your kernel does not support cgroup cpu real-time runtime")]
    RealtimeRuntimeMissing,
    #[error("cpu real-time runtime cannot be higher than cpu real-time period")]
    RealtimeRuntime,
}

/// Drops from `r` (a create's or update's resources) every one the host cannot enforce,
/// as dockerd's `verifyPlatformContainerResources` does, and returns its warnings. What dockerd
/// refuses instead (NanoCPUs without CFS, real-time limits without the real-time scheduler) is
/// an error. `network_mode` is the create's (`None` for an update).
pub fn verify_resources(
    si: &SysInfo,
    r: &mut Resources,
    network_mode: Option<&str>,
) -> Result<Vec<String>, ResourceError> {
    let f = &si.cgroups;
    let mut warnings = Vec::new();
    memory(f, r, &mut warnings);
    cpu(f, r, &mut warnings)?;
    blkio(f, r, &mut warnings);
    let isolated = matches!(network_mode, Some("host" | "none")) || network_mode.is_none();
    if !isolated && !sysctl_on("net/ipv4/ip_forward") {
        warnings.push("IPv4 forwarding is disabled. Networking will not work.".into());
    }
    Ok(warnings)
}

/// The memory and pids limits the host cannot enforce, dropped with dockerd's warnings.
fn memory(f: &Features, r: &mut Resources, warnings: &mut Vec<String>) {
    if r.memory > 0 && !f.memory_limit {
        (r.memory, r.memory_swap) = (0, -1);
        warn(
            warnings,
            "Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
    }
    if r.memory > 0 && r.memory_swap != -1 && !f.swap_limit {
        r.memory_swap = -1;
        warn(
            warnings,
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.",
        );
    }
    // The CLI sends -1 for "not set".
    if r.memory_swappiness.is_some_and(|s| s != -1) && !f.memory_swappiness {
        r.memory_swappiness = None;
        warn(
            warnings,
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
        );
    }
    if r.memory_reservation > 0 && !f.memory_reservation {
        r.memory_reservation = 0;
        warn(
            warnings,
            "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
    }
    if r.kernel_memory > 0 && !f.kernel_memory {
        r.kernel_memory = 0;
        warn(
            warnings,
            "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
    }
    if r.oom_kill_disable == Some(true) && !f.oom_kill_disable {
        r.oom_kill_disable = Some(false);
        warn(
            warnings,
            "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        );
    }
    if r.oom_kill_disable == Some(true) && r.memory == 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }
    if r.pids_limit.is_some_and(|p| p > 0) && !f.pids {
        r.pids_limit = None;
        warn(
            warnings,
            "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.",
        );
    }
}

/// The CPU settings: shares, CFS period and quota and cpusets dropped with dockerd's warnings;
/// `NanoCpus` without CFS and realtime settings the host lacks refused with its errors.
fn cpu(f: &Features, r: &mut Resources, warnings: &mut Vec<String>) -> Result<(), ResourceError> {
    if r.cpu_shares > 0 && !f.cpu_shares {
        r.cpu_shares = 0;
        warn(
            warnings,
            "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        );
    }
    if (r.cpu_period != 0 || r.cpu_quota != 0) && !f.cpu_cfs_quota {
        (r.cpu_period, r.cpu_quota) = (0, 0);
        warn(
            warnings,
            "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        );
    }
    if r.nano_cpus > 0 && !f.cpu_cfs_quota {
        return Err(ResourceError::NanoCpus);
    }
    let (rt_period, rt_runtime) = (r.cpu_realtime_period, r.cpu_realtime_runtime);
    if rt_period > 0 && !f.cpu_rt_period {
        return Err(ResourceError::RealtimePeriod);
    }
    if rt_runtime > 0 && !f.cpu_rt_runtime {
        return Err(ResourceError::RealtimeRuntimeMissing);
    }
    if rt_period != 0 && rt_runtime > rt_period {
        return Err(ResourceError::RealtimeRuntime);
    }
    if (!r.cpuset_cpus.is_empty() || !r.cpuset_mems.is_empty()) && !f.cpuset {
        (r.cpuset_cpus, r.cpuset_mems) = (String::new(), String::new());
        warn(
            warnings,
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        );
    }
    Ok(())
}

/// The block I/O weights and throttles the host cannot enforce, dropped with dockerd's warnings.
fn blkio(f: &Features, r: &mut Resources, warnings: &mut Vec<String>) {
    if r.blkio_weight > 0 && !f.blkio_weight {
        r.blkio_weight = 0;
        warn(
            warnings,
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        );
    }
    let set = |l: &Option<Vec<_>>| l.as_ref().is_some_and(|l| !l.is_empty());
    if set(&r.blkio_weight_device) && !f.blkio_weight_device {
        r.blkio_weight_device = Some(Vec::new());
        warn(
            warnings,
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
        );
    }
    let throttles = [
        (
            &mut r.blkio_device_read_bps,
            f.blkio_read_bps,
            "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.",
        ),
        (
            &mut r.blkio_device_write_bps,
            f.blkio_write_bps,
            "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.",
        ),
        (
            &mut r.blkio_device_read_iops,
            f.blkio_read_iops,
            "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.",
        ),
        (
            &mut r.blkio_device_write_iops,
            f.blkio_write_iops,
            "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.",
        ),
    ];
    for (list, supported, text) in throttles {
        if list.as_ref().is_some_and(|l| !l.is_empty()) && !supported {
            *list = Some(Vec::new());
            warn(warnings, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(f: Features) -> SysInfo {
        SysInfo { cgroups: f }
    }

    fn resources(v: serde_json::Value) -> Resources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_host_without_features_drops_them_with_dockers_warnings() {
        let si = host(Features {
            version: Some(Version::V1),
            ..Features::default()
        });
        let mut hc = resources(
            json!({"Memory": 67108864, "MemorySwap": 0, "MemorySwappiness": 10,
            "MemoryReservation": 33554432, "OomKillDisable": true, "PidsLimit": 10,
            "CpuShares": 512, "CpuPeriod": 100000, "CpuQuota": 50000, "CpusetCpus": "0",
            "BlkioWeight": 300, "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}],
            "BlkioWeightDevice": []}),
        );
        let w = verify_resources(&si, &mut hc, Some("none")).unwrap();
        assert_eq!(
            hc,
            resources(
                json!({"Memory": 0, "MemorySwap": -1, "MemorySwappiness": null,
            "MemoryReservation": 0, "OomKillDisable": false, "PidsLimit": null,
            "CpuShares": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "", "CpusetMems": "",
            "BlkioWeight": 0, "BlkioDeviceReadBps": [], "BlkioWeightDevice": []})
            )
        );
        assert_eq!(w.len(), 10, "{w:#?}");
        assert!(w.contains(&"Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".to_string()));
        assert!(w.contains(&"Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.".to_string()));
        let mut hc = resources(json!({"NanoCpus": 1_000_000_000}));
        assert!(matches!(
            verify_resources(&si, &mut hc, None),
            Err(ResourceError::NanoCpus)
        ));
        let mut hc = resources(json!({"CpuRealtimeRuntime": 1000}));
        assert!(matches!(
            verify_resources(&si, &mut hc, None),
            Err(ResourceError::RealtimeRuntimeMissing)
        ));
        assert!(
            si.info_warnings()
                .contains(&"WARNING: No swap limit support".to_string())
        );
        assert!(
            !si.info_warnings()
                .contains(&"WARNING: No io.weight support".to_string())
        );
    }

    #[test]
    fn a_host_with_every_feature_keeps_the_request() {
        let si = host(Features {
            version: Some(Version::V1),
            memory_limit: true,
            swap_limit: true,
            memory_reservation: true,
            memory_swappiness: true,
            oom_kill_disable: true,
            cpu_shares: true,
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpuset: true,
            pids: true,
            blkio_weight: true,
            blkio_read_bps: true,
            ..Features::default()
        });
        let sent = resources(
            json!({"Memory": 67108864, "MemorySwappiness": 10, "OomKillDisable": true,
            "PidsLimit": 10, "CpuShares": 512, "CpuQuota": 50000, "CpusetCpus": "0",
            "BlkioWeight": 300, "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}]}),
        );
        let mut hc = sent.clone();
        assert!(
            verify_resources(&si, &mut hc, Some("host"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(hc, sent);
        let mut hc = resources(json!({"OomKillDisable": true}));
        assert_eq!(
            verify_resources(&si, &mut hc, Some("host")).unwrap(),
            [
                "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources."
            ]
        );
    }
}
