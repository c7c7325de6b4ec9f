//! The seccomp profile a container gets (`linux.seccomp` of its OCI spec): by default Berth's
//! own profile, which refuses (EPERM) the system calls Docker documents its default profile as
//! blocking — kernel modules, kexec, reboot, clock setting, keyrings, mount and namespace
//! creation, ptrace and cross-process memory access, NUMA policy, accounting, obsolete calls —
//! each unless the container holds the capability that call needs, like Docker's; `clone3`
//! answers ENOSYS so libcs fall back to `clone`, whose namespace flags are refused. Unlike
//! Docker's allowlist it lets through system calls it does not know (new kernels' calls work).
//! `--security-opt seccomp=unconfined` and `--privileged` turn it off; `seccomp=<profile JSON>`
//! (what the docker CLI sends for a file) replaces it.

use serde_json::{Value, json};

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

fn architectures() -> Value {
    match std::env::consts::ARCH {
        "aarch64" => json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
        "x86_64" => json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        _ => json!([]),
    }
}

/// Berth's default profile for a container holding `caps` (`CAP_…` names).
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut names: Vec<&str> = ALWAYS.to_vec();
    for (cap, calls) in BY_CAPABILITY {
        let granted =
            has(cap) || (*cap == "CAP_BPF" || *cap == "CAP_PERFMON") && has("CAP_SYS_ADMIN");
        if !granted {
            names.extend_from_slice(calls);
        }
    }
    let mut rules = vec![json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1})];
    if !has("CAP_SYS_ADMIN") {
        rules.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
        for flag in CLONE_NEW {
            rules.push(json!({
                "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }));
        }
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": architectures(), "syscalls": rules})
}

/// A profile in Docker's JSON format (what `--security-opt seccomp=FILE` sends) as OCI
/// `linux.seccomp`: entries conditioned on capabilities (`includes`/`excludes` `caps`) kept
/// or dropped for `caps`, other conditions ignored.
pub fn from_docker(profile: &Value, caps: &[String]) -> Result<Value, String> {
    let default = profile["defaultAction"]
        .as_str()
        .ok_or("a seccomp profile needs a defaultAction")?;
    let has_all = |list: &Value| {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .all(|c| caps.iter().any(|x| x == c))
    };
    let mut rules = Vec::new();
    for s in profile["syscalls"].as_array().into_iter().flatten() {
        let inc = &s["includes"]["caps"];
        let exc = &s["excludes"]["caps"];
        if (!inc.is_null() && !has_all(inc))
            || (exc.as_array().is_some_and(|a| !a.is_empty()) && has_all(exc))
        {
            continue;
        }
        let names = if s["names"].is_array() {
            s["names"].clone()
        } else {
            json!([s["name"]])
        };
        let mut r = json!({"names": names, "action": s["action"]});
        for k in ["args", "errnoRet"] {
            if !s[k].is_null() {
                r[k] = s[k].clone();
            }
        }
        rules.push(r);
    }
    let arches = match profile["architectures"].as_array() {
        Some(a) if !a.is_empty() => json!(a),
        _ => architectures(),
    };
    let mut out = json!({"defaultAction": default, "architectures": arches, "syscalls": rules});
    if let Some(e) = profile["defaultErrnoRet"].as_u64() {
        out["defaultErrnoRet"] = json!(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(p: &Value) -> Vec<String> {
        p["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn capabilities_lift_the_calls_they_cover() {
        let plain = default_profile(&["CAP_CHOWN".into()]);
        for call in ["mount", "unshare", "ptrace", "reboot", "keyctl", "bpf"] {
            assert!(denied(&plain).contains(&call.to_string()), "{call}");
        }
        assert_eq!(plain["syscalls"].as_array().unwrap().len(), 1 + 1 + 7);
        let admin = default_profile(&["CAP_SYS_ADMIN".into()]);
        for call in ["mount", "unshare", "setns", "bpf", "perf_event_open"] {
            assert!(!denied(&admin).contains(&call.to_string()), "{call}");
        }
        assert!(denied(&admin).contains(&"keyctl".to_string()));
        assert_eq!(
            admin["syscalls"].as_array().unwrap().len(),
            1,
            "no clone rules with SYS_ADMIN"
        );
    }

    #[test]
    fn docker_format_profiles_keep_entries_for_the_caps_held() {
        let p = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"name": "chown", "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
        ]});
        let out = from_docker(&p, &["CAP_CHOWN".into()]).unwrap();
        let rules = out["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["names"], json!(["read", "write"]));
        let out = from_docker(&p, &["CAP_SYS_ADMIN".into()]).unwrap();
        assert_eq!(out["syscalls"].as_array().unwrap().len(), 3);
        assert!(from_docker(&json!({}), &[]).is_err());
    }
}
