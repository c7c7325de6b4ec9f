//! cgroup v1: one directory per mounted hierarchy; applying OCI resources to the per-controller files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::devices::DevRule;
use crate::files::{self, check_cpuset_list, check_line, check_page_size, check_word, invalid};
use crate::layout::Layout;
use crate::stats::{self, Stats};
use crate::{Error, FREEZE_TIMEOUT};

/// v1 reports "unlimited" as the largest page-aligned i64; anything this large means no limit.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;
/// `cpuacct.stat` counts in USER_HZ ticks, which is 100 on every Linux ABI.
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

/// A cgroup on a v1 (or hybrid) host.
#[derive(Debug, Clone)]
pub(crate) struct V1Cgroup {
    /// hierarchy name (controller or `name=systemd`) → (mountpoint, cgroup directory).
    dirs: BTreeMap<String, (PathBuf, PathBuf)>,
    /// The same cgroup in the controller-less cgroup2 tree of a hybrid host.
    unified: Option<PathBuf>,
}

impl V1Cgroup {
    pub(crate) fn new(layout: &Layout, path: &str) -> V1Cgroup {
        let dirs = layout
            .v1_mounts()
            .iter()
            .map(|(name, mount)| (name.clone(), (mount.mountpoint.clone(), mount.dir_of(path))))
            .collect();
        let unified = layout.v2_mount().map(|m| m.dir_of(path));
        V1Cgroup { dirs, unified }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.get(controller).map(|(_, dir)| dir.as_path())
    }

    /// The directory of a controller that a requested resource needs.
    fn need(&self, controller: &'static str, what: &'static str) -> Result<&Path, Error> {
        self.dir(controller)
            .ok_or(Error::ControllerMissing { controller, what })
    }

