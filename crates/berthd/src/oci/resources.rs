//! `linux.resources` of a container's OCI spec from its `HostConfig` resources (at create and
//! at `docker update`), validated with dockerd's messages; per-device block I/O limits name
//! each device by the numbers of the node the request names, stat-ed on the host.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_api::host_config::Resources;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxPids, LinuxResources,
    LinuxThrottleDevice, LinuxThrottleDeviceBuilder, LinuxWeightDevice, LinuxWeightDeviceBuilder,
};

use super::spec::{SpecError, dev_numbers};

type Result<T, E = SpecError> = std::result::Result<T, E>;

/// The `(major, minor)` of each block device a HostConfig list names (`BlkioWeightDevice`,
/// `BlkioDeviceReadBps`...), with its value; each path stat-ed on the host as dockerd does
/// (symlinks followed).
fn block_devices<T: Copy>(list: impl Iterator<Item = (String, T)>) -> Result<Vec<(i64, i64, T)>> {
    let mut out = Vec::new();
    for (path, value) in list {
        let m = fs::metadata(&path).map_err(|e| SpecError::BlkioDevice(path.clone(), e))?;
        if !m.file_type().is_block_device() {
            return Err(SpecError::NotABlockDevice(path));
        }
        let (major, minor) = dev_numbers(m.rdev());
        out.push((major as i64, minor as i64, value));
    }
    Ok(out)
}

/// A throttle list as OCI's per-device entries, `None` when empty.
fn throttles(
    list: &Option<Vec<berth_api::host_config::ThrottleDevice>>,
) -> Result<Option<Vec<LinuxThrottleDevice>>> {
    let devices = block_devices(list.iter().flatten().map(|d| (d.path.clone(), d.rate)))?;
    let entry = |(major, minor, rate)| {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
    };
    let out: Vec<LinuxThrottleDevice> = devices.into_iter().map(entry).collect::<Result<_, _>>()?;
    Ok((!out.is_empty()).then_some(out))
}

/// `return Err(SpecError::Resource(message))` for the first condition that holds.
macro_rules! reject {
    ($($bad:expr => $message:literal,)*) => {
        $(if $bad { return Err(SpecError::Resource($message)); })*
    };
}

/// `linux.resources` for updated resources, keeping the device rules of `old`.
pub fn updated_resources(r: &Resources, old: Option<&LinuxResources>) -> Result<LinuxResources> {
    let devices = old.and_then(|o| o.devices().clone()).unwrap_or_default();
    resources(r, devices)
}

/// `linux.resources` from HostConfig, validated as dockerd does.
pub(super) fn resources(
    r: &Resources,
    device_rules: Vec<LinuxDeviceCgroup>,
) -> Result<LinuxResources> {
    let (limit, reserve, swap) = (r.memory, r.memory_reservation, r.memory_swap);
    let swappiness = r.memory_swappiness.filter(|s| *s != -1);
    let (nano, shares) = (r.nano_cpus, r.cpu_shares);
    let (period, quota) = (r.cpu_period, r.cpu_quota);
    let (weight, min) = (r.blkio_weight, 6 << 20);
    reject! {
        limit != 0 && limit < min => "Minimum memory limit allowed is 6MB",
        limit > 0 && swap > 0 && swap < limit => "Minimum memoryswap limit should be larger than memory limit, see usage",
        limit == 0 && swap > 0 => "You should always set the Memory limit when using Memoryswap limit, see usage",
        limit > 0 && reserve > limit => "Minimum memory limit can not be less than memory reservation limit, see usage",
        swappiness.is_some_and(|s| !(0..=100).contains(&s)) => "valid memory swappiness range is 0-100",
        nano > 0 && period > 0 => "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        nano > 0 && quota > 0 => "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        period != 0 && !(1000..=1_000_000).contains(&period) => "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        quota > 0 && quota < 1000 => "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        weight != 0 && !(10..=1000).contains(&weight) => "Range of blkio weight is from 10 to 1000",
    }
    for d in r.blkio_weight_device.iter().flatten() {
        reject! {
            d.weight != 0 && !(10..=1000).contains(&d.weight) => "Range of blkio weight is from 10 to 1000",
        }
    }
    let positive = |n: i64| (n > 0).then_some(n);
    let nonzero = |n: i64| (n != 0).then_some(n);
    let unsigned = |n: Option<i64>| n.map(|n| n as u64);
    let text = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let mut memory = LinuxMemory::default();
    // Docker's default swap is twice the memory limit; -1 is unlimited.
    memory
        .set_limit(positive(limit))
        .set_reservation(positive(reserve))
        .set_swap(nonzero(if limit > 0 && swap == 0 {
            limit.saturating_mul(2)
        } else {
            swap
        }))
        .set_swappiness(unsigned(swappiness))
        .set_disable_oom_killer(r.oom_kill_disable.filter(|d| *d));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(unsigned(positive(shares)))
        .set_quota(nonzero(quota).or(positive(nano / 10_000)))
        .set_period(unsigned(
            nonzero(period).or(positive(nano).map(|_| 100_000)),
        ))
        .set_cpus(text(&r.cpuset_cpus))
        .set_mems(text(&r.cpuset_mems))
        .set_realtime_period(unsigned(positive(r.cpu_realtime_period)))
        .set_realtime_runtime(nonzero(r.cpu_realtime_runtime));
    let weights = r.blkio_weight_device.iter().flatten();
    let weights = block_devices(weights.map(|d| (d.path.clone(), d.weight)))?;
    let weights: Vec<LinuxWeightDevice> = weights
        .into_iter()
        .map(|(major, minor, w)| {
            LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(w)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let mut block_io = LinuxBlockIo::default();
    block_io
        .set_weight((weight > 0).then_some(weight))
        .set_weight_device((!weights.is_empty()).then_some(weights))
        .set_throttle_read_bps_device(throttles(&r.blkio_device_read_bps)?)
        .set_throttle_write_bps_device(throttles(&r.blkio_device_write_bps)?)
        .set_throttle_read_iops_device(throttles(&r.blkio_device_read_iops)?)
        .set_throttle_write_iops_device(throttles(&r.blkio_device_write_iops)?);
    let pids = r.pids_limit.and_then(positive).map(|limit| {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        p
    });
    let mut out = LinuxResources::default();
    out.set_devices(Some(device_rules))
        .set_memory(Some(memory).filter(|m| *m != LinuxMemory::default()))
        .set_cpu(Some(cpu).filter(|c| *c != LinuxCpu::default()))
        .set_pids(pids)
        .set_block_io(Some(block_io).filter(|b| *b != LinuxBlockIo::default()));
    Ok(out)
}
