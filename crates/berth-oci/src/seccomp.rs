//! The seccomp profile a container gets (`linux.seccomp` of its OCI spec): by default Berth's
//! own profile, which refuses (EPERM) the system calls Docker documents its default profile as
//! blocking — kernel modules, kexec, reboot, clock setting, keyrings, mount and namespace
//! creation, ptrace and cross-process memory access, NUMA policy, accounting, obsolete calls —
//! each unless the container holds the capability that call needs, like Docker's; `clone3`
//! answers ENOSYS so libcs fall back to `clone`, whose namespace flags are refused. Unlike
//! Docker's allowlist it lets through system calls it does not know (new kernels' calls work).
//! `--security-opt seccomp=unconfined` and `--privileged` turn it off; `seccomp=<profile JSON>`
//! (what the docker CLI sends for a file) replaces it.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

/// Refused unless the container holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "swapon",
            "swapoff",
            "lookup_dcookie",
            "fanotify_init",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ],
    ),
    (
        "CAP_SYS_PTRACE",
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
        ],
    ),
    (
        "CAP_SYS_MODULE",
        &["init_module", "finit_module", "delete_module"],
    ),
    (
        "CAP_SYS_TIME",
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
            "adjtimex",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_DAC_READ_SEARCH",
        &["open_by_handle_at", "name_to_handle_at"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_NICE",
        &[
            "mbind",
            "set_mempolicy",
            "get_mempolicy",
            "move_pages",
            "migrate_pages",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Refused always.
const ALWAYS: &[&str] = &[
    "add_key",
    "keyctl",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "nfsservctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "uselib",
    "userfaultfd",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
];

/// The CLONE_NEW* flags `clone` may not carry without CAP_SYS_ADMIN.
const CLONE_NEW: [u64; 7] = [
    0x0002_0000, // NEWNS
    0x0200_0000, // NEWCGROUP
    0x0400_0000, // NEWUTS
    0x0800_0000, // NEWIPC
    0x1000_0000, // NEWUSER
    0x2000_0000, // NEWPID
    0x4000_0000, // NEWNET
];

fn architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        _ => Vec::new(),
    }
}

/// One syscall rule.
fn rule(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names)
        .set_action(action)
        .set_errno_ret(errno)
        .set_args(args);
    r
}

/// A profile with its default action, architectures and rules.
fn profile(
    default: LinuxSeccompAction,
    errno: Option<u32>,
    arches: Vec<Arch>,
    rules: Vec<LinuxSyscall>,
) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default)
        .set_default_errno_ret(errno)
        .set_architectures(Some(arches))
        .set_syscalls(Some(rules));
    p
}

/// Berth's default profile for a container holding `caps` (`CAP_…` names).
pub fn default_profile(caps: &[String]) -> Result<LinuxSeccomp, oci_spec::OciSpecError> {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut names: Vec<String> = ALWAYS.iter().map(|c| c.to_string()).collect();
    for (cap, calls) in BY_CAPABILITY {
        let granted =
            has(cap) || (*cap == "CAP_BPF" || *cap == "CAP_PERFMON") && has("CAP_SYS_ADMIN");
        if !granted {
            names.extend(calls.iter().map(|c| c.to_string()));
        }
    }
    let errno = LinuxSeccompAction::ScmpActErrno;
    let mut rules = vec![rule(names, errno, Some(1), None)];
    if !has("CAP_SYS_ADMIN") {
        rules.push(rule(vec!["clone3".into()], errno, Some(38), None));
        for flag in CLONE_NEW {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag)
                .value_two(flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?;
            rules.push(rule(vec!["clone".into()], errno, Some(1), Some(vec![arg])));
        }
    }
    Ok(profile(
        LinuxSeccompAction::ScmpActAllow,
        None,
        architectures(),
        rules,
    ))
}

/// A profile in Docker's JSON format.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    syscalls: Option<Vec<DockerSyscall>>,
}

/// One rule of a Docker-format profile: one `name` or several `names`, and its conditions.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    args: Option<Vec<LinuxSeccompArg>>,
    errno_ret: Option<u32>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

/// The part of a rule's `includes`/`excludes` Berth honours: the capabilities held.
#[derive(Deserialize, Default)]
struct Condition {
    caps: Option<Vec<String>>,
}

/// A profile in Docker's JSON format (what `--security-opt seccomp=FILE` sends) as OCI
/// `linux.seccomp`: entries conditioned on capabilities (`includes`/`excludes` `caps`) kept
/// or dropped for `caps`, other conditions ignored.
pub fn from_docker(text: &str, caps: &[String]) -> Result<LinuxSeccomp, String> {
    let given: DockerProfile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let default = given
        .default_action
        .ok_or("a seccomp profile needs a defaultAction")?;
    let has_all = |list: &[String]| list.iter().all(|c| caps.iter().any(|x| x == c));
    let mut rules = Vec::new();
    for s in given.syscalls.unwrap_or_default() {
        let (inc, exc) = (s.includes.caps, s.excludes.caps);
        if inc.as_deref().is_some_and(|i| !has_all(i))
            || exc.as_deref().is_some_and(|e| !e.is_empty() && has_all(e))
        {
            continue;
        }
        let names = s.names.or(s.name.map(|n| vec![n])).unwrap_or_default();
        rules.push(rule(names, s.action, s.errno_ret, s.args));
    }
    let arches = given
        .architectures
        .filter(|a| !a.is_empty())
        .unwrap_or_else(architectures);
    Ok(profile(default, given.default_errno_ret, arches, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls().as_ref().unwrap()[0].names().clone()
    }

    fn rules(p: &LinuxSeccomp) -> usize {
        p.syscalls().as_ref().map_or(0, Vec::len)
    }

    #[test]
    fn capabilities_lift_the_calls_they_cover() {
        let plain = default_profile(&["CAP_CHOWN".into()]).unwrap();
        for call in ["mount", "unshare", "ptrace", "reboot", "keyctl", "bpf"] {
            assert!(denied(&plain).contains(&call.to_string()), "{call}");
        }
        assert_eq!(rules(&plain), 1 + 1 + 7);
        let admin = default_profile(&["CAP_SYS_ADMIN".into()]).unwrap();
        for call in ["mount", "unshare", "setns", "bpf", "perf_event_open"] {
            assert!(!denied(&admin).contains(&call.to_string()), "{call}");
        }
        assert!(denied(&admin).contains(&"keyctl".to_string()));
        assert_eq!(rules(&admin), 1, "no clone rules with SYS_ADMIN");
        let v = serde_json::to_value(&plain).unwrap();
        assert_eq!(v["syscalls"][2]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(v["syscalls"][1]["errnoRet"], 38);
    }

    #[test]
    fn docker_format_profiles_keep_entries_for_the_caps_held() {
        let p = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"name": "chown", "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}}]}"#;
        let out = from_docker(p, &["CAP_CHOWN".into()]).unwrap();
        assert_eq!(rules(&out), 1);
        assert_eq!(denied(&out), ["read", "write"]);
        let out = from_docker(p, &["CAP_SYS_ADMIN".into()]).unwrap();
        assert_eq!(rules(&out), 3);
        assert!(from_docker("{}", &[]).is_err());
        assert!(from_docker(r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, &[]).is_err());
    }
}
