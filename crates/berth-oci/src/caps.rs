//! Capabilities: Docker's default set, every known one, and the ones this process holds.

/// Docker's default capabilities, without their `CAP_` prefix.
pub const DEFAULT: &str = "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID \
    SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE";

/// Every capability in number order, without its `CAP_` prefix.
pub const ALL: &str = "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID \
    SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER \
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE \
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP \
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF \
    CHECKPOINT_RESTORE";

/// The words of a list, each with `prefix`.
pub fn words(list: &str, prefix: &str) -> Vec<String> {
    list.split_whitespace()
        .map(|w| format!("{prefix}{w}"))
        .collect()
}

/// Whether `name` (without `CAP_`) is a known capability.
pub fn known(name: &str) -> bool {
    ALL.split_whitespace().any(|w| w == name)
}

/// Known capabilities in this process' bounding set: a container cannot hold more than its
/// runtime does (containerd's `WithAllCurrentCapabilities`; a host may lack `SYS_RESOURCE`).
pub fn host() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("CapBnd:"));
    let bounding = u64::from_str_radix(line.unwrap_or_default().trim(), 16);
    let held = |i: usize| (bounding.as_ref().unwrap_or(&u64::MAX) >> i) & 1 == 1;
    let caps = words(ALL, "CAP_").into_iter().enumerate();
    caps.filter(|(i, _)| held(*i)).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_the_hosts_set() {
        assert_eq!(words("A B", "CAP_"), ["CAP_A", "CAP_B"]);
        assert!(known("SYS_ADMIN") && !known("CAP_SYS_ADMIN") && !known("NOPE"));
        let host = host();
        assert!(host.iter().all(|c| known(&c[4..])));
        assert!(host.contains(&"CAP_CHOWN".to_string()));
    }
}
