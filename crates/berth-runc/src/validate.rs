//! Checks of a config before `create` makes anything: what the spec forbids (a namespace type
//! listed twice), what berth-runc cannot apply (refused with an error, never silently ignored),
//! and what cannot be done safely when the container shares the caller's mount namespace.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Whether the config asks for a new mount namespace (`mount` listed without a path).
pub fn new_mount_ns(spec: &Spec) -> bool {
    namespaces(spec).any(|ns| {
        ns.typ() == LinuxNamespaceType::Mount
            && ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
    })
}

fn namespaces(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
}

/// Every check; `no_pivot` is `create --no-pivot`.
pub fn check(spec: &Spec, no_pivot: bool) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for ns in namespaces(spec) {
        // The name as written in config.json ("network", where Display says "net").
        let name = serde_json::to_value(ns.typ()).unwrap_or_default();
        anyhow::ensure!(
            seen.insert(ns.typ()),
            "malformed spec file: duplicated ns {name}"
        );
        anyhow::ensure!(
            ns.typ() != LinuxNamespaceType::Mount
                || ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty()),
            "joining a mount namespace by path is not supported"
        );
    }
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .unwrap_or("");
    anyhow::ensure!(
        !(no_pivot && matches!(propagation, "private" | "rprivate")),
        "rootfsPropagation {propagation:?} cannot be used with --no-pivot"
    );
    unsupported(spec)?;
    hook_timeouts(spec)?;
    sysctls(spec)?;
    if !new_mount_ns(spec) {
        shared_mount_ns(spec, no_pivot)?;
    }
    Ok(())
}

/// A hook's `timeout`, when given, must be greater than zero (the spec's rule): it is refused,
/// never raised to a working value.
fn hook_timeouts(spec: &Spec) -> anyhow::Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let kinds = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (kind, hooks) in kinds {
        for hook in hooks.iter().flatten() {
            if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
                anyhow::bail!(
                    "invalid {kind} hook {}: timeout {t} must be greater than zero",
                    hook.path().display()
                );
            }
        }
    }
    Ok(())
}

