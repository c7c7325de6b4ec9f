//! What `berth-runc features` reports about seccomp: the OCI features "linux.seccomp" object.

use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpFilterContext, ScmpVersion};
use serde::{Deserialize, Serialize};

/// The `seccomp` object of the OCI runtime features document (runtime-spec features-linux.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Whether the runtime supports seccomp at all.
    pub enabled: bool,
    /// Actions accepted in `defaultAction` and `syscalls[].action`.
    pub actions: Vec<String>,
    /// Operators accepted in `syscalls[].args[].op`.
    pub operators: Vec<String>,
    /// Architectures accepted in `architectures` (those the linked libseccomp knows).
    pub archs: Vec<String>,
    /// Flags recognised in `flags`.
    pub known_flags: Vec<String>,
    /// Flags recognised and supported by this kernel and libseccomp.
    pub supported_flags: Vec<String>,
}

/// Every action the OCI spec names except SCMP_ACT_NOTIFY: this crate compiles it and hands out
/// the listener fd ([`crate::Filter::load_with_notify_fd`]), but it only works once the runtime
/// sends that fd to the seccomp agent at `listenerPath`. The runtime adds it to its features then.
const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Every architecture the OCI spec (and oci-spec's `Arch`) names; filtered by libseccomp.
const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// Each flag with the libseccomp API level that says both libseccomp and the kernel support it
/// (see seccomp_api_get(3)).
const FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_LOG", 3),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_TSYNC", 2),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 7),
];

/// What `berth-runc features` reports: the actions, operators, archs and flags supported.
///
/// Archs are those the linked libseccomp accepts; supported flags follow libseccomp's API level,
/// which probes the running kernel.
pub fn features() -> Features {
    let api = libseccomp::get_api();
    Features {
        enabled: true,
        actions: strings(ACTIONS),
        operators: strings(OPERATORS),
        archs: supported_archs(),
        known_flags: FLAGS.iter().map(|(name, _)| (*name).to_string()).collect(),
        supported_flags: FLAGS
            .iter()
            .filter(|(_, level)| api >= *level)
            .map(|(name, _)| (*name).to_string())
            .collect(),
    }
}

/// The linked libseccomp's version ("2.5.4"), for the features annotations
/// (runc reports it as `io.github.seccomp.libseccomp.version`).
pub fn library_version() -> Option<String> {
    ScmpVersion::current()
        .ok()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_string()).collect()
}

/// The architectures that the linked libseccomp can add to a filter.
fn supported_archs() -> Vec<String> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHS
        .iter()
        .filter(|name| {
            let Ok(arch) = ScmpArch::from_str(name) else {
                return false;
            };
            matches!(ctx.is_arch_present(arch), Ok(true)) || ctx.add_arch(arch).is_ok()
        })
        .map(|name| (*name).to_string())
        .collect()
}
