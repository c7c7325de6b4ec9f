//! cgroup v2: one directory in the unified tree; enabling controllers and applying OCI resources.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::devices::DevRule;
use crate::files::{self, check_cpuset_list, check_line, check_page_size, invalid};
use crate::layout::Layout;
use crate::stats::{self, Stats};
use crate::v1::{dev_numbers, rdma_line};
use crate::{Error, FREEZE_TIMEOUT, v2_devices};

const V2: &str = "cgroup v2";

/// A cgroup in the unified hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct V2Cgroup {
    /// Mount point of the hierarchy (its root cgroup as we see it).
    root: PathBuf,
    dir: PathBuf,
}

impl V2Cgroup {
    /// `None` when the layout has no cgroup2 mount.
    pub(crate) fn new(layout: &Layout, path: &str) -> Option<V2Cgroup> {
        let mount = layout.v2_mount()?;
        Some(V2Cgroup {
            root: mount.mountpoint.clone(),
            dir: mount.dir_of(path),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn create(&self) -> Result<(), Error> {
        files::create_dirs(&self.dir)?;
        // Each level above the new cgroup must delegate the controllers to its children.
        let mut levels: Vec<&Path> = self
            .dir
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
            .collect();
        levels.reverse();
        for level in levels {
            enable_controllers(level)?;
        }
        Ok(())
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<(), Error> {
        let path = self.dir.join("cgroup.procs");
        std::fs::write(&path, pid.to_string()).map_err(|source| Error::AddPid { pid, path, source })
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        check_convertible(r)?;
        let dir = self.dir.as_path();
        if let Some(cpu) = r.cpu() {
            apply_cpu(dir, cpu)?;
        }
        if let Some(memory) = r.memory() {
            apply_memory(dir, memory)?;
        }
        if let Some(pids) = r.pids() {
            let limit = pids.limit();
            let value = if limit <= 0 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            files::write(dir, "pids.max", &value)?;
        }
        if let Some(blkio) = r.block_io() {
            apply_io(dir, blkio)?;
        }
        if let Some(limits) = r.hugepage_limits() {
            for l in limits {
                check_page_size(l.page_size())?;
                let file = format!("hugetlb.{}.max", l.page_size());
                // Absent when the hugetlb controller is not enabled: the write fails with
                // NotSupported, as runc fails.
                let value = if l.limit() < 0 {
                    "max".to_string()
                } else {
                    l.limit().to_string()
                };
                files::write(dir, &file, &value)?;
            }
        }
        if let Some(rdma) = r.rdma() {
            for (device, limit) in rdma {
                files::write(dir, "rdma.max", &rdma_line(device, limit)?)?;
            }
        }
        if let Some(rules) = r.devices() {
            let rules = rules
                .iter()
                .map(DevRule::from_oci)
                .collect::<Result<Vec<_>, _>>()?;
            if !rules.is_empty() {
                v2_devices::apply(dir, &rules)?;
            }
        }
        // Raw files last, so they override what the typed fields set.
        if let Some(unified) = r.unified() {
            let mut entries: Vec<_> = unified.iter().collect();
            entries.sort();
            for (key, value) in entries {
                check_unified_key(key)?;
                check_line("unified value", value)?;
                files::write(dir, key, value)?;
            }
        }
        Ok(())
    }

    pub(crate) fn freeze(&self) -> Result<(), Error> {
        self.set_frozen(true)
    }

    pub(crate) fn thaw(&self) -> Result<(), Error> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        files::write(&self.dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let reached = files::wait_until(FREEZE_TIMEOUT, || Ok(self.is_frozen()? == frozen))?;
        if reached {
            return Ok(());
        }
        if frozen {
            // Do not leave the container half frozen.
            files::write(&self.dir, "cgroup.freeze", "0")?;
        }
        Err(Error::FreezeTimeout {
            path: self.dir.clone(),
            wanted: if frozen { "frozen" } else { "thawed" },
        })
    }

    /// True when the kernel reports the cgroup frozen (`frozen 1` in `cgroup.events`).
    pub(crate) fn is_frozen(&self) -> Result<bool, Error> {
        match files::read_optional(&self.dir, "cgroup.events")? {
            Some(text) => Ok(stats::parse_flat_keyed(&text).get("frozen") == Some(&1)),
            None => {
                Ok(files::read_optional(&self.dir, "cgroup.freeze")?
                    .is_some_and(|t| t.trim() == "1"))
            }
        }
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        files::procs_recursive(&self.dir, &mut pids)?;
        Ok(pids)
    }

    pub(crate) fn kill_all(&self, signal: i32) -> Result<(), Error> {
        if signal == libc::SIGKILL && files::exists(&self.dir, "cgroup.kill") {
            // Kernel ≥ 5.14 kills the whole subtree atomically, including processes being forked.
            return files::write(&self.dir, "cgroup.kill", "1");
        }
        let frozen = self.freeze().is_ok();
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
        let text = files::read_optional(&self.dir, "memory.events")?.unwrap_or_default();
        Ok(stats::parse_flat_keyed(&text)
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    pub(crate) fn stats(&self) -> Result<Stats, Error> {
        let dir = self.dir.as_path();
        let mut s = Stats::default();
        let cpu =
            stats::parse_flat_keyed(&files::read_optional(dir, "cpu.stat")?.unwrap_or_default());
        let usec = |key: &str| cpu.get(key).copied().unwrap_or(0).saturating_mul(1000);
        s.cpu.usage_total_ns = usec("usage_usec");
        s.cpu.usage_user_ns = usec("user_usec");
        s.cpu.usage_system_ns = usec("system_usec");
        s.cpu.throttled_time_ns = usec("throttled_usec");
        s.cpu.nr_periods = cpu.get("nr_periods").copied().unwrap_or(0);
        s.cpu.nr_throttled = cpu.get("nr_throttled").copied().unwrap_or(0);

        let m = &mut s.memory;
        m.usage = files::read_u64_or_zero(dir, "memory.current")?;
        m.max_usage = files::read_u64_or_zero(dir, "memory.peak")?;
        m.limit = files::read_u64_or_max(dir, "memory.max")?.flatten();
        m.raw =
            stats::parse_flat_keyed(&files::read_optional(dir, "memory.stat")?.unwrap_or_default());
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        m.inactive_file = m.raw.get("inactive_file").copied().unwrap_or(0);
        m.swap_usage = files::read_u64_or_zero(dir, "memory.swap.current")?;
        m.oom_kills = self.oom_kill_count()?;

        s.pids.current = files::read_u64_or_zero(dir, "pids.current")?;
        s.pids.limit = files::read_u64_or_max(dir, "pids.max")?.flatten();
        if let Some(text) = files::read_optional(dir, "io.stat")? {
            s.io = stats::parse_io_stat(&dir.join("io.stat"), &text)?;
        }
        Ok(s)
    }

    pub(crate) fn destroy(&self) -> Result<(), Error> {
        files::remove_cgroup_dir(&self.dir)
    }
}

/// Enables in `level/cgroup.subtree_control` every controller listed in `level/cgroup.controllers`
/// that is not enabled yet. If the kernel refuses them together (e.g. `cpu` while a realtime task
/// runs), each is tried alone and refusals are left disabled: applying a resource that needs one
/// then fails with the missing file's path.
fn enable_controllers(level: &Path) -> Result<(), Error> {
    let Some(available) = files::read_optional(level, "cgroup.controllers")? else {
        return Ok(());
    };
    let enabled = files::read_optional(level, "cgroup.subtree_control")?.unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if files::write(level, "cgroup.subtree_control", &missing.join(" ")).is_ok() {
        return Ok(());
    }
    for one in &missing {
        // Deliberately ignored, see above.
        let _ = files::write(level, "cgroup.subtree_control", one);
    }
    Ok(())
}

fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), Error> {
    let limit = m.limit().filter(|l| *l != 0);
    let swap = m.swap().filter(|s| *s != 0);
    for (what, v) in [
        ("memory limit", limit),
        ("memory swap", swap),
        ("memory reservation", m.reservation()),
    ] {
        if let Some(v) = v {
            if v < -1 {
                return Err(invalid(
                    what,
                    &v.to_string(),
                    "must be -1 (unlimited) or positive",
                ));
            }
        }
    }
    // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
    let swap_max = match (limit, swap) {
        (Some(-1), None) | (_, Some(-1)) => Some("max".to_string()),
        (_, None) => None,
        (None | Some(-1), Some(s)) => {
            return Err(invalid(
                "memory swap",
                &s.to_string(),
                "a swap limit needs a memory limit",
            ));
        }
        (Some(l), Some(s)) if s < l => {
            return Err(invalid(
                "memory swap",
                &s.to_string(),
                "memory+swap must be >= the memory limit",
            ));
        }
        (Some(l), Some(s)) => Some((s - l).to_string()),
    };
    if let Some(value) = swap_max {
        if files::exists(dir, "memory.swap.max") {
            files::write(dir, "memory.swap.max", &value)?;
        } else if value != "max" {
            return Err(Error::SwapAccountingDisabled {
                path: dir.join("memory.swap.max"),
            });
        }
    }
    if let Some(l) = limit {
        files::write(dir, "memory.max", &max_or(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        files::write(dir, "memory.low", &max_or(r))?;
    }
    Ok(())
}

/// Refuses, before anything is written, a set value that cgroup v2 has no file for: dropping it
/// silently would run the container without it. A value equal to "unset" (absent, `0` for the
/// kernel limits and leaf weights, `false` for `disableOOMKiller`, no priorities) is accepted, as
/// Docker's daemon passes some of them that way.
fn check_convertible(r: &LinuxResources) -> Result<(), Error> {
    let unsupported = |what| Err(Error::Unsupported { what, version: V2 });
    if let Some(m) = r.memory() {
        if m.swappiness().is_some() {
            return unsupported("memory.swappiness");
        }
        if m.disable_oom_killer() == Some(true) {
            return unsupported("memory.disableOOMKiller");
        }
        if m.kernel().is_some_and(|k| k != 0) {
            return unsupported("memory.kernel (kernel memory limit)");
        }
        if m.kernel_tcp().is_some_and(|k| k != 0) {
            return unsupported("memory.kernelTCP (kernel TCP memory limit)");
        }
        if m.use_hierarchy() == Some(false) {
            return unsupported("memory.useHierarchy false");
        }
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            return unsupported("network.classID");
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return unsupported("network.priorities");
        }
    }
    if let Some(b) = r.block_io() {
        let leaf = b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|d| d.leaf_weight().is_some_and(|w| w != 0));
        if leaf {
            return unsupported("blockIO leafWeight");
        }
    }
    Ok(())
}

fn apply_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), Error> {
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        files::write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let period = cpu.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let mut value = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        if let Some(p) = period {
            value.push_str(&format!(" {p}"));
        }
        files::write(dir, "cpu.max", &value)?;
    }
    if let Some(burst) = cpu.burst() {
        files::write(dir, "cpu.max.burst", &burst.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        files::write(dir, "cpu.idle", &idle.to_string())?;
    }
    if cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
    {
        return Err(Error::Unsupported {
            what: "realtime CPU scheduling limits",
            version: V2,
        });
    }
    for (file, value) in [("cpuset.cpus", cpu.cpus()), ("cpuset.mems", cpu.mems())] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            check_cpuset_list(file, value)?;
            files::write(dir, file, value)?;
        }
    }
    Ok(())
}

fn apply_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), Error> {
    // With BFQ the v1 weight range carries over unchanged; io.weight needs the 1..10000 scale.
    let bfq = files::exists(dir, "io.bfq.weight");
    let (file, convert): (&str, fn(u16) -> u64) = if bfq {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", blkio_weight_to_io_weight)
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let value = convert(w);
        let line = if bfq {
            value.to_string()
        } else {
            format!("default {value}")
        };
        files::write(dir, file, &line)?;
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let (major, minor) = dev_numbers(d.major(), d.minor())?;
            files::write(dir, file, &format!("{major}:{minor} {}", convert(w)))?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for d in list.as_deref().unwrap_or_default() {
            let (major, minor) = dev_numbers(d.major(), d.minor())?;
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            files::write(dir, "io.max", &format!("{major}:{minor} {key}={rate}"))?;
        }
    }
    Ok(())
}

/// v1 `cpu.shares` (2..262144) → v2 `cpu.weight` (1..10000), runc's linear mapping.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// v1 `blkio.weight` (10..1000) → v2 `io.weight` (1..10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// A `unified` key names one file of the cgroup directory.
fn check_unified_key(key: &str) -> Result<(), Error> {
    let bad = key.is_empty()
        || key == "."
        || key == ".."
        || key.contains('/')
        || key.chars().any(char::is_control);
    if bad {
        return Err(invalid(
            "unified key",
            key,
            "must name a file of the cgroup directory",
        ));
    }
    Ok(())
}
