//! Docker's defaults for a container's spec: `PATH`, masked and read-only paths, mounts.

/// The `PATH` a container gets when its image sets none.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths hidden from a non-privileged container.
pub const MASKED_PATHS: &str = "/proc/asound /proc/acpi /proc/kcore /proc/keys \
    /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug /proc/scsi \
    /sys/firmware /sys/devices/virtual/powercap";

/// Paths a non-privileged container sees read-only.
pub const READONLY_PATHS: &str = "/proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger";

/// Docker's default mounts, one per line: destination, type, source, options.
pub const MOUNTS: &str = "/proc proc proc nosuid,noexec,nodev
    /dev tmpfs tmpfs nosuid,strictatime,mode=755,size=65536k
    /dev/pts devpts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5
    /sys sysfs sysfs nosuid,noexec,nodev,ro
    /sys/fs/cgroup cgroup cgroup ro,nosuid,noexec,nodev
    /dev/mqueue mqueue mqueue nosuid,noexec,nodev
    /dev/shm tmpfs shm nosuid,noexec,nodev,mode=1777";