/// Properties berth-runc does not implement: the spec says a runtime that cannot apply a
/// property must fail, so each one set is an error.
fn unsupported(spec: &Spec) -> anyhow::Result<()> {
    let refuse = |what: &str| anyhow::anyhow!("{what} is set, but berth-runc does not support it");
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if let Some(p) = spec.process() {
        if set(p.selinux_label()) {
            return Err(refuse("process.selinuxLabel (SELinux)"));
        }
        if p.scheduler().is_some() {
            return Err(refuse("process.scheduler"));
        }
        if p.io_priority().is_some() {
            return Err(refuse("process.ioPriority"));
        }
        if p.exec_cpu_affinity().is_some() {
            return Err(refuse("process.execCPUAffinity"));
        }
    }
    if let Some(l) = spec.linux() {
        if set(l.mount_label()) {
            return Err(refuse("linux.mountLabel (SELinux)"));
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(refuse("linux.timeOffsets"));
        }
        if l.intel_rdt().is_some() {
            return Err(refuse("linux.intelRdt"));
        }
        if l.memory_policy().is_some() {
            return Err(refuse("linux.memoryPolicy"));
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(refuse("linux.netDevices"));
        }
        if let Some(sec) = l.seccomp() {
            use oci_spec::runtime::LinuxSeccompAction::ScmpActNotify;
            let notify = sec.default_action() == ScmpActNotify
                || sec
                    .syscalls()
                    .iter()
                    .flatten()
                    .any(|r| r.action() == ScmpActNotify);
            let listener = sec
                .listener_path()
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty());
            if notify || listener {
                return Err(refuse(
                    "linux.seccomp notify (SCMP_ACT_NOTIFY or listenerPath)",
                ));
            }
        }
        let flags = l.personality().as_ref().and_then(|p| p.flags().as_ref());
        if flags.is_some_and(|f| !f.is_empty()) {
            return Err(refuse("linux.personality.flags"));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(refuse(&format!(
                "mounts[].uidMappings/gidMappings (id-mapped mount on {})",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// The namespace a sysctl key belongs to, as runc's validator sees it; `None` for a key no
/// namespace isolates (writing it would change the host).
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    let key = key.replace('/', ".");
    let ipc = key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.");
    if ipc {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Whether a namespace joined by `path` is the caller's own one of that `kind`.
fn is_callers_ns(path: &std::path::Path, kind: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (
        std::fs::metadata(path),
        std::fs::metadata(format!("/proc/self/ns/{kind}")),
    ) else {
        return false;
    };
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Every `linux.sysctl` key must belong to a namespace the container owns: anything else
/// would be written to the host's kernel.
fn sysctls(spec: &Spec) -> anyhow::Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let Some(kind) = sysctl_namespace(key) else {
            anyhow::bail!("sysctl {key:?} is not in a separate kernel namespace");
        };
        let owned = namespaces(spec).any(|ns| {
            ns.typ() == kind
                && match ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
                    None => true,
                    Some(p) => kind != LinuxNamespaceType::Network || !is_callers_ns(p, "net"),
                }
        });
        let name = serde_json::to_value(kind).unwrap_or_default();
        anyhow::ensure!(
            owned,
            "sysctl {key:?} is not allowed: the container has no private {name} namespace"
        );
    }
    Ok(())
}

/// Without a new mount namespace the container shares the caller's mount table: the init only
/// chroots into the rootfs, so anything that needs a mount (or a remount) is refused, as runc
/// refuses masked and read-only paths there.
fn shared_mount_ns(spec: &Spec, no_pivot: bool) -> anyhow::Result<()> {
    let linux = spec.linux().as_ref();
    let non_empty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    anyhow::ensure!(
        !non_empty(linux.and_then(|l| l.masked_paths().as_ref()))
            && !non_empty(linux.and_then(|l| l.readonly_paths().as_ref())),
        "unable to restrict sys entries without a private MNT namespace \
         (maskedPaths and readonlyPaths need a \"mount\" namespace)"
    );
    anyhow::ensure!(
        spec.mounts().as_ref().is_none_or(|m| m.is_empty()),
        "mounts need a private MNT namespace (add a \"mount\" namespace or remove the mounts)"
    );
    anyhow::ensure!(
        !spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        "a read-only root needs a private MNT namespace"
    );
    anyhow::ensure!(
        !no_pivot,
        "unable to use no-pivot without a private MNT namespace"
    );
    anyhow::ensure!(
        linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .is_none_or(str::is_empty),
        "rootfsPropagation needs a private MNT namespace"
    );
    anyhow::ensure!(
        !namespaces(spec).any(|ns| ns.typ() == LinuxNamespaceType::User),
        "a user namespace needs a private MNT namespace (its devices are bind-mounted)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(namespaces: &[&str], sysctl: &[&str]) -> Spec {
        let ns: Vec<_> = namespaces
            .iter()
            .map(|t| serde_json::json!({ "type": t }))
            .collect();
        let sysctl: serde_json::Map<_, _> =
            sysctl.iter().map(|k| (k.to_string(), "1".into())).collect();
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "linux": { "namespaces": ns, "sysctl": sysctl },
        }))
        .unwrap()
    }

    #[test]
    fn sysctls_need_the_namespace_that_owns_them() {
        let all = ["mount", "network", "ipc", "uts"];
        let ok = [
            "net.ipv4.ip_forward",
            "net/ipv4/ip_forward",
            "kernel.shmmax",
            "kernel.msgmnb",
            "kernel.sem",
            "fs.mqueue.msg_max",
            "kernel.hostname",
            "kernel.domainname",
        ];
        for key in ok {
            assert!(sysctls(&spec_with(&all, &[key])).is_ok(), "{key}");
        }
        for (key, without) in [
            ("net.ipv4.ip_forward", "network"),
            ("kernel.shmall", "ipc"),
            ("kernel.msgmax", "ipc"),
            ("kernel.sem", "ipc"),
            ("fs.mqueue.queues_max", "ipc"),
            ("kernel.hostname", "uts"),
            ("kernel.domainname", "uts"),
        ] {
            let ns: Vec<&str> = all.iter().copied().filter(|n| *n != without).collect();
            let e = sysctls(&spec_with(&ns, &[key])).unwrap_err();
            assert!(e.to_string().contains("no private"), "{key}: {e}");
        }
        for key in ["kernel.panic", "vm.swappiness", "kernel.pid_max"] {
            let e = sysctls(&spec_with(&all, &[key])).unwrap_err();
            assert!(e.to_string().contains("not in a separate"), "{key}: {e}");
        }
        // Joining the caller's own network namespace by path is not a private one.
        let mut spec = spec_with(&all, &["net.ipv4.ip_forward"]);
        let joined: Vec<oci_spec::runtime::LinuxNamespace> = serde_json::from_value(
            serde_json::json!([{ "type": "mount" }, { "type": "network", "path": "/proc/self/ns/net" }]),
        )
        .unwrap();
        if let Some(l) = spec.linux_mut() {
            l.set_namespaces(Some(joined));
        }
        assert!(sysctls(&spec).is_err());
    }
}