    /// Every distinct directory (co-mounted controllers share one), plus the hybrid cgroup2 one.
    fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, dir) in self.dirs.values() {
            if !out.contains(&dir.as_path()) {
                out.push(dir);
            }
        }
        out.extend(self.unified.as_deref());
        out
    }

    pub(crate) fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = self
            .dirs
            .iter()
            .map(|(name, (_, dir))| (name.clone(), dir.clone()))
            .collect();
        out.extend(self.unified.iter().map(|dir| (String::new(), dir.clone())));
        out
    }

    pub(crate) fn create(&self) -> Result<(), Error> {
        for dir in self.unique_dirs() {
            files::create_dirs(dir)?;
        }
        if let Some((mountpoint, dir)) = self.dirs.get("cpuset") {
            fill_cpuset(mountpoint, dir, "cpuset.cpus")?;
            fill_cpuset(mountpoint, dir, "cpuset.mems")?;
        }
        Ok(())
    }

    /// The hybrid host's cgroup2 directory of this cgroup.
    pub(crate) fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// `tasks` of every v1 hierarchy, open for writing.
    pub(crate) fn open_tasks_files(&self) -> Result<Vec<std::fs::File>, Error> {
        let mut out = Vec::new();
        for dir in self.unique_dirs() {
            if Some(dir) == self.unified.as_deref() {
                continue;
            }
            let path = dir.join("tasks");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Error::AddPid {
                    pid: 0,
                    path,
                    source,
                })?;
            out.push(f);
        }
        Ok(out)
    }

    /// Writes `pid` to `cgroup.procs` of the v1 hierarchies (`v1`) and of the hybrid cgroup2
    /// tree (`unified`).
    pub(crate) fn add_pid_where(&self, pid: i32, v1: bool, unified: bool) -> Result<(), Error> {
        for dir in self.unique_dirs() {
            let is_unified = Some(dir) == self.unified.as_deref();
            if (is_unified && !unified) || (!is_unified && !v1) {
                continue;
            }
            let path = dir.join("cgroup.procs");
            std::fs::write(&path, pid.to_string()).map_err(|source| Error::AddPid {
                pid,
                path,
                source,
            })?;
        }
        Ok(())
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<(), Error> {
        self.add_pid_where(pid, true, true)
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        if let Some(cpu) = r.cpu() {
            self.apply_cpuset(cpu)?;
        }
        if let Some(memory) = r.memory() {
            self.apply_memory(memory)?;
        }
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(pids) = r.pids() {
            let dir = self.need("pids", "a pids limit")?;
            let limit = pids.limit();
            let value = if limit <= 0 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            files::write(dir, "pids.max", &value)?;
        }
        if let Some(blkio) = r.block_io() {
            self.apply_blkio(blkio)?;
        }
        if let Some(rules) = r.devices() {
            let rules = rules
                .iter()
                .map(DevRule::from_oci)
                .collect::<Result<Vec<_>, _>>()?;
            if !rules.is_empty() {
                let dir = self.need("devices", "device rules")?;
                for rule in &rules {
                    let file = if rule.allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    files::write(dir, file, &rule.v1_line())?;
                }
            }
        }
        self.apply_optional_controllers(r)?;
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Unsupported {
                what: "linux.resources.unified",
                version: "cgroup v1",
            });
        }
        Ok(())
    }

    fn apply_cpuset(&self, cpu: &LinuxCpu) -> Result<(), Error> {
        for (file, value) in [("cpuset.cpus", cpu.cpus()), ("cpuset.mems", cpu.mems())] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                check_cpuset_list(file, value)?;
                files::write(self.need("cpuset", "a cpuset")?, file, value)?;
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), Error> {
        // 0 means "not set" in the OCI spec as runc reads it; -1 means unlimited.
        let check = |what, v: Option<i64>| match v {
            None | Some(0) => Ok(None),
            Some(v) if v == -1 || v > 0 => Ok(Some(v)),
            Some(v) => Err(invalid(
                what,
                &v.to_string(),
                "must be -1 (unlimited) or positive",
            )),
        };
        let limit = check("memory limit", m.limit())?;
        let mut swap = check("memory swap", m.swap())?;
        let reservation = check("memory reservation", m.reservation())?;
        let wants_memory = limit.is_some()
            || swap.is_some()
            || reservation.is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if !wants_memory {
            return Ok(());
        }
        // Values are checked against each other before the host's features are looked at.
        if let (Some(l), Some(s)) = (limit, swap) {
            if l > 0 && s > 0 && s < l {
                return Err(invalid(
                    "memory swap",
                    &s.to_string(),
                    "memory+swap must be >= the memory limit",
                ));
            }
        }
        let dir = self.need("memory", "a memory limit")?;
        let has_memsw = files::exists(dir, "memory.memsw.limit_in_bytes");
        if limit == Some(-1) && swap.is_none() {
            swap = Some(-1);
        }
        if swap == Some(-1) && !has_memsw {
            swap = None;
        }
        if swap.is_some() && !has_memsw {
            return Err(Error::SwapAccountingDisabled {
                path: dir.join("memory.memsw.limit_in_bytes"),
            });
        }
        match (limit, swap) {
            (Some(l), Some(s)) => {
                // memsw must stay >= the memory limit at every step: raise memsw first when the
                // current limit already fits under the new memsw, otherwise lower the limit first.
                let current = read_u64(dir, "memory.limit_in_bytes")?;
                if s == -1 || current <= s as u64 {
                    files::write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                    files::write(dir, "memory.limit_in_bytes", &l.to_string())?;
                } else {
                    files::write(dir, "memory.limit_in_bytes", &l.to_string())?;
                    files::write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                }
            }
            (Some(l), None) => files::write(dir, "memory.limit_in_bytes", &l.to_string())?,
            (None, Some(s)) => files::write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
            (None, None) => {}
        }
        if let Some(r) = reservation {
            files::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(invalid(
                    "memory swappiness",
                    &s.to_string(),
                    "must be 0..=100",
                ));
            }
            files::write(dir, "memory.swappiness", &s.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            files::write(dir, "memory.oom_control", "1")?;
        }
        Ok(())
    }

    fn apply_cpu(&self, cpu: &LinuxCpu) -> Result<(), Error> {
        let shares = cpu.shares().filter(|s| *s != 0);
        let period = cpu.period().filter(|p| *p != 0);
        let quota = cpu.quota().filter(|q| *q != 0);
        let rt_period = cpu.realtime_period().filter(|p| *p != 0);
        let rt_runtime = cpu.realtime_runtime().filter(|r| *r != 0);
        let wanted = shares.is_some()
            || period.is_some()
            || quota.is_some()
            || cpu.burst().is_some()
            || rt_period.is_some()
            || rt_runtime.is_some()
            || cpu.idle().is_some();
        if !wanted {
            return Ok(());
        }
        let dir = self.need("cpu", "a cpu limit")?;
        if let Some(shares) = shares {
            files::write(dir, "cpu.shares", &shares.to_string())?;
        }
        // The kernel checks period and quota against each other: if the new period is refused
        // with the old quota in place, set the quota first and try the period again.
        let mut period_failed = None;
        if let Some(p) = period {
            if let Err(e) = files::write(dir, "cpu.cfs_period_us", &p.to_string()) {
                if quota.is_none() {
                    return Err(e);
                }
                period_failed = Some(p);
            }
        }
        if let Some(q) = quota {
            let q = if q < 0 { -1 } else { q };
            files::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
        }
        if let Some(p) = period_failed {
            files::write(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
        if let Some(burst) = cpu.burst() {
            files::write(dir, "cpu.cfs_burst_us", &burst.to_string())?;
        }
        if let Some(p) = rt_period {
            files::write(dir, "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(r) = rt_runtime {
            files::write(dir, "cpu.rt_runtime_us", &r.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            files::write(dir, "cpu.idle", &idle.to_string())?;
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<(), Error> {
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        let weight_devices = b.weight_device().as_deref().unwrap_or_default();
        // A weight of 0 means "not set" (dockerd sends it so), as on v2 and in runc.
        let weight = b.weight().filter(|w| *w != 0);
        let wanted = weight.is_some()
            || weight_devices.iter().any(|d| d.weight().is_some())
            || throttles
                .iter()
                .any(|(_, list)| list.as_ref().is_some_and(|l| !l.is_empty()));
        if !wanted {
            return Ok(());
        }
        let dir = self.need("blkio", "a block I/O limit")?;
        // CFQ's files are gone from current kernels; BFQ's take the same 1..1000 weights. A
        // host with neither (mq-deadline, none) cannot weigh I/O: the write fails with
        // NotSupported naming BFQ's file.
        let (weight_file, weight_device_file) = if files::exists(dir, "blkio.weight") {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
        if let Some(w) = weight {
            files::write(dir, weight_file, &w.to_string())?;
        }
        for d in weight_devices {
            if let Some(w) = d.weight() {
                let (major, minor) = dev_numbers(d.major(), d.minor())?;
                files::write(dir, weight_device_file, &format!("{major}:{minor} {w}"))?;
            }
        }
        for (file, list) in throttles {
            for d in list.as_deref().unwrap_or_default() {
                let (major, minor) = dev_numbers(d.major(), d.minor())?;
                files::write(dir, file, &format!("{major}:{minor} {}", d.rate()))?;
            }
        }
        Ok(())
    }

    /// hugetlb, net_cls, net_prio and rdma: a value set for a controller this host has not
    /// mounted fails the apply, as runc does ("cannot set ... limit").
    fn apply_optional_controllers(&self, r: &LinuxResources) -> Result<(), Error> {
        if let Some(limits) = r.hugepage_limits().as_ref().filter(|l| !l.is_empty()) {
            let dir = self.need("hugetlb", "a huge page limit")?;
            for l in limits {
                check_page_size(l.page_size())?;
                let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                let value = if l.limit() < 0 {
                    "-1".to_string()
                } else {
                    l.limit().to_string()
                };
                files::write(dir, &file, &value)?;
            }
        }
        if let Some(network) = r.network() {
            if let Some(class_id) = network.class_id() {
                let dir = self.need("net_cls", "a network class id")?;
                files::write(dir, "net_cls.classid", &class_id.to_string())?;
            }
            if let Some(priorities) = network.priorities().as_ref().filter(|p| !p.is_empty()) {
                let dir = self.need("net_prio", "network priorities")?;
                for p in priorities {
                    check_word("network interface name", p.name())?;
                    files::write(
                        dir,
                        "net_prio.ifpriomap",
                        &format!("{} {}", p.name(), p.priority()),
                    )?;
                }
            }
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
            let dir = self.need("rdma", "an RDMA limit")?;
            for (device, limit) in rdma {
                files::write(dir, "rdma.max", &rdma_line(device, limit)?)?;
            }
        }
        Ok(())
    }

    pub(crate) fn freeze(&self) -> Result<(), Error> {
        let dir = self.need("freezer", "freezing")?;
        files::write(dir, "freezer.state", "FROZEN")?;
        // A task can hold the cgroup in FREEZING (e.g. in a vfork); writing FROZEN again retries.
        let frozen = files::wait_until(FREEZE_TIMEOUT, || {
            if freezer_state(dir)? == "FROZEN" {
                return Ok(true);
            }
            files::write(dir, "freezer.state", "FROZEN")?;
            Ok(false)
        })?;
        if !frozen {
            files::write(dir, "freezer.state", "THAWED")?;
            return Err(Error::FreezeTimeout {
                path: dir.to_path_buf(),
                wanted: "FROZEN",
            });
        }
        Ok(())
    }

    pub(crate) fn thaw(&self) -> Result<(), Error> {
        let dir = self.need("freezer", "thawing")?;
        files::write(dir, "freezer.state", "THAWED")?;
        let thawed = files::wait_until(FREEZE_TIMEOUT, || Ok(freezer_state(dir)? == "THAWED"))?;
        if !thawed {
            return Err(Error::FreezeTimeout {
                path: dir.to_path_buf(),
                wanted: "THAWED",
            });
        }
        Ok(())
    }

    pub(crate) fn is_frozen(&self) -> Result<bool, Error> {
        match self.dir("freezer") {
            Some(dir) => Ok(freezer_state(dir)? == "FROZEN"),
            None => Ok(false),
        }
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        [
            "pids",
            "freezer",
            "devices",
            "memory",
            "cpu",
            "name=systemd",
        ]
        .iter()
        .find_map(|c| self.dir(c))
        .or_else(|| self.dirs.values().next().map(|(_, d)| d.as_path()))
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        if let Some(dir) = self.procs_dir() {
            files::procs_recursive(dir, &mut pids)?;
        }
        Ok(pids)
    }

    pub(crate) fn kill_all(&self, signal: i32) -> Result<(), Error> {
        // Freezing first stops processes from forking new ones between listing and signalling.
        let frozen = self.dir("freezer").is_some() && self.freeze().is_ok();
        let result = self.pids().and_then(|pids| {
            pids.into_iter()
                .try_for_each(|p| files::send_signal(p, signal))
        });
        if frozen {
            self.thaw()?;
        }
        result
    }

    pub(crate) fn oom_kill_count(&self) -> Result<u64, Error> {
        let Some(dir) = self.dir("memory") else {
            return Ok(0);
        };
        let text = files::read_optional(dir, "memory.oom_control")?.unwrap_or_default();
        Ok(stats::parse_flat_keyed(&text)
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    pub(crate) fn stats(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        if let Some(dir) = self.dir("cpuacct") {
            let cpu = &mut s.cpu;
            cpu.usage_total_ns = files::read_u64_or_zero(dir, "cpuacct.usage")?;
            if files::exists(dir, "cpuacct.usage_user") {
                cpu.usage_user_ns = files::read_u64_or_zero(dir, "cpuacct.usage_user")?;
                cpu.usage_system_ns = files::read_u64_or_zero(dir, "cpuacct.usage_sys")?;
            } else if let Some(text) = files::read_optional(dir, "cpuacct.stat")? {
                let map = stats::parse_flat_keyed(&text);
                cpu.usage_user_ns = map.get("user").copied().unwrap_or(0) * NS_PER_USER_HZ_TICK;
                cpu.usage_system_ns = map.get("system").copied().unwrap_or(0) * NS_PER_USER_HZ_TICK;
            }
            if let Some(text) = files::read_optional(dir, "cpuacct.usage_percpu")? {
                cpu.usage_per_cpu_ns = text
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
            }
        }
        if let Some(dir) = self.dir("cpu") {
            let map = stats::parse_flat_keyed(
                &files::read_optional(dir, "cpu.stat")?.unwrap_or_default(),
            );
            s.cpu.nr_periods = map.get("nr_periods").copied().unwrap_or(0);
            s.cpu.nr_throttled = map.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttled_time_ns = map.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(dir) = self.dir("memory") {
            let m = &mut s.memory;
            m.usage = files::read_u64_or_zero(dir, "memory.usage_in_bytes")?;
            m.max_usage = files::read_u64_or_zero(dir, "memory.max_usage_in_bytes")?;
            m.limit = files::read_u64_or_max(dir, "memory.limit_in_bytes")?
                .flatten()
                .filter(|l| *l < V1_UNLIMITED);
            m.raw = stats::parse_flat_keyed(
                &files::read_optional(dir, "memory.stat")?.unwrap_or_default(),
            );
            m.cache = m
                .raw
                .get("total_cache")
                .or(m.raw.get("cache"))
                .copied()
                .unwrap_or(0);
            m.inactive_file = m
                .raw
                .get("total_inactive_file")
                .or(m.raw.get("inactive_file"))
                .copied()
                .unwrap_or(0);
            let memsw = files::read_u64_or_zero(dir, "memory.memsw.usage_in_bytes")?;
            m.swap_usage = memsw.saturating_sub(m.usage);
            m.oom_kills = self.oom_kill_count()?;
        }
        if let Some(dir) = self.dir("pids") {
            s.pids.current = files::read_u64_or_zero(dir, "pids.current")?;
            s.pids.limit = files::read_u64_or_max(dir, "pids.max")?.flatten();
        }
        if let Some(dir) = self.dir("blkio") {
            for (bytes, recursive, flat) in [
                (
                    true,
                    "blkio.throttle.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes",
                ),
                (
                    false,
                    "blkio.throttle.io_serviced_recursive",
                    "blkio.throttle.io_serviced",
                ),
            ] {
                let text = match files::read_optional(dir, recursive)? {
                    Some(text) => Some(text),
                    None => files::read_optional(dir, flat)?,
                };
                stats::parse_blkio(&mut s.io, &text.unwrap_or_default(), bytes);
            }
            s.io.sum();
        }
        Ok(s)
    }

    pub(crate) fn destroy(&self) -> Result<(), Error> {
        let mut first_error = None;
        for dir in self.unique_dirs() {
            if let Err(e) = files::remove_cgroup_dir(dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Gives `dir` (and any empty ancestor below the mount point) the parent's `cpuset.cpus`/`mems`:
/// a v1 cpuset starts empty, and an empty cpuset refuses every task.
fn fill_cpuset(mountpoint: &Path, dir: &Path, file: &'static str) -> Result<(), Error> {
    if dir == mountpoint {
        return Ok(());
    }
    let current = files::read(dir, file)?;
    if !current.trim().is_empty() {
        return Ok(());
    }
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    fill_cpuset(mountpoint, parent, file)?;
    let value = files::read(parent, file)?;
    let value = value.trim();
    if !value.is_empty() {
        check_line(file, value)?;
        files::write(dir, file, value)?;
    }
    Ok(())
}

fn freezer_state(dir: &Path) -> Result<String, Error> {
    Ok(files::read(dir, "freezer.state")?.trim().to_string())
}

fn read_u64(dir: &Path, file: &str) -> Result<u64, Error> {
    let text = files::read(dir, file)?;
    text.trim().parse().map_err(|_| Error::Parse {
        path: dir.join(file),
        content: text.clone(),
    })
}

/// Validates a device's numbers for `MAJ:MIN` values.
pub(crate) fn dev_numbers(major: i64, minor: i64) -> Result<(u32, u32), Error> {
    Ok((
        files::check_dev_number("device major", major)?,
        files::check_dev_number("device minor", minor)?,
    ))
}

/// One `rdma.max` line (same syntax on v1 and v2).
pub(crate) fn rdma_line(
    device: &str,
    limit: &oci_spec::runtime::LinuxRdma,
) -> Result<String, Error> {
    check_word("rdma device", device)?;
    let mut line = device.to_string();
    if let Some(h) = limit.hca_handles() {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = limit.hca_objects() {
        line.push_str(&format!(" hca_object={o}"));
    }
    Ok(line)
}
