//! Linux capabilities by name, and applying the five sets of an OCI process to the calling
//! process (bounding, then effective/permitted/inheritable, then ambient).

use anyhow::Context;
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::sys;

/// Capability names in number order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Number of a capability name (`CAP_NET_RAW` or `NET_RAW`, any case).
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// The highest capability this kernel knows (from /proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The five capability sets of a process, as bit masks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

impl CapSets {
    /// Reads the sets from an OCI `process.capabilities` JSON object. Unknown names are
    /// skipped with a warning (the spec says: log and go on); returns the names skipped.
    pub fn from_json(caps: &serde_json::Value) -> (Self, Vec<String>) {
        let mut unknown = Vec::new();
        let mut set = |key: &str| -> u64 {
            let mut mask = 0u64;
            for name in caps
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let Some(name) = name.as_str() else { continue };
                match number(name) {
                    Some(n) => mask |= 1 << n,
                    None => unknown.push(name.to_string()),
                }
            }
            mask
        };
        let sets = CapSets {
            bounding: set("bounding"),
            effective: set("effective"),
            inheritable: set("inheritable"),
            permitted: set("permitted"),
            ambient: set("ambient"),
        };
        unknown.sort();
        unknown.dedup();
        (sets, unknown)
    }

    /// Drops from the bounding set every capability not in `self.bounding`. Needs CAP_SETPCAP,
    /// so it runs before the user switch.
    pub fn apply_bounding(&self) -> anyhow::Result<()> {
        for cap in 0..=last_cap() {
            if self.bounding & (1 << cap) == 0 {
                match sys::drop_bounding_cap(cap) {
                    Ok(()) => {}
                    // Capabilities this kernel does not know are not in any set anyway.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("dropping {} from the bounding set", name(cap))
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable, then raises the ambient ones. The kernel lets
    /// only a capability that is both permitted and inheritable be ambient; others named in the
    /// ambient set are left out, as crun does (its `crun spec` asks for ambient capabilities
    /// with an empty inheritable set).
    pub fn apply_process_sets(&self) -> anyhow::Result<()> {
        let sets = CapabilitySets {
            effective: CapabilitySet::from_bits_retain(self.effective),
            permitted: CapabilitySet::from_bits_retain(self.permitted),
            inheritable: CapabilitySet::from_bits_retain(self.inheritable),
        };
        rustix::thread::set_capabilities(None, sets).context("setting capabilities (capset)")?;
        for cap in 0..=last_cap() {
            let bit = 1 << cap;
            if self.ambient & bit != 0 && self.inheritable & self.permitted & bit != 0 {
                sys::raise_ambient_cap(cap)
                    .with_context(|| format!("raising ambient capability {}", name(cap)))?;
            }
        }
        Ok(())
    }
}

fn name(cap: u32) -> &'static str {
    NAMES.get(cap as usize).copied().unwrap_or("CAP_UNKNOWN")
}

/// Strips unknown capability names from a process JSON object in place so the typed parser
/// accepts it; returns the parsed sets and the names removed.
pub fn filter_unknown(process: &mut serde_json::Value) -> (CapSets, Vec<String>) {
    let Some(caps) = process.get_mut("capabilities") else {
        return (CapSets::default(), Vec::new());
    };
    let (sets, unknown) = CapSets::from_json(caps);
    if !unknown.is_empty() {
        for key in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            if let Some(list) = caps.get_mut(key).and_then(|v| v.as_array_mut()) {
                list.retain(|n| n.as_str().and_then(number).is_some());
            }
        }
    }
    (sets, unknown)
}

/// The capability sets of a process JSON object; a name that is no capability fails (the
/// runtime spec: a value that cannot be mapped to the kernel's interface is an error).
pub fn parse_known(process: &mut serde_json::Value) -> anyhow::Result<CapSets> {
    let (sets, unknown) = filter_unknown(process);
    if let Some(name) = unknown.first() {
        anyhow::bail!("unknown capability {name:?}");
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_numbers() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("net_raw"), Some(13));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_BOGUS"), None);
    }

    #[test]
    fn unknown_names_are_skipped_and_reported() {
        let mut p = serde_json::json!({"capabilities": {
            "bounding": ["CAP_KILL", "CAP_FUTURE_THING"], "effective": ["CAP_KILL"]}});
        let (sets, unknown) = filter_unknown(&mut p);
        assert_eq!(sets.bounding, 1 << 5);
        assert_eq!(sets.effective, 1 << 5);
        assert_eq!(unknown, vec!["CAP_FUTURE_THING"]);
        assert_eq!(
            p["capabilities"]["bounding"],
            serde_json::json!(["CAP_KILL"])
        );
    }
}
