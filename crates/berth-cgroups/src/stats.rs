//! Resource usage of a cgroup (`Stats`) and parsers for the flat- and nested-keyed cgroup stat files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;

/// Usage counters of one cgroup, the same shape on v1 and v2. Counters whose file is absent
/// (controller not mounted, kernel too old) read as 0 / `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: IoStats,
}

/// CPU time consumed, in nanoseconds, and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    pub usage_system_ns: u64,
    /// Per-CPU usage (v1 `cpuacct.usage_percpu`; empty on v2).
    pub usage_per_cpu_ns: Vec<u64>,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_time_ns: u64,
}

/// Memory usage in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current usage (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage: u64,
    /// Highest usage seen (v1 `memory.max_usage_in_bytes`, v2 `memory.peak` where the kernel has it).
    pub max_usage: u64,
    /// The limit, `None` when unlimited.
    pub limit: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: u64,
    /// Inactive file pages (v1 `total_inactive_file`, v2 `inactive_file`): docker subtracts these.
    pub inactive_file: u64,
    /// Swap in use (v1 memsw usage minus usage, v2 `memory.swap.current`).
    pub swap_usage: u64,
    /// Number of OOM kills inside the cgroup.
    pub oom_kills: u64,
    /// Every counter of `memory.stat`, as the kernel names them.
    pub raw: BTreeMap<String, u64>,
}

/// Process count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O done by the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub devices: Vec<IoDeviceStats>,
}

/// Block I/O on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoDeviceStats {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ios: u64,
    pub write_ios: u64,
}

impl IoStats {
    /// Recomputes the totals from the per-device entries.
    pub(crate) fn sum(&mut self) {
        self.read_bytes = self.devices.iter().map(|d| d.read_bytes).sum();
        self.write_bytes = self.devices.iter().map(|d| d.write_bytes).sum();
    }

    /// The entry for `major:minor`, created on first use.
    pub(crate) fn device(&mut self, major: u32, minor: u32) -> &mut IoDeviceStats {
        let index = match self
            .devices
            .iter()
            .position(|d| d.major == major && d.minor == minor)
        {
            Some(i) => i,
            None => {
                self.devices.push(IoDeviceStats {
                    major,
                    minor,
                    ..Default::default()
                });
                self.devices.len() - 1
            }
        };
        &mut self.devices[index]
    }
}

/// Parses a flat-keyed file (`key value` per line), such as `memory.stat` or `cpu.stat`.
/// Lines whose value is not a number are skipped (newer kernels add keys freely).
pub(crate) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) {
            if let Ok(n) = value.parse::<u64>() {
                map.insert(key.to_string(), n);
            }
        }
    }
    map
}

/// Parses `MAJ:MIN`.
pub(crate) fn parse_dev(word: &str) -> Option<(u32, u32)> {
    let (major, minor) = word.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Parses v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` per line.
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<IoStats, Error> {
    let mut io = IoStats::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let dev = words.next().and_then(parse_dev);
        let Some((major, minor)) = dev else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                content: line.to_string(),
            });
        };
        let entry = io.device(major, minor);
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "rbytes" => entry.read_bytes = value,
                "wbytes" => entry.write_bytes = value,
                "rios" => entry.read_ios = value,
                "wios" => entry.write_ios = value,
                _ => {}
            }
        }
    }
    io.sum();
    Ok(io)
}

/// Parses v1 `blkio.*io_service_bytes*` / `*io_serviced*` (`8:0 Read 123` per line, plus `Total N`)
/// into `io`: `bytes` chooses which fields receive the numbers.
pub(crate) fn parse_blkio(io: &mut IoStats, text: &str, bytes: bool) {
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, value] = words[..] else {
            continue;
        };
        let (Some((major, minor)), Ok(value)) = (parse_dev(dev), value.parse::<u64>()) else {
            continue;
        };
        let entry = io.device(major, minor);
        match (op, bytes) {
            ("Read", true) => entry.read_bytes = value,
            ("Write", true) => entry.write_bytes = value,
            ("Read", false) => entry.read_ios = value,
            ("Write", false) => entry.write_ios = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed() {
        let map = parse_flat_keyed("cache 4096\nrss 8192\nweird a b\nbad x\n");
        assert_eq!(map.len(), 2);
        assert_eq!(map["cache"], 4096);
    }

    #[test]
    fn io_stat_v2() {
        let text = "254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=5 wbytes=0 rios=1 wios=0\n";
        let io = parse_io_stat(Path::new("io.stat"), text).unwrap();
        assert_eq!(io.read_bytes, 105);
        assert_eq!(io.write_bytes, 200);
        assert_eq!(
            io.devices[0],
            IoDeviceStats {
                major: 254,
                minor: 0,
                read_bytes: 100,
                write_bytes: 200,
                read_ios: 1,
                write_ios: 2
            }
        );
        assert!(parse_io_stat(Path::new("io.stat"), "garbage\n").is_err());
    }

    #[test]
    fn blkio_v1() {
        let mut io = IoStats::default();
        parse_blkio(
            &mut io,
            "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 1\n254:0 Total 12288\nTotal 12288\n",
            true,
        );
        parse_blkio(&mut io, "254:0 Read 1\n254:0 Write 2\n", false);
        io.sum();
        assert_eq!((io.read_bytes, io.write_bytes), (4096, 8192));
        assert_eq!((io.devices[0].read_ios, io.devices[0].write_ios), (1, 2));
    }
}
